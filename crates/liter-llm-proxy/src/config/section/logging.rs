//! `[[logging]]` (extension): request log sinks, each a `file` (JSON lines, rotated by
//! size) or a `webhook` (batched, gzip, retried). Every limit has a default; a field of
//! the other type, or `type = "otlp"` (not built), is a load error.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::config::file::{LogOn, LoggingEntry};
use crate::config::problems::{key, not_supported, Problems, Seg};

/// Records waiting for a sink at most, by default.
pub const DEFAULT_MAX_QUEUE: usize = 10_000;
/// A file sink rotates at this size by default (100 MiB).
pub const DEFAULT_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// Rotated files kept by default.
pub const DEFAULT_KEEP: u32 = 5;
/// Records per webhook POST by default.
pub const DEFAULT_BATCH_SIZE: usize = 100;
/// The longest a record waits for its webhook batch to fill, by default.
pub const DEFAULT_FLUSH_MS: u64 = 1000;
/// Tries after a failed webhook POST, by default.
pub const DEFAULT_RETRIES: u32 = 5;
/// The longest one webhook POST may take, by default.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;

/// One validated sink.
#[derive(Debug, Clone)]
pub struct SinkSpec {
    pub on: LogOn,
    pub content: bool,
    pub max_queue: usize,
    pub kind: SinkKind,
}

#[derive(Debug, Clone)]
pub enum SinkKind {
    File {
        /// As written; a relative path is taken beside the config file.
        path: PathBuf,
        max_bytes: u64,
        keep: u32,
    },
    Webhook {
        url: String,
        /// Values may be secrets.
        headers: Vec<(String, SecretString)>,
        batch_size: usize,
        flush: Duration,
        retries: u32,
        timeout: Duration,
    },
}

impl SinkSpec {
    /// `file#0`, `webhook#1`: the sink's name in metrics and messages.
    pub fn name(&self, index: usize) -> String {
        let kind = match self.kind {
            SinkKind::File { .. } => "file",
            SinkKind::Webhook { .. } => "webhook",
        };
        format!("{kind}#{index}")
    }
}

fn at(i: usize, field: &str) -> Vec<Seg> {
    vec![key("logging"), Seg::Index(i), key(field)]
}

/// `value` or `default`, with a problem if it is 0.
fn count<T: Copy + Default + PartialEq>(
    p: &mut Problems,
    i: usize,
    field: &str,
    value: Option<T>,
    default: T,
) -> T {
    match value {
        Some(v) if v == T::default() => {
            p.push((at(i, field), format!("{field} must be greater than 0")));
            default
        }
        Some(v) => v,
        None => default,
    }
}

/// The fields only `kind` may set, present on an entry of another kind.
fn foreign(e: &LoggingEntry, kind: &str) -> Vec<&'static str> {
    let file = [
        ("path", e.path.is_some()),
        ("max_bytes", e.max_bytes.is_some()),
        ("keep", e.keep.is_some()),
    ];
    let webhook = [
        ("url", e.url.is_some()),
        ("headers", !e.headers.is_empty()),
        ("batch_size", e.batch_size.is_some()),
        ("flush_ms", e.flush_ms.is_some()),
        ("retries", e.retries.is_some()),
        ("timeout_secs", e.timeout_secs.is_some()),
    ];
    let others: &[(&'static str, bool)] = if kind == "file" { &webhook } else { &file };
    others
        .iter()
        .filter(|(_, set)| *set)
        .map(|(f, _)| *f)
        .collect()
}

pub(crate) fn check(entries: &[LoggingEntry], p: &mut Problems) -> Vec<SinkSpec> {
    let mut sinks = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let kind = match e.kind.as_str() {
            "file" => file(e, i, p),
            "webhook" => webhook(e, i, p),
            "otlp" => {
                not_supported(p, at(i, "type"), "type = \"otlp\"", "OTLP log export");
                continue;
            }
            other => {
                p.push((
                    at(i, "type"),
                    format!("unknown sink type {other:?}: use \"file\" or \"webhook\""),
                ));
                continue;
            }
        };
        for f in foreign(e, &e.kind) {
            p.push((
                at(i, f),
                format!("{f} is not a setting of a {} sink", e.kind),
            ));
        }
        let max_queue = count(p, i, "max_queue", e.max_queue, DEFAULT_MAX_QUEUE);
        if let Some(kind) = kind {
            sinks.push(SinkSpec {
                on: e.on,
                content: e.content,
                max_queue,
                kind,
            });
        }
    }
    sinks
}

fn file(e: &LoggingEntry, i: usize, p: &mut Problems) -> Option<SinkKind> {
    let max_bytes = count(p, i, "max_bytes", e.max_bytes, DEFAULT_MAX_BYTES);
    let keep = e.keep.unwrap_or(DEFAULT_KEEP);
    match e.path.as_deref().map(str::trim) {
        Some(path) if !path.is_empty() => Some(SinkKind::File {
            path: PathBuf::from(path),
            max_bytes,
            keep,
        }),
        _ => {
            p.push((at(i, "path"), "a file sink needs a path".into()));
            None
        }
    }
}

fn webhook(e: &LoggingEntry, i: usize, p: &mut Problems) -> Option<SinkKind> {
    let batch_size = count(p, i, "batch_size", e.batch_size, DEFAULT_BATCH_SIZE);
    let flush_ms = count(p, i, "flush_ms", e.flush_ms, DEFAULT_FLUSH_MS);
    let timeout_secs = count(p, i, "timeout_secs", e.timeout_secs, DEFAULT_TIMEOUT_SECS);
    let headers = e
        .headers
        .iter()
        .filter(|(name, value)| {
            let ok = axum::http::HeaderName::try_from(name.as_str()).is_ok()
                && axum::http::HeaderValue::try_from(value.as_str()).is_ok();
            if !ok {
                // The value is never shown: it may be a secret.
                p.push((
                    at(i, "headers"),
                    format!("header {name:?} is not a valid HTTP header name and value"),
                ));
            }
            ok
        })
        .map(|(n, v)| (n.clone(), SecretString::from(v.clone())))
        .collect();
    let url = e.url.as_deref().map(str::trim).unwrap_or("");
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        p.push((
            at(i, "url"),
            "a webhook sink needs an http:// or https:// url".into(),
        ));
        return None;
    }
    Some(SinkKind::Webhook {
        url: url.to_owned(),
        headers,
        batch_size,
        flush: Duration::from_millis(flush_ms),
        retries: e.retries.unwrap_or(DEFAULT_RETRIES),
        timeout: Duration::from_secs(timeout_secs),
    })
}
