//! Streams in another provider's format, translated to OpenAI's SSE as they arrive.
//!
//! The translator (an adapter's) gets the upstream bytes however
//! they are split and returns whole OpenAI chunks; this module only moves bytes and
//! keeps time: a stall, a broken connection or the deadline ends the stream with an
//! error event, as for pass-through streams. The translator's framing holds at most
//! `server.max_event_bytes` of one event (see `StreamMeta::max_event_bytes`), and its
//! error events, like every error of the stream, go through the deployment's scrub.

use std::convert::Infallible;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use liter_llm::providers::adapter::{StreamOut, StreamTranslate};

use super::stream::{Source, UsageTap};
use crate::error::GatewayError;

/// SSE bytes for the translator's output; `true` once the stream is over.
fn render(outs: Vec<StreamOut>, buf: &mut BytesMut, source: &Source) -> bool {
    for out in outs {
        match out {
            StreamOut::Chunk(chunk) => {
                buf.extend_from_slice(b"data: ");
                buf.extend_from_slice(&serde_json::to_vec(&chunk).unwrap_or_default());
                buf.extend_from_slice(b"\n\n");
            }
            StreamOut::Error(e) => {
                buf.extend_from_slice(&source.upstream_error_event(GatewayError::from(e)));
                return true;
            }
            StreamOut::Done => {
                buf.extend_from_slice(b"data: [DONE]\n\n");
                return true;
            }
        }
    }
    false
}

struct State<G> {
    source: Source,
    translator: Box<dyn StreamTranslate>,
    finished: bool,
    _guard: G,
    /// Told the usage once the answer is complete.
    tap: Option<Box<dyn UsageTap>>,
}

impl<G> State<G> {
    fn report_usage(&mut self) {
        if let (Some(tap), Some(u)) = (self.tap.take(), self.translator.usage()) {
            tap.report(u, None);
        }
    }
}

/// The client's SSE body for a translated stream.
pub fn translated<G: Send + 'static>(
    source: Source,
    translator: Box<dyn StreamTranslate>,
    guard: G,
    tap: Option<Box<dyn UsageTap>>,
) -> Body {
    let state = State {
        source,
        translator,
        finished: false,
        _guard: guard,
        tap,
    };
    Body::from_stream(futures_util::stream::unfold(state, step))
}

async fn step<G>(mut s: State<G>) -> Option<(Result<Bytes, Infallible>, State<G>)> {
    if s.finished {
        return None;
    }
    let mut buf = BytesMut::new();
    loop {
        match s.source.next().await {
            Err(failure) => {
                s.finished = true;
                let event = s.source.fail(failure);
                return Some((Ok(event), s));
            }
            Ok(None) => {
                s.finished = true;
                render(s.translator.finish(), &mut buf, &s.source);
                s.report_usage();
                return (!buf.is_empty()).then(|| (Ok(buf.freeze()), s));
            }
            Ok(Some(data)) => {
                s.finished = render(s.translator.feed(&data), &mut buf, &s.source);
                if s.finished {
                    s.report_usage();
                }
                if !buf.is_empty() {
                    return Some((Ok(buf.freeze()), s));
                }
            }
        }
    }
}
