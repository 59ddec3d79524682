//! The canonical chat request turned into a `GenerateContentRequest` (the body is the
//! same for the Gemini API and Vertex AI). See the
//! module docs of [`super`] for the decisions; this file only carries them out.

use serde_json::{json, Map, Value};

use super::invalid;
use super::thinking::ThinkingControl;
use crate::providers::convert;
use crate::providers::reasoning::{self, ReasoningBudgets};
use crate::types::{
    ChatCompletionRequest, Message, ProviderError, ResponseFormat, Tool, ToolChoice,
};

/// OpenAI parameters (and Anthropic controls) with no Gemini counterpart. A request that sets one (to anything
/// but `null`) is answered 400 naming it, unless `drop_params` is on: then it is left
/// out and reported. `reasoning_effort` is among them only for models that do not think
/// (see [`ThinkingControl`]). `parallel_tool_calls: false` is honoured by keeping the
/// first function call of the answer (Gemini cannot be told to call one at a time).
pub const DROPPED_PARAMS: &[&str] = &[
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "store",
    "metadata",
    "modalities",
    "audio",
    "prediction",
    "prompt_cache_key",
    "safety_identifier",
    "web_search_options",
    "verbosity",
    "service_tier",
    "reasoning_effort",
    // Anthropic's controls, sent by a chat client (the Messages door translates its own).
    "thinking",
    "output_config",
    "context_management",
];

/// OpenAI parameters with a `generationConfig` counterpart, besides the typed ones.
const GENERATION_PARAMS: &[(&str, &str)] = &[
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
    ("seed", "seed"),
    ("top_k", "topK"),
];

/// How one deployment's chat requests are written.
#[derive(Debug, Clone, Copy)]
pub struct ChatOptions {
    pub drop_params: bool,
    pub budgets: ReasoningBudgets,
    pub thinking: ThinkingControl,
}

/// [`build_chat`] for a model without a thinking control.
pub fn build_generate(
    req: &ChatCompletionRequest,
    drop_params: bool,
) -> Result<(Map<String, Value>, Vec<String>), ProviderError> {
    let opts = ChatOptions {
        drop_params,
        budgets: ReasoningBudgets::default(),
        thinking: ThinkingControl::Unsupported,
    };
    build_chat(req, &opts)
}

/// The JSON body of a `generateContent` / `streamGenerateContent` call for `req`, and the
/// parameters dropped under `drop_params`.
pub fn build_chat(
    req: &ChatCompletionRequest,
    opts: &ChatOptions,
) -> Result<(Map<String, Value>, Vec<String>), ProviderError> {
    let drop_params = opts.drop_params;
    let mut body = Map::new();
    let mut dropped = Vec::new();
    let mut config = Map::new();
    let refuse = |key: &str, dropped: &mut Vec<String>| -> Result<(), ProviderError> {
        if !drop_params {
            return Err(invalid(
                format!(
                    "gemini does not support the parameter {key:?}; remove it, or set drop_params = true to drop it"
                ),
                key,
            ));
        }
        dropped.push(key.to_string());
        Ok(())
    };
    let effort = reasoning::effort(req.extra.get("reasoning_effort"))?;
    for (key, value) in &req.extra {
        if value.is_null()
            || (key == "reasoning_effort" && opts.thinking != ThinkingControl::Unsupported)
        {
            continue;
        }
        if DROPPED_PARAMS.contains(&key.as_str()) {
            refuse(key, &mut dropped)?;
        } else if let Some((_, native)) = GENERATION_PARAMS.iter().find(|(k, _)| k == key) {
            config.insert((*native).into(), value.clone());
        } else if key == "generationConfig" {
            // The client's own Gemini settings; the mapped OpenAI parameters win.
            if let Value::Object(own) = value {
                for (k, v) in own {
                    config.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        } else {
            // Gemini-native fields (safetySettings, cachedContent, labels, ...).
            body.insert(key.clone(), value.clone());
        }
    }
    if let Some(thinking) = effort.and_then(|e| opts.thinking.config(e, &opts.budgets)) {
        // The client's own thinkingConfig (in generationConfig) wins.
        config.entry("thinkingConfig").or_insert(thinking);
    }

    let (system, contents) = convert_messages(&req.messages)?;
    if contents.is_empty() {
        return Err(invalid(
            "at least one user or assistant message is required",
            "messages",
        ));
    }
    body.insert("contents".into(), Value::Array(contents));
    if let Some(system) = system {
        body.insert("systemInstruction".into(), system);
    }

    if let Some(t) = req.temperature {
        config.insert("temperature".into(), Value::from(t));
    }
    if let Some(p) = req.top_p {
        config.insert("topP".into(), Value::from(p));
    }
    if let Some(n) = req.max_completion_tokens.or(req.max_tokens) {
        config.insert("maxOutputTokens".into(), Value::from(n));
    }
    if let Some(stop) = &req.stop {
        let sequences = stop.to_vec();
        if !sequences.is_empty() {
            config.insert("stopSequences".into(), Value::from(sequences));
        }
    }
    if let Some(n) = req.n.filter(|n| *n != 1) {
        config.insert("candidateCount".into(), Value::from(n));
    }
    if let Some(format) = &req.response_format {
        apply_response_format(&mut config, format)?;
    }
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }

    let declarations = match &req.tools {
        Some(tools) => tools
            .iter()
            .enumerate()
            .map(|(i, t)| declaration(t, i))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    if !declarations.is_empty() {
        body.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declarations }]),
        );
        if let Some(choice) = &req.tool_choice {
            body.insert(
                "toolConfig".into(),
                json!({ "functionCallingConfig": calling_config(choice)? }),
            );
        }
    }
    Ok((body, dropped))
}

/// A function tool as a `FunctionDeclaration` (the schema as `parametersJsonSchema`, so
/// full JSON Schema is accepted).
fn declaration(tool: &Tool, i: usize) -> Result<Value, ProviderError> {
    if tool.kind != "function" {
        return Err(invalid(
            format!("tools of type {:?} are not supported for gemini", tool.kind),
            format!("tools[{i}].type"),
        ));
    }
    let Some(f) = &tool.function else {
        return Err(invalid(
            "a function tool needs `function`",
            format!("tools[{i}].function"),
        ));
    };
    let mut out = Map::new();
    out.insert("name".into(), Value::from(f.name.as_str()));
    if let Some(d) = &f.description {
        out.insert("description".into(), Value::from(d.as_str()));
    }
    if let Some(schema) = &f.parameters {
        out.insert("parametersJsonSchema".into(), schema.clone());
    }
    Ok(Value::Object(out))
}

/// `tool_choice` as a `FunctionCallingConfig`.
fn calling_config(choice: &ToolChoice) -> Result<Value, ProviderError> {
    match choice {
        ToolChoice::Mode(mode) => match mode.as_str() {
            "auto" => Ok(json!({ "mode": "AUTO" })),
            "required" => Ok(json!({ "mode": "ANY" })),
            "none" => Ok(json!({ "mode": "NONE" })),
            other => Err(invalid(
                format!("unknown tool_choice {other:?}"),
                "tool_choice",
            )),
        },
        ToolChoice::Object(o) => match (o.kind.as_str(), &o.function) {
            ("function", Some(f)) => Ok(json!({ "mode": "ANY", "allowedFunctionNames": [f.name] })),
            _ => Err(invalid(
                format!(
                    "tool_choice of type {:?} is not supported for gemini",
                    o.kind
                ),
                "tool_choice",
            )),
        },
    }
}

/// `response_format` as `responseMimeType` (and `responseJsonSchema`).
fn apply_response_format(
    config: &mut Map<String, Value>,
    format: &ResponseFormat,
) -> Result<(), ProviderError> {
    match format.kind.as_str() {
        "text" => Ok(()),
        "json_object" => {
            config.insert("responseMimeType".into(), Value::from("application/json"));
            Ok(())
        }
        "json_schema" => {
            let Some(schema) = format.json_schema.as_ref().and_then(|j| j.schema.clone()) else {
                return Err(invalid(
                    "response_format json_schema needs json_schema.schema",
                    "response_format",
                ));
            };
            config.insert("responseMimeType".into(), Value::from("application/json"));
            config.insert("responseJsonSchema".into(), schema);
            Ok(())
        }
        other => Err(invalid(
            format!("unknown response_format {other:?}"),
            "response_format",
        )),
    }
}

/// OpenAI messages as Gemini `contents` (roles `user` and `model`, consecutive turns of
/// one role merged) and the `systemInstruction`.
pub(crate) fn convert_messages(
    messages: &[Message],
) -> Result<(Option<Value>, Vec<Value>), ProviderError> {
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        match message.role.as_str() {
            "system" | "developer" => {
                let parts = content_parts(message.content.as_ref(), &path)?;
                if parts.iter().any(|p| p.get("text").is_none()) {
                    return Err(invalid(
                        "system messages may hold text only",
                        format!("{path}.content"),
                    ));
                }
                system.extend(parts);
            }
            "user" => push_turn(
                &mut turns,
                "user",
                content_parts(message.content.as_ref(), &path)?,
            ),
            "assistant" => {
                let mut parts = content_parts(message.content.as_ref(), &path)?;
                for (j, call) in message.tool_calls.iter().flatten().enumerate() {
                    let args = convert::tool_arguments(&call.function.arguments).map_err(|e| {
                        invalid(e, format!("{path}.tool_calls[{j}].function.arguments"))
                    })?;
                    let mut part = Map::new();
                    part.insert(
                        "functionCall".into(),
                        json!({ "name": call.function.name, "args": args }),
                    );
                    if let Some(sig) = call
                        .extra
                        .get("extra_content")
                        .and_then(|e| e.get("google"))
                        .and_then(|g| g.get("thought_signature"))
                    {
                        part.insert("thoughtSignature".into(), sig.clone());
                    }
                    parts.push(Value::Object(part));
                }
                push_turn(&mut turns, "model", parts);
            }
            "tool" => {
                let part = function_response(messages, i, message, &path)?;
                push_turn(&mut turns, "user", vec![part]);
            }
            other => {
                return Err(invalid(
                    format!("unsupported message role {other:?} for gemini"),
                    format!("{path}.role"),
                ))
            }
        }
    }
    let system = (!system.is_empty()).then(|| json!({ "parts": system }));
    let contents = turns
        .into_iter()
        .map(|(role, parts)| json!({ "role": role, "parts": parts }))
        .collect();
    Ok((system, contents))
}

fn push_turn(turns: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last, existing)) if *last == role => existing.extend(parts),
        _ => turns.push((role, parts)),
    }
}

/// A `tool` message as a `functionResponse` part. Gemini names the function rather
/// than the call, so the name is looked up in the assistant turn that made the call.
fn function_response(
    messages: &[Message],
    i: usize,
    message: &Message,
    path: &str,
) -> Result<Value, ProviderError> {
    let Some(id) = message.tool_call_id.as_deref() else {
        return Err(invalid(
            "a tool message needs tool_call_id",
            format!("{path}.tool_call_id"),
        ));
    };
    let name = messages[..i]
        .iter()
        .rev()
        .flat_map(|m| m.tool_calls.iter().flatten())
        .find(|c| c.id == id)
        .map(|c| c.function.name.clone())
        .or_else(|| {
            message
                .extra
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .ok_or_else(|| {
            invalid(
                format!("no earlier assistant tool call has the id {id:?}"),
                format!("{path}.tool_call_id"),
            )
        })?;
    let text = match &message.content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(_)) => message.text(),
        _ => String::new(),
    };
    // `response` must be an object: a JSON object result as it is, anything else wrapped.
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "content": text }),
    };
    Ok(json!({ "functionResponse": { "name": name, "response": response } }))
}

/// The parts of an OpenAI `content` (a string or an array of parts). Empty text is
/// dropped.
fn content_parts(content: Option<&Value>, path: &str) -> Result<Vec<Value>, ProviderError> {
    convert::content_items(content, path, content_part)
}

/// One OpenAI content part as a Gemini part; `None` for empty text.
fn content_part(part: &Value, path: &str) -> Result<Option<Value>, ProviderError> {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" | "refusal" => convert::text_item(part, kind, path),
        "image_url" => {
            let url = convert::image_url(part, path)?;
            url_part(url, path).map(Some)
        }
        "input_audio" => {
            let audio = &part["input_audio"];
            let (Some(data), Some(format)) = (
                audio.get("data").and_then(Value::as_str),
                audio.get("format").and_then(Value::as_str),
            ) else {
                return Err(invalid("input_audio needs data and format", path));
            };
            Ok(Some(
                json!({ "inlineData": { "mimeType": format!("audio/{format}"), "data": data } }),
            ))
        }
        "file" => {
            let file = &part["file"];
            match (
                file.get("file_data").and_then(Value::as_str),
                file.get("file_id").and_then(Value::as_str),
            ) {
                (Some(data_url), _) => url_part(data_url, path).map(Some),
                (None, Some(uri)) => url_part(uri, path).map(Some),
                _ => Err(invalid("a file part needs file_data or file_id", path)),
            }
        }
        "" => Err(invalid("a content part needs a `type`", path)),
        other => Err(invalid(
            format!("content parts of type {other:?} are not supported for gemini"),
            path,
        )),
    }
}

/// A URL as a part: a base64 data URL inline (`inlineData`), anything else by
/// reference (`fileData`, which Gemini fetches: Files API and `gs://` URIs, and on the
/// Gemini API public http(s) URLs of supported types).
fn url_part(url: &str, path: &str) -> Result<Value, ProviderError> {
    if url.starts_with("data:") {
        let (mime, data) = convert::parse_data_url(url).map_err(|m| invalid(m, path))?;
        return Ok(json!({ "inlineData": { "mimeType": mime, "data": data } }));
    }
    if !(url.starts_with("https://") || url.starts_with("http://") || url.starts_with("gs://")) {
        return Err(invalid(
            "a URL must be https://…, gs://… or a base64 data: URL",
            path,
        ));
    }
    let mut file = Map::new();
    if let Some(mime) = mime_from_extension(url) {
        file.insert("mimeType".into(), Value::from(mime));
    }
    file.insert("fileUri".into(), Value::from(url));
    Ok(json!({ "fileData": file }))
}

/// The media type a URL's file extension suggests (Gemini wants one with `fileData`).
fn mime_from_extension(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "pdf" => "application/pdf",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "txt" => "text/plain",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(req: Value, drop: bool) -> Result<(Value, Vec<String>), ProviderError> {
        let req: ChatCompletionRequest = serde_json::from_value(req).unwrap();
        build_generate(&req, drop).map(|(b, d)| (Value::Object(b), d))
    }

    #[test]
    fn tool_result_needs_a_matching_call() {
        let e = build(
            json!({"model":"m","messages":[{"role":"user","content":"x"},
                {"role":"tool","tool_call_id":"nope","content":"r"}]}),
            false,
        )
        .unwrap_err();
        assert_eq!(e.error.param.as_deref(), Some("messages[1].tool_call_id"));
        let e = build(
            json!({"model":"m","messages":[{"role":"tool","content":"r"}]}),
            false,
        )
        .unwrap_err();
        assert_eq!(e.error.param.as_deref(), Some("messages[0].tool_call_id"));
    }

    #[test]
    fn dropped_params_and_parallel_tool_calls() {
        let req = json!({"model":"m","messages":[{"role":"user","content":"x"}],
            "logit_bias":{"1":1},"parallel_tool_calls":false,"service_tier":null});
        let e = build(req.clone(), false).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.error.param.as_deref(), Some("logit_bias"));
        let (body, dropped) = build(req, true).unwrap();
        assert_eq!(dropped, vec!["logit_bias"]);
        assert!(body.get("logit_bias").is_none());
    }

    #[test]
    fn anthropic_controls_follow_drop_params() {
        let req = json!({"model":"m","messages":[{"role":"user","content":"x"}],
            "thinking":{"type":"adaptive"},"output_config":{"effort":"high"},
            "context_management":{"edits":[]}});
        let e = build(req.clone(), false).unwrap_err();
        assert_eq!(e.status, 400);
        let param = e.error.param.unwrap_or_default();
        assert!(
            ["context_management", "output_config"].contains(&param.as_str()),
            "{param}"
        );
        let (body, mut dropped) = build(req, true).unwrap();
        dropped.sort();
        assert_eq!(dropped, ["context_management", "output_config", "thinking"]);
        assert!(body.get("thinking").is_none() && body.get("output_config").is_none());
    }

    #[test]
    fn mapped_and_native_parameters() {
        let (body, _) = build(
            json!({"model":"m","messages":[{"role":"user","content":"x"}],
                "seed":3,"top_k":5,"presence_penalty":0.5,"n":2,
                "generationConfig":{"topK":9,"thinkingConfig":{"thinkingBudget":0}},
                "safetySettings":[{"category":"HARM_CATEGORY_HATE_SPEECH","threshold":"BLOCK_NONE"}]}),
            false,
        )
        .unwrap();
        let c = &body["generationConfig"];
        assert_eq!(c["seed"], 3);
        assert_eq!(c["topK"], 5);
        assert_eq!(c["presencePenalty"], 0.5);
        assert_eq!(c["candidateCount"], 2);
        assert_eq!(c["thinkingConfig"], json!({"thinkingBudget":0}));
        assert_eq!(body["safetySettings"][0]["threshold"], "BLOCK_NONE");
    }

    #[test]
    fn bad_parts_and_roles() {
        for (content, param) in [
            (
                json!([{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]),
                "messages[0].content[0]",
            ),
            (
                json!([{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]),
                "messages[0].content[0]",
            ),
            (json!([{"type":"video"}]), "messages[0].content[0]"),
            (json!(5), "messages[0].content"),
        ] {
            let e = build(
                json!({"model":"m","messages":[{"role":"user","content":content}]}),
                false,
            )
            .unwrap_err();
            assert_eq!(e.error.param.as_deref(), Some(param), "{content}");
        }
        let e = build(
            json!({"model":"m","messages":[{"role":"function","content":"x"}]}),
            false,
        )
        .unwrap_err();
        assert_eq!(e.error.param.as_deref(), Some("messages[0].role"));
        let e = build(
            json!({"model":"m","messages":[{"role":"system","content":"x"}]}),
            false,
        )
        .unwrap_err();
        assert_eq!(e.error.param.as_deref(), Some("messages"));
    }

    #[test]
    fn mime_types() {
        assert_eq!(
            mime_from_extension("https://x/a.JPG?size=2"),
            Some("image/jpeg")
        );
        assert_eq!(mime_from_extension("https://x/a"), None);
    }
}
