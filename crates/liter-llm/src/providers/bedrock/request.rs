//! The canonical chat request turned into a Converse request body: `system`,
//! alternating `messages` with content blocks, `inferenceConfig`, `toolConfig`,
//! `outputConfig`, and the Converse fields a client sent itself. See the module docs
//! of [`super`] for the decisions; this file only carries them out.

use serde_json::{json, Map, Value};

use crate::providers::adapter::n_refused;
use crate::providers::convert;
use crate::providers::reasoning::{self, ReasoningBudgets};
use crate::providers::reshape::{JSON_TOOL, JSON_TOOL_DESCRIPTION};
use crate::types::ProviderError;
use crate::types::{ChatCompletionRequest, Message, ResponseFormat, Tool, ToolChoice};

/// Converse request fields a client may send as they are. Any other parameter
/// outside OpenAI's typed ones (and `top_k`) is answered 400 naming it, or dropped
/// under `drop_params`: Converse rejects fields it does not know.
pub const CONVERSE_FIELDS: &[&str] = &[
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "guardrailConfig",
    "performanceConfig",
    "promptVariables",
    "requestMetadata",
    "outputConfig",
];

use crate::providers::convert::invalid;

fn unsupported(key: &str) -> ProviderError {
    invalid(
        format!(
            "bedrock (Converse) does not support the parameter {key:?}; remove it, or set drop_params = true to drop it"
        ),
        key,
    )
}

/// How one deployment's Converse requests are written.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConverseOptions {
    pub drop_params: bool,
    pub budgets: ReasoningBudgets,
    /// An Anthropic Claude model (`anthropic.` in the id): `reasoning_effort` and
    /// `thinking` become `reasoning_config`.
    pub claude: bool,
}

/// `max_tokens` when a Claude request thinks and names none (Converse needs room above
/// the budget).
const CLAUDE_DEFAULT_MAX_TOKENS: u64 = 4096;

/// The Converse body for `req`, and the parameters dropped under `drop_params`.
pub fn build_body(
    req: &ChatCompletionRequest,
    opts: &ConverseOptions,
) -> Result<(Value, Vec<String>), ProviderError> {
    let drop_params = opts.drop_params;
    let mut dropped = Vec::new();
    if req.n.is_some_and(|n| n > 1) {
        return Err(n_refused("bedrock"));
    }
    let mut body = Map::new();
    let mut additional = Map::new();
    let budget = thinking_budget(req, opts)?;
    if let Some(budget) = budget {
        additional.insert(
            "reasoning_config".into(),
            json!({"type": "enabled", "budget_tokens": budget}),
        );
    }
    // `parallel_tool_calls: false` Converse cannot be told: the answer keeps the first
    // call (see `Reshape`).
    for (key, value) in &req.extra {
        if value.is_null() || (opts.claude && (key == "reasoning_effort" || key == "thinking")) {
            continue;
        }
        if CONVERSE_FIELDS.contains(&key.as_str()) {
            body.insert(key.clone(), value.clone());
        } else if key == "top_k" {
            additional.insert("top_k".into(), value.clone());
        } else if drop_params {
            dropped.push(key.clone());
        } else {
            return Err(unsupported(key));
        }
    }
    if !additional.is_empty() {
        let entry = body
            .entry("additionalModelRequestFields")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(o) = entry {
            for (k, v) in additional {
                o.entry(k).or_insert(v);
            }
        }
    }

    let (system, messages) = convert_messages(&req.messages)?;
    if messages.is_empty() {
        return Err(invalid(
            "at least one user or assistant message is required",
            "messages",
        ));
    }
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    body.insert("messages".into(), Value::Array(messages));

    let mut inference = Map::new();
    let asked = req.max_completion_tokens.or(req.max_tokens);
    let max_tokens = match budget {
        Some(b) => Some(reasoning::max_tokens_with_budget(
            asked,
            b,
            CLAUDE_DEFAULT_MAX_TOKENS,
        )),
        None => asked,
    };
    if let Some(n) = max_tokens {
        inference.insert("maxTokens".into(), Value::from(n));
    }
    if let Some(t) = req.temperature {
        inference.insert("temperature".into(), Value::from(t));
    }
    if let Some(p) = req.top_p {
        inference.insert("topP".into(), Value::from(p));
    }
    if let Some(stop) = &req.stop {
        let sequences = stop.to_vec();
        if !sequences.is_empty() {
            inference.insert("stopSequences".into(), Value::from(sequences));
        }
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if let Some(user) = req.user.as_deref().filter(|u| !u.is_empty()) {
        let meta = body
            .entry("requestMetadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(o) = meta {
            o.entry("user").or_insert_with(|| Value::from(user));
        }
    }
    if let Some(tool_config) = tool_config(req.tools.as_deref(), req.tool_choice.as_ref())? {
        body.insert("toolConfig".into(), tool_config);
    }
    if let Some(format) = &req.response_format {
        apply_response_format(&mut body, format, budget.is_some())?;
    }
    Ok((Value::Object(body), dropped))
}

/// The thinking budget of a Claude request: its `thinking` in Anthropic's form when
/// enabled, else its `reasoning_effort`'s budget. `None` for other models.
fn thinking_budget(
    req: &ChatCompletionRequest,
    opts: &ConverseOptions,
) -> Result<Option<u64>, ProviderError> {
    if !opts.claude {
        return Ok(None);
    }
    if let Some(thinking) = req.extra.get("thinking").filter(|t| !t.is_null()) {
        return Ok(match thinking.get("type").and_then(Value::as_str) {
            Some("enabled") => thinking.get("budget_tokens").and_then(Value::as_u64),
            _ => None,
        });
    }
    let effort = reasoning::effort(req.extra.get("reasoning_effort"))?;
    Ok(effort.and_then(|e| opts.budgets.budget(e)))
}

/// `json_object` as a forced call of [`JSON_TOOL`], whose input is the answer.
fn force_json_tool(body: &mut Map<String, Value>, thinking: bool) -> Result<(), ProviderError> {
    if body.contains_key("toolConfig") || thinking {
        return Err(invalid(
            "response_format json_object is served on bedrock by a forced tool and cannot be combined with tools or thinking; use json_schema",
            "response_format",
        ));
    }
    body.insert(
        "toolConfig".into(),
        json!({
            "tools": [{"toolSpec": {
                "name": JSON_TOOL,
                "description": JSON_TOOL_DESCRIPTION,
                "inputSchema": {"json": {"type": "object"}},
            }}],
            "toolChoice": {"tool": {"name": JSON_TOOL}},
        }),
    );
    Ok(())
}

/// `system` blocks and alternating turns.
fn convert_messages(messages: &[Message]) -> Result<(Vec<Value>, Vec<Value>), ProviderError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        match message.role.as_str() {
            "system" | "developer" => {
                for block in content_blocks(message.content.as_ref(), &path)? {
                    if block.get("text").is_none() {
                        return Err(invalid(
                            "system messages may hold text only",
                            format!("{path}.content"),
                        ));
                    }
                    system.push(block);
                }
            }
            "user" => push_turn(
                &mut turns,
                "user",
                content_blocks(message.content.as_ref(), &path)?,
            ),
            "assistant" => {
                let mut blocks = content_blocks(message.content.as_ref(), &path)?;
                for (j, call) in message.tool_calls.iter().flatten().enumerate() {
                    let input = convert::tool_arguments(&call.function.arguments).map_err(|m| {
                        invalid(m, format!("{path}.tool_calls[{j}].function.arguments"))
                    })?;
                    blocks.push(json!({"toolUse": {
                        "toolUseId": call.id, "name": call.function.name, "input": input}}));
                }
                push_turn(&mut turns, "assistant", blocks);
            }
            "tool" => {
                let Some(id) = message.tool_call_id.as_deref() else {
                    return Err(invalid(
                        "a tool message needs tool_call_id",
                        format!("{path}.tool_call_id"),
                    ));
                };
                let mut content = content_blocks(message.content.as_ref(), &path)?;
                if content.is_empty() {
                    content.push(json!({"text": ""}));
                }
                push_turn(
                    &mut turns,
                    "user",
                    vec![json!({"toolResult": {"toolUseId": id, "content": content}})],
                );
            }
            other => {
                return Err(invalid(
                    format!("unsupported message role {other:?} for bedrock"),
                    format!("{path}.role"),
                ))
            }
        }
    }
    let turns = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok((system, turns))
}

/// Appends to the last turn when it has the same role (Converse wants alternation).
fn push_turn(turns: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last, existing)) if *last == role => existing.extend(blocks),
        _ => turns.push((role, blocks)),
    }
}

/// The blocks of an OpenAI `content`; empty text is left out (Bedrock rejects it).
fn content_blocks(content: Option<&Value>, path: &str) -> Result<Vec<Value>, ProviderError> {
    convert::content_items(content, path, part_block)
}

/// One content part as a Converse content block; `None` for empty text.
fn part_block(part: &Value, path: &str) -> Result<Option<Value>, ProviderError> {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" | "refusal" => convert::text_item(part, kind, path),
        "image_url" => {
            let url = convert::image_url(part, path)?;
            if url.starts_with("http://") || url.starts_with("https://") {
                return Err(invalid(
                    "bedrock takes images as bytes only and the gateway does not fetch URLs: send the image as a base64 data: URL",
                    path,
                ));
            }
            let (media_type, data) = convert::parse_data_url(url).map_err(|m| invalid(m, path))?;
            let format = match media_type {
                "image/png" => "png",
                "image/jpeg" | "image/jpg" => "jpeg",
                "image/gif" => "gif",
                "image/webp" => "webp",
                other => {
                    return Err(invalid(
                        format!("bedrock accepts png, jpeg, gif and webp images, not {other}"),
                        path,
                    ))
                }
            };
            Ok(Some(
                json!({"image": {"format": format, "source": {"bytes": data}}}),
            ))
        }
        "" => Err(invalid("a content part needs a `type`", path)),
        other => Err(invalid(
            format!("content parts of type {other:?} are not supported for bedrock"),
            path,
        )),
    }
}

/// `tools` and `tool_choice` as `toolConfig`; `None` without tools or with `"none"`.
fn tool_config(
    tools: Option<&[Tool]>,
    choice: Option<&ToolChoice>,
) -> Result<Option<Value>, ProviderError> {
    let Some(tools) = tools.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let choice = match choice {
        None => None,
        Some(ToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => Some(json!({"auto": {}})),
            "required" => Some(json!({"any": {}})),
            "none" => return Ok(None),
            other => {
                return Err(invalid(
                    format!("unknown tool_choice {other:?}"),
                    "tool_choice",
                ))
            }
        },
        Some(ToolChoice::Object(o)) => match (o.kind.as_str(), &o.function) {
            ("function", Some(f)) => Some(json!({"tool": {"name": f.name}})),
            _ => {
                return Err(invalid(
                    format!(
                        "tool_choice of type {:?} is not supported for bedrock",
                        o.kind
                    ),
                    "tool_choice",
                ))
            }
        },
    };
    let mut specs = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let f = match (tool.kind.as_str(), &tool.function) {
            ("function", Some(f)) => f,
            _ => {
                return Err(invalid(
                    "bedrock takes function tools only",
                    format!("tools[{i}]"),
                ))
            }
        };
        let mut spec = Map::new();
        spec.insert("name".into(), Value::from(f.name.as_str()));
        if let Some(d) = f.description.as_deref().filter(|d| !d.is_empty()) {
            spec.insert("description".into(), Value::from(d));
        }
        let schema = f
            .parameters
            .clone()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        spec.insert("inputSchema".into(), json!({"json": schema}));
        specs.push(json!({"toolSpec": spec}));
    }
    let mut config = json!({"tools": specs});
    if let Some(choice) = choice {
        config["toolChoice"] = choice;
    }
    Ok(Some(config))
}

/// `response_format` json_schema as `outputConfig.textFormat` (the schema as a string).
fn apply_response_format(
    body: &mut Map<String, Value>,
    format: &ResponseFormat,
    thinking: bool,
) -> Result<(), ProviderError> {
    match format.kind.as_str() {
        "text" => Ok(()),
        "json_object" => force_json_tool(body, thinking),
        "json_schema" => {
            let Some(js) = &format.json_schema else {
                return Err(invalid("response_format json_schema needs json_schema", "response_format"));
            };
            let Some(schema) = &js.schema else {
                return Err(invalid(
                    "response_format json_schema needs json_schema.schema",
                    "response_format",
                ));
            };
            let mut def = Map::new();
            def.insert("schema".into(), Value::from(schema.to_string()));
            if !js.name.is_empty() {
                def.insert("name".into(), Value::from(js.name.as_str()));
            }
            if let Some(d) = &js.description {
                def.insert("description".into(), Value::from(d.as_str()));
            }
            let config = body
                .entry("outputConfig")
                .or_insert_with(|| Value::Object(Map::new()));
            if !config.is_object() {
                *config = Value::Object(Map::new());
            }
            config["textFormat"] =
                json!({"type": "json_schema", "structure": {"jsonSchema": def}});
            Ok(())
        }
        other => Err(invalid(
            format!(
                "response_format {other:?} is not supported for bedrock; use json_schema or json_object"
            ),
            "response_format",
        )),
    }
}
