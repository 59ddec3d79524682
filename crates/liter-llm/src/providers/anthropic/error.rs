//! Errors: what goes wrong in translation ([`TranslateError`]) and Anthropic's error
//! answers (`{"type":"error","error":{"type","message"},"request_id"}`) turned into
//! OpenAI-shaped [`ProviderError`]s.
//!
//! | Anthropic                         | status to the client | `type`                  | `code`                    |
//! |-----------------------------------|----------------------|-------------------------|---------------------------|
//! | 400 `invalid_request_error`       | 400                  | `invalid_request_error` | `context_length_exceeded` when the prompt is too long |
//! | 401 `authentication_error`        | 401                  | `authentication_error`  | `invalid_api_key`         |
//! | 403 `permission_error`            | 403                  | `permission_error`      | `permission_denied`       |
//! | 404 `not_found_error`             | 404                  | `not_found_error`       | `not_found`               |
//! | 413 `request_too_large`           | 413                  | `request_too_large`     | `request_too_large`       |
//! | 429 `rate_limit_error`            | 429 (+ Retry-After)  | `rate_limit_error`      | `rate_limit_exceeded`     |
//! | 500 `api_error`                   | 500                  | `api_error`             | —                         |
//! | 529 `overloaded_error`            | 503                  | `overloaded_error`      | `overloaded`              |
//!
//! Other statuses keep their status and Anthropic's `type`. The message is Anthropic's.

use std::fmt;

use http::HeaderMap;
use serde::Deserialize;

use crate::providers::errors::unreadable_error_message;
use crate::types::ProviderError;

/// A request Anthropic cannot express, or an answer we cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranslateError {
    /// The client's request (HTTP 400), naming the offending parameter when there is one.
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    /// Anthropic's answer is not what its API reference describes (HTTP 502).
    BadResponse(String),
}

impl TranslateError {
    pub(crate) fn invalid(message: impl Into<String>, param: impl Into<String>) -> Self {
        TranslateError::InvalidRequest {
            message: message.into(),
            param: Some(param.into()),
        }
    }

    /// The HTTP status to answer the client with.
    pub fn status(&self) -> u16 {
        match self {
            TranslateError::InvalidRequest { .. } => 400,
            TranslateError::BadResponse(_) => 502,
        }
    }
}

impl fmt::Display for TranslateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TranslateError::InvalidRequest { message, .. } => f.write_str(message),
            TranslateError::BadResponse(message) => {
                write!(f, "unreadable answer from anthropic: {message}")
            }
        }
    }
}

impl std::error::Error for TranslateError {}

impl From<TranslateError> for ProviderError {
    fn from(e: TranslateError) -> Self {
        let message = e.to_string();
        match e {
            TranslateError::InvalidRequest { param, .. } => {
                let mut out = ProviderError::new(400, "invalid_request_error", message);
                out.error.param = param;
                out
            }
            TranslateError::BadResponse(_) => {
                ProviderError::new(502, "api_error", message).with_code("bad_upstream_response")
            }
        }
    }
}

/// Anthropic's error body.
#[derive(Deserialize)]
pub(crate) struct ErrorEnvelope {
    pub(crate) error: ErrorObject,
}

#[derive(Deserialize)]
pub(crate) struct ErrorObject {
    #[serde(rename = "type", default)]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) message: String,
}

/// The Anthropic error type a status stands for, when the body names none.
fn type_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// The status an error of this type comes with (for errors inside a 200 stream).
fn status_for_type(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 503,
        "timeout_error" => 504,
        _ => 500,
    }
}

/// Whether an `invalid_request_error` message says the prompt does not fit the context.
fn is_context_length(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("prompt is too long")
        || m.contains("exceed context limit")
        || m.contains("exceeds the context window")
}

/// An OpenAI-shaped error from Anthropic's status, type and message.
pub(crate) fn to_provider_error(status: u16, kind: &str, message: &str) -> ProviderError {
    // 529 is not a status OpenAI clients know; 503 is what they retry on.
    let status = if status == 529 { 503 } else { status };
    let code = match kind {
        "invalid_request_error" if is_context_length(message) => Some("context_length_exceeded"),
        "authentication_error" => Some("invalid_api_key"),
        "permission_error" => Some("permission_denied"),
        "not_found_error" => Some("not_found"),
        "request_too_large" => Some("request_too_large"),
        "rate_limit_error" => Some("rate_limit_exceeded"),
        "overloaded_error" => Some("overloaded"),
        _ => None,
    };
    let mut out = ProviderError::new(status, kind, message);
    out.error.code = code.map(str::to_string);
    out
}

/// An error from a stream's `error` event (`{"type":"error","error":{..}}`).
pub(crate) fn stream_error(error: &ErrorObject) -> ProviderError {
    let kind = if error.kind.is_empty() {
        "api_error"
    } else {
        error.kind.as_str()
    };
    to_provider_error(status_for_type(kind), kind, &error.message)
}

/// Turns an Anthropic error answer (any non-2xx status) into an OpenAI-shaped error.
pub fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let parsed = serde_json::from_slice::<ErrorEnvelope>(body).ok();
    let (kind, message) = match &parsed {
        Some(env) if !env.error.message.is_empty() || !env.error.kind.is_empty() => {
            let kind = if env.error.kind.is_empty() {
                type_for_status(status)
            } else {
                env.error.kind.as_str()
            };
            let message = if env.error.message.is_empty() {
                format!("anthropic answered HTTP {status} ({kind})")
            } else {
                env.error.message.clone()
            };
            (kind, message)
        }
        _ => (
            type_for_status(status),
            unreadable_error_message("anthropic", status, body),
        ),
    };
    let mut out = to_provider_error(status, kind, &message);
    out.retry_after = crate::providers::errors::retry_after(headers);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::RETRY_AFTER;
    use std::time::Duration;

    fn body(kind: &str, message: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"
        }))
        .unwrap()
    }

    #[test]
    fn each_documented_error() {
        let none = HeaderMap::new();
        for (status, kind, out_status, code) in [
            (400, "invalid_request_error", 400, None),
            (401, "authentication_error", 401, Some("invalid_api_key")),
            (403, "permission_error", 403, Some("permission_denied")),
            (404, "not_found_error", 404, Some("not_found")),
            (413, "request_too_large", 413, Some("request_too_large")),
            (429, "rate_limit_error", 429, Some("rate_limit_exceeded")),
            (500, "api_error", 500, None),
            (529, "overloaded_error", 503, Some("overloaded")),
        ] {
            let e = parse_error(status, &none, &body(kind, "the message"));
            assert_eq!(e.status, out_status, "{kind}");
            assert_eq!(e.error.kind, kind);
            assert_eq!(e.error.code.as_deref(), code, "{kind}");
            assert_eq!(e.error.message, "the message");
            assert_eq!(e.retry_after, None);
        }
    }

    #[test]
    fn prompt_too_long_is_context_length_exceeded() {
        let e = parse_error(
            400,
            &HeaderMap::new(),
            &body(
                "invalid_request_error",
                "prompt is too long: 215000 tokens > 200000 maximum",
            ),
        );
        assert_eq!(e.error.code.as_deref(), Some("context_length_exceeded"));
        assert_eq!(e.error.kind, "invalid_request_error");
    }

    #[test]
    fn retry_after_is_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, http::HeaderValue::from_static("7"));
        let e = parse_error(429, &headers, &body("rate_limit_error", "slow down"));
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        headers.insert(RETRY_AFTER, http::HeaderValue::from_static("0.5"));
        let e = parse_error(529, &headers, &body("overloaded_error", "Overloaded"));
        assert_eq!(e.retry_after, Some(Duration::from_millis(500)));
        headers.insert(
            RETRY_AFTER,
            http::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(parse_error(429, &headers, b"").retry_after, None);
    }

    #[test]
    fn non_json_bodies() {
        let e = parse_error(502, &HeaderMap::new(), b"<html>bad gateway</html>");
        assert_eq!(e.status, 502);
        assert_eq!(e.error.kind, "api_error");
        assert!(e.error.message.contains("<html>bad gateway</html>"));
        let e = parse_error(413, &HeaderMap::new(), b"");
        assert_eq!(e.error.kind, "request_too_large");
        assert!(e.error.message.contains("413"), "{}", e.error.message);
        let e = parse_error(529, &HeaderMap::new(), b"{}");
        assert_eq!((e.status, e.error.kind.as_str()), (503, "overloaded_error"));
        let e = parse_error(
            400,
            &HeaderMap::new(),
            br#"{"error":{"type":"invalid_request_error"}}"#,
        );
        assert!(e.error.message.contains("400"), "{}", e.error.message);
    }

    #[test]
    fn translate_errors_become_provider_errors() {
        let e: ProviderError = TranslateError::invalid("n must be 1", "n").into();
        assert_eq!(e.status, 400);
        assert_eq!(e.error.param.as_deref(), Some("n"));
        assert_eq!(e.error.kind, "invalid_request_error");
        let e: ProviderError = TranslateError::BadResponse("not JSON".into()).into();
        assert_eq!(e.status, 502);
        assert!(e.error.message.contains("not JSON"));
    }

    #[test]
    fn stream_errors_get_a_status() {
        let e = stream_error(&ErrorObject {
            kind: "overloaded_error".into(),
            message: "Overloaded".into(),
        });
        assert_eq!(
            (e.status, e.error.code.as_deref()),
            (503, Some("overloaded"))
        );
        let e = stream_error(&ErrorObject {
            kind: String::new(),
            message: "?".into(),
        });
        assert_eq!((e.status, e.error.kind.as_str()), (500, "api_error"));
    }
}
