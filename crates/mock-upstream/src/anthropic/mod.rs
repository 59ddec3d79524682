//! The Anthropic Messages API wire format: `POST /v1/messages`, its auth (`x-api-key`), its
//! required `anthropic-version` header, and its error JSON
//! (`{"type":"error","error":{"type","message"}}`).
//!
//! Like [`crate::openai`], this module only turns a parsed request into a [`Reply`];
//! recording, the order of auth and faults belong to [`crate::server`], which sends a request
//! here when [`handles`] says so. The answer itself lives in [`messages`].

mod messages;

pub(crate) use messages::{first_words, word_count, word_pieces};

use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use crate::body::{self, MockBody, Reply};
use crate::server::Payload;
use crate::state::Shared;

/// The one path this wire format serves.
pub(crate) const PATH: &str = "/v1/messages";

/// Whether a request is for the Anthropic Messages API.
pub(crate) fn handles(method: &Method, path: &str) -> bool {
    method == Method::POST && path == PATH
}

/// Whether the request asks for a streamed response (`"stream": true`).
pub(crate) fn is_streaming(payload: &Payload) -> bool {
    payload
        .json()
        .and_then(|v| v.get("stream"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Whether `headers` carry the key as `x-api-key: <key>` (the documented header, which the
/// gateway sends) or `Authorization: Bearer <key>` (what the official Python SDK sends for
/// an API key since its 2.x releases).
pub(crate) fn authorized(headers: &HeaderMap, key: &str) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header("x-api-key").is_some_and(|v| v.trim() == key)
        || header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|v| v.trim() == key)
}

/// The 401 Anthropic sends for a wrong or missing key.
pub(crate) fn unauthorized() -> Reply {
    error(
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "invalid x-api-key",
    )
    .into()
}

/// Answers a request the pipeline let through.
pub(crate) fn respond(shared: &Shared, headers: &HeaderMap, payload: &Payload) -> Reply {
    if !headers.contains_key("anthropic-version") {
        return bad_request("anthropic-version: header is required");
    }
    let Some(json) = payload.json().filter(|v| v.is_object()) else {
        return bad_request("The request body is not valid JSON.");
    };
    let Some(model) = json.get("model").and_then(Value::as_str) else {
        return bad_request("model: Field required");
    };
    let Some(max_tokens) = json
        .get("max_tokens")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
    else {
        return bad_request("max_tokens: Field required");
    };
    let Some(turns) = json.get("messages").and_then(Value::as_array) else {
        return bad_request("messages: Field required");
    };
    if let Some(problem) = check_fields(json, max_tokens) {
        return bad_request(&problem);
    }
    messages::respond(shared, json, model, max_tokens, turns)
}

/// The top-level fields of a Messages request Anthropic documents; any other is
/// refused as the real API does ("Extra inputs are not permitted").
const FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
    "output_config",
    "output_format",
    "context_management",
    "inference_geo",
    "anthropic_version",
];

/// What the real API refuses in fields the echo model otherwise ignores: unknown
/// top-level fields, and a `thinking` budget below 1024 or not below `max_tokens`.
fn check_fields(json: &Value, max_tokens: u64) -> Option<String> {
    let obj = json.as_object()?;
    if let Some(extra) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Some(format!("{extra}: Extra inputs are not permitted"));
    }
    let thinking = obj.get("thinking")?;
    if thinking.get("type").and_then(Value::as_str) != Some("enabled") {
        return None;
    }
    let budget = thinking
        .get("budget_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if budget < 1024 {
        return Some(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024".into(),
        );
    }
    if budget >= max_tokens {
        return Some("`max_tokens` must be greater than `thinking.budget_tokens`".into());
    }
    None
}

/// Claude on Vertex AI (`:rawPredict` / `:streamRawPredict`): the model is in the path
/// and the version in the body (`anthropic_version`), which has no `model`.
pub(crate) fn respond_vertex(shared: &Shared, payload: &Payload, model: &str) -> Reply {
    let Some(json) = payload.json().filter(|v| v.is_object()) else {
        return bad_request("The request body is not valid JSON.");
    };
    if json
        .get("anthropic_version")
        .and_then(Value::as_str)
        .is_none()
    {
        return bad_request("anthropic_version: Field required");
    }
    if json.get("model").is_some() {
        return bad_request("model: Extra inputs are not permitted");
    }
    let Some(max_tokens) = json
        .get("max_tokens")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
    else {
        return bad_request("max_tokens: Field required");
    };
    let Some(turns) = json.get("messages").and_then(Value::as_array) else {
        return bad_request("messages: Field required");
    };
    if let Some(problem) = check_fields(json, max_tokens) {
        return bad_request(&problem);
    }
    messages::respond(shared, json, model, max_tokens, turns)
}

/// A 400 `invalid_request_error`.
fn bad_request(message: &str) -> Reply {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", message).into()
}

/// The answer to a [`crate::FaultKind::Status`] fault without a custom body, in Anthropic's
/// error shape.
pub(crate) fn fault_error(status: StatusCode) -> http::Response<MockBody> {
    let message = match (status.as_u16(), status.canonical_reason()) {
        (529, _) => "mock-upstream fault: HTTP 529 Overloaded".to_string(),
        (code, Some(reason)) => format!("mock-upstream fault: HTTP {code} {reason}"),
        (code, None) => format!("mock-upstream fault: HTTP {code}"),
    };
    error(status, fault_type(status.as_u16()), &message)
}

/// The error `type` Anthropic documents for a status.
pub(crate) fn fault_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// Anthropic's error JSON: `{"type":"error","error":{"type","message"}}`.
pub(crate) fn error(status: StatusCode, kind: &str, message: &str) -> http::Response<MockBody> {
    body::json(
        status,
        &json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn routes_only_post_v1_messages() {
        assert!(handles(&Method::POST, "/v1/messages"));
        assert!(!handles(&Method::GET, "/v1/messages"));
        assert!(!handles(&Method::POST, "/v1/messages/count_tokens"));
        assert!(!handles(&Method::POST, "/v1/chat/completions"));
    }

    #[test]
    fn api_key_header() {
        let mut headers = HeaderMap::new();
        assert!(!authorized(&headers, "k"));
        headers.insert("x-api-key", http::HeaderValue::from_static("k"));
        assert!(authorized(&headers, "k"));
        assert!(!authorized(&headers, "other"));
        let mut bearer = HeaderMap::new();
        bearer.insert("authorization", http::HeaderValue::from_static("Bearer k"));
        assert!(authorized(&bearer, "k"));
        assert!(!authorized(&bearer, "other"));
    }

    #[test]
    fn fault_types_follow_the_status() {
        for (status, kind) in [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (409, "invalid_request_error"),
            (413, "request_too_large"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (503, "api_error"),
            (529, "overloaded_error"),
        ] {
            assert_eq!(fault_type(status), kind, "{status}");
        }
    }
}
