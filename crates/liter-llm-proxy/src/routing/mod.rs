//! Routing stage: from the model name a client sent to the deployment that serves it.
//!
//! Every `[[models]]` entry is a deployment; entries sharing a name form a pool. A
//! pick filters the pool to deployments that are healthy, not cooling down and have
//! room under their own rpm/tpm, keeps the best priority tier (`order`), and lets the
//! pool's strategy choose. `execute` drives retries and fallbacks with it.

pub mod breaker;
pub mod deployment;
pub mod execute;
pub mod health;
pub mod strategy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Uri};
use liter_llm::providers::adapter::Secret;
use liter_llm::providers::{AdapterConfig, AuthStyle};
use liter_llm::Provider;
use rand::rngs::StdRng;
use rand::SeedableRng;
use secrecy::ExposeSecret;
use tokio::time::Instant;

use crate::auth::Principal;
use crate::config::{glob_match, Config, CooldownSpec, CredentialAlias, Deployment, PoolSpec};
use crate::error::GatewayError;
use crate::upstream::{OpenAiTarget, Target, Wire};
pub use deployment::{DeploymentState, InFlight};
use liter_llm::ProviderModel;

/// One model name and its deployments.
#[derive(Debug)]
pub struct Pool {
    pub spec: PoolSpec,
    pub deployments: Vec<Arc<DeploymentState>>,
}

/// All pools by name (aliases included), in config order for listing.
#[derive(Debug)]
pub struct Registry {
    by_name: HashMap<String, Arc<Pool>>,
    /// (listed name, pool) in config order; aliases after the pools.
    order: Vec<(String, Arc<Pool>)>,
    pub cooldown: Option<CooldownSpec>,
    exploration: f64,
    /// Set when `[router] seed` is: reproducible choices.
    seeded: Option<Mutex<StdRng>>,
    /// `[[aliases]]`: credentials for `provider/model` names sent directly.
    credential_aliases: Vec<CredentialAlias>,
    /// Pools made on first use for `provider/model` names.
    dynamic: Mutex<HashMap<String, Arc<Pool>>>,
    default_timeout: Duration,
    drop_params: bool,
}

fn target_for(d: &Deployment) -> Result<Option<Target>, String> {
    let Some(net) = d.provider.network() else {
        return Ok(None);
    };
    let Some(base) = &d.base_url else {
        return Err(format!("model {:?} has no base_url", d.name));
    };
    if d.api_key.is_none() && net.key_required {
        tracing::warn!(
            model = %d.name,
            provider = net.name,
            env = ?net.key_env,
            "no API key for this model: set api_key or one of the variables; requests will go upstream unauthenticated"
        );
    }
    let cfg = AdapterConfig {
        base_url: base.trim_end_matches('/').to_string(),
        model_id: d.model_id.clone(),
        api_key: d
            .api_key
            .as_ref()
            .map(|k| Secret(k.expose_secret().to_string())),
        settings: d.settings.clone(),
    };
    let wire = match d.provider.adapter(&cfg) {
        Some(adapter) => Wire::Adapter(adapter.map_err(|e| format!("model {:?}: {e}", d.name))?),
        None => Wire::OpenAi(Box::new(openai_target(d, &cfg)?)),
    };
    let token = match &wire {
        Wire::Adapter(adapter) => {
            crate::upstream::token::TokenCache::for_adapter(adapter).map(std::sync::Arc::new)
        }
        Wire::OpenAi(_) => None,
    };
    Ok(Some(Target {
        name: d.name.clone(),
        wire,
        timeout: d.timeout,
        token,
    }))
}

/// URLs and auth header of an OpenAI-compatible deployment (Azure OpenAI included:
/// deployment URLs with `api-version`, and the key in `api-key`).
fn openai_target(d: &Deployment, cfg: &AdapterConfig) -> Result<OpenAiTarget, String> {
    let (chat, embeddings, auth) = match d.provider {
        Provider::OpenAiCompat(p) => (
            format!("{}/chat/completions", cfg.base_url),
            format!("{}/embeddings", cfg.base_url),
            p.auth,
        ),
        Provider::Azure => {
            let urls = liter_llm::providers::azure::urls(
                &cfg.base_url,
                &cfg.model_id,
                cfg.settings.api_version.as_deref(),
            );
            (
                urls.chat,
                urls.embeddings,
                AuthStyle::Header(liter_llm::providers::azure::API_KEY_HEADER),
            )
        }
        _ => {
            return Err(format!(
                "model {:?}: not an OpenAI-compatible provider",
                d.name
            ))
        }
    };
    let uri = |url: String| -> Result<Uri, String> {
        url.parse()
            .map_err(|_| format!("model {:?}: base_url does not form a valid URL", d.name))
    };
    let auth = match &cfg.api_key {
        None => None,
        Some(key) => {
            let (name, value) = match auth {
                AuthStyle::Bearer => (
                    axum::http::header::AUTHORIZATION,
                    format!("Bearer {}", key.expose()),
                ),
                AuthStyle::Header(h) => (HeaderName::from_static(h), key.expose().to_string()),
            };
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                format!(
                    "model {:?}: the API key contains characters not allowed in an HTTP header",
                    d.name
                )
            })?;
            value.set_sensitive(true);
            Some((name, value))
        }
    };
    Ok(OpenAiTarget {
        chat_uri: uri(chat)?,
        embeddings_uri: Some(uri(embeddings)?),
        auth,
    })
}

impl Registry {
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let routing = &config.routing;
        let mut by_name = HashMap::new();
        let mut order = Vec::new();
        for spec in &routing.pools {
            let mut deployments = Vec::new();
            for d in config.models.iter().filter(|d| d.name == spec.name) {
                deployments.push(Arc::new(DeploymentState::new(d.clone(), target_for(d)?)));
            }
            let pool = Arc::new(Pool {
                spec: spec.clone(),
                deployments,
            });
            by_name.insert(spec.name.clone(), pool.clone());
            order.push((spec.name.clone(), pool));
        }
        for (alias, target) in &routing.aliases {
            if let Some(pool) = by_name.get(target).cloned() {
                by_name.insert(alias.clone(), pool.clone());
                order.push((alias.clone(), pool));
            }
        }
        Ok(Registry {
            by_name,
            order,
            cooldown: routing.cooldown,
            exploration: routing.latency_exploration,
            seeded: routing.seed.map(|s| Mutex::new(StdRng::seed_from_u64(s))),
            credential_aliases: config.credential_aliases.clone(),
            dynamic: Mutex::new(HashMap::new()),
            default_timeout: config.default_timeout,
            drop_params: config.drop_params,
        })
    }

    /// The pool for `model` (a name or alias, or a `provider/model` name whose
    /// credentials an `[[aliases]]` entry or the provider's key variable supplies,
    /// read when the config was loaded), if it
    /// exists and `principal` may use it.
    pub fn resolve(&self, principal: &Principal, model: &str) -> Result<Arc<Pool>, GatewayError> {
        let pool = match self.pool(model) {
            Some(p) => p.clone(),
            None => self
                .direct(model)
                .ok_or_else(|| GatewayError::ModelNotFound {
                    model: model.to_string(),
                })?,
        };
        if !principal.may_use(model) {
            return Err(GatewayError::ModelNotAllowed {
                model: model.to_string(),
            });
        }
        Ok(pool)
    }

    /// A one-deployment pool for a `provider/model` name sent directly, made once.
    fn direct(&self, model: &str) -> Option<Arc<Pool>> {
        let mut cache = self.dynamic.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = cache.get(model) {
            return Some(p.clone());
        }
        let pm = ProviderModel::parse(model).ok()?;
        let alias = self
            .credential_aliases
            .iter()
            .find(|a| a.provider == pm.provider && glob_match(&a.pattern, model))?;
        let (base_url, api_key) = (alias.base_url.clone(), alias.api_key.clone());
        let deployment = Deployment {
            name: model.to_string(),
            provider_model: model.to_string(),
            provider: pm.provider,
            model_id: pm.model_id,
            base_url,
            api_key,
            timeout: self.default_timeout,
            mock_latency: None,
            weight: 1.0,
            rpm: None,
            tpm: None,
            order: 1,
            stream_timeout: None,
            input_cost_per_token: None,
            output_cost_per_token: None,
            settings: liter_llm::providers::adapter::ProviderSettings {
                drop_params: self.drop_params,
                ..Default::default()
            },
        };
        let target = target_for(&deployment).ok()?;
        let pool = Arc::new(Pool {
            spec: PoolSpec {
                name: model.to_string(),
                strategy: Default::default(),
                fallbacks: Vec::new(),
                context_window_fallbacks: Vec::new(),
            },
            deployments: vec![Arc::new(DeploymentState::new(deployment, target))],
        });
        cache.insert(model.to_string(), pool.clone());
        Some(pool)
    }

    /// The `[[aliases]]` patterns, for `/v1/models`.
    pub fn patterns(&self) -> impl Iterator<Item = &CredentialAlias> {
        self.credential_aliases.iter()
    }

    /// A pool by name or alias, with no permission check (fallbacks).
    pub fn pool(&self, name: &str) -> Option<&Arc<Pool>> {
        self.by_name.get(name)
    }

    /// Names the principal may use, in config order, with their pools.
    pub fn visible<'a>(
        &'a self,
        principal: &'a Principal,
    ) -> impl Iterator<Item = (&'a str, &'a Arc<Pool>)> + 'a {
        self.order
            .iter()
            .filter(move |(name, _)| principal.may_use(name))
            .map(|(name, pool)| (name.as_str(), pool))
    }

    /// Every deployment of every pool, once.
    pub fn deployments(&self) -> impl Iterator<Item = &Arc<DeploymentState>> {
        self.order
            .iter()
            .filter(|(name, pool)| *name == pool.spec.name)
            .flat_map(|(_, pool)| pool.deployments.iter())
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Choose a deployment of `pool` for a request of about `tokens` tokens, skipping
    /// those in `tried` unless `allow_tried`. The choice is admitted by its breaker and
    /// counted against its rpm/tpm before it is returned.
    pub fn pick(
        &self,
        pool: &Pool,
        tried: &[usize],
        allow_tried: bool,
        tokens: u64,
    ) -> Result<(usize, Arc<DeploymentState>), GatewayError> {
        // A concurrent request may take the last slot between choosing and
        // reserving; try again a few times before giving up.
        for _ in 0..4 {
            let now = Instant::now();
            let mut cands: Vec<(usize, &Arc<DeploymentState>)> =
                Vec::with_capacity(pool.deployments.len());
            let (mut full, mut cooling) = (false, None::<Instant>);
            for (i, d) in pool.deployments.iter().enumerate() {
                if (!allow_tried && tried.contains(&i)) || !d.is_healthy() {
                    continue;
                }
                let breaker = d.breaker();
                if !breaker.available(now) {
                    let at = breaker.reopens_at().unwrap_or(now);
                    cooling = Some(cooling.map_or(at, |c| c.min(at)));
                    continue;
                }
                drop(breaker);
                if !d.has_room(now, tokens) {
                    full = true;
                    continue;
                }
                cands.push((i, d));
            }
            let Some(tier) = cands.iter().map(|(_, d)| d.deployment.order).min() else {
                return Err(self.none_available(pool, now, full, cooling));
            };
            cands.retain(|(_, d)| d.deployment.order == tier);
            let refs: Vec<&Arc<DeploymentState>> = cands.iter().map(|(_, d)| *d).collect();
            let choice = self.with_rng(|rng| {
                strategy::choose(pool.spec.strategy, &refs, rng, self.exploration, now)
            });
            let (index, chosen) = cands[choice];
            if !chosen.breaker().admit(now) {
                continue;
            }
            if !chosen.reserve(now, tokens) {
                chosen.breaker().release_probe();
                continue;
            }
            return Ok((index, chosen.clone()));
        }
        Err(GatewayError::RateLimited {
            message: format!("every deployment of model {:?} is busy", pool.spec.name),
            retry_after: Duration::from_secs(1),
        })
    }

    fn none_available(
        &self,
        pool: &Pool,
        now: Instant,
        full: bool,
        cooling: Option<Instant>,
    ) -> GatewayError {
        let name = &pool.spec.name;
        if full {
            let wait = pool
                .deployments
                .iter()
                .map(|d| d.until_next_minute(now))
                .min()
                .unwrap_or(Duration::from_secs(60));
            return GatewayError::RateLimited {
                message: format!("every deployment of model {name:?} is at its rpm/tpm limit"),
                retry_after: wait,
            };
        }
        match cooling {
            Some(at) => GatewayError::Unavailable {
                message: format!(
                    "every deployment of model {name:?} is cooling down after failures"
                ),
                retry_after: Some(
                    at.saturating_duration_since(now)
                        .max(Duration::from_secs(1)),
                ),
            },
            None => GatewayError::Unavailable {
                message: format!("no healthy deployment of model {name:?} is available"),
                retry_after: None,
            },
        }
    }

    fn with_rng<T>(&self, f: impl FnOnce(&mut dyn rand::RngCore) -> T) -> T {
        match &self.seeded {
            Some(rng) => f(&mut *rng.lock().unwrap_or_else(|p| p.into_inner())),
            None => f(&mut rand::rng()),
        }
    }
}
