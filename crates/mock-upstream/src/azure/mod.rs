//! Azure OpenAI: the OpenAI wire format at deployment URLs
//! (`POST /openai/deployments/{deployment}/chat/completions?api-version=…` and
//! `…/embeddings`) or at the v1 API (`POST /openai/v1/chat/completions`, `/openai/v1/embeddings`,
//! deployment in the body's `model`), with the key in `api-key` and Azure's error JSON
//! (`{"error":{"code","message"}}`).
//!
//! Answers are the [`crate::openai`] ones, for the deployment as model. A deployment URL without
//! `api-version` is answered 404 `Resource not found`, as Azure does. A chat whose last user text
//! contains [`FILTER_TRIGGER`] is answered the way Azure answers a filtered completion: 200 with
//! `finish_reason: "content_filter"`, no content, and `prompt_filter_results` /
//! `content_filter_results` annotations.

use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use crate::body::{self, MockBody, Reply};
use crate::openai::{self, Endpoint};
use crate::server::Payload;
use crate::state::{Shared, Tokens};

/// Text in the last user message that makes the mock filter the completion.
pub const FILTER_TRIGGER: &str = "trigger the content filter";

const DEPLOYMENTS: &str = "/openai/deployments/";
const V1: &str = "/openai/v1";

/// One Azure request, as told from its method, path and query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AzureCall {
    endpoint: Endpoint,
    /// The v1 API (deployment in the body) rather than a deployment URL.
    v1: bool,
    /// Whether the query has a non-empty `api-version`.
    versioned: bool,
}

/// The Azure call `method path?query` is, if it is one.
pub(crate) fn classify(method: &Method, path: &str, query: Option<&str>) -> Option<AzureCall> {
    if method != Method::POST {
        return None;
    }
    let versioned = query.is_some_and(|q| {
        q.split('&').any(|kv| {
            kv.strip_prefix("api-version=")
                .is_some_and(|v| !v.is_empty())
        })
    });
    let (v1, op) = match path.strip_prefix(V1) {
        Some(op) => (true, op),
        None => {
            let (deployment, op) = path.strip_prefix(DEPLOYMENTS)?.split_once('/')?;
            if deployment.is_empty() {
                return None;
            }
            (false, op)
        }
    };
    let endpoint = match op.trim_start_matches('/') {
        "chat/completions" => Endpoint::ChatCompletions,
        "embeddings" => Endpoint::Embeddings,
        "completions" => Endpoint::Completions,
        _ => return None,
    };
    Some(AzureCall {
        endpoint,
        v1,
        versioned,
    })
}

/// The deployment a request is for: from the path, or the body's `model` on the v1 API.
pub(crate) fn model(call: AzureCall, path: &str, payload: &Payload) -> Option<String> {
    if call.v1 {
        return payload
            .json()
            .and_then(|v| v.get("model"))
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    path.strip_prefix(DEPLOYMENTS)
        .and_then(|rest| rest.split('/').next())
        .map(str::to_owned)
}

pub(crate) fn is_streaming(call: AzureCall, payload: &Payload) -> bool {
    openai::is_streaming(Some(call.endpoint), payload)
}

/// Whether `headers` carry `api-key: <key>`.
pub(crate) fn authorized(headers: &HeaderMap, key: &str) -> bool {
    headers
        .get("api-key")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == key)
}

/// The 401 Azure sends for a wrong or missing key.
pub(crate) fn unauthorized() -> Reply {
    error(
        StatusCode::UNAUTHORIZED,
        "401",
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to \
         provide a valid key for an active subscription and use a correct regional API \
         endpoint for your resource.",
    )
    .into()
}

/// Answers a request the pipeline let through.
pub(crate) fn respond(shared: &Shared, call: AzureCall, path: &str, payload: &Payload) -> Reply {
    if !call.v1 && !call.versioned {
        return error(StatusCode::NOT_FOUND, "404", "Resource not found").into();
    }
    let Some(mut json) = payload.json().filter(|v| v.is_object()).cloned() else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The request body is not valid JSON.",
        )
        .into();
    };
    if !call.v1 {
        // The deployment decides the model; the body's `model` is ignored.
        let deployment = model(call, path, payload).unwrap_or_default();
        json["model"] = Value::from(deployment);
    }
    if call.endpoint == Endpoint::ChatCompletions && last_user_text(&json).contains(FILTER_TRIGGER)
    {
        return filtered(shared, &json);
    }
    openai::respond(
        shared,
        Some(call.endpoint),
        &Method::POST,
        path,
        &Payload::Json(json),
    )
}

/// The text of the last user message.
fn last_user_text(json: &Value) -> String {
    let Some(messages) = json.get("messages").and_then(Value::as_array) else {
        return String::new();
    };
    let Some(last) = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    else {
        return String::new();
    };
    match last.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// The filter results of one text, `filtered` in the `violence` category.
fn filter_results(filtered: bool) -> Value {
    let safe = json!({"filtered": false, "severity": "safe"});
    json!({
        "hate": safe,
        "self_harm": safe,
        "sexual": safe,
        "violence": {"filtered": filtered, "severity": if filtered { "high" } else { "safe" }},
    })
}

/// A completion the output filter stopped.
fn filtered(shared: &Shared, json: &Value) -> Reply {
    let model = json.get("model").and_then(Value::as_str).unwrap_or("");
    let id = shared.next_id();
    let answer = json!({
        "id": format!("chatcmpl-mock-{id}"),
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": filter_results(false)}],
        "choices": [{
            "index": 0,
            "finish_reason": "content_filter",
            "message": {"role": "assistant", "content": null},
            "content_filter_results": filter_results(true),
        }],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    });
    Reply {
        response: body::json(StatusCode::OK, &answer),
        usage: Some(Tokens {
            prompt: 5,
            completion: 1,
        }),
    }
}

/// The answer to a status fault without a custom body, in Azure's error shape.
pub(crate) fn fault_error(status: StatusCode) -> http::Response<MockBody> {
    let code = status.as_u16().to_string();
    let message = match status.as_u16() {
        429 => "Requests to the ChatCompletions_Create Operation have exceeded the token rate \
                limit of your current pricing tier. Please retry after 1 second."
            .to_string(),
        n => format!(
            "mock-upstream fault: HTTP {n} {}",
            status.canonical_reason().unwrap_or("")
        )
        .trim_end()
        .to_string(),
    };
    error(status, &code, &message)
}

/// Azure's error JSON: `{"error":{"code","message"}}`.
fn error(status: StatusCode, code: &str, message: &str) -> http::Response<MockBody> {
    body::json(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let post = Method::POST;
        let c = classify(
            &post,
            "/openai/deployments/gpt4/chat/completions",
            Some("api-version=2024-10-21"),
        )
        .unwrap();
        assert_eq!(c.endpoint, Endpoint::ChatCompletions);
        assert!(c.versioned && !c.v1);
        let c = classify(&post, "/openai/deployments/e/embeddings", None).unwrap();
        assert_eq!(c.endpoint, Endpoint::Embeddings);
        assert!(!c.versioned);
        let c = classify(&post, "/openai/v1/chat/completions", None).unwrap();
        assert!(c.v1);
        assert!(classify(&post, "/openai/deployments//chat/completions", None).is_none());
        let c = classify(&post, "/openai/deployments/d/completions", None).unwrap();
        assert_eq!(c.endpoint, Endpoint::Completions);
        assert!(classify(&post, "/openai/deployments/d/edits", None).is_none());
        assert!(classify(&Method::GET, "/openai/v1/embeddings", None).is_none());
        assert!(classify(&post, "/v1/chat/completions", None).is_none());
        assert!(classify(
            &post,
            "/openai/deployments/d/embeddings",
            Some("api-version=")
        )
        .is_some_and(|c| !c.versioned));
    }

    #[test]
    fn api_key_header() {
        let mut headers = HeaderMap::new();
        assert!(!authorized(&headers, "k"));
        headers.insert("api-key", http::HeaderValue::from_static("k"));
        assert!(authorized(&headers, "k"));
        assert!(!authorized(&headers, "j"));
    }
}
