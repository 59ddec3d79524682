//! Anthropic's streaming events turned into `chat.completion.chunk`s.
//!
//! | Anthropic event                                   | what comes out                                  |
//! |---------------------------------------------------|-------------------------------------------------|
//! | `message_start`                                   | the role chunk (`{"role":"assistant","content":""}`); usage noted |
//! | `content_block_start` `text`                      | nothing (or its text, if any)                   |
//! | `content_block_start` `tool_use`                  | a tool-call chunk: `index`, `id`, `type`, name, `arguments: ""` |
//! | `content_block_delta` `text_delta`                | a `content` chunk                               |
//! | `content_block_delta` `input_json_delta`          | an `arguments` fragment for the same `index`    |
//! | `content_block_delta` `thinking_delta`            | a `reasoning_content` chunk                     |
//! | `content_block_delta` `signature_delta`           | a `thinking_blocks` chunk carrying the signature |
//! | `content_block_start` `redacted_thinking`         | a `thinking_blocks` chunk with the block        |
//! | `message_delta`                                   | nothing; stop reason and usage noted            |
//! | `message_stop`                                    | the finish chunk, the usage chunk (when asked), `Done` |
//! | `error`                                           | [`StreamOut::Error`], then nothing more         |
//! | `ping`, `content_block_stop`, unknown events      | nothing                                         |
//!
//! Tool calls are numbered 0, 1, … in the order their blocks start, whatever Anthropic's
//! block index. A body that ends before `message_stop` (or an event that is not JSON)
//! yields a 502 [`StreamOut::Error`]. After `Done` or an error, input is ignored. The
//! bytes, the role chunk, the end of the answer and errors are handled by the shared
//! [`StreamDriver`]; this module maps the events.
//!
//! [`StreamOut::Error`]: crate::providers::adapter::StreamOut::Error

use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{stream_error, ErrorObject};
use super::finish_reason;
use super::response::AnthropicUsage;
use crate::providers::adapter::StreamMeta;
use crate::providers::sse::{SseDecoder, SseEvent, DEFAULT_MAX_EVENT_BYTES};
use crate::providers::stream_driver::{sse_json, Emit, EventMapping, Flow, StreamDriver};
use crate::types::{Delta, FunctionCallDelta, ProviderError, ToolCallDelta, Usage};

/// What kind of content block an Anthropic block index holds.
#[derive(Debug, Clone, Copy)]
enum Block {
    Text,
    /// A `tool_use` block and its OpenAI tool-call index.
    Tool(u32),
    Thinking,
    Other,
}

/// The events we read, by their `type`.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: Value,
    },
    ContentBlockDelta {
        index: u64,
        delta: Value,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<AnthropicUsage>,
    },
    MessageStop,
    Error {
        error: ErrorObject,
    },
    /// `ping`, `content_block_stop` and event types added later.
    #[serde(other)]
    Ignored,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    usage: AnthropicUsage,
}

#[derive(Deserialize, Default)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

/// Anthropic's events, mapped (the state one stream needs between them).
#[derive(Debug, Default)]
pub struct AnthropicEvents {
    /// Anthropic block index → what it holds.
    blocks: Vec<(u64, Block)>,
    /// Tool calls seen so far (the next tool call's index).
    tools: u32,
    usage: Option<AnthropicUsage>,
    stop_reason: Option<String>,
}

/// Translates one Anthropic stream. Feed it the body's bytes as they arrive.
pub type StreamTranslator = StreamDriver<AnthropicEvents>;

impl StreamDriver<AnthropicEvents> {
    /// A translator whose chunks carry `id`, `model` and `created`; with `include_usage`
    /// every chunk has `"usage": null` and a last chunk carries the usage, as OpenAI does.
    pub fn new(id: String, model: String, created: u64, include_usage: bool) -> Self {
        Self::for_meta(StreamMeta {
            id,
            model,
            created,
            include_usage,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
        })
    }

    /// A translator for `meta` (its event size limit included).
    pub fn for_meta(meta: StreamMeta) -> Self {
        StreamDriver::with_mapping(meta, AnthropicEvents::default())
    }
}

impl EventMapping for AnthropicEvents {
    type Framing = SseDecoder;
    const PROVIDER: &'static str = "anthropic";
    const END: &'static str = "message_stop";

    fn frame(&mut self, event: &SseEvent, emit: &mut Emit<'_>) -> Result<Flow, ProviderError> {
        match sse_json::<Event>(Self::PROVIDER, event)? {
            Event::MessageStart { message } => {
                self.usage = Some(message.usage);
                emit.start();
            }
            Event::ContentBlockStart {
                index,
                content_block,
            } => self.block_start(index, &content_block, emit),
            Event::ContentBlockDelta { index, delta } => self.block_delta(index, &delta, emit),
            Event::MessageDelta { delta, usage } => {
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                }
                if let Some(newer) = usage {
                    self.usage
                        .get_or_insert_with(AnthropicUsage::default)
                        .merge(&newer);
                }
            }
            Event::MessageStop => {
                emit.start();
                emit.finish(finish_reason(self.stop_reason.as_deref()));
                return Ok(Flow::Complete);
            }
            Event::Error { error } => return Err(stream_error(&error)),
            Event::Ignored => {}
        }
        Ok(Flow::Open)
    }

    /// `None` before `message_start`.
    fn usage(&self) -> Option<Usage> {
        self.usage.map(AnthropicUsage::to_usage)
    }
}

impl AnthropicEvents {
    fn block_start(&mut self, index: u64, block: &Value, emit: &mut Emit<'_>) {
        emit.start();
        let text = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or("");
        let kind = match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                if !text("text").is_empty() {
                    emit.content(text("text"));
                }
                Block::Text
            }
            Some("tool_use") => {
                let tool = self.tools;
                self.tools += 1;
                let call = ToolCallDelta {
                    index: tool,
                    id: Some(text("id").to_string()),
                    kind: Some("function".into()),
                    function: Some(FunctionCallDelta {
                        name: Some(text("name").to_string()),
                        arguments: Some(String::new()),
                    }),
                };
                emit.tool_call(call);
                Block::Tool(tool)
            }
            Some("thinking") => {
                if !text("thinking").is_empty() {
                    emit.reasoning(text("thinking"));
                }
                Block::Thinking
            }
            Some("redacted_thinking") => {
                let delta = Delta {
                    thinking_blocks: Some(vec![block.clone()]),
                    ..Delta::default()
                };
                emit.delta(delta);
                Block::Other
            }
            _ => Block::Other,
        };
        match self.blocks.iter_mut().find(|(i, _)| *i == index) {
            Some(entry) => entry.1 = kind,
            None => self.blocks.push((index, kind)),
        }
    }

    fn block_delta(&mut self, index: u64, delta: &Value, emit: &mut Emit<'_>) {
        let block = self
            .blocks
            .iter()
            .find(|(i, _)| *i == index)
            .map_or(Block::Other, |(_, b)| *b);
        let text = |key: &str| delta.get(key).and_then(Value::as_str).unwrap_or("");
        match (delta.get("type").and_then(Value::as_str), block) {
            (Some("text_delta"), _) => {
                emit.start();
                emit.content(text("text"));
            }
            (Some("input_json_delta"), Block::Tool(tool)) => {
                let fragment = text("partial_json");
                if !fragment.is_empty() {
                    let call = ToolCallDelta {
                        index: tool,
                        function: Some(FunctionCallDelta {
                            name: None,
                            arguments: Some(fragment.to_string()),
                        }),
                        ..ToolCallDelta::default()
                    };
                    emit.tool_call(call);
                }
            }
            (Some("thinking_delta"), _) => {
                emit.start();
                emit.reasoning(text("thinking"));
            }
            (Some("signature_delta"), _) => {
                let signed =
                    json!({"type": "thinking", "thinking": "", "signature": text("signature")});
                let delta = Delta {
                    thinking_blocks: Some(vec![signed]),
                    ..Delta::default()
                };
                emit.delta(delta);
            }
            // citations_delta, deltas of server tool blocks, and anything newer.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::adapter::StreamOut;

    fn event(data: Value) -> String {
        let kind = data["type"].as_str().unwrap().to_string();
        format!("event: {kind}\ndata: {data}\n\n")
    }

    fn chunks(out: &[StreamOut]) -> Vec<Value> {
        out.iter()
            .map(|o| match o {
                StreamOut::Chunk(c) => serde_json::to_value(c).unwrap(),
                StreamOut::Error(e) => json!({"error": e.status}),
                StreamOut::Done => json!("[DONE]"),
            })
            .collect()
    }

    fn start() -> String {
        event(
            json!({"type":"message_start","message":{"id":"msg_1","type":"message",
            "role":"assistant","content":[],"model":"claude","stop_reason":null,
            "usage":{"input_tokens":5,"output_tokens":1}}}),
        )
    }

    #[test]
    fn text_stream_without_usage() {
        let mut t = StreamTranslator::new("chatcmpl-1".into(), "alias".into(), 9, false);
        let body = [
            start(),
            event(json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})),
            event(json!({"type":"ping"})),
            event(json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}})),
            event(json!({"type":"content_block_stop","index":0})),
            event(json!({"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":3}})),
            event(json!({"type":"message_stop"})),
        ]
        .concat();
        let mut out = t.feed(body.as_bytes());
        out.extend(t.finish());
        let got = chunks(&out);
        assert_eq!(got.len(), 4, "{got:#?}");
        assert_eq!(
            got[0]["choices"][0]["delta"],
            json!({"role":"assistant","content":""})
        );
        assert_eq!(got[0]["id"], "chatcmpl-1");
        assert_eq!(got[0]["model"], "alias");
        assert!(got[0].get("usage").is_none());
        assert_eq!(got[1]["choices"][0]["delta"], json!({"content":"Hi"}));
        assert_eq!(got[2]["choices"][0]["finish_reason"], "length");
        assert_eq!(got[3], json!("[DONE]"));
        let usage = t.usage().unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (5, 3));
        assert!(t.is_finished());
    }

    #[test]
    fn error_event_stops_the_stream() {
        let mut t = StreamTranslator::new("c".into(), "m".into(), 0, true);
        let body = [
            start(),
            event(
                json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
            ),
            event(json!({"type":"message_stop"})),
        ]
        .concat();
        let out = t.feed(body.as_bytes());
        assert_eq!(out.len(), 2);
        match &out[1] {
            StreamOut::Error(e) => {
                assert_eq!(e.status, 503);
                assert_eq!(e.error.kind, "overloaded_error");
                assert_eq!(e.error.message, "Overloaded");
            }
            other => panic!("{other:?}"),
        }
        assert!(t.feed(b"data: {}\n\n").is_empty());
        assert!(t.finish().is_empty());
    }

    #[test]
    fn truncated_stream_and_bad_json_are_errors() {
        let mut t = StreamTranslator::new("c".into(), "m".into(), 0, false);
        assert_eq!(t.feed(start().as_bytes()).len(), 1);
        let end = t.finish();
        assert!(matches!(&end[..], [StreamOut::Error(e)] if e.status == 502));

        let mut t = StreamTranslator::new("c".into(), "m".into(), 0, false);
        let out = t.feed(b"event: message_start\ndata: {not json\n\n");
        assert!(matches!(&out[..], [StreamOut::Error(e)] if e.status == 502));
    }

    #[test]
    fn unknown_events_and_deltas_are_ignored() {
        let mut t = StreamTranslator::new("c".into(), "m".into(), 0, false);
        let body = [
            start(),
            event(json!({"type":"something_new","x":1})),
            event(json!({"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"s","name":"web_search","input":{}}})),
            event(json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{}"}})),
            event(json!({"type":"content_block_delta","index":1,"delta":{"type":"citations_delta","citation":{}}})),
        ]
        .concat();
        assert_eq!(t.feed(body.as_bytes()).len(), 1);
    }
}
