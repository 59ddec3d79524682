//! `[cooldown]` (the circuit breaker) and `[health]` (periodic probes).

use std::time::Duration;

use super::Names;
use crate::config::file::{CooldownSection, HealthSection};
use crate::config::problems::{path, positive, Problems, Seg};

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
    if let Some(m) = &h.probe_model {
        if !names.is_known(m) {
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
}
