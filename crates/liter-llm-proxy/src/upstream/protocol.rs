//! The vocabulary every wire kind shares: the [`Job`] an attempt carries, and the
//! [`Protocol`] trait each wire implements (`openai`, `adapter`; the in-process mock
//! answers without one). A leaf of `upstream/`: it imports none of its siblings but
//! `stream`.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use bytes::Bytes;
use liter_llm::providers::adapter::UpstreamRequest;
use tokio::time::Instant;

use super::stream::{Source, UsageTap};
use crate::error::{GatewayError, Wire};
use crate::otel::Trace;
use crate::pricing::Prices;
use crate::request::{Endpoint, Head};

/// What the dispatcher needs to know of the request.
pub struct Job<'a> {
    pub body: &'a Bytes,
    pub head: &'a Head,
    pub endpoint: Endpoint,
    pub deadline: Instant,
    /// Told the usage the provider reports (the governance stage's meter).
    pub tap: Option<&'a dyn UsageTap>,
    /// Set when cost tracking is on: answers are priced and carry the cost header.
    pub prices: Option<&'a Prices>,
    /// The request's span, when tracing is on: each attempt gets a child span.
    pub trace: Option<&'a Trace>,
    /// The client's own request when it speaks another wire than OpenAI's (`None` for
    /// chat and embeddings): a deployment whose wire is the same forwards it instead of
    /// `body`, which is then the canonical translation of it.
    pub native: Option<&'a Native>,
    /// The prompt's estimated tokens, when a deployment has a context window
    /// (`max_input_tokens`) to check it against.
    pub prompt_tokens: Option<u64>,
}

/// A client's request in its own wire (a front door's), as it came. Of the OpenAI
/// wire, the one request forwarded this way is a legacy completion (`/completions`):
/// chat goes as the canonical body itself, and the Responses door has no pass-through.
#[derive(Debug, Clone)]
pub struct Native {
    pub wire: Wire,
    pub body: Bytes,
    /// The head of `body` (where its `model` sits).
    pub head: Head,
    /// Headers of the client's protocol to pass on (`anthropic-version`,
    /// `anthropic-beta`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Put on a response that is already in the client's wire (a [`Native`] request
/// forwarded to a deployment of the same wire): the front door passes it on as it is.
#[derive(Debug, Clone, Copy)]
pub struct NativeAnswer;

/// Headers the dispatcher may add to a request after its protocol wrote it
/// (`traceparent`, `tracestate`).
const ADDED_HEADERS: usize = 2;

/// A request's headers, starting with `first`, with room for those the dispatcher adds
/// (so adding them does not move the list).
pub fn with_room(first: &[(HeaderName, HeaderValue)]) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::with_capacity(first.len() + ADDED_HEADERS);
    headers.extend_from_slice(first);
    headers
}

/// Kept alive while a stream runs (the router's in-flight slot), dropped at its end.
pub type Hold = Box<dyn Send + 'static>;

/// One wire protocol: how a request is written for it and how its answers are read.
/// The dispatcher calls these in order and never asks which protocol it has.
pub trait Protocol: Send + Sync + std::fmt::Debug {
    /// The complete upstream request for `job`, sent as `model_id`.
    fn request(
        &self,
        job: &Job<'_>,
        model_id: &str,
        token: Option<&str>,
    ) -> Result<UpstreamRequest, GatewayError>;
    /// A non-2xx answer as the client's error.
    fn error(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> GatewayError;
    /// The client's SSE body for a stream whose first chunk has arrived; `hold` is
    /// dropped when the stream ends.
    fn stream(&self, source: Source, job: &Job<'_>, hold: Hold) -> Body;
    /// A whole non-streamed answer, in OpenAI's shape.
    fn answer(&self, bytes: Bytes, job: &Job<'_>) -> Result<Bytes, GatewayError>;
    /// Headers the client's answer carries about how it was served (a translated
    /// provider that kept only the first tool call says so).
    fn answer_headers(&self, job: &Job<'_>) -> Vec<(HeaderName, HeaderValue)> {
        let _ = job;
        Vec::new()
    }
    /// The upstream request forwarding the client's own request as it came (`model`
    /// rewritten to `model_id`), when this wire is the client's; `None` otherwise. Its
    /// answers are passed on as they are, errors read by [`Protocol::error`].
    /// `metered`: the gateway reads the answer's usage (a stream must report it).
    fn native(&self, native: &Native, model_id: &str, metered: bool) -> Option<UpstreamRequest> {
        let _ = (native, model_id, metered);
        None
    }

    /// Whether [`Protocol::native`] takes every request of `wire` (so a front door of
    /// that wire need not build the canonical request for this deployment).
    fn passes_through(&self, wire: Wire) -> bool {
        let _ = wire;
        false
    }
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
