//! The OpenAI wire format: routes, auth, error JSON, and the endpoints that need no module of
//! their own (`/models`).
//!
//! Paths are accepted with and without the `/v1` prefix. This module and its children only
//! translate a parsed request into a [`Reply`]; recording, auth order and faults belong to
//! [`crate::server`]. Chat completions live in [`chat`], legacy completions in [`completions`],
//! embeddings in [`embeddings`].

pub(crate) mod chat;
pub(crate) mod completions;
pub(crate) mod embeddings;

pub(crate) use embeddings::{fnv1a, vector};

use http::header::AUTHORIZATION;
use http::{HeaderMap, Method, StatusCode};
use serde::Serialize;
use serde_json::Value;

use crate::body::{self, MockBody, Reply};
use crate::server::Payload;
use crate::state::Shared;

/// The id of the one model `GET /v1/models` lists.
pub const MODEL_ID: &str = "mock-model";

/// An OpenAI endpoint the mock serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `POST /v1/completions` (legacy)
    Completions,
    /// `GET /v1/models`
    ListModels,
    /// `GET /v1/models/{id}`
    RetrieveModel,
}

impl Endpoint {
    /// The endpoint for `method` and `path` (without query), if the mock serves it.
    pub(crate) fn classify(method: &Method, path: &str) -> Option<Self> {
        let path = match path.strip_prefix("/v1") {
            Some(rest) if rest.starts_with('/') => rest,
            _ => path,
        };
        match (method, path) {
            (&Method::POST, "/chat/completions") => Some(Self::ChatCompletions),
            (&Method::POST, "/embeddings") => Some(Self::Embeddings),
            (&Method::POST, "/completions") => Some(Self::Completions),
            (&Method::GET, "/models") => Some(Self::ListModels),
            (&Method::GET, p) if p.len() > "/models/".len() && p.starts_with("/models/") => {
                Some(Self::RetrieveModel)
            }
            _ => None,
        }
    }
}

/// Whether the request asks for a streamed response (`"stream": true` on chat completions or
/// completions).
pub(crate) fn is_streaming(endpoint: Option<Endpoint>, payload: &Payload) -> bool {
    matches!(
        endpoint,
        Some(Endpoint::ChatCompletions | Endpoint::Completions)
    ) && payload
        .json()
        .and_then(|v| v.get("stream"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Whether `headers` carry `Authorization: Bearer <key>`.
pub(crate) fn authorized(headers: &HeaderMap, key: &str) -> bool {
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, token)) = value.split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && token.trim() == key
}

/// The 401 OpenAI sends for a wrong or missing key.
pub(crate) fn unauthorized() -> Reply {
    error(
        StatusCode::UNAUTHORIZED,
        "Incorrect API key provided",
        "invalid_request_error",
        None,
        Some("invalid_api_key"),
    )
    .into()
}

/// Answers a request the pipeline let through.
pub(crate) fn respond(
    shared: &Shared,
    endpoint: Option<Endpoint>,
    method: &Method,
    path: &str,
    payload: &Payload,
) -> Reply {
    let Some(endpoint) = endpoint else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("Unknown request URL: {method} {path}. Please check the URL for typos."),
            "invalid_request_error",
            None,
            Some("unknown_url"),
        )
        .into();
    };
    match endpoint {
        Endpoint::ListModels => body::json(
            StatusCode::OK,
            &ModelList {
                object: "list",
                data: [Model::new(MODEL_ID)],
            },
        )
        .into(),
        Endpoint::RetrieveModel => {
            let id = path.rsplit('/').next().unwrap_or(MODEL_ID);
            body::json(StatusCode::OK, &Model::new(id)).into()
        }
        Endpoint::ChatCompletions => match model_request(payload) {
            Ok((json, model)) => chat::respond(shared, json, model),
            Err(message) => bad_request(message, None),
        },
        Endpoint::Completions => match model_request(payload) {
            Ok((json, model)) => completions::respond(shared, json, model),
            Err(message) => bad_request(message, None),
        },
        Endpoint::Embeddings => match model_request(payload) {
            Ok((json, model)) => embeddings::respond(json, model),
            Err(message) => bad_request(message, None),
        },
    }
}

/// The JSON object and its `model`, or the message of the 400 OpenAI sends when either is missing.
fn model_request(payload: &Payload) -> Result<(&Value, &str), &'static str> {
    let Some(json) = payload.json().filter(|v| v.is_object()) else {
        return Err(
            "We could not parse the JSON body of your request. The OpenAI API expects a JSON \
             payload, but what was sent was not valid JSON.",
        );
    };
    match json.get("model").and_then(Value::as_str) {
        Some(model) => Ok((json, model)),
        None => Err("you must provide a model parameter"),
    }
}

/// A 400 `invalid_request_error`.
fn bad_request(message: &str, param: Option<&str>) -> Reply {
    error(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        param,
        None,
    )
    .into()
}

/// The answer to a [`crate::FaultKind::Status`] fault without a custom body.
pub(crate) fn fault_error(status: StatusCode) -> Response {
    let (kind, code) = match status.as_u16() {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        429 => ("requests", Some("rate_limit_exceeded")),
        500..=599 => ("server_error", None),
        _ => ("invalid_request_error", None),
    };
    let reason = status.canonical_reason().unwrap_or("");
    let message = format!("mock-upstream fault: HTTP {} {reason}", status.as_u16());
    error(status, message.trim_end(), kind, None, code)
}

type Response = http::Response<MockBody>;

/// OpenAI's error JSON: `{"error":{"message","type","param","code"}}`.
pub(crate) fn error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    body::json(
        status,
        &ErrorEnvelope {
            error: ErrorDetail {
                message,
                kind,
                param,
                code,
            },
        },
    )
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: [Model<'a>; 1],
}

#[derive(Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

impl<'a> Model<'a> {
    fn new(id: &'a str) -> Self {
        Self {
            id,
            object: "model",
            created: 0,
            owned_by: "mock",
        }
    }
}

/// Seconds since the Unix epoch, for `created` fields.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_with_and_without_v1() {
        let post = Method::POST;
        let get = Method::GET;
        assert_eq!(
            Endpoint::classify(&post, "/v1/chat/completions"),
            Some(Endpoint::ChatCompletions)
        );
        assert_eq!(
            Endpoint::classify(&post, "/chat/completions"),
            Some(Endpoint::ChatCompletions)
        );
        assert_eq!(
            Endpoint::classify(&post, "/v1/embeddings"),
            Some(Endpoint::Embeddings)
        );
        assert_eq!(
            Endpoint::classify(&get, "/v1/models"),
            Some(Endpoint::ListModels)
        );
        assert_eq!(
            Endpoint::classify(&get, "/v1/models/gpt-4o"),
            Some(Endpoint::RetrieveModel)
        );
        assert_eq!(Endpoint::classify(&get, "/v1/models/"), None);
        assert_eq!(Endpoint::classify(&get, "/v1/chat/completions"), None);
        assert_eq!(Endpoint::classify(&post, "/v1x/embeddings"), None);
    }

    #[test]
    fn bearer_auth() {
        let mut headers = HeaderMap::new();
        assert!(!authorized(&headers, "k"));
        headers.insert(AUTHORIZATION, http::HeaderValue::from_static("Bearer k"));
        assert!(authorized(&headers, "k"));
        assert!(!authorized(&headers, "other"));
        headers.insert(AUTHORIZATION, http::HeaderValue::from_static("Basic k"));
        assert!(!authorized(&headers, "k"));
    }
}
