//! Every model the docs and the examples configure has a price in the embedded table,
//! so cost tracking and budgets are right for what we tell users to run.

use std::path::Path;

use liter_llm::pricing::PriceTable;
use liter_llm::providers::Provider;

/// Providers whose models cost nothing here or whose names are the user's own: the
/// in-process mock, Azure deployments (named by the user), local servers.
const UNPRICED_BY_NATURE: [&str; 6] = [
    "mock/",
    "azure/",
    "custom/",
    "ollama/",
    "vllm/",
    "lm_studio/",
];

/// Every `provider_model = "..."` in the file (placeholders and patterns aside).
fn configured_models(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("provider_model")?.trim_start();
            let value = rest.strip_prefix('=')?.trim();
            let value = value.strip_prefix('"')?;
            Some(value[..value.find('"')?].to_owned())
        })
        .filter(|m| !m.contains("${") && !m.contains('*') && !m.contains('<') && m.contains('/'))
        .filter(|m| !UNPRICED_BY_NATURE.iter().any(|p| m.starts_with(p)))
        // A provider we do not route to: an example of a config the loader refuses.
        .filter(|m| {
            m.split_once('/')
                .and_then(|(p, _)| Provider::from_prefix(p))
                .is_some()
        })
        .collect()
}

#[test]
fn every_model_in_the_docs_and_examples_has_a_price() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["docs", "examples"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("md" | "toml")
            ) {
                files.push(path);
            }
        }
    }
    files.push(root.join("README.md"));
    let table = PriceTable::embedded();
    let mut missing = Vec::new();
    let mut seen = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for model in configured_models(&text) {
            seen += 1;
            if table.get(&model).is_none() {
                missing.push(format!("{}: {model}", path.display()));
            }
        }
    }
    assert!(
        seen > 20,
        "found only {seen} configured models: is the scan right?"
    );
    assert!(
        missing.is_empty(),
        "models without a price:\n{}",
        missing.join("\n")
    );
}
