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

/// An upstream stream body read chunk by chunk under its time limits; shared by the
/// pass-through relay and the translating streams.
pub(crate) struct Source {
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
    pub(crate) fn new(
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
        tracing::warn!(model = %self.name, error = %err, "stream ended with an error event");
        error_event(err)
    }
}

struct Relay<G> {
    source: Source,
    /// Held until the stream ends (an in-flight slot, say).
    _guard: G,
    /// Bytes of an event whose end has not arrived yet.
    pending: BytesMut,
    saw_done: bool,
    finished: bool,
}

/// The SSE body for the client. `first` is data already read; `idle` bounds the wait
/// for each upstream chunk, `deadline` the whole stream; `guard` is dropped at the end.
pub fn relay<G: Send + 'static>(
    body: Incoming,
    first: Bytes,
    name: String,
    idle: Duration,
    deadline: Instant,
    guard: G,
) -> Body {
    let state = Relay {
        source: Source::new(body, first, name, idle, deadline),
        _guard: guard,
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
                if s.pending.is_empty() && last_boundary(&data) == Some(data.len()) {
                    s.saw_done |= has_done(&data);
                    return Some((Ok(data), s));
                }
                s.pending.extend_from_slice(&data);
                let Some(end) = last_boundary(&s.pending) else {
                    continue;
                };
                let events = s.pending.split_to(end).freeze();
                s.saw_done |= has_done(&events);
                return Some((Ok(events), s));
            }
        };
        s.finished = true;
        let event = s.source.fail(&failure);
        return Some((Ok(event), s));
    }
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
