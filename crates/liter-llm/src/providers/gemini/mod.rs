//! Google's Gemini models: the Gemini API (Google AI Studio, `gemini/`, API key) and
//! Vertex AI (`vertex_ai/`, service-account credentials), which share one wire format
//! (`generateContent`), plus Anthropic's models on Vertex AI (`vertex_ai/claude-…`),
//! which speak Anthropic's Messages format through [`super::anthropic`]. Pure
//! translation: the gateway's dispatcher sends the requests and runs the token exchange
//! ([`auth`]).
//!
//! # Endpoints
//!
//! | operation  | Gemini API (`{base}/v1beta/models/{model}`) | Vertex AI (`{base}/v1/projects/{p}/locations/{l}/publishers/{google,anthropic}/models/{model}`) |
//! |------------|----------------------------------------------|------------------------------------------------|
//! | chat       | `:generateContent`                          | `:generateContent`; Claude: `:rawPredict`      |
//! | stream     | `:streamGenerateContent?alt=sse`            | `:streamGenerateContent?alt=sse`; Claude: `:streamRawPredict` |
//! | embeddings | `:batchEmbedContents`                       | `:predict` (`instances`/`predictions`)         |
//!
//! The Gemini API key goes in `x-goog-api-key`; Vertex AI takes
//! `Authorization: Bearer <access token>`.
//!
//! # Decisions
//!
//! - **System prompt**: `system` and `developer` messages, in order, become
//!   `systemInstruction.parts`.
//! - **Turns**: `assistant` is role `model`; consecutive messages of one role are merged;
//!   `tool` messages become `functionResponse` parts of a `user` turn, named after the
//!   call they answer (looked up by `tool_call_id` in the earlier assistant turns); a
//!   result that is a JSON object is sent as `response`, anything else as
//!   `{"content": text}`.
//! - **Parameters**: `temperature`, `top_p` → `topP`, `max_completion_tokens` (else
//!   `max_tokens`) → `maxOutputTokens`, `stop` → `stopSequences`, `n` →
//!   `candidateCount` (each candidate is a choice), `presence_penalty`,
//!   `frequency_penalty`, `seed` and `top_k` → `generationConfig`. A client's own
//!   `generationConfig` (e.g. `thinkingConfig`) is merged under the mapped values; other
//!   unknown fields (`safetySettings`, `cachedContent`, `labels`, ...) are forwarded.
//!   `user` is ignored. [`request::DROPPED_PARAMS`] are answered 400, or dropped with
//!   `drop_params`. `reasoning_effort` becomes `thinkingConfig` per [`ThinkingControl`]
//!   (Gemini 2.5: `thinkingBudget` from the deployment's budgets, Gemini 3:
//!   `thinkingLevel`); a client's own `thinkingConfig` wins. `parallel_tool_calls:
//!   false` keeps only the first function call of the answer (Gemini has no switch for
//!   it), and the answer says so in `x-liter-llm-parallel-tool-calls: first-call-only`.
//! - **Tools**: function tools become one `functionDeclarations` tool (the schema as
//!   `parametersJsonSchema`); `tool_choice` auto/none/required → `AUTO`/`NONE`/`ANY`,
//!   a named function → `ANY` with `allowedFunctionNames`. Calls come back with Gemini's
//!   `id` when it sends one, else `call_<response id>_<choice>_<n>`; a part's
//!   `thoughtSignature` rides along as `extra_content.google.thought_signature` (as
//!   Google's own OpenAI layer does) and is sent back with the call.
//! - **Images and files**: base64 `data:` URLs become `inlineData`; http(s) and `gs://`
//!   URLs become `fileData {mimeType (from the extension), fileUri}`: Gemini fetches
//!   them itself (Files API and `gs://` URIs; public URLs where Google supports them)
//!   and answers 400 when it cannot, which the client receives. `input_audio` becomes
//!   `inlineData` `audio/<format>`.
//! - **`response_format`**: `json_object` → `responseMimeType: application/json`;
//!   `json_schema` → that plus `responseJsonSchema` (full JSON Schema).
//! - **Finish reasons**: `STOP` → `stop` (`tool_calls` when the candidate called a
//!   function), `MAX_TOKENS` → `length`, `SAFETY`, `RECITATION`, `BLOCKLIST`,
//!   `PROHIBITED_CONTENT`, `SPII`, `IMAGE_SAFETY` → `content_filter`, anything else →
//!   `stop`. A prompt blocked outright (`promptFeedback.blockReason`, no candidates) is
//!   a 400 with code `content_filter`.
//! - **Usage**: `prompt_tokens` = `promptTokenCount` (+ `toolUsePromptTokenCount`),
//!   `completion_tokens` = `candidatesTokenCount` + `thoughtsTokenCount`
//!   (`reasoning_tokens`), `cached_tokens` = `cachedContentTokenCount`.
//! - **Embeddings**: `input` must be text (a string or strings); `dimensions` →
//!   `outputDimensionality`, an extra `task_type` → `taskType`. Vectors come back as
//!   floats whatever `encoding_format` says (the adapter parses the answer without the
//!   request; OpenAI's SDKs accept floats).

mod adapter;
pub mod auth;
mod embed;
mod error;
mod request;
mod response;
mod stream;
mod thinking;

pub use adapter::{GeminiAdapter, VertexAdapter};
pub use embed::{build_batch_embed, build_predict_embed};
pub use error::parse_error;
pub use request::{build_chat, build_generate, ChatOptions, DROPPED_PARAMS};
pub use response::{parse_batch_embed, parse_predict_embed, parse_response};
pub use stream::StreamTranslator;
pub use thinking::ThinkingControl;

use crate::types::ProviderError;

/// The `provider_model` prefix of the Gemini API.
pub const PREFIX: &str = "gemini";
/// The `provider_model` prefix of Vertex AI.
pub const VERTEX_PREFIX: &str = "vertex_ai";
/// The Gemini API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";
/// The header that carries the Gemini API key.
pub const API_KEY_HEADER: &str = "x-goog-api-key";
/// Environment variables holding the Gemini API key, first found wins.
pub const KEY_ENV: &[&str] = &["GEMINI_API_KEY", "GOOGLE_API_KEY"];
/// Environment variables that override the Gemini API base URL.
pub const BASE_URL_ENV: &[&str] = &["GEMINI_API_BASE"];
/// Vertex AI: environment defaults of `vertex_project`, `vertex_location` and
/// `vertex_credentials` (LiteLLM's names, and Google's standard key-file variable).
pub const VERTEX_PROJECT_ENV: &str = "VERTEXAI_PROJECT";
pub const VERTEX_LOCATION_ENV: &str = "VERTEXAI_LOCATION";
pub const CREDENTIALS_ENV: &str = "GOOGLE_APPLICATION_CREDENTIALS";
/// `vertex_location` when none is configured.
pub const DEFAULT_LOCATION: &str = "us-central1";
/// The `anthropic_version` Vertex AI wants in Claude request bodies.
pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Vertex AI's base URL for a location (`global` has no regional host).
pub fn vertex_base_url(location: &str) -> String {
    if location == "global" {
        "https://aiplatform.googleapis.com".into()
    } else {
        format!("https://{location}-aiplatform.googleapis.com")
    }
}

/// Fills unset Vertex settings from the environment (`VERTEXAI_PROJECT`,
/// `VERTEXAI_LOCATION`, `GOOGLE_APPLICATION_CREDENTIALS`).
pub fn vertex_settings_from_env(
    settings: &mut crate::providers::adapter::ProviderSettings,
    env: &dyn Fn(&str) -> Option<String>,
) {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    if settings.vertex_project.is_none() {
        settings.vertex_project = get(VERTEX_PROJECT_ENV);
    }
    if settings.vertex_location.is_none() {
        settings.vertex_location = get(VERTEX_LOCATION_ENV);
    }
    if settings.vertex_credentials.is_none() {
        settings.vertex_credentials = get(CREDENTIALS_ENV);
    }
}

/// OpenAI's `finish_reason` for a Gemini `finishReason`; `called` says whether the
/// candidate called a function.
pub(crate) fn finish_reason(reason: Option<&str>, called: bool) -> &'static str {
    match reason {
        Some("MAX_TOKENS") => "length",
        Some(
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY",
        ) => "content_filter",
        _ if called => "tool_calls",
        // STOP, OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL and anything newer.
        _ => "stop",
    }
}

/// A 400 naming the parameter Gemini cannot take.
pub(crate) use crate::providers::convert::invalid;

/// A 502 for an answer we cannot read.
pub(crate) fn bad_response(message: impl Into<String>) -> ProviderError {
    ProviderError::new(
        502,
        "api_error",
        format!("unreadable answer from gemini: {}", message.into()),
    )
    .with_code("bad_upstream_response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons() {
        for (reason, called, out) in [
            (Some("STOP"), false, "stop"),
            (Some("STOP"), true, "tool_calls"),
            (Some("MAX_TOKENS"), true, "length"),
            (Some("SAFETY"), false, "content_filter"),
            (Some("RECITATION"), false, "content_filter"),
            (Some("PROHIBITED_CONTENT"), false, "content_filter"),
            (Some("MALFORMED_FUNCTION_CALL"), false, "stop"),
            (None, false, "stop"),
        ] {
            assert_eq!(finish_reason(reason, called), out, "{reason:?}");
        }
    }

    #[test]
    fn vertex_hosts_and_env() {
        assert_eq!(
            vertex_base_url("europe-west4"),
            "https://europe-west4-aiplatform.googleapis.com"
        );
        assert_eq!(
            vertex_base_url("global"),
            "https://aiplatform.googleapis.com"
        );
        let mut s = crate::providers::adapter::ProviderSettings {
            vertex_project: Some("mine".into()),
            ..Default::default()
        };
        vertex_settings_from_env(&mut s, &|k| Some(format!("env-{k}")));
        assert_eq!(s.vertex_project.as_deref(), Some("mine"));
        assert_eq!(s.vertex_location.as_deref(), Some("env-VERTEXAI_LOCATION"));
        assert_eq!(
            s.vertex_credentials.as_deref(),
            Some("env-GOOGLE_APPLICATION_CREDENTIALS")
        );
    }
}
