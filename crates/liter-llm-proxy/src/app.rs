//! The [`App`]: everything a running gateway owns (config, key registry, routes,
//! upstream client, prices, the governance stage and its store), built from a
//! validated config by [`App::build`]. Nothing is global, so a test can run several
//! gateways in one process. The HTTP edge (`server`) and the admin API read it; no
//! stage below imports it: each gets the parts it needs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth::KeyRegistry;
use crate::cache::Cache;
use crate::config::Config;
use crate::config::MetricsAccess;
use crate::files::Files;
use crate::governance::{self, GovernanceError, Governor};
use crate::logsink::{SinkError, Sinks};
use crate::metrics::Metrics;
use crate::objstore::ObjStoreError;
use crate::otel::{Tracing, TracingError};
use crate::pricing::{Prices, PricingFileError};
use crate::routing::Registry;
use crate::store::{FileStore, MemoryFileStore, MemoryResponseStore, ResponseStore, Stores};
use crate::upstream::{TargetError, Upstream};

/// Everything a running gateway owns.
pub struct App {
    pub config: Config,
    pub keys: Arc<KeyRegistry>,
    pub routes: Arc<Registry>,
    pub upstream: Arc<Upstream>,
    /// Unix time of start-up, reported as `created` in `/v1/models`.
    pub started_at: u64,
    /// Set once shutdown has begun: readiness then answers 503.
    pub draining: AtomicBool,
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
        let metrics = (config.metrics != MetricsAccess::Off).then(|| Arc::new(Metrics::new()));
        let cache = match &config.cache {
            Some(spec) => Some(Arc::new(
                Cache::with_clock(spec, clock)
                    .map_err(BuildError::Cache)?
                    .counted(metrics.as_ref().map(|m| m.cache.clone())),
            )),
            None => None,
        };
        let stores = governance::open_store(&config).await?;
        let files = files(&config, stores.as_ref())?;
        let prices = Prices::load(&config, stores.is_some())?.map(Arc::new);
        let responses: Arc<dyn ResponseStore> = match &stores {
            Some(s) => s.responses.clone(),
            None => Arc::new(MemoryResponseStore::default()),
        };
        let governor = Governor::new(&config, stores, prices.clone()).await?;
        if let (Some(m), Some(s)) = (&metrics, &governor.stores) {
            s.spend.instrument(m.spend.clone());
        }
        if let (Some(m), Some(r)) = (&metrics, &governor.shared) {
            r.instrument(m.redis_unavailable.clone());
        }
        let keys = Arc::new(KeyRegistry::from_config(
            &config,
            governor.stores.as_ref().map(|s| s.keys.clone()),
        ));
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
        let routes = Arc::new(Registry::from_config(&config, metrics.clone())?);
        let tracing = match &config.tracing {
            Some(spec) => {
                let counters = metrics
                    .as_ref()
                    .map(|m| m.traces.clone())
                    .unwrap_or_default();
                Some(Arc::new(Tracing::start(spec, counters)?))
            }
            None => None,
        };
        let sink_counters = metrics.as_ref().map(|m| m.logs.clone()).unwrap_or_default();
        let base = config.source.as_deref().and_then(std::path::Path::parent);
        let upstream = Arc::new(Upstream::new());
        let sinks = Sinks::start(&config.logging, base, &upstream, &sink_counters)?;
        Ok(Arc::new(App {
            keys,
            routes,
            upstream,
            started_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            draining: AtomicBool::new(false),
            prices,
            governor: Arc::new(governor),
            files,
            metrics,
            tracing,
            cache,
            sinks,
            responses,
            config,
        }))
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
