//! Google's error answers (`{"error":{"code","message","status","details"}}`, the same
//! for the Gemini API and Vertex AI) turned into OpenAI-shaped [`ProviderError`]s.
//!
//! | Google                                   | status to the client | `type`                  | `code`                    |
//! |------------------------------------------|----------------------|-------------------------|---------------------------|
//! | 400 `INVALID_ARGUMENT`, `FAILED_PRECONDITION`, `OUT_OF_RANGE` | 400 | `invalid_request_error` | `context_length_exceeded` when the input is too long |
//! | 400 with reason `API_KEY_INVALID`, 401 `UNAUTHENTICATED` | 401       | `authentication_error`  | `invalid_api_key`         |
//! | 403 `PERMISSION_DENIED`                  | 403                  | `permission_error`      | `permission_denied`       |
//! | 404 `NOT_FOUND`                          | 404                  | `not_found_error`       | `not_found`               |
//! | 429 `RESOURCE_EXHAUSTED`                 | 429 (+ Retry-After)  | `rate_limit_error`      | `rate_limit_exceeded`     |
//! | 500 `INTERNAL`                           | 500                  | `api_error`             | —                         |
//! | 503 `UNAVAILABLE`                        | 503                  | `overloaded_error`      | `overloaded`              |
//! | 504 `DEADLINE_EXCEEDED`                  | 504                  | `timeout_error`         | `timeout`                 |
//!
//! `Retry-After` is kept; without the header, a `RetryInfo` detail's `retryDelay`
//! (`"7s"`) is used. The message is Google's.

use std::time::Duration;

use http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use crate::types::ProviderError;

#[derive(Deserialize)]
pub(crate) struct ErrorEnvelope {
    pub(crate) error: ErrorObject,
}

#[derive(Deserialize, Default)]
pub(crate) struct ErrorObject {
    #[serde(default)]
    pub(crate) code: u16,
    #[serde(default)]
    pub(crate) message: String,
    #[serde(default)]
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) details: Vec<Value>,
}

/// Whether an `INVALID_ARGUMENT` message says the input does not fit the context.
fn is_context_length(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    (m.contains("token count") && m.contains("exceeds"))
        || m.contains("exceeds the maximum number of tokens")
        || m.contains("context window")
}

fn has_reason(details: &[Value], reason: &str) -> bool {
    details
        .iter()
        .any(|d| d.get("reason").and_then(Value::as_str) == Some(reason))
}

/// `RetryInfo.retryDelay` (`"7s"`, `"0.5s"`).
fn retry_delay(details: &[Value]) -> Option<Duration> {
    details.iter().find_map(|d| {
        let delay = d.get("retryDelay")?.as_str()?.strip_suffix('s')?;
        let secs: f64 = delay.parse().ok()?;
        (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
    })
}

/// The canonical status a code stands for, when the body names none.
fn status_for_code(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// The OpenAI-shaped error for an HTTP status and Google's error object.
pub(crate) fn to_provider_error(status: u16, err: &ErrorObject) -> ProviderError {
    let canonical = if err.status.is_empty() {
        status_for_code(status)
    } else {
        err.status.as_str()
    };
    let message = if err.message.is_empty() {
        format!("gemini answered HTTP {status} ({canonical})")
    } else {
        err.message.clone()
    };
    let key_invalid = has_reason(&err.details, "API_KEY_INVALID")
        || message.contains("API key not valid")
        || canonical == "UNAUTHENTICATED";
    let (status, kind, code) = if key_invalid {
        (401, "authentication_error", Some("invalid_api_key"))
    } else {
        match canonical {
            "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => (
                400,
                "invalid_request_error",
                is_context_length(&message).then_some("context_length_exceeded"),
            ),
            "PERMISSION_DENIED" => (403, "permission_error", Some("permission_denied")),
            "NOT_FOUND" => (404, "not_found_error", Some("not_found")),
            "RESOURCE_EXHAUSTED" => (429, "rate_limit_error", Some("rate_limit_exceeded")),
            "UNAVAILABLE" => (503, "overloaded_error", Some("overloaded")),
            "DEADLINE_EXCEEDED" => (504, "timeout_error", Some("timeout")),
            _ if (400..500).contains(&status) => (status, "invalid_request_error", None),
            _ => (status.max(500), "api_error", None),
        }
    };
    let mut out = ProviderError::new(status, kind, message);
    out.error.code = code.map(str::to_string);
    out.retry_after = retry_delay(&err.details);
    out
}

/// Turns a Gemini or Vertex AI error answer (any non-2xx status) into an OpenAI-shaped
/// error.
pub fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    // Google sometimes wraps the error in a one-element array (and serde would read an
    // array as the struct's fields in order, so arrays are told apart first).
    let parsed = if body.trim_ascii_start().starts_with(b"[") {
        serde_json::from_slice::<Vec<ErrorEnvelope>>(body)
            .ok()
            .and_then(|v| v.into_iter().next())
    } else {
        serde_json::from_slice::<ErrorEnvelope>(body).ok()
    };
    let err = match parsed {
        Some(env) => env.error,
        None => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            ErrorObject {
                message: if text.is_empty() {
                    String::new()
                } else {
                    crate::providers::errors::unreadable_error_message("gemini", status, body)
                },
                ..ErrorObject::default()
            }
        }
    };
    let mut out = to_provider_error(status, &err);
    if let Some(after) = crate::providers::errors::retry_after(headers) {
        out.retry_after = Some(after);
    }
    out
}

/// An error object inside a 200 stream.
pub(crate) fn stream_error(err: &ErrorObject) -> ProviderError {
    let status = if err.code >= 400 { err.code } else { 500 };
    to_provider_error(status, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_detail_and_header() {
        let body = br#"{"error":{"code":429,"message":"Quota","status":"RESOURCE_EXHAUSTED",
            "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"7s"}]}}"#;
        let e = parse_error(429, &HeaderMap::new(), body);
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        let mut h = HeaderMap::new();
        h.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("3"),
        );
        assert_eq!(
            parse_error(429, &h, body).retry_after,
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn non_json_and_array_bodies() {
        let e = parse_error(502, &HeaderMap::new(), b"<html>bad gateway</html>");
        assert_eq!((e.status, e.error.kind.as_str()), (502, "api_error"));
        assert!(e.error.message.contains("bad gateway"));
        let e = parse_error(503, &HeaderMap::new(), b"");
        assert_eq!(e.error.code.as_deref(), Some("overloaded"));
        let e = parse_error(
            404,
            &HeaderMap::new(),
            br#"[{"error":{"code":404,"message":"no model","status":"NOT_FOUND"}}]"#,
        );
        assert_eq!((e.status, e.error.message.as_str()), (404, "no model"));
    }
}
