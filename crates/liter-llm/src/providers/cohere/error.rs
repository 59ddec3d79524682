//! Cohere's error answers (a status and `{"message": ...}`, often with an `id`) turned into
//! OpenAI-shaped [`ProviderError`]s.
//!
//! | Cohere status        | to the client        | `type`                  | `code`                  |
//! |----------------------|----------------------|-------------------------|-------------------------|
//! | 400, 422             | 400                  | `invalid_request_error` | `context_length_exceeded` when the prompt is too long; `content_filter` for a blocked input or output |
//! | 401, 498 (invalid token) | 401              | `authentication_error`  | `invalid_api_key`       |
//! | 402                  | 402                  | `billing_error`         | `insufficient_quota`    |
//! | 403                  | 403                  | `permission_error`      | `permission_denied`     |
//! | 404                  | 404                  | `not_found_error`       | `not_found`             |
//! | 429                  | 429 (+ Retry-After)  | `rate_limit_error`      | `rate_limit_exceeded`   |
//! | 499 (request cancelled upstream) | 500      | `api_error`             | `request_cancelled`     |
//! | 500 and other 5xx    | the same             | `api_error`             | —                       |
//! | 503                  | 503                  | `overloaded_error`      | `overloaded`            |
//! | 504                  | 504                  | `timeout_error`         | `timeout`               |
//!
//! Other 4xx keep their status as `invalid_request_error`. The message is Cohere's.

use http::HeaderMap;
use serde::Deserialize;

use crate::providers::errors::{retry_after, unreadable_error_message};
use crate::types::ProviderError;

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
}

/// Whether a 400 message says the prompt does not fit the model's context.
fn is_context_length(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("too many tokens")
        || m.contains("context length")
        || m.contains("context window")
        || m.contains("maximum context")
}

/// Whether a 400 message says Cohere's safety checks blocked the input or output.
fn is_blocked(message: &str) -> bool {
    let m = message.trim_start().to_ascii_lowercase();
    m.starts_with("blocked input") || m.starts_with("blocked output")
}

/// An OpenAI-shaped error for Cohere's `status` and `message`.
pub(crate) fn to_provider_error(status: u16, message: &str) -> ProviderError {
    let (status, kind, code) = match status {
        400 | 422 if is_context_length(message) => (
            400,
            "invalid_request_error",
            Some("context_length_exceeded"),
        ),
        400 | 422 if is_blocked(message) => (400, "invalid_request_error", Some("content_filter")),
        400 | 422 => (400, "invalid_request_error", None),
        401 | 498 => (401, "authentication_error", Some("invalid_api_key")),
        402 => (402, "billing_error", Some("insufficient_quota")),
        403 => (403, "permission_error", Some("permission_denied")),
        404 => (404, "not_found_error", Some("not_found")),
        429 => (429, "rate_limit_error", Some("rate_limit_exceeded")),
        499 => (500, "api_error", Some("request_cancelled")),
        503 => (503, "overloaded_error", Some("overloaded")),
        504 => (504, "timeout_error", Some("timeout")),
        s @ 500..=599 => (s, "api_error", None),
        s => (s, "invalid_request_error", None),
    };
    let mut out = ProviderError::new(status, kind, message);
    out.error.code = code.map(str::to_string);
    out
}

/// Turns a Cohere error answer (any non-2xx status) into an OpenAI-shaped error.
pub fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let message = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.message)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| unreadable_error_message("cohere", status, body));
    let mut out = to_provider_error(status, &message);
    out.retry_after = retry_after(headers);
    out
}
