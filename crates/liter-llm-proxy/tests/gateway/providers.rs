//! Providers: the prefix selects the provider; its key and base URL come from the
//! provider's own variables, in the documented order, when the model sets none.
//!
//! The expectations are typed out by hand from docs/providers.md (and the providers'
//! own API docs: Groq's OpenAI-compatible base URL is `https://api.groq.com/openai/v1`,
//! Fireworks' `https://api.fireworks.ai/inference/v1`, Ollama serves on port 11434,
//! vLLM on 8000, LM Studio on 1234), never read from the code's own tables.

use liter_llm_proxy::config::{load_str, Overrides};
use mock_upstream::MockUpstream;

use crate::support::*;

/// One row of docs/providers.md's table.
struct Documented {
    prefix: &'static str,
    /// `None`: no default, `base_url` is required.
    default_base_url: Option<&'static str>,
    /// Key variables, in lookup order.
    key_vars: &'static [&'static str],
    /// Base-URL variables, in lookup order.
    base_vars: &'static [&'static str],
    /// The header the key travels in, and its prefix.
    key_header: (&'static str, &'static str),
}

const BEARER: (&str, &str) = ("authorization", "Bearer ");

const DOCUMENTED: [Documented; 16] = [
    Documented {
        prefix: "openai",
        default_base_url: Some("https://api.openai.com/v1"),
        key_vars: &["OPENAI_API_KEY"],
        base_vars: &["OPENAI_BASE_URL", "OPENAI_API_BASE"],
        key_header: BEARER,
    },
    Documented {
        prefix: "groq",
        default_base_url: Some("https://api.groq.com/openai/v1"),
        key_vars: &["GROQ_API_KEY"],
        base_vars: &["GROQ_API_BASE"],
        key_header: BEARER,
    },
    Documented {
        prefix: "mistral",
        default_base_url: Some("https://api.mistral.ai/v1"),
        key_vars: &["MISTRAL_API_KEY"],
        base_vars: &["MISTRAL_API_BASE"],
        key_header: BEARER,
    },
    Documented {
        prefix: "deepseek",
        default_base_url: Some("https://api.deepseek.com/v1"),
        key_vars: &["DEEPSEEK_API_KEY"],
        base_vars: &["DEEPSEEK_API_BASE"],
        key_header: BEARER,
    },
    Documented {
        prefix: "together_ai",
        default_base_url: Some("https://api.together.xyz/v1"),
        key_vars: &["TOGETHERAI_API_KEY", "TOGETHER_API_KEY"],
        base_vars: &["TOGETHERAI_API_BASE"],
        key_header: BEARER,
    },
    Documented {
        prefix: "fireworks_ai",
        default_base_url: Some("https://api.fireworks.ai/inference/v1"),
        key_vars: &["FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY"],
        base_vars: &["FIREWORKS_API_BASE"],
        key_header: BEARER,
    },
    Documented {
        prefix: "openrouter",
        default_base_url: Some("https://openrouter.ai/api/v1"),
        key_vars: &["OPENROUTER_API_KEY"],
        base_vars: &["OPENROUTER_API_BASE"],
        key_header: BEARER,
    },
    Documented {
        prefix: "xai",
        default_base_url: Some("https://api.x.ai/v1"),
        key_vars: &["XAI_API_KEY"],
        base_vars: &["XAI_API_BASE"],
        key_header: BEARER,
    },
    Documented {
        prefix: "perplexity",
        default_base_url: Some("https://api.perplexity.ai"),
        key_vars: &["PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"],
        base_vars: &["PERPLEXITY_API_BASE"],
        key_header: BEARER,
    },
    Documented {
        prefix: "ollama",
        default_base_url: Some("http://localhost:11434/v1"),
        key_vars: &["OLLAMA_API_KEY"],
        base_vars: &["OLLAMA_API_BASE"],
        key_header: BEARER,
    },
    Documented {
        prefix: "vllm",
        default_base_url: Some("http://localhost:8000/v1"),
        key_vars: &["VLLM_API_KEY", "HOSTED_VLLM_API_KEY"],
        base_vars: &["VLLM_API_BASE", "HOSTED_VLLM_API_BASE"],
        key_header: BEARER,
    },
    Documented {
        prefix: "lm_studio",
        default_base_url: Some("http://localhost:1234/v1"),
        key_vars: &["LM_STUDIO_API_KEY"],
        base_vars: &["LM_STUDIO_API_BASE"],
        key_header: BEARER,
    },
    Documented {
        prefix: "anthropic",
        default_base_url: Some("https://api.anthropic.com"),
        key_vars: &["ANTHROPIC_API_KEY"],
        base_vars: &["ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"],
        key_header: ("x-api-key", ""),
    },
    Documented {
        prefix: "azure",
        default_base_url: None,
        key_vars: &["AZURE_API_KEY", "AZURE_OPENAI_API_KEY"],
        base_vars: &["AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"],
        key_header: ("api-key", ""),
    },
    Documented {
        prefix: "cohere",
        default_base_url: Some("https://api.cohere.com"),
        key_vars: &["COHERE_API_KEY", "CO_API_KEY"],
        base_vars: &["COHERE_API_BASE", "CO_API_URL"],
        key_header: BEARER,
    },
    Documented {
        prefix: "gemini",
        default_base_url: Some("https://generativelanguage.googleapis.com"),
        key_vars: &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        base_vars: &["GEMINI_API_BASE"],
        key_header: ("x-goog-api-key", ""),
    },
];

/// The base URL a provider's requests should use on the mock (the OpenAI-compatible
/// family includes the version path; the others stop before it).
fn mock_base(mock: &MockUpstream, d: &Documented) -> String {
    match d.prefix {
        "anthropic" | "azure" | "cohere" | "gemini" => format!("http://{}", mock.addr()),
        _ => mock.base_url(),
    }
}

fn one_model(prefix: &str, base_url: Option<&str>) -> String {
    let base = base_url.map_or(String::new(), |b| format!("base_url = \"{b}\"\n"));
    format!(
        "[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\n[[models]]\nname = \"m\"\nprovider_model = \"{prefix}/some-model\"\n{base}"
    )
}

/// The key the mock received on the one request it recorded, as the provider sends it.
async fn key_sent(
    mock: &MockUpstream,
    d: &Documented,
    env: Vec<(&'static str, String)>,
) -> Option<String> {
    mock.clear_requests();
    let toml = one_model(d.prefix, Some(&mock_base(mock, d)));
    let gw = Gateway::start_with_env(&toml, move |var| {
        env.iter().find(|(k, _)| *k == var).map(|(_, v)| v.clone())
    })
    .await;
    let resp = gw.chat(MASTER, hello("m")).await;
    assert_eq!(resp.status(), 200, "{}", d.prefix);
    let req = &mock.requests()[0];
    let (header, prefix) = d.key_header;
    let value = req.header(header)?;
    let key = value
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{}: {header}: {value}", d.prefix));
    Some(key.to_string())
}

#[tokio::test]
async fn each_provider_reads_its_key_variables_in_the_documented_order() {
    let mock = MockUpstream::start().await.unwrap();
    for d in &DOCUMENTED {
        let set = |vars: &[&'static str]| -> Vec<(&'static str, String)> {
            vars.iter().map(|v| (*v, format!("key-from-{v}"))).collect()
        };
        // Every variable set: the first one wins.
        let first = d.key_vars[0];
        assert_eq!(
            key_sent(&mock, d, set(d.key_vars)).await,
            Some(format!("key-from-{first}")),
            "{}",
            d.prefix
        );
        // An empty variable counts as not set: none at all sends no key ...
        let empty = vec![(first, String::new())];
        assert_eq!(key_sent(&mock, d, empty).await, None, "{}", d.prefix);
        // ... and with the first one empty, the next one is used.
        if let [_, .., last] = d.key_vars {
            let mut env = set(&[last]);
            env.push((first, String::new()));
            assert_eq!(
                key_sent(&mock, d, env).await,
                Some(format!("key-from-{last}")),
                "{}",
                d.prefix
            );
        }
    }
}

#[test]
fn each_provider_has_its_documented_default_and_base_url_variables() {
    let base_of = |d: &Documented, env: &[(&str, &str)]| -> Option<String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain(d.key_vars.iter().map(|k| (k.to_string(), "k".to_string())))
            .collect();
        let cfg = load_str(
            &one_model(d.prefix, None),
            "test.toml",
            &Overrides::default(),
            |var| env.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone()),
        );
        match cfg {
            Ok(cfg) => cfg.models[0].base_url.clone(),
            Err(e) => {
                assert!(d.default_base_url.is_none(), "{}: {e}", d.prefix);
                None
            }
        }
    };
    for d in &DOCUMENTED {
        assert_eq!(
            base_of(d, &[]).as_deref(),
            d.default_base_url,
            "{}: default",
            d.prefix
        );
        let all: Vec<(&str, &str)> = d
            .base_vars
            .iter()
            .zip(["http://first.example/v1", "http://second.example/v1"])
            .map(|(k, v)| (*k, v))
            .collect();
        assert_eq!(
            base_of(d, &all).as_deref(),
            Some("http://first.example/v1"),
            "{}: the first variable wins",
            d.prefix
        );
        if let [first, .., last] = d.base_vars {
            let only_last = [(*first, ""), (*last, "http://last.example/v1")];
            assert_eq!(
                base_of(d, &only_last).as_deref(),
                Some("http://last.example/v1"),
                "{}: then the next",
                d.prefix
            );
        }
    }
}

#[tokio::test]
async fn api_key_in_config_wins_over_the_variable() {
    let mock = MockUpstream::start().await.unwrap();
    let toml = format!(
        "[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"g\"\nprovider_model = \"groq/llama3-70b-8192\"\napi_key = \"from-config\"\nbase_url = \"{}\"\n",
        mock.base_url()
    );
    let gw =
        Gateway::start_with_env(&toml, |v| (v == "GROQ_API_KEY").then(|| "from-env".into())).await;
    assert_eq!(gw.chat(MASTER, hello("g")).await.status(), 200);
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some("Bearer from-config")
    );
}

#[tokio::test]
async fn base_url_variable_overrides_the_default() {
    let mock = MockUpstream::start().await.unwrap();
    let toml = format!("[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"o\"\nprovider_model = \"openai/gpt-4o\"\n");
    let base = mock.base_url();
    let gw = Gateway::start_with_env(&toml, move |v| match v {
        "OPENAI_BASE_URL" => Some(base.clone()),
        "OPENAI_API_KEY" => Some("sk-env".into()),
        _ => None,
    })
    .await;
    assert_eq!(gw.chat(MASTER, hello("o")).await.status(), 200);
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some("Bearer sk-env")
    );
}

#[tokio::test]
async fn upstream_rejecting_the_provider_key_is_passed_on() {
    let mock = MockUpstream::start_with(mock_upstream::MockOptions {
        require_api_key: Some("the-right-one".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let gw = Gateway::start(&base_config(&mock, "")).await;
    let err = expect_error(gw.chat(MASTER, hello("gpt-4o")).await, 401).await;
    assert_eq!(err["error"]["code"], "invalid_api_key");
}
