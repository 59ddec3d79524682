//! A canonical stream (`chat.completion.chunk`s) as Anthropic's Messages events:
//! `message_start`, `ping`, `content_block_start` / `_delta` / `_stop` for text,
//! thinking and `tool_use` blocks, `message_delta` with the stop reason and usage,
//! `message_stop`, and `error`. Each event is a typed value written straight to the
//! output buffer.

use std::borrow::Cow;

use bytes::BytesMut;
use liter_llm::types::{ChatCompletionChunk, Delta, Usage};
use serde::Serialize;

use super::encode::{message_id, stop_reason, usage, AnthropicUsage, Empty};
use crate::error::anthropic_body;
use crate::front::StreamEncode;

/// A streamed event; its `type` is also the SSE event's name.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    MessageStart {
        message: StartMessage<'a>,
    },
    Ping,
    ContentBlockStart {
        index: u32,
        content_block: StartBlock<'a>,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta<'a>,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: StopDelta,
        usage: AnthropicUsage,
    },
    MessageStop,
}

impl Event<'_> {
    fn name(&self) -> &'static str {
        match self {
            Event::MessageStart { .. } => "message_start",
            Event::Ping => "ping",
            Event::ContentBlockStart { .. } => "content_block_start",
            Event::ContentBlockDelta { .. } => "content_block_delta",
            Event::ContentBlockStop { .. } => "content_block_stop",
            Event::MessageDelta { .. } => "message_delta",
            Event::MessageStop => "message_stop",
        }
    }
}

/// `message_start`'s message: no content yet.
#[derive(Serialize)]
struct StartMessage<'a> {
    id: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<()>,
    stop_sequence: Option<()>,
    usage: StartUsage,
}

#[derive(Serialize)]
struct StartUsage {
    input_tokens: u64,
    output_tokens: u64,
}

/// A block as `content_block_start` opens it.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock<'a> {
    Text {
        text: &'static str,
    },
    Thinking {
        thinking: &'static str,
        signature: &'static str,
    },
    ToolUse {
        id: Cow<'a, str>,
        name: &'a str,
        input: Empty,
    },
}

/// A `content_block_delta`'s delta (`type`: the variant's name and `_delta`).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
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

fn event(out: &mut BytesMut, e: &Event<'_>) {
    crate::front::sse_event(out, e.name(), e);
}

impl MessagesStream {
    fn start(&mut self, id: &str, model: &str, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let message = StartMessage {
            id: message_id(id),
            kind: "message",
            role: "assistant",
            model,
            content: [],
            stop_reason: None,
            stop_sequence: None,
            usage: StartUsage {
                input_tokens: 0,
                output_tokens: 0,
            },
        };
        event(out, &Event::MessageStart { message });
        event(out, &Event::Ping);
    }

    fn close(&mut self, out: &mut BytesMut) {
        if let Some((_, index)) = self.open.take() {
            event(out, &Event::ContentBlockStop { index });
        }
    }

    /// Makes `block` the open one (closing another), starting it with `start`.
    fn open<'a>(
        &mut self,
        block: Block,
        start: impl FnOnce() -> StartBlock<'a>,
        out: &mut BytesMut,
    ) -> u32 {
        if let Some((b, index)) = self.open {
            if b == block {
                return index;
            }
        }
        self.close(out);
        let index = self.next;
        self.next += 1;
        self.open = Some((block, index));
        let content_block = start();
        event(
            out,
            &Event::ContentBlockStart {
                index,
                content_block,
            },
        );
        index
    }

    fn delta(out: &mut BytesMut, index: u32, delta: BlockDelta<'_>) {
        event(out, &Event::ContentBlockDelta { index, delta });
    }

    fn thinking(&mut self, delta: &Delta, out: &mut BytesMut) {
        let thinking = || StartBlock::Thinking {
            thinking: "",
            signature: "",
        };
        if let Some(text) = delta.reasoning_content.as_deref().filter(|t| !t.is_empty()) {
            let index = self.open(Block::Thinking, thinking, out);
            Self::delta(out, index, BlockDelta::Thinking { thinking: text });
        }
        for block in delta.thinking_blocks.iter().flatten() {
            if let Some(sig) = block.get("signature").and_then(serde_json::Value::as_str) {
                let index = self.open(Block::Thinking, thinking, out);
                Self::delta(out, index, BlockDelta::Signature { signature: sig });
            }
        }
    }

    fn content(&mut self, delta: &Delta, out: &mut BytesMut) {
        self.thinking(delta, out);
        if let Some(text) = delta.content.as_deref().filter(|t| !t.is_empty()) {
            let index = self.open(Block::Text, || StartBlock::Text { text: "" }, out);
            Self::delta(out, index, BlockDelta::Text { text });
        }
        for call in delta.tool_calls.iter().flatten() {
            let f = call.function.as_ref();
            let start = || StartBlock::ToolUse {
                id: call.id.as_deref().map_or_else(
                    || Cow::Owned(format!("toolu_{}", call.index)),
                    Cow::Borrowed,
                ),
                name: f.and_then(|f| f.name.as_deref()).unwrap_or(""),
                input: Empty {},
            };
            let index = self.open(Block::Tool(call.index), start, out);
            if let Some(args) = f
                .and_then(|f| f.arguments.as_deref())
                .filter(|a| !a.is_empty())
            {
                Self::delta(out, index, BlockDelta::InputJson { partial_json: args });
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
            self.content(&choice.delta, out);
        }
    }

    fn done(&mut self, out: &mut BytesMut) {
        self.start("msg_empty", "", out);
        self.close(out);
        let delta = Event::MessageDelta {
            delta: StopDelta {
                stop_reason: stop_reason(self.finish.as_deref()),
                stop_sequence: None,
            },
            usage: usage(self.usage.as_ref()),
        };
        event(out, &delta);
        event(out, &Event::MessageStop);
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
    use serde_json::{json, Value};

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

    #[test]
    fn stream_events_have_anthropics_shapes() {
        let mut s = MessagesStream::default();
        let mut out = BytesMut::new();
        s.chunk(
            chunk(json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 3, "function": {"name": "f"}}]}, "finish_reason": null}]})),
            &mut out,
        );
        s.done(&mut out);
        let e = events(&out);
        assert_eq!(
            e[0]["message"],
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
                "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0}})
        );
        assert_eq!(e[1], json!({"type": "ping"}));
        assert_eq!(
            e[2],
            json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "tool_use", "id": "toolu_3", "name": "f", "input": {}}})
        );
        assert_eq!(e[3], json!({"type": "content_block_stop", "index": 0}));
        assert_eq!(
            e[4]["delta"],
            json!({"stop_reason": "end_turn", "stop_sequence": null})
        );
        assert_eq!(e[5], json!({"type": "message_stop"}));
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("event: content_block_start\ndata: "),
            "{text}"
        );
    }
}
