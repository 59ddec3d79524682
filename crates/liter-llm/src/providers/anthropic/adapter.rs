//! [`Adapter`] for the Anthropic Messages API: the translation functions of this
//! module behind the common contract, plus the URL and the `x-api-key` header.

use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use super::{
    build_request, parse_error, parse_response, AnthropicOptions, StreamTranslator, API_KEY_HEADER,
    MESSAGES_PATH, PREFIX,
};
use crate::providers::adapter::{
    unsupported, Adapter, AdapterConfig, Call, Operation, StreamMeta, StreamTranslate,
    UpstreamRequest,
};
use crate::providers::reshape::Reshape;
use crate::types::{ChatCompletion, ChatCompletionRequest, EmbeddingResponse, ProviderError};

/// One Anthropic deployment.
#[derive(Debug)]
pub struct AnthropicAdapter {
    uri: Uri,
    model_id: String,
    /// `x-api-key`, marked sensitive; `None` sends no key.
    key: Option<HeaderValue>,
    opts: AnthropicOptions,
}

impl AnthropicAdapter {
    pub fn new(cfg: &AdapterConfig, opts: AnthropicOptions) -> Result<Self, String> {
        let uri = format!("{}{MESSAGES_PATH}", cfg.base_url.trim_end_matches('/'))
            .parse()
            .map_err(|_| "base_url does not form a valid URL".to_string())?;
        let key = match &cfg.api_key {
            None => None,
            Some(k) => {
                let mut v = HeaderValue::from_str(k.expose()).map_err(|_| {
                    "the API key contains characters not allowed in an HTTP header".to_string()
                })?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        Ok(Self {
            uri,
            model_id: cfg.model_id.clone(),
            key,
            opts,
        })
    }
}

impl Adapter for AnthropicAdapter {
    fn build(&self, call: Call<'_>) -> Result<UpstreamRequest, ProviderError> {
        if call.op == Operation::Embeddings {
            return Err(unsupported(PREFIX, "embeddings"));
        }
        let req: ChatCompletionRequest = serde_json::from_slice(call.body).map_err(|e| {
            ProviderError::new(
                400,
                "invalid_request_error",
                format!("invalid request: {e}"),
            )
        })?;
        let built = build_request(&req, &self.model_id, &self.opts)?;
        let mut headers = built.headers;
        if let Some(key) = &self.key {
            headers.push((HeaderName::from_static(API_KEY_HEADER), key.clone()));
        }
        Ok(UpstreamRequest {
            uri: self.uri.clone(),
            headers,
            body: built.body,
            dropped: built.dropped,
        })
    }

    fn parse_chat(
        &self,
        body: &[u8],
        model: &str,
        created: u64,
    ) -> Result<ChatCompletion, ProviderError> {
        Ok(parse_response(body, model, created)?)
    }

    fn parse_embeddings(&self, _: &[u8], _: &str) -> Result<EmbeddingResponse, ProviderError> {
        Err(unsupported(PREFIX, "embeddings"))
    }

    fn parse_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        parse_error(status, headers, body)
    }

    fn stream(&self, meta: StreamMeta) -> Box<dyn StreamTranslate> {
        Box::new(StreamTranslator::for_meta(meta))
    }

    fn reshape(&self, body: &[u8]) -> Reshape {
        match serde_json::from_slice::<ChatCompletionRequest>(body) {
            Ok(req) => Reshape::for_request(&req, true, false),
            Err(_) => Reshape::default(),
        }
    }
}
