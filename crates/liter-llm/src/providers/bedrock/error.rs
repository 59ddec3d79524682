//! Bedrock's errors turned into OpenAI-shaped [`ProviderError`]s: HTTP answers
//! (status, `x-amzn-errortype: NameException[:namespace]`, body `{"message": …}`) and
//! the exception messages of a ConverseStream (`:exception-type`, camelCase).
//!
//! | Bedrock                                   | status | `type`                  | `code`                     |
//! |-------------------------------------------|--------|-------------------------|----------------------------|
//! | ValidationException 400                   | 400    | `invalid_request_error` | `context_length_exceeded` when the input is too long |
//! | AccessDeniedException 403                 | 403    | `permission_error`      | `permission_denied`        |
//! | UnrecognizedClient / InvalidSignature / ExpiredToken / MissingAuthenticationToken / IncompleteSignature (400, 403) | 401 | `authentication_error` | `invalid_api_key` |
//! | ResourceNotFoundException 404             | 404    | `not_found_error`       | `model_not_found`          |
//! | ThrottlingException 429                   | 429 (+ Retry-After) | `rate_limit_error` | `rate_limit_exceeded` |
//! | ServiceQuotaExceededException 400         | 429    | `rate_limit_error`      | `insufficient_quota`       |
//! | ModelNotReadyException 429                | 503    | `overloaded_error`      | `model_not_ready`          |
//! | ServiceUnavailableException 503           | 503    | `overloaded_error`      | `overloaded`               |
//! | ModelTimeoutException 408                 | 504    | `timeout_error`         | `timeout`                  |
//! | ModelErrorException / ModelStreamErrorException 424 | 502 | `api_error`      | `model_error`              |
//! | InternalServerException 500               | 500    | `api_error`             | —                          |
//!
//! Anything else keeps its status with the type its status suggests. The `type` and
//! message are what the client sees; the AWS error name is kept in the message only
//! when the body has none.

use std::time::Duration;

use http::header::RETRY_AFTER;
use http::HeaderMap;
use serde_json::Value;

use crate::types::ProviderError;

/// The header naming the AWS error.
pub const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";

/// How one AWS error name is answered.
fn classify(name: &str, status: u16, message: &str) -> (u16, &'static str, Option<&'static str>) {
    let lower = name.to_ascii_lowercase();
    let lower = lower.trim_end_matches("exception");
    match lower {
        "validation" if is_context_length(message) => (
            400,
            "invalid_request_error",
            Some("context_length_exceeded"),
        ),
        "validation" => (400, "invalid_request_error", None),
        "accessdenied" => (403, "permission_error", Some("permission_denied")),
        "unrecognizedclient"
        | "invalidsignature"
        | "expiredtoken"
        | "missingauthenticationtoken"
        | "incompletesignature"
        | "invalidclienttokenid"
        | "signaturedoesnotmatch" => (401, "authentication_error", Some("invalid_api_key")),
        "resourcenotfound" => (404, "not_found_error", Some("model_not_found")),
        "throttling" => (429, "rate_limit_error", Some("rate_limit_exceeded")),
        "servicequotaexceeded" => (429, "rate_limit_error", Some("insufficient_quota")),
        "modelnotready" => (503, "overloaded_error", Some("model_not_ready")),
        "serviceunavailable" => (503, "overloaded_error", Some("overloaded")),
        "modeltimeout" => (504, "timeout_error", Some("timeout")),
        "modelerror" | "modelstreamerror" => (502, "api_error", Some("model_error")),
        "internalserver" => (500, "api_error", None),
        _ if status == 400 && is_context_length(message) => (
            400,
            "invalid_request_error",
            Some("context_length_exceeded"),
        ),
        _ => by_status(status),
    }
}

fn by_status(status: u16) -> (u16, &'static str, Option<&'static str>) {
    match status {
        401 => (401, "authentication_error", Some("invalid_api_key")),
        403 => (403, "permission_error", Some("permission_denied")),
        404 => (404, "not_found_error", Some("not_found")),
        408 => (504, "timeout_error", Some("timeout")),
        429 => (429, "rate_limit_error", Some("rate_limit_exceeded")),
        503 => (503, "overloaded_error", Some("overloaded")),
        500..=599 => (status, "api_error", None),
        _ => (status, "invalid_request_error", None),
    }
}

/// Whether a ValidationException says the input does not fit the model's context.
fn is_context_length(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("too long")
        || m.contains("too many input tokens")
        || m.contains("too many tokens")
        || m.contains("context length")
        || m.contains("context window")
        || m.contains("maximum context")
}

/// `Retry-After` in seconds (integer or decimal); HTTP dates are ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: f64 = value.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// The longest part of a non-JSON error body quoted in the message.
const MAX_QUOTED: usize = 512;

/// The `message` (or `Message`) of an AWS JSON error body.
fn body_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("message")
        .or_else(|| v.get("Message"))
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
}

/// Turns a Bedrock error answer (any non-2xx status) into an OpenAI-shaped error.
pub fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    // `ValidationException:http://internal.amazon.com/coral/...` → `ValidationException`.
    let name = headers
        .get(ERROR_TYPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or("").trim().to_string())
        .or_else(|| {
            let v: Value = serde_json::from_slice(body).ok()?;
            let t = v.get("__type").and_then(Value::as_str)?;
            Some(t.rsplit('#').next().unwrap_or(t).to_string())
        })
        .unwrap_or_default();
    let message = body_message(body).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let label = if name.is_empty() {
            String::new()
        } else {
            format!(" ({name})")
        };
        if text.is_empty() {
            format!("bedrock answered HTTP {status}{label}")
        } else {
            let cut: String = text.chars().take(MAX_QUOTED).collect();
            format!("bedrock answered HTTP {status}{label}: {cut}")
        }
    });
    let (out_status, kind, code) = classify(&name, status, &message);
    let mut out = ProviderError::new(out_status, kind, message);
    out.error.code = code.map(str::to_string);
    out.retry_after = retry_after(headers);
    out
}

/// An exception message inside a 200 ConverseStream (`:exception-type` and its JSON
/// payload).
pub fn stream_exception(name: &str, payload: &[u8]) -> ProviderError {
    let message = body_message(payload).unwrap_or_else(|| format!("bedrock stream failed: {name}"));
    let (status, kind, code) = classify(name, 500, &message);
    let mut out = ProviderError::new(status, kind, message);
    out.error.code = code.map(str::to_string);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            ERROR_TYPE_HEADER,
            http::HeaderValue::from_str(name).unwrap(),
        );
        h
    }

    #[test]
    fn names_with_a_namespace() {
        let e = parse_error(
            400,
            &headers("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            br#"{"message":"Input is too long for requested model."}"#,
        );
        assert_eq!(e.status, 400);
        assert_eq!(e.error.code.as_deref(), Some("context_length_exceeded"));
        assert_eq!(e.error.message, "Input is too long for requested model.");
    }

    #[test]
    fn type_in_the_body_and_non_json() {
        let e = parse_error(403, &HeaderMap::new(), br#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","Message":"The security token included in the request is invalid."}"#);
        assert_eq!(
            (e.status, e.error.kind.as_str()),
            (401, "authentication_error")
        );
        let e = parse_error(502, &HeaderMap::new(), b"<html>bad</html>");
        assert_eq!((e.status, e.error.kind.as_str()), (502, "api_error"));
        assert!(e.error.message.contains("<html>bad</html>"));
        let e = parse_error(503, &headers("ServiceUnavailableException"), b"");
        assert!(e.error.message.contains("ServiceUnavailableException"));
    }

    #[test]
    fn stream_exceptions_are_camel_case() {
        let e = stream_exception("throttlingException", br#"{"message":"slow down"}"#);
        assert_eq!(
            (e.status, e.error.code.as_deref()),
            (429, Some("rate_limit_exceeded"))
        );
        let e = stream_exception("modelStreamErrorException", b"{}");
        assert_eq!(e.status, 502);
        let e = stream_exception("somethingNew", b"");
        assert_eq!(e.status, 500);
    }
}
