//! The canonical chat request turned into an Anthropic Messages request: the body,
//! the headers (without the key) and the path; the messages themselves are translated
//! in [`super::messages`]. See the module docs of [`super`] for the decisions; this file
//! only carries them out.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use serde_json::{json, Map, Value};

use super::error::TranslateError;
use super::messages::convert_messages;
use super::{AnthropicOptions, MESSAGES_PATH};
use crate::providers::adapter::n_refused;
use crate::providers::reasoning;
use crate::providers::reshape::{JSON_TOOL, JSON_TOOL_DESCRIPTION};
use crate::types::{ChatCompletionRequest, ResponseFormat, Tool, ToolChoice};

/// An Anthropic request ready to send: `POST {base_url}{path}` with `headers`, the API
/// key header added by the dispatcher.
#[derive(Debug, Clone)]
pub struct AnthropicRequest {
    /// Always [`MESSAGES_PATH`].
    pub path: &'static str,
    /// `anthropic-version`, `content-type` and, when configured, `anthropic-beta`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The JSON body.
    pub body: Bytes,
    /// Whether the body asks for a stream (the answer is `text/event-stream`).
    pub stream: bool,
    /// Parameters left out under `drop_params` (see [`DROPPED_PARAMS`]).
    pub dropped: Vec<String>,
}

/// OpenAI parameters with no Anthropic counterpart (Anthropic rejects unknown top-level
/// fields). A request that sets one (to anything but `null`) is answered 400 naming
/// it, unless `drop_params` is on: then it is left out and reported in
/// [`AnthropicRequest::dropped`]. `metadata` is OpenAI's stored-completion tags; the
/// Anthropic `metadata.user_id` comes from `user`. `service_tier` is forwarded only when
/// its value is one Anthropic knows (`auto`, `standard_only`).
pub const DROPPED_PARAMS: &[&str] = &[
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "seed",
    "store",
    "metadata",
    "modalities",
    "audio",
    "prediction",
    "prompt_cache_key",
    "safety_identifier",
    "web_search_options",
    "verbosity",
];

const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");
const ANTHROPIC_BETA: HeaderName = HeaderName::from_static("anthropic-beta");

/// Builds the Anthropic request for `req`, sent to model `model_id`.
pub fn build_request(
    req: &ChatCompletionRequest,
    model_id: &str,
    opts: &AnthropicOptions,
) -> Result<AnthropicRequest, TranslateError> {
    let mut dropped = Vec::new();
    let body = build_body(req, model_id, opts, &mut dropped)?;
    let body = serde_json::to_vec(&body).map_err(|e| TranslateError::InvalidRequest {
        message: format!("cannot encode the request: {e}"),
        param: None,
    })?;
    let mut headers = vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
    if opts.body_version.is_none() {
        headers.push((ANTHROPIC_VERSION, opts.version.clone()));
    }
    if let Some(beta) = &opts.beta {
        headers.push((ANTHROPIC_BETA, beta.clone()));
    }
    Ok(AnthropicRequest {
        path: MESSAGES_PATH,
        headers,
        body: Bytes::from(body),
        stream: req.stream == Some(true),
        dropped,
    })
}

/// The request body as JSON.
fn build_body(
    req: &ChatCompletionRequest,
    model_id: &str,
    opts: &AnthropicOptions,
    dropped: &mut Vec<String>,
) -> Result<Map<String, Value>, TranslateError> {
    if req.n.is_some_and(|n| n > 1) {
        let e = n_refused("anthropic");
        return Err(TranslateError::invalid(e.error.message, "n"));
    }
    let mut body = Map::new();
    for (key, value) in &req.extra {
        if key == "reasoning_effort" {
            continue;
        }
        let known_tier =
            key == "service_tier" && matches!(value.as_str(), Some("auto" | "standard_only"));
        if DROPPED_PARAMS.contains(&key.as_str()) || (key == "service_tier" && !known_tier) {
            if value.is_null() {
                continue;
            }
            if !opts.drop_params {
                return Err(TranslateError::invalid(
                    format!(
                        "anthropic does not support the parameter {key:?}; remove it, or set drop_params = true to drop it"
                    ),
                    key.clone(),
                ));
            }
            dropped.push(key.clone());
            continue;
        }
        body.insert(key.clone(), value.clone());
    }

    let (system, messages) = convert_messages(&req.messages)?;
    if let Some(system) = system {
        body.insert("system".into(), system);
    }
    if messages.is_empty() {
        return Err(TranslateError::invalid(
            "at least one user or assistant message is required",
            "messages",
        ));
    }
    body.insert("messages".into(), Value::Array(messages));
    match opts.body_version {
        Some(version) => {
            body.remove("model");
            body.insert("anthropic_version".into(), Value::from(version));
        }
        None => {
            body.insert("model".into(), Value::from(model_id));
        }
    }

    let effort = reasoning::effort(req.extra.get("reasoning_effort"))
        .map_err(|e| TranslateError::invalid(e.error.message, "reasoning_effort"))?;
    if !body.contains_key("thinking") {
        if let Some(budget) = effort.and_then(|e| opts.reasoning_budgets.budget(e)) {
            body.insert(
                "thinking".into(),
                json!({ "type": "enabled", "budget_tokens": budget }),
            );
        }
    }
    let asked = req.max_completion_tokens.or(req.max_tokens);
    let max_tokens = match thinking_budget(body.get("thinking")) {
        0 => asked.unwrap_or(opts.default_max_tokens),
        budget => reasoning::max_tokens_with_budget(asked, budget, opts.default_max_tokens),
    };
    body.insert("max_tokens".into(), Value::from(max_tokens));
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), Value::from(t));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), Value::from(p));
    }
    if let Some(stop) = &req.stop {
        let sequences = stop.to_vec();
        if !sequences.is_empty() {
            body.insert("stop_sequences".into(), Value::from(sequences));
        }
    }
    if req.stream == Some(true) {
        body.insert("stream".into(), Value::Bool(true));
    }
    // `user`, or an Anthropic-style `metadata.user_id` the client sent itself.
    let user = req.user.as_deref().or_else(|| {
        req.extra
            .get("metadata")
            .and_then(|m| m.get("user_id"))
            .and_then(Value::as_str)
    });
    if let Some(user) = user.filter(|u| !u.is_empty()) {
        body.insert("metadata".into(), json!({ "user_id": user }));
    }

    let tools = match &req.tools {
        Some(tools) => tools
            .iter()
            .enumerate()
            .map(|(i, t)| convert_tool(t, i))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) =
            convert_tool_choice(req.tool_choice.as_ref(), req.parallel_tool_calls)?
        {
            body.insert("tool_choice".into(), choice);
        }
    }
    if let Some(format) = &req.response_format {
        apply_response_format(&mut body, format)?;
    }
    Ok(body)
}

/// `json_object` as a forced call of [`JSON_TOOL`], whose input is the answer.
fn force_json_tool(body: &mut Map<String, Value>) -> Result<(), TranslateError> {
    if body.contains_key("tools") {
        return Err(TranslateError::invalid(
            "response_format json_object is served on anthropic by a forced tool and cannot be combined with tools; use json_schema",
            "response_format",
        ));
    }
    if thinking_budget(body.get("thinking")) > 0 {
        return Err(TranslateError::invalid(
            "response_format json_object is served on anthropic by a forced tool, which Anthropic does not allow with thinking; use json_schema",
            "response_format",
        ));
    }
    body.insert(
        "tools".into(),
        json!([{
            "name": JSON_TOOL,
            "description": JSON_TOOL_DESCRIPTION,
            "input_schema": { "type": "object" },
        }]),
    );
    body.insert(
        "tool_choice".into(),
        json!({ "type": "tool", "name": JSON_TOOL }),
    );
    Ok(())
}

/// `thinking.budget_tokens` when thinking is enabled, else 0.
fn thinking_budget(thinking: Option<&Value>) -> u64 {
    match thinking {
        Some(t) if t.get("type").and_then(Value::as_str) == Some("enabled") => {
            t.get("budget_tokens").and_then(Value::as_u64).unwrap_or(0)
        }
        _ => 0,
    }
}

/// A tool definition: functions as `{name, description, input_schema}`, any other type
/// (Anthropic's server tools) passed on as it is.
fn convert_tool(tool: &Tool, i: usize) -> Result<Value, TranslateError> {
    if tool.kind != "function" {
        let mut native = tool.extra.clone();
        native.insert("type".into(), Value::from(tool.kind.as_str()));
        return Ok(Value::Object(native));
    }
    let Some(f) = &tool.function else {
        return Err(TranslateError::invalid(
            "a function tool needs `function`",
            format!("tools[{i}].function"),
        ));
    };
    let mut out = Map::new();
    out.insert("name".into(), Value::from(f.name.as_str()));
    if let Some(d) = &f.description {
        out.insert("description".into(), Value::from(d.as_str()));
    }
    let schema = f
        .parameters
        .clone()
        .unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
    out.insert("input_schema".into(), schema);
    if f.strict == Some(true) {
        out.insert("strict".into(), Value::Bool(true));
    }
    if let Some(cc) = tool
        .extra
        .get("cache_control")
        .or_else(|| f.extra.get("cache_control"))
    {
        out.insert("cache_control".into(), cc.clone());
    }
    Ok(Value::Object(out))
}

/// `tool_choice` (and `parallel_tool_calls: false`) in Anthropic's shape.
fn convert_tool_choice(
    choice: Option<&ToolChoice>,
    parallel: Option<bool>,
) -> Result<Option<Value>, TranslateError> {
    let mut out = match choice {
        None if parallel == Some(false) => json!({ "type": "auto" }),
        None => return Ok(None),
        Some(ToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => json!({ "type": "auto" }),
            "required" => json!({ "type": "any" }),
            "none" => return Ok(Some(json!({ "type": "none" }))),
            other => {
                return Err(TranslateError::invalid(
                    format!("unknown tool_choice {other:?}"),
                    "tool_choice",
                ))
            }
        },
        Some(ToolChoice::Object(o)) => match (o.kind.as_str(), &o.function) {
            ("function", Some(f)) => json!({ "type": "tool", "name": f.name }),
            _ => {
                return Err(TranslateError::invalid(
                    format!(
                        "tool_choice of type {:?} is not supported for anthropic",
                        o.kind
                    ),
                    "tool_choice",
                ))
            }
        },
    };
    if parallel == Some(false) {
        out["disable_parallel_tool_use"] = Value::Bool(true);
    }
    Ok(Some(out))
}

/// `response_format` as Anthropic's structured output (`output_config.format`).
fn apply_response_format(
    body: &mut Map<String, Value>,
    format: &ResponseFormat,
) -> Result<(), TranslateError> {
    match format.kind.as_str() {
        "text" => Ok(()),
        "json_schema" => {
            let Some(schema) = format.json_schema.as_ref().and_then(|j| j.schema.clone()) else {
                return Err(TranslateError::invalid(
                    "response_format json_schema needs json_schema.schema",
                    "response_format",
                ));
            };
            let config = body
                .entry("output_config")
                .or_insert_with(|| Value::Object(Map::new()));
            if !config.is_object() {
                *config = Value::Object(Map::new());
            }
            config["format"] = json!({ "type": "json_schema", "schema": schema });
            Ok(())
        }
        "json_object" => force_json_tool(body),
        other => Err(TranslateError::invalid(
            format!(
                "response_format {other:?} is not supported for anthropic; use json_schema or json_object"
            ),
            "response_format",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Built with `drop_params` on (the tests that check the refusal build their own).
    fn body(req: Value) -> Result<Value, TranslateError> {
        let req: ChatCompletionRequest = serde_json::from_value(req).unwrap();
        let opts = AnthropicOptions {
            drop_params: true,
            ..AnthropicOptions::default()
        };
        let built = build_request(&req, "claude-x", &opts)?;
        Ok(serde_json::from_slice(&built.body).unwrap())
    }

    fn param(e: TranslateError) -> Option<String> {
        match e {
            TranslateError::InvalidRequest { param, .. } => param,
            TranslateError::BadResponse(_) => None,
        }
    }

    #[test]
    fn minimal_request_and_headers() {
        let req: ChatCompletionRequest = serde_json::from_value(json!({
            "model": "alias", "stream": true,
            "messages": [{"role": "user", "content": "hi"}]
        }))
        .unwrap();
        let opts = AnthropicOptions::default().with_betas(&["b1"]).unwrap();
        let built = build_request(&req, "claude-x", &opts).unwrap();
        assert_eq!(built.path, "/v1/messages");
        assert!(built.stream);
        let headers: Vec<(String, String)> = built
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        assert!(headers.contains(&("anthropic-version".into(), "2023-06-01".into())));
        assert!(headers.contains(&("content-type".into(), "application/json".into())));
        assert!(headers.contains(&("anthropic-beta".into(), "b1".into())));
        assert!(!headers.iter().any(|(n, _)| n == "x-api-key"));
        let body: Value = serde_json::from_slice(&built.body).unwrap();
        assert_eq!(
            body,
            json!({"model": "claude-x", "max_tokens": 4096, "stream": true,
                   "messages": [{"role": "user", "content": "hi"}]})
        );
    }

    #[test]
    fn body_version_replaces_model_and_header() {
        let req: ChatCompletionRequest = serde_json::from_value(json!({
            "model": "alias", "messages": [{"role": "user", "content": "hi"}]
        }))
        .unwrap();
        let opts = AnthropicOptions {
            body_version: Some("vertex-2023-10-16"),
            ..AnthropicOptions::default()
        };
        let built = build_request(&req, "claude-x", &opts).unwrap();
        assert!(!built.headers.iter().any(|(n, _)| n == "anthropic-version"));
        let body: Value = serde_json::from_slice(&built.body).unwrap();
        assert_eq!(body.get("model"), None);
        assert_eq!(body["anthropic_version"], "vertex-2023-10-16");
    }

    #[test]
    fn n_above_one_is_rejected() {
        let e = body(json!({"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}));
        assert_eq!(param(e.unwrap_err()).as_deref(), Some("n"));
        assert!(
            body(json!({"model":"m","n":1,"messages":[{"role":"user","content":"x"}]})).is_ok()
        );
    }

    #[test]
    fn reasoning_effort_becomes_thinking() {
        let m = json!([{"role":"user","content":"x"}]);
        let b = body(json!({"model":"m","messages":m,"reasoning_effort":"medium"})).unwrap();
        assert_eq!(
            b["thinking"],
            json!({"type":"enabled","budget_tokens":8192})
        );
        assert_eq!(b["max_tokens"], 8192 + 4096);
        assert!(b.get("reasoning_effort").is_none());
        let b = body(json!({"model":"m","messages":m,"reasoning_effort":"low","max_tokens":50}))
            .unwrap();
        assert_eq!(b["max_tokens"], 2048 + 50);
        let b = body(json!({"model":"m","messages":m,"reasoning_effort":"none"})).unwrap();
        assert!(b.get("thinking").is_none() && b.get("reasoning_effort").is_none());
        let b = body(json!({"model":"m","messages":m,"reasoning_effort":"high",
            "thinking":{"type":"enabled","budget_tokens":1500},"max_tokens":1000}))
        .unwrap();
        assert_eq!(b["thinking"]["budget_tokens"], 1500);
        assert_eq!(b["max_tokens"], 2500);
        let req: ChatCompletionRequest =
            serde_json::from_value(json!({"model":"m","messages":m,"reasoning_effort":"low"}))
                .unwrap();
        let opts = AnthropicOptions {
            reasoning_budgets: crate::providers::reasoning::ReasoningBudgets {
                low: 3000,
                ..Default::default()
            },
            ..AnthropicOptions::default()
        };
        let built = build_request(&req, "c", &opts).unwrap();
        let b: Value = serde_json::from_slice(&built.body).unwrap();
        assert_eq!(b["thinking"]["budget_tokens"], 3000);
        let e = body(json!({"model":"m","messages":m,"reasoning_effort":"max"}));
        assert_eq!(param(e.unwrap_err()).as_deref(), Some("reasoning_effort"));
    }

    #[test]
    fn stop_string_or_array() {
        let b = body(json!({"model":"m","stop":"END","messages":[{"role":"user","content":"x"}]}));
        assert_eq!(b.unwrap()["stop_sequences"], json!(["END"]));
        let b =
            body(json!({"model":"m","stop":["a","b"],"messages":[{"role":"user","content":"x"}]}));
        assert_eq!(b.unwrap()["stop_sequences"], json!(["a", "b"]));
        let b = body(json!({"model":"m","stop":[],"messages":[{"role":"user","content":"x"}]}));
        assert!(b.unwrap().get("stop_sequences").is_none());
    }

    #[test]
    fn max_tokens_precedence_and_thinking_default() {
        let m = json!([{"role":"user","content":"x"}]);
        let b = body(json!({"model":"m","max_tokens":10,"max_completion_tokens":20,"messages":m}));
        assert_eq!(b.unwrap()["max_tokens"], 20);
        let b = body(json!({"model":"m","max_tokens":10,"messages":m}));
        assert_eq!(b.unwrap()["max_tokens"], 10);
        let b = body(json!({"model":"m","messages":m,
            "thinking":{"type":"enabled","budget_tokens":10000}}))
        .unwrap();
        assert_eq!(b["max_tokens"], 14096);
        assert_eq!(
            b["thinking"],
            json!({"type":"enabled","budget_tokens":10000})
        );
    }

    #[test]
    fn dropped_and_forwarded_parameters() {
        let b = body(
            json!({"model":"m","messages":[{"role":"user","content":"x"}],
            "frequency_penalty":0,"presence_penalty":0,"seed":1,"logprobs":false,
            "metadata":{"k":"v"},"top_k":5,"service_tier":"flex","user":"u-1"}),
        )
        .unwrap();
        for dropped in [
            "frequency_penalty",
            "presence_penalty",
            "seed",
            "logprobs",
            "service_tier",
        ] {
            assert!(b.get(dropped).is_none(), "{dropped}");
        }
        assert_eq!(b["top_k"], 5);
        assert_eq!(b["metadata"], json!({"user_id":"u-1"}));
        let b = body(
            json!({"model":"m","messages":[{"role":"user","content":"x"}],
            "metadata":{"user_id":"u-2","other":"dropped"}}),
        );
        assert_eq!(b.unwrap()["metadata"], json!({"user_id":"u-2"}));
        let b = body(
            json!({"model":"m","messages":[{"role":"user","content":"x"}],
            "service_tier":"standard_only"}),
        );
        assert_eq!(b.unwrap()["service_tier"], "standard_only");
    }

    #[test]
    fn tool_choice_mapping() {
        let tools = json!([{"type":"function","function":{"name":"f"}}]);
        let m = json!([{"role":"user","content":"x"}]);
        for (choice, expected) in [
            (json!("auto"), json!({"type":"auto"})),
            (json!("required"), json!({"type":"any"})),
            (json!("none"), json!({"type":"none"})),
            (
                json!({"type":"function","function":{"name":"f"}}),
                json!({"type":"tool","name":"f"}),
            ),
        ] {
            let b = body(json!({"model":"m","messages":m,"tools":tools,"tool_choice":choice}));
            assert_eq!(b.unwrap()["tool_choice"], expected);
        }
        let b = body(json!({"model":"m","messages":m,"tools":tools,"parallel_tool_calls":false}));
        assert_eq!(
            b.unwrap()["tool_choice"],
            json!({"type":"auto","disable_parallel_tool_use":true})
        );
        let b = body(json!({"model":"m","messages":m,"tool_choice":"auto"})).unwrap();
        assert!(b.get("tool_choice").is_none(), "no tools, no tool_choice");
        assert!(b.get("tools").is_none());
        let e = body(json!({"model":"m","messages":m,"tools":tools,"tool_choice":"sometimes"}));
        assert_eq!(param(e.unwrap_err()).as_deref(), Some("tool_choice"));
        let b = body(json!({"model":"m","messages":m,"tools":tools}));
        assert_eq!(
            b.unwrap()["tools"],
            json!([{"name":"f","input_schema":{"type":"object","properties":{}}}])
        );
    }

    #[test]
    fn response_format() {
        let m = json!([{"role":"user","content":"x"}]);
        let schema = json!({"type":"object","properties":{"a":{"type":"string"}},
            "required":["a"],"additionalProperties":false});
        let b = body(
            json!({"model":"m","messages":m,"output_config":{"effort":"low"},
            "response_format":{"type":"json_schema","json_schema":{"name":"r","schema":schema}}}),
        )
        .unwrap();
        assert_eq!(
            b["output_config"],
            json!({"effort":"low","format":{"type":"json_schema","schema":schema}})
        );
        let b = body(json!({"model":"m","messages":m,"response_format":{"type":"json_object"}}))
            .unwrap();
        assert_eq!(b["tool_choice"], json!({"type":"tool","name":JSON_TOOL}));
        assert_eq!(b["tools"][0]["name"], JSON_TOOL);
        assert_eq!(b["tools"][0]["input_schema"], json!({"type":"object"}));
        let tools = json!([{"type":"function","function":{"name":"f"}}]);
        let e = body(json!({"model":"m","messages":m,"tools":tools,
            "response_format":{"type":"json_object"}}));
        assert_eq!(param(e.unwrap_err()).as_deref(), Some("response_format"));
        let e = body(json!({"model":"m","messages":m,"reasoning_effort":"low",
            "response_format":{"type":"json_object"}}));
        assert_eq!(param(e.unwrap_err()).as_deref(), Some("response_format"));
        let e = body(json!({"model":"m","messages":m,
            "response_format":{"type":"json_schema","json_schema":{"name":"r"}}}));
        assert_eq!(param(e.unwrap_err()).as_deref(), Some("response_format"));
        let b = body(json!({"model":"m","messages":m,"response_format":{"type":"text"}}));
        assert!(b.unwrap().get("output_config").is_none());
    }
}
