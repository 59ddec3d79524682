//! Embeddings: input shapes, dimensions, float and base64 encodings, determinism.

use http::StatusCode;
use mock_upstream::MockUpstream;
use serde_json::{json, Value};

use crate::support::post_json;

fn floats(embedding: &Value) -> Vec<f32> {
    embedding
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn decode_base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|&c| c != b'=') {
        let value = ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

#[tokio::test]
async fn float_vectors_default_to_eight_unit_dimensions() {
    let mock = MockUpstream::start().await.unwrap();
    let body = json!({"model": "text-embedding-3-small", "input": ["hello world", "other", "hello world"]});
    let (status, _, reply) = post_json(&mock, "/v1/embeddings", &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["object"], "list");
    assert_eq!(reply["model"], "text-embedding-3-small");
    assert_eq!(
        reply["usage"],
        json!({"prompt_tokens": 5, "total_tokens": 5})
    );
    let data = reply["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        let v = floats(&item["embedding"]);
        assert_eq!(v.len(), 8);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
    assert_eq!(data[0]["embedding"], data[2]["embedding"]);
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);

    // Same input, same vector, across requests.
    let (_, _, again) = post_json(
        &mock,
        "/v1/embeddings",
        &json!({"model": "x", "input": "hello world"}),
    )
    .await;
    assert_eq!(again["data"][0]["embedding"], data[0]["embedding"]);
}

#[tokio::test]
async fn base64_encodes_the_same_vector_as_little_endian_f32() {
    let mock = MockUpstream::start().await.unwrap();
    let float = json!({"model": "m", "input": "abc", "dimensions": 16});
    let (_, _, float_reply) = post_json(&mock, "/v1/embeddings", &float).await;
    let expected = floats(&float_reply["data"][0]["embedding"]);
    assert_eq!(expected.len(), 16);

    let mut b64 = float.clone();
    b64["encoding_format"] = json!("base64");
    let (status, _, reply) = post_json(&mock, "/v1/embeddings", &b64).await;
    assert_eq!(status, StatusCode::OK);
    let bytes = decode_base64(reply["data"][0]["embedding"].as_str().unwrap());
    assert_eq!(bytes.len(), 16 * 4);
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(decoded, expected);
}

#[tokio::test]
async fn token_inputs_count_ids() {
    let mock = MockUpstream::start().await.unwrap();
    let body = json!({"model": "m", "input": [[1, 2, 3], [4]]});
    let (status, _, reply) = post_json(&mock, "/v1/embeddings", &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["data"].as_array().unwrap().len(), 2);
    assert_eq!(reply["usage"]["prompt_tokens"], 4);

    let single = json!({"model": "m", "input": [1, 2, 3]});
    let (_, _, one) = post_json(&mock, "/v1/embeddings", &single).await;
    assert_eq!(one["data"][0]["embedding"], reply["data"][0]["embedding"]);
    assert_eq!(mock.served().prompt_tokens, 7);
}

#[tokio::test]
async fn bad_parameters_are_400() {
    let mock = MockUpstream::start().await.unwrap();
    for body in [
        json!({"model": "m"}),
        json!({"model": "m", "input": []}),
        json!({"model": "m", "input": [{"a": 1}]}),
        json!({"model": "m", "input": "x", "dimensions": 0}),
        json!({"model": "m", "input": "x", "encoding_format": "hex"}),
    ] {
        let (status, _, reply) = post_json(&mock, "/v1/embeddings", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply["error"]["type"], "invalid_request_error");
    }
}
