//! The embedded price table, cost arithmetic, and LiteLLM-format price files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use liter_llm::pricing::{ModelPrice, PriceTable, PricingError};
use liter_llm::types::{PromptTokensDetails, Usage};
use serde_json::{json, Value};

const EMBEDDED: &str = include_str!("../src/pricing/prices.json");
const GENERATED: &str = include_str!("../src/pricing/litellm_prices.json");

/// Every provider prefix we route to over the network and price (local servers are free).
const PRICED_PREFIXES: &[&str] = &[
    "openai",
    "anthropic",
    "groq",
    "mistral",
    "deepseek",
    "together_ai",
    "fireworks_ai",
    "openrouter",
    "xai",
    "perplexity",
    "gemini",
    "vertex_ai",
    "bedrock",
    "azure",
    "cohere",
];

/// Both embedded files' entries, the hand-written ones over the generated ones.
fn raw_entries() -> serde_json::Map<String, Value> {
    let mut all: serde_json::Map<String, Value> = serde_json::from_str(GENERATED).unwrap();
    let hand: serde_json::Map<String, Value> = serde_json::from_str(EMBEDDED).unwrap();
    all.extend(hand);
    all
}

fn close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-12,
        "cost {actual} != expected {expected}"
    );
}

fn usage(prompt: u64, completion: u64) -> Usage {
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        ..Usage::default()
    }
}

fn price(input: f64, output: f64) -> ModelPrice {
    ModelPrice {
        input_cost_per_token: input,
        output_cost_per_token: output,
        cache_read_input_token_cost: None,
        cache_creation_input_token_cost: None,
        input_cost_per_audio_token: None,
        output_cost_per_audio_token: None,
        max_input_tokens: None,
        max_output_tokens: None,
        source: None,
        updated: None,
    }
}

/// A file in the temp directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "liter-llm-pricing-{}-{name}.json",
            std::process::id()
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn embedded_table_loads_every_entry() {
    let table = PriceTable::embedded();
    assert!(table.skipped().is_empty(), "{:?}", table.skipped());
    assert_eq!(table.len(), raw_entries().len());
    assert!(table.len() >= 100, "only {} entries", table.len());
    assert!(!table.is_empty());
    // Parsed once: the same table every time.
    assert!(std::ptr::eq(table, PriceTable::embedded()));
}

#[test]
fn every_entry_is_priced_sourced_and_dated() {
    let table = PriceTable::embedded();
    for (key, raw) in raw_entries() {
        let p = table
            .get(&key)
            .unwrap_or_else(|| panic!("{key} not loaded"));
        let embedding = raw["mode"] == "embedding";
        assert!(p.input_cost_per_token > 0.0, "{key}: input price");
        if embedding {
            assert_eq!(
                p.output_cost_per_token, 0.0,
                "{key}: embedding output price"
            );
        } else {
            assert!(p.output_cost_per_token > 0.0, "{key}: output price");
        }
        // Sanity bounds: nothing costs more than $1000 per million tokens.
        assert!(p.input_cost_per_token < 1e-3, "{key}: input price too high");
        assert!(
            p.output_cost_per_token < 1e-3,
            "{key}: output price too high"
        );
        if let Some(read) = p.cache_read_input_token_cost {
            assert!(
                read > 0.0 && read <= p.input_cost_per_token,
                "{key}: cache read"
            );
        }
        if let Some(write) = p.cache_creation_input_token_cost {
            assert!(write >= p.input_cost_per_token, "{key}: cache write");
        }
        for limit in [p.max_input_tokens, p.max_output_tokens]
            .into_iter()
            .flatten()
        {
            assert!(limit >= 512, "{key}: limit {limit}");
        }
        let source = p
            .source
            .as_deref()
            .unwrap_or_else(|| panic!("{key}: no source"));
        // A provider's pricing page, or LiteLLM's file and key (the generated layer).
        assert!(
            source.starts_with("https://") || source.starts_with("LiteLLM "),
            "{key}: source {source}"
        );
        let updated = p
            .updated
            .as_deref()
            .unwrap_or_else(|| panic!("{key}: no date"));
        let b = updated.as_bytes();
        assert!(
            b.len() == 10
                && b[4] == b'-'
                && b[7] == b'-'
                && b.iter()
                    .enumerate()
                    .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit()),
            "{key}: updated {updated}"
        );
        let (prefix, model) = key.split_once('/').unwrap();
        assert!(PRICED_PREFIXES.contains(&prefix), "{key}: unknown prefix");
        assert!(!model.is_empty(), "{key}");
        assert_eq!(raw["litellm_provider"], prefix, "{key}: litellm_provider");
    }
}

#[test]
fn every_provider_has_models() {
    let table = PriceTable::embedded();
    for prefix in PRICED_PREFIXES {
        let n = table
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{prefix}/")))
            .count();
        assert!(n >= 2, "{prefix}: {n} models");
    }
    // Embedding models of the providers that sell them.
    let raw = raw_entries();
    for prefix in ["openai", "mistral", "gemini", "bedrock", "azure", "cohere"] {
        assert!(
            raw.iter()
                .any(|(k, v)| k.starts_with(&format!("{prefix}/")) && v["mode"] == "embedding"),
            "{prefix}: no embedding model"
        );
    }
    for key in [
        "openai/gpt-4o",
        "openai/gpt-4o-mini",
        "openai/text-embedding-3-small",
        "anthropic/claude-sonnet-4-20250514",
        "anthropic/claude-sonnet-4-5-20250929",
        "anthropic/claude-haiku-4-5-20251001",
        "groq/llama-3.3-70b-versatile",
        "bedrock/amazon.titan-embed-text-v2:0",
        "bedrock/cohere.embed-english-v3",
        "azure/gpt-4o",
        "azure/gpt-4o-mini",
        "cohere/embed-v4.0",
        "cohere/command-a-03-2025",
        "vertex_ai/gemini-2.5-pro",
        "vertex_ai/claude-sonnet-4-5@20250929",
    ] {
        assert!(table.get(key).is_some(), "{key} missing");
    }
}

#[test]
fn cost_without_cache() {
    let table = PriceTable::embedded();
    // gpt-4o: $2.50 / $10 per million.
    close(
        table.cost("openai/gpt-4o", &usage(1000, 1000)).unwrap(),
        0.0125,
    );
    // Embeddings: input only.
    close(
        table
            .cost("openai/text-embedding-3-small", &usage(1_000_000, 0))
            .unwrap(),
        0.02,
    );
    close(table.cost("openai/gpt-4o", &usage(0, 0)).unwrap(), 0.0);
}

#[test]
fn cost_with_openai_cached_tokens() {
    // 1000 prompt tokens of which 200 cached ($1.25), 500 completion tokens.
    let u = Usage {
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: 200,
            audio_tokens: None,
        }),
        ..usage(1000, 500)
    };
    let cost = PriceTable::embedded().cost("openai/gpt-4o", &u).unwrap();
    close(cost, 800.0 * 2.5e-6 + 200.0 * 1.25e-6 + 500.0 * 1e-5);
    close(cost, 0.00725);
}

#[test]
fn cost_with_anthropic_cache_reads_and_writes() {
    // As the Anthropic adapter reports it: prompt_tokens = input 500 + read 1000 + write
    // 500, the read also in cached_tokens. Sonnet 4: $3 in, $0.30 read, $3.75 write, $15 out.
    let u = Usage {
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: 1000,
            audio_tokens: None,
        }),
        cache_read_input_tokens: Some(1000),
        cache_creation_input_tokens: Some(500),
        ..usage(2000, 100)
    };
    let cost = PriceTable::embedded()
        .cost("anthropic/claude-sonnet-4-20250514", &u)
        .unwrap();
    close(
        cost,
        500.0 * 3e-6 + 1000.0 * 3e-7 + 500.0 * 3.75e-6 + 100.0 * 1.5e-5,
    );
    close(cost, 0.005175);
}

#[test]
fn cache_tokens_without_cache_prices_cost_the_input_price() {
    let mut table = PriceTable::default();
    table.insert("custom/m", price(1e-6, 2e-6));
    let u = Usage {
        cache_read_input_tokens: Some(300),
        cache_creation_input_tokens: Some(200),
        ..usage(1000, 10)
    };
    close(
        table.cost("custom/m", &u).unwrap(),
        1000.0 * 1e-6 + 10.0 * 2e-6,
    );
}

#[test]
fn audio_tokens_are_priced_at_the_audio_prices() {
    let mut table = PriceTable::default();
    table.insert(
        "openai/voice",
        ModelPrice {
            input_cost_per_audio_token: Some(4e-5),
            output_cost_per_audio_token: Some(8e-5),
            ..price(2.5e-6, 1e-5)
        },
    );
    // 100 prompt tokens, 30 of them audio; 50 completion tokens, 20 of them audio.
    let u = Usage {
        prompt_tokens_details: Some(liter_llm::types::PromptTokensDetails {
            cached_tokens: 0,
            audio_tokens: Some(30),
        }),
        completion_tokens_details: Some(liter_llm::types::CompletionTokensDetails {
            audio_tokens: Some(20),
            ..Default::default()
        }),
        ..usage(100, 50)
    };
    close(
        table.cost("openai/voice", &u).unwrap(),
        70.0 * 2.5e-6 + 30.0 * 4e-5 + 30.0 * 1e-5 + 20.0 * 8e-5,
    );
    // Without audio prices, audio tokens cost what text tokens do.
    table.insert("openai/plain", price(2.5e-6, 1e-5));
    close(
        table.cost("openai/plain", &u).unwrap(),
        100.0 * 2.5e-6 + 50.0 * 1e-5,
    );
    // The generated table carries LiteLLM's audio prices.
    let realtime = PriceTable::embedded()
        .iter()
        .find(|(_, p)| p.input_cost_per_audio_token.is_some());
    assert!(realtime.is_some(), "no audio price in the embedded table");
}

#[test]
fn cache_tokens_beyond_the_prompt_never_make_negative_input() {
    let mut table = PriceTable::default();
    table.insert(
        "custom/m",
        ModelPrice {
            cache_read_input_token_cost: Some(1e-7),
            cache_creation_input_token_cost: Some(2e-6),
            ..price(1e-6, 2e-6)
        },
    );
    // Inconsistent usage: 150 cache tokens reported for a 100-token prompt.
    let u = Usage {
        cache_read_input_tokens: Some(100),
        cache_creation_input_tokens: Some(50),
        ..usage(100, 0)
    };
    close(
        table.cost("custom/m", &u).unwrap(),
        100.0 * 1e-7 + 50.0 * 2e-6,
    );
}

#[test]
fn unknown_models_have_no_cost() {
    let table = PriceTable::embedded();
    assert_eq!(table.cost("openai/no-such-model", &usage(10, 10)), None);
    assert_eq!(table.cost("nowhere/gpt-4o", &usage(10, 10)), None);
    assert_eq!(table.cost("gpt-4o", &usage(10, 10)), None);
    assert_eq!(table.cost("", &usage(10, 10)), None);
    assert!(PriceTable::default().is_empty());
    assert_eq!(
        PriceTable::default().cost("openai/gpt-4o", &usage(1, 1)),
        None
    );
}

#[test]
fn date_suffix_falls_back_to_the_alias() {
    let table = PriceTable::embedded();
    let alias = table.get("openai/gpt-4.1").unwrap();
    assert_eq!(table.get("openai/gpt-4.1-2031-04-14"), Some(alias));
    assert_eq!(
        table.get("openai/gpt-4o-mini-2031-07-18"),
        table.get("openai/gpt-4o-mini")
    );
    assert_eq!(
        table.get("vertex_ai/claude-opus-4-6@20260205"),
        table.get("vertex_ai/claude-opus-4-6")
    );
    // A snapshot with a price of its own is found before any fallback.
    let old = table.get("openai/gpt-4o-2024-05-13").unwrap();
    assert_ne!(old, table.get("openai/gpt-4o").unwrap());
    assert_eq!(old.input_cost_per_token, 5e-6);
    // No guessing behind Azure deployment names.
    assert!(table.get("azure/gpt-4.1").is_some());
    assert_eq!(table.get("azure/gpt-4.1-2025-04-14"), None);
    // Only dates are stripped.
    assert_eq!(table.get("openai/gpt-4.1-preview"), None);
    assert_eq!(table.get("openai/gpt-4.1-12345678"), None);

    let mut custom = PriceTable::default();
    custom.insert("x/model", price(1e-6, 1e-6));
    assert!(custom.get("x/model-20250101").is_some());
    assert!(custom.get("x/model-2025-01-01").is_some());
    assert!(custom.get("x/model@20250101").is_some());
    assert_eq!(custom.get("x/model-2025-01"), None);
    close(custom.cost("x/model-20250101", &usage(1, 1)).unwrap(), 2e-6);
}

#[test]
fn insert_overrides_one_model() {
    let mut table = PriceTable::embedded().clone();
    table.insert("openai/gpt-4o", price(1e-6, 1e-6));
    close(
        table.cost("openai/gpt-4o", &usage(1000, 1000)).unwrap(),
        0.002,
    );
    // The embedded table is untouched.
    close(
        PriceTable::embedded()
            .cost("openai/gpt-4o", &usage(1000, 1000))
            .unwrap(),
        0.0125,
    );
}

#[test]
fn model_price_from_config_needs_only_the_two_prices() {
    let p: ModelPrice = serde_json::from_value(
        json!({"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}),
    )
    .unwrap();
    assert_eq!(p, price(1e-6, 2e-6));
    assert_eq!(
        serde_json::to_value(&p).unwrap(),
        json!({"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6})
    );
}

#[test]
fn file_entries_override_the_embedded_ones() {
    let file = TempFile::new(
        "override",
        &json!({
            "openai/gpt-4o": {
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 4e-6,
                "max_input_tokens": 128000,
                "supports_vision": true
            },
            "groq/my-new-model": {"input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7}
        })
        .to_string(),
    );
    let table = PriceTable::with_file(&file.0).unwrap();
    assert!(table.skipped().is_empty(), "{:?}", table.skipped());
    assert_eq!(table.len(), PriceTable::embedded().len() + 1);
    let gpt = table.get("openai/gpt-4o").unwrap();
    assert_eq!(gpt.input_cost_per_token, 1e-6);
    assert_eq!(gpt.output_cost_per_token, 4e-6);
    assert_eq!(gpt.max_input_tokens, Some(128000));
    // The file's entry replaces the embedded one whole: no cache price survives.
    assert_eq!(gpt.cache_read_input_token_cost, None);
    close(
        table.cost("groq/my-new-model", &usage(10, 10)).unwrap(),
        3e-6,
    );
    // Untouched entries remain.
    assert_eq!(
        table.get("anthropic/claude-sonnet-4-20250514"),
        PriceTable::embedded().get("anthropic/claude-sonnet-4-20250514")
    );
    assert_eq!(PriceTable::embedded().get("groq/my-new-model"), None);
}

#[test]
fn litellm_bare_keys_take_their_provider() {
    let json = json!({
        "sample_spec": {
            "max_tokens": "LEGACY",
            "input_cost_per_token": 0.0,
            "output_cost_per_token": 0.0,
            "litellm_provider": "one of https://docs.litellm.ai/docs/providers",
            "mode": "one of chat, embedding, completion, image_generation"
        },
        "gpt-4o": {
            "max_tokens": 16384,
            "max_input_tokens": 128000,
            "max_output_tokens": 16384,
            "input_cost_per_token": 3e-6,
            "output_cost_per_token": 1.2e-5,
            "cache_read_input_token_cost": 1.5e-6,
            "litellm_provider": "openai",
            "mode": "chat",
            "supports_function_calling": true
        },
        "claude-test-20250101": {
            "input_cost_per_token": 1e-6,
            "output_cost_per_token": 5e-6,
            "cache_creation_input_token_cost": 1.25e-6,
            "litellm_provider": "anthropic",
            "mode": "chat"
        },
        "gemini-test": {
            "input_cost_per_token": 1e-7,
            "output_cost_per_token": 4e-7,
            "litellm_provider": "vertex_ai-language-models"
        },
        "meta-llama/Test-70B": {
            "input_cost_per_token": 8.8e-7,
            "output_cost_per_token": 8.8e-7,
            "litellm_provider": "together_ai"
        },
        "dall-e-3": {
            "input_cost_per_pixel": 4e-8,
            "output_cost_per_pixel": 0.0,
            "litellm_provider": "openai",
            "mode": "image_generation"
        },
        "no-provider": {"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6},
        "bad-type": {
            "input_cost_per_token": "0.000001",
            "output_cost_per_token": 1e-6,
            "litellm_provider": "openai"
        }
    })
    .to_string();
    let table = PriceTable::from_json_str(&json, "litellm.json").unwrap();

    let gpt = table.get("openai/gpt-4o").unwrap();
    assert_eq!(gpt.input_cost_per_token, 3e-6);
    assert_eq!(gpt.cache_read_input_token_cost, Some(1.5e-6));
    assert_eq!(gpt.max_output_tokens, Some(16384));
    assert_eq!(gpt.source, None);
    assert!(table.get("anthropic/claude-test-20250101").is_some());
    assert!(table.get("vertex_ai/gemini-test").is_some());
    assert!(table.get("together_ai/meta-llama/Test-70B").is_some());
    assert_eq!(table.get("openai/dall-e-3"), None);
    assert_eq!(table.get("openai/sample_spec"), None);
    assert_eq!(table.get("openai/bad-type"), None);

    // Three entries skipped, and said so; sample_spec is not one of them.
    let skipped = table.skipped();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(skipped.iter().all(|s| s.starts_with("litellm.json: ")));
    for key in ["dall-e-3", "no-provider", "bad-type"] {
        assert!(
            skipped.iter().any(|s| s.contains(&format!(": {key}: "))),
            "{key} not in {skipped:?}"
        );
    }
    // gpt-4o replaced an embedded entry; the other three are new.
    assert_eq!(table.len(), PriceTable::embedded().len() + 3);
}

#[test]
fn malformed_file_is_an_error_with_file_line_and_column() {
    let file = TempFile::new(
        "malformed",
        "{\n  \"openai/x\": {\n    \"input_cost_per_token\": 1e-6,\n  }\n}\n",
    );
    let err = PriceTable::with_file(&file.0).unwrap_err();
    let text = err.to_string();
    match &err {
        PricingError::Json {
            origin,
            line,
            column,
            ..
        } => {
            assert_eq!(origin, &file.0.display().to_string());
            assert_eq!((*line, *column), (4, 3));
        }
        other => panic!("not a JSON error: {other:?}"),
    }
    assert!(text.contains(&file.0.display().to_string()), "{text}");
    assert!(text.contains("line 4, column 3"), "{text}");

    // Valid JSON that is not an object of entries.
    let err = PriceTable::from_json_str("[1, 2]", "list.json").unwrap_err();
    assert!(matches!(err, PricingError::Json { line: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("list.json"), "{err}");
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let path = std::env::temp_dir().join("liter-llm-pricing-does-not-exist.json");
    let err = PriceTable::with_file(&path).unwrap_err();
    assert!(matches!(err, PricingError::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
}
