//! Cohere's Chat v2 stream (SSE, each event's `type` in its JSON) turned into
//! `chat.completion.chunk`s.
//!
//! | Cohere event        | what comes out                                                  |
//! |---------------------|-----------------------------------------------------------------|
//! | `message-start`     | the role chunk (`{"role":"assistant","content":""}`)            |
//! | `content-start`     | its text (or thinking), if any                                  |
//! | `content-delta`     | a `content` chunk (`text`), or a `reasoning_content` chunk (`thinking`) |
//! | `tool-plan-delta`   | a `reasoning_content` chunk                                     |
//! | `tool-call-start`   | a tool-call chunk: `index`, `id`, `type`, name, `arguments`     |
//! | `tool-call-delta`   | an `arguments` fragment for the same `index`                    |
//! | `message-end`       | the finish chunk, the usage chunk (when asked), `Done`; an `ERROR`/`TIMEOUT` finish is an error |
//! | `content-end`, `tool-call-end`, `citation-*`, unknown events | nothing               |
//!
//! Tool calls are numbered 0, 1, … in the order they start, whatever Cohere's index. A body
//! that ends before `message-end`, or an event that is not JSON, yields a 502
//! [`StreamOut::Error`]. After `Done` or an error, input is ignored.

use serde::Deserialize;
use serde_json::Value;

use super::{finish_reason, CohereUsage};
use crate::providers::adapter::{StreamMeta, StreamOut};
use crate::providers::chunks::ChunkWriter;
use crate::providers::sse::{SseDecoder, SseEvent};
use crate::types::{FunctionCallDelta, ProviderError, ToolCallDelta, Usage};

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
enum Event {
    MessageStart,
    ContentStart {
        #[serde(default)]
        delta: Value,
    },
    ContentDelta {
        #[serde(default)]
        delta: Value,
    },
    ToolPlanDelta {
        #[serde(default)]
        delta: Value,
    },
    ToolCallStart {
        #[serde(default)]
        index: Option<u64>,
        #[serde(default)]
        delta: Value,
    },
    ToolCallDelta {
        #[serde(default)]
        index: Option<u64>,
        #[serde(default)]
        delta: Value,
    },
    MessageEnd {
        #[serde(default)]
        delta: EndDelta,
    },
    /// `content-end`, `tool-call-end`, `citation-start`, `citation-end`, `debug`, and
    /// events added later.
    #[serde(other)]
    Ignored,
}

#[derive(Deserialize, Default)]
struct EndDelta {
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    usage: Option<CohereUsage>,
}

/// Translates one Cohere stream. Feed it the body's bytes as they arrive.
#[derive(Debug)]
pub struct StreamTranslator {
    sse: SseDecoder,
    out: ChunkWriter,
    started: bool,
    /// Cohere tool-call index → our tool-call index.
    tools: Vec<(u64, u32)>,
    usage: Option<CohereUsage>,
    ended: bool,
}

/// A string at `pointer` in `v`.
fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

impl StreamTranslator {
    pub fn new(meta: StreamMeta) -> Self {
        Self {
            sse: SseDecoder::new(),
            out: ChunkWriter::new(meta),
            started: false,
            tools: Vec::new(),
            usage: None,
            ended: false,
        }
    }

    /// Consumes the next bytes of the body (any split, even inside a character).
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<StreamOut> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        let mut events = Vec::new();
        self.sse.feed(bytes, &mut events);
        for event in events {
            self.handle(&event, &mut out);
            if self.ended {
                break;
            }
        }
        out
    }

    /// Call at the end of the body: an error if the stream stopped before `message-end`.
    pub fn finish(&mut self) -> Vec<StreamOut> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        vec![StreamOut::Error(
            ProviderError::new(
                502,
                "api_error",
                "the cohere stream ended before message-end",
            )
            .with_code("stream_truncated"),
        )]
    }

    /// The usage reported so far (Cohere reports it in `message-end`).
    pub fn usage(&self) -> Option<Usage> {
        self.usage.map(CohereUsage::to_usage)
    }

    /// Whether `Done` or an error has been emitted.
    pub fn is_finished(&self) -> bool {
        self.ended
    }

    fn handle(&mut self, event: &SseEvent, out: &mut Vec<StreamOut>) {
        if event.data.trim() == "[DONE]" {
            return;
        }
        let parsed = match serde_json::from_str::<Event>(&event.data) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.ended = true;
                out.push(StreamOut::Error(
                    ProviderError::new(
                        502,
                        "api_error",
                        format!("unreadable cohere stream event {:?}: {e}", event.event),
                    )
                    .with_code("bad_upstream_response"),
                ));
                return;
            }
        };
        match parsed {
            Event::MessageStart => self.start(out),
            Event::ContentStart { delta } | Event::ContentDelta { delta } => {
                self.start(out);
                if let Some(t) = text(&delta, "/message/content/text").filter(|t| !t.is_empty()) {
                    out.push(self.out.content(t));
                }
                if let Some(t) = text(&delta, "/message/content/thinking").filter(|t| !t.is_empty())
                {
                    out.push(self.out.reasoning(t));
                }
            }
            Event::ToolPlanDelta { delta } => {
                self.start(out);
                if let Some(t) = text(&delta, "/message/tool_plan").filter(|t| !t.is_empty()) {
                    out.push(self.out.reasoning(t));
                }
            }
            Event::ToolCallStart { index, delta } => {
                self.start(out);
                let ours = self.tools.len() as u32;
                self.tools.push((index.unwrap_or(u64::from(ours)), ours));
                let call = &delta["message"]["tool_calls"];
                out.push(
                    self.out.tool_call(ToolCallDelta {
                        index: ours,
                        id: Some(text(call, "/id").unwrap_or_default().to_string()),
                        kind: Some("function".into()),
                        function: Some(FunctionCallDelta {
                            name: Some(
                                text(call, "/function/name").unwrap_or_default().to_string(),
                            ),
                            arguments: Some(
                                text(call, "/function/arguments")
                                    .unwrap_or_default()
                                    .to_string(),
                            ),
                        }),
                    }),
                );
            }
            Event::ToolCallDelta { index, delta } => {
                let ours = match index {
                    Some(i) => self.tools.iter().find(|(c, _)| *c == i).map(|(_, o)| *o),
                    None => self.tools.last().map(|(_, o)| *o),
                };
                let fragment = text(&delta, "/message/tool_calls/function/arguments");
                if let (Some(ours), Some(fragment)) = (ours, fragment.filter(|f| !f.is_empty())) {
                    out.push(self.out.tool_call(ToolCallDelta {
                        index: ours,
                        function: Some(FunctionCallDelta {
                            name: None,
                            arguments: Some(fragment.to_string()),
                        }),
                        ..ToolCallDelta::default()
                    }));
                }
            }
            Event::MessageEnd { delta } => {
                if delta.usage.is_some() {
                    self.usage = delta.usage;
                }
                self.ended = true;
                match finish_reason(delta.finish_reason.as_deref()) {
                    Ok(reason) => {
                        self.start(out);
                        out.push(self.out.finish(reason));
                        if self.out.include_usage {
                            out.push(self.out.usage(self.usage().unwrap_or_default()));
                        }
                        out.push(StreamOut::Done);
                    }
                    Err(e) => out.push(StreamOut::Error(e)),
                }
            }
            Event::Ignored => {}
        }
    }

    /// Sends the role chunk once.
    fn start(&mut self, out: &mut Vec<StreamOut>) {
        if !self.started {
            self.started = true;
            out.push(self.out.role());
        }
    }
}
