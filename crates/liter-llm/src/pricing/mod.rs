//! Prices per token, prompt-cache prices and context limits of the models we route to,
//! and the cost of a request computed from its [`Usage`].
//!
//! The table is embedded in the binary (`prices.json`, next to this file) and written by
//! hand from the providers' own pricing pages: every entry names its `source` (the page)
//! and the date it was `updated`. Its format is that of LiteLLM's
//! `model_prices_and_context_window.json` (same field names, USD per token), so a LiteLLM
//! file can be merged over it with [`PriceTable::with_file`], and single models can be
//! overridden from the configuration with [`PriceTable::insert`].
//!
//! Keys are `provider/model`, exactly as `provider_model` is written in the configuration:
//! `openai/gpt-4o`, `anthropic/claude-sonnet-4-20250514`, `groq/llama-3.3-70b-versatile`,
//! `bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0`, `azure/<deployment>`.
//!
//! What the table does not model: long-context tiers (prompts above 200k tokens on
//! Gemini Pro or Claude Sonnet 4.5, above 272k on GPT-6, above 100k on Claude Haiku 5.5
//! are billed at a higher rate for the whole request; the table holds the base tier),
//! Anthropic's 1-hour cache writes (the table holds the 5-minute write price), batch and
//! priority tiers, regional surcharges beyond the keys that name them, per-request
//! search fees (Perplexity, grounding) and context-cache storage.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::providers::{Provider, PLANNED_PREFIXES};
use crate::types::Usage;

/// The embedded table, in LiteLLM's format with `provider/model` keys.
const EMBEDDED_JSON: &str = include_str!("prices.json");
/// How the embedded table is named in errors and in [`PriceTable::skipped`].
const EMBEDDED_ORIGIN: &str = "embedded prices.json";

/// The price of one model, in US dollars per token.
///
/// Field names follow LiteLLM's `model_prices_and_context_window.json`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ModelPrice {
    /// Price of a prompt token that is neither read from nor written to a prompt cache.
    pub input_cost_per_token: f64,
    /// Price of a completion token (reasoning tokens included). 0 for embedding models.
    pub output_cost_per_token: f64,
    /// Price of a prompt token read from the provider's prompt cache; `None`: the input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_token_cost: Option<f64>,
    /// Price of a prompt token written to the provider's prompt cache (Anthropic's 5-minute
    /// cache write); `None`: the input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_token_cost: Option<f64>,
    /// The longest prompt the model accepts, in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_tokens: Option<u64>,
    /// The longest completion the model can produce, in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// Where the price was read: the provider's pricing page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// When the price was last checked against `source`, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
}

impl ModelPrice {
    /// Cost in USD of a request with this usage at these prices.
    ///
    /// `prompt_tokens` counts every prompt token, cached or not (OpenAI's semantics; the
    /// Anthropic adapter adds cache reads and writes into it). Cache reads are the larger of
    /// `cache_read_input_tokens` and `prompt_tokens_details.cached_tokens` (providers report
    /// one or both, with the same value); cache writes are `cache_creation_input_tokens`.
    /// The tokens left once both are taken out (never fewer than zero) are billed at the
    /// input price, reads and writes at their own prices (the input price when the model
    /// has none), completion tokens at the output price.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let cached = usage
            .prompt_tokens_details
            .map(|d| d.cached_tokens)
            .unwrap_or(0);
        let cache_read = usage.cache_read_input_tokens.unwrap_or(0).max(cached);
        let cache_write = usage.cache_creation_input_tokens.unwrap_or(0);
        let uncached = usage
            .prompt_tokens
            .saturating_sub(cache_read)
            .saturating_sub(cache_write);
        let read_price = self
            .cache_read_input_token_cost
            .unwrap_or(self.input_cost_per_token);
        let write_price = self
            .cache_creation_input_token_cost
            .unwrap_or(self.input_cost_per_token);
        uncached as f64 * self.input_cost_per_token
            + cache_read as f64 * read_price
            + cache_write as f64 * write_price
            + usage.completion_tokens as f64 * self.output_cost_per_token
    }
}

/// Model prices by `provider/model`.
///
/// Lookups ([`get`](Self::get), [`cost`](Self::cost)) try the key as given first. When it
/// is absent, a key that ends in a date snapshot (`-2024-08-06`, `-20250514`, or Vertex's
/// `@20250514`) is tried without it, so `openai/gpt-4.1-2025-04-14` is priced as
/// `openai/gpt-4.1`; snapshots priced apart from their alias (`openai/gpt-4o-2024-05-13`)
/// have entries of their own. `azure/<deployment>` keys never fall back: a deployment's
/// name is chosen by its owner and says nothing certain about the model behind it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable {
    entries: HashMap<String, ModelPrice>,
    skipped: Vec<String>,
}

impl PriceTable {
    /// The embedded table (parsed once; cheap to call).
    pub fn embedded() -> &'static PriceTable {
        static EMBEDDED: OnceLock<PriceTable> = OnceLock::new();
        EMBEDDED.get_or_init(|| {
            let mut table = PriceTable::default();
            // The tests parse the same file and require it to load whole; should it ever
            // not, the table stays empty rather than failing every caller.
            if table.merge_json(EMBEDDED_JSON, EMBEDDED_ORIGIN).is_err() {
                table = PriceTable::default();
            }
            table
        })
    }

    /// A copy of the embedded table with a LiteLLM-format JSON file merged over it (the
    /// file's entries win).
    ///
    /// The file is one JSON object of entries. Keys may carry a provider prefix
    /// (`openai/gpt-4o`), or be bare with the provider in `"litellm_provider"`
    /// (`"gpt-4o": {"litellm_provider": "openai", ..}` becomes `openai/gpt-4o`; LiteLLM's
    /// `vertex_ai-language-models` and the like are read as `vertex_ai`, `cohere_chat` as
    /// `cohere`). LiteLLM's other fields and its `sample_spec` entry are ignored. An entry
    /// without both an input and an output price (image, audio and rerank models), with a
    /// field of the wrong type, or without a provider, is skipped and listed in
    /// [`skipped`](Self::skipped) for the caller to warn about. A file that cannot be read
    /// or is not valid JSON is an error naming the file (and the line and column).
    pub fn with_file(path: &Path) -> Result<PriceTable, PricingError> {
        let text = std::fs::read_to_string(path).map_err(|source| PricingError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text, &path.display().to_string())
    }

    /// As [`with_file`](Self::with_file), for JSON already in memory; `origin` names it in
    /// errors.
    pub fn from_json_str(json: &str, origin: &str) -> Result<PriceTable, PricingError> {
        let mut table = Self::embedded().clone();
        table.skipped.clear();
        table.merge_json(json, origin)?;
        Ok(table)
    }

    /// Sets the price of one model (a per-model override from the configuration).
    pub fn insert(&mut self, provider_model: &str, price: ModelPrice) {
        self.entries.insert(provider_model.to_string(), price);
    }

    /// The price of `provider_model`: the exact key, else (except for `azure/`) the key
    /// without a trailing date snapshot.
    pub fn get(&self, provider_model: &str) -> Option<&ModelPrice> {
        if let Some(price) = self.entries.get(provider_model) {
            return Some(price);
        }
        if provider_model.starts_with("azure/") {
            return None;
        }
        let base = strip_date_suffix(provider_model)?;
        match base.split_once('/') {
            Some((provider, model)) if !provider.is_empty() && !model.is_empty() => {
                self.entries.get(base)
            }
            _ => None,
        }
    }

    /// Cost in USD of a request with this usage, or None for an unknown model.
    /// See [`ModelPrice::cost`] for how cache tokens are counted.
    pub fn cost(&self, provider_model: &str, usage: &Usage) -> Option<f64> {
        self.get(provider_model).map(|price| price.cost(usage))
    }

    /// Number of models priced.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no model is priced.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ModelPrice)> {
        self.entries
            .iter()
            .map(|(key, price)| (key.as_str(), price))
    }

    /// Entries of the merged file that were skipped, as `"<origin>: <key>: <reason>"`.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Parses `json` and inserts its entries over the current ones. Nothing is inserted
    /// when the JSON is malformed.
    fn merge_json(&mut self, json: &str, origin: &str) -> Result<(), PricingError> {
        let root: Map<String, Value> =
            serde_json::from_str(json).map_err(|e| PricingError::json(origin, &e))?;
        for (key, value) in &root {
            if key == "sample_spec" {
                continue;
            }
            match parse_entry(key, value) {
                Ok((key, price)) => {
                    self.entries.insert(key, price);
                }
                Err(reason) => self.skipped.push(format!("{origin}: {key}: {reason}")),
            }
        }
        Ok(())
    }
}

/// Why a price file could not be used.
#[derive(Debug)]
pub enum PricingError {
    /// The file could not be read.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The text is not a JSON object; `line` and `column` are 1-based.
    Json {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
}

impl PricingError {
    fn json(origin: &str, e: &serde_json::Error) -> PricingError {
        let full = e.to_string();
        let location = format!(" at line {} column {}", e.line(), e.column());
        let message = full.strip_suffix(&location).unwrap_or(&full).to_string();
        PricingError::Json {
            origin: origin.to_string(),
            line: e.line(),
            column: e.column(),
            message,
        }
    }
}

impl fmt::Display for PricingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PricingError::Io { path, source } => {
                write!(f, "cannot read price file {}: {source}", path.display())
            }
            PricingError::Json {
                origin,
                line,
                column,
                message,
            } => write!(
                f,
                "invalid price file {origin}: line {line}, column {column}: {message}"
            ),
        }
    }
}

impl std::error::Error for PricingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PricingError::Io { source, .. } => Some(source),
            PricingError::Json { .. } => None,
        }
    }
}

/// One entry of a LiteLLM-format file: its `provider/model` key and its price.
fn parse_entry(key: &str, value: &Value) -> Result<(String, ModelPrice), String> {
    let obj = value.as_object().ok_or("not a JSON object")?;
    let provider = match obj.get("litellm_provider") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.as_str()),
        Some(_) => return Err("litellm_provider is not a string".to_string()),
    };
    let key = resolve_key(key, provider).ok_or("no provider prefix and no litellm_provider")?;
    let input = opt_price(obj, "input_cost_per_token")?;
    let output = opt_price(obj, "output_cost_per_token")?;
    let (Some(input_cost_per_token), Some(output_cost_per_token)) = (input, output) else {
        return Err("no input_cost_per_token and output_cost_per_token".to_string());
    };
    let price = ModelPrice {
        input_cost_per_token,
        output_cost_per_token,
        cache_read_input_token_cost: opt_price(obj, "cache_read_input_token_cost")?,
        cache_creation_input_token_cost: opt_price(obj, "cache_creation_input_token_cost")?,
        max_input_tokens: opt_count(obj, "max_input_tokens")?,
        max_output_tokens: opt_count(obj, "max_output_tokens")?,
        source: opt_string(obj, "source")?,
        updated: opt_string(obj, "updated")?,
    };
    Ok((key, price))
}

fn opt_price(obj: &Map<String, Value>, field: &str) -> Result<Option<f64>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
            _ => Err(format!("{field} is not a price (a number, 0 or more)")),
        },
    }
}

fn opt_count(obj: &Map<String, Value>, field: &str) -> Result<Option<u64>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match (v.as_u64(), v.as_f64()) {
            (Some(n), _) => Ok(Some(n)),
            // Whole numbers written as floats (`1e6`, `8192.0`).
            (None, Some(x)) if x >= 0.0 && x.fract() == 0.0 && x <= u64::MAX as f64 => {
                Ok(Some(x as u64))
            }
            _ => Err(format!("{field} is not a token count")),
        },
    }
}

fn opt_string(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{field} is not a string")),
    }
}

/// The `provider/model` key of a file entry: the key itself when it starts with a provider
/// prefix (ours, or the entry's `litellm_provider`), else `litellm_provider/key`.
fn resolve_key(key: &str, litellm_provider: Option<&str>) -> Option<String> {
    let provider = litellm_provider.map(normalize_provider);
    if let Some((prefix, model)) = key.split_once('/') {
        if !prefix.is_empty()
            && !model.is_empty()
            && (provider == Some(prefix) || is_known_prefix(prefix))
        {
            return Some(key.to_string());
        }
    }
    match provider {
        Some(p) if !p.is_empty() && !key.is_empty() => Some(format!("{p}/{key}")),
        // A prefixed key of a provider we do not know, kept as written.
        _ if key
            .split_once('/')
            .is_some_and(|(p, m)| !p.is_empty() && !m.is_empty()) =>
        {
            Some(key.to_string())
        }
        _ => None,
    }
}

fn is_known_prefix(prefix: &str) -> bool {
    Provider::from_prefix(prefix).is_some() || PLANNED_PREFIXES.contains(&prefix)
}

/// LiteLLM's provider names to our prefixes: `vertex_ai-language-models` → `vertex_ai`,
/// `fireworks_ai-embedding-models` → `fireworks_ai`, `cohere_chat` → `cohere`,
/// `text-completion-openai` → `openai`.
fn normalize_provider(provider: &str) -> &str {
    match provider {
        "cohere_chat" => "cohere",
        "text-completion-openai" => "openai",
        _ => match provider.split_once('-') {
            Some((head, _)) if is_known_prefix(head) => head,
            _ => provider,
        },
    }
}

/// `key` without a trailing `-YYYY-MM-DD`, `-YYYYMMDD` or `@YYYYMMDD` (years 20xx).
fn strip_date_suffix(key: &str) -> Option<&str> {
    let b = key.as_bytes();
    let n = b.len();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if n > 11 {
        let t = &b[n - 11..];
        if t[0] == b'-'
            && &t[1..3] == b"20"
            && digits(&t[1..5])
            && t[5] == b'-'
            && digits(&t[6..8])
            && t[8] == b'-'
            && digits(&t[9..11])
        {
            return key.get(..n - 11);
        }
    }
    if n > 9 {
        let t = &b[n - 9..];
        if (t[0] == b'-' || t[0] == b'@') && &t[1..3] == b"20" && digits(&t[1..9]) {
            return key.get(..n - 9);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_suffixes() {
        assert_eq!(
            strip_date_suffix("openai/gpt-4o-2024-08-06"),
            Some("openai/gpt-4o")
        );
        assert_eq!(
            strip_date_suffix("anthropic/claude-sonnet-4-20250514"),
            Some("anthropic/claude-sonnet-4")
        );
        assert_eq!(
            strip_date_suffix("vertex_ai/claude-sonnet-4@20250514"),
            Some("vertex_ai/claude-sonnet-4")
        );
        assert_eq!(strip_date_suffix("mistral/mistral-large-2512"), None);
        assert_eq!(strip_date_suffix("xai/grok-4-0709"), None);
        assert_eq!(strip_date_suffix("openai/gpt-4o"), None);
        assert_eq!(strip_date_suffix("-20250514"), None);
    }

    #[test]
    fn keys_of_litellm_entries() {
        assert_eq!(
            resolve_key("openai/gpt-4o", None).as_deref(),
            Some("openai/gpt-4o")
        );
        assert_eq!(
            resolve_key("gpt-4o", Some("openai")).as_deref(),
            Some("openai/gpt-4o")
        );
        assert_eq!(
            resolve_key(
                "meta-llama/Llama-3.3-70B-Instruct-Turbo",
                Some("together_ai")
            )
            .as_deref(),
            Some("together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo")
        );
        assert_eq!(
            resolve_key("openrouter/openai/gpt-4o", Some("openrouter")).as_deref(),
            Some("openrouter/openai/gpt-4o")
        );
        assert_eq!(
            resolve_key("gemini-2.5-pro", Some("vertex_ai-language-models")).as_deref(),
            Some("vertex_ai/gemini-2.5-pro")
        );
        assert_eq!(
            resolve_key("command-r", Some("cohere_chat")).as_deref(),
            Some("cohere/command-r")
        );
        assert_eq!(
            resolve_key("anthropic.claude-3-haiku-20240307-v1:0", Some("bedrock")).as_deref(),
            Some("bedrock/anthropic.claude-3-haiku-20240307-v1:0")
        );
        assert_eq!(resolve_key("gpt-4o", None), None);
    }
}
