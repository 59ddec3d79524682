//! The HTTP server: the [`App`] that owns every stage's state, and [`serve`].

pub mod body;
mod cors;
pub(crate) mod handlers;
pub(crate) mod mock;
pub mod stack;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::auth::KeyRegistry;
use crate::config::Config;
use crate::routing::Registry;
use crate::upstream::Upstream;

/// Everything a running gateway owns.
pub struct App {
    pub config: Config,
    pub keys: Arc<KeyRegistry>,
    pub routes: Registry,
    pub upstream: Upstream,
    /// Unix time of start-up, reported as `created` in `/v1/models`.
    pub started_at: u64,
    /// Set once shutdown has begun: readiness then answers 503.
    pub draining: AtomicBool,
    /// Prices, when cost tracking or budgets need them: the embedded table, merged
    /// with `general.pricing_file`, with per-model `input_cost_per_token` /
    /// `output_cost_per_token` overrides.
    pub pricing: Option<liter_llm::pricing::PriceTable>,
    /// Models without a price, each logged once.
    pub unpriced: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Limits, budgets and the store.
    pub governor: crate::budget::Governor,
}

impl App {
    /// Build the gateway from a validated config. Fails only on values that cannot
    /// form an upstream request (the message names the model, never a key).
    pub async fn build(config: Config) -> Result<Arc<App>, String> {
        let governor = crate::budget::Governor::open(&config).await?;
        let keys = Arc::new(KeyRegistry::from_config(
            &config,
            governor.stores.as_ref().map(|s| s.keys.clone()),
        ));
        if keys.is_empty() {
            tracing::warn!(
                "no master_key and no [[keys]] configured: every API request will be refused with 401; set LITER_LLM_MASTER_KEY"
            );
        }
        let routes = Registry::from_config(&config)?;
        let upstream = Upstream::new();
        let wants_prices = config.enable_cost_tracking
            || governor.stores.is_some()
            || config.governance.pricing_file.is_some();
        let base_table = match &config.governance.pricing_file {
            Some(path) => {
                let path = match &config.source {
                    Some(src) if path.is_relative() => {
                        src.parent().map_or_else(|| path.clone(), |d| d.join(path))
                    }
                    _ => path.clone(),
                };
                let table = liter_llm::pricing::PriceTable::with_file(&path)
                    .map_err(|e| format!("general.pricing_file: {e}"))?;
                for skipped in table.skipped() {
                    tracing::warn!(entry = %skipped, "pricing_file entry skipped (no input and output price, or no provider)");
                }
                table
            }
            None => liter_llm::pricing::PriceTable::embedded().clone(),
        };
        let pricing = wants_prices.then(|| {
            let mut table = base_table;
            for d in &config.models {
                if d.input_cost_per_token.is_some() || d.output_cost_per_token.is_some() {
                    let base = table.get(&d.provider_model).cloned();
                    let mut price = base.unwrap_or(liter_llm::pricing::ModelPrice {
                        input_cost_per_token: 0.0,
                        output_cost_per_token: 0.0,
                        cache_read_input_token_cost: None,
                        cache_creation_input_token_cost: None,
                        max_input_tokens: None,
                        max_output_tokens: None,
                        source: Some("liter-llm-proxy.toml".into()),
                        updated: None,
                    });
                    if let Some(p) = d.input_cost_per_token {
                        price.input_cost_per_token = p;
                    }
                    if let Some(p) = d.output_cost_per_token {
                        price.output_cost_per_token = p;
                    }
                    table.insert(&d.provider_model, price);
                }
            }
            table
        });
        Ok(Arc::new(App {
            keys,
            routes,
            upstream,
            started_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            draining: AtomicBool::new(false),
            pricing,
            unpriced: Default::default(),
            governor,
            config,
        }))
    }

    /// The price of `usage` on `provider_model`; an unknown model costs 0 and is logged
    /// once. `None` when prices are not loaded.
    pub fn price_of(&self, provider_model: &str, usage: &liter_llm::types::Usage) -> Option<f64> {
        let table = self.pricing.as_ref()?;
        Some(table.cost(provider_model, usage).unwrap_or_else(|| {
            let mut seen = self.unpriced.lock().unwrap_or_else(|p| p.into_inner());
            if seen.insert(provider_model.to_owned()) {
                tracing::warn!(deployment = %provider_model, "no price for this model: its requests are counted at cost 0");
            }
            0.0
        }))
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// Serve `app` on `listener` until `shutdown` resolves; then stop accepting and wait
/// for in-flight requests and streams to finish.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = stack::router(app.clone());
    let probes = crate::routing::health::spawn(app.clone());
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let draining = app.clone();
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            draining.draining.store(true, Ordering::Relaxed);
            tracing::info!("shutting down: draining in-flight requests");
        })
        .await;
    if let Some(p) = probes {
        p.abort();
    }
    // Every request has ended: make the spend of the last ones durable before exit.
    app.governor.settled().await;
    result
}
