//! Cohere's Chat v2 (`POST /v2/chat`) and Embed v2 (`POST /v2/embed`) APIs: pure
//! translation between the canonical OpenAI-shaped types and Cohere's wire format. No I/O:
//! the gateway's dispatcher sends what [`CohereAdapter`] builds (the key as
//! `Authorization: Bearer`), owns timeouts and retries.
//!
//! # Chat request
//!
//! | OpenAI                                   | Cohere                                          |
//! |------------------------------------------|-------------------------------------------------|
//! | `system` / `developer` messages          | `system` messages, in place (text only)         |
//! | `user` content (string, text and `image_url` parts, https or base64 data URL) | the same shape |
//! | `assistant` `content`, `tool_calls`      | `content`, `tool_calls` (same shape); `tool_plan` kept when the client sends it back |
//! | `tool` messages (`tool_call_id`)         | `tool` messages (`tool_call_id`, content)       |
//! | `max_completion_tokens`, else `max_tokens` | `max_tokens`                                  |
//! | `temperature`, `top_p`, `top_k`          | `temperature`, `p`, `k`                         |
//! | `stop`                                   | `stop_sequences`                                |
//! | `seed`, `frequency_penalty`, `presence_penalty` | the same                                 |
//! | `tools` (functions), `strict: true`      | `tools` (same shape), `strict_tools: true`      |
//! | `tool_choice` `auto` / `required` / `none` | omitted / `REQUIRED` / `NONE`                 |
//! | `tool_choice` naming one function        | `tools` narrowed to that function, `REQUIRED`   |
//! | `response_format` `json_object` / `json_schema` | `{type: json_object}` / `{type: json_object, json_schema}` |
//! | `stream`                                 | `stream`                                        |
//!
//! # Decisions
//!
//! - **`n` > 1** is rejected (400 naming `n`): Cohere generates one answer per request;
//!   a model with `fan_out_n` is sent n requests instead.
//! - **`parallel_tool_calls: false`** keeps only the first tool call of the answer
//!   (Cohere has no switch for it), and the answer says so in
//!   `x-liter-llm-parallel-tool-calls: first-call-only`.
//! - **OpenAI-only parameters** and Anthropic-only controls ([`DROPPED_PARAMS`]) are
//!   answered 400 naming the parameter, or left out when `drop_params` is on. `user`
//!   is informational and left out silently. Parameters we do not model
//!   (`safety_mode`, `documents`, `citation_options`, `thinking`, ...) are forwarded.
//! - **Finish reasons**: `COMPLETE`, `STOP_SEQUENCE` → `stop`; `MAX_TOKENS` → `length`;
//!   `TOOL_CALL` → `tool_calls`; `ERROR` → a 502 error and `TIMEOUT` a 504 (an answer
//!   Cohere itself says failed is not passed off as a finished one).
//! - **Usage**: `billed_units` (what Cohere charges), else `tokens`; `cached_tokens` →
//!   `prompt_tokens_details.cached_tokens`.
//! - **Ids and model**: a chat answer keeps Cohere's `id`; `model` is the name the client
//!   asked for. Streams use the gateway's id. A `tool_plan` comes back as
//!   `reasoning_content` (it is the model's plan before calling tools).
//!
//! # Embeddings
//!
//! `input` (a string or strings; token arrays are rejected) → `texts`; `input_type`
//! defaults to [`DEFAULT_INPUT_TYPE`] and may be set by the client (an extra field);
//! `dimensions` → `output_dimension`; `truncate` is forwarded; `embedding_types` is always
//! `["float"]`. The answer is OpenAI's list with `usage.prompt_tokens` from
//! `meta.billed_units.input_tokens`; `encoding_format: "base64"` is applied by the gateway
//! ([`crate::providers::embeddings`]).

mod adapter;
mod error;
mod request;
mod response;
mod stream;

use serde::Deserialize;

pub use adapter::CohereAdapter;
pub use error::parse_error;
pub use request::{build_chat, build_embed, DROPPED_PARAMS};
pub use response::{parse_chat, parse_embed};
pub use stream::StreamTranslator;

use crate::types::{PromptTokensDetails, ProviderError, Usage};

/// The `provider_model` prefix.
pub const PREFIX: &str = "cohere";
/// Cohere's API base URL; [`CHAT_PATH`] and [`EMBED_PATH`] are appended to it.
pub const DEFAULT_BASE_URL: &str = "https://api.cohere.com";
pub const CHAT_PATH: &str = "/v2/chat";
pub const EMBED_PATH: &str = "/v2/embed";
/// Environment variables holding the API key (LiteLLM's, then Cohere's SDK's).
pub const KEY_ENV: &[&str] = &["COHERE_API_KEY", "CO_API_KEY"];
/// Environment variables that override the base URL.
pub const BASE_URL_ENV: &[&str] = &["COHERE_API_BASE", "CO_API_URL"];
/// The embed `input_type` when the request names none (Embed v3 and later require one).
pub const DEFAULT_INPUT_TYPE: &str = "search_document";

/// OpenAI's `finish_reason` for a Cohere one, or the error a failed generation is.
pub(crate) fn finish_reason(reason: Option<&str>) -> Result<&'static str, ProviderError> {
    match reason {
        Some("MAX_TOKENS") => Ok("length"),
        Some("TOOL_CALL") => Ok("tool_calls"),
        Some("ERROR") => Err(ProviderError::new(
            502,
            "api_error",
            "cohere stopped the generation with an error (finish_reason ERROR)",
        )
        .with_code("generation_error")),
        Some("TIMEOUT") => Err(ProviderError::new(
            504,
            "timeout_error",
            "cohere stopped the generation on a timeout (finish_reason TIMEOUT)",
        )
        .with_code("timeout")),
        // COMPLETE, STOP_SEQUENCE, and anything newer.
        _ => Ok("stop"),
    }
}

/// A Cohere token count pair (`billed_units` or `tokens`). Counts may come as floats.
#[derive(Debug, Default, Clone, Copy, PartialEq, Deserialize)]
pub(crate) struct Units {
    #[serde(default)]
    pub(crate) input_tokens: Option<f64>,
    #[serde(default)]
    pub(crate) output_tokens: Option<f64>,
}

/// Cohere's `usage`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Deserialize)]
pub(crate) struct CohereUsage {
    #[serde(default)]
    pub(crate) billed_units: Option<Units>,
    #[serde(default)]
    pub(crate) tokens: Option<Units>,
    #[serde(default)]
    pub(crate) cached_tokens: Option<f64>,
}

fn count(v: Option<f64>) -> Option<u64> {
    v.filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| n.round() as u64)
}

impl CohereUsage {
    /// OpenAI's usage: billed units, else model tokens; cached tokens in the details.
    pub(crate) fn to_usage(self) -> Usage {
        let billed = self.billed_units.unwrap_or_default();
        let tokens = self.tokens.unwrap_or_default();
        let prompt = count(billed.input_tokens)
            .or(count(tokens.input_tokens))
            .unwrap_or(0);
        let completion = count(billed.output_tokens)
            .or(count(tokens.output_tokens))
            .unwrap_or(0);
        Usage {
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: count(self.cached_tokens).unwrap_or(0),
                audio_tokens: None,
            }),
            ..Usage::new(prompt, completion)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons() {
        for (reason, out) in [
            (Some("COMPLETE"), "stop"),
            (Some("STOP_SEQUENCE"), "stop"),
            (Some("MAX_TOKENS"), "length"),
            (Some("TOOL_CALL"), "tool_calls"),
            (None, "stop"),
        ] {
            assert_eq!(finish_reason(reason).unwrap(), out, "{reason:?}");
        }
        assert_eq!(finish_reason(Some("ERROR")).unwrap_err().status, 502);
        assert_eq!(finish_reason(Some("TIMEOUT")).unwrap_err().status, 504);
    }

    #[test]
    fn usage_prefers_billed_units() {
        let u: CohereUsage = serde_json::from_value(serde_json::json!({
            "billed_units": {"input_tokens": 5, "output_tokens": 7.0},
            "tokens": {"input_tokens": 70, "output_tokens": 7},
            "cached_tokens": 2
        }))
        .unwrap();
        let u = u.to_usage();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (5, 7, 12)
        );
        assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, 2);
        let u: CohereUsage = serde_json::from_value(serde_json::json!({
            "tokens": {"input_tokens": 70, "output_tokens": 3}
        }))
        .unwrap();
        let u = u.to_usage();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (70, 3));
    }
}
