//! The dispatcher: one attempt of one request on one deployment, from the upstream
//! request to the client's response. It owns the attempt's time limits (the
//! deployment's `timeout_secs`, a stream's first-chunk `stream_timeout_secs`, the
//! request's deadline), commits a stream only once its first chunk has arrived (until
//! then a retry is safe), reads the answer's usage and prices it. Which wire the
//! deployment speaks is its [`Protocol`]'s business; the in-process mock is the one
//! deployment without a [`Target`].

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use liter_llm::types::Usage;
use tokio::time::Instant;

use super::protocol::{Hold, Job, NativeAnswer, Protocol};
use super::stream::{Source, SourceOf, Tapped};
use super::target::Target;
use super::{json_response, read_body, retry_after, sse_response, Upstream};
use crate::config::Deployment;
use crate::error::{GatewayError, Wire};
use crate::otel::Attempt;
use crate::request::Endpoint;

/// A successful attempt.
pub struct Answer {
    pub response: Response<Body>,
    /// Time to the first stream chunk, or to the whole answer (`None` from the
    /// in-process mock, which latency-based routing does not weigh).
    pub latency: Option<Duration>,
    /// Tokens the provider reported for a whole answer (for the deployment's tpm).
    pub tokens: Option<u64>,
    /// For a stream from a network deployment: the time to its first chunk.
    pub first_chunk: Option<Duration>,
}

/// A failed attempt, with what the router needs to decide what comes next.
#[derive(Debug)]
pub struct Failure {
    pub err: GatewayError,
    /// The upstream's `Retry-After`.
    pub retry_after: Option<Duration>,
}

impl Failure {
    fn new(err: GatewayError) -> Self {
        Failure {
            err,
            retry_after: None,
        }
    }

    /// Worth another attempt: a 429, a 5xx, a timeout or a connection error.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.err,
            GatewayError::Timeout(_)
                | GatewayError::BadGateway(_)
                | GatewayError::RateLimited { .. }
        ) || matches!(&self.err, GatewayError::Upstream { status, .. }
            if *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error())
    }

    /// `context_length_exceeded` in an OpenAI-shaped error body.
    pub fn is_context_exceeded(&self) -> bool {
        match &self.err {
            GatewayError::Upstream { status, body, .. } if *status == StatusCode::BAD_REQUEST => {
                memchr::memmem::find(body, b"context_length_exceeded").is_some()
            }
            _ => false,
        }
    }
}

impl From<GatewayError> for Failure {
    fn from(err: GatewayError) -> Self {
        Failure::new(err)
    }
}

/// The response cost in USD, as a header value and for the request log.
pub const RESPONSE_COST: HeaderName = HeaderName::from_static("x-liter-llm-response-cost");
/// LiteLLM's name for the same header, for tools that read it.
pub const LITELLM_RESPONSE_COST: HeaderName = HeaderName::from_static("x-litellm-response-cost");

/// The parameters a translated provider could not honour and `drop_params` dropped,
/// comma-separated.
pub const DROPPED_PARAMS: HeaderName = HeaderName::from_static("x-liter-llm-dropped-params");

/// The cost of a finished answer, put in the response's extensions for the request log.
#[derive(Debug, Clone, Copy)]
pub struct ResponseCost(pub f64);

fn timed_out() -> GatewayError {
    GatewayError::Timeout("the request ran past server.request_timeout_secs".into())
}

/// One attempt of `job` on deployment `d` (`target`: `None` for the in-process mock).
/// `hold` is kept by a stream's body until the stream ends, and dropped here otherwise.
/// A failure's message and body are passed through the deployment's scrub: they may
/// quote what the upstream said, and the upstream may echo the gateway's key.
pub async fn dispatch<G: Send + 'static>(
    upstream: &Upstream,
    d: &Deployment,
    target: Option<&Target>,
    job: &Job<'_>,
    hold: G,
) -> Result<Answer, Failure> {
    let start = Instant::now();
    let Some(target) = target else {
        let answer = tokio::time::timeout_at(job.deadline, super::mock::answer(d, job))
            .await
            .unwrap_or_else(|_| Err(timed_out()))?;
        return Ok(Answer {
            response: answer,
            latency: None,
            tokens: None,
            first_chunk: None,
        });
    };
    let mut span = None;
    let result = attempt(upstream, d, target, job, hold, start, &mut span)
        .await
        .map_err(|f| Failure {
            err: target.scrub.error(f.err),
            retry_after: f.retry_after,
        });
    if let Some(s) = span {
        match &result {
            Ok(a) => s.end(a.response.status().as_u16(), None),
            Err(f) => s.end(f.err.status().as_u16(), Some(f.err.kind())),
        }
    }
    result
}

/// [`dispatch`] on a network deployment.
async fn attempt<G: Send + 'static>(
    upstream: &Upstream,
    d: &Deployment,
    target: &Target,
    job: &Job<'_>,
    hold: G,
    start: Instant,
    span: &mut Option<Attempt>,
) -> Result<Answer, Failure> {
    // Token-authenticated providers (Vertex AI): a cached token, or one fetched now.
    let token = match &target.token {
        Some(cache) => Some(cache.get(upstream, &target.name, job.deadline).await?),
        None => None,
    };
    // The client's own request, when the deployment speaks its wire; else the
    // canonical one, translated by the deployment's protocol.
    let native = job.native.and_then(|n| {
        let out = target.protocol.native(n, &d.model_id, job.tap.is_some())?;
        Some((n.wire, out))
    });
    if native.is_none() {
        if let Some(split) = super::fanout::split(d, job) {
            return super::fanout::answer(upstream, d, target, job, token.as_deref(), split, start)
                .await;
        }
    }
    let (wire, mut out) = match native {
        Some((wire, out)) => (Some(wire), out),
        None => (
            None,
            target
                .protocol
                .request(job, &d.model_id, token.as_deref())?,
        ),
    };
    let dropped = dropped_header(std::mem::take(&mut out.dropped));
    *span = job.trace.map(|t| {
        let provider = d.provider.name();
        t.attempt(provider, &d.model_id, Some(&out.uri), &mut out.headers)
    });
    let streaming = job.head.stream && job.endpoint == Endpoint::Chat;
    let attempt_deadline = (start + target.timeout).min(job.deadline);
    let first_byte_deadline = match d.stream_timeout {
        Some(t) if streaming => (start + t).min(job.deadline),
        _ => attempt_deadline,
    };
    let resp = upstream
        .send_once(&target.name, out, first_byte_deadline)
        .await?;
    let (parts, incoming) = resp.into_parts();
    let limit = target.limits.max_response_bytes;
    if !parts.status.is_success() {
        return Err(refusal(target, &parts, incoming, attempt_deadline).await);
    }
    let mut answer = if streaming {
        let first = first_chunk(incoming, &target.name, first_byte_deadline).await?;
        let latency = start.elapsed();
        if let (Some(s), Some(t)) = (span.as_ref(), job.trace) {
            crate::otel::set_both(s, t, |a| {
                a.f64("gen_ai.server.time_to_first_token", latency.as_secs_f64());
            });
        }
        let source = Source::new(first.0, first.1, source_of(target), job.deadline);
        let body = stream_body(target.protocol.as_ref(), source, job, Box::new(hold), wire);
        Answer {
            response: sse_response(body),
            latency: Some(latency),
            tokens: None,
            first_chunk: Some(latency),
        }
    } else {
        let bytes = read_body(incoming, &target.name, attempt_deadline, limit).await?;
        let latency = start.elapsed();
        let bytes = match wire {
            Some(_) => bytes,
            None => target.protocol.answer(bytes, job)?,
        };
        whole_answer(d, job, bytes, latency, span.as_ref(), wire)?
    };
    if let Some(v) = dropped {
        answer.response.headers_mut().insert(DROPPED_PARAMS, v);
    }
    if wire.is_none() {
        for (name, value) in target.protocol.answer_headers(job) {
            answer.response.headers_mut().insert(name, value);
        }
    }
    if wire.is_some() {
        answer.response.extensions_mut().insert(NativeAnswer);
    }
    Ok(answer)
}

/// An upstream's error answer, read (within `deadline`) by the deployment's protocol.
pub(super) async fn refusal(
    target: &Target,
    parts: &axum::http::response::Parts,
    incoming: hyper::body::Incoming,
    deadline: Instant,
) -> Failure {
    let retry_after = retry_after(&parts.headers);
    let limit = target.limits.max_response_bytes;
    let err = match read_body(incoming, &target.name, deadline, limit).await {
        Ok(bytes) => target.protocol.error(parts.status, &parts.headers, &bytes),
        Err(e) => e,
    };
    Failure { err, retry_after }
}

/// The client's stream body: relayed as it comes in the client's `wire` when the
/// request went as it came, else the protocol's (translated to OpenAI's chunks).
fn stream_body(
    protocol: &dyn Protocol,
    source: Source,
    job: &Job<'_>,
    hold: Hold,
    wire: Option<Wire>,
) -> Body {
    match wire {
        Some(wire) => {
            // A legacy completion's usage chunk, asked for the meter only, is hidden.
            let asked = job.native.is_none_or(|n| n.head.include_usage);
            let tapped = job.tap.map(|t| Tapped {
                tap: t.boxed(),
                hide_usage: wire == Wire::OpenAi && !asked,
                facts: job.trace.is_some(),
            });
            super::stream::relay(source, hold, tapped, wire)
        }
        None => protocol.stream(source, job, hold),
    }
}

/// The usage of a whole answer: OpenAI's, or in the client's `wire` for an answer
/// passed on as it came.
fn answer_usage(bytes: &[u8], wire: Option<Wire>) -> Option<Usage> {
    match wire {
        Some(Wire::Anthropic) => {
            super::usage::reported_as::<liter_llm::providers::anthropic::AnthropicUsage>(bytes)
                .map(|u| u.to_usage())
        }
        Some(Wire::OpenAi) | None => super::usage::reported(bytes).map(Usage::from),
    }
}

/// What a stream's [`Source`] takes from its deployment.
fn source_of(target: &Target) -> SourceOf {
    SourceOf {
        name: target.name.clone(),
        idle: target.timeout,
        scrub: target.scrub.clone(),
        max_event_bytes: target.limits.max_event_bytes,
    }
}

/// Waits for a stream's first chunk: committed only once it is here.
async fn first_chunk(
    mut incoming: hyper::body::Incoming,
    name: &str,
    deadline: Instant,
) -> Result<(hyper::body::Incoming, Bytes), GatewayError> {
    match tokio::time::timeout_at(deadline, incoming.frame()).await {
        Err(_) => Err(GatewayError::Timeout(format!(
            "the upstream for model {name:?} sent no stream data in time"
        ))),
        Ok(None) => Err(GatewayError::BadGateway(format!(
            "the upstream for model {name:?} ended the stream before any data"
        ))),
        Ok(Some(Err(e))) => Err(GatewayError::BadGateway(format!(
            "the upstream for model {name:?} broke off the stream: {}",
            super::error_chain(&e)
        ))),
        Ok(Some(Ok(frame))) => Ok((incoming, frame.into_data().unwrap_or_default())),
    }
}

/// A whole answer in OpenAI's shape (or as it came, in the client's `wire`), its
/// usage told to the tap and, with cost tracking, priced in the cost headers.
pub(super) fn whole_answer(
    d: &Deployment,
    job: &Job<'_>,
    bytes: Bytes,
    latency: Duration,
    span: Option<&Attempt>,
    wire: Option<Wire>,
) -> Result<Answer, GatewayError> {
    if let (Some(s), Some(t)) = (span, job.trace) {
        crate::otel::set_both(s, t, |a| {
            crate::otel::answer_attributes(a, &bytes, t.content());
        });
    }
    if let Some(tap) = job.tap {
        tap.answer(&bytes);
    }
    let mut tokens = None;
    let mut cost = None;
    if d.tpm.is_some() || job.prices.is_some() || job.tap.is_some() {
        if let Some(u) = answer_usage(&bytes, wire) {
            tokens = Some(u.total_tokens);
            cost = job.prices.map(|p| p.cost(&d.provider_model, &u));
            if let Some(tap) = job.tap {
                tap.report(u, cost);
            }
        }
    }
    let mut response = json_response(bytes);
    if let Some(c) = cost {
        let v = cost_value(c);
        response.headers_mut().insert(RESPONSE_COST, v.clone());
        response.headers_mut().insert(LITELLM_RESPONSE_COST, v);
        response.extensions_mut().insert(ResponseCost(c));
    }
    Ok(Answer {
        response,
        latency: Some(latency),
        tokens,
        first_chunk: None,
    })
}

pub(super) fn dropped_header(dropped: Vec<String>) -> Option<HeaderValue> {
    if dropped.is_empty() {
        return None;
    }
    HeaderValue::from_str(&dropped.join(", ")).ok()
}

/// `usd` in decimal with ten places, as `format!("{usd:.10}")` writes it but without
/// the float formatter (the last place may round the other way in rare ties).
fn cost_value(usd: f64) -> HeaderValue {
    /// 10^10: units of the tenth decimal place in a dollar.
    const SCALE: f64 = 1e10;
    let units = (usd * SCALE).round();
    if !(0.0..1e18).contains(&units) {
        // Negative, huge or not a number: no price does that, but say it as it is.
        return HeaderValue::from_str(&format!("{usd:.10}"))
            .unwrap_or(HeaderValue::from_static("0"));
    }
    let mut n = units as u64;
    let mut text = [0u8; 24];
    let mut at = text.len();
    let mut places = 0;
    while n > 0 || places <= 10 {
        if places == 10 {
            at -= 1;
            text[at] = b'.';
        }
        at -= 1;
        text[at] = b'0' + (n % 10) as u8;
        n /= 10;
        places += 1;
    }
    HeaderValue::from_bytes(&text[at..]).unwrap_or(HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cost_values_read_as_the_float_formatter_writes_them() {
        for usd in [
            0.0,
            1e-10,
            4e-10,
            6e-10,
            0.000_001_23,
            0.5,
            1.0,
            12.345_678_901_2,
            99_999.25,
            1.5e-7 * 5.0 + 6e-7 * 6.0,
        ] {
            let ours = cost_value(usd);
            assert_eq!(ours.to_str().unwrap(), format!("{usd:.10}"), "{usd}");
        }
        assert_eq!(cost_value(-1.0).to_str().unwrap(), "-1.0000000000");
        assert_eq!(cost_value(f64::NAN).to_str().unwrap(), "NaN");
    }
}
