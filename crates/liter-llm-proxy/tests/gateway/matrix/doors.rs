//! One request through each front door, whole or streamed, read strictly: the whole
//! answer into its [`schema`] struct, a stream event by event into the protocol's event
//! shapes with its order checked. Each returns the answer's text and usage.

use std::collections::HashSet;

use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::schema::*;
use super::PROMPT;
use crate::support::*;

/// What a door's answer said.
#[derive(Debug, Default)]
pub struct Got {
    pub text: String,
    /// The tool calls: (name, arguments as JSON text).
    pub calls: Vec<(String, String)>,
    /// `stop` for a finished answer, `tool` for one that stopped to call tools.
    pub finish: &'static str,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: Option<u64>,
}

/// Parse `data` strictly into `T`, with the text in the failure message.
fn strict<T: DeserializeOwned>(what: &str, data: &str) -> T {
    serde_json::from_str(data).unwrap_or_else(|e| panic!("{what} does not fit: {e}\n{data}"))
}

/// Send, check 200 and the content type, and return the body text.
async fn send(req: reqwest::RequestBuilder, stream: bool) -> String {
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let mut text = String::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert_eq!(status, 200, "{text}");
    let want = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    assert!(ctype.starts_with(want), "content-type {ctype}: {text}");
    text
}

/// The events of an SSE body: (the `event:` name if any, the `data:`).
fn sse(text: &str) -> Vec<(Option<String>, String)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .filter(|e| e.lines().any(|l| l.starts_with("data:")))
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event:"))
                .map(|n| n.trim().to_string());
            let data = e
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect::<Vec<_>>()
                .join("\n");
            (name, data)
        })
        .collect()
}

/// The tool every tools request offers.
pub const TOOL: &str = "get_weather";

/// The prompt: with tools, one that makes each mock call the first tool.
fn prompt(tools: bool) -> &'static str {
    if tools {
        "please call tool"
    } else {
        PROMPT
    }
}

fn schema() -> Value {
    json!({"type": "object", "properties": {"city": {"type": "string"}}})
}

fn chat_finish(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::ToolCalls => "tool",
        other => panic!("finish reason {other:?}"),
    }
}

fn message_finish(reason: Option<&StopReason>) -> &'static str {
    match reason {
        Some(StopReason::EndTurn) => "stop",
        Some(StopReason::ToolUse) => "tool",
        other => panic!("stop reason {other:?}"),
    }
}

fn chat_usage(u: &ChatUsage) -> (u64, u64, Option<u64>) {
    (u.prompt_tokens, u.completion_tokens, Some(u.total_tokens))
}

/// `/v1/chat/completions`: a `chat.completion`, or chunks, a usage chunk and `[DONE]`.
pub async fn chat(gw: &Gateway, model: &str, stream: bool, tools: bool) -> Got {
    let mut body = json!({"model": model, "max_tokens": 50, "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": prompt(tools)}]});
    if tools {
        body["tools"] = json!([{"type": "function", "function": {"name": TOOL,
            "description": "the weather", "parameters": schema()}}]);
    }
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    let text = send(gw.post("/v1/chat/completions", Some(MASTER), &body), stream).await;
    if !stream {
        let c: ChatCompletion = strict("chat.completion", &text);
        // A passed-through answer names the upstream's model, a translated one ours.
        assert!(!c.model.is_empty());
        assert_eq!(c.choices.len(), 1);
        let choice = &c.choices[0];
        let (input_tokens, output_tokens, total_tokens) = chat_usage(c.usage.as_ref().unwrap());
        let calls = choice.message.tool_calls.iter().flatten();
        return Got {
            text: choice.message.content.0.clone().unwrap_or_default(),
            calls: calls
                .map(|c| (c.function.name.clone(), c.function.arguments.clone()))
                .collect(),
            finish: chat_finish(&choice.finish_reason),
            input_tokens,
            output_tokens,
            total_tokens,
        };
    }
    let events = sse(&text);
    let (last, chunks) = events.split_last().unwrap();
    assert_eq!(last.1, "[DONE]", "the stream ends with [DONE]: {text}");
    let mut got = Got::default();
    let (mut ids, mut finished, mut usage_seen) = (HashSet::new(), false, false);
    for (i, (_, data)) in chunks.iter().enumerate() {
        let c: ChatChunk = strict("chat.completion.chunk", data);
        ids.insert(c.id.clone());
        assert!(!c.model.is_empty());
        assert!(!usage_seen, "nothing after the usage chunk: {text}");
        if let Some(Some(u)) = &c.usage {
            assert!(c.choices.is_empty(), "the usage chunk has no choices");
            assert!(finished, "usage after the finish reason: {text}");
            (got.input_tokens, got.output_tokens, got.total_tokens) = chat_usage(u);
            usage_seen = true;
            continue;
        }
        assert_eq!(c.choices.len(), 1, "{data}");
        let choice = &c.choices[0];
        if i == 0 {
            assert!(choice.delta.role.is_some(), "the first delta has the role");
        }
        if let Some(Some(piece)) = &choice.delta.content {
            assert!(!finished, "content after the finish reason: {text}");
            got.text.push_str(piece);
        }
        for call in choice.delta.tool_calls.iter().flatten() {
            assert!(!finished, "a tool call after the finish reason: {text}");
            let f = call.function.as_ref();
            let index = call.index as usize;
            if index == got.calls.len() {
                // A call's first piece has its id, type and name.
                assert!(call.id.is_some() && call.kind.is_some(), "{data}");
                let name = f.and_then(|f| f.name.clone());
                got.calls
                    .push((name.expect("the first piece names the call"), String::new()));
            } else {
                assert_eq!(index + 1, got.calls.len(), "calls come in order: {text}");
            }
            let args = f.and_then(|f| f.arguments.as_deref()).unwrap_or_default();
            got.calls[index].1.push_str(args);
        }
        if let Some(reason) = &choice.finish_reason.0 {
            assert!(!finished, "two finish reasons: {text}");
            got.finish = chat_finish(reason);
            finished = true;
        }
    }
    assert!(finished, "no finish reason: {text}");
    assert!(usage_seen, "include_usage asked for a usage chunk: {text}");
    assert_eq!(ids.len(), 1, "one id for all chunks: {ids:?}");
    got
}

/// `/v1/completions`: a `text_completion`, or its chunks and `[DONE]`.
pub async fn completions(gw: &Gateway, model: &str, stream: bool) -> Got {
    let mut body = json!({"model": model, "prompt": PROMPT, "max_tokens": 50});
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    let text = send(gw.post("/v1/completions", Some(MASTER), &body), stream).await;
    if !stream {
        let c: TextCompletion = strict("text_completion", &text);
        assert_eq!(c.choices.len(), 1);
        let (input_tokens, output_tokens, total_tokens) = chat_usage(c.usage.as_ref().unwrap());
        return Got {
            text: c.choices[0].text.clone(),
            finish: chat_finish(c.choices[0].finish_reason.0.as_ref().unwrap()),
            calls: Vec::new(),
            input_tokens,
            output_tokens,
            total_tokens,
        };
    }
    let events = sse(&text);
    let (last, chunks) = events.split_last().unwrap();
    assert_eq!(last.1, "[DONE]", "the stream ends with [DONE]: {text}");
    let mut got = Got::default();
    let (mut ids, mut finished, mut usage_seen) = (HashSet::new(), false, false);
    for (_, data) in chunks {
        let c: TextCompletion = strict("text_completion chunk", data);
        ids.insert(c.id.clone());
        assert!(!usage_seen, "nothing after the usage chunk: {text}");
        if let Some(u) = &c.usage {
            assert!(finished, "usage after the finish reason: {text}");
            (got.input_tokens, got.output_tokens, got.total_tokens) = chat_usage(u);
            usage_seen = true;
        }
        for choice in &c.choices {
            assert_eq!(choice.index, 0);
            if !choice.text.is_empty() {
                assert!(!finished, "text after the finish reason: {text}");
            }
            got.text.push_str(&choice.text);
            if let Some(reason) = &choice.finish_reason.0 {
                assert!(!finished, "two finish reasons: {text}");
                got.finish = chat_finish(reason);
                finished = true;
            }
        }
    }
    assert!(finished, "no finish reason: {text}");
    assert!(usage_seen, "include_usage asked for usage: {text}");
    assert_eq!(ids.len(), 1, "one id for all chunks: {ids:?}");
    got
}

/// `/v1/messages`: a `message`, or Anthropic's event sequence.
pub async fn messages(gw: &Gateway, model: &str, stream: bool, tools: bool) -> Got {
    let mut body = json!({"model": model, "max_tokens": 50, "system": "be brief", "stream": stream,
        "messages": [{"role": "user", "content": prompt(tools)}]});
    if tools {
        body["tools"] = json!([{"name": TOOL, "description": "the weather",
            "input_schema": schema()}]);
    }
    let req = client()
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", MASTER)
        .header("anthropic-version", "2023-06-01")
        .json(&body);
    let text = send(req, stream).await;
    if !stream {
        let m: Message = strict("message", &text);
        assert!(m.id.starts_with("msg_"), "{}", m.id);
        let calls = m.content.iter().filter_map(|b| match b {
            ContentBlock::ToolUse { name, input, .. } => {
                Some((name.clone(), Value::Object(input.clone()).to_string()))
            }
            _ => None,
        });
        return Got {
            text: block_text(&m.content),
            calls: calls.collect(),
            finish: message_finish(m.stop_reason.0.as_ref()),
            input_tokens: m.usage.input_tokens,
            output_tokens: m.usage.output_tokens,
            total_tokens: None,
        };
    }
    message_events(&text)
}

fn block_text(blocks: &[ContentBlock]) -> String {
    blocks
        .iter()
        .map(|b| match b {
            ContentBlock::Text { text, .. } => text.as_str(),
            _ => "",
        })
        .collect()
}

/// The kind of the open content block.
#[derive(Debug)]
enum Block {
    Text,
    Tool,
    Thinking,
}

/// Where a Messages stream is.
#[derive(Debug, PartialEq)]
enum At {
    Start,
    Started,
    InBlock(u32),
    Delta,
    Stopped,
}

/// Check a Messages stream's order: `message_start`; blocks opened, filled and closed one
/// at a time with indexes from 0; `message_delta` with the stop reason and usage;
/// `message_stop` last. `ping` may come anywhere after the start.
fn message_events(text: &str) -> Got {
    let mut got = Got::default();
    let (mut at, mut next_block, mut input_start) = (At::Start, 0, 0);
    let mut block = Block::Text;
    for (name, data) in sse(text) {
        let event: MessageEvent = strict("Messages event", &data);
        let kind: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(name.as_deref(), kind["type"].as_str(), "event name is type");
        at = match (at, event) {
            (At::Start, MessageEvent::MessageStart { message }) => {
                assert!(message.content.is_empty());
                assert!(message.stop_reason.0.is_none());
                input_start = message.usage.input_tokens;
                At::Started
            }
            (at @ (At::Started | At::InBlock(_) | At::Delta), MessageEvent::Ping {}) => at,
            (
                At::Started,
                MessageEvent::ContentBlockStart {
                    index,
                    content_block,
                },
            ) => {
                assert_eq!(index, next_block, "blocks are numbered from 0");
                next_block += 1;
                match content_block {
                    ContentBlock::ToolUse { name, input, .. } => {
                        assert!(input.is_empty(), "a streamed tool_use starts empty");
                        got.calls.push((name, String::new()));
                        block = Block::Tool;
                    }
                    ContentBlock::Text { text, .. } => {
                        assert!(text.is_empty(), "a streamed text block starts empty");
                        block = Block::Text;
                    }
                    // A model's reasoning (Cohere's tool plan, Gemini's thoughts).
                    ContentBlock::Thinking { thinking, .. } => {
                        assert!(
                            thinking.is_empty(),
                            "a streamed thinking block starts empty"
                        );
                        block = Block::Thinking;
                    }
                    other => panic!("{other:?} block"),
                }
                At::InBlock(index)
            }
            (At::InBlock(i), MessageEvent::ContentBlockDelta { index, delta }) => {
                assert_eq!(index, i);
                match (&block, delta) {
                    (Block::Text, BlockDelta::TextDelta { text }) => got.text.push_str(&text),
                    (Block::Tool, BlockDelta::InputJsonDelta { partial_json }) => {
                        got.calls.last_mut().unwrap().1.push_str(&partial_json)
                    }
                    (
                        Block::Thinking,
                        BlockDelta::ThinkingDelta { .. } | BlockDelta::SignatureDelta { .. },
                    ) => {}
                    (block, delta) => panic!("{delta:?} in {block:?} block {i}"),
                }
                At::InBlock(i)
            }
            (At::InBlock(i), MessageEvent::ContentBlockStop { index }) => {
                assert_eq!(index, i);
                At::Started
            }
            (At::Started, MessageEvent::MessageDelta { delta, usage }) => {
                got.finish = message_finish(delta.stop_reason.0.as_ref());
                got.output_tokens = usage.output_tokens;
                got.input_tokens = usage.input_tokens.flatten().unwrap_or(input_start);
                if got.input_tokens == 0 {
                    got.input_tokens = input_start;
                }
                At::Delta
            }
            (At::Delta, MessageEvent::MessageStop {}) => At::Stopped,
            (at, event) => panic!("{event:?} after {at:?}:\n{text}"),
        };
    }
    assert_eq!(
        at,
        At::Stopped,
        "the stream ends with message_stop:\n{text}"
    );
    assert!(next_block > 0, "no content block:\n{text}");
    got
}

/// `/v1/responses`: a `response`, or Responses' typed events.
pub async fn responses(gw: &Gateway, model: &str, stream: bool, tools: bool) -> Got {
    let mut body = json!({"model": model, "input": prompt(tools), "instructions": "be brief",
        "max_output_tokens": 50, "stream": stream});
    if tools {
        body["tools"] = json!([{"type": "function", "name": TOOL, "description": "the weather",
            "parameters": schema()}]);
    }
    let text = send(gw.post("/v1/responses", Some(MASTER), &body), stream).await;
    if !stream {
        let r: Response = strict("response", &text);
        return response_got(&r);
    }
    response_events(&text)
}

/// The text and usage of a completed `response`.
fn response_got(r: &Response) -> Got {
    assert!(r.id.starts_with("resp_"), "{}", r.id);
    assert_eq!(r.status, ResponseStatus::Completed);
    let (mut text, mut calls) = (String::new(), Vec::new());
    for item in &r.output {
        match item {
            OutputItem::Message { content, .. } => {
                for part in content {
                    if let OutputContent::OutputText { text: t, .. } = part {
                        text.push_str(t);
                    }
                }
            }
            OutputItem::FunctionCall {
                name, arguments, ..
            } => calls.push((name.clone(), arguments.clone())),
            OutputItem::Reasoning { .. } => {}
        }
    }
    let usage = r.usage.as_ref().and_then(Option::as_ref).unwrap();
    Got {
        text,
        finish: if calls.is_empty() { "stop" } else { "tool" },
        calls,
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        total_tokens: Some(usage.total_tokens),
    }
}

/// Check a Responses stream: sequence numbers 0, 1, ...; `response.created` and
/// `response.in_progress` first, `response.completed` last; each item added before its
/// parts and deltas and done after them; the done text is the deltas joined; the
/// completed response's text is the streamed text.
fn response_events(text: &str) -> Got {
    let events = sse(text);
    let (mut open_items, mut deltas, mut done_texts) =
        (HashSet::new(), String::new(), String::new());
    let (mut id, mut completed, mut streamed_calls, mut args) =
        (None, None, Vec::new(), String::new());
    for (n, (name, data)) in events.iter().enumerate() {
        let event: ResponseEvent = strict("Responses event", data);
        let kind: Value = serde_json::from_str(data).unwrap();
        assert_eq!(name.as_deref(), kind["type"].as_str(), "event name is type");
        assert_eq!(
            event.sequence_number(),
            n as u64,
            "sequence numbers count up"
        );
        assert!(
            completed.is_none(),
            "nothing after response.completed:\n{text}"
        );
        match (n, event) {
            (0, ResponseEvent::Created { response, .. }) => {
                assert_eq!(response.status, ResponseStatus::InProgress);
                id = Some(response.id);
            }
            (1, ResponseEvent::InProgress { response, .. }) => {
                assert_eq!(Some(&response.id), id.as_ref());
            }
            (n, e @ (ResponseEvent::Created { .. } | ResponseEvent::InProgress { .. })) => {
                panic!("{e:?} at {n}:\n{text}")
            }
            (_, ResponseEvent::ItemAdded { output_index, .. }) => {
                assert!(open_items.insert(output_index), "item added twice");
            }
            (
                _,
                ResponseEvent::ItemDone {
                    output_index, item, ..
                },
            ) => {
                assert!(open_items.remove(&output_index), "item done but not open");
                if let OutputItem::FunctionCall {
                    name, arguments, ..
                } = item
                {
                    streamed_calls.push((name, arguments));
                }
            }
            (
                _,
                ResponseEvent::PartAdded { output_index, .. }
                | ResponseEvent::PartDone { output_index, .. },
            ) => assert!(open_items.contains(&output_index), "part of a closed item"),
            (
                _,
                ResponseEvent::ArgumentsDelta {
                    output_index,
                    delta,
                    ..
                },
            ) => {
                assert!(open_items.contains(&output_index), "delta of a closed item");
                args.push_str(&delta);
            }
            (
                _,
                ResponseEvent::ArgumentsDone {
                    output_index,
                    arguments,
                    ..
                },
            ) => {
                assert!(open_items.contains(&output_index), "done of a closed item");
                assert_eq!(
                    arguments,
                    std::mem::take(&mut args),
                    "done is the deltas joined"
                );
            }
            (
                _,
                ResponseEvent::TextDelta {
                    output_index,
                    delta,
                    ..
                },
            ) => {
                assert!(open_items.contains(&output_index), "delta of a closed item");
                deltas.push_str(&delta);
            }
            (_, ResponseEvent::TextDone { text: t, .. }) => done_texts.push_str(&t),
            (_, ResponseEvent::Completed { response, .. }) => {
                assert_eq!(Some(&response.id), id.as_ref());
                completed = Some(response);
            }
            (_, e) => panic!("{e:?} in a successful stream:\n{text}"),
        }
    }
    assert!(open_items.is_empty(), "items left open:\n{text}");
    let completed = completed.unwrap_or_else(|| panic!("no response.completed:\n{text}"));
    let got = response_got(&completed);
    assert_eq!(deltas, done_texts, "the done text is the deltas joined");
    assert_eq!(
        got.text, deltas,
        "the completed response has the streamed text"
    );
    assert_eq!(
        got.calls, streamed_calls,
        "the completed response has the streamed calls"
    );
    got
}
