//! Storing a streamed chat completion: [`Tee`] passes the client's SSE body on
//! untouched, frame by frame, and on the side assembles its events into the
//! non-streamed form (content, tool calls, finish reason, usage). Only a stream that
//! ends after `data: [DONE]` with no error event is stored: one the client leaves
//! (the body is dropped before its end) or the upstream cuts (the relay ends it with
//! an error event and no `[DONE]`) stores nothing.
//!
//! The usage comes from the stream's usage chunk or, when the gateway asked for it on
//! the client's behalf and hid it, from [`UsageSlot`], a tap the dispatcher reports to.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use liter_llm::types::Usage;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::upstream::UsageTap;

/// The usage a stream's tap was told, beside the meter that is told it too.
#[derive(Clone, Default)]
pub struct UsageSlot(Arc<Mutex<Option<Usage>>>);

impl UsageSlot {
    /// A tap that records into this slot and passes the usage on to `inner`.
    pub fn tap(&self, inner: Option<Box<dyn UsageTap>>) -> SlotTap {
        SlotTap {
            slot: self.clone(),
            inner,
        }
    }

    fn take(&self) -> Option<Usage> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// See [`UsageSlot::tap`].
pub struct SlotTap {
    slot: UsageSlot,
    inner: Option<Box<dyn UsageTap>>,
}

impl UsageTap for SlotTap {
    fn report(&self, usage: Usage, cost: Option<f64>) {
        *self.slot.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(usage);
        if let Some(t) = &self.inner {
            t.report(usage, cost);
        }
    }

    fn boxed(&self) -> Box<dyn UsageTap> {
        Box::new(SlotTap {
            slot: self.slot.clone(),
            inner: self.inner.as_ref().map(|t| t.boxed()),
        })
    }
}

#[derive(Deserialize)]
struct ChunkIn {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    created: Option<Value>,
    #[serde(default)]
    model: Option<Value>,
    #[serde(default)]
    system_fingerprint: Option<Value>,
    #[serde(default)]
    choices: Vec<ChoiceIn>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct ChoiceIn {
    #[serde(default)]
    index: u64,
    #[serde(default)]
    delta: DeltaIn,
    #[serde(default)]
    finish_reason: Option<Value>,
}

#[derive(Deserialize, Default)]
struct DeltaIn {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolIn>,
}

#[derive(Deserialize)]
struct ToolIn {
    #[serde(default)]
    index: u64,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default, rename = "type")]
    kind: Option<Value>,
    #[serde(default)]
    function: Option<FunctionIn>,
}

#[derive(Deserialize)]
struct FunctionIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Default)]
struct ChoiceAcc {
    content: Option<String>,
    refusal: Option<String>,
    tools: BTreeMap<u64, ToolAcc>,
    finish_reason: Option<Value>,
}

#[derive(Default)]
struct ToolAcc {
    id: Option<Value>,
    kind: Option<Value>,
    name: String,
    arguments: String,
}

/// A stream's events, assembled as they pass.
#[derive(Default)]
pub struct Assembly {
    head: Map<String, Value>,
    choices: BTreeMap<u64, ChoiceAcc>,
    usage: Option<Value>,
    /// Bytes of an event whose end has not arrived yet.
    pending: BytesMut,
    /// Text assembled so far, against `limit`.
    size: u64,
    limit: u64,
    done: bool,
    /// An error event, an unreadable event, or too large: nothing is stored.
    spoiled: bool,
}

impl Assembly {
    pub fn new(limit: u64) -> Assembly {
        Assembly {
            limit,
            ..Assembly::default()
        }
    }

    /// Reads the whole events in `data` (a partial one is held).
    pub fn feed(&mut self, data: &[u8]) {
        if self.spoiled {
            return;
        }
        self.pending.extend_from_slice(data);
        while let Some(end) = crate::search::EVENT_END.find(&self.pending) {
            let event = self.pending.split_to(end + 2);
            for line in event[..].split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if let Some(payload) = line.strip_prefix(b"data:") {
                    self.payload(payload.trim_ascii());
                }
            }
        }
        if self.pending.len() as u64 > self.limit {
            self.spoiled = true;
        }
    }

    fn payload(&mut self, payload: &[u8]) {
        if payload == b"[DONE]" {
            self.done = true;
            return;
        }
        let chunk = match serde_json::from_slice::<ChunkIn>(payload) {
            Ok(c) if c.error.is_none() => c,
            _ => {
                self.spoiled = true;
                return;
            }
        };
        for (name, v) in [
            ("id", chunk.id),
            ("created", chunk.created),
            ("model", chunk.model),
            ("system_fingerprint", chunk.system_fingerprint),
        ] {
            if let Some(v) = v.filter(|v| !v.is_null()) {
                self.head.entry(name).or_insert(v);
            }
        }
        if chunk.usage.as_ref().is_some_and(|u| !u.is_null()) {
            self.usage = chunk.usage;
        }
        for c in chunk.choices {
            self.choice(c);
        }
        if self.size > self.limit {
            self.spoiled = true;
        }
    }

    fn choice(&mut self, c: ChoiceIn) {
        let acc = self.choices.entry(c.index).or_default();
        let mut grew = 0;
        for (text, into) in [
            (c.delta.content, &mut acc.content),
            (c.delta.refusal, &mut acc.refusal),
        ] {
            if let Some(t) = text {
                grew += t.len();
                into.get_or_insert_with(String::new).push_str(&t);
            }
        }
        for t in c.delta.tool_calls {
            let tool = acc.tools.entry(t.index).or_default();
            tool.id = tool.id.take().or(t.id);
            tool.kind = tool.kind.take().or(t.kind);
            if let Some(f) = t.function {
                let (name, args) = (f.name.unwrap_or_default(), f.arguments.unwrap_or_default());
                grew += name.len() + args.len();
                tool.name.push_str(&name);
                tool.arguments.push_str(&args);
            }
        }
        if let Some(f) = c.finish_reason.filter(|f| !f.is_null()) {
            acc.finish_reason = Some(f);
        }
        self.size += grew as u64;
    }

    /// The non-streamed answer, when the stream completed cleanly.
    pub fn finish(mut self, hidden_usage: Option<Usage>) -> Option<Bytes> {
        if !self.done || self.spoiled || self.choices.is_empty() {
            return None;
        }
        let choices: Vec<Value> = std::mem::take(&mut self.choices)
            .into_iter()
            .map(|(index, c)| {
                let mut message = json!({"role": "assistant", "content": c.content});
                if let Some(r) = c.refusal {
                    message["refusal"] = json!(r);
                }
                if !c.tools.is_empty() {
                    let calls: Vec<Value> = c
                        .tools
                        .into_values()
                        .map(|t| {
                            json!({"id": t.id, "type": t.kind.unwrap_or(json!("function")),
                            "function": {"name": t.name, "arguments": t.arguments}})
                        })
                        .collect();
                    message["tool_calls"] = json!(calls);
                }
                json!({"index": index, "message": message, "logprobs": null,
                    "finish_reason": c.finish_reason})
            })
            .collect();
        let mut out = self.head;
        out.insert("object".into(), json!("chat.completion"));
        out.insert("choices".into(), json!(choices));
        let usage = self
            .usage
            .or_else(|| hidden_usage.and_then(|u| serde_json::to_value(u).ok()));
        if let Some(u) = usage {
            out.insert("usage".into(), u);
        }
        serde_json::to_vec(&out).ok().map(Bytes::from)
    }
}

pin_project_lite::pin_project! {
    /// The client's stream body, assembled on the side; `done` gets the answer when
    /// the stream ends cleanly.
    pub struct Tee<F: FnOnce(Bytes)> {
        #[pin]
        inner: Body,
        assembly: Option<Assembly>,
        slot: UsageSlot,
        done: Option<F>,
    }
}

impl<F: FnOnce(Bytes)> Tee<F> {
    pub fn new(inner: Body, limit: u64, slot: UsageSlot, done: F) -> Self {
        Tee {
            inner,
            assembly: Some(Assembly::new(limit)),
            slot,
            done: Some(done),
        }
    }
}

impl<F: FnOnce(Bytes)> HttpBody for Tee<F> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(a), Some(data)) = (this.assembly.as_mut(), frame.data_ref()) {
                    a.feed(data);
                }
            }
            Poll::Ready(Some(Err(_))) => *this.assembly = None,
            Poll::Ready(None) => {
                let answer = this
                    .assembly
                    .take()
                    .and_then(|a| a.finish(this.slot.take()));
                if let (Some(answer), Some(done)) = (answer, this.done.take()) {
                    done(answer);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn assemble(events: &[&str], limit: u64) -> Option<Value> {
        let mut a = Assembly::new(limit);
        let whole: String = events.concat();
        // Fed in small pieces: events split anywhere.
        for piece in whole.as_bytes().chunks(7) {
            a.feed(piece);
        }
        a.finish(None).map(|b| serde_json::from_slice(&b).unwrap())
    }

    const EVENTS: &[&str] = &[
        "data: {\"id\":\"c1\",\"created\":3,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"he\"}}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"llo\",\"tool_calls\":[{\"index\":0,\"id\":\"t1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\n",
    ];

    #[test]
    fn a_complete_stream_assembles_into_a_completion() {
        let mut events = EVENTS.to_vec();
        events.push("data: [DONE]\n\n");
        let v = assemble(&events, 1 << 20).unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(
            (v["id"].as_str(), v["created"].as_u64()),
            (Some("c1"), Some(3))
        );
        let choice = &v["choices"][0];
        assert_eq!(choice["message"]["content"], "hello");
        assert_eq!(
            choice["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"a\":1}"
        );
        assert_eq!(choice["message"]["tool_calls"][0]["id"], "t1");
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(v["usage"]["total_tokens"], 3);
    }

    #[test]
    fn cut_failed_or_oversized_streams_are_not_stored() {
        assert!(assemble(EVENTS, 1 << 20).is_none(), "no [DONE]");
        let mut failed = EVENTS.to_vec();
        failed.push("data: {\"error\":{\"message\":\"cut\"}}\n\n");
        failed.push("data: [DONE]\n\n");
        assert!(assemble(&failed, 1 << 20).is_none());
        let mut whole = EVENTS.to_vec();
        whole.push("data: [DONE]\n\n");
        assert!(assemble(&whole, 4).is_none(), "over the entry limit");
    }
}
