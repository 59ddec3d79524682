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

/// Whether to rewrite the expected files instead of checking them: `LITER_LLM_BLESS`
/// set, outside CI. Under CI (`CI` set to anything but empty, `0` or `false`) blessing is
/// refused: the files would be rewritten by the very code they check, and every
/// comparison would pass.
pub fn blessing(ci: Option<&str>, bless: bool) -> Result<bool, String> {
    let in_ci = ci.is_some_and(|v| !matches!(v.trim(), "" | "0" | "false"));
    match (bless, in_ci) {
        (true, true) => Err(
            "LITER_LLM_BLESS is set under CI: the expected files would be rewritten instead of checked"
                .into(),
        ),
        (bless, _) => Ok(bless),
    }
}

/// Compares `actual` with the expected file `name` (or writes it, when blessing).
pub fn snapshot(provider: &str, name: &str, actual: &Value) {
    let pretty = serde_json::to_string_pretty(actual).unwrap() + "\n";
    let ci = std::env::var("CI").ok();
    let bless = std::env::var_os("LITER_LLM_BLESS").is_some();
    if blessing(ci.as_deref(), bless).unwrap_or_else(|e| panic!("{e}")) {
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
