//! The span queue and the thread that exports it.
//!
//! A span that ends goes into a bounded queue under a lock held for a push; a span
//! that finds [`QUEUE`] waiting is dropped and counted. The export thread wakes when a
//! batch is full, when a flush is asked for, or every [`DELAY`], and POSTs the queue
//! in OTLP/HTTP protobuf requests of at most [`BATCH`] spans on its own single-threaded
//! runtime: a slow or absent collector holds up that thread only. A request that fails
//! (no connection, a non-2xx status, past [`EXPORT_TIMEOUT`]) loses its spans, counted.

use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderName, HeaderValue, Method, Request, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use secrecy::ExposeSecret;

use super::wire;
use super::TracingError;
use crate::config::TracingSpec;
use crate::metrics::TraceMetrics;

/// Spans waiting for export at most; one more is dropped (and counted).
pub const QUEUE: usize = 2048;
/// Bytes of spans waiting for export at most (spans with content can be large); a
/// span that would pass it is dropped (and counted).
const QUEUE_BYTES: usize = 32 * 1024 * 1024;
/// Spans per export request.
const BATCH: usize = 512;
/// How long spans wait for a batch to fill before they are sent anyway.
const DELAY: Duration = Duration::from_millis(500);
/// How long one export may take before it counts as failed.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a collector's answer read (it is only drained, for the connection).
const ANSWER_CAP: usize = 64 * 1024;

#[derive(Default)]
struct State {
    /// Each an encoded OTLP `Span`.
    spans: Vec<Vec<u8>>,
    /// Their bytes.
    bytes: usize,
    /// Callers of [`Exporter::flush`] waiting for the queue to be sent.
    flushes: Vec<mpsc::Sender<()>>,
    closing: bool,
}

/// The queue the spans end into.
pub(super) struct Queue {
    state: Mutex<State>,
    wake: Condvar,
    counters: TraceMetrics,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue an ended span, or drop and count it when the queue is full.
    pub(super) fn push(&self, span: Vec<u8>) {
        let mut st = self.lock();
        if st.spans.len() >= QUEUE || st.bytes + span.len() > QUEUE_BYTES {
            drop(st);
            self.counters.dropped.inc();
            return;
        }
        st.bytes += span.len();
        st.spans.push(span);
        // Waking the thread costs a system call: only for a full batch.
        if st.spans.len() == BATCH {
            self.wake.notify_one();
        }
    }
}

/// The queue and its export thread; dropping it sends what is queued and stops.
pub(super) struct Exporter {
    pub(super) queue: Arc<Queue>,
    thread: Option<JoinHandle<()>>,
}

/// Where and how spans are sent.
struct Collector {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    service: String,
}

impl Exporter {
    pub(super) fn start(spec: &TracingSpec, counters: TraceMetrics) -> Result<Self, TracingError> {
        let uri: Uri = spec
            .endpoint
            .parse()
            .map_err(|_| TracingError("the OTLP traces endpoint is not a valid URL".into()))?;
        let mut headers = vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        )];
        for (name, value) in &spec.headers {
            let name = HeaderName::try_from(name.as_str()).map_err(|_| {
                TracingError(format!(
                    "invalid OTLP header name {:?}",
                    crate::logtext::capped(name)
                ))
            })?;
            // The error names the header, never its value (often a backend's API key).
            let mut value = HeaderValue::try_from(value.expose_secret())
                .map_err(|_| TracingError(format!("invalid value for OTLP header {name}")))?;
            value.set_sensitive(true);
            headers.push((name, value));
        }
        let collector = Collector {
            client: client(),
            uri,
            headers,
            service: spec.service_name.clone(),
        };
        let queue = Arc::new(Queue {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            counters,
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TracingError(format!("cannot start the export thread: {e}")))?;
        let q = queue.clone();
        let thread = std::thread::Builder::new()
            .name("liter-llm-otlp".into())
            .spawn(move || run(&q, &collector, &runtime))
            .map_err(|e| TracingError(format!("cannot start the export thread: {e}")))?;
        Ok(Exporter {
            queue,
            thread: Some(thread),
        })
    }

    /// Sends what is queued and waits (bounded) for the collector to have it.
    pub(super) fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        self.queue.lock().flushes.push(tx);
        self.queue.wake.notify_one();
        let _ = rx.recv_timeout(EXPORT_TIMEOUT * 2);
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.queue.lock().closing = true;
        self.queue.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The HTTP client: TLS checked against the system's roots (`SSL_CERT_FILE` and
/// `SSL_CERT_DIR` honoured), or the web's when the system has none.
fn client() -> Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>> {
    crate::objstore::install_crypto_provider();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let tls = match builder.with_native_roots() {
        Ok(b) => b,
        Err(_) => hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots(),
    }
    .https_or_http()
    .enable_http1()
    .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(tls)
}

/// The export thread: wait for a batch, a flush, shutdown or [`DELAY`]; send; repeat.
fn run(queue: &Queue, collector: &Collector, runtime: &tokio::runtime::Runtime) {
    loop {
        let (spans, flushes, closing) = {
            let mut st = queue.lock();
            let deadline = Instant::now() + DELAY;
            while st.spans.len() < BATCH && st.flushes.is_empty() && !st.closing {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                st = queue
                    .wake
                    .wait_timeout(st, left)
                    .map_or_else(|p| p.into_inner().0, |(g, _)| g);
            }
            st.bytes = 0;
            (
                std::mem::take(&mut st.spans),
                std::mem::take(&mut st.flushes),
                st.closing,
            )
        };
        for batch in spans.chunks(BATCH) {
            let n = batch.len() as u64;
            if runtime.block_on(collector.send(batch)) {
                queue.counters.exported.inc_by(n);
            } else {
                queue.counters.dropped.inc_by(n);
            }
        }
        for f in flushes {
            let _ = f.send(());
        }
        if closing {
            return;
        }
    }
}

impl Collector {
    /// POSTs one batch; whether the collector took it.
    async fn send(&self, batch: &[Vec<u8>]) -> bool {
        let body = Bytes::from(wire::encode(batch, &self.service));
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone());
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        let Ok(req) = req.body(Full::new(body)) else {
            return false;
        };
        let exchange = async {
            let resp = self.client.request(req).await.ok()?;
            let ok = resp.status().is_success();
            // Drained so the connection can carry the next export.
            let _ = Limited::new(resp.into_body(), ANSWER_CAP).collect().await;
            Some(ok)
        };
        match tokio::time::timeout(EXPORT_TIMEOUT, exchange).await {
            Ok(Some(true)) => true,
            Ok(Some(false)) => {
                tracing::debug!("the OTLP collector refused a batch of spans");
                false
            }
            // Neither the URL nor a header value: only that it failed.
            _ => {
                tracing::debug!("the OTLP collector could not be reached");
                false
            }
        }
    }
}
