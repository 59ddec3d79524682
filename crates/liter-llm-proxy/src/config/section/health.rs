//! `[cooldown]` (the circuit breaker) and `[health]` (periodic probes).

use std::time::Duration;

use liter_llm::{Provider, ProviderModel};

use super::Names;
use crate::config::file::{CooldownSection, HealthSection};
use crate::config::problems::{path, positive, Problems, Seg};

#[derive(Debug, Clone, Copy)]
pub struct CooldownSpec {
    pub duration: Duration,
    pub allowed_fails: u32,
    pub window: Duration,
}

/// What `[health] probe_model` asks to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeTarget {
    /// No `probe_model`: every deployment.
    All,
    /// A `[[models]]` name, or a group alias resolved to its pool's name: that
    /// pool's deployments.
    Pool(String),
    /// A `provider/model` name (of a network provider) that is not a configured name,
    /// as in the spec's `probe_model = "openai/gpt-4o-mini"`: every deployment of
    /// `provider`, each probed with `model_id`.
    Model {
        provider: Provider,
        model_id: String,
    },
}

#[derive(Debug, Clone)]
pub struct HealthSpec {
    pub interval: Duration,
    pub probe: ProbeTarget,
}

pub(crate) fn check_cooldown(c: &CooldownSection, problems: &mut Problems) -> CooldownSpec {
    let at = |f: &str| path(&["cooldown", f]);
    for (field, ok) in [
        ("duration_secs", c.duration_secs > 0),
        ("allowed_fails", c.allowed_fails > 0),
        ("window_secs", c.window_secs > 0),
    ] {
        positive(problems, at(field), field, ok);
    }
    CooldownSpec {
        duration: Duration::from_secs(c.duration_secs),
        allowed_fails: c.allowed_fails,
        window: Duration::from_secs(c.window_secs),
    }
}

/// `None` when probes are off (no `interval_secs`) or the section is invalid.
pub(crate) fn check_health(
    h: &HealthSection,
    names: &Names<'_>,
    problems: &mut Problems,
) -> Option<HealthSpec> {
    let at = |f: &str| -> Vec<Seg> { path(&["health", f]) };
    let probe = match h.probe_model.as_deref() {
        None => ProbeTarget::All,
        Some(m) => probe_target(m, names).unwrap_or_else(|msg| {
            problems.push((at("probe_model"), msg));
            ProbeTarget::All
        }),
    };
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
            probe,
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
}

/// A configured name (or group alias) first; else a `provider/model` name.
fn probe_target(m: &str, names: &Names<'_>) -> Result<ProbeTarget, String> {
    if let Some(pool) = names.pool_of(m) {
        return Ok(ProbeTarget::Pool(pool.to_string()));
    }
    match ProviderModel::parse(m) {
        Ok(pm) if pm.provider.network().is_some() => Ok(ProbeTarget::Model {
            provider: pm.provider,
            model_id: pm.model_id,
        }),
        _ => Err(format!(
            "probe_model {m:?} is neither a [[models]] name or [router] alias nor a provider/model name of a known provider such as \"openai/gpt-4o-mini\" (known: {})",
            Provider::known_prefixes()
                .into_iter()
                .filter(|p| *p != "mock")
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
