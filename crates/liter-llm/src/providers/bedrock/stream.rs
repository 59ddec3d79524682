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
//! `metadata` ends normally with the usage known so far.

use serde_json::Value;

use super::error::stream_exception;
use super::eventstream::{Decoder, Message};
use super::finish_reason;
use super::response::BedrockUsage;
use crate::providers::adapter::{StreamMeta, StreamOut, StreamTranslate};
use crate::types::{
    ChatCompletionChunk, ChunkChoice, Delta, FunctionCallDelta, ProviderError, ToolCallDelta, Usage,
};

/// Translates one ConverseStream body. Feed it the bytes as they arrive.
#[derive(Debug)]
pub struct StreamTranslator {
    decoder: Decoder,
    meta: StreamMeta,
    started: bool,
    /// Bedrock content block index → OpenAI tool-call index.
    tools: Vec<(u64, u32)>,
    usage: Option<BedrockUsage>,
    /// `messageStop` has been seen (the finish chunk is out).
    stopped: bool,
    ended: bool,
}

impl StreamTranslator {
    pub fn new(meta: StreamMeta) -> Self {
        Self {
            decoder: Decoder::new(),
            meta,
            started: false,
            tools: Vec::new(),
            usage: None,
            stopped: false,
            ended: false,
        }
    }

    fn fail(&mut self, out: &mut Vec<StreamOut>, e: ProviderError) {
        self.ended = true;
        out.push(StreamOut::Error(e));
    }

    fn handle(&mut self, m: &Message, out: &mut Vec<StreamOut>) {
        match m.header(":message-type") {
            Some("exception") => {
                let name = m.header(":exception-type").unwrap_or("exception");
                let e = stream_exception(name, &m.payload);
                return self.fail(out, e);
            }
            Some("error") => {
                let code = m.header(":error-code").unwrap_or("error");
                let text = m.header(":error-message").unwrap_or("");
                let e = ProviderError::new(
                    502,
                    "api_error",
                    format!("bedrock stream error {code}: {text}"),
                );
                return self.fail(out, e);
            }
            _ => {}
        }
        let event = m.header(":event-type").unwrap_or("");
        let payload: Value = if m.payload.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&m.payload) {
                Ok(v) => v,
                Err(e) => {
                    let e = ProviderError::new(
                        502,
                        "api_error",
                        format!("unreadable bedrock stream event {event:?}: {e}"),
                    )
                    .with_code("bad_upstream_response");
                    return self.fail(out, e);
                }
            }
        };
        let index = payload
            .get("contentBlockIndex")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        match event {
            "messageStart" => self.start(out),
            "contentBlockStart" => {
                self.start(out);
                if let Some(tool) = payload.pointer("/start/toolUse") {
                    let n = self.tools.len() as u32;
                    self.tools.push((index, n));
                    let text = |k: &str| {
                        tool.get(k)
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    };
                    out.push(self.tool_delta(ToolCallDelta {
                        index: n,
                        id: Some(text("toolUseId")),
                        kind: Some("function".into()),
                        function: Some(FunctionCallDelta {
                            name: Some(text("name")),
                            arguments: Some(String::new()),
                        }),
                    }));
                }
            }
            "contentBlockDelta" => {
                self.start(out);
                let delta = &payload["delta"];
                if let Some(text) = delta.get("text").and_then(Value::as_str) {
                    out.push(self.chunk(
                        Delta {
                            content: Some(text.to_string()),
                            ..Delta::default()
                        },
                        None,
                    ));
                } else if let Some(input) = delta.pointer("/toolUse/input").and_then(Value::as_str)
                {
                    let tool = self
                        .tools
                        .iter()
                        .find(|(i, _)| *i == index)
                        .map(|(_, n)| *n);
                    if let (Some(n), false) = (tool, input.is_empty()) {
                        out.push(self.tool_delta(ToolCallDelta {
                            index: n,
                            function: Some(FunctionCallDelta {
                                name: None,
                                arguments: Some(input.to_string()),
                            }),
                            ..ToolCallDelta::default()
                        }));
                    }
                } else if let Some(text) = delta
                    .pointer("/reasoningContent/text")
                    .and_then(Value::as_str)
                {
                    out.push(self.chunk(
                        Delta {
                            reasoning_content: Some(text.to_string()),
                            ..Delta::default()
                        },
                        None,
                    ));
                }
            }
            "messageStop" => {
                self.start(out);
                self.stopped = true;
                let reason = payload.get("stopReason").and_then(Value::as_str);
                out.push(self.chunk(Delta::default(), Some(finish_reason(reason))));
            }
            "metadata" => {
                if let Some(u) = payload.get("usage") {
                    if let Ok(u) = serde_json::from_value::<BedrockUsage>(u.clone()) {
                        self.usage = Some(u);
                    }
                }
                if self.stopped {
                    self.done(out);
                }
            }
            _ => {}
        }
    }

    fn done(&mut self, out: &mut Vec<StreamOut>) {
        if self.meta.include_usage {
            let mut last = self.chunk_with(Vec::new());
            last.usage = Some(Some(self.usage().unwrap_or_default()));
            out.push(StreamOut::Chunk(last));
        }
        out.push(StreamOut::Done);
        self.ended = true;
    }

    fn start(&mut self, out: &mut Vec<StreamOut>) {
        if !self.started {
            self.started = true;
            let delta = Delta {
                role: Some("assistant".into()),
                content: Some(String::new()),
                ..Delta::default()
            };
            out.push(self.chunk(delta, None));
        }
    }

    fn tool_delta(&self, call: ToolCallDelta) -> StreamOut {
        self.chunk(
            Delta {
                tool_calls: Some(vec![call]),
                ..Delta::default()
            },
            None,
        )
    }

    fn chunk(&self, delta: Delta, finish: Option<&str>) -> StreamOut {
        StreamOut::Chunk(self.chunk_with(vec![ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason: finish.map(str::to_string),
        }]))
    }

    fn chunk_with(&self, choices: Vec<ChunkChoice>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.meta.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.meta.created,
            model: self.meta.model.clone(),
            choices,
            usage: self.meta.include_usage.then_some(None),
        }
    }
}

impl StreamTranslate for StreamTranslator {
    fn feed(&mut self, bytes: &[u8]) -> Vec<StreamOut> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        let mut messages = Vec::new();
        let result = self.decoder.feed(bytes, &mut messages);
        for m in &messages {
            self.handle(m, &mut out);
            if self.ended {
                return out;
            }
        }
        if let Err(e) = result {
            let e = ProviderError::new(502, "api_error", format!("bedrock stream: {e}"))
                .with_code("bad_upstream_response");
            self.fail(&mut out, e);
        }
        out
    }

    fn finish(&mut self) -> Vec<StreamOut> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        if self.stopped && !self.decoder.has_partial() {
            self.done(&mut out);
        } else {
            let e = ProviderError::new(
                502,
                "api_error",
                "the bedrock stream ended before messageStop",
            )
            .with_code("stream_truncated");
            self.fail(&mut out, e);
        }
        out
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.map(BedrockUsage::to_usage)
    }
}
