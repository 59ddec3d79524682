//! [`Adapter`]s for the Gemini API ([`GeminiAdapter`]: `x-goog-api-key`) and Vertex AI
//! ([`VertexAdapter`]: a Bearer access token from the service-account exchange, Gemini
//! models in Gemini's format and Claude models in Anthropic's).

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, Uri};

use super::auth::{parse_token_answer, ServiceAccount};
use super::{
    build_batch_embed, build_chat, build_predict_embed, parse_batch_embed, parse_error,
    parse_predict_embed, parse_response, StreamTranslator, API_KEY_HEADER, DEFAULT_LOCATION,
    VERTEX_ANTHROPIC_VERSION, VERTEX_PREFIX,
};
use super::{ChatOptions, ThinkingControl};
use crate::providers::adapter::{
    unsupported, AccessToken, Adapter, AdapterConfig, Call, Operation, Secret, StreamMeta,
    StreamTranslate, TokenRequest, UpstreamRequest,
};
use crate::providers::anthropic::{self, AnthropicOptions};
use crate::providers::reshape::Reshape;
use crate::providers::url::{encode_segment, model_segment};
use crate::types::{
    ChatCompletion, ChatCompletionRequest, EmbeddingRequest, EmbeddingResponse, ProviderError,
};

fn read<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ProviderError> {
    serde_json::from_slice(body).map_err(|e| {
        ProviderError::new(
            400,
            "invalid_request_error",
            format!("invalid request: {e}"),
        )
    })
}

fn json_header() -> (HeaderName, HeaderValue) {
    (CONTENT_TYPE, HeaderValue::from_static("application/json"))
}

fn uri(s: String) -> Result<Uri, ProviderError> {
    s.parse().map_err(|_| {
        ProviderError::new(500, "api_error", "the upstream URL is not valid")
            .with_code("bad_config")
    })
}

/// The Gemini body for a chat or stream call, and what was dropped.
fn gemini_chat(body: &[u8], opts: &ChatOptions) -> Result<(Bytes, Vec<String>), ProviderError> {
    let req: ChatCompletionRequest = read(body)?;
    let (body, dropped) = build_chat(&req, opts)?;
    let bytes = serde_json::to_vec(&body)
        .map_err(|e| ProviderError::new(500, "api_error", format!("cannot encode: {e}")))?;
    Ok((Bytes::from(bytes), dropped))
}

/// The Gemini method of a chat operation.
fn method(op: Operation) -> &'static str {
    match op {
        Operation::ChatStream => "streamGenerateContent?alt=sse",
        _ => "generateContent",
    }
}

/// One Gemini API deployment.
#[derive(Debug)]
pub struct GeminiAdapter {
    /// `{base}/v1beta/models/{model}`, the model id one encoded segment.
    model_url: String,
    /// The model id as configured (the embeddings body names it).
    model_id: String,
    /// `x-goog-api-key`, marked sensitive.
    key: Option<HeaderValue>,
    chat: ChatOptions,
}

/// The chat options of a Gemini-format deployment.
fn chat_options(cfg: &AdapterConfig) -> ChatOptions {
    ChatOptions {
        drop_params: cfg.settings.drop_params,
        budgets: cfg.settings.reasoning_budgets,
        thinking: ThinkingControl::of(&cfg.model_id),
    }
}

/// The rewrites a Gemini-format answer needs: only the first call when the request
/// said `parallel_tool_calls: false`.
fn gemini_reshape(body: &[u8]) -> Reshape {
    match serde_json::from_slice::<ChatCompletionRequest>(body) {
        Ok(req) => Reshape::for_request(&req, false, true),
        Err(_) => Reshape::default(),
    }
}

impl GeminiAdapter {
    pub fn new(cfg: &AdapterConfig) -> Result<Self, String> {
        let model_url = format!(
            "{}/v1beta/models/{}",
            cfg.base_url.trim_end_matches('/'),
            model_segment(&cfg.model_id).map_err(|e| e.to_string())?
        );
        model_url
            .parse::<Uri>()
            .map_err(|_| "base_url and model do not form a valid URL".to_string())?;
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
            model_url,
            model_id: cfg.model_id.clone(),
            key,
            chat: chat_options(cfg),
        })
    }
}

impl Adapter for GeminiAdapter {
    fn build(&self, call: Call<'_>) -> Result<UpstreamRequest, ProviderError> {
        let (url, body, dropped) = match call.op {
            Operation::Embeddings => {
                let req: EmbeddingRequest = read(call.body)?;
                let body = build_batch_embed(&req, &self.model_id)?;
                (
                    format!("{}:batchEmbedContents", self.model_url),
                    Bytes::from(body.to_string()),
                    Vec::new(),
                )
            }
            op => {
                let (body, dropped) = gemini_chat(call.body, &self.chat)?;
                (format!("{}:{}", self.model_url, method(op)), body, dropped)
            }
        };
        let mut headers = vec![json_header()];
        if let Some(key) = &self.key {
            headers.push((HeaderName::from_static(API_KEY_HEADER), key.clone()));
        }
        Ok(UpstreamRequest {
            uri: uri(url)?,
            headers,
            body,
            dropped,
        })
    }

    fn parse_chat(
        &self,
        body: &[u8],
        model: &str,
        created: u64,
    ) -> Result<ChatCompletion, ProviderError> {
        parse_response(body, model, created)
    }

    fn parse_embeddings(
        &self,
        body: &[u8],
        model: &str,
    ) -> Result<EmbeddingResponse, ProviderError> {
        parse_batch_embed(body, model)
    }

    fn parse_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        parse_error(status, headers, body)
    }

    fn stream(&self, meta: StreamMeta) -> Box<dyn StreamTranslate> {
        Box::new(StreamTranslator::for_meta(meta))
    }

    fn reshape(&self, body: &[u8]) -> Reshape {
        gemini_reshape(body)
    }
}

/// How a Vertex deployment authenticates.
#[derive(Debug)]
enum VertexAuth {
    /// Exchange a signed assertion for an access token (the gateway caches it).
    ServiceAccount(Box<ServiceAccount>),
    /// A fixed access token from `api_key` (e.g. `gcloud auth print-access-token`).
    Static(HeaderValue),
}

/// Which publisher's format the model speaks.
#[derive(Debug)]
enum Publisher {
    Google,
    Anthropic(AnthropicOptions),
}

/// One Vertex AI deployment.
#[derive(Debug)]
pub struct VertexAdapter {
    /// `{base}/v1/projects/{p}/locations/{l}/publishers/{google|anthropic}/models/{model}`.
    model_url: String,
    publisher: Publisher,
    auth: VertexAuth,
    chat: ChatOptions,
}

impl VertexAdapter {
    /// Reads the service-account file (`vertex_credentials`) now, so a bad file fails the
    /// config load rather than the first request. Without one, `api_key` is used as a
    /// fixed access token.
    pub fn new(cfg: &AdapterConfig) -> Result<Self, String> {
        let s = &cfg.settings;
        let (auth, file_project) = match (&s.vertex_credentials, &cfg.api_key) {
            (Some(path), _) => {
                let sa = ServiceAccount::from_file(path)?;
                let project = sa.project_id.clone();
                (VertexAuth::ServiceAccount(Box::new(sa)), project)
            }
            (None, Some(token)) => {
                let mut v =
                    HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                        "the access token contains characters not allowed in an HTTP header"
                            .to_string()
                    })?;
                v.set_sensitive(true);
                (VertexAuth::Static(v), None)
            }
            (None, None) => {
                return Err(format!(
                    "{VERTEX_PREFIX}/ needs vertex_credentials (a service-account key file) or ${}",
                    super::CREDENTIALS_ENV
                ))
            }
        };
        let project = s.vertex_project.clone().or(file_project).ok_or_else(|| {
            format!(
                "{VERTEX_PREFIX}/ needs vertex_project (or ${}, or a key file with project_id)",
                super::VERTEX_PROJECT_ENV
            )
        })?;
        let location = s.vertex_location.as_deref().unwrap_or(DEFAULT_LOCATION);
        let (publisher, name) = if cfg.model_id.starts_with("claude") {
            let opts = AnthropicOptions {
                drop_params: s.drop_params,
                body_version: Some(VERTEX_ANTHROPIC_VERSION),
                reasoning_budgets: s.reasoning_budgets,
                ..AnthropicOptions::default()
            };
            (Publisher::Anthropic(opts), "anthropic")
        } else {
            (Publisher::Google, "google")
        };
        let model_url = format!(
            "{}/v1/projects/{}/locations/{}/publishers/{name}/models/{}",
            cfg.base_url.trim_end_matches('/'),
            encode_segment(&project),
            encode_segment(location),
            model_segment(&cfg.model_id).map_err(|e| e.to_string())?
        );
        model_url.parse::<Uri>().map_err(|_| {
            "base_url, project, location and model do not form a valid URL".to_string()
        })?;
        Ok(Self {
            model_url,
            publisher,
            auth,
            chat: chat_options(cfg),
        })
    }

    fn authorization(&self, token: Option<&str>) -> Result<HeaderValue, ProviderError> {
        match &self.auth {
            VertexAuth::Static(v) => Ok(v.clone()),
            VertexAuth::ServiceAccount(_) => {
                let token = token.ok_or_else(|| {
                    ProviderError::new(
                        401,
                        "authentication_error",
                        "no Vertex AI access token is available",
                    )
                })?;
                let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    ProviderError::new(
                        502,
                        "api_error",
                        "the Vertex access token is not a valid header value",
                    )
                })?;
                v.set_sensitive(true);
                Ok(v)
            }
        }
    }
}

impl Adapter for VertexAdapter {
    fn build(&self, call: Call<'_>) -> Result<UpstreamRequest, ProviderError> {
        let (url, body, dropped, mut headers) = match (&self.publisher, call.op) {
            (Publisher::Google, Operation::Embeddings) => {
                let req: EmbeddingRequest = read(call.body)?;
                let body = build_predict_embed(&req)?;
                (
                    format!("{}:predict", self.model_url),
                    Bytes::from(body.to_string()),
                    Vec::new(),
                    vec![json_header()],
                )
            }
            (Publisher::Google, op) => {
                let (body, dropped) = gemini_chat(call.body, &self.chat)?;
                let url = format!("{}:{}", self.model_url, method(op));
                (url, body, dropped, vec![json_header()])
            }
            (Publisher::Anthropic(_), Operation::Embeddings) => {
                return Err(unsupported("vertex_ai/claude", "embeddings"))
            }
            (Publisher::Anthropic(opts), op) => {
                let req: ChatCompletionRequest = read(call.body)?;
                let built = anthropic::build_request(&req, "", opts)?;
                let method = if op == Operation::ChatStream {
                    "streamRawPredict"
                } else {
                    "rawPredict"
                };
                let url = format!("{}:{method}", self.model_url);
                (url, built.body, built.dropped, built.headers)
            }
        };
        headers.push((AUTHORIZATION, self.authorization(call.token)?));
        Ok(UpstreamRequest {
            uri: uri(url)?,
            headers,
            body,
            dropped,
        })
    }

    fn parse_chat(
        &self,
        body: &[u8],
        model: &str,
        created: u64,
    ) -> Result<ChatCompletion, ProviderError> {
        match self.publisher {
            Publisher::Google => parse_response(body, model, created),
            Publisher::Anthropic(_) => Ok(anthropic::parse_response(body, model, created)?),
        }
    }

    fn parse_embeddings(
        &self,
        body: &[u8],
        model: &str,
    ) -> Result<EmbeddingResponse, ProviderError> {
        match self.publisher {
            Publisher::Google => parse_predict_embed(body, model),
            Publisher::Anthropic(_) => Err(unsupported("vertex_ai/claude", "embeddings")),
        }
    }

    /// Claude's own errors come in Anthropic's shape; Vertex's (auth, quota) in Google's.
    fn parse_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        let anthropic_shaped = matches!(self.publisher, Publisher::Anthropic(_))
            && serde_json::from_slice::<serde_json::Value>(body)
                .is_ok_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("error"));
        if anthropic_shaped {
            anthropic::parse_error(status, headers, body)
        } else {
            parse_error(status, headers, body)
        }
    }

    fn stream(&self, meta: StreamMeta) -> Box<dyn StreamTranslate> {
        match self.publisher {
            Publisher::Google => Box::new(StreamTranslator::for_meta(meta)),
            Publisher::Anthropic(_) => Box::new(anthropic::StreamTranslator::for_meta(meta)),
        }
    }

    fn reshape(&self, body: &[u8]) -> Reshape {
        match self.publisher {
            Publisher::Google => gemini_reshape(body),
            Publisher::Anthropic(_) => {
                match serde_json::from_slice::<ChatCompletionRequest>(body) {
                    Ok(req) => Reshape::for_request(&req, true, false),
                    Err(_) => Reshape::default(),
                }
            }
        }
    }

    fn uses_token(&self) -> bool {
        matches!(self.auth, VertexAuth::ServiceAccount(_))
    }

    fn token_exchange(&self, now: u64) -> Option<Result<TokenRequest, ProviderError>> {
        match &self.auth {
            VertexAuth::ServiceAccount(sa) => Some(sa.token_request(now)),
            VertexAuth::Static(_) => None,
        }
    }

    fn parse_token(&self, status: u16, body: &[u8]) -> Result<AccessToken, ProviderError> {
        parse_token_answer(status, body)
    }

    fn secrets(&self) -> Vec<Secret> {
        match &self.auth {
            VertexAuth::ServiceAccount(sa) => sa.key_material(),
            VertexAuth::Static(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::adapter::{ProviderSettings, Secret};

    #[test]
    fn vertex_needs_credentials_and_project() {
        let cfg = AdapterConfig {
            base_url: "https://x".into(),
            model_id: "gemini-2.0-flash".into(),
            ..Default::default()
        };
        assert!(VertexAdapter::new(&cfg)
            .unwrap_err()
            .contains("vertex_credentials"));
        let cfg = AdapterConfig {
            api_key: Some(Secret("tok".into())),
            ..cfg
        };
        assert!(VertexAdapter::new(&cfg)
            .unwrap_err()
            .contains("vertex_project"));
        let cfg = AdapterConfig {
            settings: ProviderSettings {
                vertex_project: Some("p".into()),
                ..Default::default()
            },
            ..cfg
        };
        let a = VertexAdapter::new(&cfg).unwrap();
        assert!(a.token_exchange(0).is_none());
        let out = a
            .build(Call {
                op: Operation::ChatStream,
                body: br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
                token: None,
                now: 0,
            })
            .unwrap();
        assert_eq!(
            out.uri,
            "https://x/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
        );
        let auth = out
            .headers
            .iter()
            .find(|(n, _)| n == AUTHORIZATION)
            .unwrap();
        assert_eq!(auth.1, "Bearer tok");
        assert!(auth.1.is_sensitive());
    }
}
