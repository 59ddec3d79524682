//! The message list of a chat request turned into Anthropic's top-level `system` and
//! alternating `messages` turns: content parts as blocks (text, images, documents),
//! assistant tool calls as `tool_use`, `tool` messages as `tool_result`, and
//! `cache_control` carried over. Part of [`super::request`]; no I/O.

use serde_json::{json, Map, Value};

use super::error::TranslateError;
use crate::providers::convert;
use crate::types::Message;

/// Splits the messages into the top-level `system` and alternating turns.
pub(super) fn convert_messages(
    messages: &[Message],
) -> Result<(Option<Value>, Vec<Value>), TranslateError> {
    let mut system: Vec<Value> = Vec::new();
    let mut system_plain = true;
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();

    for (i, message) in messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        let cache_control = message.extra.get("cache_control");
        match message.role.as_str() {
            "system" | "developer" => {
                system_plain &=
                    cache_control.is_none() && matches!(message.content, Some(Value::String(_)));
                let mut blocks = content_blocks(message.content.as_ref(), &path)?;
                if let Some(bad) = blocks.iter().find(|b| b["type"] != "text") {
                    return Err(TranslateError::invalid(
                        format!("system messages may hold text only, not {}", bad["type"]),
                        format!("{path}.content"),
                    ));
                }
                system_plain &= blocks.iter().all(|b| b.get("cache_control").is_none());
                set_cache_control(&mut blocks, cache_control);
                system.extend(blocks);
            }
            "user" => {
                let mut blocks = content_blocks(message.content.as_ref(), &path)?;
                set_cache_control(&mut blocks, cache_control);
                push_turn(&mut turns, "user", blocks);
            }
            "assistant" => {
                let mut blocks = assistant_blocks(message, &path)?;
                set_cache_control(&mut blocks, cache_control);
                push_turn(&mut turns, "assistant", blocks);
            }
            "tool" => {
                let mut blocks = vec![tool_result(message, &path)?];
                set_cache_control(&mut blocks, cache_control);
                push_turn(&mut turns, "user", blocks);
            }
            other => {
                return Err(TranslateError::invalid(
                    format!("unsupported message role {other:?} for anthropic"),
                    format!("{path}.role"),
                ))
            }
        }
    }

    let system = if system.is_empty() {
        None
    } else if system_plain {
        let texts: Vec<&str> = system.iter().filter_map(|b| b["text"].as_str()).collect();
        Some(Value::from(texts.join("\n\n")))
    } else {
        Some(Value::Array(system))
    };
    let turns = turns
        .into_iter()
        .map(|(role, blocks)| json!({ "role": role, "content": turn_content(blocks) }))
        .collect();
    Ok((system, turns))
}

/// Appends `blocks` to the last turn when it has the same role, else starts a turn.
fn push_turn(turns: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last, existing)) if *last == role => existing.extend(blocks),
        _ => turns.push((role, blocks)),
    }
}

/// A turn's `content`: a string when it is one plain text block, else the blocks.
fn turn_content(mut blocks: Vec<Value>) -> Value {
    if let [Value::Object(only)] = blocks.as_mut_slice() {
        if only.len() == 2 && only.get("type").and_then(Value::as_str) == Some("text") {
            if let Some(text) = only.remove("text") {
                return text;
            }
        }
    }
    Value::Array(blocks)
}

/// Puts a message-level `cache_control` on the message's last block.
fn set_cache_control(blocks: &mut [Value], cache_control: Option<&Value>) {
    if let (Some(cc), Some(Value::Object(last))) = (cache_control, blocks.last_mut()) {
        last.insert("cache_control".into(), cc.clone());
    }
}

/// The blocks of an OpenAI `content` (a string or an array of parts). Empty text is
/// dropped, as Anthropic rejects empty text blocks.
fn content_blocks(content: Option<&Value>, path: &str) -> Result<Vec<Value>, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![text_block(s)]),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                if let Some(block) = part_block(part, &format!("{path}.content[{j}]"))? {
                    blocks.push(block);
                }
            }
            Ok(blocks)
        }
        Some(_) => Err(TranslateError::invalid(
            "content must be a string or an array of content parts",
            format!("{path}.content"),
        )),
    }
}

fn text_block(text: &str) -> Value {
    json!({ "type": "text", "text": text })
}

/// One content part as an Anthropic block; `None` for empty text.
fn part_block(part: &Value, path: &str) -> Result<Option<Value>, TranslateError> {
    let kind = match part {
        Value::String(s) if s.is_empty() => return Ok(None),
        Value::String(s) => return Ok(Some(text_block(s))),
        Value::Object(o) => o.get("type").and_then(Value::as_str).unwrap_or(""),
        _ => {
            return Err(TranslateError::invalid(
                "a content part must be an object",
                path,
            ))
        }
    };
    let mut block = match kind {
        "text" | "refusal" => {
            let Some(text) = part.get(kind).and_then(Value::as_str) else {
                return Err(TranslateError::invalid(
                    format!("a {kind} part needs a string `{kind}`"),
                    path,
                ));
            };
            if text.is_empty() {
                return Ok(None);
            }
            text_block(text)
        }
        "image_url" => {
            let image = &part["image_url"];
            let url = image
                .get("url")
                .and_then(Value::as_str)
                .or_else(|| image.as_str())
                .ok_or_else(|| TranslateError::invalid("image_url.url is required", path))?;
            json!({ "type": "image", "source": image_source(url, path)? })
        }
        "file" => file_block(&part["file"], path)?,
        "input_audio" => {
            return Err(TranslateError::invalid(
                "anthropic does not accept audio input",
                path,
            ))
        }
        "" => {
            return Err(TranslateError::invalid(
                "a content part needs a `type`",
                path,
            ))
        }
        // Anthropic's own block types (image, document, search_result, ...) as they are.
        _ => return Ok(Some(part.clone())),
    };
    if let (Some(cc), Value::Object(b)) = (part.get("cache_control"), &mut block) {
        b.insert("cache_control".into(), cc.clone());
    }
    Ok(Some(block))
}

/// An image `source` from a URL: `https://…` by reference, `data:…;base64,…` inline.
fn image_source(url: &str, path: &str) -> Result<Value, TranslateError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({ "type": "url", "url": url }));
    }
    if url.starts_with("data:") {
        let (media_type, data) = parse_data_url(url, path)?;
        return Ok(json!({ "type": "base64", "media_type": media_type, "data": data }));
    }
    Err(TranslateError::invalid(
        "an image URL must be https://… or a base64 data: URL",
        path,
    ))
}

/// `data:<media type>[;params];base64,<data>` split into media type and data.
fn parse_data_url<'a>(url: &'a str, path: &str) -> Result<(&'a str, &'a str), TranslateError> {
    convert::parse_data_url(url).map_err(|m| TranslateError::invalid(m, path))
}

/// An OpenAI `file` part (`file_data` as a data URL): images as image blocks, anything
/// else (PDF) as a document block.
fn file_block(file: &Value, path: &str) -> Result<Value, TranslateError> {
    let Some(data_url) = file.get("file_data").and_then(Value::as_str) else {
        return Err(TranslateError::invalid(
            "anthropic needs file parts with file_data (a base64 data: URL); file_id is not supported",
            path,
        ));
    };
    let (media_type, data) = parse_data_url(data_url, path)?;
    let source = json!({ "type": "base64", "media_type": media_type, "data": data });
    let kind = if media_type.starts_with("image/") {
        "image"
    } else {
        "document"
    };
    Ok(json!({ "type": kind, "source": source }))
}

/// An assistant turn: thinking blocks sent back, text, then tool calls as `tool_use`.
fn assistant_blocks(message: &Message, path: &str) -> Result<Vec<Value>, TranslateError> {
    let mut blocks: Vec<Value> = match message.extra.get("thinking_blocks") {
        Some(Value::Array(thinking)) => thinking.clone(),
        _ => Vec::new(),
    };
    blocks.extend(content_blocks(message.content.as_ref(), path)?);
    for (j, call) in message.tool_calls.iter().flatten().enumerate() {
        let input = parse_arguments(
            &call.function.arguments,
            &format!("{path}.tool_calls[{j}].function.arguments"),
        )?;
        blocks.push(json!({
            "type": "tool_use",
            "id": call.id,
            "name": call.function.name,
            "input": input,
        }));
    }
    Ok(blocks)
}

/// Tool-call arguments (a JSON string) as the object Anthropic wants; empty means `{}`.
fn parse_arguments(arguments: &str, path: &str) -> Result<Value, TranslateError> {
    convert::tool_arguments(arguments).map_err(|m| TranslateError::invalid(m, path))
}

/// A `tool` message as a `tool_result` block.
fn tool_result(message: &Message, path: &str) -> Result<Value, TranslateError> {
    let Some(id) = message.tool_call_id.as_deref() else {
        return Err(TranslateError::invalid(
            "a tool message needs tool_call_id",
            format!("{path}.tool_call_id"),
        ));
    };
    let mut block = Map::new();
    block.insert("type".into(), Value::from("tool_result"));
    block.insert("tool_use_id".into(), Value::from(id));
    match &message.content {
        Some(Value::String(s)) if !s.is_empty() => {
            block.insert("content".into(), Value::from(s.as_str()));
        }
        Some(Value::Array(_)) => {
            let blocks = content_blocks(message.content.as_ref(), path)?;
            if !blocks.is_empty() {
                block.insert("content".into(), Value::Array(blocks));
            }
        }
        _ => {}
    }
    Ok(Value::Object(block))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::anthropic::{build_request, AnthropicOptions};
    use crate::types::ChatCompletionRequest;

    fn body(req: Value) -> Result<Value, TranslateError> {
        let req: ChatCompletionRequest = serde_json::from_value(req).unwrap();
        let built = build_request(&req, "claude-x", &AnthropicOptions::default())?;
        Ok(serde_json::from_slice(&built.body).unwrap())
    }

    fn param(e: TranslateError) -> Option<String> {
        match e {
            TranslateError::InvalidRequest { param, .. } => param,
            TranslateError::BadResponse(_) => None,
        }
    }

    #[test]
    fn invalid_tool_arguments_are_a_400() {
        let e = body(json!({"model":"m","messages":[
            {"role":"user","content":"x"},
            {"role":"assistant","tool_calls":[{"id":"c1","type":"function",
                "function":{"name":"f","arguments":"{not json"}}]}]}))
        .unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(
            param(e).as_deref(),
            Some("messages[1].tool_calls[0].function.arguments")
        );
        let e = body(json!({"model":"m","messages":[
            {"role":"assistant","tool_calls":[{"id":"c1","type":"function",
                "function":{"name":"f","arguments":"[1]"}}]}]}))
        .unwrap_err();
        assert!(e.to_string().contains("object"));
    }

    #[test]
    fn empty_arguments_and_empty_text() {
        let b = body(json!({"model":"m","messages":[
            {"role":"user","content":"x"},
            {"role":"assistant","content":"","tool_calls":[{"id":"c1","type":"function",
                "function":{"name":"f","arguments":""}}]}]}))
        .unwrap();
        assert_eq!(
            b["messages"][1]["content"],
            json!([{"type":"tool_use","id":"c1","name":"f","input":{}}])
        );
    }

    #[test]
    fn tool_messages_need_an_id() {
        let e = body(json!({"model":"m","messages":[{"role":"tool","content":"r"}]})).unwrap_err();
        assert_eq!(param(e).as_deref(), Some("messages[0].tool_call_id"));
    }

    #[test]
    fn unknown_roles_and_bad_images() {
        let e = body(json!({"model":"m","messages":[{"role":"function","content":"r"}]}));
        assert_eq!(param(e.unwrap_err()).as_deref(), Some("messages[0].role"));
        let e = body(json!({"model":"m","messages":[{"role":"user","content":[
            {"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]}]}));
        assert_eq!(
            param(e.unwrap_err()).as_deref(),
            Some("messages[0].content[0]")
        );
        let e = body(json!({"model":"m","messages":[{"role":"user","content":[
            {"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}));
        assert!(e.is_err());
        let e = body(json!({"model":"m","messages":[{"role":"user","content":[
            {"type":"input_audio","input_audio":{"data":"x","format":"wav"}}]}]}));
        assert!(e.unwrap_err().to_string().contains("audio"));
    }

    #[test]
    fn no_messages_is_a_400() {
        let e = body(json!({"model":"m","messages":[{"role":"system","content":"s"}]}));
        assert_eq!(param(e.unwrap_err()).as_deref(), Some("messages"));
    }

    #[test]
    fn data_urls() {
        assert_eq!(
            parse_data_url("data:image/jpeg;base64,AAAA", "p").unwrap(),
            ("image/jpeg", "AAAA")
        );
        assert_eq!(
            parse_data_url("data:application/pdf;name=a.pdf;base64,QQ==", "p").unwrap(),
            ("application/pdf", "QQ==")
        );
        assert!(parse_data_url("data:;base64,AAAA", "p").is_err());
        assert!(parse_data_url("data:image/png;base64,", "p").is_err());
    }
}
