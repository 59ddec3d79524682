//! `[general]`: the master key (with `--master-key` and `LITER_LLM_MASTER_KEY`
//! applied), timeouts, retries and gateway-wide switches.

use std::time::Duration;

use secrecy::SecretString;

use crate::config::file::GeneralSection;
use crate::config::overrides::Overrides;
use crate::config::problems::{given, not_supported, path, Problems};

/// `[general]`, resolved (the store and pricing file are governance's).
pub(crate) struct General {
    pub master_key: Option<SecretString>,
    pub default_timeout: Duration,
    pub max_retries: u32,
    pub drop_params: bool,
    pub enable_cost_tracking: bool,
}

pub(crate) fn check(g: &GeneralSection, overrides: &Overrides, problems: &mut Problems) -> General {
    if g.default_timeout_secs == 0 {
        problems.push((
            path(&["general", "default_timeout_secs"]),
            "default_timeout_secs must be greater than 0".into(),
        ));
    }
    if g.enable_tracing {
        not_supported(
            problems,
            path(&["general", "enable_tracing"]),
            "enable_tracing = true",
            "OpenTelemetry export",
        );
    }
    General {
        master_key: overrides.master_key(given(&g.master_key)).map(|(k, _)| k),
        default_timeout: Duration::from_secs(g.default_timeout_secs),
        max_retries: g.max_retries,
        drop_params: g.drop_params,
        enable_cost_tracking: g.enable_cost_tracking,
    }
}
