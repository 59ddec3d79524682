//! Cohere's chat and embed answers turned into OpenAI's `chat.completion` and embeddings
//! list.
//!
//! Chat: the `text` items of `message.content` are concatenated into `content`,
//! `thinking` items into `reasoning_content` (with the `tool_plan`, which is the model's
//! plan before a tool call); `message.tool_calls` are already OpenAI-shaped.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{finish_reason, CohereUsage};
use crate::types::{
    AssistantMessage, ChatCompletion, Choice, Embedding, EmbeddingResponse, EmbeddingUsage,
    FunctionCall, ProviderError, ToolCall,
};

/// A 502 for an answer that is not what Cohere's reference describes.
pub(crate) fn bad_response(message: impl std::fmt::Display) -> ProviderError {
    ProviderError::new(
        502,
        "api_error",
        format!("unreadable answer from cohere: {message}"),
    )
    .with_code("bad_upstream_response")
}

#[derive(Deserialize)]
struct ChatResponse {
    id: String,
    #[serde(default)]
    finish_reason: Option<String>,
    message: ResponseMessage,
    #[serde(default)]
    usage: CohereUsage,
}

#[derive(Deserialize)]
struct ResponseMessage {
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    tool_calls: Vec<CohereToolCall>,
    #[serde(default)]
    tool_plan: Option<String>,
}

/// A Cohere tool call (`{id, type, function: {name, arguments}}`).
#[derive(Deserialize)]
pub(crate) struct CohereToolCall {
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) function: Option<CohereFunction>,
}

#[derive(Deserialize)]
pub(crate) struct CohereFunction {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) arguments: Option<String>,
}

/// A 2xx Chat v2 body as a `chat.completion` for `model`, created at `created`.
pub fn parse_chat(body: &[u8], model: &str, created: u64) -> Result<ChatCompletion, ProviderError> {
    let answer: ChatResponse = serde_json::from_slice(body)
        .map_err(|e| bad_response(format!("not a chat response: {e}")))?;
    let finish = finish_reason(answer.finish_reason.as_deref())?;

    let mut text = String::new();
    let mut has_text = false;
    let mut reasoning = answer.message.tool_plan.clone().unwrap_or_default();
    for item in &answer.message.content {
        match item.get("type").and_then(Value::as_str) {
            Some("text") => {
                has_text = true;
                text.push_str(item.get("text").and_then(Value::as_str).unwrap_or(""));
            }
            Some("thinking") => {
                reasoning.push_str(item.get("thinking").and_then(Value::as_str).unwrap_or(""));
            }
            _ => {}
        }
    }
    let tool_calls = answer
        .message
        .tool_calls
        .into_iter()
        .map(|c| {
            let f = c
                .function
                .ok_or_else(|| bad_response("a tool call has no function"))?;
            Ok(ToolCall {
                id: c.id.ok_or_else(|| bad_response("a tool call has no id"))?,
                kind: "function".into(),
                function: FunctionCall {
                    name: f
                        .name
                        .ok_or_else(|| bad_response("a tool call has no name"))?,
                    arguments: f
                        .arguments
                        .filter(|a| !a.is_empty())
                        .unwrap_or_else(|| "{}".into()),
                },
                extra: Map::new(),
            })
        })
        .collect::<Result<Vec<_>, ProviderError>>()?;

    let content = (has_text || tool_calls.is_empty()).then_some(text);
    Ok(ChatCompletion {
        id: answer.id,
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
                reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                thinking_blocks: None,
            },
            logprobs: None,
            finish_reason: Some(finish.into()),
        }],
        usage: Some(answer.usage.to_usage()),
        system_fingerprint: None,
    })
}

#[derive(Deserialize)]
struct EmbedResponse {
    embeddings: EmbedByType,
    #[serde(default)]
    meta: Option<EmbedMeta>,
}

#[derive(Deserialize)]
struct EmbedByType {
    float: Vec<Vec<f64>>,
}

#[derive(Deserialize)]
struct EmbedMeta {
    #[serde(default)]
    billed_units: Option<super::Units>,
}

/// A 2xx Embed v2 body (`embedding_types: ["float"]`) as OpenAI's embeddings list.
pub fn parse_embed(body: &[u8], model: &str) -> Result<EmbeddingResponse, ProviderError> {
    let answer: EmbedResponse = serde_json::from_slice(body)
        .map_err(|e| bad_response(format!("not an embed response with float embeddings: {e}")))?;
    let tokens = answer
        .meta
        .and_then(|m| m.billed_units)
        .and_then(|u| u.input_tokens)
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map_or(0, |n| n.round() as u64);
    Ok(EmbeddingResponse {
        object: "list".into(),
        data: answer
            .embeddings
            .float
            .into_iter()
            .enumerate()
            .map(|(i, v)| Embedding {
                object: "embedding".into(),
                index: i as u32,
                embedding: Value::from(v),
            })
            .collect(),
        model: model.to_string(),
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<ChatCompletion, ProviderError> {
        parse_chat(&serde_json::to_vec(&v).unwrap(), "alias", 3)
    }

    #[test]
    fn tool_calls_and_plan() {
        let c = parse(
            json!({"id": "x", "finish_reason": "TOOL_CALL", "message": {"role": "assistant",
            "tool_plan": "I will look it up.",
            "tool_calls": [{"id": "get_weather_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            "usage": {"billed_units": {"input_tokens": 3, "output_tokens": 4}}}),
        )
        .unwrap();
        let m = &c.choices[0].message;
        assert_eq!(m.content, None);
        assert_eq!(m.reasoning_content.as_deref(), Some("I will look it up."));
        let call = &m.tool_calls.as_ref().unwrap()[0];
        assert_eq!(
            (call.id.as_str(), call.function.name.as_str()),
            ("get_weather_1", "get_weather")
        );
        assert_eq!(call.function.arguments, r#"{"city":"Paris"}"#);
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn errors_and_bad_bodies() {
        let e = parse(json!({"id": "x", "finish_reason": "ERROR", "message": {"content": []}}))
            .unwrap_err();
        assert_eq!(e.status, 502);
        for body in [
            json!({}),
            json!({"id": "x", "message": {"tool_calls": [{"type": "function"}]}}),
        ] {
            assert_eq!(parse(body).unwrap_err().status, 502);
        }
        assert_eq!(
            parse_embed(b"{\"embeddings\":{}}", "m").unwrap_err().status,
            502
        );
    }
}
