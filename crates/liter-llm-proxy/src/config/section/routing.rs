//! `[router]` and the routing fields of `[[models]]`: pools (entries sharing a name),
//! their strategies and fallbacks, group aliases, and tag filtering (the `tags` of
//! `[[models]]` and `[[keys]]` entries, with the bounds every tag keeps).

use std::collections::BTreeMap;

use super::health::{CooldownSpec, HealthSpec};
use super::Names;
use crate::config::file::{FileConfig, ModelEntry, RouterSection, Strategy};
use crate::config::problems::{key, path, Problems, Seg};

/// One pool: every `[[models]]` entry sharing a name.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    pub name: String,
    pub strategy: Strategy,
    /// Tried in order when the pool is exhausted (union over the pool's entries).
    pub fallbacks: Vec<String>,
    /// Tried when a deployment answers `context_length_exceeded`, or when the prompt
    /// is longer than every deployment's `max_input_tokens`.
    pub context_window_fallbacks: Vec<String>,
    /// The entries' `max_retries`: retries of a request to this pool instead of
    /// `[general] max_retries`.
    pub max_retries: Option<u32>,
}

/// The validated routing settings.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// Pools in config order.
    pub pools: Vec<PoolSpec>,
    /// Alias name → pool name.
    pub aliases: BTreeMap<String, String>,
    pub cooldown: Option<CooldownSpec>,
    pub health: Option<HealthSpec>,
    pub latency_exploration: f64,
    pub seed: Option<u64>,
    /// `[router] enable_tag_filtering`.
    pub tag_filtering: bool,
    /// `[router] retry_after_secs`: the shortest wait before a retry that waits.
    pub retry_after: std::time::Duration,
}

/// The most tags a request (its own and its key's together), a deployment or a key
/// may carry.
pub const MAX_TAGS: usize = 32;
/// The longest tag, in bytes.
pub const MAX_TAG_BYTES: usize = 64;

/// Why `tag` cannot be a tag: empty, over [`MAX_TAG_BYTES`], with a comma (the
/// `x-litellm-tags` header's separator), a control character or white space at
/// either end.
pub fn tag_problem(tag: &str) -> Option<String> {
    if tag.is_empty() {
        return Some("a tag must not be empty".into());
    }
    if tag.len() > MAX_TAG_BYTES {
        return Some(format!("a tag is at most {MAX_TAG_BYTES} bytes"));
    }
    if tag.contains(',') || tag.chars().any(char::is_control) {
        return Some("a tag must not contain a comma or a control character".into());
    }
    if tag.trim() != tag {
        return Some("a tag must not start or end with white space".into());
    }
    None
}

/// Pools, group aliases, fallbacks and strategies (without `[cooldown]` and
/// `[health]`, which the caller adds).
pub(crate) fn check(file: &FileConfig, names: &Names<'_>, problems: &mut Problems) -> Routing {
    let router = &file.router;
    check_group_aliases(router, names, problems);
    check_fallbacks(&file.models, names, problems);
    check_tags(file, problems);
    check_max_retries(&file.models, problems);
    for name in router.model_strategy.keys() {
        if !names.is_model(name) {
            problems.push((
                path(&["router", "model_strategy", name]),
                format!("model {name:?} is not defined in [[models]]"),
            ));
        }
    }
    if !(0.0..=1.0).contains(&router.latency_exploration) {
        problems.push((
            path(&["router", "latency_exploration"]),
            "latency_exploration must be between 0 and 1".into(),
        ));
    }
    Routing {
        pools: pools(&file.models, router),
        aliases: router.model_group_alias.clone(),
        cooldown: None,
        health: None,
        latency_exploration: router.latency_exploration,
        seed: router.seed,
        tag_filtering: router.enable_tag_filtering,
        retry_after: std::time::Duration::from_secs(router.retry_after_secs),
    }
}

/// Every tag of `[[models]]` and `[[keys]]` keeps the bounds, and tags are given only
/// where they take effect: with `[router] enable_tag_filtering = true`.
fn check_tags(file: &FileConfig, problems: &mut Problems) {
    let lists = file
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| ("models", i, &m.tags))
        .chain(
            file.keys
                .iter()
                .enumerate()
                .map(|(i, k)| ("keys", i, &k.tags)),
        );
    for (section, i, tags) in lists {
        let at = || vec![key(section), Seg::Index(i), key("tags")];
        if tags.is_empty() {
            continue;
        }
        if !file.router.enable_tag_filtering {
            problems.push((
                at(),
                "tags take effect only with [router] enable_tag_filtering = true".into(),
            ));
        }
        if tags.len() > MAX_TAGS {
            problems.push((at(), format!("at most {MAX_TAGS} tags")));
        }
        for (j, tag) in tags.iter().enumerate() {
            if let Some(why) = tag_problem(tag) {
                let mut at = at();
                at.push(Seg::Index(j));
                problems.push((at, why));
            }
        }
    }
}

fn pools(models: &[ModelEntry], router: &RouterSection) -> Vec<PoolSpec> {
    let mut pools: Vec<PoolSpec> = Vec::new();
    for m in models {
        let at = match pools.iter().position(|p| p.name == m.name) {
            Some(at) => at,
            None => {
                pools.push(PoolSpec {
                    name: m.name.clone(),
                    strategy: router
                        .model_strategy
                        .get(&m.name)
                        .copied()
                        .unwrap_or(router.strategy),
                    fallbacks: Vec::new(),
                    context_window_fallbacks: Vec::new(),
                    max_retries: m.max_retries,
                });
                pools.len() - 1
            }
        };
        let pool = &mut pools[at];
        union_in_order(&mut pool.fallbacks, &m.fallbacks);
        union_in_order(
            &mut pool.context_window_fallbacks,
            &m.context_window_fallbacks,
        );
    }
    pools
}

/// Entries sharing a name give the same `max_retries` (or leave it out everywhere):
/// it is the pool's retry count.
fn check_max_retries(models: &[ModelEntry], problems: &mut Problems) {
    let mut first: std::collections::HashMap<&str, Option<u32>> = Default::default();
    for (i, m) in models.iter().enumerate() {
        if *first.entry(&m.name).or_insert(m.max_retries) != m.max_retries {
            problems.push((
                vec![key("models"), Seg::Index(i), key("max_retries")],
                format!(
                    "max_retries is the retry count of model {:?}: give every entry of it the same value",
                    m.name
                ),
            ));
        }
    }
}

fn union_in_order(into: &mut Vec<String>, from: &[String]) {
    for name in from {
        if !into.contains(name) {
            into.push(name.clone());
        }
    }
}

/// An alias must be a new name, and its target a `[[models]]` name.
fn check_group_aliases(router: &RouterSection, names: &Names<'_>, problems: &mut Problems) {
    for (alias, target) in &router.model_group_alias {
        let at = path(&["router", "model_group_alias", alias]);
        if names.is_model(alias) {
            problems.push((
                at,
                format!("{alias:?} is already a model name; an alias must be a new name"),
            ));
        } else if !names.is_model(target) {
            problems.push((
                at,
                format!("alias target {target:?} is not defined in [[models]]"),
            ));
        }
    }
}

/// Each fallback must be another model or a group alias.
fn check_fallbacks(models: &[ModelEntry], names: &Names<'_>, problems: &mut Problems) {
    for (i, m) in models.iter().enumerate() {
        for (field, list) in [
            ("fallbacks", &m.fallbacks),
            ("context_window_fallbacks", &m.context_window_fallbacks),
        ] {
            for (j, f) in list.iter().enumerate() {
                let at = vec![key("models"), Seg::Index(i), key(field), Seg::Index(j)];
                if f == &m.name {
                    problems.push((at, format!("{:?} cannot fall back to itself", m.name)));
                } else if !names.is_known(f) {
                    problems.push((at, format!("model {f:?} is not defined in [[models]]")));
                }
            }
        }
    }
}
