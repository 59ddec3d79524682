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

use super::stream::{Source, StreamFacts, UsageTap};
use crate::error::GatewayError;

/// SSE bytes for the translator's output, its facts gathered into `facts` when
/// asked; `true` once the stream is over.
fn render(
    outs: Vec<StreamOut>,
    buf: &mut BytesMut,
    source: &Source,
    facts: &mut Option<StreamFacts>,
) -> bool {
    for out in outs {
        match out {
            StreamOut::Chunk(chunk) => {
                if let Some(f) = facts.as_mut() {
                    if f.id.is_none() {
                        f.id = Some(chunk.id.clone());
                        f.model = Some(chunk.model.clone());
                    }
                    let reasons = chunk.choices.iter().filter_map(|c| c.finish_reason.clone());
                    f.finish_reasons.extend(reasons);
                }
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
    /// Told the usage (and the facts, when gathered) once the answer is complete.
    tap: Option<Box<dyn UsageTap>>,
    /// The answer's facts so far, when the tap wants them.
    facts: Option<StreamFacts>,
}

impl<G> State<G> {
    fn report_usage(&mut self) {
        let Some(tap) = self.tap.take() else { return };
        if let Some(u) = self.translator.usage() {
            tap.report(u, None);
        }
        if let Some(f) = self.facts.take() {
            tap.facts(&f);
        }
    }
}

/// The client's SSE body for a translated stream; `facts`: tell the tap the
/// answer's [`StreamFacts`] too.
pub fn translated<G: Send + 'static>(
    source: Source,
    translator: Box<dyn StreamTranslate>,
    guard: G,
    tap: Option<Box<dyn UsageTap>>,
    facts: bool,
) -> Body {
    let state = State {
        source,
        translator,
        finished: false,
        _guard: guard,
        facts: (facts && tap.is_some()).then(StreamFacts::default),
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
                render(s.translator.finish(), &mut buf, &s.source, &mut s.facts);
                s.report_usage();
                return (!buf.is_empty()).then(|| (Ok(buf.freeze()), s));
            }
            Ok(Some(data)) => {
                s.finished = render(s.translator.feed(&data), &mut buf, &s.source, &mut s.facts);
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
