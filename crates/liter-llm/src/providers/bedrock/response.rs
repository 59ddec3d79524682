//! A Converse answer turned into a `chat.completion`, and the usage arithmetic shared
//! with the stream translator.
//!
//! Text blocks are concatenated into `content`; `toolUse` blocks become `tool_calls`
//! (the input object serialized as the `arguments` string); `reasoningContent` text
//! becomes `reasoning_content`. Other blocks are skipped.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::finish_reason;
use crate::types::{
    AssistantMessage, ChatCompletion, Choice, FunctionCall, PromptTokensDetails, ProviderError,
    ToolCall, Usage,
};

/// Converse's `usage` (also the `usage` of a stream's `metadata` event).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BedrockUsage {
    #[serde(default)]
    pub(crate) input_tokens: u64,
    #[serde(default)]
    pub(crate) output_tokens: u64,
    #[serde(default)]
    pub(crate) cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) cache_write_input_tokens: Option<u64>,
}

impl BedrockUsage {
    /// OpenAI's usage: prompt tokens include cache reads and writes (Bedrock counts them
    /// apart from `inputTokens`); `cached_tokens` are the cache reads.
    pub(crate) fn to_usage(self) -> Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_write_input_tokens.unwrap_or(0);
        Usage {
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: read,
                audio_tokens: None,
            }),
            cache_creation_input_tokens: self.cache_write_input_tokens,
            cache_read_input_tokens: self.cache_read_input_tokens,
            ..Usage::new(self.input_tokens + read + written, self.output_tokens)
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseResponse {
    output: Output,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: BedrockUsage,
}

#[derive(Deserialize)]
struct Output {
    message: OutputMessage,
}

#[derive(Deserialize)]
struct OutputMessage {
    #[serde(default)]
    content: Vec<Value>,
}

/// A response id: Converse answers carry none.
pub(crate) fn new_id(created: u64) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("chatcmpl-bedrock-{created:x}-{n}")
}

fn bad(message: String) -> ProviderError {
    ProviderError::new(
        502,
        "api_error",
        format!("unreadable answer from bedrock: {message}"),
    )
    .with_code("bad_upstream_response")
}

/// Turns a 2xx Converse body into a `chat.completion` for `model`.
pub fn parse_response(
    body: &[u8],
    model: &str,
    created: u64,
) -> Result<ChatCompletion, ProviderError> {
    let r: ConverseResponse =
        serde_json::from_slice(body).map_err(|e| bad(format!("not a Converse response: {e}")))?;
    let mut text = String::new();
    let mut has_text = false;
    let mut reasoning: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in &r.output.message.content {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            has_text = true;
            text.push_str(t);
        } else if let Some(tool) = block.get("toolUse") {
            tool_calls.push(tool_call(tool)?);
        } else if let Some(r) = block.get("reasoningContent") {
            if let Some(t) = r.pointer("/reasoningText/text").and_then(Value::as_str) {
                reasoning.get_or_insert_with(String::new).push_str(t);
            }
        }
    }
    let content = (has_text || tool_calls.is_empty()).then_some(text);
    Ok(ChatCompletion {
        id: new_id(created),
        object: "chat.completion".into(),
        created,
        model: model.to_string(),
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant".into(),
                content,
                refusal: None,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                reasoning_content: reasoning,
                thinking_blocks: None,
            },
            logprobs: None,
            finish_reason: Some(finish_reason(r.stop_reason.as_deref()).into()),
        }],
        usage: Some(r.usage.to_usage()),
        system_fingerprint: None,
    })
}

/// A `toolUse` block as an OpenAI tool call.
fn tool_call(tool: &Value) -> Result<ToolCall, ProviderError> {
    let field = |name: &str| {
        tool.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad(format!("a toolUse block has no {name}")))
    };
    let arguments = match tool.get("input") {
        Some(input) if !input.is_null() => input.to_string(),
        _ => "{}".into(),
    };
    Ok(ToolCall {
        id: field("toolUseId")?,
        kind: "function".into(),
        function: FunctionCall {
            name: field("name")?,
            arguments,
        },
        extra: Map::new(),
    })
}
