//! Telemetry stage: request ids and the one log line per request.
//!
//! The line carries the request id, method, path (never the query), model,
//! deployment, the key's label (`master`, its description, or `key#N`), status,
//! latency and error kind. Keys and bodies are never logged.
//! For a streamed answer the line is written when the stream ends (or the client goes
//! away), with the total duration and the time to the response headers.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use axum::response::Response;
use bytes::Bytes;
use http_body::Frame;
use tower::{Layer, Service};

use std::sync::Arc;

use crate::auth::Principal;
use crate::error::ErrorKind;
use crate::logtext::capped;

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
}

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
    status: u16,
    start: Instant,
    /// Time to the response headers, for streams.
    headers_after: Option<std::time::Duration>,
    /// For streams: whether the body reached its end (false: the client went away).
    completed: Option<bool>,
}

impl Drop for LogLine {
    fn drop(&mut self) {
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
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestLogLayer;

impl<S> Layer<S> for RequestLogLayer {
    type Service = RequestLog<S>;

    fn layer(&self, inner: S) -> RequestLog<S> {
        RequestLog { inner }
    }
}

/// See [`RequestLogLayer`].
#[derive(Debug, Clone)]
pub struct RequestLog<S> {
    inner: S,
}

/// What the line needs from the request, taken before it goes down the stack.
struct Started {
    start: Instant,
    id: HeaderValue,
    method: Method,
    uri: Uri,
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
        let started = Started {
            start: Instant::now(),
            id,
            method: req.method().clone(),
            uri: req.uri().clone(),
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
    } = started;
    resp.headers_mut().insert(REQUEST_ID, id.clone());
    let mut line = LogLine {
        id,
        method,
        uri,
        info: resp.extensions_mut().remove::<RouteInfo>(),
        key: resp.extensions_mut().remove::<Arc<Principal>>(),
        cost: resp
            .extensions()
            .get::<crate::upstream::ResponseCost>()
            .map(|c| c.0),
        error: resp.extensions().get::<ErrorKind>().map(|k| k.0),
        status: resp.status().as_u16(),
        start,
        headers_after: None,
        completed: None,
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
    resp.map(|inner| Body::new(LoggedBody { inner, line }))
}

#[cfg(test)]
mod tests {
    use super::new_id;

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
