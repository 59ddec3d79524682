//! Telemetry stage: request ids and the one log line per request.
//!
//! The line carries the request id, method, path (never the query), model,
//! deployment, the key's label (`master`, its description, or `key#N`), status,
//! latency and error kind. Keys and bodies are never logged.
//! For a streamed answer the line is written when the stream ends (or the client goes
//! away), with the total duration and the time to the response headers.
//!
//! With `[[logging]]` sinks, the same drop builds a chat or embeddings request's
//! [`LogRecord`] and queues it for them (never waiting).
//!
//! The same stage records the request in `/metrics` (requests, duration, tokens and
//! cost, from a [`Record`] the handler leaves in the response) and puts the overhead
//! headers on every response: the time spent in the gateway, upstream excluded (the
//! handler leaves the upstream time in [`RouteInfo`]).

mod record;

pub use record::{cached, Record, RecordTap};

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use axum::response::Response;
use bytes::Bytes;
use http_body::Frame;
use tower::{Layer, Service};

use std::sync::Arc;

use crate::auth::Principal;
use crate::error::{ErrorKind, ErrorMessage};
use crate::logsink::{LogRecord, Sinks};
use crate::logtext::capped;
use crate::metrics::{DeploymentMetrics, Finished, Label, Metrics};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The `tracing` target of the request line (the binary writes it on a fast path).
pub const REQUEST_TARGET: &str = "liter_llm::request";

/// A count of the process's live heap bytes, when the binary was built to keep one
/// (its `heap-stats` feature, for soak tests). Set once at start-up.
static HEAP_PROBE: std::sync::OnceLock<fn() -> u64> = std::sync::OnceLock::new();

/// Registers the live-heap counter (see [`heap_bytes`]); a second call is ignored.
pub fn set_heap_probe(probe: fn() -> u64) {
    let _ = HEAP_PROBE.set(probe);
}

/// Live heap bytes, when a probe is registered.
pub fn heap_bytes() -> Option<u64> {
    HEAP_PROBE.get().map(|probe| probe())
}

/// Which model and deployment served a request; set by the handlers.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    pub model: String,
    pub deployment: String,
    /// The deployment's series in `/metrics`.
    pub metrics: Option<Arc<DeploymentMetrics>>,
    /// Attempts before the one that answered (retries and fallbacks).
    pub retries: u32,
    /// Time the request spent upstream (attempts and the waits between them), left out
    /// of the overhead headers. One extension with the rest: a response's extension
    /// map holds three without growing.
    pub upstream: std::time::Duration,
}

/// Time spent in the gateway for a response, upstream excluded, in milliseconds.
pub const OVERHEAD: HeaderName = HeaderName::from_static("x-liter-llm-overhead-duration-ms");
/// LiteLLM's name for [`OVERHEAD`], sent too.
pub const LITELLM_OVERHEAD: HeaderName = HeaderName::from_static("x-litellm-overhead-duration-ms");

/// `req_` and 32 random hex digits, written without the formatting machinery.
fn new_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = *b"req_00000000000000000000000000000000";
    let mut n = rand::random::<u128>();
    for byte in id[4..].iter_mut().rev() {
        *byte = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("req_unknown"))
}

/// Keep a client's `x-request-id` if it is short and printable, else make one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&REQUEST_ID)
        .filter(|v| v.len() <= 128 && v.as_bytes().iter().all(|b| b.is_ascii_graphic()))
        .cloned()
        .unwrap_or_else(new_id)
}

/// Everything the request line says; written when dropped.
struct LogLine {
    id: HeaderValue,
    method: Method,
    /// Only its path is logged, never the query.
    uri: Uri,
    info: Option<RouteInfo>,
    key: Option<Arc<Principal>>,
    /// USD, when cost tracking priced the answer.
    cost: Option<f64>,
    error: Option<&'static str>,
    /// The error's message, for the log sinks.
    message: Option<String>,
    status: u16,
    /// Answered from the response cache (its `x-liter-llm-cache: hit`).
    cache_hit: bool,
    start: Instant,
    /// Time to the response headers, for streams.
    headers_after: Option<std::time::Duration>,
    /// For streams: whether the body reached its end (false: the client went away).
    completed: Option<bool>,
    /// Set when metrics are on.
    metrics: Option<Observed>,
    /// The request's observations (API requests, metrics, tracing or a sink on).
    record: Option<Arc<Record>>,
    /// The request log sinks (`[[logging]]`).
    sinks: Option<Arc<Sinks>>,
}

/// What the request log records in `/metrics`.
struct Observed {
    metrics: Arc<Metrics>,
    /// The route's template (`other` for no route).
    route: Label,
}

impl LogLine {
    fn count(&self, o: &Observed) {
        let deployment = self.info.as_ref().and_then(|i| i.metrics.as_deref());
        // Labels made once (the master's, each key's): no string is copied here.
        let key = self.key.as_deref().map(|p| match p {
            Principal::Master => o.metrics.master_label(),
            Principal::Virtual(k) => &k.label,
        });
        o.metrics.finished(Finished {
            deployment: deployment.map(|d| &d.labels),
            key,
            route: &o.route,
            status: self.status,
            duration: self.start.elapsed(),
        });
        if let (Some(d), Some(info)) = (deployment, &self.info) {
            match &self.record {
                Some(r) => r.count(d, &info.deployment, self.cost),
                None => {
                    if let Some(c) = self.cost {
                        d.cost.inc_by(c);
                    }
                }
            }
        }
    }
}

impl LogLine {
    /// What the log sinks get of this request.
    fn sink_record(&mut self) -> LogRecord {
        let ms = |d: std::time::Duration| d.as_micros() as f64 / 1000.0;
        let elapsed = self.start.elapsed();
        let arrived = std::time::SystemTime::now()
            .checked_sub(elapsed)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        let info = self.info.as_ref();
        let deployment = info.map(|i| i.deployment.as_str());
        let usage = match (&self.record, deployment) {
            (Some(r), Some(d)) => r.usage(d),
            _ => None,
        };
        let (request, response) =
            self.record
                .as_ref()
                .and_then(|r| r.content())
                .map_or((None, None), |(req, resp)| {
                    let json = |b: &[u8]| serde_json::from_slice(b).ok();
                    (json(&req), resp.as_deref().and_then(json))
                });
        let key = self.key.as_deref();
        LogRecord {
            request_id: self.id.to_str().unwrap_or("").to_owned(),
            time: crate::logsink::rfc3339_ms(arrived),
            unix_ms: arrived,
            method: self.method.to_string(),
            path: capped(self.uri.path()).to_owned(),
            key_id: match key {
                Some(Principal::Virtual(k)) => Some(k.id.clone()),
                _ => None,
            },
            key_alias: key.map(|p| p.label().to_owned()),
            model: info.map(|i| i.model.clone()),
            deployment: deployment.map(str::to_owned),
            provider: deployment
                .and_then(|d| d.split_once('/'))
                .map(|(p, _)| p.to_owned()),
            input_tokens: usage.map(|(u, _)| u.prompt_tokens),
            output_tokens: usage.map(|(u, _)| u.completion_tokens),
            cost_usd: self.cost.or(usage.and_then(|(_, c)| c)),
            latency_ms: ms(elapsed),
            ttfb_ms: ms(self.headers_after.unwrap_or(elapsed)),
            status: self.status,
            error_kind: self.error,
            error_message: self.message.take(),
            cache_hit: self.cache_hit,
            retries: info.map_or(0, |i| i.retries),
            stream_completed: self.completed,
            request,
            response,
        }
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if let Some(o) = &self.metrics {
            self.count(o);
        }
        if let Some(r) = &self.record {
            let deployment = self.info.as_ref().map(|i| i.deployment.as_str());
            r.end(self.status, self.error, deployment);
        }
        // Chat and embeddings requests (those with a record), not health probes,
        // scrapes or admin calls.
        if let (Some(sinks), true) = (self.sinks.take(), self.record.is_some()) {
            sinks.send(self.sink_record());
        }
        let ms = |d: std::time::Duration| d.as_micros() as f64 / 1000.0;
        tracing::info!(
            target: REQUEST_TARGET,
            request_id = self.id.to_str().unwrap_or(""),
            method = %self.method,
            // Strings from outside, capped; the formatters quote and escape them.
            path = capped(self.uri.path()),
            model = self.info.as_ref().map(|i| capped(&i.model)),
            deployment = self.info.as_ref().map(|i| capped(&i.deployment)),
            key = self.key.as_deref().map(Principal::label),
            status = self.status,
            cost_usd = self.cost,
            latency_ms = ms(self.start.elapsed()),
            ttfb_ms = self.headers_after.map(ms),
            stream_completed = self.completed,
            error = self.error,
            "request"
        );
    }
}

/// A streamed body that carries its request's log line until it ends or is dropped.
struct LoggedBody {
    inner: Body,
    line: LogLine,
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.line.completed = Some(true);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The request-log stage: a hand-written layer (no boxed service or future per
/// request, unlike `axum::middleware::from_fn`).
#[derive(Debug, Clone, Default)]
pub struct RequestLogLayer {
    /// `None`: metrics are off.
    metrics: Option<Arc<Metrics>>,
    /// `None`: no `[[logging]]` sink.
    sinks: Option<Arc<Sinks>>,
}

impl RequestLogLayer {
    pub fn new(metrics: Option<Arc<Metrics>>, sinks: Option<Arc<Sinks>>) -> Self {
        RequestLogLayer { metrics, sinks }
    }
}

impl<S> Layer<S> for RequestLogLayer {
    type Service = RequestLog<S>;

    fn layer(&self, inner: S) -> RequestLog<S> {
        RequestLog {
            inner,
            metrics: self.metrics.clone(),
            sinks: self.sinks.clone(),
        }
    }
}

/// See [`RequestLogLayer`].
#[derive(Debug, Clone)]
pub struct RequestLog<S> {
    inner: S,
    metrics: Option<Arc<Metrics>>,
    sinks: Option<Arc<Sinks>>,
}

/// What the line needs from the request, taken before it goes down the stack.
struct Started {
    start: Instant,
    id: HeaderValue,
    method: Method,
    uri: Uri,
    /// With metrics on: the registry and the route's template.
    metrics: Option<(Arc<Metrics>, Label)>,
    sinks: Option<Arc<Sinks>>,
}

impl<S, B> Service<Request<B>> for RequestLog<S>
where
    S: Service<Request<B>, Response = Response>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = S::Error;
    type Future = LogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> LogFuture<S::Future> {
        let id = request_id(req.headers());
        // The handlers read it back (the spend ledger names requests by it).
        req.headers_mut().insert(REQUEST_ID, id.clone());
        let metrics = self.metrics.as_ref().map(|m| {
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or(crate::metrics::OTHER, MatchedPath::as_str);
            let label = m.route_label(route);
            (m.clone(), label)
        });
        let started = Started {
            start: Instant::now(),
            id,
            method: req.method().clone(),
            uri: req.uri().clone(),
            metrics,
            sinks: self.sinks.clone(),
        };
        LogFuture {
            inner: self.inner.call(req),
            started: Some(started),
        }
    }
}

/// The inner stack's future; on its response, the line is written (or, for a stream,
/// attached to the body).
pub struct LogFuture<F> {
    inner: F,
    started: Option<Started>,
}

impl<F, E> Future for LogFuture<F>
where
    F: Future<Output = Result<Response, E>> + Unpin,
{
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let resp = ready!(Pin::new(&mut self.inner).poll(cx))?;
        Poll::Ready(Ok(match self.started.take() {
            Some(started) => finish(resp, started),
            None => resp,
        }))
    }
}

fn finish(mut resp: Response, started: Started) -> Response {
    let Started {
        start,
        id,
        method,
        uri,
        metrics,
        sinks,
    } = started;
    resp.headers_mut().insert(REQUEST_ID, id.clone());
    let info = resp.extensions_mut().remove::<RouteInfo>();
    let upstream = info
        .as_ref()
        .map_or(std::time::Duration::ZERO, |i| i.upstream);
    let overhead = overhead_value(start.elapsed().saturating_sub(upstream));
    resp.headers_mut().insert(OVERHEAD, overhead.clone());
    resp.headers_mut().insert(LITELLM_OVERHEAD, overhead);
    let metrics = metrics.map(|(metrics, route)| Observed { metrics, route });
    let record = resp.extensions_mut().remove::<Arc<Record>>();
    let mut line = LogLine {
        id,
        method,
        uri,
        info,
        key: resp.extensions_mut().remove::<Arc<Principal>>(),
        cost: resp
            .extensions()
            .get::<crate::upstream::ResponseCost>()
            .map(|c| c.0),
        error: resp.extensions().get::<ErrorKind>().map(|k| k.0),
        message: resp.extensions_mut().remove::<ErrorMessage>().map(|m| m.0),
        status: resp.status().as_u16(),
        cache_hit: resp
            .headers()
            .get(crate::cache::CACHE_STATUS)
            .is_some_and(|v| v.as_bytes() == b"hit"),
        start,
        headers_after: None,
        completed: None,
        metrics,
        record,
        sinks,
    };
    let streaming = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !streaming {
        return resp; // `line` is written here
    }
    line.headers_after = Some(start.elapsed());
    line.completed = Some(false);
    line.own_request_bytes();
    resp.map(|inner| Body::new(LoggedBody { inner, line }))
}

impl LogLine {
    /// Copies, in memory of their own, of what the line took from the request head.
    /// hyper reads a request's head and body into one 8 KiB buffer and the `Uri` and
    /// header values it parses share it, so a stream's line (which lives as long as the
    /// stream) would keep that buffer allocated beside the one hyper allocates for the
    /// connection's next reads: 8 KiB more per open stream, for a few bytes.
    fn own_request_bytes(&mut self) {
        self.uri = Uri::try_from(self.uri.path()).unwrap_or_default();
        if let Ok(id) = HeaderValue::from_bytes(self.id.as_bytes()) {
            self.id = id;
        }
    }
}

/// Milliseconds with three decimals (microsecond resolution).
fn overhead_value(d: std::time::Duration) -> HeaderValue {
    let us = d.as_micros();
    let mut buf = itoa::Buffer::new();
    let mut text = String::with_capacity(16);
    text.push_str(buf.format(us / 1000));
    text.push('.');
    let frac = buf.format(1000 + us % 1000);
    text.push_str(&frac[1..]);
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::{new_id, overhead_value};

    #[test]
    fn overhead_is_milliseconds_with_three_places() {
        let v = |us| overhead_value(std::time::Duration::from_micros(us));
        assert_eq!(v(0), "0.000");
        assert_eq!(v(1_234), "1.234");
        assert_eq!(v(5_007_050), "5007.050");
    }

    #[test]
    fn ids_are_prefixed_hex_and_distinct() {
        let (a, b) = (new_id(), new_id());
        let a = a.to_str().unwrap();
        assert_eq!(a.len(), 36);
        assert!(a.starts_with("req_"));
        assert!(a[4..].bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b.to_str().unwrap());
    }
}
