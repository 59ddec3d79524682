//! Request log sinks (`[[logging]]`, LiteLLM's success and failure callbacks): one
//! [`LogRecord`] per API request, sent to every sink whose `on` filter takes it.
//!
//! Never in a request's way: each sink has a bounded queue, a record that finds it
//! full is dropped and counted (`liter_llm_log_records_dropped_total`), and the writing
//! happens elsewhere: a file sink on its own thread (JSON lines, rotated by size), a
//! webhook sink on a task (batches, gzip, retries with backoff; a batch that fails
//! every try is dropped and counted), an `otlp` sink the same way with OTLP log
//! records in protobuf (`otlp.rs`). Prompts and answers go only to sinks with
//! `content = true`.
//!
//! Below `telemetry`: it imports `config`, `metrics`, `store` (a date format) and
//! `upstream` (the gateway's HTTP client, which the webhook sink sends with) only.

mod file;
mod otlp;
mod webhook;

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::{LogOn, SinkKind, SinkSpec};
use crate::metrics::LogMetrics;
use crate::upstream::Upstream;

/// What a sink learns of one request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogRecord {
    pub request_id: String,
    /// When the request arrived, RFC 3339 UTC with milliseconds.
    pub time: String,
    /// The same, in Unix milliseconds (for OTLP's timestamps).
    #[serde(skip)]
    pub unix_ms: u64,
    pub method: String,
    pub path: String,
    /// The virtual key's id (never the key); `None` for the master key or no key.
    pub key_id: Option<String>,
    /// The key's label: `master`, its description or alias, `key#N`.
    pub key_alias: Option<String>,
    /// The model (pool) that answered.
    pub model: Option<String>,
    /// The deployment (`provider/model`) that answered.
    pub deployment: Option<String>,
    pub provider: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// USD, when cost tracking priced the answer.
    pub cost_usd: Option<f64>,
    /// To the end of the response (a stream's last byte).
    pub latency_ms: f64,
    /// To the response headers.
    pub ttfb_ms: f64,
    pub status: u16,
    pub error_kind: Option<&'static str>,
    pub error_message: Option<String>,
    /// Answered from the response cache.
    pub cache_hit: bool,
    /// Attempts after the first (retries and fallbacks).
    pub retries: u32,
    /// For streams: whether the body reached its end (false: the client went away).
    pub stream_completed: Option<bool>,
    /// The request body (sinks with `content = true` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<serde_json::Value>,
    /// The answer (sinks with `content = true` only; not for streams).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<serde_json::Value>,
}

impl LogRecord {
    fn success(&self) -> bool {
        self.status < 400
    }
}

/// A sink could not start (its file cannot be opened).
#[derive(Debug, thiserror::Error)]
#[error("[[logging]] {sink}: {reason}")]
pub struct SinkError {
    sink: String,
    reason: String,
}

/// One sink's end of its queue.
#[derive(Debug)]
struct Sink {
    on: LogOn,
    content: bool,
    tx: mpsc::Sender<Arc<LogRecord>>,
    dropped: Counter,
}

/// Every configured sink. Dropping it lets the sinks drain their queues and stop.
#[derive(Debug)]
pub struct Sinks {
    sinks: Vec<Sink>,
    /// Whether any sink wants prompts and answers.
    content: bool,
}

impl Sinks {
    /// Start a writer for each sink; a relative file path is taken under `base`.
    pub fn start(
        specs: &[SinkSpec],
        base: Option<&std::path::Path>,
        upstream: &Arc<Upstream>,
        metrics: &LogMetrics,
    ) -> Result<Option<Arc<Sinks>>, SinkError> {
        if specs.is_empty() {
            return Ok(None);
        }
        let mut sinks = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let name = spec.name(i);
            let (sent, dropped) = metrics.sink(&name);
            let (tx, rx) = mpsc::channel(spec.max_queue);
            let started = match &spec.kind {
                SinkKind::File {
                    path,
                    max_bytes,
                    keep,
                } => {
                    let path = match base {
                        Some(b) if path.is_relative() => b.join(path),
                        _ => path.clone(),
                    };
                    file::start(path, *max_bytes, *keep, rx, sent)
                }
                SinkKind::Webhook { .. } => {
                    webhook::start(upstream.clone(), &spec.kind, rx, sent, dropped.clone())
                }
            };
            started.map_err(|reason| SinkError { sink: name, reason })?;
            sinks.push(Sink {
                on: spec.on,
                content: spec.content,
                tx,
                dropped,
            });
        }
        let content = specs.iter().any(|s| s.content);
        Ok(Some(Arc::new(Sinks { sinks, content })))
    }

    /// Whether any sink wants prompts and answers (the request log keeps them only
    /// then).
    pub fn wants_content(&self) -> bool {
        self.content
    }

    /// Queue `record` for every sink that takes it; never waits.
    pub fn send(&self, record: LogRecord) {
        let success = record.success();
        let full = Arc::new(record);
        let mut plain: Option<Arc<LogRecord>> = None;
        for s in &self.sinks {
            let wanted = match s.on {
                LogOn::All => true,
                LogOn::Success => success,
                LogOn::Failure => !success,
            };
            if !wanted {
                continue;
            }
            let r = if s.content || (full.request.is_none() && full.response.is_none()) {
                full.clone()
            } else {
                plain
                    .get_or_insert_with(|| {
                        Arc::new(LogRecord {
                            request: None,
                            response: None,
                            ..(*full).clone()
                        })
                    })
                    .clone()
            };
            if s.tx.try_send(r).is_err() {
                s.dropped.inc();
            }
        }
    }
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds (`2026-01-31T12:00:00.123Z`).
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let (secs, ms) = (unix_ms / 1000, unix_ms % 1000);
    let rem = secs % 86_400;
    format!(
        "{}T{:02}:{:02}:{:02}.{ms:03}Z",
        crate::store::day_string((secs / 86_400) as i64),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339_ms;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_709_251_199_123), "2024-02-29T23:59:59.123Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
