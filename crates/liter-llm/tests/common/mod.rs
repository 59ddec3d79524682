//! Fixture files of the provider suites: `tests/fixtures/<provider>/<name>`, read, and
//! compared with what a translation produced (`LITER_LLM_BLESS=1` rewrites them; review
//! the diff before committing).

#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

pub fn path(provider: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(provider)
        .join(name)
}

pub fn read(provider: &str, name: &str) -> Vec<u8> {
    std::fs::read(path(provider, name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn read_json(provider: &str, name: &str) -> Value {
    serde_json::from_slice(&read(provider, name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Compares `actual` with the expected file `name` (or writes it, when blessing).
pub fn snapshot(provider: &str, name: &str, actual: &Value) {
    let pretty = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("LITER_LLM_BLESS").is_some() {
        std::fs::write(path(provider, name), pretty).unwrap();
        return;
    }
    let expected = read_json(provider, name);
    assert!(
        *actual == expected,
        "{name} differs; actual:\n{pretty}\n(bless with LITER_LLM_BLESS=1 after review)"
    );
}

/// `bytes` cut at the given positions (taken modulo the length, in any order).
pub fn split_at_cuts(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for cut in cuts {
        pieces.push(bytes[start..cut].to_vec());
        start = cut;
    }
    pieces.push(bytes[start..].to_vec());
    pieces
}
