//! The HTTP server: the [`App`] that owns every stage's state, and [`serve`].

pub mod body;
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
    /// Prices, when `general.enable_cost_tracking` is on: the embedded table with
    /// per-model `input_cost_per_token`/`output_cost_per_token` overrides.
    pub pricing: Option<liter_llm::pricing::PriceTable>,
    /// Models without a price, each logged once.
    pub unpriced: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl App {
    /// Build the gateway from a validated config. Fails only on values that cannot
    /// form an upstream request (the message names the model, never a key).
    pub fn build(config: Config) -> Result<Arc<App>, String> {
        let keys = Arc::new(KeyRegistry::from_config(&config));
        if keys.is_empty() {
            tracing::warn!(
                "no master_key and no [[keys]] configured: every API request will be refused with 401; set LITER_LLM_MASTER_KEY"
            );
        }
        let routes = Registry::from_config(&config)?;
        let upstream = Upstream::new();
        let pricing = config.file.general.enable_cost_tracking.then(|| {
            let mut table = liter_llm::pricing::PriceTable::embedded().clone();
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
            config,
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
    result
}
