//! The deterministic echo model in Bedrock's shapes: Converse (whole, or as an
//! event stream) and InvokeModel embeddings.
//!
//! The reply is `"echo: "` and the text of the last user turn. Tokens are words:
//! input tokens are the words of `system` and of every turn's text and tool results
//! (at least 1), output tokens the words of the reply; `inferenceConfig.maxTokens`
//! below that cuts the reply (`stopReason: "max_tokens"`). With `toolConfig.tools` and
//! a last user text containing `call tool`, the reply is one `toolUse` of the first
//! tool with input `{}` (1 output token). A `toolChoice` that forces a tool (`tool`, or
//! `any`: the first) is answered with its call whatever the text, the input a value
//! fitting its schema ([`crate::sample`]); an `outputConfig.textFormat` JSON schema makes
//! the text reply such a value. A stream sends `messageStart`, the content
//! block's events (one `contentBlockDelta` per word, or a `contentBlockStart` and two
//! input fragments for a tool call), `contentBlockStop`, `messageStop`, `metadata`.
//!
//! Embeddings: Titan (`amazon.titan-embed-*`, `{"inputText"}`) answers
//! `{"embedding", "inputTextTokenCount"}`; Cohere (`cohere.embed-*`, `{"texts"}`)
//! answers `{"embeddings": [[…]]}`. Vectors are unit length, derived from a hash of the
//! text, `dimensions` long (Titan; default 8).

use crate::sample::sample;
use http::StatusCode;
use serde_json::{json, Value};

use super::{bad_request, frame, text_of};
use crate::body::{self, MockBody, Reply};
use crate::state::{Shared, Tokens};

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// `text` cut before each word but the first, so the pieces concatenate to `text`.
fn pieces(text: &str) -> Vec<&str> {
    let mut starts = vec![0];
    let mut prev_ws = false;
    for (i, c) in text.char_indices() {
        if !c.is_whitespace() && prev_ws && i > 0 {
            starts.push(i);
        }
        prev_ws = c.is_whitespace();
    }
    let ends = starts.iter().skip(1).copied().chain([text.len()]);
    starts
        .iter()
        .zip(ends)
        .filter_map(|(&s, e)| text.get(s..e))
        .filter(|p| !p.is_empty())
        .collect()
}

/// The `toolSpec` `toolChoice` forces: `{tool: {name}}`, or `{any: {}}` (the first).
fn forced_tool(json: &Value) -> Option<&Value> {
    let choice = json.pointer("/toolConfig/toolChoice")?;
    let tools = json.pointer("/toolConfig/tools")?.as_array()?;
    let specs = tools.iter().filter_map(|t| t.get("toolSpec"));
    if choice.get("any").is_some() {
        return specs.into_iter().next();
    }
    let name = choice.pointer("/tool/name")?.as_str()?;
    specs
        .into_iter()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(name))
}

/// The tool to call and its input: a forced one with a fitting input, or the first tool
/// with `{}` when the text says `call tool` (which keeps the plain call even when a call
/// is forced).
fn tool_call<'a>(json: &'a Value, last_user: &str) -> (Option<&'a str>, Value) {
    match forced_tool(json).filter(|_| !last_user.contains("call tool")) {
        Some(spec) => (
            spec.get("name").and_then(Value::as_str),
            sample(spec.pointer("/inputSchema/json").unwrap_or(&Value::Null)),
        ),
        None => (
            json.pointer("/toolConfig/tools/0/toolSpec/name")
                .and_then(Value::as_str)
                .filter(|_| last_user.contains("call tool")),
            json!({}),
        ),
    }
}

/// The text reply and its stop reason: a value fitting the `outputConfig` JSON schema,
/// else the echo, cut at `max` words.
fn text_reply(json: &Value, last_user: &str, max: Option<u64>) -> (String, &'static str) {
    let schema = json
        .pointer("/outputConfig/textFormat/structure/jsonSchema/schema")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok());
    let full = match schema {
        Some(schema) => sample(&schema).to_string(),
        None => format!("echo: {last_user}"),
    };
    match max {
        Some(n) if n < words(&full) => {
            let cut: String = pieces(&full).into_iter().take(n as usize).collect();
            (cut.trim_end().to_string(), "max_tokens")
        }
        _ => (full, "end_turn"),
    }
}

pub(super) fn respond(shared: &Shared, json: &Value, stream: bool) -> Reply {
    let Some(turns) = json.get("messages").and_then(Value::as_array) else {
        return bad_request("messages: required");
    };
    let mut input = words(
        &json
            .get("system")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
    );
    let mut last_user = String::new();
    for turn in turns {
        input += words(&text_of(turn.get("content"), true));
        if turn.get("role").and_then(Value::as_str) == Some("user") {
            last_user = text_of(turn.get("content"), false);
        }
    }
    let (tool, tool_input) = tool_call(json, &last_user);
    let tool_text = tool_input.to_string();
    let max = json
        .pointer("/inferenceConfig/maxTokens")
        .and_then(Value::as_u64);
    let id = shared.next_id();
    let (text, stop) = match tool {
        Some(_) => (String::new(), "tool_use"),
        None => text_reply(json, &last_user, max),
    };
    let output = if tool.is_some() { 1 } else { words(&text) };
    let input = input.max(1);
    let usage =
        json!({"inputTokens": input, "outputTokens": output, "totalTokens": input + output});
    let tool_id = format!("tooluse_mock_{id}");
    let response = if stream {
        let mut frames = vec![frame::event("messageStart", &json!({"role": "assistant"}))];
        match tool {
            Some(name) => {
                frames.push(frame::event(
                    "contentBlockStart",
                    &json!({"contentBlockIndex": 0,
                    "start": {"toolUse": {"toolUseId": tool_id, "name": name}}}),
                ));
                let mid = (0..=tool_text.len() / 2)
                    .rev()
                    .find(|i| tool_text.is_char_boundary(*i))
                    .unwrap_or(0);
                let (head, tail) = tool_text.split_at(mid);
                for piece in [head, tail] {
                    frames.push(frame::event(
                        "contentBlockDelta",
                        &json!({"contentBlockIndex": 0,
                        "delta": {"toolUse": {"input": piece}}}),
                    ));
                }
            }
            None => {
                for piece in pieces(&text) {
                    frames.push(frame::event(
                        "contentBlockDelta",
                        &json!({"contentBlockIndex": 0, "delta": {"text": piece}}),
                    ));
                }
            }
        }
        frames.push(frame::event(
            "contentBlockStop",
            &json!({"contentBlockIndex": 0}),
        ));
        frames.push(frame::event("messageStop", &json!({"stopReason": stop})));
        frames.push(frame::event(
            "metadata",
            &json!({"usage": usage, "metrics": {"latencyMs": 1}}),
        ));
        body::response(
            StatusCode::OK,
            "application/vnd.amazon.eventstream",
            MockBody::stream(frames),
        )
    } else {
        let block = match tool {
            Some(name) => {
                json!({"toolUse": {"toolUseId": tool_id, "name": name, "input": tool_input}})
            }
            None => json!({"text": text}),
        };
        body::json(
            StatusCode::OK,
            &json!({
                "output": {"message": {"role": "assistant", "content": [block]}},
                "stopReason": stop,
                "usage": usage,
                "metrics": {"latencyMs": 1},
            }),
        )
    };
    Reply {
        response,
        usage: Some(Tokens {
            prompt: input,
            completion: output,
        }),
    }
}

/// A unit vector of `n` values seeded by an FNV-1a hash of `text`.
fn vector(text: &str, n: usize) -> Vec<f32> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut v: Vec<f32> = (0..n)
        .map(|_| {
            h ^= h << 13;
            h ^= h >> 7;
            h ^= h << 17;
            (h % 2000) as f32 / 1000.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

pub(super) fn embeddings(json: &Value, model: &str) -> Reply {
    if model.contains("amazon.titan-embed") {
        let Some(text) = json.get("inputText").and_then(Value::as_str) else {
            return bad_request("inputText: required");
        };
        let dims = json
            .get("dimensions")
            .and_then(Value::as_u64)
            .unwrap_or(8)
            .clamp(1, 4096);
        let tokens = words(text).max(1);
        Reply {
            response: body::json(
                StatusCode::OK,
                &json!({
                "embedding": vector(text, dims as usize), "inputTextTokenCount": tokens}),
            ),
            usage: Some(Tokens {
                prompt: tokens,
                completion: 0,
            }),
        }
    } else if model.contains("cohere.embed") {
        let Some(texts) = json.get("texts").and_then(Value::as_array) else {
            return bad_request("texts: required");
        };
        if json.get("input_type").and_then(Value::as_str).is_none() {
            return bad_request("input_type: required");
        }
        let texts: Vec<&str> = texts.iter().filter_map(Value::as_str).collect();
        let vectors: Vec<Vec<f32>> = texts.iter().map(|t| vector(t, 8)).collect();
        let tokens = texts.iter().map(|t| words(t)).sum::<u64>().max(1);
        Reply {
            response: body::json(
                StatusCode::OK,
                &json!({
                "id": "mock-embed", "response_type": "embeddings_floats",
                "texts": texts, "embeddings": vectors}),
            ),
            usage: Some(Tokens {
                prompt: tokens,
                completion: 0,
            }),
        }
    } else {
        bad_request("this model does not support embeddings")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_concatenate() {
        for t in ["echo: a  b", "x", "", " lead", "é ü"] {
            assert_eq!(pieces(t).concat(), t);
        }
        assert_eq!(pieces("echo: hi there"), vec!["echo: ", "hi ", "there"]);
    }
}
