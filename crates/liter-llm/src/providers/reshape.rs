//! Rewrites of a translated answer that honour what the request asked but the provider
//! cannot be told: `response_format: json_object` served by a forced tool (the tool's
//! input becomes the message content), and `parallel_tool_calls: false` on a provider
//! without that switch (only the first tool call is kept). An adapter says which apply
//! to a request ([`Adapter::reshape`](super::adapter::Adapter::reshape)); the gateway
//! applies them to the whole answer or wraps the stream translator. Pure; touches only
//! the answer types.

use std::collections::HashSet;

use crate::providers::adapter::{StreamOut, StreamTranslate};
use crate::types::{ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Usage};

/// The name of the tool a `json_object` request is forced to call.
pub const JSON_TOOL: &str = "json_object_answer";
/// What [`JSON_TOOL`] is described as to the model.
pub const JSON_TOOL_DESCRIPTION: &str =
    "Give your whole answer as a JSON object: the input of this tool is the answer.";

/// The rewrites one answer needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reshape {
    /// The answer is the input of the forced [`JSON_TOOL`] call.
    pub json_tool: bool,
    /// Keep only the first tool call (`parallel_tool_calls: false`).
    pub first_tool_call_only: bool,
}

impl Reshape {
    /// The rewrites for `req` on a provider that serves `json_object` by a forced tool
    /// (`json_tool_provider`) and cannot be told to call one tool at a time
    /// (`no_parallel_switch`).
    pub fn for_request(
        req: &ChatCompletionRequest,
        json_tool_provider: bool,
        no_parallel_switch: bool,
    ) -> Self {
        Self {
            json_tool: json_tool_provider && wants_json_object(req),
            first_tool_call_only: no_parallel_switch && req.parallel_tool_calls == Some(false),
        }
    }

    pub fn is_none(&self) -> bool {
        !self.json_tool && !self.first_tool_call_only
    }

    /// Applies the rewrites to a whole answer.
    pub fn completion(&self, c: &mut ChatCompletion) {
        for choice in &mut c.choices {
            let m = &mut choice.message;
            let Some(calls) = m.tool_calls.as_mut() else {
                continue;
            };
            if self.json_tool {
                if let Some(at) = calls.iter().position(|t| t.function.name == JSON_TOOL) {
                    let call = calls.remove(at);
                    let mut text = m.content.take().unwrap_or_default();
                    text.push_str(&call.function.arguments);
                    m.content = Some(text);
                    if choice.finish_reason.as_deref() == Some("tool_calls") {
                        choice.finish_reason = Some("stop".into());
                    }
                }
            }
            if self.first_tool_call_only {
                calls.truncate(1);
            }
            if calls.is_empty() {
                m.tool_calls = None;
            }
        }
    }

    /// A translator that applies the rewrites to `inner`'s chunks.
    pub fn stream(self, inner: Box<dyn StreamTranslate>) -> Box<dyn StreamTranslate> {
        if self.is_none() {
            return inner;
        }
        Box::new(Reshaped {
            inner,
            reshape: self,
            json_calls: HashSet::new(),
            first_call: None,
        })
    }
}

/// Whether `response_format` is `{"type": "json_object"}`.
pub fn wants_json_object(req: &ChatCompletionRequest) -> bool {
    req.response_format
        .as_ref()
        .is_some_and(|f| f.kind == "json_object")
}

/// A stream translator with [`Reshape`] applied to what it emits.
struct Reshaped {
    inner: Box<dyn StreamTranslate>,
    reshape: Reshape,
    /// Tool-call indices (per choice) that are [`JSON_TOOL`] calls.
    json_calls: HashSet<(u32, u32)>,
    /// The index of the first tool call seen, per the one choice a translator emits.
    first_call: Option<(u32, u32)>,
}

impl Reshaped {
    fn chunk(&mut self, chunk: &mut ChatCompletionChunk) {
        for choice in &mut chunk.choices {
            let d = &mut choice.delta;
            let Some(calls) = d.tool_calls.take() else {
                continue;
            };
            let mut kept = Vec::with_capacity(calls.len());
            let mut converted = false;
            for call in calls {
                let key = (choice.index, call.index);
                let named_json = call
                    .function
                    .as_ref()
                    .and_then(|f| f.name.as_deref())
                    .is_some_and(|n| n == JSON_TOOL);
                if self.reshape.json_tool && (named_json || self.json_calls.contains(&key)) {
                    self.json_calls.insert(key);
                    converted = true;
                    let piece = call.function.and_then(|f| f.arguments).unwrap_or_default();
                    if !piece.is_empty() {
                        d.content.get_or_insert_with(String::new).push_str(&piece);
                    }
                    continue;
                }
                if self.reshape.first_tool_call_only {
                    let first = *self.first_call.get_or_insert(key);
                    if first != key {
                        continue;
                    }
                }
                kept.push(call);
            }
            if converted && d.content.is_none() && kept.is_empty() {
                d.content = Some(String::new());
            }
            if !kept.is_empty() {
                d.tool_calls = Some(kept);
            }
        }
        if self.reshape.json_tool {
            for choice in &mut chunk.choices {
                let json_only = self.json_calls.iter().any(|(c, _)| *c == choice.index)
                    && self.first_call.is_none_or(|(c, _)| c != choice.index);
                if json_only && choice.finish_reason.as_deref() == Some("tool_calls") {
                    choice.finish_reason = Some("stop".into());
                }
            }
        }
    }

    fn map(&mut self, outs: Vec<StreamOut>) -> Vec<StreamOut> {
        outs.into_iter()
            .map(|out| match out {
                StreamOut::Chunk(mut c) => {
                    self.chunk(&mut c);
                    StreamOut::Chunk(c)
                }
                other => other,
            })
            .collect()
    }
}

impl StreamTranslate for Reshaped {
    fn feed(&mut self, bytes: &[u8]) -> Vec<StreamOut> {
        let outs = self.inner.feed(bytes);
        self.map(outs)
    }

    fn finish(&mut self) -> Vec<StreamOut> {
        let outs = self.inner.finish();
        self.map(outs)
    }

    fn usage(&self) -> Option<Usage> {
        self.inner.usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::adapter::StreamOut;
    use serde_json::{json, Value};

    fn completion(calls: Value, finish: &str) -> ChatCompletion {
        serde_json::from_value(json!({
            "id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "logprobs": null, "finish_reason": finish,
                "message": {"role": "assistant", "content": null, "tool_calls": calls}}]
        }))
        .unwrap()
    }

    fn call(name: &str, args: &str) -> Value {
        json!({"id": name, "type": "function", "function": {"name": name, "arguments": args}})
    }

    #[test]
    fn json_tool_becomes_content() {
        let mut c = completion(json!([call(JSON_TOOL, r#"{"a":1}"#)]), "tool_calls");
        let r = Reshape {
            json_tool: true,
            first_tool_call_only: false,
        };
        r.completion(&mut c);
        let m = &c.choices[0].message;
        assert_eq!(m.content.as_deref(), Some(r#"{"a":1}"#));
        assert!(m.tool_calls.is_none());
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn first_call_only() {
        let mut c = completion(json!([call("a", "{}"), call("b", "{}")]), "tool_calls");
        let r = Reshape {
            json_tool: false,
            first_tool_call_only: true,
        };
        r.completion(&mut c);
        let calls = c.choices[0].message.tool_calls.as_ref().unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].function.name, "a");
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        assert!(Reshape::default().is_none());
    }

    /// A translator that emits the chunks it is fed (one JSON chunk per feed).
    struct Echo;
    impl StreamTranslate for Echo {
        fn feed(&mut self, bytes: &[u8]) -> Vec<StreamOut> {
            vec![StreamOut::Chunk(serde_json::from_slice(bytes).unwrap())]
        }
        fn finish(&mut self) -> Vec<StreamOut> {
            vec![StreamOut::Done]
        }
        fn usage(&self) -> Option<Usage> {
            None
        }
    }

    fn chunk(delta: Value, finish: Option<&str>) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"id": "c", "object": "chat.completion.chunk", "created": 1,
            "model": "m", "choices": [{"index": 0, "delta": delta, "logprobs": null,
            "finish_reason": finish}]}),
        )
        .unwrap()
    }

    fn fed(r: Reshape, inputs: &[Vec<u8>]) -> Vec<Value> {
        let mut t = r.stream(Box::new(Echo));
        inputs
            .iter()
            .flat_map(|i| t.feed(i))
            .filter_map(|o| match o {
                StreamOut::Chunk(c) => Some(serde_json::to_value(&c.choices[0]).unwrap()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn stream_json_tool_pieces_become_content() {
        let r = Reshape {
            json_tool: true,
            first_tool_call_only: false,
        };
        let out = fed(
            r,
            &[
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "t", "type": "function",
                "function": {"name": JSON_TOOL, "arguments": ""}}]}),
                    None,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\""}}]}),
                    None,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
                    None,
                ),
                chunk(json!({}), Some("tool_calls")),
            ],
        );
        let text: String = out
            .iter()
            .filter_map(|c| c["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, r#"{"a":1}"#);
        assert!(out.iter().all(|c| c["delta"].get("tool_calls").is_none()));
        assert_eq!(out[3]["finish_reason"], "stop");
    }

    #[test]
    fn stream_keeps_the_first_call() {
        let r = Reshape {
            json_tool: false,
            first_tool_call_only: true,
        };
        let out = fed(
            r,
            &[
                chunk(
                    json!({"tool_calls": [
                {"index": 0, "id": "a", "function": {"name": "a", "arguments": "{}"}},
                {"index": 1, "id": "b", "function": {"name": "b", "arguments": "{}"}}]}),
                    None,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 1, "function": {"arguments": "x"}}]}),
                    None,
                ),
                chunk(json!({}), Some("tool_calls")),
            ],
        );
        assert_eq!(out[0]["delta"]["tool_calls"].as_array().unwrap().len(), 1);
        assert!(out[1]["delta"].get("tool_calls").is_none());
        assert_eq!(out[2]["finish_reason"], "tool_calls");
    }
}
