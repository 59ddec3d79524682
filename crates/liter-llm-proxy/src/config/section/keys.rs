//! `[[keys]]`: virtual keys, unique, different from the master key, with model
//! allowlists that name something reachable and validated limits.

use std::collections::HashMap;

use liter_llm::ProviderModel;
use secrecy::{ExposeSecret, SecretString};

use super::governance::{key_limits, KeyLimits};
use super::Names;
use crate::config::file::KeyEntry;
use crate::config::problems::{key, Problems, Seg};

/// A `[[keys]]` entry.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub key: SecretString,
    pub description: Option<String>,
    /// Allowed model names; empty means all.
    pub models: Vec<String>,
    /// rpm, tpm, budget, expiry.
    pub limits: KeyLimits,
    /// Tags added to every request of the key (checked with the routing section).
    pub tags: Vec<String>,
}

pub(crate) fn check(
    keys: &[KeyEntry],
    master_key: Option<&SecretString>,
    names: &Names<'_>,
    problems: &mut Problems,
) -> Vec<KeySpec> {
    let master = master_key.map(|k| k.expose_secret());
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let at = |field: &str| vec![key("keys"), Seg::Index(i), key(field)];
        if k.key.is_empty() {
            problems.push((at("key"), "key is empty (is its ${VAR} set?)".into()));
        } else if let Some(first) = seen.get(k.key.as_str()) {
            problems.push((at("key"), format!("the same key as keys[{first}]")));
        } else {
            seen.insert(k.key.as_str(), i);
            if master == Some(k.key.as_str()) {
                problems.push((
                    at("key"),
                    "a virtual key must differ from the master key".into(),
                ));
            }
        }
        check_models(i, &k.models, names, problems);
        out.push(KeySpec {
            key: SecretString::from(k.key.clone()),
            description: k.description.clone(),
            models: k.models.clone(),
            limits: key_limits(k, &at, problems),
            tags: k.tags.clone(),
        });
    }
    out
}

/// Each allowed model must be a `[[models]]` name, a group alias, or a `provider/model`
/// name of a network provider (reachable through `[[aliases]]`).
fn check_models(i: usize, models: &[String], names: &Names<'_>, problems: &mut Problems) {
    for (j, model) in models.iter().enumerate() {
        let direct = ProviderModel::parse(model).is_ok_and(|pm| pm.provider.network().is_some());
        if !names.is_known(model) && !direct {
            problems.push((
                vec![key("keys"), Seg::Index(i), key("models"), Seg::Index(j)],
                format!("model {model:?} is not defined in [[models]]"),
            ));
        }
    }
}
