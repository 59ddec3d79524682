//! A translated wire: an adapter of the `liter-llm` crate (Anthropic, Gemini and
//! Vertex AI, Bedrock, Cohere) writes the provider's request from the client's OpenAI
//! body and reads answers, errors and streams back into OpenAI's shapes.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use liter_llm::providers::adapter::{Call, Operation, StreamMeta, UpstreamRequest};
use liter_llm::providers::{embeddings, SharedAdapter};

use super::protocol::{unix_now, Hold, Job, Protocol};
use super::stream::Source;
use super::translate;
use crate::error::GatewayError;
use crate::request::Endpoint;

/// A deployment whose provider speaks another protocol.
#[derive(Debug, Clone)]
pub struct Translated(pub SharedAdapter);

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

    fn stream(&self, source: Source, job: &Job<'_>, hold: Hold) -> Body {
        let translator = self.0.stream(StreamMeta {
            id: format!("chatcmpl-{:024x}", rand::random::<u128>() >> 32),
            model: job.head.model.clone(),
            created: unix_now(),
            include_usage: job.head.include_usage,
            max_event_bytes: source.max_event_bytes(),
        });
        translate::translated(source, translator, hold, job.tap.map(|t| t.boxed()))
    }

    fn answer(&self, bytes: Bytes, job: &Job<'_>) -> Result<Bytes, GatewayError> {
        let model = &job.head.model;
        let encoded = match job.endpoint {
            Endpoint::Chat => self
                .0
                .parse_chat(&bytes, model, unix_now())
                .map(|c| serde_json::to_vec(&c))?,
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
