//! Which provider's wire format a request speaks, told from its method and path, and the
//! per-format steps of the pipeline in [`crate::server`]: auth, the model a fault may
//! target, streaming, the answer, and the default body of a status fault.
//!
//! A new provider format is one more variant here and one module beside
//! [`crate::openai`] and [`crate::anthropic`] with the same handful of functions.

use http::{HeaderMap, Method, Response, StatusCode};
use serde_json::Value;

use crate::anthropic;
use crate::azure::{self, AzureCall};
use crate::bedrock;
use crate::body::{MockBody, Reply};
use crate::cohere;
use crate::google::{self, Api};
use crate::openai::{self, Endpoint};
use crate::server::Payload;
use crate::state::Shared;

/// A request's wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    /// OpenAI's API (and the default for any path no other format claims).
    OpenAi(Option<Endpoint>),
    /// Anthropic's Messages API.
    Anthropic,
    /// Azure OpenAI's deployment URLs and v1 API.
    Azure(AzureCall),
    /// Cohere's Chat v2 and Embed v2.
    Cohere(cohere::Endpoint),
    /// Google's APIs: Gemini, Vertex AI (Google's and Anthropic's models) and the OAuth
    /// token endpoint.
    Google(Api),
    /// Amazon Bedrock's runtime (Converse, ConverseStream, InvokeModel embeddings).
    Bedrock,
}

impl Wire {
    pub(crate) fn classify(method: &Method, path: &str, query: Option<&str>) -> Wire {
        if anthropic::handles(method, path) {
            return Wire::Anthropic;
        }
        if let Some(call) = azure::classify(method, path, query) {
            return Wire::Azure(call);
        }
        if method == Method::POST {
            if let Some(route) = google::route(path) {
                return Wire::Google(route.api);
            }
        }
        if let Some(endpoint) = cohere::classify(method, path) {
            return Wire::Cohere(endpoint);
        }
        if bedrock::handles(method, path) {
            return Wire::Bedrock;
        }
        Wire::OpenAi(Endpoint::classify(method, path))
    }

    /// Whether the request carries `key` the way this provider expects it (for
    /// Bedrock: a SigV4 signature made with `key` as the secret access key).
    pub(crate) fn authorized(self, request: &http::request::Parts, body: &[u8], key: &str) -> bool {
        let headers = &request.headers;
        match self {
            Wire::OpenAi(_) | Wire::Cohere(_) => openai::authorized(headers, key),
            Wire::Anthropic => anthropic::authorized(headers, key),
            Wire::Azure(_) => azure::authorized(headers, key),
            Wire::Google(api) => google::authorized(api, headers, key),
            Wire::Bedrock => bedrock::authorized(&request.method, &request.uri, headers, body, key),
        }
    }

    /// The provider's 401.
    pub(crate) fn unauthorized(self) -> Reply {
        match self {
            Wire::OpenAi(_) => openai::unauthorized(),
            Wire::Anthropic => anthropic::unauthorized(),
            Wire::Azure(_) => azure::unauthorized(),
            Wire::Cohere(_) => cohere::unauthorized(),
            Wire::Google(api) => google::unauthorized(api),
            Wire::Bedrock => bedrock::unauthorized(),
        }
    }

    /// The model a request is for (what faults are matched against): the body's
    /// `model` here; formats that put it in the path read it from there.
    pub(crate) fn model(self, path: &str, payload: &Payload) -> Option<String> {
        match self {
            Wire::Azure(call) => azure::model(call, path, payload),
            Wire::Google(Api::Token) => None,
            Wire::Google(_) => google::route(path).map(|r| r.model.to_owned()),
            Wire::Bedrock => bedrock::model(path),
            Wire::OpenAi(_) | Wire::Anthropic | Wire::Cohere(_) => payload
                .json()
                .and_then(|v| v.get("model"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }

    /// Whether the request asks for a streamed answer.
    pub(crate) fn is_streaming(self, path: &str, payload: &Payload) -> bool {
        match self {
            Wire::Google(_) => google::route(path).is_some_and(|r| google::is_streaming(&r)),
            Wire::Bedrock => bedrock::is_streaming(path),
            Wire::OpenAi(endpoint) => openai::is_streaming(endpoint, payload),
            Wire::Anthropic => anthropic::is_streaming(payload),
            Wire::Azure(call) => azure::is_streaming(call, payload),
            Wire::Cohere(endpoint) => cohere::is_streaming(endpoint, payload),
        }
    }

    /// The answer to a request that passed auth and faults.
    pub(crate) fn respond(
        self,
        shared: &Shared,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        payload: &Payload,
    ) -> Reply {
        match self {
            Wire::OpenAi(endpoint) => openai::respond(shared, endpoint, method, path, payload),
            Wire::Anthropic => anthropic::respond(shared, headers, payload),
            Wire::Azure(call) => azure::respond(shared, call, path, payload),
            Wire::Cohere(endpoint) => cohere::respond(shared, endpoint, payload),
            Wire::Google(_) => match google::route(path) {
                Some(route) => google::respond(shared, &route, payload),
                None => google::error(StatusCode::NOT_FOUND, "not found").into(),
            },
            Wire::Bedrock => bedrock::respond(shared, path, headers, payload),
        }
    }

    /// An error answer saying `message`, in this format's error shape.
    pub(crate) fn error_saying(self, status: StatusCode, message: &str) -> Response<MockBody> {
        match self {
            Wire::OpenAi(_) | Wire::Azure(_) => openai::error(
                status,
                message,
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            ),
            Wire::Anthropic | Wire::Google(Api::VertexAnthropic) => {
                anthropic::error(status, anthropic::fault_type(status.as_u16()), message)
            }
            Wire::Cohere(_) => cohere::error(status, message),
            Wire::Google(_) => google::error(status, message),
            Wire::Bedrock => bedrock::error(status, "AccessDeniedException", message),
        }
    }

    /// A stream's error event saying `message`, in this format's shape (Anthropic's
    /// `event: error`, else an OpenAI-shaped `data: {"error":…}`).
    pub(crate) fn stream_error_event(self, message: &str) -> bytes::Bytes {
        let text = match self {
            Wire::Anthropic | Wire::Google(Api::VertexAnthropic) => format!(
                "event: error\ndata: {}\n\n",
                serde_json::json!({"type": "error", "error": {"type": "api_error", "message": message}})
            ),
            _ => format!(
                "data: {}\n\n",
                serde_json::json!({"error": {"message": message, "type": "api_error", "param": null, "code": null}})
            ),
        };
        bytes::Bytes::from(text)
    }

    /// The default body of a status fault, in this format's error shape.
    pub(crate) fn fault_error(self, status: StatusCode) -> Response<MockBody> {
        match self {
            Wire::OpenAi(_) => openai::fault_error(status),
            Wire::Anthropic => anthropic::fault_error(status),
            Wire::Azure(_) => azure::fault_error(status),
            Wire::Cohere(_) => cohere::fault_error(status),
            // Claude on Vertex fails in Anthropic's shape, the rest of Google in Google's.
            Wire::Google(Api::VertexAnthropic) => anthropic::fault_error(status),
            Wire::Google(_) => google::fault_error(status),
            Wire::Bedrock => bedrock::fault_error(status),
        }
    }
}
