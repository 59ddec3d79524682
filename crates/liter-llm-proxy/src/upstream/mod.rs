//! The upstream side: the one place that talks HTTP to providers.
//!
//! - [`dispatch`]: one attempt on one deployment, from the request to the client's
//!   response, with its time limits; the router (`routing::execute`) decides on
//!   retries with what it returns and the helpers here (backoff, `Retry-After`).
//! - [`target`]: where each deployment's requests go, computed once at start-up, and
//!   the [`Protocol`] its wire speaks (`protocol`, with the [`Job`] an attempt
//!   carries); each wire kind owns its handling:
//!   [`openai`] forwards the client's bytes, [`adapter`] translates both ways, [`mock`]
//!   answers in-process.
//! - [`fanout`]: `n` > 1 sent as n requests on a deployment with `fan_out_n`.
//! - [`stream`] and [`translate`]: relaying and translating SSE; [`usage`]: reading the
//!   usage of an answer; [`token`]: short-lived access tokens (Vertex AI); [`scrub`]:
//!   keeping a deployment's secrets out of the upstream text passed on.
//!
//! Uses only `request`, `pricing`, `config` and `error`; the stages above hand it what
//! it needs (a usage tap, a guard held while a stream runs).

pub mod adapter;
pub mod dispatch;
pub mod fanout;
pub mod mock;
pub mod openai;
pub mod protocol;
pub mod scrub;
pub mod stream;
pub mod target;
pub mod token;
pub mod translate;
pub mod usage;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use liter_llm::providers::adapter::UpstreamRequest;
use rand::Rng;
use tokio::time::Instant;

use crate::error::GatewayError;
pub use dispatch::{dispatch, Answer, Failure, ResponseCost};
pub use protocol::{Job, Native, NativeAnswer, Protocol};
pub use scrub::Scrub;
pub use stream::{StreamFacts, UsageTap};
pub use target::{ReadLimits, Target, TargetError};

/// The HTTP client every attempt goes through.
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// An upstream connection unused this long is closed.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle upstream connections kept per host (httpx, the OpenAI Python SDK's client, keeps
/// 20); a burst's extra connections close when it ends, so a peak's connections do not
/// stay resident (each idle one holds its buffers and task).
pub const POOL_MAX_IDLE_PER_HOST: usize = 32;

/// Base of the exponential backoff between retries.
const BACKOFF_BASE: Duration = Duration::from_millis(50);
/// No single wait between retries is longer than this.
const BACKOFF_CAP: Duration = Duration::from_secs(8);
/// A provider's `Retry-After` is honoured up to this long (as a wait before a retry
/// and as a deployment's cooldown): a misbehaving upstream's huge value must not take
/// a deployment out for an hour unnoticed. After it one trial request goes through; a
/// provider that still answers 429 with `Retry-After` cools the deployment down again.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(64);

impl Default for Upstream {
    fn default() -> Self {
        Self::new()
    }
}

impl Upstream {
    pub fn new() -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_keepalive(Some(Duration::from_secs(60)));
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        // The idle timeout needs the timer to be enforced: without it, every connection
        // a burst opened stays open for good (found by bench/soak.py).
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .build(tls);
        Self { client }
    }

    fn build(out: UpstreamRequest) -> Request<Full<Bytes>> {
        // The header map is made at its final size: growing it rehashes every header.
        let mut headers = HeaderMap::with_capacity(out.headers.len() + 2);
        for (name, value) in out.headers {
            headers.append(name, value);
        }
        if !headers.contains_key(header::CONTENT_TYPE) {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        if !headers.contains_key(header::ACCEPT) {
            headers.insert(
                header::ACCEPT,
                HeaderValue::from_static("application/json, text/event-stream"),
            );
        }
        let mut req = Request::new(Full::new(out.body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = out.uri;
        *req.headers_mut() = headers;
        req
    }

    /// One attempt: send and wait for the response headers until `deadline`.
    /// Retries, fallbacks and cooldowns are the router's (`routing::execute`).
    pub async fn send_once(
        &self,
        name: &str,
        out: UpstreamRequest,
        deadline: Instant,
    ) -> Result<Response<Incoming>, GatewayError> {
        let req = Self::build(out);
        match tokio::time::timeout_at(deadline, self.client.request(req)).await {
            Err(_) => Err(GatewayError::Timeout(format!(
                "the upstream for model {name:?} did not answer in time"
            ))),
            Ok(Err(e)) => Err(GatewayError::BadGateway(format!(
                "could not reach the upstream for model {name:?}: {}",
                error_chain(&e)
            ))),
            Ok(Ok(resp)) => Ok(resp),
        }
    }
}

/// Full-jitter exponential backoff for the given (0-based) attempt.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_CAP);
    let millis =
        rand::rng().random_range(ceiling.as_millis() as u64 / 2..=ceiling.as_millis() as u64);
    Duration::from_millis(millis)
}

/// `Retry-After` in seconds, at most [`RETRY_AFTER_CAP`] (the HTTP-date form is
/// treated as absent).
pub(crate) fn retry_after(headers: &axum::http::HeaderMap) -> Option<Duration> {
    let secs: f64 = headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // Callers never wait past their deadline anyway.
    let cap = RETRY_AFTER_CAP.as_secs_f64();
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(cap)))
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Read a whole upstream body of at most `limit` bytes (`server.max_response_bytes`)
/// before `deadline`. A longer one is a 502 naming the limit, as soon as its announced
/// length or the bytes read so far say so.
pub async fn read_body(
    body: Incoming,
    name: &str,
    deadline: Instant,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    let too_large = || {
        GatewayError::BadGateway(format!(
            "the answer of the upstream for model {name:?} is larger than server.max_response_bytes ({limit} bytes)"
        ))
    };
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout_at(deadline, limited.collect()).await {
        Err(_) => Err(GatewayError::Timeout(format!(
            "the upstream for model {name:?} did not finish its answer in time"
        ))),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(GatewayError::BadGateway(format!(
            "the upstream for model {name:?} broke off its answer: {}",
            error_chain(e.as_ref())
        ))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// A finished JSON answer from upstream, passed through as bytes.
pub fn json_response(body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    // Room for what later stages add (request id, answering model and deployment, rate
    // limit, cost), so the map is not regrown per request.
    *resp.headers_mut() = axum::http::HeaderMap::with_capacity(16);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A response carrying an SSE body.
pub fn sse_response(body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_after_of(value: &str) -> Option<Duration> {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        retry_after(&headers)
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped_at_64() {
        assert_eq!(retry_after_of("2"), Some(Duration::from_secs(2)));
        assert_eq!(retry_after_of("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(retry_after_of("64"), Some(Duration::from_secs(64)));
        assert_eq!(retry_after_of("120"), Some(Duration::from_secs(64)));
        assert_eq!(retry_after_of("86400"), Some(Duration::from_secs(64)));
        assert_eq!(retry_after_of("-1"), None);
        assert_eq!(retry_after_of("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert!(backoff(0) <= BACKOFF_BASE);
        assert!(backoff(3) >= BACKOFF_BASE * 4);
        assert!(backoff(30) <= BACKOFF_CAP);
    }
}
