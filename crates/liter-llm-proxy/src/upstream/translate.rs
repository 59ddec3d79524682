//! Streams in another provider's format, translated to OpenAI's SSE as they arrive.
//!
//! The translator (an adapter's) gets the upstream bytes however
//! they are split and returns whole OpenAI chunks; this module only moves bytes and
//! keeps time: a stall, a broken connection or the deadline ends the stream with an
//! error event, as for pass-through streams.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use hyper::body::Incoming;
use liter_llm::providers::adapter::{StreamOut, StreamTranslate};
use tokio::time::Instant;

use super::stream::{error_event, Source};
use crate::error::GatewayError;

/// SSE bytes for the translator's output; `true` once the stream is over.
fn render(outs: Vec<StreamOut>, buf: &mut BytesMut) -> bool {
    for out in outs {
        match out {
            StreamOut::Chunk(chunk) => {
                buf.extend_from_slice(b"data: ");
                buf.extend_from_slice(&serde_json::to_vec(&chunk).unwrap_or_default());
                buf.extend_from_slice(b"\n\n");
            }
            StreamOut::Error(e) => {
                buf.extend_from_slice(&error_event(&GatewayError::from(e)));
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
}

/// The client's SSE body for a translated stream.
pub fn translated<G: Send + 'static>(
    body: Incoming,
    first: Bytes,
    translator: Box<dyn StreamTranslate>,
    name: String,
    idle: Duration,
    deadline: Instant,
    guard: G,
) -> Body {
    let state = State {
        source: Source::new(body, first, name, idle, deadline),
        translator,
        finished: false,
        _guard: guard,
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
                let event = s.source.fail(&failure);
                return Some((Ok(event), s));
            }
            Ok(None) => {
                s.finished = true;
                render(s.translator.finish(), &mut buf);
                return (!buf.is_empty()).then(|| (Ok(buf.freeze()), s));
            }
            Ok(Some(data)) => {
                s.finished = render(s.translator.feed(&data), &mut buf);
                if !buf.is_empty() {
                    return Some((Ok(buf.freeze()), s));
                }
            }
        }
    }
}
