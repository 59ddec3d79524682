//! OpenTelemetry traces (`general.enable_tracing`): a span per API request and a child
//! span per upstream attempt, with the GenAI semantic conventions' attributes,
//! exported over OTLP/HTTP (protobuf) from a queue by a thread of its own (`export`),
//! encoded straight from the spans (`wire`).
//!
//! Never in a request's way: a span that finds the export queue full is dropped and
//! counted (`liter_llm_trace_spans_dropped_total`), as is every span of a batch the
//! collector failed to take. The client's W3C `traceparent`/`tracestate` continue its
//! trace (a parent it did not sample is not recorded, as OpenTelemetry's default
//! parent-based sampler does); each attempt sends its own `traceparent` upstream.
//! Prompts and completions are put in spans only with `general.trace_content`. When
//! tracing is off nothing here runs: the stages hold `Option`s.
//!
//! A leaf beside `metrics`: it imports `config`, `metrics`, `logtext`, `search` and `objstore`
//! (for the process-wide TLS provider its HTTP client needs) only.

mod answer;
mod export;
mod wire;

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::TracingSpec;
use crate::metrics::TraceMetrics;
use export::{Exporter, Queue};
use wire::{Body, Kind, Start};

pub use answer::{answer_attributes, request_attributes, stream_attributes};
pub use export::QUEUE;
pub use wire::Attrs;

/// The longest prompt or completion text put in a span (with `trace_content`).
pub const CONTENT_CAP: usize = 64 * 1024;
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// The longest client `tracestate` carried on (W3C's limit for propagators).
const TRACESTATE_CAP: usize = 512;
/// The bytes a span without content takes, about: its buffer is made this big once.
const SPAN_BYTES: usize = 768;

/// The trace exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP trace exporter: {0}")]
pub struct TracingError(String);

/// The gateway's tracer. Built once by the `App`; sends what is queued and stops its
/// thread when dropped.
pub struct Tracing {
    exporter: Exporter,
    /// `general.trace_content`.
    pub content: bool,
}

impl Tracing {
    pub fn start(spec: &TracingSpec, counters: TraceMetrics) -> Result<Tracing, TracingError> {
        Ok(Tracing {
            exporter: Exporter::start(spec, counters)?,
            content: spec.content,
        })
    }

    /// Sends what is queued and waits for it (tests, shutdown). Blocks.
    pub fn flush(&self) {
        self.exporter.flush();
    }

    /// The span of an API request (`operation`: `chat` or `embeddings`), continuing
    /// the client's trace when its headers carry one.
    pub fn request(&self, headers: &HeaderMap, operation: &'static str) -> Trace {
        let parent = Parent::of(headers);
        let (trace_id, flags, state) = match &parent {
            Some(p) => (p.trace_id, p.flags, p.state.clone()),
            None => (
                (u128::from(random_u64()) << 64 | u128::from(random_u64()))
                    .max(1)
                    .to_be_bytes(),
                SAMPLED,
                None,
            ),
        };
        let span_id = span_id();
        let body = (flags & SAMPLED != 0).then(|| {
            let mut body = Body::start(
                &Start {
                    trace_id: &trace_id,
                    span_id: &span_id,
                    parent: parent.as_ref().map(|p| &p.span_id),
                    remote_parent: parent.is_some(),
                    flags,
                    trace_state: state.as_deref(),
                    kind: Kind::Server,
                    start_ns: now_ns(),
                },
                SPAN_BYTES,
            );
            body.attrs().str("gen_ai.operation.name", operation);
            Draft { body, named: false }
        });
        Trace(Arc::new(Span {
            queue: self.exporter.queue.clone(),
            content: self.content,
            operation,
            trace_id,
            span_id,
            flags,
            state,
            draft: Mutex::new(body),
        }))
    }
}

impl std::fmt::Debug for Tracing {
    // The exporter's settings hold the OTLP headers (secrets): never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracing")
            .field("content", &self.content)
            .finish_non_exhaustive()
    }
}

/// W3C trace flags: sampled.
const SAMPLED: u8 = 1;

fn span_id() -> [u8; 8] {
    random_u64().max(1).to_be_bytes()
}

/// Random ids: a SplitMix64 sequence per thread, seeded from the OS's random source.
/// Ids need to be unique and unguessable enough not to collide across processes, not
/// secret; this costs a few arithmetic instructions where the crate's cryptographic
/// generator costs a block function call.
fn random_u64() -> u64 {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new(rand::random());
    }
    STATE.with(|s| {
        let x = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(x);
        let z = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A span's encoding so far, and whether its name is in it.
struct Draft {
    body: Body,
    named: bool,
}

/// A span being recorded: its ids, and its encoding until it ends (`None` once
/// ended, or from the start when its trace is not sampled).
struct Span {
    queue: Arc<Queue>,
    content: bool,
    operation: &'static str,
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
    state: Option<Arc<str>>,
    draft: Mutex<Option<Draft>>,
}

impl Span {
    fn draft(&self, f: impl FnOnce(&mut Draft)) {
        if let Some(d) = self
            .draft
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            f(d);
        }
    }

    fn set(&self, f: impl FnOnce(&mut Attrs)) {
        self.draft(|d| f(d.body.attrs()));
    }

    /// Ends the span with an HTTP status and, for a failure, its kind.
    fn end(&self, status: u16, error: Option<&'static str>) {
        let draft = self.draft.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(Draft { mut body, named }) = draft {
            if !named {
                body.name(&[self.operation]);
            }
            let attrs = body.attrs();
            attrs.int("http.response.status_code", i64::from(status));
            if let Some(kind) = error {
                attrs.str("error.type", kind);
            }
            self.queue.push(body.end(now_ns(), error));
        }
    }
}

/// A request's span, and what its attempts need to start theirs.
#[derive(Clone)]
pub struct Trace(Arc<Span>);

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace")
            .field("operation", &self.0.operation)
            .finish_non_exhaustive()
    }
}

/// One upstream attempt's span.
pub struct Attempt(Span);

impl Trace {
    /// Whether prompts and completions go in spans.
    pub fn content(&self) -> bool {
        self.0.content
    }

    /// Set attributes on the request's span (not called once it has ended, or when
    /// its trace is not sampled).
    pub fn set(&self, f: impl FnOnce(&mut Attrs)) {
        self.0.set(f);
    }

    /// The span name the conventions ask for: `{operation} {model}`.
    pub fn name(&self, model: &str) {
        let op = self.0.operation;
        self.0.draft(|d| {
            if !d.named {
                d.body.name(&[op, " ", crate::logtext::capped(model)]);
                d.named = true;
            }
        });
    }

    /// Ends the request's span with its status (`error`: the error's kind).
    pub fn end(&self, status: u16, error: Option<&'static str>) {
        self.0.end(status, error);
    }

    /// A child span for one attempt on `deployment` of `provider`, sending
    /// `traceparent` (and `tracestate`) upstream in `headers`.
    pub fn attempt(
        &self,
        provider: &'static str,
        model: &str,
        upstream: Option<&axum::http::Uri>,
        headers: &mut Vec<(HeaderName, HeaderValue)>,
    ) -> Attempt {
        let t = &self.0;
        let span_id = span_id();
        let draft = (t.flags & SAMPLED != 0).then(|| {
            let mut body = Body::start(
                &Start {
                    trace_id: &t.trace_id,
                    span_id: &span_id,
                    parent: Some(&t.span_id),
                    remote_parent: false,
                    flags: t.flags,
                    trace_state: t.state.as_deref(),
                    kind: Kind::Client,
                    start_ns: now_ns(),
                },
                SPAN_BYTES,
            );
            let model = crate::logtext::capped(model);
            body.name(&[t.operation, " ", model]);
            let a = body.attrs();
            a.str("gen_ai.operation.name", t.operation);
            a.str("gen_ai.provider.name", provider);
            a.str("gen_ai.system", provider);
            a.str("gen_ai.request.model", model);
            if let Some(authority) = upstream.and_then(axum::http::Uri::authority) {
                let (host, port) = host_port(authority.as_str());
                a.str("server.address", host);
                if let Some(port) = port {
                    a.int("server.port", i64::from(port));
                }
            }
            Draft { body, named: true }
        });
        inject(headers, &t.trace_id, &span_id, t.flags, t.state.as_deref());
        Attempt(Span {
            queue: t.queue.clone(),
            content: t.content,
            operation: t.operation,
            trace_id: t.trace_id,
            span_id,
            flags: t.flags,
            state: None,
            draft: Mutex::new(draft),
        })
    }
}

impl Attempt {
    pub fn set(&self, f: impl FnOnce(&mut Attrs)) {
        self.0.set(f);
    }

    /// Ends the attempt with the upstream's status (`error`: the failure's kind).
    pub fn end(&self, status: u16, error: Option<&'static str>) {
        self.0.end(status, error);
    }
}

/// Sets the same attributes on an attempt's span and its request's: encoded once,
/// into the attempt's span, and copied.
pub fn set_both(attempt: &Attempt, trace: &Trace, f: impl FnOnce(&mut Attrs)) {
    let mut guard = attempt.0.draft.lock().unwrap_or_else(|p| p.into_inner());
    let Some(draft) = guard.as_mut() else { return };
    let attrs = draft.body.attrs();
    let from = attrs.len();
    f(attrs);
    trace.set(|t| t.extend(attrs.since(from)));
}

/// The host and port of an authority (`user@host:port`, `[v6]:port`), read in one
/// pass over its bytes (the http crate's `host` and `port` each search it again).
fn host_port(authority: &str) -> (&str, Option<u16>) {
    let start = authority
        .bytes()
        .rposition(|c| c == b'@')
        .map_or(0, |i| i + 1);
    let hp = &authority[start..];
    match hp.bytes().rposition(|c| c == b':' || c == b']') {
        Some(i) if hp.as_bytes()[i] == b':' => (&hp[..i], hp[i + 1..].parse().ok()),
        _ => (hp, None),
    }
}

/// The client's span context, from a valid W3C `traceparent` (and its `tracestate`).
struct Parent {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
    state: Option<Arc<str>>,
}

impl Parent {
    fn of(headers: &HeaderMap) -> Option<Parent> {
        let (trace_id, span_id, flags) = traceparent(headers.get(&TRACEPARENT)?.as_bytes())?;
        let state = headers
            .get(&TRACESTATE)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= TRACESTATE_CAP)
            .map(Arc::from);
        Some(Parent {
            trace_id,
            span_id,
            flags,
            state,
        })
    }
}

/// `version-traceid-parentid-flags` in lowercase hex, as W3C Trace Context reads it:
/// version `ff` and all-zero ids are invalid; version `00` is exactly 55 bytes, a later
/// version may carry more after a `-`.
fn traceparent(v: &[u8]) -> Option<([u8; 16], [u8; 8], u8)> {
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = hex::<1>(&v[..2])?[0];
    if version == 0xff || (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return None;
    }
    let trace_id = hex::<16>(&v[3..35])?;
    let span_id = hex::<8>(&v[36..52])?;
    let flags = hex::<1>(&v[53..55])?[0];
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some((trace_id, span_id, flags))
}

/// `N` bytes from `2N` lowercase hex digits.
fn hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        *out.get_mut(i)? = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// Puts `traceparent` (and `tracestate`) for the span `span_id` in `headers`.
fn inject(
    headers: &mut Vec<(HeaderName, HeaderValue)>,
    trace_id: &[u8; 16],
    span_id: &[u8; 8],
    flags: u8,
    state: Option<&str>,
) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // `00-{trace id}-{span id}-{flags}`: a fixed 55 bytes, written in place.
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
    let put = |bytes: &[u8], hex: &mut [u8]| {
        for (b, pair) in bytes.iter().zip(hex.chunks_exact_mut(2)) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 15)];
        }
    };
    put(trace_id, &mut text[3..35]);
    put(span_id, &mut text[36..52]);
    put(&[flags & SAMPLED], &mut text[53..55]);
    headers.retain(|(n, _)| *n != TRACEPARENT && *n != TRACESTATE);
    if let Ok(v) = HeaderValue::from_bytes(&text) {
        headers.push((TRACEPARENT, v));
    }
    if let Some(v) = state.and_then(|s| HeaderValue::from_str(s).ok()) {
        headers.push((TRACESTATE, v));
    }
}

/// `text` cut to [`CONTENT_CAP`] bytes (at a character boundary).
pub fn capped_content(text: &str) -> &str {
    let mut end = text.len().min(CONTENT_CAP);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    #[test]
    fn a_valid_traceparent_is_read() {
        let v = format!("00-{ID}-00f067aa0ba902b7-01");
        let (t, s, f) = traceparent(v.as_bytes()).unwrap();
        assert_eq!(t[0], 0x4b);
        assert_eq!(t[15], 0x36);
        assert_eq!(s, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert_eq!(f, 1);
        // A later version may carry more fields.
        assert!(traceparent(format!("01-{ID}-00f067aa0ba902b7-00-extra").as_bytes()).is_some());
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace() {
        for bad in [
            format!("00-{ID}-00f067aa0ba902b7-01-extra"),
            format!("ff-{ID}-00f067aa0ba902b7-01"),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-{ID}-0000000000000000-01"),
            format!("00-{}-00f067aa0ba902b7-01", ID.to_uppercase()),
            format!("00-{ID}-00f067aa0ba902b7-0"),
            format!("00_{ID}-00f067aa0ba902b7-01"),
            "00-é".repeat(20),
            String::new(),
        ] {
            assert!(traceparent(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn an_authority_gives_its_host_and_port() {
        assert_eq!(host_port("api.openai.com"), ("api.openai.com", None));
        assert_eq!(host_port("127.0.0.1:8080"), ("127.0.0.1", Some(8080)));
        assert_eq!(host_port("u:p@h.example:443"), ("h.example", Some(443)));
        assert_eq!(host_port("[::1]:9"), ("[::1]", Some(9)));
        assert_eq!(host_port("[::1]"), ("[::1]", None));
        assert_eq!(host_port("h:notaport"), ("h", None));
    }

    #[test]
    fn inject_writes_the_span_and_replaces_what_was_there() {
        let mut headers = vec![(
            HeaderName::from_static("traceparent"),
            HeaderValue::from_static("stale"),
        )];
        inject(&mut headers, &[0xab; 16], &[0x01; 8], 3, Some("k=v"));
        assert_eq!(headers.len(), 2);
        assert_eq!(
            headers[0].1,
            format!("00-{}-{}-01", "ab".repeat(16), "01".repeat(8)).as_str()
        );
        assert_eq!(headers[1].1, "k=v");
    }
}
