//! A whole canonical answer (`chat.completion`) as an Anthropic `message`, and the
//! stop reason, usage and id mappings the stream ([`super::stream`]) shares. The answer
//! is read into fields borrowed from its bytes and the message is a typed value written
//! straight out: no JSON tree.

use std::borrow::Cow;

use liter_llm::types::Usage;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::GatewayError;

/// Anthropic's `stop_reason` for OpenAI's `finish_reason`. OpenAI does not say
/// whether a stop sequence ended the answer, so `stop` is always `end_turn`.
pub fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic's `usage`.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct AnthropicUsage {
    input_tokens: u64,
    output_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
}

/// Anthropic's `usage`: `input_tokens` without the cache reads and writes, which it
/// counts apart (OpenAI's `prompt_tokens` includes them).
pub fn usage(u: Option<&Usage>) -> AnthropicUsage {
    let u = u.copied().unwrap_or_default();
    let read = u
        .cache_read_input_tokens
        .or(u.prompt_tokens_details.map(|d| d.cached_tokens))
        .unwrap_or(0);
    let written = u.cache_creation_input_tokens.unwrap_or(0);
    AnthropicUsage {
        input_tokens: u.prompt_tokens.saturating_sub(read + written),
        output_tokens: u.completion_tokens,
        cache_creation_input_tokens: written,
        cache_read_input_tokens: read,
    }
}

/// Anthropic's message id for a canonical answer's id.
pub(super) fn message_id(id: &str) -> Cow<'_, str> {
    if id.starts_with("msg_") {
        Cow::Borrowed(id)
    } else {
        Cow::Owned(format!(
            "msg_{}",
            id.strip_prefix("chatcmpl-").unwrap_or(id)
        ))
    }
}

/// The fields of a canonical answer a `message` needs.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(borrow)]
    choices: Vec<AnswerChoice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct AnswerChoice<'a> {
    #[serde(borrow)]
    message: AnswerMessage<'a>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AnswerMessage<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<AnswerCall<'a>>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking_blocks: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct AnswerCall<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    function: AnswerFunction<'a>,
}

#[derive(Deserialize)]
struct AnswerFunction<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    arguments: Cow<'a, str>,
}

/// An Anthropic `message`.
#[derive(Serialize)]
struct Message<'a> {
    id: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<OutBlock<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<()>,
    usage: AnthropicUsage,
}

/// A content block of a `message`.
#[derive(Serialize)]
#[serde(untagged)]
enum OutBlock<'a> {
    /// A reasoning block passed on as the upstream gave it.
    Raw(&'a RawValue),
    Typed(Typed<'a>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Typed<'a> {
    Thinking {
        thinking: &'a str,
        signature: &'static str,
    },
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Input<'a>,
    },
}

/// A `tool_use` block's `input`.
#[derive(Serialize)]
#[serde(untagged)]
enum Input<'a> {
    /// The call's arguments, a JSON object.
    Object(&'a RawValue),
    /// `{}`.
    Empty(Empty),
}

/// Serializes as `{}`.
#[derive(Serialize)]
pub(super) struct Empty {}

/// A tool call's arguments as the `input` object (`{}` when they are not a JSON
/// object).
fn tool_input(arguments: &str) -> Input<'_> {
    match serde_json::from_str::<&RawValue>(arguments) {
        Ok(v) if v.get().starts_with('{') => Input::Object(v),
        _ => Input::Empty(Empty {}),
    }
}

/// A whole canonical answer (the pipeline's `chat.completion` bytes) as a `message`.
pub fn message(answer: &[u8]) -> Result<Vec<u8>, GatewayError> {
    let answer: Answer = serde_json::from_slice(answer)
        .map_err(|e| GatewayError::Internal(format!("unreadable canonical answer: {e}")))?;
    let choice = answer.choices.first();
    let mut content = Vec::new();
    if let Some(m) = choice.map(|c| &c.message) {
        match &m.thinking_blocks {
            Some(blocks) => content.extend(blocks.iter().map(|b| OutBlock::Raw(b))),
            None => {
                if let Some(r) = m.reasoning_content.as_deref().filter(|r| !r.is_empty()) {
                    content.push(OutBlock::Typed(Typed::Thinking {
                        thinking: r,
                        signature: "",
                    }));
                }
            }
        }
        if let Some(text) = m.content.as_deref().filter(|t| !t.is_empty()) {
            content.push(OutBlock::Typed(Typed::Text { text }));
        }
        for call in m.tool_calls.iter().flatten() {
            content.push(OutBlock::Typed(Typed::ToolUse {
                id: &call.id,
                name: &call.function.name,
                input: tool_input(&call.function.arguments),
            }));
        }
    }
    let finish = choice.and_then(|c| c.finish_reason.as_deref());
    let out = Message {
        id: message_id(&answer.id),
        kind: "message",
        role: "assistant",
        model: &answer.model,
        content,
        stop_reason: Some(stop_reason(finish)),
        stop_sequence: None,
        usage: usage(answer.usage.as_ref()),
    };
    serde_json::to_vec(&out)
        .map_err(|e| GatewayError::Internal(format!("cannot encode the answer: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn a_whole_answer_becomes_a_message() {
        let answer = json!({
            "id": "chatcmpl-9", "object": "chat.completion", "created": 0, "model": "gpt",
            "choices": [{"index": 0, "finish_reason": "length", "logprobs": null,
                "message": {"role": "assistant", "content": "text", "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"x\":2}"}}]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        });
        let m: Value =
            serde_json::from_slice(&message(answer.to_string().as_bytes()).unwrap()).unwrap();
        assert_eq!(m["id"], "msg_9");
        assert_eq!(m["stop_reason"], "max_tokens");
        assert_eq!(m["content"][0], json!({"type": "text", "text": "text"}));
        assert_eq!(m["content"][1]["input"], json!({"x": 2}));
        assert_eq!(m["usage"]["input_tokens"], 5);
        for (finish, stop) in [
            ("stop", "end_turn"),
            ("tool_calls", "tool_use"),
            ("content_filter", "refusal"),
        ] {
            assert_eq!(stop_reason(Some(finish)), stop);
        }
    }

    #[test]
    fn thinking_blocks_and_arguments_pass_as_the_upstream_wrote_them() {
        let answer = json!({
            "id": "msg_7", "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls",
                "message": {"role": "assistant", "content": "say \"hi\"",
                    "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "s"},
                                        {"type": "redacted_thinking", "data": "d"}],
                    "reasoning_content": "ignored: the blocks win",
                    "tool_calls": [
                        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"k\": [1, 2]}"}},
                        {"id": "b", "type": "function", "function": {"name": "g", "arguments": "[1]"}},
                        {"id": "c", "type": "function", "function": {"name": "h", "arguments": "not json"}}]}}]
        });
        let m: Value =
            serde_json::from_slice(&message(answer.to_string().as_bytes()).unwrap()).unwrap();
        assert_eq!(m["id"], "msg_7");
        assert_eq!(
            m["content"],
            json!([
                {"type": "thinking", "thinking": "t", "signature": "s"},
                {"type": "redacted_thinking", "data": "d"},
                {"type": "text", "text": "say \"hi\""},
                {"type": "tool_use", "id": "a", "name": "f", "input": {"k": [1, 2]}},
                {"type": "tool_use", "id": "b", "name": "g", "input": {}},
                {"type": "tool_use", "id": "c", "name": "h", "input": {}}
            ])
        );
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(m["stop_sequence"], Value::Null);
        assert_eq!(
            m["usage"],
            json!({"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
        );
        let reasoning = json!({"id": "x", "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": null, "reasoning_content": "hm"}}]});
        let m: Value =
            serde_json::from_slice(&message(reasoning.to_string().as_bytes()).unwrap()).unwrap();
        assert_eq!(
            m["content"],
            json!([{"type": "thinking", "thinking": "hm", "signature": ""}])
        );
        assert!(message(b"{\"id\":1}").is_err());
    }
}
