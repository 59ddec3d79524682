//! Provider inference as LiteLLM does it: a written `provider/` prefix wins (with
//! LiteLLM's spellings of our providers mapped), and a bare model name of a known
//! family goes to that family's provider (`gpt-4o` → `openai/gpt-4o`,
//! `claude-3-5-sonnet-20240620` → `anthropic/...`, a bare `gemini-1.5-pro` → Vertex
//! AI, as LiteLLM sends it there). A name no rule places is `None`: the caller reports
//! it, naming the entry.
//!
//! A leaf: it reads only the provider table of the `liter-llm` crate.

use liter_llm::Provider;

/// LiteLLM prefixes spelt differently from ours.
const PREFIX_SPELLINGS: &[(&str, &str)] = &[
    ("hosted_vllm", "vllm"),
    ("ollama_chat", "ollama"),
    ("vertex_ai_beta", "vertex_ai"),
    ("text-completion-openai", "openai"),
];

/// Bare model-name families, first match wins: (name prefix, provider prefix).
pub const FAMILIES: &[(&str, &str)] = &[
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("text-embedding-", "openai"),
    ("text-moderation-", "openai"),
    ("omni-moderation-", "openai"),
    ("davinci-", "openai"),
    ("babbage-", "openai"),
    ("dall-e-", "openai"),
    ("whisper-", "openai"),
    ("tts-", "openai"),
    ("claude-", "anthropic"),
    ("gemini-", "vertex_ai"),
    ("mistral-", "mistral"),
    ("open-mistral-", "mistral"),
    ("open-mixtral-", "mistral"),
    ("codestral-", "mistral"),
    ("pixtral-", "mistral"),
    ("ministral-", "mistral"),
    ("command-", "cohere"),
    ("command", "cohere"),
    ("embed-english-", "cohere"),
    ("embed-multilingual-", "cohere"),
    ("deepseek-", "deepseek"),
    ("grok-", "xai"),
    ("sonar", "perplexity"),
    ("anthropic.", "bedrock"),
    ("amazon.", "bedrock"),
    ("meta.llama", "bedrock"),
    ("cohere.", "bedrock"),
    ("mistral.", "bedrock"),
    ("ai21.", "bedrock"),
];

/// `provider/model` for what LiteLLM's `model` (and `custom_llm_provider`) say, or
/// `None` when the provider cannot be told.
pub fn provider_model(model: &str, custom_llm_provider: Option<&str>) -> Option<String> {
    let model = model.trim();
    if let Some(p) = custom_llm_provider.map(str::trim).filter(|p| !p.is_empty()) {
        let p = spelling(p);
        // LiteLLM accepts the prefix written twice (`openai/openai/x` is not meant).
        let id = model.strip_prefix(&format!("{p}/")).unwrap_or(model);
        return Some(format!("{p}/{id}"));
    }
    if let Some((prefix, rest)) = model.split_once('/') {
        let ours = spelling(prefix);
        if Provider::from_prefix(ours).is_some() || is_bare_family(model).is_none() {
            // A known prefix, or an unknown one the loader names in its error.
            return Some(format!("{ours}/{rest}"));
        }
    }
    is_bare_family(model).map(|p| format!("{p}/{model}"))
}

fn spelling(prefix: &str) -> &str {
    PREFIX_SPELLINGS
        .iter()
        .find(|(theirs, _)| *theirs == prefix)
        .map_or(prefix, |(_, ours)| ours)
}

/// The provider of a bare model name of a known family.
fn is_bare_family(model: &str) -> Option<&'static str> {
    // `text-embedding-004` is Vertex AI's, `text-embedding-3-small` OpenAI's.
    if model.starts_with("text-embedding-00") || model.starts_with("textembedding-gecko") {
        return Some("vertex_ai");
    }
    if model.contains('/') {
        return None;
    }
    FAMILIES
        .iter()
        .find(|(family, _)| model.starts_with(family))
        .map(|(_, provider)| *provider)
}

#[cfg(test)]
mod tests {
    use super::provider_model;

    #[test]
    fn the_inference_table() {
        for (model, want) in [
            ("gpt-3.5-turbo", Some("openai/gpt-3.5-turbo")),
            ("gpt-4o", Some("openai/gpt-4o")),
            ("o3-mini", Some("openai/o3-mini")),
            (
                "text-embedding-3-small",
                Some("openai/text-embedding-3-small"),
            ),
            (
                "claude-3-5-sonnet-20240620",
                Some("anthropic/claude-3-5-sonnet-20240620"),
            ),
            ("gemini-1.5-pro", Some("vertex_ai/gemini-1.5-pro")),
            ("text-embedding-004", Some("vertex_ai/text-embedding-004")),
            ("mistral-large-latest", Some("mistral/mistral-large-latest")),
            ("command-r-plus", Some("cohere/command-r-plus")),
            ("deepseek-chat", Some("deepseek/deepseek-chat")),
            (
                "anthropic.claude-3-haiku-20240307-v1:0",
                Some("bedrock/anthropic.claude-3-haiku-20240307-v1:0"),
            ),
            // a prefix wins over the family
            ("groq/gpt-oss-120b", Some("groq/gpt-oss-120b")),
            ("azure/gpt-4o-deployment", Some("azure/gpt-4o-deployment")),
            ("gemini/gemini-1.5-flash", Some("gemini/gemini-1.5-flash")),
            ("hosted_vllm/llama", Some("vllm/llama")),
            ("ollama_chat/llama3", Some("ollama/llama3")),
            (
                "openrouter/meta-llama/llama-3-70b",
                Some("openrouter/meta-llama/llama-3-70b"),
            ),
            // unknown prefix: kept, so the loader names it
            ("nosuch/model", Some("nosuch/model")),
            // nothing places it
            ("my-fine-tune", None),
            ("llama3", None),
        ] {
            assert_eq!(provider_model(model, None).as_deref(), want, "{model}");
        }
        assert_eq!(
            provider_model("my-model", Some("openai")).as_deref(),
            Some("openai/my-model")
        );
    }
}
