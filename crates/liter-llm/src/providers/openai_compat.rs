//! The OpenAI wire protocol and the vendors that speak it, as a data table.
//!
//! The request body is forwarded as the client sent it (only `model` is rewritten),
//! so this module only knows where to send it and how to authenticate.

/// How the API key is presented upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// A named header carrying the bare key (Azure's `api-key`).
    Header(&'static str),
}

/// One vendor of the OpenAI-compatible family.
#[derive(Debug, PartialEq, Eq)]
pub struct CompatProvider {
    /// The `provider_model` prefix.
    pub name: &'static str,
    /// Base URL including the version path; `None` means `base_url` is required.
    pub default_base_url: Option<&'static str>,
    pub auth: AuthStyle,
    /// Environment variables holding the API key, first found wins.
    pub key_env: &'static [&'static str],
    /// Environment variables that override the default base URL.
    pub base_url_env: &'static [&'static str],
    /// Whether the vendor refuses requests without a key (local servers do not).
    pub key_required: bool,
}

/// A vendor that speaks the protocol with a Bearer key.
const fn bearer(
    name: &'static str,
    base: &'static str,
    key_env: &'static [&'static str],
    base_url_env: &'static [&'static str],
    key_required: bool,
) -> CompatProvider {
    CompatProvider {
        name,
        default_base_url: Some(base),
        auth: AuthStyle::Bearer,
        key_env,
        base_url_env,
        key_required,
    }
}

const fn hosted(
    name: &'static str,
    base: &'static str,
    key_env: &'static [&'static str],
    base_url_env: &'static [&'static str],
) -> CompatProvider {
    bearer(name, base, key_env, base_url_env, true)
}

/// A server on the user's own machine: a key is optional.
const fn local(
    name: &'static str,
    base: &'static str,
    key_env: &'static [&'static str],
    base_url_env: &'static [&'static str],
) -> CompatProvider {
    bearer(name, base, key_env, base_url_env, false)
}

/// The table. Base URLs and variable names are the vendors' documented ones.
pub static PROVIDERS: &[CompatProvider] = &[
    hosted(
        "openai",
        "https://api.openai.com/v1",
        &["OPENAI_API_KEY"],
        &["OPENAI_BASE_URL", "OPENAI_API_BASE"],
    ),
    hosted(
        "groq",
        "https://api.groq.com/openai/v1",
        &["GROQ_API_KEY"],
        &["GROQ_API_BASE"],
    ),
    hosted(
        "mistral",
        "https://api.mistral.ai/v1",
        &["MISTRAL_API_KEY"],
        &["MISTRAL_API_BASE"],
    ),
    hosted(
        "deepseek",
        "https://api.deepseek.com/v1",
        &["DEEPSEEK_API_KEY"],
        &["DEEPSEEK_API_BASE"],
    ),
    hosted(
        "together_ai",
        "https://api.together.xyz/v1",
        &["TOGETHERAI_API_KEY", "TOGETHER_API_KEY"],
        &["TOGETHERAI_API_BASE"],
    ),
    hosted(
        "fireworks_ai",
        "https://api.fireworks.ai/inference/v1",
        &["FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY"],
        &["FIREWORKS_API_BASE"],
    ),
    hosted(
        "openrouter",
        "https://openrouter.ai/api/v1",
        &["OPENROUTER_API_KEY"],
        &["OPENROUTER_API_BASE"],
    ),
    hosted(
        "xai",
        "https://api.x.ai/v1",
        &["XAI_API_KEY"],
        &["XAI_API_BASE"],
    ),
    hosted(
        "perplexity",
        "https://api.perplexity.ai",
        &["PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"],
        &["PERPLEXITY_API_BASE"],
    ),
    local(
        "ollama",
        "http://localhost:11434/v1",
        &["OLLAMA_API_KEY"],
        &["OLLAMA_API_BASE"],
    ),
    local(
        "vllm",
        "http://localhost:8000/v1",
        &["VLLM_API_KEY", "HOSTED_VLLM_API_KEY"],
        &["VLLM_API_BASE", "HOSTED_VLLM_API_BASE"],
    ),
    local(
        "lm_studio",
        "http://localhost:1234/v1",
        &["LM_STUDIO_API_KEY"],
        &["LM_STUDIO_API_BASE"],
    ),
    CompatProvider {
        name: "custom",
        default_base_url: None,
        auth: AuthStyle::Bearer,
        key_env: &[],
        base_url_env: &[],
        key_required: false,
    },
];

pub fn lookup(prefix: &str) -> Option<&'static CompatProvider> {
    PROVIDERS.iter().find(|p| p.name == prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendor_of_the_issue_is_in_the_table() {
        for name in [
            "openai",
            "groq",
            "mistral",
            "deepseek",
            "together_ai",
            "fireworks_ai",
            "openrouter",
            "xai",
            "perplexity",
            "ollama",
            "vllm",
            "lm_studio",
            "custom",
        ] {
            assert!(lookup(name).is_some(), "{name} missing");
        }
        assert_eq!(lookup("custom").unwrap().default_base_url, None);
        assert_eq!(
            lookup("groq").unwrap().default_base_url,
            Some("https://api.groq.com/openai/v1")
        );
    }
}
