//! A `GenerateContentResponse` turned into a `chat.completion` (one choice per
//! candidate), the usage arithmetic shared with the stream translator, and embeddings
//! answers of both APIs.
//!
//! Text parts are concatenated into `content`; parts marked `thought` become
//! `reasoning_content`; `functionCall` parts become `tool_calls` (the `args` object
//! serialized as the `arguments` string, a part's `thoughtSignature` kept as
//! `extra_content.google.thought_signature` so it can be sent back).

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{bad_response, finish_reason};
use crate::types::{
    AssistantMessage, ChatCompletion, Choice, CompletionTokensDetails, Embedding,
    EmbeddingResponse, EmbeddingUsage, FunctionCall, PromptTokensDetails, ProviderError, ToolCall,
    Usage,
};

/// `usageMetadata`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    cached_content_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
    #[serde(default)]
    tool_use_prompt_token_count: u64,
}

impl UsageMetadata {
    /// OpenAI's usage: prompt tokens include cached and tool-use prompt tokens;
    /// completion tokens include thinking tokens (as OpenAI counts reasoning), which are
    /// also reported as `reasoning_tokens`; `cached_tokens` are the cached content's.
    pub(crate) fn to_usage(self) -> Usage {
        let prompt = self.prompt_token_count + self.tool_use_prompt_token_count;
        let completion = self.candidates_token_count + self.thoughts_token_count;
        Usage {
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: self.cached_content_token_count,
                audio_tokens: None,
            }),
            completion_tokens_details: (self.thoughts_token_count > 0).then(|| {
                CompletionTokensDetails {
                    reasoning_tokens: Some(self.thoughts_token_count),
                    ..CompletionTokensDetails::default()
                }
            }),
            ..Usage::new(prompt, completion)
        }
    }
}

/// The parts of a `GenerateContentResponse` we read (also one stream event).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateResponse {
    #[serde(default)]
    pub(crate) candidates: Vec<Candidate>,
    #[serde(default)]
    pub(crate) prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    pub(crate) usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    pub(crate) response_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Candidate {
    #[serde(default)]
    pub(crate) content: Option<Content>,
    #[serde(default)]
    pub(crate) finish_reason: Option<String>,
    #[serde(default)]
    pub(crate) index: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Content {
    #[serde(default)]
    pub(crate) parts: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PromptFeedback {
    #[serde(default)]
    pub(crate) block_reason: Option<String>,
}

impl GenerateResponse {
    /// A prompt Gemini refused to answer at all (`promptFeedback.blockReason`, no
    /// candidates): a 400 with code `content_filter`, as OpenAI-compatible clients know
    /// it from Azure's content filter.
    pub(crate) fn blocked(&self) -> Option<ProviderError> {
        if !self.candidates.is_empty() {
            return None;
        }
        let reason = self.prompt_feedback.as_ref()?.block_reason.as_deref()?;
        Some(
            ProviderError::new(
                400,
                "invalid_request_error",
                format!("gemini blocked the prompt (blockReason {reason})"),
            )
            .with_code("content_filter"),
        )
    }
}

/// One part, as the response and the stream read it.
pub(crate) enum Part {
    Text(String),
    Thought(String),
    Call {
        name: String,
        arguments: String,
        id: Option<String>,
        signature: Option<Value>,
    },
    Other,
}

pub(crate) fn read_part(part: &Value) -> Result<Part, ProviderError> {
    if let Some(call) = part.get("functionCall") {
        let name = call
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_response("a functionCall part has no name"))?;
        let arguments = match call.get("args") {
            Some(args) if !args.is_null() => args.to_string(),
            _ => "{}".into(),
        };
        return Ok(Part::Call {
            name: name.to_string(),
            arguments,
            id: call.get("id").and_then(Value::as_str).map(str::to_string),
            signature: part.get("thoughtSignature").cloned(),
        });
    }
    match part.get("text").and_then(Value::as_str) {
        Some(text) if part.get("thought").and_then(Value::as_bool) == Some(true) => {
            Ok(Part::Thought(text.to_string()))
        }
        Some(text) => Ok(Part::Text(text.to_string())),
        None => Ok(Part::Other),
    }
}

/// A tool call from a `functionCall` part; `fallback_id` when Gemini gave none.
pub(crate) fn tool_call(
    name: String,
    arguments: String,
    id: Option<String>,
    signature: Option<Value>,
    fallback_id: String,
) -> ToolCall {
    let mut extra = Map::new();
    if let Some(sig) = signature {
        extra.insert(
            "extra_content".into(),
            json!({ "google": { "thought_signature": sig } }),
        );
    }
    ToolCall {
        id: id.unwrap_or(fallback_id),
        kind: "function".into(),
        function: FunctionCall { name, arguments },
        extra,
    }
}

/// Turns a 2xx `generateContent` body into a `chat.completion` for `model`.
pub fn parse_response(
    body: &[u8],
    model: &str,
    created: u64,
) -> Result<ChatCompletion, ProviderError> {
    let resp: GenerateResponse = serde_json::from_slice(body)
        .map_err(|e| bad_response(format!("not a GenerateContentResponse: {e}")))?;
    if let Some(blocked) = resp.blocked() {
        return Err(blocked);
    }
    let id_part = resp
        .response_id
        .clone()
        .unwrap_or_else(|| format!("{created:x}"));
    let mut choices = Vec::with_capacity(resp.candidates.len());
    for (pos, candidate) in resp.candidates.iter().enumerate() {
        let index = candidate.index.unwrap_or(pos as u32);
        let mut text = String::new();
        let mut has_text = false;
        let mut reasoning = String::new();
        let mut calls = Vec::new();
        for part in candidate.content.iter().flat_map(|c| c.parts.iter()) {
            match read_part(part)? {
                Part::Text(t) => {
                    has_text = true;
                    text.push_str(&t);
                }
                Part::Thought(t) => reasoning.push_str(&t),
                Part::Call {
                    name,
                    arguments,
                    id,
                    signature,
                } => {
                    let fallback = format!("call_{id_part}_{index}_{}", calls.len());
                    calls.push(tool_call(name, arguments, id, signature, fallback));
                }
                Part::Other => {}
            }
        }
        let finish = finish_reason(candidate.finish_reason.as_deref(), !calls.is_empty());
        choices.push(Choice {
            index,
            message: AssistantMessage {
                role: "assistant".into(),
                content: (has_text || calls.is_empty()).then_some(text),
                refusal: None,
                tool_calls: (!calls.is_empty()).then_some(calls),
                reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                thinking_blocks: None,
            },
            logprobs: None,
            finish_reason: Some(finish.into()),
        });
    }
    if choices.is_empty() {
        return Err(bad_response("the answer has no candidates"));
    }
    Ok(ChatCompletion {
        id: format!("chatcmpl-{id_part}"),
        object: "chat.completion".into(),
        created,
        model: model.to_string(),
        choices,
        usage: Some(resp.usage_metadata.unwrap_or_default().to_usage()),
        system_fingerprint: None,
    })
}

fn list(vectors: Vec<Vec<f64>>, model: &str, prompt_tokens: u64) -> EmbeddingResponse {
    EmbeddingResponse {
        object: "list".into(),
        data: vectors
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
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    }
}

#[derive(Deserialize)]
struct BatchEmbedResponse {
    embeddings: Vec<ValuesObject>,
    #[serde(default, rename = "usageMetadata")]
    usage_metadata: Option<UsageMetadata>,
}

#[derive(Deserialize)]
struct ValuesObject {
    values: Vec<f64>,
    #[serde(default)]
    statistics: Option<Statistics>,
}

#[derive(Deserialize)]
struct Statistics {
    #[serde(default)]
    token_count: f64,
}

/// A `batchEmbedContents` answer (Gemini API). It reports no usage unless newer
/// versions add `usageMetadata`.
pub fn parse_batch_embed(body: &[u8], model: &str) -> Result<EmbeddingResponse, ProviderError> {
    let resp: BatchEmbedResponse = serde_json::from_slice(body)
        .map_err(|e| bad_response(format!("not a BatchEmbedContentsResponse: {e}")))?;
    let tokens = resp.usage_metadata.map_or(0, |u| u.prompt_token_count);
    let vectors = resp.embeddings.into_iter().map(|e| e.values).collect();
    Ok(list(vectors, model, tokens))
}

#[derive(Deserialize)]
struct PredictResponse {
    predictions: Vec<Prediction>,
}

#[derive(Deserialize)]
struct Prediction {
    embeddings: ValuesObject,
}

/// A `:predict` answer (Vertex AI text embeddings); usage is the sum of the
/// predictions' `statistics.token_count`.
pub fn parse_predict_embed(body: &[u8], model: &str) -> Result<EmbeddingResponse, ProviderError> {
    let resp: PredictResponse = serde_json::from_slice(body)
        .map_err(|e| bad_response(format!("not a predict answer with embeddings: {e}")))?;
    let tokens: f64 = resp
        .predictions
        .iter()
        .filter_map(|p| p.embeddings.statistics.as_ref())
        .map(|s| s.token_count)
        .sum();
    let vectors = resp
        .predictions
        .into_iter()
        .map(|p| p.embeddings.values)
        .collect();
    Ok(list(vectors, model, tokens as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_arithmetic() {
        let u = UsageMetadata {
            prompt_token_count: 100,
            candidates_token_count: 10,
            cached_content_token_count: 60,
            thoughts_token_count: 5,
            tool_use_prompt_token_count: 2,
        }
        .to_usage();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (102, 15, 117)
        );
        assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, 60);
        assert_eq!(
            u.completion_tokens_details.unwrap().reasoning_tokens,
            Some(5)
        );
        let u = UsageMetadata::default().to_usage();
        assert!(u.completion_tokens_details.is_none());
    }

    #[test]
    fn bad_bodies_are_502() {
        for body in [
            &b"nope"[..],
            b"{\"candidates\":[]}",
            b"{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{}}]}}]}",
        ] {
            let e = parse_response(body, "m", 0).unwrap_err();
            assert_eq!(e.status, 502, "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(parse_batch_embed(b"{}", "m").unwrap_err().status, 502);
    }
}
