//! The canonical answer in the Responses format: a whole `chat.completion` as a
//! `response` object (output items: `reasoning` with its summary text, `message` with
//! `output_text`, `function_call`), and a stream of chunks as Responses' typed events
//! (`response.created`, `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, `response.output_text.delta` / `.done`,
//! `response.content_part.done`, `response.function_call_arguments.delta` / `.done`,
//! `response.output_item.done`, `response.completed` or `response.incomplete` with
//! the usage; `error` and `response.failed` when the stream fails), each with its
//! `sequence_number`.

use std::sync::Arc;

use bytes::BytesMut;
use liter_llm::types::{ChatCompletion, ChatCompletionChunk, Delta, Usage};
use serde_json::{json, Value};

use super::{new_id, Turn};
use crate::front::{Settle, StreamEncode};

/// Responses' `usage` for the canonical usage.
pub fn usage(u: &Usage) -> Value {
    let cached = u
        .prompt_tokens_details
        .map(|d| d.cached_tokens)
        .or(u.cache_read_input_tokens)
        .unwrap_or(0);
    let reasoning = u
        .completion_tokens_details
        .and_then(|d| d.reasoning_tokens)
        .unwrap_or(0);
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": u.total_tokens,
    })
}

/// The status and `incomplete_details.reason` for a `finish_reason`.
fn status(finish: Option<&str>) -> (&'static str, Option<&'static str>) {
    match finish {
        Some("length") => ("incomplete", Some("max_output_tokens")),
        Some("content_filter") => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// The `response` object of `turn`.
pub fn response(
    turn: &Turn,
    model: &str,
    status: &str,
    output: Vec<Value>,
    usage: Option<&Usage>,
    incomplete: Option<&str>,
    error: Option<Value>,
) -> Value {
    let mut r = json!({
        "id": turn.id,
        "object": "response",
        "created_at": turn.created_at,
        "status": status,
        "error": error,
        "incomplete_details": incomplete.map(|reason| json!({"reason": reason})),
        "instructions": null,
        "max_output_tokens": null,
        "metadata": {},
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": turn.previous,
        "reasoning": {"effort": null, "summary": null},
        "store": turn.store,
        "temperature": null,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
        "truncation": "disabled",
        "usage": usage.map(self::usage),
        "user": null,
    });
    for (k, v) in &turn.echo {
        r[k] = v.clone();
    }
    r
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    let content = if status == "in_progress" {
        json!([])
    } else {
        json!([text_part(text)])
    };
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
}

fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

fn call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
        "arguments": arguments, "status": status})
}

fn reasoning_item(id: &str, text: &str) -> Value {
    let summary = if text.is_empty() {
        json!([])
    } else {
        json!([{"type": "summary_text", "text": text}])
    };
    json!({"type": "reasoning", "id": id, "summary": summary})
}

/// A whole answer as the `response` object of `turn`.
pub fn whole(turn: &Turn, answer: ChatCompletion) -> Value {
    let choice = answer.choices.into_iter().next();
    let finish = choice.as_ref().and_then(|c| c.finish_reason.clone());
    let mut output = Vec::new();
    if let Some(m) = choice.map(|c| c.message) {
        if let Some(r) = m.reasoning_content.filter(|r| !r.is_empty()) {
            output.push(reasoning_item(&new_id("rs_"), &r));
        }
        let calls = m.tool_calls.unwrap_or_default();
        let text = m.content.unwrap_or_default();
        if let Some(refusal) = m.refusal.filter(|r| !r.is_empty()) {
            output.push(
                json!({"type": "message", "id": new_id("msg_"), "status": "completed",
                "role": "assistant", "content": [{"type": "refusal", "refusal": refusal}]}),
            );
        } else if !text.is_empty() || calls.is_empty() {
            output.push(message_item(&new_id("msg_"), &text, "completed"));
        }
        for c in calls {
            output.push(call_item(
                &new_id("fc_"),
                &c.id,
                &c.function.name,
                &c.function.arguments,
                "completed",
            ));
        }
    }
    let (status, incomplete) = status(finish.as_deref());
    response(
        turn,
        &answer.model,
        status,
        output,
        answer.usage.as_ref(),
        incomplete,
        None,
    )
}

/// The output item being streamed.
enum Open {
    Message {
        id: String,
        text: String,
    },
    Call {
        index: u32,
        id: String,
        call_id: String,
        name: String,
        args: String,
    },
    Reasoning {
        id: String,
        text: String,
    },
}

/// Canonical chunks to Responses' events, one response.
pub struct ResponsesStream {
    turn: Arc<Turn>,
    seq: u64,
    started: bool,
    model: String,
    /// The items done so far.
    output: Vec<Value>,
    open: Option<Open>,
    usage: Option<Usage>,
    finish: Option<String>,
    settle: Option<Settle>,
}

impl ResponsesStream {
    pub fn new(turn: Arc<Turn>) -> Self {
        let model = turn.model.clone();
        Self {
            turn,
            seq: 0,
            started: false,
            model,
            output: Vec::new(),
            open: None,
            usage: None,
            finish: None,
            settle: None,
        }
    }

    fn event(&mut self, out: &mut BytesMut, kind: &str, mut data: Value) {
        data["type"] = kind.into();
        data["sequence_number"] = self.seq.into();
        self.seq += 1;
        crate::front::sse_event(out, kind, &data);
    }

    fn start(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let r = response(
            &self.turn,
            &self.model,
            "in_progress",
            Vec::new(),
            None,
            None,
            None,
        );
        self.event(out, "response.created", json!({"response": r.clone()}));
        self.event(out, "response.in_progress", json!({"response": r}));
    }

    /// Opens `item` at the next output index, closing the open one first.
    fn open(&mut self, item: Open, out: &mut BytesMut) {
        self.close(out);
        let index = self.output.len();
        let added = match &item {
            Open::Message { id, .. } => message_item(id, "", "in_progress"),
            Open::Call {
                id, call_id, name, ..
            } => call_item(id, call_id, name, "", "in_progress"),
            Open::Reasoning { id, .. } => reasoning_item(id, ""),
        };
        self.event(
            out,
            "response.output_item.added",
            json!({"output_index": index, "item": added}),
        );
        if let Open::Message { id, .. } = &item {
            let data = json!({"item_id": id, "output_index": index, "content_index": 0,
                "part": text_part("")});
            self.event(out, "response.content_part.added", data);
        }
        self.open = Some(item);
    }

    /// Ends the open item, if any, and adds it to the output.
    fn close(&mut self, out: &mut BytesMut) {
        let Some(item) = self.open.take() else {
            return;
        };
        let index = self.output.len();
        let done = match item {
            Open::Message { id, text } => {
                let at = json!({"item_id": id, "output_index": index, "content_index": 0});
                let mut data = at.clone();
                data["text"] = text.as_str().into();
                data["logprobs"] = json!([]);
                self.event(out, "response.output_text.done", data);
                let mut data = at;
                data["part"] = text_part(&text);
                self.event(out, "response.content_part.done", data);
                message_item(&id, &text, "completed")
            }
            Open::Call {
                id,
                call_id,
                name,
                args,
                ..
            } => {
                let data = json!({"item_id": id, "output_index": index, "name": name,
                    "arguments": args});
                self.event(out, "response.function_call_arguments.done", data);
                call_item(&id, &call_id, &name, &args, "completed")
            }
            Open::Reasoning { id, text } => reasoning_item(&id, &text),
        };
        self.event(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": done.clone()}),
        );
        self.output.push(done);
    }

    fn text(&mut self, piece: &str, out: &mut BytesMut) {
        if !matches!(self.open, Some(Open::Message { .. })) {
            let id = new_id("msg_");
            self.open(
                Open::Message {
                    id,
                    text: String::new(),
                },
                out,
            );
        }
        let index = self.output.len();
        let Some(Open::Message { id, text }) = &mut self.open else {
            return;
        };
        text.push_str(piece);
        let data = json!({"item_id": id, "output_index": index, "content_index": 0,
            "delta": piece, "logprobs": []});
        self.event(out, "response.output_text.delta", data);
    }

    fn reasoning(&mut self, piece: &str, out: &mut BytesMut) {
        if !matches!(self.open, Some(Open::Reasoning { .. })) {
            let id = new_id("rs_");
            self.open(
                Open::Reasoning {
                    id,
                    text: String::new(),
                },
                out,
            );
        }
        if let Some(Open::Reasoning { text, .. }) = &mut self.open {
            text.push_str(piece);
        }
    }

    fn delta(&mut self, delta: Delta, out: &mut BytesMut) {
        if let Some(r) = delta.reasoning_content.as_deref().filter(|r| !r.is_empty()) {
            self.reasoning(r, out);
        }
        if let Some(t) = delta.content.as_deref().filter(|t| !t.is_empty()) {
            self.text(t, out);
        }
        for call in delta.tool_calls.unwrap_or_default() {
            let same = matches!(&self.open, Some(Open::Call { index, .. }) if *index == call.index);
            let function = call.function.unwrap_or_default();
            if !same {
                let item = Open::Call {
                    index: call.index,
                    id: new_id("fc_"),
                    call_id: call.id.unwrap_or_default(),
                    name: function.name.clone().unwrap_or_default(),
                    args: String::new(),
                };
                self.open(item, out);
            }
            let index = self.output.len();
            let piece = function.arguments.unwrap_or_default();
            let Some(Open::Call { id, args, .. }) = &mut self.open else {
                continue;
            };
            if piece.is_empty() {
                continue;
            }
            args.push_str(&piece);
            let data = json!({"item_id": id, "output_index": index, "delta": piece});
            self.event(out, "response.function_call_arguments.delta", data);
        }
    }
}

impl StreamEncode for ResponsesStream {
    fn chunk(&mut self, chunk: ChatCompletionChunk, out: &mut BytesMut) {
        if !self.started {
            if !chunk.model.is_empty() {
                self.model = chunk.model.clone();
            }
            self.start(out);
        }
        if let Some(Some(u)) = chunk.usage {
            self.usage = Some(u);
        }
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            self.delta(choice.delta, out);
            if let Some(f) = choice.finish_reason {
                self.finish = Some(f);
            }
        }
    }

    fn done(&mut self, out: &mut BytesMut) {
        self.start(out);
        self.close(out);
        if self.output.is_empty() {
            let id = new_id("msg_");
            self.open(
                Open::Message {
                    id,
                    text: String::new(),
                },
                out,
            );
            self.close(out);
        }
        let (status, incomplete) = status(self.finish.as_deref());
        let output = std::mem::take(&mut self.output);
        let r = response(
            &self.turn,
            &self.model,
            status,
            output,
            self.usage.as_ref(),
            incomplete,
            None,
        );
        self.settle = self.turn.keep(&r);
        let kind = if incomplete.is_some() {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.event(out, kind, json!({"response": r}));
    }

    fn error(&mut self, openai_error: &[u8], out: &mut BytesMut) {
        self.start(out);
        let parsed: Option<Value> = serde_json::from_slice(openai_error).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let text = |k: &str| error.and_then(|e| e.get(k)).and_then(Value::as_str);
        let message = text("message")
            .unwrap_or("the answer stream failed")
            .to_string();
        let code = text("code").unwrap_or("server_error").to_string();
        let param = error
            .and_then(|e| e.get("param"))
            .cloned()
            .unwrap_or(Value::Null);
        self.event(
            out,
            "error",
            json!({"code": code, "message": message, "param": param}),
        );
        let output = std::mem::take(&mut self.output);
        let failure = json!({"code": code, "message": message});
        let r = response(
            &self.turn,
            &self.model,
            "failed",
            output,
            None,
            None,
            Some(failure),
        );
        self.event(out, "response.failed", json!({"response": r}));
    }

    fn settle(&mut self) -> Option<Settle> {
        self.settle.take()
    }
}
