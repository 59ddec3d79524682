//! Base URL and API key of a network provider, shared by `[[models]]` and
//! `[[aliases]]`: the given values, else the provider's variables, else its defaults.

use std::fmt;

use liter_llm::providers::Network;
use secrecy::SecretString;

/// Where a base URL came from: the file (`base_url`) or a provider variable. Shown in
/// messages instead of the URL, which may hold a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlSource(pub Option<&'static str>);

impl fmt::Display for UrlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("base_url"),
            Some(var) => write!(f, "base_url (from ${var})"),
        }
    }
}

/// Why a base URL or API key cannot be used. Messages never quote the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("provider {provider:?} needs base_url")]
    BaseUrlRequired { provider: &'static str },
    #[error("{0} is not a valid URL")]
    InvalidBaseUrl(UrlSource),
    #[error("{0} must be an absolute http:// or https:// URL")]
    BaseUrlNotAbsolute(UrlSource),
    #[error("the API key contains characters not allowed in an HTTP header (a newline or control character?)")]
    InvalidApiKey,
}

impl NetworkError {
    /// The config field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            NetworkError::InvalidApiKey => "api_key",
            _ => "base_url",
        }
    }
}

/// A resolved base URL (always `Some` for a network provider) and API key.
pub type NetworkCredentials = (Option<String>, Option<SecretString>);

fn check_base_url(url: &str, from: UrlSource) -> Result<String, NetworkError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| NetworkError::InvalidBaseUrl(from))?;
    match uri.scheme_str() {
        Some("http") | Some("https") if uri.authority().is_some() => {
            Ok(url.trim_end_matches('/').to_string())
        }
        _ => Err(NetworkError::BaseUrlNotAbsolute(from)),
    }
}

/// Base URL and API key of a network deployment: the given values, else the
/// provider's variables, else its defaults.
pub fn resolve_network(
    p: Network,
    base_url: Option<&str>,
    api_key: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<NetworkCredentials, NetworkError> {
    let env_url = p
        .base_url_env
        .iter()
        .find_map(|v| env(v).filter(|x| !x.is_empty()).map(|u| (u, *v)));
    let (url, from) = match (base_url, env_url) {
        (Some(u), _) => (u.to_string(), UrlSource(None)),
        (None, Some((u, var))) => (u, UrlSource(Some(var))),
        (None, None) => match p.default_base_url {
            Some(u) => (u.to_string(), UrlSource(None)),
            None => return Err(NetworkError::BaseUrlRequired { provider: p.name }),
        },
    };
    let url = check_base_url(&url, from)?;
    let api_key = api_key.map(str::to_string).or_else(|| key_from_env(p, env));
    if api_key
        .as_deref()
        .is_some_and(|k| http::HeaderValue::from_str(&format!("Bearer {k}")).is_err())
    {
        return Err(NetworkError::InvalidApiKey);
    }
    Ok((Some(url), api_key.map(SecretString::from)))
}

/// The provider's API key from its own variables (the first set and not empty).
pub(crate) fn key_from_env(p: Network, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    p.key_env
        .iter()
        .find_map(|v| env(v).filter(|x| !x.is_empty()))
}
