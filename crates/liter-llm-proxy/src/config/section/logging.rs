//! `[[logging]]` (extension): request log sinks, each a `file` (JSON lines, rotated by
//! size), a `webhook` (JSON batches, gzip, retried) or `otlp` (OTLP/HTTP log records in
//! protobuf, batched and retried as a webhook's; its URL and headers default to the
//! standard `OTEL_EXPORTER_OTLP_*` variables). Every limit has a default; a field of
//! another type is a load error.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::config::file::{LogOn, LoggingEntry};
use crate::config::problems::{key, Problems, Seg};

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
    /// A webhook, or an OTLP logs endpoint (`format`).
    Webhook {
        format: SinkFormat,
        url: String,
        /// Values may be secrets.
        headers: Vec<(String, SecretString)>,
        batch_size: usize,
        flush: Duration,
        retries: u32,
        timeout: Duration,
    },
}

/// What a webhook-style sink POSTs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkFormat {
    /// A JSON array of records.
    Json,
    /// An OTLP `ExportLogsServiceRequest` (protobuf), its resource named `service`.
    Otlp { service: String },
}

impl SinkSpec {
    /// `file#0`, `webhook#1`, `otlp#2`: the sink's name in metrics and messages.
    pub fn name(&self, index: usize) -> String {
        let kind = match self.kind {
            SinkKind::File { .. } => "file",
            SinkKind::Webhook {
                format: SinkFormat::Json,
                ..
            } => "webhook",
            SinkKind::Webhook {
                format: SinkFormat::Otlp { .. },
                ..
            } => "otlp",
        };
        format!("{kind}#{index}")
    }
}

/// `a file`, `a webhook`, `an otlp`.
fn with_article(kind: &str) -> String {
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {kind}")
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

/// `env`: the process environment, for an `otlp` sink's defaults.
pub(crate) fn check(
    entries: &[LoggingEntry],
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> Vec<SinkSpec> {
    let mut sinks = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let kind = match e.kind.as_str() {
            "file" => file(e, i, p),
            "webhook" => webhook(e, i, None, p),
            "otlp" => otlp(e, i, env, p),
            other => {
                p.push((
                    at(i, "type"),
                    format!("unknown sink type {other:?}: use \"file\", \"webhook\" or \"otlp\""),
                ));
                continue;
            }
        };
        for f in foreign(e, &e.kind) {
            p.push((
                at(i, f),
                format!("{f} is not a setting of {} sink", with_article(&e.kind)),
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

/// An `otlp` sink: a webhook sending OTLP log records, its URL and headers by default
/// from the standard variables (the entry's own headers win).
fn otlp(
    e: &LoggingEntry,
    i: usize,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> Option<SinkKind> {
    let at_type = || at(i, "type");
    let (endpoint, env_headers) = super::general::otlp_env("logs", env, p, &at_type);
    let service = super::general::otel_service_name(env);
    let defaults = Otlp {
        url: e.url.is_none().then_some(endpoint),
        headers: env_headers,
        service,
    };
    webhook(e, i, Some(defaults), p)
}

/// What an `otlp` sink takes from the environment.
struct Otlp {
    /// The URL, when the entry has none.
    url: Option<String>,
    headers: Vec<(String, SecretString)>,
    service: String,
}

fn webhook(e: &LoggingEntry, i: usize, otlp: Option<Otlp>, p: &mut Problems) -> Option<SinkKind> {
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
        .map(|(n, v)| (n.clone(), SecretString::from(v.clone())));
    let (format, url, headers) = match otlp {
        None => (
            SinkFormat::Json,
            e.url.clone().unwrap_or_default(),
            headers.collect::<Vec<_>>(),
        ),
        Some(o) => {
            let own: Vec<_> = headers.collect();
            let mut all: Vec<_> = o
                .headers
                .into_iter()
                .filter(|(n, _)| !own.iter().any(|(m, _)| m.eq_ignore_ascii_case(n)))
                .collect();
            all.extend(own);
            let url = o.url.or_else(|| e.url.clone()).unwrap_or_default();
            (SinkFormat::Otlp { service: o.service }, url, all)
        }
    };
    let url = url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || url.parse::<axum::http::Uri>().is_err()
    {
        p.push((
            at(i, "url"),
            format!(
                "{} sink needs an http:// or https:// url",
                with_article(&e.kind)
            ),
        ));
        return None;
    }
    Some(SinkKind::Webhook {
        format,
        url: url.to_owned(),
        headers,
        batch_size,
        flush: Duration::from_millis(flush_ms),
        retries: e.retries.unwrap_or(DEFAULT_RETRIES),
        timeout: Duration::from_secs(timeout_secs),
    })
}
