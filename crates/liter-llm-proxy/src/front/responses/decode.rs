//! A Responses request read into what the gateway needs: the turn's input items (in
//! Responses' item shape, the shape the conversation is stored in), the fields echoed
//! in the response object, and the canonical (OpenAI chat) request for a
//! conversation. The field table is in docs/front-doors.md; in short: `instructions`
//! becomes the first (system) message, message items messages, `function_call` items
//! an assistant turn's tool calls, `function_call_output` items `tool` messages,
//! function tools chat tools, `text.format` `response_format`, `reasoning.effort`
//! `reasoning_effort`, `max_output_tokens` `max_tokens`. Fields with no chat
//! counterpart that this module does not know are kept as they are, so the
//! deployment's adapter decides (400 naming the field, or dropped under
//! `drop_params`); the ones the gateway cannot honour at all (`background`,
//! `conversation`, `prompt`, `truncation: "auto"`, hosted tools) are a 400.

use serde_json::{json, Map, Value};

use crate::error::GatewayError;

/// Request fields the gateway keeps for itself (state) or answers with a 400.
const UNSUPPORTED: [&str; 3] = ["background", "conversation", "prompt"];

/// Fields echoed in the response object as the client sent them.
const ECHOED: [&str; 11] = [
    "instructions",
    "max_output_tokens",
    "metadata",
    "parallel_tool_calls",
    "reasoning",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "user",
];

/// A Responses request, read.
#[derive(Debug)]
pub struct Request {
    pub model: String,
    pub stream: bool,
    /// `store` (default true).
    pub store: bool,
    pub previous_response_id: Option<String>,
    /// This turn's input, as items (a string input is one user message item).
    pub input: Vec<Value>,
    /// The fields the response object repeats ([`ECHOED`]).
    pub echo: Map<String, Value>,
    /// The canonical request's fields other than `model`, `messages` and `stream`.
    pub chat: Map<String, Value>,
    pub instructions: Option<String>,
}

fn invalid(message: impl Into<String>) -> GatewayError {
    GatewayError::bad_request(message)
}

fn invalid_param(message: impl Into<String>, param: &'static str) -> GatewayError {
    GatewayError::BadRequest {
        message: message.into(),
        param: Some(param),
        code: None,
    }
}

/// Reads a Responses request body (already checked to be a JSON object with a string
/// `model`).
pub fn read(mut body: Map<String, Value>) -> Result<Request, GatewayError> {
    let model = match body.remove("model") {
        Some(Value::String(m)) => m,
        _ => return Err(invalid_param("'model' must be a string", "model")),
    };
    for field in UNSUPPORTED {
        if body.get(field).is_some_and(|v| !v.is_null() && *v != false) {
            return Err(invalid_param(
                format!("{field:?} is not supported by this gateway"),
                "unsupported",
            ));
        }
        body.remove(field);
    }
    match body.remove("truncation") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t == "disabled" => {}
        Some(_) => {
            return Err(invalid_param(
                "truncation: only \"disabled\" is supported by this gateway",
                "truncation",
            ))
        }
    }
    let flag = |v: Option<Value>, name: &'static str, default: bool| match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(b),
        Some(_) => Err(invalid_param(format!("'{name}' must be a boolean"), name)),
    };
    let stream = flag(body.remove("stream"), "stream", false)?;
    let store = flag(body.remove("store"), "store", true)?;
    let previous_response_id = match body.remove("previous_response_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id),
        Some(_) => {
            return Err(invalid_param(
                "'previous_response_id' must be a string",
                "previous_response_id",
            ))
        }
    };
    let input = match body.remove("input") {
        Some(Value::String(text)) => vec![user_text(text)],
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => {
            return Err(invalid_param(
                "'input' must be a string or an array of items",
                "input",
            ))
        }
    };
    let input = input
        .into_iter()
        .enumerate()
        .map(|(i, item)| normalize_item(item, i))
        .collect::<Result<Vec<_>, _>>()?;
    // Asked for by clients such as Codex; nothing extra is produced, so nothing is
    // left out either.
    body.remove("include");
    body.remove("stream_options");
    let mut echo = Map::new();
    for field in ECHOED {
        if let Some(v) = body.get(field).filter(|v| !v.is_null()) {
            echo.insert(field.to_string(), v.clone());
        }
    }
    let instructions = match body.remove("instructions") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            return Err(invalid_param(
                "'instructions' must be a string",
                "instructions",
            ))
        }
    };
    let chat = chat_fields(body)?;
    Ok(Request {
        model,
        stream,
        store,
        previous_response_id,
        input,
        echo,
        chat,
        instructions,
    })
}

/// A user message item holding `text`.
fn user_text(text: String) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

/// An input item with its `type` (a bare `{role, content}` is a message), checked to
/// be one the gateway can translate.
fn normalize_item(item: Value, i: usize) -> Result<Value, GatewayError> {
    let Value::Object(mut obj) = item else {
        return Err(invalid(format!("input[{i}]: must be an object")));
    };
    let kind = match obj.get("type").and_then(Value::as_str) {
        Some(k) => k.to_string(),
        None if obj.contains_key("role") => {
            obj.insert("type".into(), "message".into());
            "message".into()
        }
        None => return Err(invalid(format!("input[{i}]: missing 'type'"))),
    };
    match kind.as_str() {
        "message" => {
            let role = obj.get("role").and_then(Value::as_str).unwrap_or("");
            if !matches!(role, "user" | "assistant" | "system" | "developer") {
                return Err(invalid(format!(
                    "input[{i}].role: must be user, assistant, system or developer"
                )));
            }
            if let Some(Value::String(text)) = obj.get("content") {
                let part = if role == "assistant" {
                    json!({"type": "output_text", "text": text, "annotations": []})
                } else {
                    json!({"type": "input_text", "text": text})
                };
                obj.insert("content".into(), Value::Array(vec![part]));
            }
        }
        "function_call" | "function_call_output" => {
            if obj.get("call_id").and_then(Value::as_str).is_none() {
                return Err(invalid(format!("input[{i}]: missing 'call_id'")));
            }
        }
        "reasoning" => {}
        other => {
            return Err(invalid(format!(
                "input[{i}]: items of type {other:?} are not supported by this gateway"
            )))
        }
    }
    Ok(Value::Object(obj))
}

/// The canonical request's fields from the Responses request's remaining ones.
fn chat_fields(mut body: Map<String, Value>) -> Result<Map<String, Value>, GatewayError> {
    let mut out = Map::new();
    // Kept by the gateway (echoed and stored), not sent upstream.
    body.remove("metadata");
    if let Some(max) = body.remove("max_output_tokens").filter(|v| !v.is_null()) {
        out.insert("max_tokens".into(), max);
    }
    if let Some(tools) = body.remove("tools").filter(|v| !v.is_null()) {
        let Value::Array(tools) = tools else {
            return Err(invalid_param("'tools' must be an array", "tools"));
        };
        if !tools.is_empty() {
            let tools = tools.iter().map(tool).collect::<Result<Vec<_>, _>>()?;
            out.insert("tools".into(), Value::Array(tools));
        }
    }
    if let Some(choice) = body.remove("tool_choice").filter(|v| !v.is_null()) {
        out.insert("tool_choice".into(), tool_choice(choice)?);
    }
    if let Some(text) = body.remove("text").filter(|v| !v.is_null()) {
        text_options(&text, &mut out)?;
    }
    if let Some(reasoning) = body.remove("reasoning").filter(|v| !v.is_null()) {
        if let Some(effort) = reasoning.get("effort").filter(|v| !v.is_null()) {
            out.insert("reasoning_effort".into(), effort.clone());
        }
    }
    // temperature, top_p, user, parallel_tool_calls, service_tier, ... and fields this
    // module does not know: as they are.
    for (k, v) in body {
        if !v.is_null() {
            out.insert(k, v);
        }
    }
    Ok(out)
}

/// A Responses function tool (`{type, name, description, parameters, strict}`) as a
/// chat tool.
fn tool(t: &Value) -> Result<Value, GatewayError> {
    let kind = t.get("type").and_then(Value::as_str).unwrap_or("");
    if kind != "function" {
        return Err(invalid_param(
            format!("tools of type {kind:?} are not supported by this gateway; use function tools"),
            "tools",
        ));
    }
    let name = t
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_param("a function tool needs a 'name'", "tools"))?;
    let mut function = Map::new();
    function.insert("name".into(), name.into());
    for key in ["description", "parameters", "strict"] {
        if let Some(v) = t.get(key).filter(|v| !v.is_null()) {
            function.insert(key.into(), v.clone());
        }
    }
    Ok(json!({"type": "function", "function": function}))
}

/// `tool_choice`: a mode as it is; `{"type":"function","name"}` as chat's
/// `{"type":"function","function":{"name"}}`.
fn tool_choice(choice: Value) -> Result<Value, GatewayError> {
    match &choice {
        Value::String(_) => Ok(choice),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o.get("name").and_then(Value::as_str).ok_or_else(|| {
                invalid_param(
                    "tool_choice: a function choice needs a 'name'",
                    "tool_choice",
                )
            })?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(invalid_param(
            "tool_choice: only \"none\", \"auto\", \"required\" and function choices are supported",
            "tool_choice",
        )),
    }
}

/// `text.format` as `response_format`; `text.verbosity` as `verbosity`.
fn text_options(text: &Value, out: &mut Map<String, Value>) -> Result<(), GatewayError> {
    if let Some(v) = text.get("verbosity").filter(|v| !v.is_null()) {
        out.insert("verbosity".into(), v.clone());
    }
    let Some(format) = text.get("format").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => {}
        Some("json_object") => {
            out.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some("json_schema") => {
            let mut schema = Map::new();
            for key in ["name", "schema", "strict", "description"] {
                if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                    schema.insert(key.into(), v.clone());
                }
            }
            if !schema.contains_key("name") {
                return Err(invalid_param(
                    "text.format: json_schema needs a 'name'",
                    "text",
                ));
            }
            out.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": schema}),
            );
        }
        _ => {
            return Err(invalid_param(
                "text.format.type: must be text, json_object or json_schema",
                "text",
            ))
        }
    }
    Ok(())
}

/// The canonical chat body for `items` (a whole conversation, stored and new) under
/// `instructions`, with `chat`'s fields.
pub fn canonical(
    model: &str,
    instructions: Option<&str>,
    items: &[Value],
    chat: &Map<String, Value>,
    stream: bool,
) -> Result<Value, GatewayError> {
    let mut out = chat.clone();
    out.insert("model".into(), model.into());
    let mut messages: Vec<Value> = Vec::with_capacity(items.len() + 1);
    if let Some(text) = instructions.filter(|t| !t.is_empty()) {
        messages.push(json!({"role": "system", "content": text}));
    }
    for (i, item) in items.iter().enumerate() {
        add_item(item, i, &mut messages)?;
    }
    out.insert("messages".into(), Value::Array(messages));
    if stream {
        out.insert("stream".into(), true.into());
        // The encoder needs the usage for `response.completed`.
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(Value::Object(out))
}

/// One item as chat messages: a message, a tool call (joined to the assistant turn
/// before it), or a tool result. Reasoning items are left out.
fn add_item(item: &Value, i: usize, messages: &mut Vec<Value>) -> Result<(), GatewayError> {
    let text = |key: &str| item.get(key).and_then(Value::as_str).unwrap_or("");
    match text("type") {
        "message" => {
            let role = match text("role") {
                "developer" => "system",
                r => r,
            };
            let content = content(item.get("content"), role, i)?;
            messages.push(json!({"role": role, "content": content}));
        }
        "function_call" => {
            let call = json!({"id": text("call_id"), "type": "function",
                "function": {"name": text("name"), "arguments": text("arguments")}});
            match messages.last_mut() {
                Some(m) if m["role"] == "assistant" => {
                    let calls = m
                        .as_object_mut()
                        .map(|o| o.entry("tool_calls").or_insert_with(|| json!([])));
                    if let Some(Value::Array(calls)) = calls {
                        calls.push(call);
                    }
                }
                _ => messages
                    .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        "function_call_output" => {
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect(),
                _ => String::new(),
            };
            messages
                .push(json!({"role": "tool", "tool_call_id": text("call_id"), "content": output}));
        }
        _ => {}
    }
    Ok(())
}

/// A message item's content parts as chat content: one string when it is all text
/// (and always for the assistant), else text and image parts.
fn content(parts: Option<&Value>, role: &str, i: usize) -> Result<Value, GatewayError> {
    let Some(Value::Array(parts)) = parts else {
        return Ok(Value::String(String::new()));
    };
    let mut out = Vec::with_capacity(parts.len());
    let mut all_text = true;
    for part in parts {
        let get = |k: &str| part.get(k).and_then(Value::as_str);
        match get("type").unwrap_or("") {
            "input_text" | "output_text" | "text" => {
                out.push(json!({"type": "text", "text": get("text").unwrap_or("")}));
            }
            "refusal" => out.push(json!({"type": "text", "text": get("refusal").unwrap_or("")})),
            "input_image" if role != "assistant" => {
                let url = get("image_url").ok_or_else(|| {
                    invalid(format!(
                        "input[{i}]: images are supported by URL (image_url), not by file_id"
                    ))
                })?;
                let mut image = json!({"url": url});
                if let Some(detail) = get("detail") {
                    image["detail"] = detail.into();
                }
                out.push(json!({"type": "image_url", "image_url": image}));
                all_text = false;
            }
            other => {
                return Err(invalid(format!(
                    "input[{i}]: content parts of type {other:?} are not supported by this gateway"
                )))
            }
        }
    }
    if all_text {
        let texts: Vec<&str> = out.iter().filter_map(|p| p["text"].as_str()).collect();
        return Ok(Value::String(texts.concat()));
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(v: Value) -> Request {
        read(v.as_object().unwrap().clone()).unwrap()
    }

    #[test]
    fn items_become_chat_messages() {
        let r = request(json!({"model": "m", "instructions": "be brief",
            "input": [
                {"role": "user", "content": "hi"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "calling"}]},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {"type": "message", "role": "developer", "content": [
                    {"type": "input_text", "text": "look"},
                    {"type": "input_image", "image_url": "https://x/a.png", "detail": "low"}]}],
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "f"},
            "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}, "strict": true}},
            "reasoning": {"effort": "low"}, "max_output_tokens": 50, "temperature": 0.5,
            "metadata": {"a": "b"}, "store": false}));
        assert!(!r.store);
        assert_eq!(r.echo["metadata"], json!({"a": "b"}));
        let c = canonical("m", r.instructions.as_deref(), &r.input, &r.chat, true).unwrap();
        let m = &c["messages"];
        assert_eq!(m[0], json!({"role": "system", "content": "be brief"}));
        assert_eq!(m[1], json!({"role": "user", "content": "hi"}));
        assert_eq!(m[2]["content"], "calling");
        assert_eq!(m[2]["tool_calls"][0]["id"], "c1");
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "c1", "content": "sunny"})
        );
        assert_eq!(m[4]["role"], "system");
        assert_eq!(
            m[4]["content"][1]["image_url"],
            json!({"url": "https://x/a.png", "detail": "low"})
        );
        assert_eq!(c["tools"][0]["function"]["name"], "f");
        assert_eq!(
            c["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert_eq!(c["response_format"]["json_schema"]["name"], "s");
        assert_eq!(c["reasoning_effort"], "low");
        assert_eq!(c["max_tokens"], 50);
        assert_eq!(c["temperature"], 0.5);
        assert!(c.get("metadata").is_none());
        assert_eq!(c["stream_options"]["include_usage"], true);
    }

    #[test]
    fn what_cannot_be_honoured_is_a_400() {
        for body in [
            json!({"model": "m", "input": "x", "background": true}),
            json!({"model": "m", "input": "x", "truncation": "auto"}),
            json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}),
            json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}),
            json!({"model": "m", "input": 3}),
        ] {
            let err = read(body.as_object().unwrap().clone()).unwrap_err();
            assert_eq!(err.status(), 400, "{body}");
        }
    }
}
