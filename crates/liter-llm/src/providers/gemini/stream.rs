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
//! any `finishReason`, or an event that is not JSON, yields a 502 error. The bytes, the
//! end of the answer and errors are handled by the shared [`StreamDriver`]; this module
//! maps the events.
//!
//! [`StreamOut::Error`]: crate::providers::adapter::StreamOut::Error

use serde_json::Value;

use super::error::{stream_error, ErrorEnvelope};
use super::finish_reason;
use super::response::{read_part, tool_call, Candidate, GenerateResponse, Part, UsageMetadata};
use crate::providers::adapter::StreamMeta;
use crate::providers::sse::{SseDecoder, SseEvent, DEFAULT_MAX_EVENT_BYTES};
use crate::providers::stream_driver::{unreadable, Emit, EventMapping, Flow, StreamDriver};
use crate::types::{Delta, FunctionCallDelta, ProviderError, ToolCallDelta, Usage};

/// One candidate's progress.
#[derive(Debug, Default)]
struct ChoiceState {
    index: u32,
    /// Tool calls sent so far (the next call's index).
    tools: u32,
    finish: Option<String>,
}

/// Gemini's events, mapped (the state one stream needs between them).
#[derive(Debug, Default)]
pub struct GeminiEvents {
    choices: Vec<ChoiceState>,
    usage: Option<UsageMetadata>,
}

/// Translates one Gemini stream. Feed it the body's bytes as they arrive.
pub type StreamTranslator = StreamDriver<GeminiEvents>;

impl StreamDriver<GeminiEvents> {
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
        StreamDriver::with_mapping(meta, GeminiEvents::default())
    }
}

/// An event that is not a `GenerateContentResponse`.
fn unreadable_event(e: serde_json::Error) -> ProviderError {
    unreadable(GeminiEvents::PROVIDER, "", e)
}

impl EventMapping for GeminiEvents {
    type Framing = SseDecoder;
    const PROVIDER: &'static str = "gemini";
    const END: &'static str = "a finishReason";

    fn frame(&mut self, event: &SseEvent, emit: &mut Emit<'_>) -> Result<Flow, ProviderError> {
        let value: Value = serde_json::from_str(&event.data).map_err(unreadable_event)?;
        if value.get("error").is_some() {
            return Err(match serde_json::from_value::<ErrorEnvelope>(value) {
                Ok(env) => stream_error(&env.error),
                Err(_) => ProviderError::new(500, "api_error", "gemini sent an error event"),
            });
        }
        let resp: GenerateResponse = serde_json::from_value(value).map_err(unreadable_event)?;
        if let Some(u) = resp.usage_metadata {
            self.usage = Some(u);
        }
        if let Some(blocked) = resp.blocked() {
            return Err(blocked);
        }
        for (pos, candidate) in resp.candidates.iter().enumerate() {
            self.candidate(candidate.index.unwrap_or(pos as u32), candidate, emit)?;
        }
        Ok(Flow::Open)
    }

    /// Gemini has no end-of-stream event: the body's end completes every started choice,
    /// provided one of them finished.
    fn end(&mut self, emit: &mut Emit<'_>) -> Flow {
        if self.choices.iter().all(|c| c.finish.is_none()) {
            return Flow::Open;
        }
        for c in &self.choices {
            let finish = finish_reason(c.finish.as_deref(), c.tools > 0);
            emit.choice(c.index, Delta::default(), Some(finish));
        }
        Flow::Complete
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.map(UsageMetadata::to_usage)
    }
}

impl GeminiEvents {
    /// The next piece of candidate `index`: its role chunk the first time, then a chunk
    /// per part; its finish reason is noted.
    fn candidate(
        &mut self,
        index: u32,
        candidate: &Candidate,
        emit: &mut Emit<'_>,
    ) -> Result<(), ProviderError> {
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
                emit.choice(index, delta, None);
                self.choices.len() - 1
            }
        };
        for part in candidate.content.iter().flat_map(|c| c.parts.iter()) {
            let delta = match read_part(part)? {
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
                    let fallback = format!("call_{}_{index}_{n}", emit.id());
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
            emit.choice(index, delta, None);
        }
        if let Some(reason) = &candidate.finish_reason {
            self.choices[slot].finish = Some(reason.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::adapter::StreamOut;

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
