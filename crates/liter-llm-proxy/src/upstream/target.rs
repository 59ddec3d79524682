//! Where and how one deployment's requests go, computed once at start-up: its URL and
//! credentials, the [`Protocol`] of its wire, the secrets to keep out of what its
//! upstream says ([`Scrub`]) and the bounds on what is read from it ([`ReadLimits`]).

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Uri};
use liter_llm::providers::adapter::Secret;
use liter_llm::providers::{AdapterConfig, AuthStyle};
use liter_llm::Provider;
use secrecy::ExposeSecret;

use super::adapter::{NativeMessages, Translated};
use super::openai::PassThrough;
use super::protocol::Protocol;
use super::scrub::Scrub;
use super::token::TokenCache;
use crate::config::{Deployment, Limits};

/// Where and how to send one deployment's requests.
#[derive(Debug, Clone)]
pub struct Target {
    /// Client-facing model name, for messages.
    pub name: String,
    pub protocol: Arc<dyn Protocol>,
    pub timeout: Duration,
    /// For adapters that authenticate with a short-lived token (Vertex AI).
    pub token: Option<Arc<TokenCache>>,
    /// The deployment's secrets, removed from any upstream text passed on or logged.
    pub scrub: Arc<Scrub>,
    pub limits: ReadLimits,
}

/// Bounds on what is read from an upstream (`[server]`, see docs/security.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// `max_event_bytes`: the longest stream event (SSE event, event-stream message).
    pub max_event_bytes: usize,
    /// `max_response_bytes`: the largest whole answer (or error answer).
    pub max_response_bytes: usize,
}

impl From<&Limits> for ReadLimits {
    fn from(l: &Limits) -> Self {
        ReadLimits {
            max_event_bytes: l.max_event_bytes,
            max_response_bytes: l.max_response_bytes,
        }
    }
}

/// A deployment whose values cannot form an upstream request. Names the model, never
/// a key.
#[derive(Debug, thiserror::Error)]
#[error("model {model:?}: {reason}")]
pub struct TargetError {
    pub model: String,
    pub reason: String,
}

impl Target {
    /// The target of `d`, or `None` for the in-process mock; `limits` bound what is
    /// read from its upstream.
    pub fn for_deployment(d: &Deployment, limits: &Limits) -> Result<Option<Target>, TargetError> {
        let fail = |reason: &str| TargetError {
            model: d.name.clone(),
            reason: reason.to_string(),
        };
        let Some(net) = d.provider.network() else {
            return Ok(None);
        };
        liter_llm::providers::url::check_model_id(&d.model_id).map_err(|e| fail(&e.to_string()))?;
        let base = d.base_url.as_ref().ok_or_else(|| fail("no base_url"))?;
        if d.api_key.is_none() && net.key_required {
            tracing::warn!(
                model = %d.name,
                provider = net.name,
                env = ?net.key_env,
                "no API key for this model: set api_key or one of the variables; requests will go upstream unauthenticated"
            );
        }
        let cfg = AdapterConfig {
            base_url: base.trim_end_matches('/').to_string(),
            model_id: d.model_id.clone(),
            api_key: d
                .api_key
                .as_ref()
                .map(|k| Secret(k.expose_secret().to_string())),
            settings: d.settings.clone(),
        };
        let mut secrets = secrets_of(&cfg);
        let (protocol, token): (Arc<dyn Protocol>, _) = match d.provider.adapter(&cfg) {
            Some(adapter) => {
                let adapter = adapter.map_err(|e| fail(&e.to_string()))?;
                secrets.extend(adapter.secrets());
                let token = TokenCache::for_adapter(&adapter).map(Arc::new);
                let native = native_messages(d, &cfg).map_err(fail)?;
                (Arc::new(Translated(adapter, native)), token)
            }
            None => (Arc::new(pass_through(d, &cfg).map_err(fail)?), None),
        };
        Ok(Some(Target {
            name: d.name.clone(),
            protocol,
            timeout: d.timeout,
            token,
            scrub: Arc::new(Scrub::new(secrets.iter().map(Secret::expose))),
            limits: ReadLimits::from(limits),
        }))
    }
}

/// The configured secrets of a deployment: its API key (or Vertex AI access token),
/// AWS secret key and session token.
fn secrets_of(cfg: &AdapterConfig) -> Vec<Secret> {
    let s = &cfg.settings;
    [&cfg.api_key, &s.aws_secret_access_key, &s.aws_session_token]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
}

/// URLs and auth header of an OpenAI-compatible deployment (Azure OpenAI included:
/// deployment URLs with `api-version`, and the key in `api-key`).
fn pass_through(d: &Deployment, cfg: &AdapterConfig) -> Result<PassThrough, &'static str> {
    let (chat, embeddings, auth) = match d.provider {
        Provider::OpenAiCompat(p) => (
            format!("{}/chat/completions", cfg.base_url),
            format!("{}/embeddings", cfg.base_url),
            p.auth,
        ),
        Provider::Azure => {
            let urls = liter_llm::providers::azure::urls(
                &cfg.base_url,
                &cfg.model_id,
                cfg.settings.api_version.as_deref(),
            )
            .map_err(|_| "the deployment name cannot be used in a URL")?;
            (
                urls.chat,
                urls.embeddings,
                AuthStyle::Header(liter_llm::providers::azure::API_KEY_HEADER),
            )
        }
        _ => return Err("not an OpenAI-compatible provider"),
    };
    let uri = |url: String| -> Result<Uri, &'static str> {
        url.parse()
            .map_err(|_| "base_url does not form a valid URL")
    };
    let completions = chat.replacen("/chat/completions", "/completions", 1);
    Ok(PassThrough {
        name: d.name.clone(),
        completions_uri: Some(uri(completions)?),
        chat_uri: uri(chat)?,
        embeddings_uri: Some(uri(embeddings)?),
        auth: cfg
            .api_key
            .as_ref()
            .map(|k| auth_header(auth, k))
            .transpose()?,
    })
}

/// Where a Messages client's request goes as it came: Anthropic's own API only.
fn native_messages(
    d: &Deployment,
    cfg: &AdapterConfig,
) -> Result<Option<NativeMessages>, &'static str> {
    if d.provider != Provider::Anthropic {
        return Ok(None);
    }
    let uri = format!(
        "{}{}",
        cfg.base_url,
        liter_llm::providers::anthropic::MESSAGES_PATH
    )
    .parse()
    .map_err(|_| "base_url does not form a valid URL")?;
    let key = cfg
        .api_key
        .as_ref()
        .map(|k| {
            auth_header(
                AuthStyle::Header(liter_llm::providers::anthropic::API_KEY_HEADER),
                k,
            )
        })
        .transpose()?
        .map(|(_, v)| v);
    Ok(Some(NativeMessages { uri, key }))
}

/// The header that carries `key`, marked sensitive.
fn auth_header(style: AuthStyle, key: &Secret) -> Result<(HeaderName, HeaderValue), &'static str> {
    let (name, value) = match style {
        AuthStyle::Bearer => (
            axum::http::header::AUTHORIZATION,
            format!("Bearer {}", key.expose()),
        ),
        AuthStyle::Header(h) => (HeaderName::from_static(h), key.expose().to_string()),
    };
    let mut value = HeaderValue::from_str(&value)
        .map_err(|_| "the API key contains characters not allowed in an HTTP header")?;
    value.set_sensitive(true);
    Ok((name, value))
}
