//! [`Adapter`] for Cohere's Chat v2 and Embed v2: the translation functions of this module
//! behind the common contract, plus the URLs and the Bearer key.

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Uri};

use super::{
    build_chat, build_embed, parse_chat, parse_embed, parse_error, StreamTranslator, CHAT_PATH,
    EMBED_PATH,
};
use crate::providers::adapter::{
    Adapter, AdapterConfig, Call, Operation, StreamMeta, StreamTranslate, UpstreamRequest,
};
use crate::providers::reshape::Reshape;
use crate::types::{
    ChatCompletion, ChatCompletionRequest, EmbeddingRequest, EmbeddingResponse, ProviderError,
};

/// One Cohere deployment.
#[derive(Debug)]
pub struct CohereAdapter {
    chat_uri: Uri,
    embed_uri: Uri,
    model_id: String,
    /// `Bearer <key>`, marked sensitive; `None` sends no key.
    auth: Option<HeaderValue>,
    drop_params: bool,
}

impl CohereAdapter {
    pub fn new(cfg: &AdapterConfig) -> Result<Self, String> {
        let base = cfg.base_url.trim_end_matches('/');
        let uri = |path: &str| -> Result<Uri, String> {
            format!("{base}{path}")
                .parse()
                .map_err(|_| "base_url does not form a valid URL".to_string())
        };
        let auth = match &cfg.api_key {
            None => None,
            Some(k) => {
                let mut v =
                    HeaderValue::from_str(&format!("Bearer {}", k.expose())).map_err(|_| {
                        "the API key contains characters not allowed in an HTTP header".to_string()
                    })?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        Ok(Self {
            chat_uri: uri(CHAT_PATH)?,
            embed_uri: uri(EMBED_PATH)?,
            model_id: cfg.model_id.clone(),
            auth,
            drop_params: cfg.settings.drop_params,
        })
    }
}

fn invalid_json(e: serde_json::Error) -> ProviderError {
    ProviderError::new(
        400,
        "invalid_request_error",
        format!("invalid request: {e}"),
    )
}

impl Adapter for CohereAdapter {
    fn build(&self, call: Call<'_>) -> Result<UpstreamRequest, ProviderError> {
        let (uri, body, dropped) = match call.op {
            Operation::Embeddings => {
                let req: EmbeddingRequest =
                    serde_json::from_slice(call.body).map_err(invalid_json)?;
                (
                    self.embed_uri.clone(),
                    build_embed(&req, &self.model_id)?,
                    Vec::new(),
                )
            }
            Operation::Chat | Operation::ChatStream => {
                let req: ChatCompletionRequest =
                    serde_json::from_slice(call.body).map_err(invalid_json)?;
                let (body, dropped) = build_chat(&req, &self.model_id, self.drop_params)?;
                (self.chat_uri.clone(), body, dropped)
            }
        };
        let body = serde_json::to_vec(&body).map_err(|e| {
            ProviderError::new(500, "api_error", format!("cannot encode the request: {e}"))
        })?;
        let mut headers = vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        if let Some(auth) = &self.auth {
            headers.push((AUTHORIZATION, auth.clone()));
        }
        Ok(UpstreamRequest {
            uri,
            headers,
            body: Bytes::from(body),
            dropped,
        })
    }

    fn parse_chat(
        &self,
        body: &[u8],
        model: &str,
        created: u64,
    ) -> Result<ChatCompletion, ProviderError> {
        parse_chat(body, model, created)
    }

    fn parse_embeddings(
        &self,
        body: &[u8],
        model: &str,
    ) -> Result<EmbeddingResponse, ProviderError> {
        parse_embed(body, model)
    }

    fn parse_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        parse_error(status, headers, body)
    }

    fn stream(&self, meta: StreamMeta) -> Box<dyn StreamTranslate> {
        Box::new(StreamTranslator::new(meta))
    }

    fn reshape(&self, body: &[u8]) -> Reshape {
        match serde_json::from_slice::<crate::types::ChatCompletionRequest>(body) {
            Ok(req) => Reshape::for_request(&req, false, true),
            Err(_) => Reshape::default(),
        }
    }
}
