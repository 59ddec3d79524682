//! An Anthropic Messages request turned into the canonical (OpenAI chat) request.
//! The field table is in docs/front-doors.md; in short: `system` becomes the first
//! message, `tool_result` blocks become `tool` messages, `tool_use` blocks tool calls,
//! images data or https URLs, tools functions, `stop_sequences` `stop`,
//! `metadata.user_id` `user`. Fields with no OpenAI counterpart (`top_k`, `thinking`,
//! and any this module does not know) are kept as they are, so the deployment's
//! adapter decides (Anthropic-format and most adapters honour `top_k` and
//! `thinking`; others answer 400 naming the field, or drop it under `drop_params`).
//! Prompt-cache markers (`cache_control`) and the history's thinking blocks are
//! Anthropic's alone: they are kept for Anthropic-format deployments (which get the
//! client's bytes) and left out of the canonical request.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::GatewayError;

/// The fields of a Messages request this module reads; the rest is in `extra`.
#[derive(Deserialize)]
struct MessagesRequest {
    model: Value,
    messages: Option<Vec<InMessage>>,
    max_tokens: Option<u64>,
    #[serde(default)]
    system: Option<Value>,
    #[serde(default)]
    stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Deserialize)]
struct InMessage {
    role: String,
    content: Value,
}

fn invalid(message: impl Into<String>) -> GatewayError {
    GatewayError::bad_request(message)
}

/// The canonical chat body (as JSON) for a Messages request body.
pub fn canonical(body: &[u8]) -> Result<Value, GatewayError> {
    let req: MessagesRequest = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("invalid Messages request: {e}")))?;
    let messages = req
        .messages
        .ok_or_else(|| invalid("messages: Field required"))?;
    let max_tokens = req
        .max_tokens
        .ok_or_else(|| invalid("max_tokens: Field required"))?;
    let mut out = Map::new();
    // Kept first, so that the canonical body's keys follow the client's.
    for (key, value) in req.extra {
        out.insert(key, value);
    }
    out.insert("model".into(), req.model);
    let mut turns = Vec::with_capacity(messages.len() + 1);
    if let Some(system) = req.system {
        let text = system_text(&system)?;
        if !text.is_empty() {
            turns.push(json!({"role": "system", "content": text}));
        }
    }
    for (i, m) in messages.iter().enumerate() {
        match m.role.as_str() {
            "user" => user_turn(&m.content, i, &mut turns)?,
            "assistant" => turns.push(assistant_turn(&m.content, i)?),
            // Claude Code sends its reminders as system turns to models whose names are
            // not Claude's: a system message where it stands.
            "system" => {
                let text = system_text(&m.content)
                    .map_err(|e| invalid(format!("messages.{i}.content: {e}")))?;
                turns.push(json!({"role": "system", "content": text}));
            }
            other => {
                return Err(invalid(format!(
                "messages.{i}.role: must be \"user\", \"assistant\" or \"system\", not {other:?}"
            )))
            }
        }
    }
    out.insert("messages".into(), Value::Array(turns));
    out.insert("max_tokens".into(), max_tokens.into());
    if let Some(stop) = req.stop_sequences.filter(|s| !s.is_empty()) {
        out.insert("stop".into(), stop.into());
    }
    if req.stream == Some(true) {
        out.insert("stream".into(), true.into());
        // The encoder needs the usage for `message_delta`.
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(user) = req
        .metadata
        .as_ref()
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        out.insert("user".into(), user.into());
    }
    if let Some(tools) = req.tools.filter(|t| !t.is_empty()) {
        let tools: Vec<Value> = tools.iter().map(tool).collect();
        out.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = &req.tool_choice {
            tool_choice(choice, &mut out)?;
        }
    }
    Ok(Value::Object(out))
}

/// `system`: a string, or text blocks (joined by a blank line).
fn system_text(system: &Value) -> Result<String, GatewayError> {
    match system {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (i, b) in blocks.iter().enumerate() {
                match b.get("text").and_then(Value::as_str) {
                    Some(t) if b.get("type").and_then(Value::as_str) == Some("text") => {
                        texts.push(t)
                    }
                    _ => return Err(invalid(format!("system.{i}: only text blocks are allowed"))),
                }
            }
            Ok(texts.join("\n\n"))
        }
        Value::Null => Ok(String::new()),
        _ => Err(invalid("system: must be a string or a list of text blocks")),
    }
}

/// The blocks of a `content`: a string is one text block.
fn blocks(content: &Value, path: &str) -> Result<Vec<Value>, GatewayError> {
    match content {
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(b) => Ok(b.clone()),
        _ => Err(invalid(format!(
            "{path}.content: must be a string or a list of content blocks"
        ))),
    }
}

fn kind(block: &Value) -> &str {
    block.get("type").and_then(Value::as_str).unwrap_or("")
}

/// A user turn: its `tool_result` blocks as `tool` messages (first, as OpenAI wants
/// them right after the assistant's calls), then one user message with the rest.
fn user_turn(content: &Value, i: usize, turns: &mut Vec<Value>) -> Result<(), GatewayError> {
    let path = format!("messages.{i}");
    let mut parts = Vec::new();
    for (j, block) in blocks(content, &path)?.into_iter().enumerate() {
        let at = format!("{path}.content.{j}");
        if kind(&block) == "tool_result" {
            turns.push(tool_message(&block, &at, &mut parts)?);
        } else {
            parts.push(user_part(block, &at)?);
        }
    }
    match parts.as_slice() {
        [] => {}
        [only] if kind(only) == "text" => {
            let text = only.get("text").cloned().unwrap_or_default();
            turns.push(json!({"role": "user", "content": text}));
        }
        _ => turns.push(json!({"role": "user", "content": parts})),
    }
    Ok(())
}

/// A user content block as an OpenAI content part. Blocks with no OpenAI
/// counterpart are kept as they are (the deployment's adapter decides).
fn user_part(block: Value, at: &str) -> Result<Value, GatewayError> {
    match kind(&block) {
        "text" => {
            let text = block
                .get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("{at}.text: Field required")))?;
            Ok(json!({"type": "text", "text": text}))
        }
        "image" => Ok(json!({"type": "image_url", "image_url": {"url": source_url(&block, at)?}})),
        "document" => Ok(document_part(&block)),
        _ => Ok(block),
    }
}

/// An image's `source` as a URL: https, or a base64 data URL.
fn source_url(block: &Value, at: &str) -> Result<String, GatewayError> {
    let source = &block["source"];
    let text = |k: &str| source.get(k).and_then(Value::as_str);
    match text("type") {
        Some("base64") => match (text("media_type"), text("data")) {
            (Some(media), Some(data)) => Ok(format!("data:{media};base64,{data}")),
            _ => Err(invalid(format!(
                "{at}.source: a base64 source needs media_type and data"
            ))),
        },
        Some("url") => text("url")
            .map(str::to_string)
            .ok_or_else(|| invalid(format!("{at}.source.url: Field required"))),
        _ => Err(invalid(format!(
            "{at}.source: only base64 and url sources can be sent to this model"
        ))),
    }
}

/// A `document` block: a base64 PDF as an OpenAI `file` part, plain text as text.
fn document_part(block: &Value) -> Value {
    let source = &block["source"];
    let text = |k: &str| source.get(k).and_then(Value::as_str);
    match text("type") {
        Some("base64") => {
            let media = text("media_type").unwrap_or("application/pdf");
            let data = text("data").unwrap_or("");
            let mut file = json!({"file_data": format!("data:{media};base64,{data}")});
            if let Some(title) = block.get("title").and_then(Value::as_str) {
                file["filename"] = title.into();
            }
            json!({"type": "file", "file": file})
        }
        Some("text") => json!({"type": "text", "text": text("data").unwrap_or("")}),
        _ => block.clone(),
    }
}

/// A `tool_result` block as a `tool` message. Its text is the message; its images
/// join the user message of the same turn (OpenAI's tool messages hold text only).
fn tool_message(block: &Value, at: &str, parts: &mut Vec<Value>) -> Result<Value, GatewayError> {
    let id = block
        .get("tool_use_id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{at}.tool_use_id: Field required")))?;
    let mut text = String::new();
    match block.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => text.push_str(s),
        Some(Value::Array(inner)) => {
            for (k, b) in inner.iter().enumerate() {
                match kind(b) {
                    "text" => {
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(b.get("text").and_then(Value::as_str).unwrap_or(""));
                    }
                    _ => parts.push(user_part(b.clone(), &format!("{at}.content.{k}"))?),
                }
            }
        }
        Some(_) => return Err(invalid(format!("{at}.content: must be a string or blocks"))),
    }
    Ok(json!({"role": "tool", "tool_call_id": id, "content": text}))
}

/// An assistant turn: text as `content`, `tool_use` as tool calls. Thinking blocks
/// (and other blocks only Anthropic reads) are left out.
fn assistant_turn(content: &Value, i: usize) -> Result<Value, GatewayError> {
    let path = format!("messages.{i}");
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks(content, &path)?.iter().enumerate() {
        match kind(block) {
            "text" => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            "tool_use" => {
                let field = |k: &str| {
                    block
                        .get(k)
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid(format!("{path}.content.{j}.{k}: Field required")))
                };
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": field("id")?,
                    "type": "function",
                    "function": {"name": field("name")?, "arguments": input.to_string()},
                }));
            }
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant"});
    message["content"] = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        text.into()
    };
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    Ok(message)
}

/// A tool: a custom tool (`name`, `description`, `input_schema`) as a function; a
/// server tool (`web_search_...`, `bash_...`) as it is, for the adapter to judge.
fn tool(t: &Value) -> Value {
    let custom = matches!(t.get("type").and_then(Value::as_str), None | Some("custom"));
    if !custom {
        return t.clone();
    }
    let mut function = Map::new();
    for (from, to) in [
        ("name", "name"),
        ("description", "description"),
        ("input_schema", "parameters"),
    ] {
        if let Some(v) = t.get(from) {
            function.insert(to.into(), v.clone());
        }
    }
    json!({"type": "function", "function": function})
}

/// `tool_choice` (`auto`, `any`, `tool`, `none`) and `disable_parallel_tool_use`.
fn tool_choice(choice: &Value, out: &mut Map<String, Value>) -> Result<(), GatewayError> {
    let mapped = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.name: Field required"))?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(invalid(
                "tool_choice.type: must be \"auto\", \"any\", \"tool\" or \"none\"",
            ))
        }
    };
    out.insert("tool_choice".into(), mapped);
    if choice.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
        out.insert("parallel_tool_calls".into(), false.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn decode(v: Value) -> Value {
        canonical(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn every_field_maps() {
        let out = decode(json!({
            "model": "claude-sonnet-4-5", "max_tokens": 50, "top_k": 5,
            "system": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
                       {"type": "text", "text": "b"}],
            "stop_sequences": ["END"], "temperature": 0.2, "top_p": 0.9, "stream": true,
            "metadata": {"user_id": "u1"},
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": [{"name": "get", "description": "d", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "s"},
                    {"type": "tool_use", "id": "t1", "name": "get", "input": {"q": 1}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "42"}]},
                    {"type": "text", "text": "and?"}]}
            ]
        }));
        assert_eq!(out["model"], "claude-sonnet-4-5");
        assert_eq!(out["max_tokens"], 50);
        assert_eq!(out["top_k"], 5);
        assert_eq!(out["temperature"], 0.2);
        assert_eq!(out["stop"], json!(["END"]));
        assert_eq!(out["user"], "u1");
        assert_eq!(out["stream_options"]["include_usage"], true);
        assert_eq!(out["thinking"]["budget_tokens"], 1024);
        assert_eq!(out["tool_choice"], "required");
        assert_eq!(out["parallel_tool_calls"], false);
        assert_eq!(out["tools"][0]["function"]["parameters"]["type"], "object");
        let m = &out["messages"];
        assert_eq!(m[0], json!({"role": "system", "content": "a\n\nb"}));
        assert_eq!(
            m[1]["content"][1]["image_url"]["url"],
            "data:image/png;base64,AAAA"
        );
        assert_eq!(m[1]["content"][2]["image_url"]["url"], "https://x/y.png");
        assert_eq!(m[2]["content"], Value::Null);
        assert_eq!(m[2]["tool_calls"][0]["function"]["arguments"], "{\"q\":1}");
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "t1", "content": "42"})
        );
        assert_eq!(m[4], json!({"role": "user", "content": "and?"}));
        assert!(out.get("metadata").is_none() && out.get("system").is_none());
    }

    #[test]
    fn a_system_turn_is_a_system_message_where_it_stands() {
        let out = decode(json!({
            "model": "m", "max_tokens": 5, "system": "first",
            "messages": [
                {"role": "system", "content": "reminder"},
                {"role": "user", "content": "hi"},
                {"role": "system", "content": [{"type": "text", "text": "later"}]}
            ]
        }));
        let roles: Vec<(&str, &str)> = out["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        assert_eq!(
            roles,
            [
                ("system", "first"),
                ("system", "reminder"),
                ("user", "hi"),
                ("system", "later")
            ]
        );
    }

    #[test]
    fn bad_requests_name_the_field() {
        for (body, needle) in [
            (json!({"model": "m", "messages": []}), "max_tokens"),
            (json!({"model": "m", "max_tokens": 1}), "messages"),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "tool", "content": "x"}]}),
                "messages.0.role",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": 3}]}),
                "messages.0.content",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "tools": [{"name": "f"}], "tool_choice": {"type": "x"},
                    "messages": [{"role": "user", "content": "x"}]}),
                "tool_choice",
            ),
        ] {
            let e = canonical(body.to_string().as_bytes()).unwrap_err();
            assert!(e.to_string().contains(needle), "{e} / {needle}");
        }
    }
}
