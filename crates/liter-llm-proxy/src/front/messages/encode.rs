//! The canonical answer in Anthropic's Messages format: a whole `chat.completion` as a
//! `message`, and a stream of chunks as Anthropic's events (`message_start`, `ping`,
//! `content_block_start` / `_delta` / `_stop` for text, thinking and `tool_use`
//! blocks, `message_delta` with the stop reason and usage, `message_stop`, and
//! `error`).

use bytes::BytesMut;
use liter_llm::types::{ChatCompletion, ChatCompletionChunk, Delta, Usage};
use serde_json::{json, Value};

use crate::error::anthropic_body;
use crate::front::StreamEncode;

/// Anthropic's `stop_reason` for OpenAI's `finish_reason`. OpenAI does not say
/// whether a stop sequence ended the answer, so `stop` is always `end_turn`.
pub fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic's `usage`: `input_tokens` without the cache reads and writes, which it
/// counts apart (OpenAI's `prompt_tokens` includes them).
pub fn usage(u: Option<&Usage>) -> Value {
    let u = u.copied().unwrap_or_default();
    let read = u
        .cache_read_input_tokens
        .or(u.prompt_tokens_details.map(|d| d.cached_tokens))
        .unwrap_or(0);
    let written = u.cache_creation_input_tokens.unwrap_or(0);
    json!({
        "input_tokens": u.prompt_tokens.saturating_sub(read + written),
        "output_tokens": u.completion_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
    })
}

/// Anthropic's message id for a canonical answer's id.
fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_string()
    } else {
        format!("msg_{}", id.strip_prefix("chatcmpl-").unwrap_or(id))
    }
}

/// A tool call's arguments as the `input` object (`{}` when they are not JSON).
fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({}),
    }
}

/// A whole answer as a `message`.
pub fn message(answer: ChatCompletion) -> Value {
    let choice = answer.choices.into_iter().next();
    let finish = choice.as_ref().and_then(|c| c.finish_reason.clone());
    let mut content = Vec::new();
    if let Some(m) = choice.map(|c| c.message) {
        match m.thinking_blocks {
            Some(blocks) => content.extend(blocks),
            None => {
                if let Some(r) = m.reasoning_content.filter(|r| !r.is_empty()) {
                    content.push(json!({"type": "thinking", "thinking": r, "signature": ""}));
                }
            }
        }
        if let Some(text) = m.content.filter(|t| !t.is_empty()) {
            content.push(json!({"type": "text", "text": text}));
        }
        for call in m.tool_calls.unwrap_or_default() {
            content.push(json!({
                "type": "tool_use",
                "id": call.id,
                "name": call.function.name,
                "input": tool_input(&call.function.arguments),
            }));
        }
    }
    json!({
        "id": message_id(&answer.id),
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": content,
        "stop_reason": stop_reason(finish.as_deref()),
        "stop_sequence": null,
        "usage": usage(answer.usage.as_ref()),
    })
}

/// The content block open in a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    /// A tool call, by its OpenAI index.
    Tool(u32),
}

/// Canonical chunks in, Anthropic's events out.
#[derive(Default)]
pub struct MessagesStream {
    started: bool,
    /// The block open now and its index.
    open: Option<(Block, u32)>,
    /// The index the next block gets.
    next: u32,
    finish: Option<String>,
    usage: Option<Usage>,
}

fn event(out: &mut BytesMut, kind: &str, data: &Value) {
    crate::front::sse_event(out, kind, data);
}

impl MessagesStream {
    fn start(&mut self, id: &str, model: &str, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({
            "id": message_id(id), "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        });
        event(
            out,
            "message_start",
            &json!({"type": "message_start", "message": message}),
        );
        event(out, "ping", &json!({"type": "ping"}));
    }

    fn close(&mut self, out: &mut BytesMut) {
        if let Some((_, index)) = self.open.take() {
            event(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    /// Makes `block` the open one (closing another), starting it with `start`.
    fn open(&mut self, block: Block, start: impl FnOnce() -> Value, out: &mut BytesMut) -> u32 {
        if let Some((b, index)) = self.open {
            if b == block {
                return index;
            }
        }
        self.close(out);
        let index = self.next;
        self.next += 1;
        self.open = Some((block, index));
        event(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": start()}),
        );
        index
    }

    fn delta(out: &mut BytesMut, index: u32, delta: Value) {
        event(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        );
    }

    fn thinking(&mut self, delta: &Delta, out: &mut BytesMut) {
        let thinking = || json!({"type": "thinking", "thinking": "", "signature": ""});
        if let Some(text) = delta.reasoning_content.as_deref().filter(|t| !t.is_empty()) {
            let index = self.open(Block::Thinking, thinking, out);
            Self::delta(
                out,
                index,
                json!({"type": "thinking_delta", "thinking": text}),
            );
        }
        for block in delta.thinking_blocks.iter().flatten() {
            if let Some(sig) = block.get("signature").and_then(Value::as_str) {
                let index = self.open(Block::Thinking, thinking, out);
                Self::delta(
                    out,
                    index,
                    json!({"type": "signature_delta", "signature": sig}),
                );
            }
        }
    }

    fn content(&mut self, delta: Delta, out: &mut BytesMut) {
        self.thinking(&delta, out);
        if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
            let text_block = || json!({"type": "text", "text": ""});
            let index = self.open(Block::Text, text_block, out);
            Self::delta(out, index, json!({"type": "text_delta", "text": text}));
        }
        for call in delta.tool_calls.unwrap_or_default() {
            let f = call.function.unwrap_or_default();
            let start = || {
                json!({
                    "type": "tool_use",
                    "id": call.id.clone().unwrap_or_else(|| format!("toolu_{}", call.index)),
                    "name": f.name.clone().unwrap_or_default(),
                    "input": {},
                })
            };
            let index = self.open(Block::Tool(call.index), start, out);
            if let Some(args) = f.arguments.filter(|a| !a.is_empty()) {
                Self::delta(
                    out,
                    index,
                    json!({"type": "input_json_delta", "partial_json": args}),
                );
            }
        }
    }
}

impl StreamEncode for MessagesStream {
    fn chunk(&mut self, chunk: ChatCompletionChunk, out: &mut BytesMut) {
        self.start(&chunk.id, &chunk.model, out);
        if let Some(Some(u)) = chunk.usage {
            self.usage = Some(u);
        }
        if let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) {
            if choice.finish_reason.is_some() {
                self.finish = choice.finish_reason;
            }
            self.content(choice.delta, out);
        }
    }

    fn done(&mut self, out: &mut BytesMut) {
        self.start("msg_empty", "", out);
        self.close(out);
        let delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(self.finish.as_deref()), "stop_sequence": null},
            "usage": usage(self.usage.as_ref()),
        });
        event(out, "message_delta", &delta);
        event(out, "message_stop", &json!({"type": "message_stop"}));
    }

    fn error(&mut self, openai_error: &[u8], out: &mut BytesMut) {
        // The status is long sent; the error's own type decides (else `api_error`).
        let body = anthropic_body(axum::http::StatusCode::BAD_GATEWAY, openai_error);
        out.extend_from_slice(b"event: error\ndata: ");
        out.extend_from_slice(&body);
        out.extend_from_slice(b"\n\n");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn events(out: &BytesMut) -> Vec<Value> {
        String::from_utf8_lossy(out)
            .split("\n\n")
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }

    fn chunk(v: Value) -> ChatCompletionChunk {
        let mut base = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "m"});
        for (k, x) in v.as_object().unwrap() {
            base[k] = x.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn a_stream_becomes_anthropic_events() {
        let mut s = MessagesStream::default();
        let mut out = BytesMut::new();
        for c in [
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "hm"}, "finish_reason": null}]}),
            json!({"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": null}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\""}}]}, "finish_reason": null}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}, "finish_reason": "tool_calls"}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13, "prompt_tokens_details": {"cached_tokens": 4}}}),
        ] {
            s.chunk(chunk(c), &mut out);
        }
        s.done(&mut out);
        let e = events(&out);
        let kinds: Vec<&str> = e.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(e[0]["message"]["id"], "msg_1");
        assert_eq!(
            e[3]["delta"],
            json!({"type": "thinking_delta", "thinking": "hm"})
        );
        assert_eq!(e[6]["delta"], json!({"type": "text_delta", "text": "hi"}));
        assert_eq!(e[8]["content_block"]["id"], "c1");
        assert_eq!(e[8]["index"], 2);
        assert_eq!(e[10]["delta"]["partial_json"], ":1}");
        assert_eq!(e[12]["delta"]["stop_reason"], "tool_use");
        assert_eq!(e[12]["usage"]["input_tokens"], 6);
        assert_eq!(e[12]["usage"]["cache_read_input_tokens"], 4);
        assert_eq!(e[12]["usage"]["output_tokens"], 3);
    }

    #[test]
    fn a_whole_answer_becomes_a_message() {
        let answer: ChatCompletion = serde_json::from_value(json!({
            "id": "chatcmpl-9", "object": "chat.completion", "created": 0, "model": "gpt",
            "choices": [{"index": 0, "finish_reason": "length", "logprobs": null,
                "message": {"role": "assistant", "content": "text", "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"x\":2}"}}]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        }))
        .unwrap();
        let m = message(answer);
        assert_eq!(m["id"], "msg_9");
        assert_eq!(m["stop_reason"], "max_tokens");
        assert_eq!(m["content"][0], json!({"type": "text", "text": "text"}));
        assert_eq!(m["content"][1]["input"], json!({"x": 2}));
        assert_eq!(m["usage"]["input_tokens"], 5);
        for (finish, stop) in [
            ("stop", "end_turn"),
            ("tool_calls", "tool_use"),
            ("content_filter", "refusal"),
        ] {
            assert_eq!(stop_reason(Some(finish)), stop);
        }
    }

    #[test]
    fn errors_are_anthropic_error_events() {
        let mut s = MessagesStream::default();
        let mut out = BytesMut::new();
        s.error(
            br#"{"error":{"message":"cut","type":"api_error","code":"upstream_error"}}"#,
            &mut out,
        );
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("event: error\ndata: "), "{text}");
        let e = events(&out);
        assert_eq!(
            e[0],
            json!({"type": "error", "error": {"type": "api_error", "message": "cut"}})
        );
    }
}
