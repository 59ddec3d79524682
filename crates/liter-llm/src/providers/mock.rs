//! The built-in `mock/` provider: an echo model answered in-process, with no key and
//! no network, in the spirit of LiteLLM's `mock_response`.
//!
//! It replies with the text of the last user message, or with the request's
//! `mock_response` string when one is given. Token counts are whitespace-separated
//! words, so they are deterministic. `max_tokens`/`max_completion_tokens` truncate the
//! reply (finish reason `length`).

use serde_json::Value;

use crate::types::{
    AssistantMessage, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Choice,
    ChunkChoice, Delta, Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, Usage,
};

pub const PREFIX: &str = "mock";

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// The reply text, its finish reason and usage for a request.
pub fn answer(req: &ChatCompletionRequest) -> (String, &'static str, Usage) {
    let text = match req.extra.get("mock_response").and_then(Value::as_str) {
        Some(fixed) => fixed.to_string(),
        None => req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.text())
            .unwrap_or_default(),
    };
    let prompt: u64 = req
        .messages
        .iter()
        .map(|m| words(&m.text()))
        .sum::<u64>()
        .max(1);
    let limit = req.max_completion_tokens.or(req.max_tokens);
    let (text, finish) = match limit {
        Some(limit) if words(&text) > limit => {
            let cut: Vec<&str> = text.split_whitespace().take(limit as usize).collect();
            (cut.join(" "), "length")
        }
        _ => (text, "stop"),
    };
    let completion = words(&text);
    (text, finish, Usage::new(prompt, completion))
}

/// A non-streaming `chat.completion`.
pub fn chat(req: &ChatCompletionRequest, id: &str, created: u64) -> ChatCompletion {
    let (text, finish, usage) = answer(req);
    ChatCompletion {
        id: id.to_string(),
        object: "chat.completion".into(),
        created,
        model: req.model.clone(),
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant".into(),
                content: Some(text),
                refusal: None,
                ..AssistantMessage::default()
            },
            logprobs: None,
            finish_reason: Some(finish.into()),
        }],
        usage: Some(usage),
        system_fingerprint: Some("fp_liter_llm_mock".into()),
    }
}

/// The chunks of a streamed answer, in order: role, one per word, finish, and the
/// usage chunk when `stream_options.include_usage` is set.
pub fn chat_chunks(
    req: &ChatCompletionRequest,
    id: &str,
    created: u64,
) -> Vec<ChatCompletionChunk> {
    let (text, finish, usage) = answer(req);
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let usage_field = if include_usage { Some(None) } else { None };
    let chunk = |delta: Delta, finish: Option<&str>| ChatCompletionChunk {
        id: id.to_string(),
        object: "chat.completion.chunk".into(),
        created,
        model: req.model.clone(),
        choices: vec![ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason: finish.map(str::to_string),
        }],
        usage: usage_field,
    };
    let mut out = vec![chunk(
        Delta {
            role: Some("assistant".into()),
            content: Some(String::new()),
            ..Delta::default()
        },
        None,
    )];
    let pieces: Vec<&str> = text.split_inclusive(' ').collect();
    for piece in pieces {
        out.push(chunk(
            Delta {
                role: None,
                content: Some(piece.to_string()),
                ..Delta::default()
            },
            None,
        ));
    }
    out.push(chunk(Delta::default(), Some(finish)));
    if include_usage {
        out.push(ChatCompletionChunk {
            id: id.to_string(),
            object: "chat.completion.chunk".into(),
            created,
            model: req.model.clone(),
            choices: vec![],
            usage: Some(Some(usage)),
        });
    }
    out
}

fn input_texts(input: &Value) -> Vec<String> {
    match input {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        other => vec![other.to_string()],
    }
}

/// Deterministic unit-ish vectors derived from the input text (FNV-1a seeded).
fn vector(text: &str, dims: usize) -> Vec<f32> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (0..dims)
        .map(|i| {
            h ^= i as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
            ((h >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// An embedding as JSON: floats, or OpenAI's base64 of little-endian f32 values.
fn encode(vector: Vec<f32>, base64: bool) -> Value {
    if !base64 {
        return Value::from(vector);
    }
    Value::from(super::embeddings::f32_base64(&vector))
}

/// Embeddings for every input, `dimensions` long (default 8), in `encoding_format`.
pub fn embeddings(req: &EmbeddingRequest) -> EmbeddingResponse {
    let texts = input_texts(&req.input);
    let dims = req.dimensions.unwrap_or(8).clamp(1, 4096);
    let base64 = req.encoding_format.as_deref() == Some("base64");
    let prompt: u64 = texts.iter().map(|t| words(t).max(1)).sum();
    EmbeddingResponse {
        object: "list".into(),
        data: texts
            .iter()
            .enumerate()
            .map(|(i, t)| Embedding {
                object: "embedding".into(),
                index: i as u32,
                embedding: encode(vector(t, dims), base64),
            })
            .collect(),
        model: req.model.clone(),
        usage: EmbeddingUsage {
            prompt_tokens: prompt,
            total_tokens: prompt,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: Value) -> ChatCompletionRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn echoes_last_user_message() {
        let r = req(serde_json::json!({"model":"m","messages":[
            {"role":"system","content":"be brief"},
            {"role":"user","content":"hello there"}]}));
        let c = chat(&r, "id", 1);
        assert_eq!(c.choices[0].message.content.as_deref(), Some("hello there"));
        assert_eq!(c.usage.unwrap(), Usage::new(4, 2));
    }

    #[test]
    fn mock_response_and_truncation() {
        let r = req(
            serde_json::json!({"model":"m","max_tokens":2,"mock_response":"a b c d",
            "messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}),
        );
        let (text, finish, usage) = answer(&r);
        assert_eq!((text.as_str(), finish), ("a b", "length"));
        assert_eq!(usage.completion_tokens, 2);
    }

    #[test]
    fn chunks_reassemble_and_carry_usage() {
        let r = req(serde_json::json!({"model":"m","stream":true,
            "stream_options":{"include_usage":true},
            "messages":[{"role":"user","content":"one two three"}]}));
        let chunks = chat_chunks(&r, "id", 1);
        let text: String = chunks
            .iter()
            .filter_map(|c| c.choices.first().and_then(|ch| ch.delta.content.clone()))
            .collect();
        assert_eq!(text, "one two three");
        let last = chunks.last().unwrap();
        assert!(last.choices.is_empty());
        assert_eq!(last.usage, Some(Some(Usage::new(3, 3))));
    }

    #[test]
    fn embeddings_are_deterministic() {
        let r: EmbeddingRequest = serde_json::from_value(
            serde_json::json!({"model":"m","input":["a","b"],"dimensions":4}),
        )
        .unwrap();
        let a = embeddings(&r);
        let b = embeddings(&r);
        assert_eq!(a.data.len(), 2);
        assert_eq!(a.data[0].embedding, b.data[0].embedding);
        assert_ne!(a.data[0].embedding, a.data[1].embedding);
    }

    #[test]
    fn embeddings_in_base64() {
        let r: EmbeddingRequest = serde_json::from_value(
            serde_json::json!({"model":"m","input":"a","dimensions":3,"encoding_format":"base64"}),
        )
        .unwrap();
        use base64::Engine as _;
        let out = embeddings(&r);
        let text = out.data[0].embedding.as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
        assert_eq!(bytes.len(), 12);
        let first = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        assert_eq!(Value::from(first), Value::from(vector("a", 3)[0]));
    }
}
