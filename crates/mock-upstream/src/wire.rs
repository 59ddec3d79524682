//! Which provider's wire format a request speaks, told from its method and path, and the
//! per-format steps of the pipeline in [`crate::server`]: auth, the model a fault may
//! target, streaming, the answer, and the default body of a status fault.
//!
//! A new provider format is one more variant here and one module beside
//! [`crate::openai`] and [`crate::anthropic`] with the same handful of functions.

use http::{HeaderMap, Method, Response, StatusCode};
use serde_json::Value;

use crate::anthropic;
use crate::bedrock;
use crate::body::{MockBody, Reply};
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
    /// Amazon Bedrock's runtime (Converse, ConverseStream, InvokeModel embeddings).
    Bedrock,
}

impl Wire {
    pub(crate) fn classify(method: &Method, path: &str) -> Wire {
        if anthropic::handles(method, path) {
            return Wire::Anthropic;
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
            Wire::OpenAi(_) => openai::authorized(headers, key),
            Wire::Anthropic => anthropic::authorized(headers, key),
            Wire::Bedrock => bedrock::authorized(&request.method, &request.uri, headers, body, key),
        }
    }

    /// The provider's 401.
    pub(crate) fn unauthorized(self) -> Reply {
        match self {
            Wire::OpenAi(_) => openai::unauthorized(),
            Wire::Anthropic => anthropic::unauthorized(),
            Wire::Bedrock => bedrock::unauthorized(),
        }
    }

    /// The model a request is for (what faults are matched against): the body's
    /// `model` here; formats that put it in the path read it from there.
    pub(crate) fn model(self, path: &str, payload: &Payload) -> Option<String> {
        match self {
            Wire::Bedrock => bedrock::model(path),
            Wire::OpenAi(_) | Wire::Anthropic => payload
                .json()
                .and_then(|v| v.get("model"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }

    /// Whether the request asks for a streamed answer.
    pub(crate) fn is_streaming(self, path: &str, payload: &Payload) -> bool {
        match self {
            Wire::Bedrock => bedrock::is_streaming(path),
            Wire::OpenAi(endpoint) => openai::is_streaming(endpoint, payload),
            Wire::Anthropic => anthropic::is_streaming(payload),
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
            Wire::Bedrock => bedrock::respond(shared, path, headers, payload),
        }
    }

    /// The default body of a status fault, in this format's error shape.
    pub(crate) fn fault_error(self, status: StatusCode) -> Response<MockBody> {
        match self {
            Wire::OpenAi(_) => openai::fault_error(status),
            Wire::Anthropic => anthropic::fault_error(status),
            Wire::Bedrock => bedrock::fault_error(status),
        }
    }
}
