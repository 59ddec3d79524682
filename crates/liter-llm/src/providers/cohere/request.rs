//! The canonical chat and embeddings requests turned into Cohere Chat v2 and Embed v2
//! bodies. See the module docs of [`super`] for the mapping and the decisions; this file
//! only carries them out.

use serde_json::{json, Map, Value};

use super::DEFAULT_INPUT_TYPE;
use crate::providers::reasoning::{self, Effort, ReasoningBudgets};
use crate::types::{
    ChatCompletionRequest, EmbeddingRequest, Message, ProviderError, ResponseFormat, Tool,
    ToolChoice,
};

/// OpenAI parameters (and Anthropic controls) with no Cohere counterpart. A request that sets one (to anything but
/// `null`) is answered 400 naming it, unless `drop_params` is on: then it is left out and
/// reported.
pub const DROPPED_PARAMS: &[&str] = &[
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "store",
    "metadata",
    "modalities",
    "audio",
    "prediction",
    "service_tier",
    "prompt_cache_key",
    "safety_identifier",
    "web_search_options",
    "verbosity",
    // Anthropic's controls, sent by a chat client (the Messages door translates its
    // own; Cohere's own `thinking` is forwarded).
    "output_config",
    "context_management",
];

pub(crate) use crate::providers::convert::invalid;

/// Refuses or drops (under `drop_params`) the parameter `key`.
fn refuse(key: &str, drop_params: bool, dropped: &mut Vec<String>) -> Result<(), ProviderError> {
    if !drop_params {
        return Err(invalid(
            format!(
                "cohere does not support the parameter {key:?}; remove it, or set drop_params = true to drop it"
            ),
            key,
        ));
    }
    dropped.push(key.to_string());
    Ok(())
}

/// Cohere's `thinking` for a `reasoning_effort`: `none` turns thinking off, a level
/// sets `token_budget` to the level's default budget (as for Anthropic and Bedrock's
/// Claude).
fn thinking(effort: Option<Effort>) -> Option<Value> {
    let effort = effort?;
    Some(match ReasoningBudgets::default().budget(effort) {
        None => json!({"type": "disabled"}),
        Some(budget) => json!({"type": "enabled", "token_budget": budget}),
    })
}

/// The Chat v2 body for `req`, sent to model `model_id`, and the parameters dropped.
pub fn build_chat(
    req: &ChatCompletionRequest,
    model_id: &str,
    drop_params: bool,
) -> Result<(Value, Vec<String>), ProviderError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(crate::providers::adapter::n_refused("cohere"));
    }
    let mut dropped = Vec::new();
    let mut body = Map::new();
    for (key, value) in &req.extra {
        if value.is_null() {
            continue;
        }
        if key == "reasoning_effort" {
            // Cohere's own `thinking`, when the client sent it, wins.
            if req.extra.get("thinking").is_none_or(Value::is_null) {
                if let Some(thinking) = thinking(reasoning::effort(Some(value))?) {
                    body.insert("thinking".into(), thinking);
                }
            }
            continue;
        }
        if DROPPED_PARAMS.contains(&key.as_str()) {
            refuse(key, drop_params, &mut dropped)?;
            continue;
        }
        let key = if key == "top_k" { "k" } else { key.as_str() };
        body.insert(key.to_string(), value.clone());
    }
    // `parallel_tool_calls: false` Cohere cannot be told: the answer keeps the first
    // call (see `Reshape`).

    body.insert("model".into(), Value::from(model_id));
    let messages = req
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| convert_message(m, &format!("messages[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    if messages.is_empty() {
        return Err(invalid("at least one message is required", "messages"));
    }
    body.insert("messages".into(), Value::Array(messages));
    if req.stream == Some(true) {
        body.insert("stream".into(), Value::Bool(true));
    }
    if let Some(n) = req.max_completion_tokens.or(req.max_tokens) {
        body.insert("max_tokens".into(), Value::from(n));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), Value::from(t));
    }
    if let Some(p) = req.top_p {
        body.insert("p".into(), Value::from(p));
    }
    if let Some(stop) = &req.stop {
        let sequences = stop.to_vec();
        if !sequences.is_empty() {
            body.insert("stop_sequences".into(), Value::from(sequences));
        }
    }
    apply_tools(&mut body, req)?;
    if let Some(format) = &req.response_format {
        if let Some(f) = convert_response_format(format)? {
            body.insert("response_format".into(), f);
        }
    }
    Ok((Value::Object(body), dropped))
}

/// One message in Cohere's shape.
fn convert_message(m: &Message, path: &str) -> Result<Value, ProviderError> {
    let mut out = Map::new();
    match m.role.as_str() {
        "system" | "developer" => {
            out.insert("role".into(), Value::from("system"));
            out.insert("content".into(), content(m.content.as_ref(), path, false)?);
        }
        "user" => {
            out.insert("role".into(), Value::from("user"));
            out.insert("content".into(), content(m.content.as_ref(), path, true)?);
        }
        "assistant" => {
            out.insert("role".into(), Value::from("assistant"));
            let calls = m.tool_calls.as_deref().unwrap_or_default();
            let has_text = match &m.content {
                None | Some(Value::Null) => false,
                Some(Value::String(s)) => !s.is_empty(),
                Some(_) => true,
            };
            if has_text || calls.is_empty() {
                out.insert("content".into(), content(m.content.as_ref(), path, false)?);
            }
            if !calls.is_empty() {
                let calls: Vec<Value> = calls
                    .iter()
                    .map(|c| {
                        json!({"id": c.id, "type": "function",
                               "function": {"name": c.function.name, "arguments": c.function.arguments}})
                    })
                    .collect();
                out.insert("tool_calls".into(), Value::Array(calls));
            }
            if let Some(plan) = m.extra.get("tool_plan").filter(|p| p.is_string()) {
                out.insert("tool_plan".into(), plan.clone());
            }
        }
        "tool" => {
            let Some(id) = m.tool_call_id.as_deref() else {
                return Err(invalid(
                    "a tool message needs tool_call_id",
                    format!("{path}.tool_call_id"),
                ));
            };
            out.insert("role".into(), Value::from("tool"));
            out.insert("tool_call_id".into(), Value::from(id));
            out.insert("content".into(), tool_content(m.content.as_ref(), path)?);
        }
        other => {
            return Err(invalid(
                format!("unsupported message role {other:?} for cohere"),
                format!("{path}.role"),
            ))
        }
    }
    Ok(Value::Object(out))
}

/// A message `content`: a string as it is, parts checked (`images`: whether image parts
/// are allowed, for user messages).
fn content(content: Option<&Value>, path: &str, images: bool) -> Result<Value, ProviderError> {
    let parts = match content {
        None | Some(Value::Null) => return Ok(Value::from("")),
        Some(Value::String(s)) => return Ok(Value::from(s.as_str())),
        Some(Value::Array(parts)) => parts,
        Some(_) => {
            return Err(invalid(
                "content must be a string or an array of content parts",
                format!("{path}.content"),
            ))
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{path}.content[{j}]");
        match part.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = part
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("a text part needs a string `text`", at.clone()))?;
                out.push(json!({"type": "text", "text": text}));
            }
            Some("image_url") if images => out.push(image_part(part, &at)?),
            Some(other) => {
                return Err(invalid(
                    format!("cohere does not accept {other:?} content parts here"),
                    at,
                ))
            }
            None => return Err(invalid("a content part needs a `type`", at)),
        }
    }
    Ok(Value::Array(out))
}

/// An `image_url` part: https/http URLs and base64 data URLs, as Cohere takes them.
fn image_part(part: &Value, path: &str) -> Result<Value, ProviderError> {
    let image = &part["image_url"];
    let url = image
        .get("url")
        .and_then(Value::as_str)
        .or_else(|| image.as_str())
        .ok_or_else(|| invalid("image_url.url is required", path))?;
    let ok = url.starts_with("https://")
        || url.starts_with("http://")
        || (url.starts_with("data:") && url.contains(";base64,"));
    if !ok {
        return Err(invalid(
            "an image URL must be https://… or a base64 data: URL",
            path,
        ));
    }
    let mut out = json!({"type": "image_url", "image_url": {"url": url}});
    if let Some(detail) = image.get("detail").filter(|d| d.is_string()) {
        out["image_url"]["detail"] = detail.clone();
    }
    Ok(out)
}

/// A tool result: a string as it is; text parts as text, other parts (Cohere's
/// `document`) forwarded.
fn tool_content(content: Option<&Value>, path: &str) -> Result<Value, ProviderError> {
    match content {
        None | Some(Value::Null) => Ok(Value::from("")),
        Some(Value::String(s)) => Ok(Value::from(s.as_str())),
        Some(Value::Array(parts)) => Ok(Value::Array(parts.clone())),
        Some(_) => Err(invalid(
            "content must be a string or an array of content parts",
            format!("{path}.content"),
        )),
    }
}

/// `tools` and `tool_choice`.
fn apply_tools(
    body: &mut Map<String, Value>,
    req: &ChatCompletionRequest,
) -> Result<(), ProviderError> {
    let tools = req.tools.as_deref().unwrap_or_default();
    let mut strict = false;
    let mut converted = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let (t, s) = convert_tool(tool, i)?;
        strict |= s;
        converted.push(t);
    }
    let choice = match &req.tool_choice {
        None => None,
        Some(ToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => None,
            "required" => Some("REQUIRED"),
            "none" => Some("NONE"),
            other => {
                return Err(invalid(
                    format!("unknown tool_choice {other:?}"),
                    "tool_choice",
                ))
            }
        },
        Some(ToolChoice::Object(o)) => {
            let Some(name) = o
                .function
                .as_ref()
                .map(|f| f.name.as_str())
                .filter(|_| o.kind == "function")
            else {
                return Err(invalid(
                    format!(
                        "tool_choice of type {:?} is not supported for cohere",
                        o.kind
                    ),
                    "tool_choice",
                ));
            };
            // Forcing one function: offer only that one, and require a call.
            converted.retain(|t| t["function"]["name"] == name);
            if converted.is_empty() {
                return Err(invalid(
                    format!("tool_choice names {name:?}, which is not in tools"),
                    "tool_choice",
                ));
            }
            Some("REQUIRED")
        }
    };
    if converted.is_empty() {
        return Ok(());
    }
    body.insert("tools".into(), Value::Array(converted));
    if strict {
        body.insert("strict_tools".into(), Value::Bool(true));
    }
    if let Some(choice) = choice {
        body.insert("tool_choice".into(), Value::from(choice));
    }
    Ok(())
}

/// A function tool in Cohere's shape, and whether it asked for strict arguments.
fn convert_tool(tool: &Tool, i: usize) -> Result<(Value, bool), ProviderError> {
    let Some(f) = tool.function.as_ref().filter(|_| tool.kind == "function") else {
        return Err(invalid(
            format!("cohere supports function tools only, not {:?}", tool.kind),
            format!("tools[{i}]"),
        ));
    };
    let mut function = Map::new();
    function.insert("name".into(), Value::from(f.name.as_str()));
    if let Some(d) = &f.description {
        function.insert("description".into(), Value::from(d.as_str()));
    }
    let params = f
        .parameters
        .clone()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    function.insert("parameters".into(), params);
    Ok((
        json!({"type": "function", "function": function}),
        f.strict == Some(true),
    ))
}

/// `response_format` in Cohere's shape; `None` for `text`.
fn convert_response_format(format: &ResponseFormat) -> Result<Option<Value>, ProviderError> {
    match format.kind.as_str() {
        "text" => Ok(None),
        "json_object" => Ok(Some(json!({"type": "json_object"}))),
        "json_schema" => {
            let Some(schema) = format.json_schema.as_ref().and_then(|j| j.schema.clone()) else {
                return Err(invalid(
                    "response_format json_schema needs json_schema.schema",
                    "response_format",
                ));
            };
            Ok(Some(json!({"type": "json_object", "json_schema": schema})))
        }
        other => Err(invalid(
            format!("response_format {other:?} is not supported for cohere"),
            "response_format",
        )),
    }
}

/// The Embed v2 body for `req`, sent to model `model_id`.
pub fn build_embed(req: &EmbeddingRequest, model_id: &str) -> Result<Value, ProviderError> {
    let texts: Vec<&str> = match &req.input {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                invalid(
                    "cohere embeds text: input must be a string or an array of strings (token ids are not supported)",
                    "input",
                )
            })?,
        _ => {
            return Err(invalid(
                "input must be a string or an array of strings",
                "input",
            ))
        }
    };
    if texts.is_empty() {
        return Err(invalid("input must not be empty", "input"));
    }
    let input_type = match req.extra.get("input_type") {
        None | Some(Value::Null) => DEFAULT_INPUT_TYPE,
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(invalid("input_type must be a string", "input_type")),
    };
    let mut body = json!({
        "model": model_id,
        "texts": texts,
        "input_type": input_type,
        "embedding_types": ["float"],
    });
    if let Some(d) = req.dimensions {
        body["output_dimension"] = Value::from(d);
    }
    if let Some(t) = req.extra.get("truncate").filter(|t| !t.is_null()) {
        body["truncate"] = t.clone();
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(req: Value, drop: bool) -> Result<(Value, Vec<String>), ProviderError> {
        let req: ChatCompletionRequest = serde_json::from_value(req).unwrap();
        build_chat(&req, "command-a", drop)
    }

    fn user(text: &str) -> Value {
        json!([{"role": "user", "content": text}])
    }

    #[test]
    fn minimal() {
        let (b, dropped) = chat(json!({"model": "alias", "messages": user("hi")}), false).unwrap();
        assert_eq!(
            b,
            json!({"model": "command-a", "messages": [{"role": "user", "content": "hi"}]})
        );
        assert!(dropped.is_empty());
    }

    #[test]
    fn sampling_parameters() {
        let (b, _) = chat(
            json!({"model": "m", "messages": user("x"), "max_tokens": 5, "max_completion_tokens": 9,
                "temperature": 0.3, "top_p": 0.9, "top_k": 40, "stop": "END", "seed": 7,
                "frequency_penalty": 0.1, "presence_penalty": 0.2, "user": "u", "n": 1}),
            false,
        )
        .unwrap();
        assert_eq!(b["max_tokens"], 9);
        assert_eq!(b["temperature"], 0.3);
        assert_eq!(b["p"], 0.9);
        assert_eq!(b["k"], 40);
        assert_eq!(b["stop_sequences"], json!(["END"]));
        assert_eq!(b["seed"], 7);
        assert_eq!(b["frequency_penalty"], 0.1);
        assert!(b.get("user").is_none() && b.get("top_p").is_none() && b.get("n").is_none());
    }

    #[test]
    fn anthropic_controls_follow_drop_params() {
        let req = json!({"model": "m", "messages": user("x"), "output_config": {"effort": "high"},
            "context_management": {"edits": []}, "thinking": {"type": "enabled", "token_budget": 500}});
        let e = chat(req.clone(), false).unwrap_err();
        assert_eq!(e.status, 400);
        let param = e.error.param.unwrap_or_default();
        assert!(
            ["context_management", "output_config"].contains(&param.as_str()),
            "{param}"
        );
        let (b, mut dropped) = chat(req, true).unwrap();
        dropped.sort();
        assert_eq!(dropped, ["context_management", "output_config"]);
        // Cohere's own `thinking` goes on.
        assert_eq!(b["thinking"]["token_budget"], 500);
    }

    #[test]
    fn reasoning_effort_becomes_cohere_thinking() {
        let with = |effort: &str| {
            let req = json!({"model": "m", "messages": user("x"), "reasoning_effort": effort});
            chat(req, false).unwrap().0
        };
        assert_eq!(
            with("medium")["thinking"],
            json!({"type": "enabled", "token_budget": 8192})
        );
        assert_eq!(with("none")["thinking"], json!({"type": "disabled"}));
        assert!(with("high").get("reasoning_effort").is_none());
        // The client's own `thinking` wins.
        let req = json!({"model": "m", "messages": user("x"), "reasoning_effort": "high",
            "thinking": {"type": "enabled", "token_budget": 500}});
        assert_eq!(chat(req, false).unwrap().0["thinking"]["token_budget"], 500);
        let req = json!({"model": "m", "messages": user("x"), "reasoning_effort": "max"});
        let e = chat(req, false).unwrap_err();
        assert_eq!(e.error.param.as_deref(), Some("reasoning_effort"));
    }

    #[test]
    fn n_and_dropped_params() {
        let e = chat(json!({"model": "m", "n": 2, "messages": user("x")}), true).unwrap_err();
        assert_eq!(e.error.param.as_deref(), Some("n"));
        let e = chat(
            json!({"model": "m", "logprobs": true, "messages": user("x")}),
            false,
        )
        .unwrap_err();
        assert_eq!(
            (e.status, e.error.param.as_deref()),
            (400, Some("logprobs"))
        );
        let (b, dropped) = chat(
            json!({"model": "m", "logprobs": true, "parallel_tool_calls": false, "metadata": null,
                "messages": user("x")}),
            true,
        )
        .unwrap();
        assert_eq!(
            dropped,
            ["logprobs"],
            "parallel_tool_calls is honoured by the answer"
        );
        assert!(b.get("parallel_tool_calls").is_none());
        assert!(b.get("logprobs").is_none() && b.get("metadata").is_none());
    }

    #[test]
    fn tool_choice_forms() {
        let tools = json!([
            {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
            {"type": "function", "function": {"name": "b", "strict": true}}]);
        let (b, _) = chat(
            json!({"model": "m", "messages": user("x"), "tools": tools, "tool_choice": "required"}),
            false,
        )
        .unwrap();
        assert_eq!(b["tool_choice"], "REQUIRED");
        assert_eq!(b["strict_tools"], true);
        assert_eq!(
            b["tools"][1]["function"]["parameters"],
            json!({"type": "object", "properties": {}})
        );
        let (b, _) = chat(
            json!({"model": "m", "messages": user("x"), "tools": tools, "tool_choice": "auto"}),
            false,
        )
        .unwrap();
        assert!(b.get("tool_choice").is_none());
        let (b, _) = chat(
            json!({"model": "m", "messages": user("x"), "tools": tools,
            "tool_choice": {"type": "function", "function": {"name": "b"}}}),
            false,
        )
        .unwrap();
        assert_eq!(b["tools"].as_array().unwrap().len(), 1);
        assert_eq!(b["tools"][0]["function"]["name"], "b");
        assert_eq!(b["tool_choice"], "REQUIRED");
        let e = chat(
            json!({"model": "m", "messages": user("x"), "tools": tools,
            "tool_choice": {"type": "function", "function": {"name": "zzz"}}}),
            false,
        )
        .unwrap_err();
        assert_eq!(e.error.param.as_deref(), Some("tool_choice"));
        let e = chat(
            json!({"model": "m", "messages": user("x"), "tools": [{"type": "web_search"}]}),
            false,
        )
        .unwrap_err();
        assert_eq!(e.error.param.as_deref(), Some("tools[0]"));
    }

    #[test]
    fn messages_of_every_role() {
        let (b, _) = chat(
            json!({"model": "m", "messages": [
                {"role": "developer", "content": [{"type": "text", "text": "rules"}]},
                {"role": "user", "content": [{"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}]},
                {"role": "assistant", "content": null, "tool_plan": "I will call f",
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"}]}),
            false,
        )
        .unwrap();
        let m = &b["messages"];
        assert_eq!(
            m[0],
            json!({"role": "system", "content": [{"type": "text", "text": "rules"}]})
        );
        assert_eq!(
            m[1]["content"][1],
            json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}})
        );
        assert_eq!(
            m[2],
            json!({"role": "assistant", "tool_plan": "I will call f", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]})
        );
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "c1", "content": "42"})
        );
    }

    #[test]
    fn bad_messages() {
        let e = chat(
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
            false,
        )
        .unwrap_err();
        assert_eq!(e.error.param.as_deref(), Some("messages[0].tool_call_id"));
        let e = chat(
            json!({"model": "m", "messages": [{"role": "function", "content": "x"}]}),
            false,
        )
        .unwrap_err();
        assert_eq!(e.error.param.as_deref(), Some("messages[0].role"));
        let e = chat(
            json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}),
            false,
        )
        .unwrap_err();
        assert_eq!(e.error.param.as_deref(), Some("messages[0].content[0]"));
        let e = chat(
            json!({"model": "m", "messages": [{"role": "system", "content": [
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
            false,
        )
        .unwrap_err();
        assert_eq!(e.error.param.as_deref(), Some("messages[0].content[0]"));
        let e = chat(json!({"model": "m", "messages": []}), false).unwrap_err();
        assert_eq!(e.error.param.as_deref(), Some("messages"));
    }

    #[test]
    fn response_formats() {
        let (b, _) = chat(json!({"model": "m", "messages": user("x"), "response_format": {"type": "json_object"}}), false).unwrap();
        assert_eq!(b["response_format"], json!({"type": "json_object"}));
        let (b, _) = chat(
            json!({"model": "m", "messages": user("x"), "response_format": {"type": "json_schema",
            "json_schema": {"name": "n", "schema": {"type": "object"}}}}),
            false,
        )
        .unwrap();
        assert_eq!(
            b["response_format"],
            json!({"type": "json_object", "json_schema": {"type": "object"}})
        );
        let (b, _) = chat(
            json!({"model": "m", "messages": user("x"), "response_format": {"type": "text"}}),
            false,
        )
        .unwrap();
        assert!(b.get("response_format").is_none());
    }

    #[test]
    fn embed_bodies() {
        let req: EmbeddingRequest = serde_json::from_value(json!({"model": "e", "input": "one",
            "encoding_format": "base64", "dimensions": 256}))
        .unwrap();
        assert_eq!(
            build_embed(&req, "embed-v4.0").unwrap(),
            json!({"model": "embed-v4.0", "texts": ["one"], "input_type": "search_document",
                "embedding_types": ["float"], "output_dimension": 256})
        );
        let req: EmbeddingRequest =
            serde_json::from_value(json!({"model": "e", "input": ["a", "b"],
            "input_type": "search_query", "truncate": "END"}))
            .unwrap();
        let b = build_embed(&req, "x").unwrap();
        assert_eq!(b["input_type"], "search_query");
        assert_eq!(b["truncate"], "END");
        let req: EmbeddingRequest =
            serde_json::from_value(json!({"model": "e", "input": [[1, 2]]})).unwrap();
        assert_eq!(
            build_embed(&req, "x").unwrap_err().error.param.as_deref(),
            Some("input")
        );
    }
}
