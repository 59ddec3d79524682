//! ConverseStream's event-stream messages turned into `chat.completion.chunk`s.
//!
//! | Bedrock message (`:event-type`)                 | what comes out                                  |
//! |-------------------------------------------------|-------------------------------------------------|
//! | `messageStart`                                  | the role chunk (`{"role":"assistant","content":""}`) |
//! | `contentBlockStart` with `start.toolUse`        | a tool-call chunk: `index`, `id`, `type`, name, `arguments: ""` |
//! | `contentBlockDelta` `delta.text`                | a `content` chunk                               |
//! | `contentBlockDelta` `delta.toolUse.input`       | an `arguments` fragment for the same `index`    |
//! | `contentBlockDelta` `delta.reasoningContent.text` | a `reasoning_content` chunk                   |
//! | `messageStop`                                   | the finish chunk (`stopReason` mapped)          |
//! | `metadata`                                      | usage noted; then the usage chunk (when asked) and `Done` |
//! | `:message-type: exception`                      | [`StreamOut::Error`] (see [`super::error`]), then nothing more |
//! | `contentBlockStop`, unknown events              | nothing                                         |
//!
//! Tool calls are numbered 0, 1, … in the order their blocks start. A body that ends
//! before `messageStop` (or a frame that fails its CRC, or a payload that is not JSON)
//! yields a 502 [`StreamOut::Error`]; one that ends after `messageStop` without
//! `metadata` ends normally with the usage known so far. The bytes, the role chunk, the
//! end of the answer and errors are handled by the shared [`StreamDriver`]; this module
//! maps the messages.
//!
//! [`StreamOut::Error`]: crate::providers::adapter::StreamOut::Error

use serde_json::Value;

use super::error::stream_exception;
use super::eventstream::{Decoder, Message};
use super::finish_reason;
use super::response::BedrockUsage;
use crate::providers::adapter::StreamMeta;
use crate::providers::stream_driver::{
    unreadable, Emit, EventMapping, Flow, Framing, StreamDriver,
};
use crate::types::{FunctionCallDelta, ProviderError, ToolCallDelta, Usage};

/// AWS event-stream framing: a body that stops inside a message is truncated.
impl Framing for Decoder {
    type Frame = Message;

    fn feed(&mut self, bytes: &[u8], out: &mut Vec<Message>) -> Result<(), String> {
        Decoder::feed(self, bytes, out).map_err(|e| e.to_string())
    }

    fn has_partial(&self) -> bool {
        Decoder::has_partial(self)
    }

    fn set_limit(&mut self, max_event_bytes: usize) {
        Decoder::set_limit(self, max_event_bytes);
    }
}

/// ConverseStream's messages, mapped (the state one stream needs between them).
#[derive(Debug, Default)]
pub struct BedrockEvents {
    /// Bedrock content block index → OpenAI tool-call index.
    tools: Vec<(u64, u32)>,
    usage: Option<BedrockUsage>,
    /// `messageStop` has been seen (the finish chunk is out).
    stopped: bool,
}

/// Translates one ConverseStream body. Feed it the bytes as they arrive.
pub type StreamTranslator = StreamDriver<BedrockEvents>;

impl StreamDriver<BedrockEvents> {
    pub fn new(meta: StreamMeta) -> Self {
        StreamDriver::with_mapping(meta, BedrockEvents::default())
    }
}

impl EventMapping for BedrockEvents {
    type Framing = Decoder;
    const PROVIDER: &'static str = "bedrock";
    const END: &'static str = "messageStop";

    fn frame(&mut self, m: &Message, emit: &mut Emit<'_>) -> Result<Flow, ProviderError> {
        let (event, payload) = read_message(m)?;
        let index = payload
            .get("contentBlockIndex")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        match event {
            "messageStart" => emit.start(),
            "contentBlockStart" => {
                emit.start();
                if let Some(tool) = payload.pointer("/start/toolUse") {
                    self.tool_start(index, tool, emit);
                }
            }
            "contentBlockDelta" => {
                emit.start();
                self.block_delta(index, &payload["delta"], emit);
            }
            "messageStop" => {
                emit.start();
                self.stopped = true;
                let reason = payload.get("stopReason").and_then(Value::as_str);
                emit.finish(finish_reason(reason));
            }
            "metadata" => {
                if let Some(u) = payload.get("usage") {
                    if let Ok(u) = serde_json::from_value::<BedrockUsage>(u.clone()) {
                        self.usage = Some(u);
                    }
                }
                return Ok(Flow::complete_if(self.stopped));
            }
            _ => {}
        }
        Ok(Flow::Open)
    }

    /// After `messageStop`, a body without `metadata` ends with the usage known so far.
    fn end(&mut self, _: &mut Emit<'_>) -> Flow {
        Flow::complete_if(self.stopped)
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.map(BedrockUsage::to_usage)
    }
}

/// A message's event type and JSON payload (`Null` when empty); an exception or error
/// message, or a payload that is not JSON, is the stream's error.
fn read_message(m: &Message) -> Result<(&str, Value), ProviderError> {
    match m.header(":message-type") {
        Some("exception") => {
            let name = m.header(":exception-type").unwrap_or("exception");
            return Err(stream_exception(name, &m.payload));
        }
        Some("error") => {
            let code = m.header(":error-code").unwrap_or("error");
            let text = m.header(":error-message").unwrap_or("");
            return Err(ProviderError::new(
                502,
                "api_error",
                format!("bedrock stream error {code}: {text}"),
            ));
        }
        _ => {}
    }
    let event = m.header(":event-type").unwrap_or("");
    if m.payload.is_empty() {
        return Ok((event, Value::Null));
    }
    let payload = serde_json::from_slice(&m.payload)
        .map_err(|e| unreadable(BedrockEvents::PROVIDER, event, e))?;
    Ok((event, payload))
}

impl BedrockEvents {
    fn tool_start(&mut self, index: u64, tool: &Value, emit: &mut Emit<'_>) {
        let n = self.tools.len() as u32;
        self.tools.push((index, n));
        let text = |k: &str| {
            tool.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        emit.tool_call(ToolCallDelta {
            index: n,
            id: Some(text("toolUseId")),
            kind: Some("function".into()),
            function: Some(FunctionCallDelta {
                name: Some(text("name")),
                arguments: Some(String::new()),
            }),
        });
    }

    fn block_delta(&mut self, index: u64, delta: &Value, emit: &mut Emit<'_>) {
        if let Some(text) = delta.get("text").and_then(Value::as_str) {
            emit.content(text);
        } else if let Some(input) = delta.pointer("/toolUse/input").and_then(Value::as_str) {
            let tool = self
                .tools
                .iter()
                .find(|(i, _)| *i == index)
                .map(|(_, n)| *n);
            if let (Some(n), false) = (tool, input.is_empty()) {
                emit.tool_call(ToolCallDelta {
                    index: n,
                    function: Some(FunctionCallDelta {
                        name: None,
                        arguments: Some(input.to_string()),
                    }),
                    ..ToolCallDelta::default()
                });
            }
        } else if let Some(text) = delta
            .pointer("/reasoningContent/text")
            .and_then(Value::as_str)
        {
            emit.reasoning(text);
        }
    }
}
