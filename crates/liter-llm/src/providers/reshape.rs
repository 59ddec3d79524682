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
                let json_only = self
                    .json_calls
                    .iter()
                    .any(|(c, _)| *c == choice.index)
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
