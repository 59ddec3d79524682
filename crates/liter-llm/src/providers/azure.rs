//! Azure OpenAI: the OpenAI wire protocol at another URL with another auth header. It has
//! no translating adapter: requests and answers (content-filter annotations included) are
//! forwarded byte for byte; this module only knows where a deployment lives.
//!
//! # URLs
//!
//! The deployment id is the model id after `azure/`, and `base_url` is the resource
//! endpoint (`https://{resource}.openai.azure.com`):
//!
//! ```text
//! POST {base_url}/openai/deployments/{deployment}/chat/completions?api-version={v}
//! POST {base_url}/openai/deployments/{deployment}/embeddings?api-version={v}
//! ```
//!
//! With `api_version = "v1"` the newer v1 API is used instead, which takes the
//! deployment name as the body's `model` (the gateway writes the model id there) and
//! needs no dated version: `POST {base_url}/openai/v1/chat/completions` and
//! `/openai/v1/embeddings`. A `base_url` that already ends in `/openai` (or
//! `/openai/v1`) is accepted as well.
//!
//! # Decisions
//!
//! - **Auth**: the key goes in the `api-key` header. Microsoft Entra ID bearer tokens
//!   are not supported.
//! - **Environment**: LiteLLM's variables and the official SDK's are both honoured,
//!   LiteLLM's first: [`KEY_ENV`], [`BASE_URL_ENV`], [`VERSION_ENV`]. There is no default
//!   endpoint: `base_url` (or one of the variables) is required.
//! - **Version**: [`DEFAULT_API_VERSION`], the latest GA data-plane inference version of
//!   Microsoft's REST reference, when neither the config nor the environment names one.

use crate::providers::url::{encode_segment, model_segment, ModelIdError};

/// The `provider_model` prefix.
pub const PREFIX: &str = "azure";
/// The header that carries the API key.
pub const API_KEY_HEADER: &str = "api-key";
/// Variables holding the API key, first found wins (LiteLLM's, then the SDK's).
pub const KEY_ENV: &[&str] = &["AZURE_API_KEY", "AZURE_OPENAI_API_KEY"];
/// Variables holding the resource endpoint.
pub const BASE_URL_ENV: &[&str] = &["AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"];
/// Variables holding the `api-version` when the model entry sets no `api_version`.
pub const VERSION_ENV: &[&str] = &["AZURE_API_VERSION", "OPENAI_API_VERSION"];
/// The `api-version` sent when none is configured.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";
/// The `api_version` value that selects the v1 API (`/openai/v1/...`).
pub const V1: &str = "v1";

/// Chat-completions and embeddings URLs of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureUrls {
    pub chat: String,
    pub embeddings: String,
}

/// The URLs for `deployment` at the resource endpoint `base_url`, with `api_version`
/// (`None`: [`DEFAULT_API_VERSION`]; [`V1`]: the v1 API). The deployment name is
/// checked and written as one encoded path segment ([`crate::providers::url`]); with
/// the v1 API it goes in the body, and is checked all the same.
pub fn urls(
    base_url: &str,
    deployment: &str,
    api_version: Option<&str>,
) -> Result<AzureUrls, ModelIdError> {
    let deployment = model_segment(deployment)?;
    let base = base_url.trim_end_matches('/');
    let base = base.strip_suffix("/openai/v1").unwrap_or(base);
    let base = base.strip_suffix("/openai").unwrap_or(base);
    let version = api_version
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(DEFAULT_API_VERSION);
    if version == V1 {
        return Ok(AzureUrls {
            chat: format!("{base}/openai/v1/chat/completions"),
            embeddings: format!("{base}/openai/v1/embeddings"),
        });
    }
    let version = encode_segment(version);
    let url =
        |op: &str| format!("{base}/openai/deployments/{deployment}/{op}?api-version={version}");
    Ok(AzureUrls {
        chat: url("chat/completions"),
        embeddings: url("embeddings"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_urls() {
        let u = urls("https://res.openai.azure.com/", "gpt-4o-prod", None).unwrap();
        assert_eq!(
            u.chat,
            "https://res.openai.azure.com/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            u.embeddings,
            "https://res.openai.azure.com/openai/deployments/gpt-4o-prod/embeddings?api-version=2024-10-21"
        );
        let u = urls(
            "https://res.openai.azure.com/openai",
            "my dep",
            Some("2025-04-01-preview"),
        )
        .unwrap();
        assert_eq!(
            u.chat,
            "https://res.openai.azure.com/openai/deployments/my%20dep/chat/completions?api-version=2025-04-01-preview"
        );
    }

    #[test]
    fn v1_urls() {
        for base in [
            "https://res.openai.azure.com",
            "https://res.openai.azure.com/openai/v1/",
        ] {
            let u = urls(base, "dep", Some("v1")).unwrap();
            assert_eq!(
                u.chat,
                "https://res.openai.azure.com/openai/v1/chat/completions"
            );
            assert_eq!(
                u.embeddings,
                "https://res.openai.azure.com/openai/v1/embeddings"
            );
        }
    }
}
