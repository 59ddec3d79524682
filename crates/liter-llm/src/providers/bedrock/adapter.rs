//! [`Adapter`] for Bedrock: the URL per operation, the body from [`super::request`] or
//! [`super::embed`], and the SigV4 signature over exactly what is sent.

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use super::embed::{self, Family};
use super::sigv4::{self, Credentials};
use super::{
    parse_error, parse_response, request, StreamTranslator, EVENT_STREAM, PREFIX, SERVICE,
};
use crate::providers::adapter::{
    Adapter, AdapterConfig, Call, Operation, StreamMeta, StreamTranslate, UpstreamRequest,
};
use crate::providers::reshape::Reshape;
use crate::providers::url::check_model_id;
use crate::types::{ChatCompletion, ChatCompletionRequest, EmbeddingResponse, ProviderError};

const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
const X_AMZ_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");

/// One Bedrock deployment.
#[derive(Debug)]
pub struct BedrockAdapter {
    /// `scheme://authority` of `base_url`.
    origin: String,
    /// The `host` SigV4 signs: the base URL's authority without a default port.
    host: String,
    /// The path prefix of `base_url` (usually empty).
    prefix: String,
    /// The model id as one encoded path segment.
    model_segment: String,
    family: Option<Family>,
    creds: Credentials,
    region: String,
    drop_params: bool,
    converse: request::ConverseOptions,
}

impl BedrockAdapter {
    /// Fails when credentials or region are missing (the config loader resolves them
    /// from the environment first) or the base URL is not usable.
    pub fn new(cfg: &AdapterConfig) -> Result<Self, String> {
        let s = &cfg.settings;
        let need = |v: Option<&str>, what: &str| -> Result<String, String> {
            v.filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("bedrock needs {what}"))
        };
        let access_key_id = need(
            s.aws_access_key_id.as_ref().map(|k| k.expose()),
            "aws_access_key_id (or $AWS_ACCESS_KEY_ID)",
        )?;
        let secret_access_key = need(
            s.aws_secret_access_key.as_ref().map(|k| k.expose()),
            "aws_secret_access_key (or $AWS_SECRET_ACCESS_KEY)",
        )?;
        let region = need(
            s.aws_region_name.as_deref(),
            "aws_region_name (or $AWS_REGION / $AWS_DEFAULT_REGION)",
        )?;
        let session_token = s
            .aws_session_token
            .as_ref()
            .map(|t| t.expose().to_string())
            .filter(|t| !t.is_empty());
        for (value, what) in [
            (Some(access_key_id.as_str()), "aws_access_key_id"),
            (session_token.as_deref(), "aws_session_token"),
        ] {
            if value.is_some_and(|v| HeaderValue::from_str(v).is_err()) {
                return Err(format!(
                    "{what} contains characters not allowed in an HTTP header"
                ));
            }
        }
        let base = cfg.base_url.trim_end_matches('/').to_string();
        let uri: Uri = base
            .parse()
            .map_err(|_| "base_url does not form a valid URL".to_string())?;
        let authority = uri
            .authority()
            .ok_or_else(|| "base_url has no host".to_string())?;
        let default_port = match uri.scheme_str() {
            Some("https") => 443,
            _ => 80,
        };
        let host = match authority.port_u16() {
            Some(p) if p != default_port => format!("{}:{p}", authority.host()),
            _ => authority.host().to_string(),
        };
        Ok(Self {
            prefix: uri.path().trim_end_matches('/').to_string(),
            origin: format!("{}://{authority}", uri.scheme_str().unwrap_or("https")),
            host,
            model_segment: {
                check_model_id(&cfg.model_id).map_err(|e| e.to_string())?;
                sigv4::uri_encode(&cfg.model_id)
            },
            family: Family::of(&cfg.model_id),
            creds: Credentials {
                access_key_id,
                secret_access_key,
                session_token,
            },
            region,
            drop_params: s.drop_params,
            converse: request::ConverseOptions {
                drop_params: s.drop_params,
                budgets: s.reasoning_budgets,
                claude: cfg.model_id.contains("anthropic."),
            },
        })
    }

    /// The path (as sent) of an operation.
    fn path(&self, op: Operation) -> String {
        let action = match op {
            Operation::Chat => "converse",
            Operation::ChatStream => "converse-stream",
            Operation::Embeddings => "invoke",
        };
        format!("{}/model/{}/{action}", self.prefix, self.model_segment)
    }

    fn body(&self, call: &Call<'_>) -> Result<(Vec<u8>, Vec<String>), ProviderError> {
        let (body, dropped) = match call.op {
            Operation::Embeddings => {
                let Some(family) = self.family else {
                    return Err(ProviderError::new(
                        400,
                        "invalid_request_error",
                        "bedrock embeddings support Amazon Titan (amazon.titan-embed-*) and Cohere (cohere.embed-*) models",
                    ));
                };
                embed::build_body(family, call.body, self.drop_params)?
            }
            Operation::Chat | Operation::ChatStream => {
                let req: ChatCompletionRequest =
                    serde_json::from_slice(call.body).map_err(|e| {
                        ProviderError::new(
                            400,
                            "invalid_request_error",
                            format!("invalid request: {e}"),
                        )
                    })?;
                request::build_body(&req, &self.converse)?
            }
        };
        let bytes = serde_json::to_vec(&body).map_err(|e| {
            ProviderError::new(
                400,
                "invalid_request_error",
                format!("cannot encode the request: {e}"),
            )
        })?;
        Ok((bytes, dropped))
    }
}

fn bad_header() -> ProviderError {
    ProviderError::new(
        500,
        "api_error",
        "a signed header is not a valid header value",
    )
}

/// A header value marked sensitive (credentials, signatures).
fn sensitive(value: &str) -> Result<HeaderValue, ProviderError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| bad_header())?;
    v.set_sensitive(true);
    Ok(v)
}

impl Adapter for BedrockAdapter {
    fn build(&self, call: Call<'_>) -> Result<UpstreamRequest, ProviderError> {
        let (body, dropped) = self.body(&call)?;
        let path = self.path(call.op);
        let accept = if call.op == Operation::ChatStream {
            EVENT_STREAM
        } else {
            "application/json"
        };
        let signed = sigv4::sign(
            &self.creds,
            &self.region,
            SERVICE,
            "POST",
            &self.host,
            &path,
            &[("content-type".into(), "application/json".into())],
            &body,
            call.now,
        );
        let uri: Uri = format!("{}{path}", self.origin).parse().map_err(|_| {
            ProviderError::new(
                400,
                "invalid_request_error",
                "the model id does not form a valid URL",
            )
        })?;
        let mut headers = vec![
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (ACCEPT, HeaderValue::from_static(accept)),
            (
                X_AMZ_DATE,
                HeaderValue::from_str(&signed.amz_date).map_err(|_| bad_header())?,
            ),
            (AUTHORIZATION, sensitive(&signed.authorization)?),
        ];
        if let Some(token) = &signed.security_token {
            headers.push((X_AMZ_SECURITY_TOKEN, sensitive(token)?));
        }
        Ok(UpstreamRequest {
            uri,
            headers,
            body: body.into(),
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
        match self.family {
            Some(family) => embed::parse_answer(family, body, model),
            None => Err(crate::providers::adapter::unsupported(
                PREFIX,
                "embeddings for this model",
            )),
        }
    }

    fn parse_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        parse_error(status, headers, body)
    }

    fn stream(&self, meta: StreamMeta) -> Box<dyn StreamTranslate> {
        Box::new(StreamTranslator::new(meta))
    }

    fn reshape(&self, body: &[u8]) -> Reshape {
        match serde_json::from_slice::<ChatCompletionRequest>(body) {
            Ok(req) => Reshape::for_request(&req, true, true),
            Err(_) => Reshape::default(),
        }
    }
}
