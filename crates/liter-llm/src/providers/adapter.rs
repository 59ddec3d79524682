//! The contract of a translating provider adapter (every provider whose wire format is
//! not OpenAI's: Anthropic, Gemini and Vertex AI, Bedrock, Cohere).
//!
//! An adapter is pure translation, built once per deployment from its
//! [`AdapterConfig`]: it turns the client's OpenAI-shaped body into a complete upstream
//! request (URL, headers with the credentials, body; signed where the provider wants
//! that), and the provider's answers, errors and stream bytes back into OpenAI's shapes.
//! It does no I/O: the gateway's dispatcher sends the request, owns timeouts and
//! retries, and for providers that authenticate with a short-lived token (Vertex AI)
//! runs the exchange the adapter describes ([`Adapter::token_exchange`]) and caches the
//! token until it expires.
//!
//! OpenAI-compatible providers have no adapter: their bytes are forwarded as they are.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use crate::providers::reasoning::ReasoningBudgets;
use crate::providers::reshape::Reshape;
use crate::types::{ChatCompletion, ChatCompletionChunk, EmbeddingResponse, ProviderError, Usage};

/// What the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Chat,
    /// A chat completion with `"stream": true`.
    ChatStream,
    Embeddings,
}

/// A secret string (API key, AWS secret): never printed by `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Provider-specific settings of one deployment (the config's per-model extension
/// fields, LiteLLM's names). The config loader rejects a field the provider does not
/// use, so an adapter may rely on what it reads here being meant for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderSettings {
    /// Azure OpenAI: the `api-version` query parameter.
    pub api_version: Option<String>,
    /// Bedrock: credentials and region (else the standard AWS variables).
    pub aws_access_key_id: Option<Secret>,
    pub aws_secret_access_key: Option<Secret>,
    pub aws_session_token: Option<Secret>,
    pub aws_region_name: Option<String>,
    /// Vertex AI: project, location and the service-account JSON file.
    pub vertex_project: Option<String>,
    pub vertex_location: Option<String>,
    pub vertex_credentials: Option<String>,
    /// Drop parameters the provider cannot honour (naming them in a warning) instead
    /// of answering 400.
    pub drop_params: bool,
    /// Thinking budgets per `reasoning_effort` level (the model's
    /// `reasoning_budgets`, else the defaults).
    pub reasoning_budgets: ReasoningBudgets,
    /// Serve `n` > 1 with n upstream requests (the model's `fan_out_n`); without it
    /// providers that answer one choice per request refuse `n` > 1.
    pub fan_out_n: bool,
}

/// The 400 for `n` > 1 on a provider that answers one choice per request and a model
/// without `fan_out_n`.
pub fn n_refused(provider: &str) -> ProviderError {
    crate::providers::convert::invalid(
        format!(
            "{provider} generates one choice per request: n must be 1, or set fan_out_n = true on the model to serve n from 2 to {} (not streamed) with n upstream requests (n times the cost)",
            crate::providers::fanout::MAX_N
        ),
        "n",
    )
}

/// Everything an adapter is built from.
#[derive(Debug, Clone, Default)]
pub struct AdapterConfig {
    /// The base URL (the provider's default, an environment override, or the config's
    /// `base_url`), without a trailing `/`.
    pub base_url: String,
    /// The model id the upstream receives (`provider_model` after the prefix).
    pub model_id: String,
    pub api_key: Option<Secret>,
    pub settings: ProviderSettings,
}

/// A request ready to send: the dispatcher adds only connection handling.
#[derive(Debug)]
pub struct UpstreamRequest {
    pub uri: Uri,
    /// Every header the provider needs, credentials included (marked sensitive).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// Parameters left out because the provider cannot honour them and `drop_params`
    /// is on; the gateway names them in a warning header.
    pub dropped: Vec<String>,
}

/// One call, as the dispatcher hands it to [`Adapter::build`].
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub op: Operation,
    /// The client's JSON body, unchanged.
    pub body: &'a [u8],
    /// The access token from [`Adapter::token_exchange`], for adapters that use one.
    pub token: Option<&'a str>,
    /// Unix seconds now (request signing).
    pub now: u64,
}

/// Who a stream answer is for.
#[derive(Debug, Clone)]
pub struct StreamMeta {
    /// The `chatcmpl-…` id every chunk carries.
    pub id: String,
    /// The model name the client sent.
    pub model: String,
    pub created: u64,
    /// `stream_options.include_usage`: end with a usage chunk.
    pub include_usage: bool,
    /// The most bytes one upstream event (an SSE event, an event-stream message) may
    /// have; a longer one ends the stream with an error (the gateway's
    /// `server.max_event_bytes`).
    pub max_event_bytes: usize,
}

/// What a stream translator hands the gateway, in order.
#[derive(Debug, Clone)]
pub enum StreamOut {
    /// A chunk to send as `data: {chunk}`.
    Chunk(ChatCompletionChunk),
    /// The stream failed: send it as an error event and stop.
    Error(ProviderError),
    /// The answer is complete: send `data: [DONE]`.
    Done,
}

/// Upstream stream bytes in (split anywhere), OpenAI chunks out.
pub trait StreamTranslate: Send {
    fn feed(&mut self, bytes: &[u8]) -> Vec<StreamOut>;
    /// The body ended: whatever is still owed (an error if the answer is incomplete).
    fn finish(&mut self) -> Vec<StreamOut>;
    /// Usage as reported so far, whatever `include_usage` says (for accounting).
    fn usage(&self) -> Option<Usage>;
}

/// A request for a short-lived access token (OAuth 2 token exchange).
#[derive(Debug)]
pub struct TokenRequest {
    pub uri: Uri,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

/// A token and how long it lives.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    pub expires_in_secs: u64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"********")
            .field("expires_in_secs", &self.expires_in_secs)
            .finish()
    }
}

/// One deployment's translation.
pub trait Adapter: Send + Sync + fmt::Debug {
    /// The upstream request for `call`. A request the provider cannot express is a 400
    /// [`ProviderError`] naming the parameter (`param`).
    fn build(&self, call: Call<'_>) -> Result<UpstreamRequest, ProviderError>;

    /// A 2xx chat answer as a `chat.completion` for `model` (the client's name).
    fn parse_chat(
        &self,
        body: &[u8],
        model: &str,
        created: u64,
    ) -> Result<ChatCompletion, ProviderError>;

    /// A 2xx embeddings answer in OpenAI's list shape.
    fn parse_embeddings(
        &self,
        body: &[u8],
        model: &str,
    ) -> Result<EmbeddingResponse, ProviderError>;

    /// A non-2xx answer, OpenAI-shaped with the status the client should see.
    fn parse_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError;

    /// A translator for one streamed answer.
    fn stream(&self, meta: StreamMeta) -> Box<dyn StreamTranslate>;

    /// Whether requests need an access token from [`Adapter::token_exchange`] (the
    /// dispatcher keeps a token cache only for such deployments).
    fn uses_token(&self) -> bool {
        false
    }

    /// For token-authenticated providers: the exchange that yields an access token
    /// (`now` in Unix seconds, for signed assertions). `None`: no token needed.
    fn token_exchange(&self, _now: u64) -> Option<Result<TokenRequest, ProviderError>> {
        None
    }

    /// The rewrites the answer to the client's request `body` needs (see
    /// [`Reshape`]); the gateway applies them after [`Adapter::parse_chat`] or around
    /// [`Adapter::stream`]'s translator.
    fn reshape(&self, body: &[u8]) -> Reshape {
        let _ = body;
        Reshape::default()
    }

    /// Secrets this adapter read beyond the [`AdapterConfig`]'s (Vertex AI: the
    /// service account's key material), which the gateway keeps out of any upstream
    /// text it passes on or logs.
    fn secrets(&self) -> Vec<Secret> {
        Vec::new()
    }

    /// The token endpoint's answer.
    fn parse_token(&self, status: u16, body: &[u8]) -> Result<AccessToken, ProviderError> {
        let _ = body;
        Err(ProviderError::new(
            502,
            "api_error",
            format!("unexpected token answer (status {status})"),
        ))
    }
}

/// A shared adapter.
pub type SharedAdapter = Arc<dyn Adapter>;

/// A 400 for an operation the provider does not offer.
pub fn unsupported(provider: &str, what: &str) -> ProviderError {
    ProviderError::new(
        400,
        "invalid_request_error",
        format!("{provider} does not offer {what}"),
    )
}
