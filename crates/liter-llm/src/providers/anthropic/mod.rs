//! The Anthropic Messages API (`POST /v1/messages`): pure translation between the
//! canonical OpenAI-shaped types and Anthropic's wire format. No I/O: the gateway's
//! dispatcher owns HTTP, the API key (`x-api-key`), timeouts and retries.
//!
//! # API
//!
//! ```text
//! build_request(&ChatCompletionRequest, model_id, &AnthropicOptions)
//!     -> Result<AnthropicRequest { path, headers, body, stream }, TranslateError>
//! parse_response(body, model, created) -> Result<ChatCompletion, TranslateError>
//! parse_error(status, &HeaderMap, body) -> ProviderError        // OpenAI-shaped
//! StreamTranslator::new(id, model, created, include_usage)
//!     .feed(bytes) -> Vec<StreamOut>    // any byte boundaries
//!     .finish()    -> Vec<StreamOut>    // at end of body
//!     .usage()     -> Option<Usage>     // for accounting, whatever include_usage says
//! StreamOut = Chunk(ChatCompletionChunk) | Error(ProviderError) | Done
//! ```
//!
//! The dispatcher sends `AnthropicRequest` to `base_url + path` (base URL
//! [`DEFAULT_BASE_URL`], without `/v1`) with the key in [`API_KEY_HEADER`]; a 2xx body
//! goes to [`parse_response`] or, when `stream` is set, to a [`StreamTranslator`] (which
//! emits `Done` where the gateway writes `data: [DONE]`); any other status goes to
//! [`parse_error`]. A [`TranslateError`] converts into a
//! [`ProviderError`](crate::types::ProviderError) (400 for a request Anthropic cannot
//! express, 502 for an answer we cannot read).
//!
//! Other mappings: `stop` → `stop_sequences`, `user` → `metadata.user_id`, `tools` →
//! `{name, description, input_schema}`, `tool_choice` auto/required/none/function →
//! auto/any/none/tool, `parallel_tool_calls: false` → `disable_parallel_tool_use`.
//!
//! # Decisions
//!
//! - **System prompt**: every `system` (and `developer`) message, in order, goes to the
//!   top-level `system`: a string when they are all plain strings (joined by a blank
//!   line), else an array of text blocks (so `cache_control` survives).
//! - **Turns**: consecutive messages of one role are merged into one turn, so turns
//!   alternate as Anthropic requires; `tool` messages become `tool_result` blocks of a
//!   user turn. A turn that is one plain text block is sent as a string.
//! - **`max_tokens`** is required by Anthropic: `max_completion_tokens`, else
//!   `max_tokens`, else [`DEFAULT_MAX_TOKENS`]. When thinking is on, Anthropic wants
//!   `max_tokens` above `budget_tokens`: a limit at or below the budget becomes budget
//!   plus the limit (no limit: budget plus the default).
//! - **`reasoning_effort`** becomes `thinking: {type: enabled, budget_tokens}` with the
//!   deployment's budget for the level ([`ReasoningBudgets`]); `none` sends no
//!   `thinking`. A `thinking` the client sent in Anthropic's form wins over it.
//! - **`n` > 1** is rejected (400) unless the model sets `fan_out_n`: then the gateway
//!   sends n requests with `n` left out.
//! - **`response_format`**: `json_schema` becomes Anthropic's structured output
//!   (`output_config.format = {type: json_schema, schema}`): the answer comes back as
//!   text, so responses and streams need no rewriting, and it works together with tools
//!   and thinking (a forced tool would not). It needs a model that supports structured
//!   outputs; older models answer 400. `json_object` has no schema to give: it is served
//!   by a forced tool ([`JSON_TOOL`](crate::providers::reshape::JSON_TOOL), input schema
//!   `{type: object}`) whose input becomes the answer's content (see
//!   [`Reshape`](crate::providers::reshape::Reshape)); it cannot be combined with
//!   `tools` or thinking (400). `text` is a no-op.
//! - **Pass-through**: `cache_control` on content parts, messages (applied to the
//!   message's last block) and tools is copied unchanged; `thinking`, `top_k` and other
//!   parameters we do not model are forwarded as they are. Parts whose `type` is not an
//!   OpenAI one (e.g. Anthropic's own `document`) are forwarded as blocks unchanged.
//!   OpenAI-only parameters with no Anthropic meaning ([`DROPPED_PARAMS`]) are
//!   answered 400 naming the parameter, or dropped when `drop_params` is on.
//! - **Reasoning**: thinking blocks come back as `reasoning_content` (the text) and
//!   `thinking_blocks` (the blocks with their signatures), as LiteLLM exposes them; an
//!   assistant message's `thinking_blocks` are sent back ahead of its content.
//! - **Ids and model**: a response keeps Anthropic's `msg_…` id; `model` is the one the
//!   caller passes (the name the client asked for). Streams use the id given to
//!   [`StreamTranslator::new`].

mod adapter;
mod error;
mod messages;
mod request;
mod response;
mod stream;

use http::HeaderValue;

use crate::providers::reasoning::ReasoningBudgets;

pub use super::adapter::StreamOut;
pub use adapter::AnthropicAdapter;
pub use error::{parse_error, TranslateError};
pub use request::{build_request, AnthropicRequest, DROPPED_PARAMS};
pub use response::{parse_response, AnthropicUsage};
pub use stream::StreamTranslator;

/// The `provider_model` prefix.
pub const PREFIX: &str = "anthropic";
/// Anthropic's API base URL; [`MESSAGES_PATH`] is appended to it.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The path of the Messages API, relative to the base URL.
pub const MESSAGES_PATH: &str = "/v1/messages";
/// The header that carries the API key (added by the dispatcher, never by this module).
pub const API_KEY_HEADER: &str = "x-api-key";
/// Environment variables holding the API key, first found wins.
pub const KEY_ENV: &[&str] = &["ANTHROPIC_API_KEY"];
/// Environment variables that override the base URL.
pub const BASE_URL_ENV: &[&str] = &["ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"];
/// The `anthropic-version` sent unless configured otherwise.
pub const API_VERSION: &str = "2023-06-01";
/// `max_tokens` when the request names none.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Per-deployment settings of the translation. Header values are checked when the
/// options are built (at config load), so building a request cannot fail on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnthropicOptions {
    /// The `anthropic-version` header.
    pub version: HeaderValue,
    /// The `anthropic-beta` header (comma-separated feature names), if any.
    pub beta: Option<HeaderValue>,
    /// `max_tokens` when the request names none.
    pub default_max_tokens: u64,
    /// Drop [`DROPPED_PARAMS`] instead of answering 400 (LiteLLM's `drop_params`).
    pub drop_params: bool,
    /// For clouds that host Anthropic's models (Vertex AI: `vertex-2023-10-16`): the
    /// version goes in the body as `anthropic_version`, the model is in the URL, so the
    /// body has no `model` and no `anthropic-version` header is sent.
    pub body_version: Option<&'static str>,
    /// Thinking budgets per `reasoning_effort` level.
    pub reasoning_budgets: ReasoningBudgets,
}

impl Default for AnthropicOptions {
    fn default() -> Self {
        Self {
            version: HeaderValue::from_static(API_VERSION),
            beta: None,
            default_max_tokens: DEFAULT_MAX_TOKENS,
            drop_params: false,
            body_version: None,
            reasoning_budgets: ReasoningBudgets::default(),
        }
    }
}

impl AnthropicOptions {
    /// Options with `anthropic-beta` set to `betas` joined by commas (none: no header).
    pub fn with_betas<S: AsRef<str>>(
        mut self,
        betas: &[S],
    ) -> Result<Self, http::header::InvalidHeaderValue> {
        let joined = betas
            .iter()
            .map(|b| b.as_ref().trim())
            .filter(|b| !b.is_empty())
            .collect::<Vec<_>>()
            .join(",");
        self.beta = if joined.is_empty() {
            None
        } else {
            Some(HeaderValue::from_str(&joined)?)
        };
        Ok(self)
    }

    /// Options with another `anthropic-version`.
    pub fn with_version(mut self, version: &str) -> Result<Self, http::header::InvalidHeaderValue> {
        self.version = HeaderValue::from_str(version)?;
        Ok(self)
    }
}

/// OpenAI's `finish_reason` for an Anthropic `stop_reason`.
pub(crate) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn, and anything newer.
        _ => "stop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = AnthropicOptions::default()
            .with_betas(&["a-1", " ", "b-2"])
            .unwrap();
        assert_eq!(o.beta.unwrap(), "a-1,b-2");
        let none = AnthropicOptions::default().with_betas::<&str>(&[]).unwrap();
        assert_eq!(none.beta, None);
        assert!(AnthropicOptions::default()
            .with_version("bad\nvalue")
            .is_err());
        assert_eq!(AnthropicOptions::default().version, API_VERSION);
    }

    #[test]
    fn finish_reasons() {
        for (stop, finish) in [
            (Some("end_turn"), "stop"),
            (Some("stop_sequence"), "stop"),
            (Some("pause_turn"), "stop"),
            (Some("max_tokens"), "length"),
            (Some("model_context_window_exceeded"), "length"),
            (Some("tool_use"), "tool_calls"),
            (Some("refusal"), "content_filter"),
            (None, "stop"),
        ] {
            assert_eq!(finish_reason(stop), finish, "{stop:?}");
        }
    }
}
