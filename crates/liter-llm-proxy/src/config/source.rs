//! Reading the running config again, for a reload and for the model admin API: where
//! it came from ([`Source`]), and [`Source::read`], which loads the file exactly as at
//! start-up with the stored models after the file's, so that a stored model is
//! validated with the file as one config. Also [`stored_entry`]: a model in LiteLLM's
//! `/model/new` shape as a `[[models]]` entry.

use std::path::PathBuf;

use super::file::ModelEntry;
use super::load::{ConfigError, Issue};
use super::overrides::Overrides;
use super::view::Inspection;

/// Where the running config came from: the file, the command-line overrides, and
/// whether a LiteLLM file's unsupported keys are ignored.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub overrides: Overrides,
    pub allow_unsupported: bool,
}

/// A model kept by the model admin API: its id and its `[[models]]` entry.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    pub id: String,
    pub entry: ModelEntry,
}

/// A config read by [`Source::read`].
#[derive(Debug)]
pub struct Reading {
    /// The config and its masked file (for `GET /config`).
    pub inspection: Inspection,
    /// A LiteLLM file's unsupported keys, ignored by `allow_unsupported`.
    pub ignored: Vec<Issue>,
}

impl Source {
    /// Whether the file is LiteLLM's format.
    pub fn is_litellm(&self) -> bool {
        super::litellm::is_litellm(&self.path)
    }

    /// Load and validate the file as start-up does, with `stored` after its models;
    /// each stored deployment gets its id and is marked as stored.
    pub fn read(&self, stored: &[StoredEntry]) -> Result<Reading, ConfigError> {
        let extra: Vec<ModelEntry> = stored.iter().map(|s| s.entry.clone()).collect();
        let (mut inspection, ignored) = if self.is_litellm() {
            let loaded = super::litellm::inspect_file_with(
                &self.path,
                &self.overrides,
                self.allow_unsupported,
                &extra,
            )?;
            (loaded.value, loaded.ignored)
        } else {
            let i = super::load::inspect_file_with(&self.path, &self.overrides, &extra)?;
            (i, Vec::new())
        };
        let models = &mut inspection.config.models;
        // Validation keeps every entry in order, so the stored ones are the last.
        if let Some(first) = models.len().checked_sub(stored.len()) {
            for (d, s) in models[first..].iter_mut().zip(stored) {
                d.id = s.id.clone();
                d.stored = true;
            }
        }
        Ok(Reading {
            inspection,
            ignored,
        })
    }
}

/// A model in LiteLLM's shape (`model_name`, `litellm_params`, `model_info` without
/// `id`) as the `[[models]]` entry a `config.yaml` with it would give, through the
/// same mapping. `Err`: the problems, each with its path in the body (a key that
/// is not supported is one of them).
pub fn stored_entry(model: &serde_json::Value) -> Result<ModelEntry, Vec<Issue>> {
    let doc = serde_json::json!({
        "model_list": [model],
        // Keep the entry's tags: whether they filter is the running config's choice.
        "router_settings": {"enable_tag_filtering": true},
    });
    let text = doc.to_string();
    let env = |name: &str| std::env::var(name).ok();
    let prepared = super::litellm::prepare(&text, "model", &env).map_err(|e| {
        vec![Issue {
            path: String::new(),
            line: 1,
            column: 1,
            message: e.to_string(),
        }]
    })?;
    let mut issues: Vec<Issue> = prepared
        .problems
        .into_iter()
        .chain(prepared.unsupported)
        .map(|i| Issue {
            path: i
                .path
                .strip_prefix("model_list[0].")
                .unwrap_or(&i.path)
                .to_string(),
            ..i
        })
        .collect();
    let mut file = prepared.file;
    // A provider wildcard (`anthropic/*` → `anthropic/*`), an `[[aliases]]` entry in a
    // file, is the wildcard model it is equivalent to: the same pattern on both sides
    // fills the client's name in as it came, with the entry's key and base URL.
    if let Some(alias) = file.aliases.pop() {
        file.models.push(ModelEntry {
            name: alias.pattern.clone(),
            provider_model: alias.pattern,
            api_key: alias.api_key,
            base_url: alias.base_url,
            ..ModelEntry::default()
        });
    }
    if file.models.len() != 1 {
        issues.push(Issue {
            path: "model_name".into(),
            line: 1,
            column: 1,
            message: "the body must give exactly one model".into(),
        });
    }
    match file.models.pop() {
        Some(entry) if issues.is_empty() => Ok(entry),
        _ => Err(issues),
    }
}
