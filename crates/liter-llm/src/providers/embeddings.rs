//! Embedding helpers shared by the providers and the gateway: OpenAI's `base64` encoding
//! (the little-endian `f32` bytes of a vector in standard base64), which the OpenAI SDKs
//! ask for by default. Providers that only answer floats (Cohere, Gemini, Bedrock) have
//! their answers encoded after parsing.

use base64::Engine as _;
use serde_json::Value;

use crate::types::EmbeddingResponse;

/// A vector as OpenAI's base64 string.
pub fn f32_base64(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|f| f.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Whether an embeddings request body asks for `"encoding_format": "base64"`.
pub fn wants_base64(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Format<'a> {
        #[serde(borrow, default)]
        encoding_format: Option<&'a str>,
    }
    serde_json::from_slice::<Format<'_>>(body)
        .ok()
        .and_then(|f| f.encoding_format)
        == Some("base64")
}

/// Re-encodes every float-array embedding of `resp` as a base64 string (strings are left
/// as they are).
pub fn encode_base64(resp: &mut EmbeddingResponse) {
    for e in &mut resp.data {
        if let Value::Array(values) = &e.embedding {
            let floats: Vec<f32> = values
                .iter()
                .map(|v| v.as_f64().unwrap_or(0.0) as f32)
                .collect();
            e.embedding = Value::from(f32_base64(&floats));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Embedding, EmbeddingUsage};

    #[test]
    fn base64_is_little_endian_f32() {
        // 1.0f32 = 0x3f800000 → bytes 00 00 80 3f.
        assert_eq!(f32_base64(&[1.0]), "AACAPw==");
        assert_eq!(f32_base64(&[]), "");
    }

    #[test]
    fn request_format() {
        assert!(wants_base64(
            br#"{"model":"m","input":"x","encoding_format":"base64"}"#
        ));
        assert!(!wants_base64(
            br#"{"model":"m","input":"x","encoding_format":"float"}"#
        ));
        assert!(!wants_base64(br#"{"model":"m","input":"x"}"#));
        assert!(!wants_base64(b"not json"));
    }

    #[test]
    fn response_encoding() {
        let mut r = EmbeddingResponse {
            object: "list".into(),
            data: vec![
                Embedding {
                    object: "embedding".into(),
                    index: 0,
                    embedding: serde_json::json!([1.0, -2.5]),
                },
                Embedding {
                    object: "embedding".into(),
                    index: 1,
                    embedding: Value::from("AACAPw=="),
                },
            ],
            model: "m".into(),
            usage: EmbeddingUsage {
                prompt_tokens: 1,
                total_tokens: 1,
            },
        };
        encode_base64(&mut r);
        assert_eq!(r.data[0].embedding, Value::from(f32_base64(&[1.0, -2.5])));
        assert_eq!(r.data[1].embedding, Value::from("AACAPw=="));
    }
}
