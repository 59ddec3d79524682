//! AWS event-stream framing, written here independently of the gateway's decoder so
//! the two check each other: prelude (total length, headers length, CRC32 of both),
//! string headers (type 7), payload, CRC32 of the whole message before it.

use bytes::Bytes;

/// CRC-32 (ISO-HDLC, gzip's), bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One message with `headers` (all strings) and `payload`.
pub(crate) fn message(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = u32::try_from(16 + h.len() + payload.len()).unwrap_or(u32::MAX);
    let headers_len = u32::try_from(h.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&headers_len.to_be_bytes());
    let prelude = crc32(&out);
    out.extend_from_slice(&prelude.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    Bytes::from(out)
}

/// An `event` message of type `event_type` with a JSON payload.
pub(crate) fn event(event_type: &str, payload: &serde_json::Value) -> Bytes {
    message(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn the_gateway_decoder_reads_these_frames() {
        use liter_llm::providers::bedrock::eventstream::Decoder;
        let bytes = [
            event("messageStart", &serde_json::json!({"role": "assistant"})),
            message(&[], b""),
        ]
        .concat();
        let mut out = Vec::new();
        Decoder::new().feed(&bytes, &mut out).unwrap_or_default();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].header(":event-type"), Some("messageStart"));
        assert_eq!(out[0].payload, br#"{"role":"assistant"}"#);
    }
}
