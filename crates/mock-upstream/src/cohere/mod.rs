//! Cohere's Chat v2 (`POST /v2/chat`) and Embed v2 (`POST /v2/embed`): Bearer auth and
//! Cohere's error JSON (`{"id","message"}`).
//!
//! Chat is the echo model in Cohere's shape: `"echo: "` and the text of the last user
//! message; tokens are words (`usage.billed_units` and `usage.tokens` alike);
//! `max_tokens` below the reply's word count cuts it with `finish_reason: "MAX_TOKENS"`. With
//! `tools`, a last user text containing `call tool` is answered with a call of the first tool
//! (arguments `{"city":"Paris"}`, a `tool_plan`, `finish_reason: "TOOL_CALL"`);
//! `tool_choice: "REQUIRED"` forces that call whatever the text, its arguments a value
//! fitting the tool's `parameters` ([`crate::sample`]). A `response_format.json_schema`
//! makes the text reply such a value as JSON; `{type: json_object}` alone makes it
//! `{"echo": "<text>"}`. After a tool result (the last message has role `tool`) the reply
//! is text. A stream sends
//! Cohere's events as SSE (`event: <type>` and `data: <json>`): `message-start`,
//! `content-start`, one `content-delta` per word, `content-end` (or `tool-plan-delta`,
//! `tool-call-start`, `tool-call-delta`s, `tool-call-end`), and `message-end` with the finish
//! reason and usage.
//!
//! Embed wants `texts`, `input_type` and `embedding_types` containing `"float"`, and answers
//! deterministic vectors (those of [`crate::openai`], `output_dimension` long, default 8) with
//! `meta.billed_units.input_tokens` (words).

use crate::sample::sample;
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::body::{self, MockBody, Reply};
use crate::openai::chat::word_pieces;
use crate::openai::embeddings::{fnv1a, vector};
use crate::server::Payload;
use crate::state::{Shared, Tokens};

pub(crate) const CHAT: &str = "/v2/chat";
pub(crate) const EMBED: &str = "/v2/embed";

/// Which Cohere endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Chat,
    Embed,
}

pub(crate) fn classify(method: &Method, path: &str) -> Option<Endpoint> {
    match (method, path) {
        (&Method::POST, CHAT) => Some(Endpoint::Chat),
        (&Method::POST, EMBED) => Some(Endpoint::Embed),
        _ => None,
    }
}

pub(crate) fn is_streaming(endpoint: Endpoint, payload: &Payload) -> bool {
    endpoint == Endpoint::Chat
        && payload
            .json()
            .and_then(|v| v.get("stream"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
}

/// The 401 Cohere sends for a wrong or missing key.
pub(crate) fn unauthorized() -> Reply {
    error(StatusCode::UNAUTHORIZED, "invalid api token").into()
}

/// Cohere's error JSON.
pub(crate) fn error(status: StatusCode, message: &str) -> http::Response<MockBody> {
    body::json(status, &json!({"id": "mock-error", "message": message}))
}

/// The answer to a status fault without a custom body, in Cohere's error shape.
pub(crate) fn fault_error(status: StatusCode) -> http::Response<MockBody> {
    let message = match status.as_u16() {
        429 => "You are past the per minute request limit, please wait and try again later."
            .to_string(),
        n => format!(
            "mock-upstream fault: HTTP {n} {}",
            status.canonical_reason().unwrap_or("")
        )
        .trim_end()
        .to_string(),
    };
    error(status, &message)
}

/// Answers a request the pipeline let through.
pub(crate) fn respond(shared: &Shared, endpoint: Endpoint, payload: &Payload) -> Reply {
    let Some(json) = payload.json().filter(|v| v.is_object()) else {
        return bad_request("invalid request: the body is not a JSON object");
    };
    if json.get("model").and_then(Value::as_str).is_none() {
        return bad_request("invalid request: model must be specified");
    }
    match endpoint {
        Endpoint::Chat => chat(shared, json),
        Endpoint::Embed => embed(json),
    }
}

fn bad_request(message: &str) -> Reply {
    error(StatusCode::BAD_REQUEST, message).into()
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The text of a message's `content` (a string, or its text items).
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter(|i| i.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|i| i.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

fn chat(shared: &Shared, json: &Value) -> Reply {
    let Some(messages) = json.get("messages").and_then(Value::as_array) else {
        return bad_request("invalid request: messages must be specified");
    };
    let mut input = 0;
    let mut last_user = String::new();
    for m in messages {
        let text = text_of(m.get("content"));
        input += words(&text);
        if m.get("role").and_then(Value::as_str) == Some("user") {
            last_user = text;
        }
    }
    let input = input.max(1);
    let id = format!("mock-cohere-{}", shared.next_id());
    let required = json.get("tool_choice").and_then(Value::as_str) == Some("REQUIRED");
    let first_tool = json
        .get("tools")
        .and_then(Value::as_array)
        .and_then(|t| t.first());
    // After a tool result the model answers in text (as the other formats' echo models,
    // whose tool results arrive as the last user turn).
    let answered = messages
        .last()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str)
        == Some("tool");
    let asked = last_user.contains("call tool") && !answered;
    let arguments = match first_tool.filter(|_| required && !asked) {
        Some(t) => sample(t.pointer("/function/parameters").unwrap_or(&Value::Null)).to_string(),
        None => ARGUMENTS.to_string(),
    };
    let tool = first_tool
        .filter(|_| (required && !answered) || asked)
        .map(|t| {
            t.pointer("/function/name")
                .and_then(Value::as_str)
                .unwrap_or("tool")
                .to_string()
        });
    let streaming = json.get("stream").and_then(Value::as_bool) == Some(true);
    let (response, output) = match tool {
        Some(name) => {
            let call_id = format!("{name}_mock_{id}");
            let response = if streaming {
                tool_stream(&id, &name, &call_id, &arguments, input)
            } else {
                body::json(
                    StatusCode::OK,
                    &json!({
                        "id": id,
                        "finish_reason": "TOOL_CALL",
                        "message": {
                            "role": "assistant",
                            "tool_plan": format!("I will call {name}."),
                            "tool_calls": [{"id": call_id, "type": "function",
                                "function": {"name": name, "arguments": arguments}}],
                        },
                        "usage": usage(input, 1),
                    }),
                )
            };
            (response, 1)
        }
        None => {
            let format = json.get("response_format");
            let full = match format.and_then(|f| f.get("json_schema")) {
                Some(schema) => sample(schema).to_string(),
                None if format.and_then(|f| f.get("type")).and_then(Value::as_str)
                    == Some("json_object") =>
                {
                    json!({ "echo": last_user }).to_string()
                }
                None => format!("echo: {last_user}"),
            };
            let limit = json.get("max_tokens").and_then(Value::as_u64);
            let (text, finish) = match limit {
                Some(n) if n < words(&full) => {
                    let n = usize::try_from(n).unwrap_or(usize::MAX);
                    let cut: String = word_pieces(&full).into_iter().take(n).collect();
                    (cut.trim_end().to_string(), "MAX_TOKENS")
                }
                _ => (full, "COMPLETE"),
            };
            let output = words(&text);
            let response = if streaming {
                text_stream(&id, &text, finish, input, output)
            } else {
                body::json(
                    StatusCode::OK,
                    &json!({
                        "id": id,
                        "finish_reason": finish,
                        "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
                        "usage": usage(input, output),
                    }),
                )
            };
            (response, output)
        }
    };
    Reply {
        response,
        usage: Some(Tokens {
            prompt: input,
            completion: output,
        }),
    }
}

/// The arguments of every mock tool call.
const ARGUMENTS: &str = r#"{"city":"Paris"}"#;

fn usage(input: u64, output: u64) -> Value {
    json!({
        "billed_units": {"input_tokens": input, "output_tokens": output},
        "tokens": {"input_tokens": input, "output_tokens": output},
    })
}

/// One SSE event.
fn event(data: &Value) -> Bytes {
    let kind = data.get("type").and_then(Value::as_str).unwrap_or("");
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

fn start(id: &str) -> Bytes {
    event(
        &json!({"type": "message-start", "id": id, "delta": {"message": {
        "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}),
    )
}

fn end(finish: &str, input: u64, output: u64) -> Bytes {
    event(
        &json!({"type": "message-end", "delta": {"finish_reason": finish, "usage": usage(input, output)}}),
    )
}

fn sse(frames: Vec<Bytes>) -> http::Response<MockBody> {
    body::response(
        StatusCode::OK,
        "text/event-stream",
        MockBody::stream(frames),
    )
}

fn text_stream(
    id: &str,
    text: &str,
    finish: &str,
    input: u64,
    output: u64,
) -> http::Response<MockBody> {
    let mut frames = vec![
        start(id),
        event(&json!({"type": "content-start", "index": 0,
            "delta": {"message": {"content": {"type": "text", "text": ""}}}})),
    ];
    for piece in word_pieces(text) {
        frames.push(event(&json!({"type": "content-delta", "index": 0,
            "delta": {"message": {"content": {"text": piece}}}})));
    }
    frames.push(event(&json!({"type": "content-end", "index": 0})));
    frames.push(end(finish, input, output));
    sse(frames)
}

fn tool_stream(
    id: &str,
    name: &str,
    call_id: &str,
    arguments: &str,
    input: u64,
) -> http::Response<MockBody> {
    let mut frames = vec![start(id)];
    for piece in word_pieces(&format!("I will call {name}.")) {
        frames.push(event(
            &json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}}),
        ));
    }
    frames.push(event(
        &json!({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {
        "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}}}}),
    ));
    let mid = (0..=arguments.len() / 2)
        .rev()
        .find(|i| arguments.is_char_boundary(*i))
        .unwrap_or(0);
    let (a, b) = arguments.split_at(mid);
    for fragment in [a, b] {
        frames.push(event(&json!({"type": "tool-call-delta", "index": 0,
            "delta": {"message": {"tool_calls": {"function": {"arguments": fragment}}}}})));
    }
    frames.push(event(&json!({"type": "tool-call-end", "index": 0})));
    frames.push(end("TOOL_CALL", input, 1));
    sse(frames)
}

fn embed(json: &Value) -> Reply {
    let Some(texts) = json
        .get("texts")
        .and_then(Value::as_array)
        .and_then(|t| t.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
    else {
        return bad_request("invalid request: texts must be a list of strings");
    };
    if json.get("input_type").and_then(Value::as_str).is_none() {
        return bad_request(
            "invalid request: valid input_type must be provided with the provided model",
        );
    }
    let wants_float = json
        .get("embedding_types")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|v| v == "float"));
    if !wants_float {
        return bad_request("invalid request: the mock answers embedding_types [\"float\"] only");
    }
    let dims = json
        .get("output_dimension")
        .and_then(Value::as_u64)
        .unwrap_or(8)
        .clamp(1, 4096);
    let dims = usize::try_from(dims).unwrap_or(8);
    let vectors: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| vector(fnv1a(t.as_bytes()), dims))
        .collect();
    let tokens: u64 = texts.iter().map(|t| words(t).max(1)).sum();
    Reply {
        response: body::json(
            StatusCode::OK,
            &json!({
                "id": "mock-embed",
                "embeddings": {"float": vectors},
                "texts": texts,
                "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
                "response_type": "embeddings_by_type",
            }),
        ),
        usage: Some(Tokens {
            prompt: tokens,
            completion: 0,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(classify(&Method::POST, "/v2/chat"), Some(Endpoint::Chat));
        assert_eq!(classify(&Method::POST, "/v2/embed"), Some(Endpoint::Embed));
        assert_eq!(classify(&Method::GET, "/v2/chat"), None);
        assert_eq!(classify(&Method::POST, "/v1/chat"), None);
    }
}
