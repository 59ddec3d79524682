//! The in-process wire of the built-in `mock/` provider: the answer is made here, with
//! no network.

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::Response;
use bytes::Bytes;
use liter_llm::providers::mock;
use liter_llm::types::{ChatCompletionRequest, EmbeddingRequest};

use super::protocol::Job;
use super::{json_response, sse_response};
use crate::config::Deployment;
use crate::error::GatewayError;
use crate::request::Endpoint;

fn invalid(e: serde_json::Error) -> GatewayError {
    GatewayError::bad_request(format!("invalid request: {e}"))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Bytes, GatewayError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| GatewayError::Internal(format!("could not encode the mock answer: {e}")))
}

pub async fn answer(d: &Deployment, job: &Job<'_>) -> Result<Response<Body>, GatewayError> {
    let (body, tap) = (&job.body[..], job.tap);
    if let Some(latency) = d.mock_latency {
        tokio::time::sleep(latency).await;
    }
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| t.as_secs());
    let id = format!("chatcmpl-mock-{created:x}{:08x}", rand::random::<u32>());
    match job.endpoint {
        Endpoint::Embeddings => {
            let mut req: EmbeddingRequest = serde_json::from_slice(body).map_err(invalid)?;
            req.model = d.model_id.clone();
            let answer = mock::embeddings(&req);
            if let Some(t) = tap {
                let u = &answer.usage;
                t.report(liter_llm::types::Usage::new(u.prompt_tokens, 0), None);
            }
            Ok(json_response(to_json(&answer)?))
        }
        Endpoint::Chat => {
            let mut req: ChatCompletionRequest = serde_json::from_slice(body).map_err(invalid)?;
            req.model = d.model_id.clone();
            let whole = mock::chat(&req, &id, created);
            if let (Some(t), Some(u)) = (tap, whole.usage) {
                t.report(u, None);
            }
            if !job.head.stream {
                return Ok(json_response(to_json(&whole)?));
            }
            if let (Some(t), Some(_)) = (tap, job.trace) {
                t.facts(&super::stream::StreamFacts {
                    id: Some(whole.id.clone()),
                    model: Some(whole.model.clone()),
                    finish_reasons: whole
                        .choices
                        .iter()
                        .filter_map(|c| c.finish_reason.clone())
                        .collect(),
                });
            }
            let mut events = Vec::new();
            for chunk in mock::chat_chunks(&req, &id, created) {
                let mut event = b"data: ".to_vec();
                event.extend_from_slice(&to_json(&chunk)?);
                event.extend_from_slice(b"\n\n");
                events.push(Ok::<_, Infallible>(Bytes::from(event)));
            }
            events.push(Ok(Bytes::from_static(b"data: [DONE]\n\n")));
            Ok(sse_response(Body::from_stream(futures_util::stream::iter(
                events,
            ))))
        }
    }
}
