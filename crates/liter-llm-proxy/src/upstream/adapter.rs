//! A translated wire: an adapter of the `liter-llm` crate (Anthropic, Gemini and
//! Vertex AI, Bedrock, Cohere) writes the provider's request from the client's OpenAI
//! body and reads answers, errors and streams back into OpenAI's shapes. A deployment
//! on Anthropic's own API also forwards a Messages client's request as it came
//! ([`NativeMessages`]).

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use bytes::Bytes;
use liter_llm::providers::adapter::{Call, Operation, StreamMeta, UpstreamRequest};
use liter_llm::providers::{embeddings, SharedAdapter};

use super::protocol::{unix_now, Hold, Job, Native, Protocol};
use super::stream::Source;
use super::translate;
use crate::error::{GatewayError, Wire};
use crate::request::{with_model, Endpoint};

/// A deployment whose provider speaks another protocol: its adapter, and, for
/// Anthropic's own API, where a Messages request is forwarded as it came.
#[derive(Debug, Clone)]
pub struct Translated(pub SharedAdapter, pub Option<NativeMessages>);

/// Where a Messages client's own request goes on an Anthropic deployment: the
/// Messages URL and the `x-api-key` header (marked sensitive).
#[derive(Debug, Clone)]
pub struct NativeMessages {
    pub uri: Uri,
    pub key: Option<HeaderValue>,
}

/// Set on an answer to `parallel_tool_calls: false` from a provider that cannot be told
/// it: the gateway kept only the first tool call.
pub const PARALLEL_TOOL_CALLS: HeaderName =
    HeaderName::from_static("x-liter-llm-parallel-tool-calls");
const FIRST_CALL_ONLY: HeaderValue = HeaderValue::from_static("first-call-only");

/// `anthropic-version` sent when the client sent none (Anthropic requires one).
const DEFAULT_ANTHROPIC_VERSION: HeaderValue = HeaderValue::from_static("2023-06-01");

impl Protocol for Translated {
    fn request(
        &self,
        job: &Job<'_>,
        _model_id: &str,
        token: Option<&str>,
    ) -> Result<UpstreamRequest, GatewayError> {
        let op = match job.endpoint {
            Endpoint::Embeddings => Operation::Embeddings,
            Endpoint::Chat if job.head.stream => Operation::ChatStream,
            Endpoint::Chat => Operation::Chat,
        };
        Ok(self.0.build(Call {
            op,
            body: job.body,
            token,
            now: unix_now(),
        })?)
    }

    fn error(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> GatewayError {
        GatewayError::from(self.0.parse_error(status.as_u16(), headers, body))
    }

    fn passes_through(&self, wire: Wire) -> bool {
        self.1.is_some() && wire == Wire::Anthropic
    }

    fn native(&self, native: &Native, model_id: &str, _metered: bool) -> Option<UpstreamRequest> {
        let target = self.1.as_ref().filter(|_| native.wire == Wire::Anthropic)?;
        let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(4);
        headers.push((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ));
        headers.extend(native.headers.iter().cloned());
        if !headers.iter().any(|(n, _)| n == "anthropic-version") {
            headers.push((
                HeaderName::from_static("anthropic-version"),
                DEFAULT_ANTHROPIC_VERSION,
            ));
        }
        if let Some(key) = &target.key {
            headers.push((HeaderName::from_static("x-api-key"), key.clone()));
        }
        Some(UpstreamRequest {
            uri: target.uri.clone(),
            headers,
            body: with_model(&native.body, &native.head, model_id),
            dropped: Vec::new(),
        })
    }

    fn answer_headers(&self, job: &Job<'_>) -> Vec<(HeaderName, HeaderValue)> {
        if job.endpoint != Endpoint::Chat || !self.0.reshape(job.body).first_tool_call_only {
            return Vec::new();
        }
        vec![(PARALLEL_TOOL_CALLS, FIRST_CALL_ONLY)]
    }

    fn stream(&self, source: Source, job: &Job<'_>, hold: Hold) -> Body {
        let translator = self.0.stream(StreamMeta {
            id: format!("chatcmpl-{:024x}", rand::random::<u128>() >> 32),
            model: job.head.model.clone(),
            created: unix_now(),
            include_usage: job.head.include_usage,
            max_event_bytes: source.max_event_bytes(),
        });
        let translator = self.0.reshape(job.body).stream(translator);
        let tap = job.tap.map(|t| t.boxed());
        translate::translated(source, translator, hold, tap, job.trace.is_some())
    }

    fn answer(&self, bytes: Bytes, job: &Job<'_>) -> Result<Bytes, GatewayError> {
        let model = &job.head.model;
        let encoded = match job.endpoint {
            Endpoint::Chat => {
                let mut c = self.0.parse_chat(&bytes, model, unix_now())?;
                self.0.reshape(job.body).completion(&mut c);
                serde_json::to_vec(&c)
            }
            Endpoint::Embeddings => {
                let mut e = self.0.parse_embeddings(&bytes, model)?;
                // Adapters answer floats; OpenAI's SDKs ask for base64 by default.
                if embeddings::wants_base64(job.body) {
                    embeddings::encode_base64(&mut e);
                }
                serde_json::to_vec(&e)
            }
        };
        encoded
            .map(Bytes::from)
            .map_err(|e| GatewayError::Internal(format!("cannot encode the answer: {e}")))
    }
}
