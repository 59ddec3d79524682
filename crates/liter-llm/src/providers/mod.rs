//! Providers, one module per wire protocol (not per vendor).
//!
//! `provider_model = "groq/llama3-70b-8192"` is split at the first `/`: the prefix
//! selects the provider, the rest is the model id the upstream receives.

pub mod adapter;
pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod chunks;
pub mod cohere;
pub mod convert;
pub mod embeddings;
pub mod errors;
pub mod fanout;
pub mod gemini;
pub mod mock;
pub mod openai_compat;
pub mod reasoning;
pub mod reshape;
pub mod sse;
pub mod stream_driver;
pub mod url;

pub use adapter::{Adapter, AdapterConfig, SharedAdapter};
pub use openai_compat::{AuthStyle, CompatProvider};

/// A provider the gateway can send requests to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// The OpenAI wire protocol, with per-vendor base URL, auth and key variables.
    OpenAiCompat(&'static CompatProvider),
    /// Anthropic's Messages API, translated.
    Anthropic,
    /// Azure OpenAI: the OpenAI protocol at deployment URLs with an `api-key` header.
    Azure,
    /// Cohere's Chat v2 and Embed v2, translated.
    Cohere,
    /// The Gemini API (Google AI Studio), translated.
    Gemini,
    /// Vertex AI: Gemini models, and Claude models in Anthropic's format.
    VertexAi,
    /// Amazon Bedrock's Converse API (SigV4, binary event stream), translated.
    Bedrock,
    /// The built-in echo model: answers in-process, no network, no key.
    Mock,
}

impl Provider {
    /// Look a provider up by its `provider_model` prefix.
    pub fn from_prefix(prefix: &str) -> Option<Provider> {
        if prefix == mock::PREFIX {
            return Some(Provider::Mock);
        }
        if prefix == anthropic::PREFIX {
            return Some(Provider::Anthropic);
        }
        if prefix == azure::PREFIX {
            return Some(Provider::Azure);
        }
        if prefix == cohere::PREFIX {
            return Some(Provider::Cohere);
        }
        if prefix == gemini::PREFIX {
            return Some(Provider::Gemini);
        }
        if prefix == gemini::VERTEX_PREFIX {
            return Some(Provider::VertexAi);
        }
        if prefix == bedrock::PREFIX {
            return Some(Provider::Bedrock);
        }
        openai_compat::lookup(prefix).map(Provider::OpenAiCompat)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Provider::OpenAiCompat(p) => p.name,
            Provider::Anthropic => anthropic::PREFIX,
            Provider::Azure => azure::PREFIX,
            Provider::Cohere => cohere::PREFIX,
            Provider::Gemini => gemini::PREFIX,
            Provider::VertexAi => gemini::VERTEX_PREFIX,
            Provider::Bedrock => bedrock::PREFIX,
            Provider::Mock => mock::PREFIX,
        }
    }

    /// Where a network provider lives and where its credentials come from (`None` for
    /// the in-process mock).
    pub fn network(&self) -> Option<Network> {
        match self {
            Provider::OpenAiCompat(p) => Some(Network {
                name: p.name,
                default_base_url: p.default_base_url,
                key_env: p.key_env,
                base_url_env: p.base_url_env,
                key_required: p.key_required,
            }),
            Provider::Anthropic => Some(Network {
                name: anthropic::PREFIX,
                default_base_url: Some(anthropic::DEFAULT_BASE_URL),
                key_env: anthropic::KEY_ENV,
                base_url_env: anthropic::BASE_URL_ENV,
                key_required: true,
            }),
            Provider::Azure => Some(Network {
                name: azure::PREFIX,
                default_base_url: None,
                key_env: azure::KEY_ENV,
                base_url_env: azure::BASE_URL_ENV,
                key_required: true,
            }),
            Provider::Cohere => Some(Network {
                name: cohere::PREFIX,
                default_base_url: Some(cohere::DEFAULT_BASE_URL),
                key_env: cohere::KEY_ENV,
                base_url_env: cohere::BASE_URL_ENV,
                key_required: true,
            }),
            Provider::Gemini => Some(Network {
                name: gemini::PREFIX,
                default_base_url: Some(gemini::DEFAULT_BASE_URL),
                key_env: gemini::KEY_ENV,
                base_url_env: gemini::BASE_URL_ENV,
                key_required: true,
            }),
            // The base URL follows the location (see `derived_base_url`); credentials
            // come from `vertex_credentials`, or `api_key` as a fixed access token.
            Provider::VertexAi => Some(Network {
                name: gemini::VERTEX_PREFIX,
                default_base_url: None,
                key_env: &[],
                base_url_env: &[],
                key_required: false,
            }),
            // The base URL is derived from the region by the config loader.
            Provider::Bedrock => Some(Network {
                name: bedrock::PREFIX,
                default_base_url: None,
                key_env: &[],
                base_url_env: bedrock::BASE_URL_ENV,
                key_required: false,
            }),
            Provider::Mock => None,
        }
    }

    /// The translating adapter for one deployment of this provider; `None` for
    /// providers whose bytes are forwarded unchanged (the OpenAI-compatible family) or
    /// answered in-process (`mock`). `Err` says why the settings cannot work.
    pub fn adapter(&self, cfg: &AdapterConfig) -> Option<Result<SharedAdapter, String>> {
        match self {
            Provider::OpenAiCompat(_) | Provider::Azure | Provider::Mock => None,
            Provider::Anthropic => Some(
                anthropic::AnthropicAdapter::new(
                    cfg,
                    anthropic::AnthropicOptions {
                        drop_params: cfg.settings.drop_params,
                        reasoning_budgets: cfg.settings.reasoning_budgets,
                        ..Default::default()
                    },
                )
                .map(|a| std::sync::Arc::new(a) as SharedAdapter),
            ),
            Provider::Cohere => Some(
                cohere::CohereAdapter::new(cfg).map(|a| std::sync::Arc::new(a) as SharedAdapter),
            ),
            Provider::Gemini => Some(
                gemini::GeminiAdapter::new(cfg).map(|a| std::sync::Arc::new(a) as SharedAdapter),
            ),
            Provider::VertexAi => Some(
                gemini::VertexAdapter::new(cfg).map(|a| std::sync::Arc::new(a) as SharedAdapter),
            ),
            Provider::Bedrock => Some(
                bedrock::BedrockAdapter::new(cfg).map(|a| std::sync::Arc::new(a) as SharedAdapter),
            ),
        }
    }

    /// A default base URL that depends on the deployment's settings (Vertex AI: the
    /// location's host), used when the config gives no `base_url`.
    pub fn derived_base_url(&self, settings: &adapter::ProviderSettings) -> Option<String> {
        match self {
            Provider::VertexAi => Some(gemini::vertex_base_url(
                settings
                    .vertex_location
                    .as_deref()
                    .unwrap_or(gemini::DEFAULT_LOCATION),
            )),
            _ => None,
        }
    }

    /// The provider-specific settings ([`adapter::ProviderSettings`] fields, by their
    /// config names) this provider reads. The config loader rejects the others.
    pub fn setting_fields(&self) -> &'static [&'static str] {
        match self {
            Provider::Azure => &["api_version"],
            Provider::OpenAiCompat(_)
            | Provider::Mock
            | Provider::Anthropic
            | Provider::Cohere
            | Provider::Gemini => &[],
            Provider::VertexAi => &["vertex_project", "vertex_location", "vertex_credentials"],
            Provider::Bedrock => &[
                "aws_access_key_id",
                "aws_secret_access_key",
                "aws_session_token",
                "aws_region_name",
            ],
        }
    }

    /// Whether requests are translated (and `drop_params` can apply).
    pub fn translated(&self) -> bool {
        !matches!(
            self,
            Provider::OpenAiCompat(_) | Provider::Azure | Provider::Mock
        )
    }

    /// Every provider that is reached over the network, in table order.
    pub fn all_network() -> Vec<Provider> {
        let mut all: Vec<Provider> = openai_compat::PROVIDERS
            .iter()
            .map(Provider::OpenAiCompat)
            .collect();
        all.push(Provider::Anthropic);
        all.push(Provider::Azure);
        all.push(Provider::Cohere);
        all.push(Provider::Gemini);
        all.push(Provider::VertexAi);
        all.push(Provider::Bedrock);
        all
    }

    /// Every provider prefix this build knows, for error messages and docs.
    pub fn known_prefixes() -> Vec<&'static str> {
        let mut all: Vec<&'static str> = openai_compat::PROVIDERS.iter().map(|p| p.name).collect();
        all.push(anthropic::PREFIX);
        all.push(azure::PREFIX);
        all.push(cohere::PREFIX);
        all.push(gemini::PREFIX);
        all.push(gemini::VERTEX_PREFIX);
        all.push(bedrock::PREFIX);
        all.push(mock::PREFIX);
        all
    }
}

/// A network provider's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub name: &'static str,
    /// `None`: `base_url` is required.
    pub default_base_url: Option<&'static str>,
    /// Variables holding the API key, first found wins.
    pub key_env: &'static [&'static str],
    /// Variables that override the default base URL.
    pub base_url_env: &'static [&'static str],
    pub key_required: bool,
}

/// Prefixes of providers that later releases translate natively. Named so that a
/// config using them fails with "not supported yet" rather than "unknown provider".
pub const PLANNED_PREFIXES: &[&str] = &[];

/// A parsed `provider_model`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderModel {
    pub provider: Provider,
    /// The model id sent upstream, e.g. `llama3-70b-8192`.
    pub model_id: String,
}

/// Why a `provider_model` string could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderModelError {
    /// No `/`, or nothing on one side of it.
    Malformed,
    /// A provider we plan to support but do not translate yet.
    NotSupportedYet(String),
    Unknown(String),
}

impl ProviderModel {
    pub fn parse(s: &str) -> Result<ProviderModel, ProviderModelError> {
        let (prefix, model_id) = s.split_once('/').ok_or(ProviderModelError::Malformed)?;
        if prefix.is_empty() || model_id.is_empty() {
            return Err(ProviderModelError::Malformed);
        }
        match Provider::from_prefix(prefix) {
            Some(provider) => Ok(ProviderModel {
                provider,
                model_id: model_id.to_string(),
            }),
            None if PLANNED_PREFIXES.contains(&prefix) => {
                Err(ProviderModelError::NotSupportedYet(prefix.to_string()))
            }
            None => Err(ProviderModelError::Unknown(prefix.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_first_slash() {
        let pm = ProviderModel::parse("openrouter/meta-llama/llama-3-70b").unwrap();
        assert_eq!(pm.provider.name(), "openrouter");
        assert_eq!(pm.model_id, "meta-llama/llama-3-70b");
    }

    #[test]
    fn errors() {
        assert_eq!(
            ProviderModel::parse("gpt-4o"),
            Err(ProviderModelError::Malformed)
        );
        assert_eq!(
            ProviderModel::parse("/x"),
            Err(ProviderModelError::Malformed)
        );
        assert_eq!(
            ProviderModel::parse("bedrock/x").unwrap().provider,
            Provider::Bedrock
        );
        assert_eq!(
            ProviderModel::parse("gemini/gemini-2.0-flash")
                .unwrap()
                .provider,
            Provider::Gemini
        );
        assert_eq!(
            ProviderModel::parse("vertex_ai/claude-sonnet-4@20250514")
                .unwrap()
                .provider,
            Provider::VertexAi
        );
        assert_eq!(
            ProviderModel::parse("anthropic/claude-sonnet-4-20250514")
                .unwrap()
                .provider,
            Provider::Anthropic
        );
        assert_eq!(
            ProviderModel::parse("nope/x"),
            Err(ProviderModelError::Unknown("nope".into()))
        );
        assert_eq!(
            ProviderModel::parse("mock/echo").unwrap().provider,
            Provider::Mock
        );
    }
}
