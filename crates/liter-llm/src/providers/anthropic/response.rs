//! Anthropic's `Message` answer turned into a `chat.completion`, and the usage
//! arithmetic shared with the stream translator.
//!
//! Text blocks are concatenated into `content`; `tool_use` blocks become `tool_calls`
//! (the input object serialized as the `arguments` string); `thinking` text becomes
//! `reasoning_content` and the `thinking`/`redacted_thinking` blocks are kept in
//! `thinking_blocks`. Other block types (server tool results and the like) are skipped.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::TranslateError;
use super::finish_reason;
use crate::types::{
    AssistantMessage, ChatCompletion, Choice, FunctionCall, PromptTokensDetails, ToolCall, Usage,
};

/// Anthropic's `usage` object. Every field is optional so that a `message_delta` carrying
/// only some of them can be merged into what `message_start` reported.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct AnthropicUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Takes every count `newer` reports (counts in `message_delta` are cumulative).
    pub fn merge(&mut self, newer: &AnthropicUsage) {
        self.input_tokens = newer.input_tokens.or(self.input_tokens);
        self.output_tokens = newer.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = newer
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = newer
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
    }

    /// OpenAI's usage: prompt tokens include cache reads and writes (Anthropic counts them
    /// apart from `input_tokens`); `cached_tokens` are the cache reads.
    pub fn to_usage(self) -> Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        let prompt = self.input_tokens.unwrap_or(0) + read + written;
        Usage {
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: read,
                audio_tokens: None,
            }),
            cache_creation_input_tokens: self.cache_creation_input_tokens,
            cache_read_input_tokens: self.cache_read_input_tokens,
            ..Usage::new(prompt, self.output_tokens.unwrap_or(0))
        }
    }
}

/// The parts of Anthropic's `Message` we read.
#[derive(Deserialize)]
struct MessageResponse {
    id: String,
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

/// Turns a 2xx Messages API body into a `chat.completion` for `model`, created at
/// `created` (Unix seconds).
pub fn parse_response(
    body: &[u8],
    model: &str,
    created: u64,
) -> Result<ChatCompletion, TranslateError> {
    let message: MessageResponse = serde_json::from_slice(body)
        .map_err(|e| TranslateError::BadResponse(format!("not a Message object: {e}")))?;

    let mut text = String::new();
    let mut has_text = false;
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    for block in &message.content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                has_text = true;
                text.push_str(block.get("text").and_then(Value::as_str).unwrap_or(""));
            }
            Some("tool_use") => tool_calls.push(tool_call(block)?),
            Some("thinking") => {
                reasoning.push_str(block.get("thinking").and_then(Value::as_str).unwrap_or(""));
                thinking_blocks.push(block.clone());
            }
            Some("redacted_thinking") => thinking_blocks.push(block.clone()),
            _ => {}
        }
    }

    let content = if has_text || tool_calls.is_empty() {
        Some(text)
    } else {
        None
    };
    Ok(ChatCompletion {
        id: message.id,
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
                reasoning_content: (!thinking_blocks.is_empty()).then_some(reasoning),
                thinking_blocks: (!thinking_blocks.is_empty()).then_some(thinking_blocks),
            },
            logprobs: None,
            finish_reason: Some(finish_reason(message.stop_reason.as_deref()).into()),
        }],
        usage: Some(message.usage.to_usage()),
        system_fingerprint: None,
    })
}

/// A `tool_use` block as an OpenAI tool call.
fn tool_call(block: &Value) -> Result<ToolCall, TranslateError> {
    let field = |name: &str| {
        block
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| TranslateError::BadResponse(format!("a tool_use block has no {name}")))
    };
    let arguments = match block.get("input") {
        Some(input) if !input.is_null() => input.to_string(),
        _ => "{}".into(),
    };
    Ok(ToolCall {
        id: field("id")?,
        kind: "function".into(),
        function: FunctionCall {
            name: field("name")?,
            arguments,
        },
        extra: Map::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> ChatCompletion {
        parse_response(&serde_json::to_vec(&v).unwrap(), "alias", 7).unwrap()
    }

    #[test]
    fn text_blocks_concatenate() {
        let c = parse(json!({"id":"msg_1","type":"message","role":"assistant",
            "content":[{"type":"text","text":"Hello, "},{"type":"text","text":"world"}],
            "stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":2}}));
        let choice = &c.choices[0];
        assert_eq!(choice.message.content.as_deref(), Some("Hello, world"));
        assert_eq!(choice.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            (c.id.as_str(), c.model.as_str(), c.created),
            ("msg_1", "alias", 7)
        );
        let usage = c.usage.unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (3, 2, 5)
        );
        assert_eq!(usage.prompt_tokens_details.unwrap().cached_tokens, 0);
        assert_eq!(usage.cache_creation_input_tokens, None);
    }

    #[test]
    fn tool_use_only_has_null_content() {
        let c = parse(json!({"id":"msg_1","content":[
            {"type":"tool_use","id":"toolu_1","name":"f","input":{"a":[1,"é"]}}],
            "stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":1}}));
        let m = &c.choices[0].message;
        assert_eq!(m.content, None);
        let calls = m.tool_calls.as_ref().unwrap();
        assert_eq!(calls[0].function.arguments, r#"{"a":[1,"é"]}"#);
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn empty_answer_is_empty_text() {
        let c = parse(json!({"id":"msg_1","content":[],"stop_reason":"end_turn",
            "usage":{"input_tokens":1,"output_tokens":0}}));
        assert_eq!(c.choices[0].message.content.as_deref(), Some(""));
    }

    #[test]
    fn cache_usage() {
        let u = AnthropicUsage {
            input_tokens: Some(10),
            output_tokens: Some(5),
            cache_creation_input_tokens: Some(100),
            cache_read_input_tokens: Some(1000),
        }
        .to_usage();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (1110, 5, 1115)
        );
        assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, 1000);
        assert_eq!(u.cache_creation_input_tokens, Some(100));
        assert_eq!(u.cache_read_input_tokens, Some(1000));
    }

    #[test]
    fn usage_merge_keeps_what_the_delta_omits() {
        let mut u = AnthropicUsage {
            input_tokens: Some(10),
            output_tokens: Some(1),
            cache_creation_input_tokens: Some(0),
            cache_read_input_tokens: Some(4),
        };
        u.merge(&AnthropicUsage {
            output_tokens: Some(20),
            ..AnthropicUsage::default()
        });
        assert_eq!(u.input_tokens, Some(10));
        assert_eq!(u.output_tokens, Some(20));
        assert_eq!(u.cache_read_input_tokens, Some(4));
    }

    #[test]
    fn bad_bodies() {
        for body in [
            &b"not json"[..],
            b"{}",
            b"{\"id\":\"m\",\"content\":[{\"type\":\"tool_use\"}]}",
        ] {
            let e = parse_response(body, "m", 0).unwrap_err();
            assert_eq!(e.status(), 502, "{}", String::from_utf8_lossy(body));
        }
    }
}
