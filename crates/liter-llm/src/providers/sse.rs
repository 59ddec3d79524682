//! An incremental Server-Sent Events decoder (the WHATWG event-stream format), fed
//! bytes at arbitrary boundaries.
//!
//! Lines end with CRLF, LF or a lone CR, and a CR at the end of one chunk followed by an
//! LF at the start of the next is one line end. Lines are split only at those ASCII bytes
//! and an event's data is decoded as UTF-8 only once the event is complete, so a
//! multi-byte character split between chunks comes out whole. Only `event` and `data`
//! fields are kept; comments (`:`), `id` and `retry` are ignored. An event left
//! unterminated at the end of the body is dropped, as the format specifies.
//!
//! An event may be at most a set number of bytes long (its lines up to the blank line
//! that ends it, [`DEFAULT_MAX_EVENT_BYTES`] unless [`SseDecoder::set_limit`] says
//! otherwise): an upstream that never ends an event makes [`SseDecoder::feed`] fail
//! instead of growing the buffer without bound. Every byte is looked at once, when it
//! arrives: the work is linear in the body, however it is split.
//!
//! Shared by every adapter whose provider streams SSE (Anthropic, Gemini, Cohere).

use std::fmt;

/// The event size limit of a decoder made with `new` or `default` (the gateway's
/// `server.max_event_bytes` default).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

/// An event grew past the limit before its end arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTooLarge {
    pub limit: usize,
}

impl fmt::Display for EventTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an event is larger than the limit of {} bytes (server.max_event_bytes)",
            self.limit
        )
    }
}

impl std::error::Error for EventTooLarge {}

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; empty when the event named none.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

#[derive(Debug)]
pub struct SseDecoder {
    /// The current, unterminated line.
    line: Vec<u8>,
    /// The last byte seen was a CR ending a line: an LF next is part of that line end.
    after_cr: bool,
    event: Vec<u8>,
    data: Vec<u8>,
    /// Whether the current event has at least one `data` field.
    has_data: bool,
    /// Bytes of the current event's complete lines (line ends included).
    event_bytes: usize,
    /// The most bytes one event may have.
    max_event_bytes: usize,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::with_limit(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder whose events may be at most `max_event_bytes` bytes long.
    pub fn with_limit(max_event_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            after_cr: false,
            event: Vec::new(),
            data: Vec::new(),
            has_data: false,
            event_bytes: 0,
            max_event_bytes,
        }
    }

    pub fn set_limit(&mut self, max_event_bytes: usize) {
        self.max_event_bytes = max_event_bytes;
    }

    /// Consumes `input`, pushing every event it completes to `out`. `Err`: the event
    /// being read is longer than the limit (the events completed before it are
    /// pushed); the decoder should not be fed again.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<SseEvent>) -> Result<(), EventTooLarge> {
        if self.after_cr && !input.is_empty() {
            self.after_cr = false;
            if input[0] == b'\n' {
                input = &input[1..];
            }
        }
        while let Some(pos) = input.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&input[..pos]);
            self.check()?;
            let cr = input[pos] == b'\r';
            input = &input[pos + 1..];
            self.end_line(out);
            if cr {
                match input.first() {
                    Some(b'\n') => input = &input[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.line.extend_from_slice(input);
        self.check()
    }

    /// `Err` once the current event, with the line being read, is over the limit.
    fn check(&self) -> Result<(), EventTooLarge> {
        if self.event_bytes + self.line.len() > self.max_event_bytes {
            return Err(EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
        Ok(())
    }

    /// Handles the complete line in `self.line`.
    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.line);
        self.event_bytes += line.len() + 1;
        if line.is_empty() {
            self.dispatch(out);
        } else if line[0] != b':' {
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(colon) => {
                    let value = &line[colon + 1..];
                    (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (&line[..], &b""[..]),
            };
            match field {
                b"event" => {
                    self.event.clear();
                    self.event.extend_from_slice(value);
                }
                b"data" => {
                    if self.has_data {
                        self.data.push(b'\n');
                    }
                    self.data.extend_from_slice(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        // Reuse the line's allocation.
        self.line = line;
        self.line.clear();
    }

    /// A blank line: the event so far is complete.
    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent {
                event: String::from_utf8_lossy(&self.event).into_owned(),
                data: String::from_utf8_lossy(&self.data).into_owned(),
            });
        }
        self.event.clear();
        self.data.clear();
        self.has_data = false;
        self.event_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out).unwrap();
        }
        out
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn lf_crlf_and_cr() {
        let expected = vec![ev("a", "1"), ev("b", "2")];
        assert_eq!(
            decode(&[b"event: a\ndata: 1\n\nevent: b\ndata: 2\n\n"]),
            expected
        );
        assert_eq!(
            decode(&[b"event: a\r\ndata: 1\r\n\r\nevent: b\r\ndata: 2\r\n\r\n"]),
            expected
        );
        assert_eq!(
            decode(&[b"event: a\rdata: 1\r\revent: b\rdata: 2\r\r"]),
            expected
        );
    }

    #[test]
    fn crlf_split_between_chunks() {
        let out = decode(&[b"data: 1\r", b"\n\r", b"\ndata: 2\r", b"\n", b"\r\n"]);
        assert_eq!(out, vec![ev("", "1"), ev("", "2")]);
    }

    #[test]
    fn multibyte_split_between_chunks() {
        let bytes = "data: h\u{e9}llo \u{1f30d}\n\n".as_bytes();
        for cut in 0..bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(
                decode(&[a, b]),
                vec![ev("", "h\u{e9}llo \u{1f30d}")],
                "cut {cut}"
            );
        }
    }

    #[test]
    fn fields_comments_and_multiline_data() {
        let out = decode(&[b": ping\nid: 3\nretry: 10\nevent:x\ndata\ndata:a\ndata:  b\n\n\n\n"]);
        assert_eq!(out, vec![ev("x", "\na\n b")]);
        // An event without data is not dispatched, and its name does not leak.
        let out = decode(&[b"event: lonely\n\ndata: d\n\n"]);
        assert_eq!(out, vec![ev("", "d")]);
    }

    #[test]
    fn unterminated_event_is_not_dispatched() {
        assert!(decode(&[b"event: a\ndata: 1\n"]).is_empty());
    }

    #[test]
    fn an_event_that_never_ends_is_refused_at_the_limit() {
        let mut d = SseDecoder::with_limit(64);
        let mut out = Vec::new();
        // Whole events of any number are fine; only what one event holds counts.
        for _ in 0..100 {
            d.feed(
                b"data: 0123456789012345678901234567890123456789\n\n",
                &mut out,
            )
            .unwrap();
        }
        assert_eq!(out.len(), 100);
        // One event that never ends: `data: ` and then 16-byte pieces with no line end...
        d.feed(b"data: ", &mut out).unwrap();
        let mut fed = 6;
        let err = loop {
            match d.feed(b"aaaaaaaaaaaaaaaa", &mut out) {
                Ok(()) => fed += 16,
                Err(e) => break e,
            }
            assert!(fed <= 64, "still buffering after {fed} bytes");
        };
        assert_eq!(err, EventTooLarge { limit: 64 });
        assert!(err.to_string().contains("64 bytes"));
        // A whole event over the limit is refused too, even when it arrives at once.
        let mut d = SseDecoder::with_limit(16);
        assert!(d.feed(b"data: 0123456789abcdef\n\n", &mut out).is_err());
        // ...and one of many short data lines without the blank line that ends it.
        let mut d = SseDecoder::with_limit(64);
        let mut fed = 0;
        while d.feed(b"data: x\n", &mut out).is_ok() {
            fed += 8;
            assert!(fed <= 64 + 8, "still buffering after {fed} bytes");
        }
    }
}
