//! The webhook sink: records in batches (up to `batch_size`, or what arrived within
//! `flush_ms` of a batch's first record), POSTed gzip-compressed: a JSON array, or for
//! an `otlp` sink an OTLP logs export in protobuf (`otlp.rs`). A
//! batch the receiver refuses with 408, 429 or 5xx, or that fails to arrive, is tried
//! again up to `retries` times with a doubling backoff; then it is dropped and its
//! records counted. While a batch is being tried, new records wait in the sink's
//! bounded queue.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, StatusCode, Uri};
use flate2::write::GzEncoder;
use flate2::Compression;
use liter_llm::providers::adapter::UpstreamRequest;
use prometheus_client::metrics::counter::Counter;
use secrecy::ExposeSecret;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::LogRecord;
use crate::config::{SinkFormat, SinkKind};
use crate::upstream::Upstream;

/// The wait before the first retry; each one after doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Sends through the gateway's own HTTP client (pooled, TLS with the web's roots).
struct Webhook {
    upstream: Arc<Upstream>,
    uri: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    retries: u32,
    timeout: Duration,
    format: SinkFormat,
}

pub(super) fn start(
    upstream: Arc<Upstream>,
    kind: &SinkKind,
    rx: mpsc::Receiver<Arc<LogRecord>>,
    sent: Counter,
    dropped: Counter,
) -> Result<(), String> {
    let SinkKind::Webhook {
        format,
        url,
        headers,
        batch_size,
        flush,
        retries,
        timeout,
    } = kind
    else {
        return Err("not a webhook sink".into());
    };
    let uri: Uri = url
        .parse()
        .map_err(|_| "its url is not a valid URL".to_owned())?;
    let content_type = match format {
        SinkFormat::Json => "application/json",
        SinkFormat::Otlp { .. } => "application/x-protobuf",
    };
    let mut fixed = vec![
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
    ];
    for (name, value) in headers {
        let name = HeaderName::try_from(name.as_str())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let mut value = HeaderValue::try_from(value.expose_secret())
            .map_err(|_| format!("invalid value for header {name}"))?;
        value.set_sensitive(true);
        fixed.push((name, value));
    }
    let hook = Webhook {
        upstream,
        uri,
        headers: fixed,
        retries: *retries,
        timeout: *timeout,
        format: format.clone(),
    };
    let (batch_size, flush) = (*batch_size, *flush);
    tokio::spawn(async move {
        let mut rx = rx;
        while let Some(batch) = next_batch(&mut rx, batch_size, flush).await {
            let n = batch.len() as u64;
            if hook.deliver(&batch).await {
                sent.inc_by(n);
            } else {
                dropped.inc_by(n);
            }
        }
    });
    Ok(())
}

/// The next batch: the first record, then what arrives within `flush` of it, up to
/// `size`. `None` when the queue is closed and empty.
async fn next_batch(
    rx: &mut mpsc::Receiver<Arc<LogRecord>>,
    size: usize,
    flush: Duration,
) -> Option<Vec<Arc<LogRecord>>> {
    let first = rx.recv().await?;
    let deadline = Instant::now() + flush;
    let mut batch = vec![first];
    while batch.len() < size {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(r)) => batch.push(r),
            Ok(None) | Err(_) => break,
        }
    }
    Some(batch)
}

impl Webhook {
    /// POST `batch` until it is taken or the tries run out; whether it was taken.
    async fn deliver(&self, batch: &[Arc<LogRecord>]) -> bool {
        let encoded = match &self.format {
            SinkFormat::Json => serde_json::to_vec(batch).ok(),
            SinkFormat::Otlp { service } => super::otlp::encode(batch, service),
        };
        let Some(body) = encoded.and_then(|b| gzip(&b)) else {
            return false;
        };
        let mut backoff = FIRST_BACKOFF;
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            let out = UpstreamRequest {
                uri: self.uri.clone(),
                headers: self.headers.clone(),
                body: body.clone(),
                dropped: Vec::new(),
            };
            let deadline = Instant::now() + self.timeout;
            let status = match self.upstream.send_once("log sink", out, deadline).await {
                Ok(resp) => resp.status(),
                // Neither the URL nor a header value: only that it failed.
                Err(e) => {
                    tracing::debug!(kind = e.kind(), "log webhook unreachable");
                    continue;
                }
            };
            if status.is_success() {
                return true;
            }
            let transient = status.is_server_error()
                || status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::REQUEST_TIMEOUT;
            if !transient {
                tracing::warn!(
                    status = status.as_u16(),
                    "log webhook refused a batch; dropped"
                );
                return false;
            }
        }
        tracing::warn!(
            records = batch.len(),
            "log webhook failed every try; batch dropped"
        );
        false
    }
}

/// `body`, gzip-compressed.
fn gzip(body: &[u8]) -> Option<bytes::Bytes> {
    let mut gz = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    gz.write_all(body).ok()?;
    gz.finish().ok().map(bytes::Bytes::from)
}
