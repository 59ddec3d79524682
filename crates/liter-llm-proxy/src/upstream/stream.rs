//! Relaying an upstream SSE stream to the client.
//!
//! Bytes are forwarded as they come, but only whole events: a trailing partial event
//! is held until its end arrives. So if the upstream breaks off, times out or ends
//! without `data: [DONE]`, the client gets a clean `data: {"error":...}` event instead
//! of a silent truncation or half a JSON object.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use memchr::memmem;
use tokio::time::Instant;

use crate::error::GatewayError;
use crate::logtext::Clean;
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
}

impl Source {
    pub fn new(
        body: Incoming,
        first: Bytes,
        name: String,
        idle: Duration,
        deadline: Instant,
    ) -> Self {
        Self {
            body,
            first: Some(first),
            name,
            idle,
            deadline,
        }
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

    /// The SSE error event that ends the stream, logged once.
    pub(crate) fn fail(&self, err: &GatewayError) -> Bytes {
        tracing::warn!(model = %Clean(&self.name), error = %Clean(err), "stream ended with an error event");
        error_event(err)
    }
}

/// Told the usage an answer reports (the governance stage's meter).
pub trait UsageTap: Send + Sync {
    /// The usage the provider reported and, when the dispatcher priced it, its cost.
    fn report(&self, usage: Usage, cost: Option<f64>);
    /// A handle for a stream's body, which outlives the dispatcher's borrow.
    fn boxed(&self) -> Box<dyn UsageTap>;
}

/// A relay's tap: the usage chunk goes to `tap`, and is cut out of what the client
/// gets when it did not ask for it (`hide_usage`; the gateway asked upstream for it).
pub struct Tapped {
    pub tap: Box<dyn UsageTap>,
    pub hide_usage: bool,
}

struct Relay<G> {
    source: Source,
    /// Held until the stream ends (an in-flight slot, say).
    _guard: G,
    tapped: Option<Tapped>,
    /// Bytes of an event whose end has not arrived yet.
    pending: BytesMut,
    saw_done: bool,
    finished: bool,
}

/// The SSE body for the client, read from `source`; `guard` is dropped at the end.
pub fn relay<G: Send + 'static>(source: Source, guard: G, tapped: Option<Tapped>) -> Body {
    let state = Relay {
        source,
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
    let mut out = BytesMut::from(&b"data: "[..]);
    out.extend_from_slice(&err.body_bytes());
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

/// End of the last complete event in `buf` (just past its blank line), if any.
fn last_boundary(buf: &[u8]) -> Option<usize> {
    let lf = memmem::rfind(buf, b"\n\n").map(|i| i + 2);
    let crlf = memmem::rfind(buf, b"\r\n\r\n").map(|i| i + 4);
    lf.max(crlf)
}

fn has_done(events: &[u8]) -> bool {
    memmem::find(events, b"data: [DONE]").is_some()
        || memmem::find(events, b"data:[DONE]").is_some()
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
                    return (!rest.is_empty()).then_some((Ok(rest), s));
                }
                GatewayError::BadGateway(format!(
                    "the upstream for model {:?} ended the stream without [DONE]",
                    s.source.name
                ))
            }
            Ok(Some(data)) => {
                let events = if s.pending.is_empty() && last_boundary(&data) == Some(data.len()) {
                    data
                } else {
                    s.pending.extend_from_slice(&data);
                    let Some(end) = last_boundary(&s.pending) else {
                        continue;
                    };
                    s.pending.split_to(end).freeze()
                };
                s.saw_done |= has_done(&events);
                let events = match &s.tapped {
                    Some(t) => tap_usage(t, events),
                    None => events,
                };
                if events.is_empty() {
                    continue;
                }
                return Some((Ok(events), s));
            }
        };
        s.finished = true;
        let event = s.source.fail(&failure);
        return Some((Ok(event), s));
    }
}

/// A chunk's `choices` and `usage`, to find the usage chunk.
#[derive(serde::Deserialize)]
struct UsageChunk {
    #[serde(default)]
    choices: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    usage: Option<Usage>,
}

/// Reports the usage chunk among whole `events` and, when asked, leaves it out.
fn tap_usage(t: &Tapped, events: Bytes) -> Bytes {
    let has_usage = memmem::find(&events, b"\"usage\":{").is_some()
        || memmem::find(&events, b"\"usage\": {").is_some();
    if !has_usage {
        return events;
    }
    let mut kept = BytesMut::with_capacity(events.len());
    let mut rest: &[u8] = &events;
    while !rest.is_empty() {
        let end = match (memmem::find(rest, b"\n\n"), memmem::find(rest, b"\r\n\r\n")) {
            (Some(a), Some(b)) if b < a => b + 4,
            (Some(a), _) => a + 2,
            (None, Some(b)) => b + 4,
            (None, None) => rest.len(),
        };
        let (event, tail) = rest.split_at(end);
        rest = tail;
        let data = event
            .split(|&b| b == b'\n')
            .find_map(|line| line.strip_prefix(b"data:"))
            .map(|d| d.trim_ascii());
        if let Some(Ok(chunk)) = data.map(serde_json::from_slice::<UsageChunk>) {
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
    use super::*;

    #[test]
    fn boundaries() {
        assert_eq!(last_boundary(b"data: a\n\ndata: b"), Some(9));
        assert_eq!(last_boundary(b"data: a\r\n\r\n"), Some(11));
        assert_eq!(last_boundary(b"data: a\n"), None);
        assert!(has_done(b"data: x\n\ndata: [DONE]\n\n"));
    }
}
