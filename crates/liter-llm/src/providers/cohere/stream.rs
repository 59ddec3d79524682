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
//! [`StreamOut::Error`]. After `Done` or an error, input is ignored. The bytes, the role
//! chunk, the end of the answer and errors are handled by the shared [`StreamDriver`];
//! this module maps the events.
//!
//! [`StreamOut::Error`]: crate::providers::adapter::StreamOut::Error

use serde::Deserialize;
use serde_json::Value;

use super::{finish_reason, CohereUsage};
use crate::providers::adapter::StreamMeta;
use crate::providers::sse::{SseDecoder, SseEvent};
use crate::providers::stream_driver::{sse_json, Emit, EventMapping, Flow, StreamDriver};
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

/// Cohere's events, mapped (the state one stream needs between them).
#[derive(Debug, Default)]
pub struct CohereEvents {
    /// Cohere tool-call index → our tool-call index.
    tools: Vec<(u64, u32)>,
    usage: Option<CohereUsage>,
}

/// Translates one Cohere stream. Feed it the body's bytes as they arrive.
pub type StreamTranslator = StreamDriver<CohereEvents>;

impl StreamDriver<CohereEvents> {
    pub fn new(meta: StreamMeta) -> Self {
        StreamDriver::with_mapping(meta, CohereEvents::default())
    }
}

/// A string at `pointer` in `v`.
fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

impl EventMapping for CohereEvents {
    type Framing = SseDecoder;
    const PROVIDER: &'static str = "cohere";
    const END: &'static str = "message-end";

    fn frame(&mut self, event: &SseEvent, emit: &mut Emit<'_>) -> Result<Flow, ProviderError> {
        if event.data.trim() == "[DONE]" {
            return Ok(Flow::Open);
        }
        match sse_json::<Event>(Self::PROVIDER, event)? {
            Event::MessageStart => emit.start(),
            Event::ContentStart { delta } | Event::ContentDelta { delta } => {
                emit.start();
                if let Some(t) = text(&delta, "/message/content/text").filter(|t| !t.is_empty()) {
                    emit.content(t);
                }
                if let Some(t) = text(&delta, "/message/content/thinking").filter(|t| !t.is_empty())
                {
                    emit.reasoning(t);
                }
            }
            Event::ToolPlanDelta { delta } => {
                emit.start();
                if let Some(t) = text(&delta, "/message/tool_plan").filter(|t| !t.is_empty()) {
                    emit.reasoning(t);
                }
            }
            Event::ToolCallStart { index, delta } => self.tool_call_start(index, &delta, emit),
            Event::ToolCallDelta { index, delta } => self.tool_call_delta(index, &delta, emit),
            Event::MessageEnd { delta } => {
                if delta.usage.is_some() {
                    self.usage = delta.usage;
                }
                let reason = finish_reason(delta.finish_reason.as_deref())?;
                emit.start();
                emit.finish(reason);
                return Ok(Flow::Complete);
            }
            Event::Ignored => {}
        }
        Ok(Flow::Open)
    }

    /// Cohere reports usage in `message-end`.
    fn usage(&self) -> Option<Usage> {
        self.usage.map(CohereUsage::to_usage)
    }
}

impl CohereEvents {
    fn tool_call_start(&mut self, index: Option<u64>, delta: &Value, emit: &mut Emit<'_>) {
        emit.start();
        let ours = self.tools.len() as u32;
        self.tools.push((index.unwrap_or(u64::from(ours)), ours));
        let call = &delta["message"]["tool_calls"];
        emit.tool_call(ToolCallDelta {
            index: ours,
            id: Some(text(call, "/id").unwrap_or_default().to_string()),
            kind: Some("function".into()),
            function: Some(FunctionCallDelta {
                name: Some(text(call, "/function/name").unwrap_or_default().to_string()),
                arguments: Some(
                    text(call, "/function/arguments")
                        .unwrap_or_default()
                        .to_string(),
                ),
            }),
        });
    }

    fn tool_call_delta(&mut self, index: Option<u64>, delta: &Value, emit: &mut Emit<'_>) {
        let ours = match index {
            Some(i) => self.tools.iter().find(|(c, _)| *c == i).map(|(_, o)| *o),
            None => self.tools.last().map(|(_, o)| *o),
        };
        let fragment = text(delta, "/message/tool_calls/function/arguments");
        if let (Some(ours), Some(fragment)) = (ours, fragment.filter(|f| !f.is_empty())) {
            emit.tool_call(ToolCallDelta {
                index: ours,
                function: Some(FunctionCallDelta {
                    name: None,
                    arguments: Some(fragment.to_string()),
                }),
                ..ToolCallDelta::default()
            });
        }
    }
}
