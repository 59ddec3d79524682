//! The [`App`]: everything a running gateway owns (config, key registry, routes,
//! upstream client, prices, the governance stage and its store), built from a
//! validated config by [`App::build`]. Nothing is global, so a test can run several
//! gateways in one process. The HTTP edge (`server`) and the admin API read it; no
//! stage below imports it: each gets the parts it needs.
//!
//! [`App::reload`] builds the App of a new config from a running one, sharing the
//! running one's long-lived parts: the metrics registry, tracer, log sinks, upstream
//! client, database stores and response store always (the `reload` module refuses a
//! config that changes them); the cache and files API while their settings are
//! unchanged; and the live state of what still exists: key and gateway rate-limit
//! windows (same key, same limits), deployments' breaker, cooldown, health and
//! per-minute usage (same deployment id), pending settlements.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth::KeyRegistry;
use crate::cache::Cache;
use crate::config::Config;
use crate::config::{FilesSpec, MetricsAccess};
use crate::files::Files;
use crate::governance::{self, GovernanceError, Governor};
use crate::logsink::{SinkError, Sinks};
use crate::metrics::Metrics;
use crate::objstore::ObjStoreError;
use crate::otel::{Tracing, TracingError};
use crate::pricing::{Prices, PricingFileError};
use crate::routing::Registry;
use crate::store::{
    FileStore, MemoryFileStore, MemoryModelStore, MemoryResponseStore, ModelStore, ResponseStore,
    Stores,
};
use crate::upstream::{TargetError, Upstream};

/// Everything a running gateway owns.
pub struct App {
    pub config: Config,
    pub keys: Arc<KeyRegistry>,
    pub routes: Arc<Registry>,
    pub upstream: Arc<Upstream>,
    /// Unix time of start-up, reported as `created` in `/v1/models`.
    pub started_at: u64,
    /// Set once shutdown has begun: readiness then answers 503. Shared by every App
    /// a reload makes from this one.
    pub draining: Arc<AtomicBool>,
    /// Prices, when cost tracking or budgets need them.
    pub prices: Option<Arc<Prices>>,
    /// Limits, budgets and the store.
    pub governor: Arc<Governor>,
    /// The files API (`[files]`); `None`: not configured.
    pub files: Option<Arc<Files>>,
    /// What `/metrics` shows (`None`: `general.metrics = "off"`, nothing recorded).
    pub metrics: Option<Arc<Metrics>>,
    /// The tracer (`None`: `general.enable_tracing` is off).
    pub tracing: Option<Arc<Tracing>>,
    /// The response cache (`[cache]`).
    pub cache: Option<Arc<Cache>>,
    /// The request log sinks (`None`: no `[[logging]]`).
    pub sinks: Option<Arc<Sinks>>,
    /// The Responses API's stored responses: in the database when there is one, else
    /// in memory (bounded, lost at a restart).
    pub responses: Arc<dyn ResponseStore>,
    /// The model admin API's models: in the database when there is one, else in
    /// memory (lost at a restart). Shared by every App a reload makes from this one.
    pub models: Arc<dyn ModelStore>,
    /// The running config as `GET /config` shows it: the file as parsed with every
    /// secret masked (`config::Inspection::masked`), as JSON. `None`: the config did
    /// not come from a file.
    pub view: Option<Arc<serde_json::Value>>,
    /// The cache's clock, kept for the Apps a reload makes.
    clock: Arc<dyn crate::store::Clock>,
}

/// Why a gateway could not be built from a valid config. Names models and files,
/// never a key.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Pricing(#[from] PricingFileError),
    #[error(transparent)]
    Governance(#[from] GovernanceError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("[files]: {0}")]
    Files(#[from] ObjStoreError),
    #[error(
        "[files]: a persistent backend keeps its file metadata in the database, which is not open"
    )]
    FilesWithoutStore,
    #[error(transparent)]
    Tracing(#[from] TracingError),
    #[error("[cache]: {0}")]
    Cache(#[source] ObjStoreError),
    #[error(transparent)]
    Sinks(#[from] SinkError),
}

/// The files API of `config`: metadata in memory for the `memory` backend, in the
/// database otherwise (`governance::open_store` opens it whenever `[files]` needs it).
fn files(config: &Config, stores: Option<&Stores>) -> Result<Option<Arc<Files>>, BuildError> {
    let Some(spec) = &config.files else {
        return Ok(None);
    };
    let store: Arc<dyn FileStore> = match stores {
        _ if spec.is_volatile() => Arc::new(MemoryFileStore::default()),
        Some(s) => s.files.clone(),
        None => return Err(BuildError::FilesWithoutStore),
    };
    Ok(Some(Arc::new(Files::new(spec, store)?)))
}

/// The start-up warnings about keys and provider variables.
fn startup_notes(config: &Config, keys: &KeyRegistry) {
    if keys.is_empty() {
        tracing::warn!(
            "no master_key and no [[keys]] configured: every API request will be refused with 401; set LITER_LLM_MASTER_KEY"
        );
    }
    if !config.unexposed_providers.is_empty() {
        tracing::info!(
            providers = ?config.unexposed_providers,
            "provider key variables are set for providers no [[aliases]] entry names: their models are reachable only through [[models]]; add an [[aliases]] entry such as pattern = \"openai/*\" to expose one"
        );
    }
}

type Observers = (Option<Arc<Tracing>>, Option<Arc<Sinks>>, Arc<Upstream>);

/// The tracer, the log sinks and the upstream client of a new gateway.
fn observers(config: &Config, metrics: Option<&Arc<Metrics>>) -> Result<Observers, BuildError> {
    let tracing = match &config.tracing {
        Some(spec) => {
            let counters = metrics.map(|m| m.traces.clone()).unwrap_or_default();
            Some(Arc::new(Tracing::start(spec, counters)?))
        }
        None => None,
    };
    let sink_counters = metrics.map(|m| m.logs.clone()).unwrap_or_default();
    let base = config.source.as_deref().and_then(std::path::Path::parent);
    let upstream = Arc::new(Upstream::new());
    let sinks = Sinks::start(&config.logging, base, &upstream, &sink_counters)?;
    Ok((tracing, sinks, upstream))
}

/// Whether two `[files]` settings are the same (the files API is then kept as it is,
/// with a `memory` backend's files).
fn same_files(a: Option<&FilesSpec>, b: Option<&FilesSpec>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.backend == b.backend
                && a.prefix == b.prefix
                && a.backend_config == b.backend_config
                && a.max_file_bytes == b.max_file_bytes
                && a.timeout == b.timeout
        }
        _ => false,
    }
}

impl App {
    /// Build the gateway from a validated config.
    pub async fn build(config: Config) -> Result<Arc<App>, BuildError> {
        Self::build_with_clock(config, Arc::new(crate::store::SystemClock)).await
    }

    /// [`App::build`] with the response cache's entry times from `clock` (tests move
    /// it to expire entries).
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn crate::store::Clock>,
    ) -> Result<Arc<App>, BuildError> {
        let stores = governance::open_store(&config).await?;
        Self::assemble(config, clock, None, stores)
            .await
            .map(Arc::new)
    }

    /// The App of `config`, carrying `old`'s long-lived parts and live state over (see
    /// the module doc). The caller has checked that `config` changes nothing that
    /// needs a restart (the `reload` module), such as a database `old` did not open;
    /// `view` is what `GET /config` shows.
    pub async fn reload(
        old: &App,
        config: Config,
        view: Option<serde_json::Value>,
    ) -> Result<Arc<App>, BuildError> {
        {
            let stores = old.governor.stores.clone();
            let mut app = Self::assemble(config, old.clock.clone(), Some(old), stores).await?;
            app.view = view.map(Arc::new);
            Ok(Arc::new(app))
        }
    }

    /// The same App with `view` as what `GET /config` shows.
    pub fn with_view(mut self: Arc<Self>, view: serde_json::Value) -> Arc<Self> {
        if let Some(app) = Arc::get_mut(&mut self) {
            app.view = Some(Arc::new(view));
        }
        self
    }

    async fn assemble(
        config: Config,
        clock: Arc<dyn crate::store::Clock>,
        old: Option<&App>,
        stores: Option<crate::store::Stores>,
    ) -> Result<App, BuildError> {
        let metrics = match old {
            Some(o) => o.metrics.clone(),
            None => (config.metrics != MetricsAccess::Off).then(|| Arc::new(Metrics::new())),
        };
        let cache = match (&config.cache, old) {
            (Some(_), Some(o)) if o.config.cache == config.cache => o.cache.clone(),
            (Some(spec), _) => Some(Arc::new(
                Cache::with_clock(spec, clock.clone())
                    .map_err(BuildError::Cache)?
                    .counted(metrics.as_ref().map(|m| m.cache.clone())),
            )),
            (None, _) => None,
        };
        let files = match old {
            Some(o) if same_files(o.config.files.as_ref(), config.files.as_ref()) => {
                o.files.clone()
            }
            _ => files(&config, stores.as_ref())?,
        };
        let prices = Prices::load(&config, stores.is_some())?.map(Arc::new);
        let responses: Arc<dyn ResponseStore> = match (old, &stores) {
            (Some(o), _) => o.responses.clone(),
            (None, Some(s)) => s.responses.clone(),
            (None, None) => Arc::new(MemoryResponseStore::default()),
        };
        let models: Arc<dyn ModelStore> = match (old, &stores) {
            (Some(o), _) => o.models.clone(),
            (None, Some(s)) => s.models.clone(),
            (None, None) => Arc::new(MemoryModelStore::default()),
        };
        let fresh_store = stores.is_some() && old.is_none_or(|o| o.governor.stores.is_none());
        let mut governor = Governor::new(&config, stores, prices.clone()).await?;
        if let (Some(m), Some(s), true) = (&metrics, &governor.stores, fresh_store) {
            s.spend.instrument(m.spend.clone());
        }
        if let (Some(m), Some(r)) = (&metrics, &governor.shared) {
            r.instrument(m.redis_unavailable.clone());
        }
        let mut keys =
            KeyRegistry::from_config(&config, governor.stores.as_ref().map(|s| s.keys.clone()));
        let routes = Registry::from_config(&config, metrics.clone())?;
        if let Some(r) = &governor.shared {
            routes.share(Arc::new(r.clone()));
        }
        if let Some(o) = old {
            governor.carry(&o.governor);
            keys.carry(&o.keys);
            routes.carry(&o.routes);
        } else {
            startup_notes(&config, &keys);
        }
        if let (Some(m), Some(s)) = (&metrics, &governor.spool) {
            s.instrument(m.spend.spooled.clone(), m.spend.spool_refused.clone());
        }
        let (tracing, sinks, upstream) = match old {
            Some(o) => (o.tracing.clone(), o.sinks.clone(), o.upstream.clone()),
            None => observers(&config, metrics.as_ref())?,
        };
        // Last, as nothing after it fails: a reload that turns spend logs on or off,
        // or changes the write interval, changes the shared store only when its App
        // is built.
        if let Some(s) = &governor.stores {
            s.spend
                .set_ledger_rows(!config.governance.disable_spend_logs)
                .map_err(GovernanceError::Ledger)?;
            s.spend.set_write_interval(
                config
                    .governance
                    .spend_write_interval
                    .unwrap_or(crate::store::DEFAULT_WRITE_INTERVAL),
            );
        }
        Ok(App {
            keys: Arc::new(keys),
            routes: Arc::new(routes),
            upstream,
            started_at: old.map_or_else(
                || {
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs())
                },
                |o| o.started_at,
            ),
            draining: old.map_or_else(Arc::default, |o| o.draining.clone()),
            prices,
            governor: Arc::new(governor),
            files,
            metrics,
            tracing,
            cache,
            sinks,
            responses,
            models,
            view: None,
            clock,
            config,
        })
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The prices answers are priced with for the cost header, when cost tracking is
    /// on.
    pub fn cost_prices(&self) -> Option<&Prices> {
        self.prices
            .as_deref()
            .filter(|_| self.config.enable_cost_tracking)
    }

    /// Whether API requests are observed (metrics, tracing or a log sink on).
    pub fn observes(&self) -> bool {
        self.metrics.is_some() || self.tracing.is_some() || self.sinks.is_some()
    }

    /// [`App::cost_prices`], shared.
    pub fn cost_prices_arc(&self) -> Option<Arc<Prices>> {
        self.prices
            .clone()
            .filter(|_| self.config.enable_cost_tracking)
    }
}
