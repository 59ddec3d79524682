//! An incremental decoder of AWS's binary event-stream framing
//! (`application/vnd.amazon.eventstream`), fed bytes at arbitrary boundaries.
//!
//! A message is: total length (u32 BE), headers length (u32 BE), CRC32 of those 8
//! bytes, the headers, the payload, and a CRC32 of everything before it. A header is a
//! name length (u8), the name, a value type (u8) and the value: 0/1 true/false, 2 byte,
//! 3 short, 4 int, 5 long, 6 byte array and 7 string (u16 BE length first),
//! 8 timestamp (i64 ms), 9 UUID (16 bytes). Both CRCs are checked (CRC-32/ISO-HDLC,
//! gzip's); a bad CRC or length is an error and the decoder stops.

use std::fmt;

use crc::{Crc, CRC_32_ISO_HDLC};

const CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);
/// Prelude (12 bytes) plus the message CRC (4).
const OVERHEAD: usize = 16;
/// The largest message accepted (AWS sends at most 16 MiB payloads).
pub const MAX_MESSAGE: usize = 24 * 1024 * 1024;

/// A header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Bytes(Vec<u8>),
    String(String),
    Timestamp(i64),
    Uuid([u8; 16]),
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Vec<u8>,
}

impl Message {
    /// A string header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }
}

/// Why the byte stream is not a valid event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError(pub String);

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid event-stream frame: {}", self.0)
    }
}

impl std::error::Error for FrameError {}

/// Buffers bytes until whole messages are in.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    failed: bool,
    /// The largest message accepted (at most [`MAX_MESSAGE`]).
    max_message: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            buf: Vec::new(),
            failed: false,
            max_message: MAX_MESSAGE,
        }
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept messages of at most `max_bytes` bytes (never more than [`MAX_MESSAGE`]):
    /// a prelude announcing a longer one is an error before its body is buffered.
    pub fn set_limit(&mut self, max_bytes: usize) {
        self.max_message = max_bytes.min(MAX_MESSAGE);
    }

    /// Consumes `bytes`, pushing every message they complete to `out`. After an error
    /// every later call fails too.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Message>) -> Result<(), FrameError> {
        if self.failed {
            return Err(FrameError("the stream already failed".into()));
        }
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        let result = loop {
            let rest = &self.buf[start..];
            if rest.len() < 12 {
                break Ok(());
            }
            let total = be32(&rest[0..4]) as usize;
            let headers_len = be32(&rest[4..8]) as usize;
            if CRC32.checksum(&rest[0..8]) != be32(&rest[8..12]) {
                break Err(FrameError("prelude CRC mismatch".into()));
            }
            if total < OVERHEAD || headers_len > total - OVERHEAD {
                break Err(FrameError(format!(
                    "impossible lengths (total {total}, headers {headers_len})"
                )));
            }
            if total > self.max_message {
                break Err(FrameError(format!(
                    "a message of {total} bytes is larger than the limit of {} bytes (server.max_event_bytes)",
                    self.max_message
                )));
            }
            if rest.len() < total {
                break Ok(());
            }
            let message = &rest[..total];
            if CRC32.checksum(&message[..total - 4]) != be32(&message[total - 4..]) {
                break Err(FrameError("message CRC mismatch".into()));
            }
            let headers = match parse_headers(&message[12..12 + headers_len]) {
                Ok(h) => h,
                Err(e) => break Err(e),
            };
            out.push(Message {
                headers,
                payload: message[12 + headers_len..total - 4].to_vec(),
            });
            start += total;
        };
        self.buf.drain(..start);
        if result.is_err() {
            self.failed = true;
            self.buf.clear();
        }
        result
    }

    /// Whether bytes of an unfinished message are buffered.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn parse_headers(mut b: &[u8]) -> Result<Vec<(String, HeaderValue)>, FrameError> {
    let short = || FrameError("truncated header".into());
    let mut out = Vec::new();
    while !b.is_empty() {
        let name_len = usize::from(b[0]);
        let name = b.get(1..1 + name_len).ok_or_else(short)?;
        let name = String::from_utf8(name.to_vec())
            .map_err(|_| FrameError("a header name is not UTF-8".into()))?;
        b = &b[1 + name_len..];
        let (&kind, rest) = b.split_first().ok_or_else(short)?;
        b = rest;
        let mut take = |n: usize| -> Result<&[u8], FrameError> {
            let (head, tail) = (b.get(..n).ok_or_else(short)?, b.get(n..).ok_or_else(short)?);
            b = tail;
            Ok(head)
        };
        let value = match kind {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes([take(1)?[0]])),
            3 => {
                let v = take(2)?;
                HeaderValue::Short(i16::from_be_bytes([v[0], v[1]]))
            }
            4 => {
                let v = take(4)?;
                HeaderValue::Int(i32::from_be_bytes([v[0], v[1], v[2], v[3]]))
            }
            5 | 8 => {
                let v = take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(v);
                let n = i64::from_be_bytes(a);
                if kind == 5 {
                    HeaderValue::Long(n)
                } else {
                    HeaderValue::Timestamp(n)
                }
            }
            6 | 7 => {
                let len = take(2)?;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                let v = take(len)?.to_vec();
                if kind == 6 {
                    HeaderValue::Bytes(v)
                } else {
                    HeaderValue::String(
                        String::from_utf8(v)
                            .map_err(|_| FrameError(format!("header {name:?} is not UTF-8")))?,
                    )
                }
            }
            9 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(take(16)?);
                HeaderValue::Uuid(a)
            }
            other => return Err(FrameError(format!("unknown header type {other}"))),
        };
        out.push((name, value));
    }
    Ok(out)
}

/// Encodes a message with string headers (for tests and fixtures).
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = (OVERHEAD + h.len() + payload.len()) as u32;
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = CRC32.checksum(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = CRC32.checksum(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_gzip_crc32() {
        assert_eq!(CRC32.checksum(b"123456789"), 0xCBF4_3926);
    }

    /// A frame written out by hand from the format description: no headers, payload
    /// `{}`; CRCs of the prelude and of the whole message before the CRC.
    #[test]
    fn a_frame_built_from_the_spec() {
        let mut frame = vec![0, 0, 0, 18, 0, 0, 0, 0];
        frame.extend_from_slice(&CRC32.checksum(&frame).to_be_bytes());
        frame.extend_from_slice(b"{}");
        let crc = CRC32.checksum(&frame);
        frame.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(frame, encode(&[], b"{}"));
        let mut out = Vec::new();
        Decoder::new().feed(&frame, &mut out).unwrap();
        assert_eq!(
            out,
            vec![Message {
                headers: vec![],
                payload: b"{}".to_vec()
            }]
        );
    }

    #[test]
    fn every_header_type() {
        let mut h = Vec::new();
        let mut push = |name: &str, kind: u8, value: &[u8]| {
            h.push(name.len() as u8);
            h.extend_from_slice(name.as_bytes());
            h.push(kind);
            h.extend_from_slice(value);
        };
        push("t", 0, &[]);
        push("f", 1, &[]);
        push("b", 2, &[0xff]);
        push("s", 3, &[0x01, 0x02]);
        push("i", 4, &[0, 0, 0, 7]);
        push("l", 5, &[0, 0, 0, 0, 0, 0, 0, 9]);
        push("a", 6, &[0, 2, 0xde, 0xad]);
        push(":event-type", 7, &[0, 3, b'a', b'b', b'c']);
        push("ts", 8, &[0, 0, 0, 0, 0, 0, 1, 0]);
        push("u", 9, &[7; 16]);
        let total = (16 + h.len()) as u32;
        let mut frame = total.to_be_bytes().to_vec();
        frame.extend_from_slice(&(h.len() as u32).to_be_bytes());
        frame.extend_from_slice(&CRC32.checksum(&frame).to_be_bytes());
        frame.extend_from_slice(&h);
        frame.extend_from_slice(&CRC32.checksum(&frame).to_be_bytes());
        let mut out = Vec::new();
        Decoder::new().feed(&frame, &mut out).unwrap();
        let m = &out[0];
        assert_eq!(m.header(":event-type"), Some("abc"));
        assert_eq!(m.headers[0].1, HeaderValue::Bool(true));
        assert_eq!(m.headers[2].1, HeaderValue::Byte(-1));
        assert_eq!(m.headers[3].1, HeaderValue::Short(258));
        assert_eq!(m.headers[5].1, HeaderValue::Long(9));
        assert_eq!(m.headers[6].1, HeaderValue::Bytes(vec![0xde, 0xad]));
        assert_eq!(m.headers[8].1, HeaderValue::Timestamp(256));
        assert_eq!(m.headers[9].1, HeaderValue::Uuid([7; 16]));
        assert!(m.payload.is_empty());
    }

    #[test]
    fn byte_at_a_time_and_corruption() {
        let mut bytes = encode(&[(":event-type", "x")], b"hello");
        bytes.extend(encode(&[(":event-type", "y")], "é".as_bytes()));
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for b in &bytes {
            d.feed(std::slice::from_ref(b), &mut out).unwrap();
        }
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].payload, "é".as_bytes());
        assert!(!d.has_partial());

        let mut bad = encode(&[], b"abc");
        let n = bad.len();
        bad[n - 5] ^= 1;
        assert!(Decoder::new()
            .feed(&bad, &mut out)
            .unwrap_err()
            .0
            .contains("message CRC"));
        let mut bad = encode(&[], b"abc");
        bad[3] ^= 1;
        let mut d = Decoder::new();
        assert!(d
            .feed(&bad, &mut out)
            .unwrap_err()
            .0
            .contains("prelude CRC"));
        assert!(d.feed(&encode(&[], b""), &mut out).is_err());
    }
}
