//! `streamGenerateContent?alt=sse` turned into `chat.completion.chunk`s.
//!
//! Each SSE event is a whole `GenerateContentResponse` holding the next piece of each
//! candidate. Per candidate (= choice index):
//!
//! | Gemini                          | what comes out                                       |
//! |---------------------------------|------------------------------------------------------|
//! | first event of a candidate      | the role chunk (`{"role":"assistant","content":""}`) |
//! | `text` part                     | a `content` chunk                                    |
//! | `text` part with `thought`      | a `reasoning_content` chunk                          |
//! | `functionCall` part             | one tool-call chunk: `index`, `id`, `type`, name and the whole `arguments` |
//! | `finishReason`                  | noted                                                |
//! | `usageMetadata`                 | noted (the last one wins: counts are cumulative)     |
//! | `{"error":{..}}`                | [`StreamOut::Error`], then nothing more              |
//! | `promptFeedback.blockReason`, no candidates | a 400 `content_filter` error            |
//!
//! Gemini has no end-of-stream event: when the body ends, each started choice gets its
//! finish chunk, then the usage chunk (when asked) and `Done`. A body that ends before
//! any `finishReason`, or an event that is not JSON, yields a 502 error.

use serde_json::Value;

use super::error::{stream_error, ErrorEnvelope};
use super::finish_reason;
use super::response::{read_part, tool_call, GenerateResponse, Part, UsageMetadata};
use crate::providers::adapter::StreamOut;
use crate::providers::sse::SseDecoder;
use crate::types::{
    ChatCompletionChunk, ChunkChoice, Delta, FunctionCallDelta, ProviderError, ToolCallDelta, Usage,
};

/// One candidate's progress.
#[derive(Debug, Default)]
struct ChoiceState {
    index: u32,
    /// Tool calls sent so far (the next call's index).
    tools: u32,
    finish: Option<String>,
}

/// Translates one Gemini stream. Feed it the body's bytes as they arrive.
#[derive(Debug)]
pub struct StreamTranslator {
    sse: SseDecoder,
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    choices: Vec<ChoiceState>,
    usage: Option<UsageMetadata>,
    /// `Done` or an error has been emitted.
    ended: bool,
}

impl StreamTranslator {
    pub fn new(id: String, model: String, created: u64, include_usage: bool) -> Self {
        Self {
            sse: SseDecoder::new(),
            id,
            model,
            created,
            include_usage,
            choices: Vec::new(),
            usage: None,
            ended: false,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) -> Vec<StreamOut> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        let mut events = Vec::new();
        self.sse.feed(bytes, &mut events);
        for event in events {
            self.handle(&event.data, &mut out);
            if self.ended {
                break;
            }
        }
        out
    }

    /// The body ended: finish chunks, usage and `Done`, or an error if no candidate
    /// finished.
    pub fn finish(&mut self) -> Vec<StreamOut> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        if self.choices.is_empty() || self.choices.iter().all(|c| c.finish.is_none()) {
            return vec![StreamOut::Error(
                ProviderError::new(
                    502,
                    "api_error",
                    "the gemini stream ended before a finishReason",
                )
                .with_code("stream_truncated"),
            )];
        }
        let mut out = Vec::new();
        for c in &self.choices {
            let finish = finish_reason(c.finish.as_deref(), c.tools > 0);
            out.push(self.chunk(c.index, Delta::default(), Some(finish)));
        }
        if self.include_usage {
            let mut last = self.chunk_with(Vec::new());
            last.usage = Some(Some(self.usage().unwrap_or_default()));
            out.push(StreamOut::Chunk(last));
        }
        out.push(StreamOut::Done);
        out
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage.map(UsageMetadata::to_usage)
    }

    fn fail(&mut self, e: ProviderError, out: &mut Vec<StreamOut>) {
        self.ended = true;
        out.push(StreamOut::Error(e));
    }

    fn handle(&mut self, data: &str, out: &mut Vec<StreamOut>) {
        let value: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                let e = ProviderError::new(
                    502,
                    "api_error",
                    format!("unreadable gemini stream event: {e}"),
                )
                .with_code("bad_upstream_response");
                return self.fail(e, out);
            }
        };
        if value.get("error").is_some() {
            let e = match serde_json::from_value::<ErrorEnvelope>(value) {
                Ok(env) => stream_error(&env.error),
                Err(_) => ProviderError::new(500, "api_error", "gemini sent an error event"),
            };
            return self.fail(e, out);
        }
        let resp: GenerateResponse = match serde_json::from_value(value) {
            Ok(r) => r,
            Err(e) => {
                let e = ProviderError::new(
                    502,
                    "api_error",
                    format!("unreadable gemini stream event: {e}"),
                )
                .with_code("bad_upstream_response");
                return self.fail(e, out);
            }
        };
        if let Some(u) = resp.usage_metadata {
            self.usage = Some(u);
        }
        if let Some(blocked) = resp.blocked() {
            return self.fail(blocked, out);
        }
        for (pos, candidate) in resp.candidates.iter().enumerate() {
            let index = candidate.index.unwrap_or(pos as u32);
            let slot = match self.choices.iter().position(|c| c.index == index) {
                Some(slot) => slot,
                None => {
                    self.choices.push(ChoiceState {
                        index,
                        ..ChoiceState::default()
                    });
                    let delta = Delta {
                        role: Some("assistant".into()),
                        content: Some(String::new()),
                        ..Delta::default()
                    };
                    out.push(self.chunk(index, delta, None));
                    self.choices.len() - 1
                }
            };
            for part in candidate.content.iter().flat_map(|c| c.parts.iter()) {
                let part = match read_part(part) {
                    Ok(p) => p,
                    Err(e) => return self.fail(e, out),
                };
                let delta = match part {
                    Part::Text(t) if !t.is_empty() => Delta {
                        content: Some(t),
                        ..Delta::default()
                    },
                    Part::Thought(t) if !t.is_empty() => Delta {
                        reasoning_content: Some(t),
                        ..Delta::default()
                    },
                    Part::Call {
                        name,
                        arguments,
                        id,
                        signature,
                    } => {
                        let n = self.choices[slot].tools;
                        self.choices[slot].tools += 1;
                        let fallback = format!("call_{}_{index}_{n}", self.id);
                        let call = tool_call(name, arguments, id, signature, fallback);
                        Delta {
                            tool_calls: Some(vec![ToolCallDelta {
                                index: n,
                                id: Some(call.id),
                                kind: Some("function".into()),
                                function: Some(FunctionCallDelta {
                                    name: Some(call.function.name),
                                    arguments: Some(call.function.arguments),
                                }),
                            }]),
                            ..Delta::default()
                        }
                    }
                    _ => continue,
                };
                out.push(self.chunk(index, delta, None));
            }
            if let Some(reason) = &candidate.finish_reason {
                self.choices[slot].finish = Some(reason.clone());
            }
        }
    }

    fn chunk(&self, index: u32, delta: Delta, finish: Option<&str>) -> StreamOut {
        StreamOut::Chunk(self.chunk_with(vec![ChunkChoice {
            index,
            delta,
            logprobs: None,
            finish_reason: finish.map(str::to_string),
        }]))
    }

    fn chunk_with(&self, choices: Vec<ChunkChoice>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: self.include_usage.then_some(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_bad_events_are_errors() {
        let mut t = StreamTranslator::new("c".into(), "m".into(), 0, false);
        let out =
            t.feed(b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\n\n");
        assert_eq!(out.len(), 2);
        assert!(matches!(&t.finish()[..], [StreamOut::Error(e)] if e.status == 502));

        let mut t = StreamTranslator::new("c".into(), "m".into(), 0, false);
        let out = t.feed(b"data: {nope\n\n");
        assert!(matches!(&out[..], [StreamOut::Error(e)] if e.status == 502));
        assert!(t.feed(b"data: {}\n\n").is_empty());
        assert!(t.finish().is_empty());
    }

    #[test]
    fn blocked_prompt_is_a_content_filter_error() {
        let mut t = StreamTranslator::new("c".into(), "m".into(), 0, false);
        let out = t.feed(b"data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"}}\r\n\r\n");
        match &out[..] {
            [StreamOut::Error(e)] => {
                assert_eq!(
                    (e.status, e.error.code.as_deref()),
                    (400, Some("content_filter"))
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
