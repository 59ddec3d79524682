//! Relaying an upstream SSE stream to the client, in OpenAI's wire or (for a Messages
//! client on an Anthropic deployment) Anthropic's.
//!
//! Bytes are forwarded as they come, but only whole events: a trailing partial event
//! is held until its end arrives. So if the upstream breaks off, times out or ends
//! without its last event (`data: [DONE]`; Anthropic's `message_stop`), the client gets
//! a clean error event in its wire (`data: {"error":...}`; `event: error`) instead of
//! a silent truncation or half a JSON object.
//!
//! An event may be at most `server.max_event_bytes` long: an upstream that never ends
//! one gets the stream ended with an error event once that much is held, and each
//! arriving chunk is searched for the end of an event only in its own bytes (plus the
//! three before them, where a `\r\n\r\n` may begin), so holding a long event costs
//! time linear in its length. The events passed on go through the deployment's
//! [`Scrub`] (an upstream's error event may echo the gateway's key).

use std::convert::Infallible;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use memchr::memmem::Finder;
use tokio::time::Instant;

use super::scrub::Scrub;
use crate::error::{GatewayError, Wire};
use crate::logtext::Clean;
use crate::search;
use liter_llm::providers::anthropic::AnthropicUsage;
use liter_llm::types::Usage;

/// An upstream stream body read chunk by chunk under its time limits; shared by the
/// pass-through relay and the translating streams.
pub struct Source {
    body: Incoming,
    /// Bytes read before the stream was handed over (the first chunk), returned first.
    first: Option<Bytes>,
    name: String,
    /// Bound on each wait for the next chunk.
    idle: Duration,
    /// Bound on the whole stream.
    deadline: Instant,
    /// The deployment's secrets, kept out of what is passed on.
    scrub: Arc<Scrub>,
    /// The longest event accepted (`server.max_event_bytes`).
    max_event_bytes: usize,
}

/// The parts of a [`Source`] that come from its deployment.
pub struct SourceOf {
    /// Client-facing model name, for messages.
    pub name: String,
    /// Bound on each wait for the next chunk.
    pub idle: Duration,
    pub scrub: Arc<Scrub>,
    pub max_event_bytes: usize,
}

impl Source {
    pub fn new(body: Incoming, first: Bytes, of: SourceOf, deadline: Instant) -> Self {
        Self {
            body,
            first: Some(first),
            name: of.name,
            idle: of.idle,
            deadline,
            scrub: of.scrub,
            max_event_bytes: of.max_event_bytes,
        }
    }

    /// The longest event accepted, for translators.
    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// The next data chunk, `None` at the end, or the error that ends the stream.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, GatewayError> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        loop {
            let wait = (Instant::now() + self.idle).min(self.deadline);
            match tokio::time::timeout_at(wait, self.body.frame()).await {
                Err(_) => {
                    return Err(GatewayError::Timeout(format!(
                        "the stream from the upstream for model {:?} stalled or ran out of time",
                        self.name
                    )))
                }
                Ok(Some(Err(e))) => {
                    return Err(GatewayError::BadGateway(format!(
                        "the upstream for model {:?} broke off the stream: {e}",
                        self.name
                    )))
                }
                Ok(None) => return Ok(None),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    } // else trailers: keep reading
                }
            }
        }
    }

    /// The SSE error event that ends the stream, logged once (both without the
    /// deployment's secrets).
    pub(crate) fn fail(&self, err: GatewayError) -> Bytes {
        self.fail_in(err, Wire::OpenAi)
    }

    /// [`Source::fail`], the event written in `wire`.
    fn fail_in(&self, err: GatewayError, wire: Wire) -> Bytes {
        let err = self.scrub.error(err);
        tracing::warn!(model = %Clean(&self.name), error = %Clean(&err), "stream ended with an error event");
        error_event_in(&err, wire)
    }

    /// The SSE event of an error the upstream itself sent (not logged: it is the
    /// answer), without the deployment's secrets.
    pub(crate) fn upstream_error_event(&self, err: GatewayError) -> Bytes {
        error_event(&self.scrub.error(err))
    }

    /// The error that ends a stream whose event grew past the limit.
    fn event_too_large(&self) -> GatewayError {
        GatewayError::BadGateway(format!(
            "the upstream for model {:?} sent a stream event larger than server.max_event_bytes ({} bytes)",
            self.name, self.max_event_bytes
        ))
    }
}

/// Told the usage an answer reports (the governance stage's meter).
pub trait UsageTap: Send + Sync {
    /// The usage the provider reported and, when the dispatcher priced it, its cost.
    fn report(&self, usage: Usage, cost: Option<f64>);
    /// A handle for a stream's body, which outlives the dispatcher's borrow.
    fn boxed(&self) -> Box<dyn UsageTap>;
    /// A whole answer's body (OpenAI's shape), for a tap that keeps it (a log sink
    /// with `content = true`).
    fn answer(&self, _body: &bytes::Bytes) {}
    /// What a streamed answer says of itself (its span's attributes), told to a tap
    /// that asked for it ([`Tapped::facts`]); may be told in parts, each adding to the
    /// last.
    fn facts(&self, _facts: &StreamFacts) {}
}

/// A streamed answer's id, model and finish reasons, as its chunks give them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StreamFacts {
    pub id: Option<String>,
    pub model: Option<String>,
    pub finish_reasons: Vec<String>,
}

impl StreamFacts {
    /// `other` added: its id and model where it has them, its finish reasons after ours.
    pub fn merge(&mut self, other: &StreamFacts) {
        if other.id.is_some() {
            self.id.clone_from(&other.id);
        }
        if other.model.is_some() {
            self.model.clone_from(&other.model);
        }
        self.finish_reasons
            .extend(other.finish_reasons.iter().cloned());
    }

    fn is_empty(&self) -> bool {
        self.id.is_none() && self.model.is_none() && self.finish_reasons.is_empty()
    }
}

/// Two taps told the same usage (the meter and the request's observers).
pub struct Both<'a>(pub &'a dyn UsageTap, pub &'a dyn UsageTap);

struct BothOwned(Box<dyn UsageTap>, Box<dyn UsageTap>);

impl UsageTap for Both<'_> {
    fn report(&self, usage: Usage, cost: Option<f64>) {
        self.0.report(usage, cost);
        self.1.report(usage, cost);
    }

    fn answer(&self, body: &bytes::Bytes) {
        self.0.answer(body);
        self.1.answer(body);
    }

    fn boxed(&self) -> Box<dyn UsageTap> {
        Box::new(BothOwned(self.0.boxed(), self.1.boxed()))
    }

    fn facts(&self, facts: &StreamFacts) {
        self.0.facts(facts);
        self.1.facts(facts);
    }
}

impl UsageTap for BothOwned {
    fn report(&self, usage: Usage, cost: Option<f64>) {
        self.0.report(usage, cost);
        self.1.report(usage, cost);
    }

    fn facts(&self, facts: &StreamFacts) {
        self.0.facts(facts);
        self.1.facts(facts);
    }

    fn boxed(&self) -> Box<dyn UsageTap> {
        Box::new(BothOwned(self.0.boxed(), self.1.boxed()))
    }
}

/// A relay's tap: the usage chunk goes to `tap`, and is cut out of what the client
/// gets when it did not ask for it (`hide_usage`; the gateway asked upstream for it).
pub struct Tapped {
    pub tap: Box<dyn UsageTap>,
    pub hide_usage: bool,
    /// Tell the tap the answer's [`StreamFacts`] (tracing is on).
    pub facts: bool,
}

struct Relay<G> {
    source: Source,
    wire: Wire,
    /// Anthropic's usage so far (`message_start`, then `message_delta`).
    anthropic_usage: AnthropicUsage,
    /// Held until the stream ends (an in-flight slot, say).
    _guard: G,
    tapped: Option<Tapped>,
    /// Bytes of an event whose end has not arrived yet (never an event boundary).
    pending: BytesMut,
    saw_done: bool,
    finished: bool,
}

/// The SSE body for the client, read from `source` in `wire`; `guard` is dropped at
/// the end.
pub fn relay<G: Send + 'static>(
    source: Source,
    guard: G,
    tapped: Option<Tapped>,
    wire: Wire,
) -> Body {
    let state = Relay {
        source,
        wire,
        anthropic_usage: AnthropicUsage::default(),
        _guard: guard,
        tapped,
        pending: BytesMut::new(),
        saw_done: false,
        finished: false,
    };
    Body::from_stream(futures_util::stream::unfold(state, step))
}

/// An SSE event carrying an OpenAI-shaped error.
pub fn error_event(err: &GatewayError) -> Bytes {
    error_event_in(err, Wire::OpenAi)
}

/// An SSE event carrying `err` in `wire`: OpenAI's `data: {"error":...}`, or
/// Anthropic's `event: error` with `{"type":"error","error":...}`.
pub fn error_event_in(err: &GatewayError, wire: Wire) -> Bytes {
    let mut out = BytesMut::from(match wire {
        Wire::OpenAi => &b"data: "[..],
        Wire::Anthropic => &b"event: error\ndata: "[..],
    });
    out.extend_from_slice(&err.body_in(wire));
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

/// End of the last complete event in `buf` (just past its blank line), if any.
fn last_boundary(buf: &[u8]) -> Option<usize> {
    #[cfg(test)]
    tests::SEARCHED.with(|n| n.set(n.get() + buf.len()));
    let lf = search::EVENT_END_REV.rfind(buf).map(|i| i + 2);
    let crlf = search::EVENT_END_CRLF_REV.rfind(buf).map(|i| i + 4);
    lf.max(crlf)
}

/// Whether `buf` ends just after an event (the usual chunk: whole events).
fn ends_an_event(buf: &[u8]) -> bool {
    buf.ends_with(b"\n\n") || buf.ends_with(b"\r\n\r\n")
}

/// The length of the longest event in `events` (whole events, each with its end).
fn longest_event(events: &[u8]) -> usize {
    let mut longest = 0;
    let mut rest = events;
    while !rest.is_empty() {
        let end = next_event_end(rest);
        longest = longest.max(end);
        rest = &rest[end..];
    }
    longest
}

/// The end of the first event in `rest` (just past its blank line), or its length.
fn next_event_end(rest: &[u8]) -> usize {
    match (
        search::EVENT_END.find(rest),
        search::EVENT_END_CRLF.find(rest),
    ) {
        (Some(a), Some(b)) if b < a => b + 4,
        (Some(a), _) => a + 2,
        (None, Some(b)) => b + 4,
        (None, None) => rest.len(),
    }
}

/// Whether `events` hold the stream's last event in `wire`.
fn has_end(events: &[u8], wire: Wire) -> bool {
    match wire {
        Wire::OpenAi => has_done(events),
        Wire::Anthropic => {
            static STOP: LazyLock<Finder<'static>> =
                LazyLock::new(|| search::json(b"\"type\":\"message_stop\""));
            STOP.find(events).is_some()
        }
    }
}

/// Whether `events` has a `data: [DONE]` line (one search).
fn has_done(events: &[u8]) -> bool {
    static DONE: LazyLock<Finder<'static>> = LazyLock::new(|| search::json(b"[DONE]"));
    DONE.find_iter(events).any(|i| {
        let before = &events[..i];
        before.ends_with(b"data: ") || before.ends_with(b"data:")
    })
}

/// The whole events `data` completes, `Ok(None)` while an event is still open, or
/// `Err` once one is longer than `max` bytes. Each chunk is searched once, with the 3
/// bytes before it: the held bytes hold no event end.
fn whole_events(pending: &mut BytesMut, data: Bytes, max: usize) -> Result<Option<Bytes>, ()> {
    let events = if pending.is_empty() && ends_an_event(&data) {
        data
    } else {
        let from = pending.len().saturating_sub(3);
        pending.extend_from_slice(&data);
        let Some(end) = last_boundary(&pending[from..]) else {
            return if pending.len() > max {
                Err(())
            } else {
                Ok(None)
            };
        };
        pending.split_to(from + end).freeze()
    };
    if pending.len() > max || (events.len() > max && longest_event(&events) > max) {
        return Err(());
    }
    Ok(Some(events))
}

async fn step<G>(mut s: Relay<G>) -> Option<(Result<Bytes, Infallible>, Relay<G>)> {
    if s.finished {
        return None;
    }
    loop {
        let failure = match s.source.next().await {
            Err(e) => e,
            Ok(None) => {
                s.finished = true;
                if s.saw_done {
                    // Whatever follows [DONE] (normally nothing) is passed on as is.
                    let rest = s.pending.split().freeze();
                    return (!rest.is_empty()).then(|| (Ok(s.source.scrub.bytes(rest)), s));
                }
                GatewayError::BadGateway(format!(
                    "the upstream for model {:?} ended the stream without {}",
                    s.source.name,
                    match s.wire {
                        Wire::OpenAi => "[DONE]",
                        Wire::Anthropic => "message_stop",
                    }
                ))
            }
            Ok(Some(data)) => match whole_events(&mut s.pending, data, s.source.max_event_bytes) {
                Ok(None) => continue,
                Err(()) => s.source.event_too_large(),
                Ok(Some(events)) => {
                    s.saw_done |= has_end(&events, s.wire);
                    let events = match (&s.tapped, s.wire) {
                        (Some(t), Wire::OpenAi) => tap_usage(t, events),
                        (Some(t), Wire::Anthropic) => {
                            tap_anthropic_usage(t, &events, &mut s.anthropic_usage);
                            events
                        }
                        (None, _) => events,
                    };
                    if events.is_empty() {
                        continue;
                    }
                    return Some((Ok(s.source.scrub.bytes(events)), s));
                }
            },
        };
        s.finished = true;
        let event = s.source.fail_in(failure, s.wire);
        return Some((Ok(event), s));
    }
}

/// An Anthropic stream event's usage: `message_start` carries it in `message`,
/// `message_delta` at the top (its counts are cumulative).
#[derive(serde::Deserialize)]
struct AnthropicEvent {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: Option<AnthropicMessageStart>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
    /// `message_delta`'s, with the stop reason.
    #[serde(default)]
    delta: Option<AnthropicDelta>,
}

#[derive(serde::Deserialize)]
struct AnthropicMessageStart {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(serde::Deserialize)]
struct AnthropicDelta {
    #[serde(default)]
    stop_reason: Option<String>,
}

/// Gathers the usage of Anthropic's `message_start` and `message_delta` events among
/// whole `events` into `so_far`, and reports it at `message_delta` (the answer's
/// last count). The events are passed on unchanged.
fn tap_anthropic_usage(t: &Tapped, events: &[u8], so_far: &mut AnthropicUsage) {
    static USAGE: LazyLock<Finder<'static>> = LazyLock::new(|| search::json(b"\"usage\""));
    if USAGE.find(events).is_none() {
        return;
    }
    let mut rest = events;
    while !rest.is_empty() {
        let (event, tail) = rest.split_at(next_event_end(rest));
        rest = tail;
        let data = event
            .split(|&b| b == b'\n')
            .find_map(|line| line.strip_prefix(b"data:"))
            .map(|d| d.trim_ascii());
        let Some(Ok(e)) = data.map(serde_json::from_slice::<AnthropicEvent>) else {
            continue;
        };
        if t.facts {
            let mut facts = StreamFacts::default();
            if let Some(m) = &e.message {
                facts.id.clone_from(&m.id);
                facts.model.clone_from(&m.model);
            }
            if let Some(reason) = e.delta.as_ref().and_then(|d| d.stop_reason.clone()) {
                facts.finish_reasons.push(reason);
            }
            if !facts.is_empty() {
                t.tap.facts(&facts);
            }
        }
        if let Some(u) = e.message.and_then(|m| m.usage) {
            so_far.merge(&u);
        }
        if let Some(u) = e.usage {
            so_far.merge(&u);
            if e.kind == "message_delta" {
                t.tap.report(so_far.to_usage(), None);
            }
        }
    }
}

/// A chunk's `choices` and `usage`, to find the usage chunk, with its id and model
/// for the [`StreamFacts`].
#[derive(serde::Deserialize)]
struct UsageChunk {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(serde::Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    finish_reason: Option<String>,
}

/// Whether `key` (quoted, with its colon) occurs in `events` with a value starting
/// with `first`, with or without a space between.
fn has_value(events: &[u8], key: &Finder<'_>, first: u8) -> bool {
    key.find_iter(events).any(|i| {
        let after = &events[i + key.needle().len()..];
        after.first() == Some(&first)
            || (after.first() == Some(&b' ') && after.get(1) == Some(&first))
    })
}

/// Reports the usage chunk among whole `events` and, when asked, leaves it out; with
/// [`Tapped::facts`], also the facts of the chunks that finish a choice.
fn tap_usage(t: &Tapped, events: Bytes) -> Bytes {
    static USAGE_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| search::json(b"\"usage\":"));
    let has_usage = has_value(&events, &USAGE_KEY, b'{');
    let finishes = t.facts && has_value(&events, &search::FINISH_REASON, b'"');
    if !has_usage && !finishes {
        return events;
    }
    let mut kept = BytesMut::with_capacity(events.len());
    let mut rest: &[u8] = &events;
    while !rest.is_empty() {
        let (event, tail) = rest.split_at(next_event_end(rest));
        rest = tail;
        let data = event
            .split(|&b| b == b'\n')
            .find_map(|line| line.strip_prefix(b"data:"))
            .map(|d| d.trim_ascii());
        if let Some(Ok(chunk)) = data.map(serde_json::from_slice::<UsageChunk>) {
            if t.facts {
                let facts = StreamFacts {
                    id: chunk.id,
                    model: chunk.model,
                    finish_reasons: chunk
                        .choices
                        .iter()
                        .filter_map(|c| c.finish_reason.clone())
                        .collect(),
                };
                if !facts.finish_reasons.is_empty() || chunk.usage.is_some() {
                    t.tap.facts(&facts);
                }
            }
            if let Some(u) = chunk.usage {
                t.tap.report(u, None);
                if t.hide_usage && chunk.choices.is_empty() {
                    continue;
                }
            }
        }
        kept.extend_from_slice(event);
    }
    kept.freeze()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::cell::Cell;

    use proptest::prelude::*;

    use super::*;

    thread_local! {
        /// Bytes `last_boundary` searched on this thread.
        pub(super) static SEARCHED: Cell<usize> = const { Cell::new(0) };
    }

    #[test]
    fn boundaries() {
        assert_eq!(last_boundary(b"data: a\n\ndata: b"), Some(9));
        assert_eq!(last_boundary(b"data: a\r\n\r\n"), Some(11));
        assert_eq!(last_boundary(b"data: a\n"), None);
        assert!(has_done(b"data: x\n\ndata: [DONE]\n\n"));
        assert!(has_done(b"data:[DONE]\n\n"));
        assert!(!has_done(b"data: {\"text\":\"[DONE]\"}\n\n"));
        assert_eq!(
            longest_event(b"data: a\n\ndata: bbb\r\n\r\ndata: c\n\n"),
            13
        );
    }

    /// Feeds `chunks` as the relay does: the whole events, or the limit error.
    fn feed(chunks: &[&[u8]], max: usize) -> Result<Vec<u8>, ()> {
        let mut pending = BytesMut::new();
        let mut out = Vec::new();
        for c in chunks {
            if let Some(events) = whole_events(&mut pending, Bytes::copy_from_slice(c), max)? {
                out.extend_from_slice(&events);
            }
        }
        Ok(out)
    }

    #[test]
    fn an_event_that_never_ends_is_searched_once_and_refused_at_the_limit() {
        // `data: ` and then 100-byte pieces without a blank line: each piece is searched
        // once (with 3 bytes before it), never the whole held event again.
        let piece = [b'a'; 100];
        let mut chunks: Vec<&[u8]> = vec![b"data: "];
        chunks.extend(std::iter::repeat_n(&piece[..], 10_000));
        SEARCHED.with(|n| n.set(0));
        assert_eq!(feed(&chunks, usize::MAX), Ok(Vec::new()));
        let searched = SEARCHED.with(Cell::get);
        assert!(searched <= 10_001 * 103, "searched {searched} bytes");
        // With a limit, it ends as soon as the held bytes pass it.
        let mut pending = BytesMut::new();
        let mut fed = 0;
        for c in &chunks {
            fed += c.len();
            if whole_events(&mut pending, Bytes::copy_from_slice(c), 1000).is_err() {
                break;
            }
        }
        assert!(fed <= 1100, "still holding after {fed} bytes");
        // A whole event over the limit is refused even when it comes in one chunk.
        let big = format!("data: {}\n\n", "b".repeat(2000));
        assert_eq!(feed(&[big.as_bytes()], 1000), Err(()));
        assert!(feed(&[big.as_bytes()], 4000).is_ok());
    }

    proptest! {
        /// However the bytes are split (inside a CRLF, inside the blank line), the
        /// relay passes on every event as soon as its end has arrived, whole and in
        /// order, and holds only the open one.
        #[test]
        fn whole_events_do_not_depend_on_the_split(
            crlf in any::<bool>(),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
        ) {
            let mut body = String::new();
            for i in 0..6 {
                body.push_str(&format!("data: {{\"n\":{i},\"pad\":\"{}\"}}\n\n", "x".repeat(i * 3)));
            }
            body.push_str("data: [DONE]\n\n");
            let body = if crlf { body.replace('\n', "\r\n") } else { body };
            let bytes = body.as_bytes();
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let mut pending = BytesMut::new();
            let mut out = Vec::new();
            let mut at = 0;
            for c in cuts {
                let chunk = Bytes::copy_from_slice(&bytes[at..c]);
                at = c;
                if let Some(events) = whole_events(&mut pending, chunk, 1 << 20).unwrap() {
                    out.extend_from_slice(&events);
                }
                let complete = last_boundary(&bytes[..at]).unwrap_or(0);
                prop_assert_eq!(&out[..], &bytes[..complete]);
            }
        }
    }
}
