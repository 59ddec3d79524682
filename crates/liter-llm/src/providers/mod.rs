//! Providers, one module per wire protocol (not per vendor).
//!
//! `provider_model = "groq/llama3-70b-8192"` is split at the first `/`: the prefix
//! selects the provider, the rest is the model id the upstream receives.

pub mod mock;
pub mod openai_compat;

pub use openai_compat::{AuthStyle, CompatProvider};

/// A provider the gateway can send requests to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// The OpenAI wire protocol, with per-vendor base URL, auth and key variables.
    OpenAiCompat(&'static CompatProvider),
    /// The built-in echo model: answers in-process, no network, no key.
    Mock,
}

impl Provider {
    /// Look a provider up by its `provider_model` prefix.
    pub fn from_prefix(prefix: &str) -> Option<Provider> {
        if prefix == mock::PREFIX {
            return Some(Provider::Mock);
        }
        openai_compat::lookup(prefix).map(Provider::OpenAiCompat)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Provider::OpenAiCompat(p) => p.name,
            Provider::Mock => mock::PREFIX,
        }
    }

    /// Every provider prefix this build knows, for error messages and docs.
    pub fn known_prefixes() -> Vec<&'static str> {
        let mut all: Vec<&'static str> = openai_compat::PROVIDERS.iter().map(|p| p.name).collect();
        all.push(mock::PREFIX);
        all
    }
}

/// Prefixes of providers that later releases translate natively. Named so that a
/// config using them fails with "not supported yet" rather than "unknown provider".
pub const PLANNED_PREFIXES: &[&str] = &[
    "anthropic",
    "gemini",
    "vertex_ai",
    "bedrock",
    "azure",
    "cohere",
];

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
            ProviderModel::parse("anthropic/claude"),
            Err(ProviderModelError::NotSupportedYet("anthropic".into()))
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
