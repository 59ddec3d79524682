//! The orchestrator: file structs in, runtime [`Config`] out, or every problem at once.
//!
//! Each section has its own validator in [`super::section`]; this module only calls
//! them in file order and assembles their results. It is also where "not supported
//! yet" is decided overall: a section or field whose behaviour is not built is
//! rejected, never accepted and ignored.

use std::time::Duration;

use secrecy::SecretString;

use super::file::FileConfig;
use super::overrides::Overrides;
use super::problems::Problems;
use super::section::aliases::CredentialAlias;
use super::section::cache::CacheSpec;
use super::section::files::FilesSpec;
use super::section::governance::Governance;
use super::section::keys::KeySpec;
use super::section::models::Deployment;
use super::section::routing::Routing;
use super::section::server::{CorsOrigins, Limits};
use super::section::{self, Names};

/// The validated configuration the gateway runs on: runtime values only (the parsed
/// file is not kept; see `inspect_file` for what `check-config` shows). Every secret
/// is a [`SecretString`] (or the provider settings' redacted `Secret`), so `Debug`
/// output shows none.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[[aliases]]`: credentials for `provider/model` names sent directly. Only the
    /// explicit entries: a provider key variable never adds one.
    pub credential_aliases: Vec<CredentialAlias>,
    /// Network providers (their prefixes, in the order of `Provider::all_network`)
    /// whose own key variable (`OPENAI_API_KEY`, ...) is set and not empty but which
    /// no `[[aliases]]` entry names, so their `provider/model` names are not exposed.
    /// For a start-up message; the variable still serves `[[models]]` entries.
    pub unexposed_providers: Vec<&'static str>,
    /// Pools, fallbacks, strategies, cooldown and health probes.
    pub routing: Routing,
    pub host: String,
    pub port: u16,
    pub request_timeout: Duration,
    pub body_limit: usize,
    pub cors: CorsOrigins,
    /// Connection, buffer and timeout limits (`[server]`; docs/security.md).
    pub limits: Limits,
    pub master_key: Option<SecretString>,
    pub default_timeout: Duration,
    /// `general.drop_params`, for models made on first use from `[[aliases]]`.
    pub drop_params: bool,
    pub max_retries: u32,
    /// `general.enable_cost_tracking`: price every answer.
    pub enable_cost_tracking: bool,
    /// `general.metrics`: who may read `/metrics` (`Off`: nothing is recorded).
    pub metrics: super::file::MetricsAccess,
    /// `general.enable_tracing`, with the exporter's settings from `OTEL_*`.
    pub tracing: Option<super::section::general::TracingSpec>,
    /// `general.log_format` and `general.debug`: the log settings the binary starts
    /// its logging with (its flags win). Only a restart changes them.
    pub log_format: super::file::LogFormat,
    pub debug: bool,
    /// `general.health_check_details`: `false` keeps `/health/readiness` to each
    /// deployment's name and state.
    pub health_check_details: bool,
    pub models: Vec<Deployment>,
    pub keys: Vec<KeySpec>,
    /// Limits, budgets, the store and prices.
    pub governance: Governance,
    /// `[files]`: the files API is served only when it is set.
    pub files: Option<FilesSpec>,
    /// `[cache]`: the response cache (`None`: no caching).
    pub cache: Option<CacheSpec>,
    /// `[[logging]]`: the request log sinks.
    pub logging: Vec<super::section::logging::SinkSpec>,
    /// The config file, when the config came from one (relative paths resolve beside it).
    pub source: Option<std::path::PathBuf>,
}

impl Config {
    /// Whether every request goes to the ledger (and so is priced): a database is
    /// named, or budgets or cost tracking ask for it. Otherwise a store serves the admin
    /// API and runtime keys only.
    pub fn meters_all(&self) -> bool {
        let g = &self.governance;
        g.database_url.is_some()
            || g.has_budgets()
            || self.enable_cost_tracking
            || self.keys.iter().any(|k| k.limits.budget_limit.is_some())
    }
}

pub(crate) fn validate(
    file: &FileConfig,
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Problems> {
    let mut problems = Problems::new();
    let p = &mut problems;
    let server = section::server::check(&file.server, overrides, p);
    let general = section::general::check(&file.general, overrides, env, p);
    let models = section::models::check(&file.models, &file.general, env, p);
    let credential_aliases = section::aliases::check(&file.aliases, env, p);
    let unexposed_providers = section::aliases::unexposed(&credential_aliases, env);
    let names = Names::new(&file.models, &file.router.model_group_alias);
    let keys = section::keys::check(&file.keys, general.master_key.as_ref(), &names, p);
    let mut governance = section::governance::check(file, p);
    governance.redis = section::redis::check(&file.general, env, p);
    let files = file.files.as_ref().map(|f| section::files::check(f, p));
    let cache = file
        .cache
        .as_ref()
        .and_then(|c| section::cache::check(c, p));
    let logging = section::logging::check(&file.logging, env, p);
    let mut routing = section::routing::check(file, &names, p);
    routing.cooldown = file
        .cooldown
        .as_ref()
        .map(|c| section::health::check_cooldown(c, p));
    routing.health = file
        .health
        .as_ref()
        .and_then(|h| section::health::check_health(h, &names, p));
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Config {
        credential_aliases,
        unexposed_providers,
        routing,
        host: server.host,
        port: server.port,
        request_timeout: server.request_timeout,
        body_limit: server.body_limit,
        cors: server.cors,
        limits: server.limits,
        master_key: general.master_key,
        default_timeout: general.default_timeout,
        drop_params: general.drop_params,
        max_retries: general.max_retries,
        enable_cost_tracking: general.enable_cost_tracking,
        metrics: general.metrics,
        tracing: general.tracing,
        log_format: general.log_format,
        debug: general.debug,
        health_check_details: general.health_check_details,
        models,
        keys,
        governance,
        files,
        cache,
        logging,
        source: None,
    })
}
