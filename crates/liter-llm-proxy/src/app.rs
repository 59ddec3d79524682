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
use crate::governance::{self, GovernanceError, Governor};
use crate::pricing::{Prices, PricingFileError};
use crate::routing::Registry;
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
    /// The response cache (`[cache]`).
    pub cache: Option<Arc<Cache>>,
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
    #[error("[cache]: {0}")]
    Cache(#[from] crate::objstore::ObjStoreError),
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
        let cache = match &config.cache {
            Some(spec) => Some(Arc::new(Cache::with_clock(spec, clock)?)),
            None => None,
        };
        let stores = governance::open_store(&config).await?;
        let prices = Prices::load(&config, stores.is_some())?.map(Arc::new);
        let governor = Governor::new(&config, stores, prices.clone()).await;
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
        let routes = Arc::new(Registry::from_config(&config)?);
        Ok(Arc::new(App {
            keys,
            routes,
            upstream: Arc::new(Upstream::new()),
            started_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            draining: AtomicBool::new(false),
            prices,
            governor: Arc::new(governor),
            cache,
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
}
