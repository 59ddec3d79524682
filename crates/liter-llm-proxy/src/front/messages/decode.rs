//! An Anthropic Messages request turned into the canonical (OpenAI chat) request.
//! The field table is in docs/front-doors.md; in short: `system` becomes the first
//! message, `tool_result` blocks become `tool` messages, `tool_use` blocks tool calls,
//! images data or https URLs, tools functions, `stop_sequences` `stop`,
//! `metadata.user_id` `user`; `thinking`, `output_config` and `context_management`
//! as [`super::controls`] says (`reasoning_effort`, `response_format`, left out).
//! Fields with no OpenAI counterpart (`top_k`, and any this module does not know) are
//! kept as they are, so the deployment's adapter decides (most adapters honour
//! `top_k`; others answer 400 naming the field, or drop it under `drop_params`).
//! Prompt-cache markers (`cache_control`) and the history's thinking blocks are
//! Anthropic's alone: they are kept for Anthropic-format deployments (which get the
//! client's bytes) and left out of the canonical request.
//!
//! The request is read into borrowed fields ([`super::raw`]) and the canonical
//! request ([`super::canonical`]) is written straight to bytes: no JSON tree.

use serde_json::value::RawValue;
use std::borrow::Cow;

use super::canonical::{
    Call, CallFunction, Canonical, Choice, File, Function, Known, Named, Part, Tool, Turn, Url,
    UserContent,
};
use super::controls::Controls;
use super::raw::{content, fields, is, text, text_or_empty, Block, Content, Raw, Source};
use super::request::MessagesRequest;
use crate::error::GatewayError;

fn invalid(message: impl Into<String>) -> GatewayError {
    GatewayError::bad_request(message)
}

/// A Messages request, translated.
#[derive(Debug)]
pub struct Translated {
    /// The canonical chat body.
    pub body: Vec<u8>,
    /// The request's fields left out of it (for `x-liter-llm-dropped-params`).
    pub dropped: Vec<&'static str>,
}

/// The canonical chat body for a Messages request body. `default_max_tokens` stands
/// in for a missing `max_tokens` (`count_tokens` requests have none).
pub fn canonical(body: &[u8], default_max_tokens: Option<u64>) -> Result<Translated, GatewayError> {
    let req: MessagesRequest = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("invalid Messages request: {e}")))?;
    let messages = req
        .messages
        .ok_or_else(|| invalid("messages: Field required"))?;
    let max_tokens = req
        .max_tokens
        .or(default_max_tokens)
        .ok_or_else(|| invalid("max_tokens: Field required"))?;
    let mut turns = Vec::with_capacity(messages.len() + 1);
    if let Some(system) = req.system {
        let text = system_text(system)?;
        if !text.is_empty() {
            turns.push(Turn::System { content: text });
        }
    }
    for (i, m) in messages.into_iter().enumerate() {
        match m.role.as_ref() {
            "user" => user_turn(m.content, i, &mut turns)?,
            "assistant" => turns.push(assistant_turn(m.content, i)?),
            // Claude Code sends its reminders as system turns to models whose names are
            // not Claude's: a system message where it stands.
            "system" => {
                let text = system_text(m.content)
                    .map_err(|e| invalid(format!("messages.{i}.content: {e}")))?;
                turns.push(Turn::System { content: text });
            }
            other => {
                return Err(invalid(format!(
                "messages.{i}.role: must be \"user\", \"assistant\" or \"system\", not {other:?}"
            )))
            }
        }
    }
    let metadata: Block = fields(req.metadata)?;
    let controls = Controls::read(req.thinking, req.output_config, req.context_management)?;
    let mut out = Canonical {
        extra: req.extra,
        model: req.model.ok_or_else(|| invalid("model: Field required"))?,
        messages: turns,
        max_tokens,
        stop: req.stop_sequences.filter(|s| !s.is_empty()),
        stream: req.stream == Some(true),
        user: text(metadata.user_id),
        tools: Vec::new(),
        tool_choice: None,
        parallel_tool_calls: None,
        controls,
    };
    if let Some(tools) = req.tools.filter(|t| !t.is_empty()) {
        out.tools = tools.into_iter().map(tool).collect::<Result<_, _>>()?;
        if let Some(choice) = req.tool_choice {
            tool_choice(choice, &mut out)?;
        }
    }
    let body = serde_json::to_vec(&out)
        .map_err(|e| GatewayError::Internal(format!("cannot encode the request: {e}")))?;
    Ok(Translated {
        body,
        dropped: std::mem::take(&mut out.controls.dropped),
    })
}

/// `system`: a string, or text blocks (joined by a blank line).
fn system_text(system: Raw<'_>) -> Result<Cow<'_, str>, GatewayError> {
    match content(system)? {
        Content::Text(s) => Ok(s),
        Content::Blocks(blocks) => {
            let mut joined: Option<Cow<str>> = None;
            for (i, b) in blocks.into_iter().enumerate() {
                let block = Block::read(b)?;
                let t = match text(block.text) {
                    Some(t) if is(block.kind, "text") => t,
                    _ => return Err(invalid(format!("system.{i}: only text blocks are allowed"))),
                };
                joined = Some(match joined {
                    None => t,
                    Some(j) => Cow::Owned(format!("{j}\n\n{t}")),
                });
            }
            Ok(joined.unwrap_or_default())
        }
        Content::Null => Ok(Cow::Borrowed("")),
        Content::Other => Err(invalid("system: must be a string or a list of text blocks")),
    }
}

/// The blocks of a `content`: a string is one text block.
fn blocks<'a>(
    raw: Raw<'a>,
    path: &str,
) -> Result<Result<Vec<Raw<'a>>, Cow<'a, str>>, GatewayError> {
    match content(raw)? {
        Content::Text(s) => Ok(Err(s)),
        Content::Blocks(b) => Ok(Ok(b)),
        _ => Err(invalid(format!(
            "{path}.content: must be a string or a list of content blocks"
        ))),
    }
}

/// A user turn: its `tool_result` blocks as `tool` messages (first, as OpenAI wants
/// them right after the assistant's calls), then one user message with the rest.
fn user_turn<'a>(raw: Raw<'a>, i: usize, turns: &mut Vec<Turn<'a>>) -> Result<(), GatewayError> {
    let path = format!("messages.{i}");
    let list = match blocks(raw, &path)? {
        Err(text) => {
            turns.push(Turn::User {
                content: UserContent::Text(text),
            });
            return Ok(());
        }
        Ok(list) => list,
    };
    let mut parts = Vec::new();
    for (j, raw) in list.into_iter().enumerate() {
        let at = format!("{path}.content.{j}");
        let block = Block::read(raw)?;
        if block.kind() == "tool_result" {
            turns.push(tool_message(&block, &at, &mut parts)?);
        } else {
            parts.push(user_part(raw, block, &at)?);
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    let content = match <[Part; 1]>::try_from(parts) {
        Ok([Part::Known(Known::Text { text })]) => UserContent::Text(text),
        Ok([only]) => UserContent::Parts(vec![only]),
        Err(parts) => UserContent::Parts(parts),
    };
    turns.push(Turn::User { content });
    Ok(())
}

/// A user content block as an OpenAI content part. Blocks with no OpenAI
/// counterpart are kept as they are (the deployment's adapter decides).
fn user_part<'a>(raw: Raw<'a>, block: Block<'a>, at: &str) -> Result<Part<'a>, GatewayError> {
    Ok(match block.kind().as_ref() {
        "text" => {
            let text =
                text(block.text).ok_or_else(|| invalid(format!("{at}.text: Field required")))?;
            Part::Known(Known::Text { text })
        }
        "image" => Part::Known(Known::ImageUrl {
            image_url: Url {
                url: source_url(&block, at)?,
            },
        }),
        "document" => document_part(raw, &block)?,
        _ => Part::Raw(raw),
    })
}

/// An image's `source` as a URL: https, or a base64 data URL.
fn source_url<'a>(block: &Block<'a>, at: &str) -> Result<Cow<'a, str>, GatewayError> {
    let source: Source = fields(block.source)?;
    match text(source.kind).as_deref() {
        Some("base64") => match (text(source.media_type), text(source.data)) {
            (Some(media), Some(data)) => Ok(Cow::Owned(format!("data:{media};base64,{data}"))),
            _ => Err(invalid(format!(
                "{at}.source: a base64 source needs media_type and data"
            ))),
        },
        Some("url") => {
            text(source.url).ok_or_else(|| invalid(format!("{at}.source.url: Field required")))
        }
        _ => Err(invalid(format!(
            "{at}.source: only base64 and url sources can be sent to this model"
        ))),
    }
}

/// A `document` block: a base64 PDF as an OpenAI `file` part, plain text as text.
fn document_part<'a>(raw: Raw<'a>, block: &Block<'a>) -> Result<Part<'a>, GatewayError> {
    let source: Source = fields(block.source)?;
    Ok(match text(source.kind).as_deref() {
        Some("base64") => {
            let media = text(source.media_type).unwrap_or(Cow::Borrowed("application/pdf"));
            let data = text_or_empty(source.data);
            Part::Known(Known::File {
                file: File {
                    file_data: format!("data:{media};base64,{data}"),
                    filename: text(block.title),
                },
            })
        }
        Some("text") => Part::Known(Known::Text {
            text: text_or_empty(source.data),
        }),
        _ => Part::Raw(raw),
    })
}

/// A `tool_result` block as a `tool` message. Its text is the message; its images
/// join the user message of the same turn (OpenAI's tool messages hold text only).
fn tool_message<'a>(
    block: &Block<'a>,
    at: &str,
    parts: &mut Vec<Part<'a>>,
) -> Result<Turn<'a>, GatewayError> {
    let id = text(block.tool_use_id)
        .ok_or_else(|| invalid(format!("{at}.tool_use_id: Field required")))?;
    let mut joined: Cow<str> = Cow::Borrowed("");
    match block.content.map(content).transpose()? {
        None | Some(Content::Null) => {}
        Some(Content::Text(s)) => joined = s,
        Some(Content::Blocks(inner)) => {
            for (k, raw) in inner.into_iter().enumerate() {
                let b = Block::read(raw)?;
                if b.kind() == "text" {
                    let t = text_or_empty(b.text);
                    if joined.is_empty() {
                        joined = t;
                    } else {
                        let s = joined.to_mut();
                        s.push('\n');
                        s.push_str(&t);
                    }
                } else {
                    parts.push(user_part(raw, b, &format!("{at}.content.{k}"))?);
                }
            }
        }
        Some(Content::Other) => {
            return Err(invalid(format!("{at}.content: must be a string or blocks")))
        }
    }
    Ok(Turn::Tool {
        tool_call_id: id,
        content: joined,
    })
}

/// An assistant turn: text as `content`, `tool_use` as tool calls. Thinking blocks
/// (and other blocks only Anthropic reads) are left out.
fn assistant_turn(raw: Raw<'_>, i: usize) -> Result<Turn<'_>, GatewayError> {
    let path = format!("messages.{i}");
    let list = match blocks(raw, &path)? {
        Err(text) => {
            return Ok(Turn::Assistant {
                content: Some(text),
                tool_calls: Vec::new(),
            })
        }
        Ok(list) => list,
    };
    let mut joined: Cow<str> = Cow::Borrowed("");
    let mut calls = Vec::new();
    for (j, raw) in list.into_iter().enumerate() {
        let block = Block::read(raw)?;
        match block.kind().as_ref() {
            "text" => {
                let t = text_or_empty(block.text);
                if joined.is_empty() {
                    joined = t;
                } else {
                    joined.to_mut().push_str(&t);
                }
            }
            "tool_use" => {
                let field = |k: &str, v| {
                    text(v)
                        .ok_or_else(|| invalid(format!("{path}.content.{j}.{k}: Field required")))
                };
                calls.push(Call {
                    id: field("id", block.id)?,
                    kind: "function",
                    function: CallFunction {
                        name: field("name", block.name)?,
                        arguments: block.input.map_or("{}", RawValue::get),
                    },
                });
            }
            _ => {}
        }
    }
    let content = if joined.is_empty() && !calls.is_empty() {
        None
    } else {
        Some(joined)
    };
    Ok(Turn::Assistant {
        content,
        tool_calls: calls,
    })
}

/// A tool: a custom tool (`name`, `description`, `input_schema`) as a function; a
/// server tool (`web_search_...`, `bash_...`) as it is, for the adapter to judge.
fn tool(raw: Raw<'_>) -> Result<Tool<'_>, GatewayError> {
    let t = Block::read(raw)?;
    let custom = matches!(text(t.kind).as_deref(), None | Some("custom"));
    if !custom {
        return Ok(Tool::Raw(raw));
    }
    Ok(Tool::Function {
        kind: "function",
        function: Function {
            name: t.name,
            description: t.description,
            parameters: t.input_schema,
        },
    })
}

/// `tool_choice` (`auto`, `any`, `tool`, `none`) and `disable_parallel_tool_use`.
fn tool_choice<'a>(raw: Raw<'a>, out: &mut Canonical<'a>) -> Result<(), GatewayError> {
    let choice: Block = fields(Some(raw))?;
    let mapped = match text(choice.kind).as_deref() {
        Some("auto") => Choice::Mode("auto"),
        Some("any") => Choice::Mode("required"),
        Some("none") => Choice::Mode("none"),
        Some("tool") => {
            let name =
                text(choice.name).ok_or_else(|| invalid("tool_choice.name: Field required"))?;
            Choice::Named {
                kind: "function",
                function: Named { name },
            }
        }
        _ => {
            return Err(invalid(
                "tool_choice.type: must be \"auto\", \"any\", \"tool\" or \"none\"",
            ))
        }
    };
    out.tool_choice = Some(mapped);
    if choice
        .disable_parallel_tool_use
        .is_some_and(|v| v.get() == "true")
    {
        out.parallel_tool_calls = Some(false);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::{json, Value};

    fn decode(v: Value) -> Value {
        serde_json::from_slice(&canonical(v.to_string().as_bytes(), None).unwrap().body).unwrap()
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
        assert_eq!(out["reasoning_effort"], "minimal");
        assert!(out.get("thinking").is_none());
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
            let e = canonical(body.to_string().as_bytes(), None).unwrap_err();
            assert!(e.to_string().contains(needle), "{e} / {needle}");
        }
    }

    #[test]
    fn client_fields_keep_their_order_and_the_translation_wins() {
        let body = r#"{"zeta":1,"model":"m","alpha":{"a":[1, 2]},"stop":"x","user":"u0",
            "stop_sequences":["END"],"alpha":"last","max_tokens":3,
            "messages":[{"role":"user","content":"hi"}]}"#;
        let out = String::from_utf8(canonical(body.as_bytes(), None).unwrap().body).unwrap();
        // Client fields first, as sent (a repeated one: its last value, once); `stop`
        // is the translation's; `user` stays the client's (no `metadata.user_id`).
        assert!(
            out.starts_with(r#"{"zeta":1,"alpha":"last","user":"u0","model":"m","#),
            "{out}"
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["stop"], json!(["END"]));
        assert_eq!(out.matches("\"stop\"").count(), 1, "{out}");
        let dup = r#"{"model":"m","model":"n","max_tokens":1,"messages":[]}"#;
        let e = canonical(dup.as_bytes(), None).unwrap_err();
        assert!(e.to_string().contains("duplicate field `model`"), "{e}");
        let dup = r#"{"model":"m","max_tokens":1,"messages":[],"messages":[]}"#;
        let e = canonical(dup.as_bytes(), None).unwrap_err();
        assert!(e.to_string().contains("duplicate field `messages`"), "{e}");
        let e = canonical(br#"{"max_tokens":1,"messages":[]}"#, None).unwrap_err();
        assert!(e.to_string().contains("missing field `model`"), "{e}");
    }

    #[test]
    fn passed_through_parts_are_the_clients_bytes() {
        let out = decode(json!({
            "model": "m", "max_tokens": 5,
            "tools": [
                {"name": "get", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
            ],
            "tool_choice": {"type": "tool", "name": "get"},
            "metadata": {"user_id": "u\"1"},
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "a \"quoted\"\nline"},
                    {"type": "search_result", "source": "https://x", "title": 5, "content": []},
                    {"type": "document", "title": "r.pdf", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "one "}, {"type": "text", "text": "two"},
                    {"type": "tool_use", "id": "t1", "name": "get", "input": {"q": "é"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": [
                        {"type": "text", "text": "a"}, {"type": "text", "text": "b"},
                        {"type": "image", "source": {"type": "url", "url": "https://x/i.png"}}]}]}
            ]
        }));
        assert_eq!(
            out["tools"][0]["function"],
            json!({"name": "get", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}})
        );
        assert_eq!(
            out["tools"][1],
            json!({"type": "web_search_20250305", "name": "web_search", "max_uses": 2})
        );
        assert_eq!(
            out["tool_choice"],
            json!({"type": "function", "function": {"name": "get"}})
        );
        assert_eq!(out["user"], "u\"1");
        let m = &out["messages"];
        assert_eq!(m[0]["content"][0]["text"], "a \"quoted\"\nline");
        assert_eq!(
            m[0]["content"][1],
            json!({"type": "search_result", "source": "https://x", "title": 5, "content": []})
        );
        assert_eq!(
            m[0]["content"][2],
            json!({"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "r.pdf"}})
        );
        assert_eq!(m[0]["content"][3], json!({"type": "text", "text": "plain"}));
        assert_eq!(m[1]["content"], "one two");
        let args: Value = serde_json::from_str(
            m[1]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(args, json!({"q": "é"}));
        assert_eq!(
            m[2],
            json!({"role": "tool", "tool_call_id": "t1", "content": "a\nb"})
        );
        assert_eq!(
            m[3],
            json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/i.png"}}]})
        );
    }

    #[test]
    fn count_tokens_needs_no_max_tokens() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let v: Value = serde_json::from_slice(&canonical(body, Some(1)).unwrap().body).unwrap();
        assert_eq!(v["max_tokens"], 1);
        assert!(canonical(body, None).is_err());
    }
}
