//! Validation of what the governance stages read: per-key limits (`rpm`, `tpm`,
//! `budget_limit`, `budget_duration`, `expires_at`), `[rate_limit]`, `[budget]` and
//! the store (`general.database_url`, `general.pricing_file`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use crate::config::file::{Enforcement, FileConfig, KeyEntry, MAX_SPEND_WRITE_INTERVAL_SECS};
use crate::config::problems::{given, path, Problems, Seg};
use crate::store::{parse_rfc3339, Period, UnixMillis};

/// Requests and tokens per minute; `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
}

impl RateLimits {
    pub fn is_set(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some()
    }
}

/// A key's limits, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyLimits {
    pub rate: RateLimits,
    /// USD, for the key's lifetime or per `budget_period`.
    pub budget_limit: Option<f64>,
    pub budget_period: Option<Period>,
    pub expires_at: Option<UnixMillis>,
}

/// The gateway-wide governance settings.
#[derive(Debug, Clone, Default)]
pub struct Governance {
    /// `[rate_limit]`.
    pub global_rate: RateLimits,
    /// `[budget] global_limit`.
    pub global_budget: Option<f64>,
    /// `[budget.model_limits]`, keyed by `provider/model`.
    pub model_budgets: BTreeMap<String, f64>,
    pub enforcement: Enforcement,
    /// `general.database_url` as given (`None`: the default SQLite file when needed);
    /// secret, as it may carry a password.
    pub database_url: Option<SecretString>,
    pub pricing_file: Option<PathBuf>,
    /// `[budget] default_input_cost_per_token` / `default_output_cost_per_token`: the
    /// price of models the table does not know, for budgeted requests (`None`: such
    /// requests are refused).
    pub default_price: Option<(f64, f64)>,
    /// `general.redis_url` (or LiteLLM's `REDIS_*` variables) and its policy: rate
    /// limits shared by every gateway on that Redis (`None`: per instance).
    pub redis: Option<super::redis::RedisSpec>,
    /// `general.spend_buffer_records`: the spend records kept in memory while the
    /// spend store is down.
    pub spend_buffer_records: usize,
    /// `general.disable_spend_logs`: settlements write no ledger row.
    pub disable_spend_logs: bool,
    /// `general.spend_write_interval_secs`: how long settled spend may wait before
    /// the (SQLite) store commits it; `None`: the store's default, a second.
    pub spend_write_interval: Option<Duration>,
}

impl Governance {
    /// Whether any budget is configured gateway-wide.
    pub fn has_budgets(&self) -> bool {
        self.global_budget.is_some() || !self.model_budgets.is_empty()
    }
}

fn check_usd(v: f64, path: Vec<Seg>, name: &str, problems: &mut Problems) {
    if !v.is_finite() || v < 0.0 {
        problems.push((path, format!("{name} must be a number of USD, 0 or more")));
    }
}

pub(crate) fn key_limits(
    k: &KeyEntry,
    at: &dyn Fn(&str) -> Vec<Seg>,
    problems: &mut Problems,
) -> KeyLimits {
    if k.rpm == Some(0) {
        problems.push((at("rpm"), "rpm must be greater than 0".into()));
    }
    if k.tpm == Some(0) {
        problems.push((at("tpm"), "tpm must be greater than 0".into()));
    }
    if let Some(b) = k.budget_limit {
        check_usd(b, at("budget_limit"), "budget_limit", problems);
    }
    let budget_period = given(&k.budget_duration).and_then(|d| match d.parse::<Period>() {
        Ok(p) => Some(p),
        Err(e) => {
            problems.push((at("budget_duration"), e.to_string()));
            None
        }
    });
    if budget_period.is_some() && k.budget_limit.is_none() {
        problems.push((
            at("budget_duration"),
            "budget_duration needs budget_limit (the amount that resets)".into(),
        ));
    }
    let expires_at = given(&k.expires_at).and_then(|t| match parse_rfc3339(t) {
        Some(ms) => Some(ms),
        None => {
            problems.push((
                at("expires_at"),
                format!("expires_at {t:?} is not an RFC 3339 time such as \"2027-01-31T00:00:00Z\" or a date such as \"2027-01-31\""),
            ));
            None
        }
    });
    KeyLimits {
        rate: RateLimits {
            rpm: k.rpm,
            tpm: k.tpm,
        },
        budget_limit: k.budget_limit,
        budget_period,
        expires_at,
    }
}

pub(crate) fn check(file: &FileConfig, problems: &mut Problems) -> Governance {
    let mut g = Governance::default();
    if let Some(r) = &file.rate_limit {
        for (name, zero) in [("rpm", r.rpm == Some(0)), ("tpm", r.tpm == Some(0))] {
            if zero {
                problems.push((
                    path(&["rate_limit", name]),
                    format!("{name} must be greater than 0"),
                ));
            }
        }
        g.global_rate = RateLimits {
            rpm: r.rpm,
            tpm: r.tpm,
        };
    }
    if let Some(b) = &file.budget {
        if let Some(v) = b.global_limit {
            let at = path(&["budget", "global_limit"]);
            check_usd(v, at, "global_limit", problems);
        }
        for (model, v) in &b.model_limits {
            let at = path(&["budget", "model_limits", model]);
            check_usd(*v, at.clone(), "a model limit", problems);
            if !model.contains('/') {
                problems.push((
                    at,
                    format!("model_limits are keyed by provider/model (as in provider_model), e.g. \"openai/gpt-4o\"; got {model:?}"),
                ));
            }
        }
        for (field, v) in [
            (
                "default_input_cost_per_token",
                b.default_input_cost_per_token,
            ),
            (
                "default_output_cost_per_token",
                b.default_output_cost_per_token,
            ),
        ] {
            if let Some(v) = v {
                check_usd(v, path(&["budget", field]), field, problems);
            }
        }
        if b.default_input_cost_per_token.is_some() || b.default_output_cost_per_token.is_some() {
            g.default_price = Some((
                b.default_input_cost_per_token.unwrap_or(0.0),
                b.default_output_cost_per_token.unwrap_or(0.0),
            ));
        }
        g.global_budget = b.global_limit;
        g.model_budgets = b.model_limits.clone();
        g.enforcement = b.enforcement;
    }
    g.database_url = given(&file.general.database_url).map(SecretString::from);
    g.pricing_file = given(&file.general.pricing_file).map(PathBuf::from);
    g.spend_buffer_records = file.general.spend_buffer_records;
    g.disable_spend_logs = file.general.disable_spend_logs;
    g.spend_write_interval = write_interval(file, problems);
    g
}

/// `general.spend_write_interval_secs`, checked: whole seconds from 1 to
/// [`MAX_SPEND_WRITE_INTERVAL_SECS`], and only with an SQLite store.
fn write_interval(file: &FileConfig, problems: &mut Problems) -> Option<Duration> {
    let secs = file.general.spend_write_interval_secs?;
    let at = path(&["general", "spend_write_interval_secs"]);
    if given(&file.general.database_url).is_some_and(crate::store::is_postgres) {
        problems.push((
            at,
            "spend_write_interval_secs (LiteLLM's proxy_batch_write_at) is not supported yet with PostgreSQL: each request's spend is committed when it ends, so gateways sharing the database see each other's spend at once; remove the key".into(),
        ));
        return None;
    }
    if !(1..=MAX_SPEND_WRITE_INTERVAL_SECS).contains(&secs) {
        problems.push((
            at,
            format!("spend_write_interval_secs must be a whole number of seconds from 1 to {MAX_SPEND_WRITE_INTERVAL_SECS}; got {secs}"),
        ));
        return None;
    }
    Some(Duration::from_secs(secs))
}

/// The default SQLite file: `liter-llm.db` beside the config file (or in the working
/// directory for a config that is not a file).
pub fn default_database(config_file: Option<&Path>) -> PathBuf {
    let dir = config_file
        .and_then(Path::parent)
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    dir.join("liter-llm.db")
}
