//! One validator per section of the file. Each reads its part of the parsed file and
//! returns its part of the runtime config, pushing every problem it finds.
//!
//! Validators import the shared vocabulary (`config::problems`), the file structs, and
//! at most the helpers of another section (`network`, `settings`); never the
//! orchestrator (`config::validate`).

pub mod aliases;
pub mod cache;
pub mod files;
pub mod general;
pub mod governance;
pub mod health;
pub mod keys;
pub mod logging;
pub mod models;
pub mod network;
pub mod redis;
pub mod routing;
pub mod server;
pub(crate) mod settings;

use std::collections::{BTreeMap, HashSet};

use crate::config::file::ModelEntry;

/// The model names a reference may use: `[[models]]` names (not wildcard patterns)
/// and `[router] model_group_alias` names.
pub(crate) struct Names<'a> {
    models: HashSet<&'a str>,
    aliases: &'a BTreeMap<String, String>,
}

impl<'a> Names<'a> {
    pub fn new(models: &'a [ModelEntry], aliases: &'a BTreeMap<String, String>) -> Self {
        let models = models
            .iter()
            .map(|m| m.name.as_str())
            // A wildcard model's pattern is not a name others may refer to.
            .filter(|n| !n.trim().is_empty() && !n.contains('*'))
            .collect();
        Names { models, aliases }
    }

    /// A `[[models]]` name.
    pub fn is_model(&self, name: &str) -> bool {
        self.models.contains(name)
    }

    /// A `[[models]]` name or a group alias.
    pub fn is_known(&self, name: &str) -> bool {
        self.is_model(name) || self.aliases.contains_key(name)
    }

    /// The pool a known name stands for: itself, or a group alias's target.
    pub fn pool_of<'n>(&'n self, name: &'n str) -> Option<&'n str> {
        if self.is_model(name) {
            return Some(name);
        }
        self.aliases.get(name).map(String::as_str)
    }
}
