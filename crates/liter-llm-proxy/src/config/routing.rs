//! Validation of the routing part of the config: pools (several `[[models]]` with one
//! name), their fallbacks, strategies, aliases, `[cooldown]` and `[health]`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::file::{FileConfig, ModelEntry, Strategy};
use super::load::Seg;
use super::validate::{key, Problems};

/// One pool: every `[[models]]` entry sharing a name.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    pub name: String,
    pub strategy: Strategy,
    /// Tried in order when the pool is exhausted (union over the pool's entries).
    pub fallbacks: Vec<String>,
    /// Tried when a deployment answers `context_length_exceeded`.
    pub context_window_fallbacks: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct CooldownSpec {
    pub duration: Duration,
    pub allowed_fails: u32,
    pub window: Duration,
}

#[derive(Debug, Clone)]
pub struct HealthSpec {
    pub interval: Duration,
    /// Only this model's deployments are probed; all when `None`.
    pub probe_model: Option<String>,
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
}

/// One `[[aliases]]` entry: credentials for every `provider/model` name matching
/// `pattern` that is not a `[[models]]` name.
#[derive(Debug, Clone)]
pub struct CredentialAlias {
    pub pattern: String,
    pub provider: liter_llm::Provider,
    pub base_url: Option<String>,
    pub api_key: Option<secrecy::SecretString>,
}

/// Glob match with `*` (any run) and `?` (one character).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `[[aliases]]`: the provider prefix must be literal and known; credentials resolve as
/// for `[[models]]` (given values, else the provider's variables and defaults).
pub(crate) fn check_aliases(
    file: &FileConfig,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Vec<CredentialAlias> {
    let mut out = Vec::new();
    for (i, a) in file.aliases.iter().enumerate() {
        let at = |f: &str| vec![key("aliases"), Seg::Index(i), key(f)];
        let prefix = a.pattern.split_once('/').map(|(p, _)| p);
        let provider = prefix.and_then(liter_llm::Provider::from_prefix);
        let Some(net) = provider.and_then(|p| p.network()) else {
            problems.push((
                at("pattern"),
                format!(
                    "pattern {:?} must start with a provider prefix such as \"anthropic/\" (known: {})",
                    a.pattern,
                    liter_llm::Provider::known_prefixes().join(", ")
                ),
            ));
            continue;
        };
        if provider.is_some_and(|p| !p.setting_fields().is_empty()) {
            problems.push((
                at("pattern"),
                format!(
                    "pattern {:?}: {}/ models need provider settings an alias cannot carry; declare them under [[models]]",
                    a.pattern, net.name
                ),
            ));
            continue;
        }
        match super::validate::resolve_network(
            net,
            super::validate::given(&a.base_url),
            super::validate::given(&a.api_key),
            env,
        ) {
            Ok((base_url, api_key)) => out.push(CredentialAlias {
                pattern: a.pattern.clone(),
                provider: provider.unwrap_or(liter_llm::Provider::Mock),
                base_url,
                api_key,
            }),
            Err((field, msg)) => problems.push((at(field), msg)),
        }
    }
    // A provider whose own key variable is set is reachable by name too, as if an
    // `[[aliases]]` entry `"<provider>/*"` named it (after the explicit ones).
    for provider in liter_llm::Provider::all_network() {
        let Some(net) = provider.network() else {
            continue;
        };
        let pattern = format!("{}/*", net.name);
        if out.iter().any(|a| a.pattern == pattern) {
            continue;
        }
        if let Ok((base_url, Some(api_key))) =
            super::validate::resolve_network(net, None, None, env)
        {
            out.push(CredentialAlias {
                pattern,
                provider,
                base_url,
                api_key: Some(api_key),
            });
        }
    }
    out
}

fn positive(problems: &mut Problems, path: Vec<Seg>, name: &str, ok: bool) {
    if !ok {
        problems.push((path, format!("{name} must be greater than 0")));
    }
}

/// Per-entry checks of the routing fields.
pub(crate) fn check_deployment(
    m: &ModelEntry,
    at: &dyn Fn(&str) -> Vec<Seg>,
    problems: &mut Problems,
) {
    if let Some(w) = m.weight {
        positive(problems, at("weight"), "weight", w.is_finite() && w > 0.0);
    }
    if let Some(r) = m.rpm {
        positive(problems, at("rpm"), "rpm", r > 0);
    }
    if let Some(t) = m.tpm {
        positive(problems, at("tpm"), "tpm", t > 0);
    }
    if let Some(t) = m.stream_timeout_secs {
        positive(
            problems,
            at("stream_timeout_secs"),
            "stream_timeout_secs",
            t > 0,
        );
    }
    for (field, price) in [
        ("input_cost_per_token", m.input_cost_per_token),
        ("output_cost_per_token", m.output_cost_per_token),
    ] {
        if price.is_some_and(|p| !p.is_finite() || p < 0.0) {
            problems.push((at(field), format!("{field} must be 0 or more")));
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

/// Pools, aliases, fallbacks, strategies, cooldown and health, checked together.
pub(crate) fn check_routing(
    file: &FileConfig,
    names: &HashSet<&str>,
    problems: &mut Problems,
) -> Routing {
    let router = &file.router;
    let mut pools: Vec<PoolSpec> = Vec::new();
    for m in &file.models {
        let pool = match pools.iter_mut().find(|p| p.name == m.name) {
            Some(p) => p,
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
                });
                let last = pools.len() - 1;
                &mut pools[last]
            }
        };
        union_in_order(&mut pool.fallbacks, &m.fallbacks);
        union_in_order(
            &mut pool.context_window_fallbacks,
            &m.context_window_fallbacks,
        );
    }

    let aliases = router.model_group_alias.clone();
    for (alias, target) in &aliases {
        let at = vec![key("router"), key("model_group_alias"), key(alias)];
        if names.contains(alias.as_str()) {
            problems.push((
                at,
                format!("{alias:?} is already a model name; an alias must be a new name"),
            ));
        } else if !names.contains(target.as_str()) {
            problems.push((
                at,
                format!("alias target {target:?} is not defined in [[models]]"),
            ));
        }
    }
    let known = |n: &str| names.contains(n) || aliases.contains_key(n);

    for (i, m) in file.models.iter().enumerate() {
        for (field, list) in [
            ("fallbacks", &m.fallbacks),
            ("context_window_fallbacks", &m.context_window_fallbacks),
        ] {
            for (j, f) in list.iter().enumerate() {
                let at = vec![key("models"), Seg::Index(i), key(field), Seg::Index(j)];
                if f == &m.name {
                    problems.push((at, format!("{:?} cannot fall back to itself", m.name)));
                } else if !known(f) {
                    problems.push((at, format!("model {f:?} is not defined in [[models]]")));
                }
            }
        }
    }
    for name in router.model_strategy.keys() {
        if !names.contains(name.as_str()) {
            problems.push((
                vec![key("router"), key("model_strategy"), key(name)],
                format!("model {name:?} is not defined in [[models]]"),
            ));
        }
    }
    if !(0.0..=1.0).contains(&router.latency_exploration) {
        problems.push((
            vec![key("router"), key("latency_exploration")],
            "latency_exploration must be between 0 and 1".into(),
        ));
    }

    let cooldown = file.cooldown.as_ref().map(|c| {
        let at = |f: &str| vec![key("cooldown"), key(f)];
        positive(
            problems,
            at("duration_secs"),
            "duration_secs",
            c.duration_secs > 0,
        );
        positive(
            problems,
            at("allowed_fails"),
            "allowed_fails",
            c.allowed_fails > 0,
        );
        positive(
            problems,
            at("window_secs"),
            "window_secs",
            c.window_secs > 0,
        );
        CooldownSpec {
            duration: Duration::from_secs(c.duration_secs),
            allowed_fails: c.allowed_fails,
            window: Duration::from_secs(c.window_secs),
        }
    });

    let health = file.health.as_ref().and_then(|h| {
        let at = |f: &str| vec![key("health"), key(f)];
        if let Some(m) = &h.probe_model {
            if !known(m) {
                problems.push((
                    at("probe_model"),
                    format!("model {m:?} is not defined in [[models]]"),
                ));
            }
        }
        match h.interval_secs {
            Some(0) => {
                problems.push((
                    at("interval_secs"),
                    "interval_secs must be greater than 0".into(),
                ));
                None
            }
            Some(secs) => Some(HealthSpec {
                interval: Duration::from_secs(secs),
                probe_model: h.probe_model.clone(),
            }),
            None => {
                if h.probe_model.is_some() {
                    problems.push((
                        at("probe_model"),
                        "probe_model has no effect without interval_secs (probes are off)".into(),
                    ));
                }
                None
            }
        }
    });

    Routing {
        pools,
        aliases,
        cooldown,
        health,
        latency_exploration: router.latency_exploration,
        seed: router.seed,
    }
}
