//! Anthropic's Messages API at the front door: `POST /v1/messages` and
//! `POST /v1/messages/count_tokens`.
//!
//! A request is decoded twice over: as it came (a [`Native`] request, which an
//! Anthropic deployment gets with only `model` rewritten, along with the client's
//! `anthropic-version` and `anthropic-beta`) and as the canonical chat request
//! ([`decode`]) for every other deployment, whose answers [`encode`] and streams
//! [`stream`] write back in Anthropic's format. Errors are Anthropic's
//! `{"type":"error","error":{"type","message"}}` (`crate::error::anthropic_body`).

mod canonical;
mod controls;
pub mod decode;
pub mod encode;
mod raw;
mod request;
pub mod stream;

use axum::http::{HeaderMap, HeaderName};
use bytes::Bytes;

use super::{Decoded, FrontDoor, StreamEncode};
use crate::error::{GatewayError, Wire};
use crate::request::{parse_head, Head};
use crate::upstream::Native;

/// The client headers passed on to Anthropic-format deployments.
pub const PASSED_HEADERS: [HeaderName; 2] = [
    HeaderName::from_static("anthropic-version"),
    HeaderName::from_static("anthropic-beta"),
];

/// The client's request as it came, with the headers Anthropic-format deployments get.
fn native(body: &Bytes, head: Head, headers: &HeaderMap) -> Native {
    let passed = PASSED_HEADERS
        .iter()
        .filter_map(|name| Some((name.clone(), headers.get(name)?.clone())))
        .collect();
    Native {
        wire: Wire::Anthropic,
        body: body.clone(),
        head,
        headers: passed,
    }
}

/// The Messages front door.
#[derive(Debug, Clone, Copy, Default)]
pub struct Messages;

impl FrontDoor for Messages {
    fn wire(&self) -> Wire {
        Wire::Anthropic
    }

    fn decode(
        &self,
        body: &Bytes,
        headers: &HeaderMap,
        all_native: &dyn Fn(&Head) -> bool,
    ) -> Result<Decoded, GatewayError> {
        // The head is read once, for the pass-through check and the native request.
        let head = parse_head(body);
        if let Ok(h) = &head {
            if all_native(h) {
                return Ok(Decoded {
                    canonical: body.clone(),
                    native: head.ok().map(|h| native(body, h, headers)),
                    dropped: Vec::new(),
                });
            }
        }
        // The translation's error, in Messages' terms, comes before the head's.
        let translated = decode::canonical(body, None)?;
        Ok(Decoded {
            canonical: Bytes::from(translated.body),
            native: Some(native(body, head?, headers)),
            dropped: translated.dropped,
        })
    }

    fn answer(&self, answer: &[u8]) -> Result<Bytes, GatewayError> {
        encode::message(answer).map(Bytes::from)
    }

    fn stream(&self) -> Box<dyn StreamEncode> {
        Box::<stream::MessagesStream>::default()
    }
}

/// The canonical chat body of a `count_tokens` request (a Messages request without
/// `max_tokens`), and its model name.
pub fn count_tokens_body(body: &[u8]) -> Result<(String, Bytes), GatewayError> {
    let head = parse_head(body)?;
    let canonical = decode::canonical(body, Some(1))?;
    Ok((head.model, Bytes::from(canonical.body)))
}
