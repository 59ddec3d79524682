//! `POST /v1/embeddings`: deterministic vectors derived from a hash of each input.
//!
//! `input` may be a string, an array of strings, an array of token ids or an array of token-id
//! arrays. Each input gets a unit-length vector of `dimensions` values (default 8) seeded by an
//! FNV-1a hash of its text (or of its token ids), so the same input always gets the same vector.
//! `encoding_format: "base64"` sends the little-endian `f32` bytes in standard base64.
//! Prompt tokens are words for strings and ids for token arrays, at least 1.

use http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use super::bad_request;
use crate::body::{self, Reply};
use crate::state::Tokens;

/// Dimensions when the request names none.
const DEFAULT_DIMENSIONS: u64 = 8;
/// Largest `dimensions` accepted, so a typo cannot make the mock allocate gigabytes.
const MAX_DIMENSIONS: u64 = 65_536;

/// One input, as the hash sees it.
enum Input<'a> {
    Text(&'a str),
    Tokens(Vec<u64>),
}

/// Answers an embeddings request whose body is `json` and whose model is `model`.
pub(super) fn respond(json: &Value, model: &str) -> Reply {
    let inputs = match parse_inputs(json.get("input")) {
        Ok(inputs) => inputs,
        Err(message) => return bad_request(message, Some("input")),
    };
    let dimensions = match json.get("dimensions") {
        None | Some(Value::Null) => DEFAULT_DIMENSIONS,
        Some(v) => match v.as_u64() {
            Some(d) if (1..=MAX_DIMENSIONS).contains(&d) => d,
            _ => {
                return bad_request(
                    "'dimensions' must be an integer between 1 and 65536",
                    Some("dimensions"),
                )
            }
        },
    };
    let base64 = match json.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => {
            return bad_request(
                "'encoding_format' must be 'float' or 'base64'",
                Some("encoding_format"),
            )
        }
    };
    let dimensions = usize::try_from(dimensions).unwrap_or(8);

    let mut prompt_tokens = 0u64;
    let data: Vec<Embedding> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let (seed, tokens) = match input {
                Input::Text(text) => (fnv1a(text.as_bytes()), text.split_whitespace().count()),
                Input::Tokens(ids) => {
                    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
                    (fnv1a(&bytes), ids.len())
                }
            };
            prompt_tokens += tokens as u64;
            let vector = vector(seed, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                Vector::Base64(base64_encode(&bytes))
            } else {
                Vector::Float(vector)
            };
            Embedding {
                object: "embedding",
                index,
                embedding,
            }
        })
        .collect();
    let prompt_tokens = prompt_tokens.max(1);

    let response = body::json(
        StatusCode::OK,
        &EmbeddingList {
            object: "list",
            data,
            model,
            usage: Usage {
                prompt_tokens,
                total_tokens: prompt_tokens,
            },
        },
    );
    Reply {
        response,
        usage: Some(Tokens {
            prompt: prompt_tokens,
            completion: 0,
        }),
    }
}

/// The inputs of `input`, or the message of the 400 to send.
fn parse_inputs(input: Option<&Value>) -> Result<Vec<Input<'_>>, &'static str> {
    const BAD: &str = "'input' must be a string, an array of strings, an array of integers or \
                       an array of integer arrays";
    match input {
        None | Some(Value::Null) => Err("'input' is a required property"),
        Some(Value::String(s)) => Ok(vec![Input::Text(s)]),
        Some(Value::Array(items)) if items.is_empty() => Err("'input' must not be empty"),
        Some(Value::Array(items)) if items.iter().all(Value::is_u64) => {
            Ok(vec![Input::Tokens(token_ids(items).ok_or(BAD)?)])
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(Input::Text(s)),
                Value::Array(ids) => token_ids(ids).map(Input::Tokens).ok_or(BAD),
                _ => Err(BAD),
            })
            .collect(),
        Some(_) => Err(BAD),
    }
}

fn token_ids(items: &[Value]) -> Option<Vec<u64>> {
    items.iter().map(Value::as_u64).collect()
}

/// 64-bit FNV-1a: stable across platforms and Rust versions, unlike `DefaultHasher`.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A unit-length vector of `dimensions` values drawn from a splitmix64 sequence seeded by `seed`.
pub(crate) fn vector(seed: u64, dimensions: usize) -> Vec<f32> {
    let mut state = seed;
    let mut values: Vec<f32> = (0..dimensions)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // The top 24 bits as a float in [-1, 1).
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    let norm = values.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > f32::EPSILON {
        values.iter_mut().for_each(|x| *x /= norm);
    }
    values
}

/// Standard base64 with padding.
fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<Embedding>,
    model: &'a str,
    usage: Usage,
}

#[derive(Serialize)]
struct Embedding {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    total_tokens: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vectors_are_deterministic_unit_length() {
        let a = vector(fnv1a(b"hello"), 16);
        assert_eq!(a, vector(fnv1a(b"hello"), 16));
        assert_ne!(a, vector(fnv1a(b"world"), 16));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert!(a.iter().all(|x| (-1.0..=1.0).contains(x)));
    }

    #[test]
    fn input_shapes() {
        assert_eq!(parse_inputs(Some(&json!("a"))).unwrap().len(), 1);
        assert_eq!(parse_inputs(Some(&json!(["a", "b"]))).unwrap().len(), 2);
        assert_eq!(parse_inputs(Some(&json!([1, 2, 3]))).unwrap().len(), 1);
        assert_eq!(parse_inputs(Some(&json!([[1, 2], [3]]))).unwrap().len(), 2);
        assert!(parse_inputs(Some(&json!([]))).is_err());
        assert!(parse_inputs(Some(&json!([{"x": 1}]))).is_err());
        assert!(parse_inputs(Some(&json!(5))).is_err());
        assert!(parse_inputs(None).is_err());
    }
}
