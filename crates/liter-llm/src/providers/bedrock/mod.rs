//! Amazon Bedrock: chat through the Converse API (`POST /model/{modelId}/converse`
//! and `/converse-stream`), embeddings through InvokeModel (`/model/{modelId}/invoke`,
//! Titan and Cohere bodies). Pure translation plus SigV4 signing; no I/O.
//!
//! # Wire
//!
//! The base URL is `https://bedrock-runtime.{region}.amazonaws.com` (the config loader
//! derives it from the region; `base_url` overrides it, and the request is then signed
//! for the host actually used). The model id is one path segment, percent-encoded
//! (`anthropic.claude-3-5-sonnet-20240620-v1:0` → `…-v1%3A0`; ARNs keep their `/` as
//! `%2F`). Every request is signed with SigV4 ([`sigv4`], service `bedrock`) at
//! [`Call::now`](super::adapter::Call), with `x-amz-security-token` when a session
//! token is configured. Streams come back in AWS's binary event-stream framing
//! ([`eventstream`]).
//!
//! # Decisions
//!
//! - **Messages**: `system`/`developer` messages become `system` text blocks; turns
//!   of one role are merged (Converse wants them alternating); assistant tool calls
//!   become `toolUse` blocks and `tool` messages `toolResult` blocks of a user turn.
//!   Empty text is left out (Bedrock rejects blank text blocks).
//! - **Images**: base64 `data:` URLs become `image` blocks (png, jpeg, gif, webp).
//!   Converse takes image bytes only and the gateway does not fetch URLs, so an
//!   `http(s)://` image is answered 400 naming the content part. Other part types
//!   (audio, files) are 400 too.
//! - **Parameters**: `max_completion_tokens` (else `max_tokens`), `temperature`,
//!   `top_p`, `stop` → `inferenceConfig`; `top_k` → `additionalModelRequestFields`;
//!   `user` → `requestMetadata.user`; Converse's own fields
//!   ([`request::CONVERSE_FIELDS`]) are forwarded as sent. `n` > 1 is 400. Any other
//!   parameter (and `parallel_tool_calls: false`) is 400 naming it, or dropped with
//!   `drop_params`, because Converse rejects unknown fields.
//! - **Tools**: `{toolSpec: {name, description, inputSchema: {json}}}`; `tool_choice`
//!   auto/required/function → `{auto:{}}`/`{any:{}}`/`{tool:{name}}`; `none` sends no
//!   `toolConfig` at all (Converse has no "none").
//! - **`response_format`**: `json_schema` → `outputConfig.textFormat` (type
//!   `json_schema`, the schema as a JSON string); `json_object` has no schema to give
//!   and is 400; `text` is a no-op.
//! - **Answers**: Converse answers carry no id, so one is made up
//!   (`chatcmpl-bedrock-…`); finish reasons per [`finish_reason`]; usage counts cache
//!   reads and writes into `prompt_tokens` (`cached_tokens` = reads).
//! - **Errors**: see [`error`] for the table (auth failures, which AWS answers 403,
//!   become 401; throttling 429 keeps Retry-After; `ModelNotReady` and
//!   `ServiceUnavailable` are 503; too-long input is 400 `context_length_exceeded`).
//!   Guardrail and content-filter stops arrive as 200 answers and come out with
//!   `finish_reason: "content_filter"`.
//! - **Embeddings**: see [`embed`].

pub mod adapter;
pub mod embed;
pub mod error;
pub mod eventstream;
pub mod request;
pub mod response;
pub mod sigv4;
pub mod stream;

pub use adapter::BedrockAdapter;
pub use error::parse_error;
pub use response::parse_response;
pub use stream::StreamTranslator;

/// The `provider_model` prefix.
pub const PREFIX: &str = "bedrock";
/// The SigV4 service name.
pub const SERVICE: &str = "bedrock";
/// Environment variables that override the base URL.
pub const BASE_URL_ENV: &[&str] = &["AWS_BEDROCK_RUNTIME_ENDPOINT"];
/// The content type of a ConverseStream answer.
pub const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// The runtime endpoint of a region.
pub fn default_base_url(region: &str) -> String {
    format!("https://bedrock-runtime.{region}.amazonaws.com")
}

/// OpenAI's `finish_reason` for a Converse `stopReason`.
pub(crate) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("guardrail_intervened" | "content_filtered") => "content_filter",
        // end_turn, stop_sequence, and anything newer.
        _ => "stop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons() {
        for (stop, finish) in [
            (Some("end_turn"), "stop"),
            (Some("stop_sequence"), "stop"),
            (Some("max_tokens"), "length"),
            (Some("model_context_window_exceeded"), "length"),
            (Some("tool_use"), "tool_calls"),
            (Some("guardrail_intervened"), "content_filter"),
            (Some("content_filtered"), "content_filter"),
            (None, "stop"),
        ] {
            assert_eq!(finish_reason(stop), finish, "{stop:?}");
        }
        assert_eq!(
            default_base_url("eu-west-3"),
            "https://bedrock-runtime.eu-west-3.amazonaws.com"
        );
    }
}
