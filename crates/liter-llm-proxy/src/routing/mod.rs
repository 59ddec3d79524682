//! Routing stage: from the model name a client sent to the deployment that serves it.
//!
//! Every `[[models]]` entry is a deployment; entries sharing a name form a pool. A
//! pick filters the pool to deployments that the request's tags admit (`tags`, with
//! tag filtering on), that are healthy, not cooling down and have room under their own
//! rpm/tpm, keeps the best priority tier (`order`), and lets the pool's strategy
//! choose. `execute` drives retries and fallbacks with it. With Redis, room under
//! rpm/tpm and the counts least-busy and usage-based rank by are shared by every
//! gateway (`shared`).

pub mod breaker;
pub mod deployment;
pub mod direct;
pub mod execute;
pub mod health;
pub mod shared;
pub mod strategy;
pub mod tags;
pub mod wildcard;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::time::Instant;

use crate::config::{
    glob_match, Config, CooldownSpec, CredentialAlias, Deployment, Limits, PoolSpec,
};
use crate::error::GatewayError;
use crate::metrics::{DeploymentMetrics, Metrics};
use crate::upstream::{Target, TargetError};
pub use deployment::{DeploymentState, InFlight};
use direct::DirectPools;
pub use execute::{execute, Served};
use liter_llm::ProviderModel;
pub use shared::{Announcement, CooldownAnnouncer, Picked, PROBE_GRACE};
pub use tags::TagFilter;

/// Why no deployment was found for a request.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("the model {0:?} does not exist")]
    NotFound(String),
    #[error("key not allowed to access model {0:?}")]
    NotAllowed(String),
    /// Concurrent requests took every slot between choosing and reserving.
    #[error("every deployment of model {0:?} is busy")]
    Busy(String),
    #[error("every deployment of model {model:?} is at its rpm/tpm limit")]
    AtLimit { model: String, wait: Duration },
    #[error("every deployment of model {model:?} is cooling down after failures")]
    CoolingDown { model: String, wait: Duration },
    #[error("no healthy deployment of model {0:?} is available")]
    NoneHealthy(String),
    /// The shared routing counts (Redis) could not decide and
    /// `general.redis_failure` is `fail_closed`.
    #[error("the shared routing counts are unavailable; try again later")]
    SharedUnavailable,
    /// A name no model can have (a control character, over 256 bytes, a `..` part),
    /// refused before it can reach an upstream URL. The name is not repeated.
    #[error("invalid model name: {0}")]
    InvalidModel(liter_llm::providers::url::ModelIdError),
    /// Tag filtering left no deployment of the model (nor of its fallbacks). The
    /// wording starts as LiteLLM's does, for clients that look for it.
    #[error("Not allowed to access model due to tags configuration: no deployment of model {model:?} carries any of the tags {tags:?}")]
    NoTagMatch { model: String, tags: Vec<String> },
}

impl From<RouteError> for GatewayError {
    fn from(e: RouteError) -> Self {
        let message = e.to_string();
        let limited = |retry_after| GatewayError::RateLimited {
            message: message.clone(),
            retry_after,
            limits: None,
        };
        match e {
            RouteError::NotFound(model) => GatewayError::ModelNotFound { model },
            RouteError::NotAllowed(model) => GatewayError::ModelNotAllowed { model },
            RouteError::Busy(_) => limited(Duration::from_secs(1)),
            RouteError::AtLimit { wait, .. } => limited(wait),
            RouteError::CoolingDown { wait, .. } => GatewayError::Unavailable {
                message,
                retry_after: Some(wait),
            },
            RouteError::NoneHealthy(_) => GatewayError::Unavailable {
                message,
                retry_after: None,
            },
            RouteError::SharedUnavailable => GatewayError::StoreUnavailable(message),
            RouteError::InvalidModel(_) => GatewayError::BadRequest {
                message,
                param: Some("model"),
                code: Some("invalid_model"),
            },
            RouteError::NoTagMatch { .. } => GatewayError::BadRequest {
                message,
                param: Some("tags"),
                code: Some("no_deployments_with_tag_routing"),
            },
        }
    }
}

/// What a request asks of routing: a deployment of `pool` for about `tokens` tokens,
/// among those `tags` admits (all without it), skipping the indexes in `tried` unless
/// `allow_tried`.
#[derive(Clone, Copy)]
pub struct Ask<'a> {
    pub pool: &'a Pool,
    pub tags: Option<&'a TagFilter>,
    pub tried: &'a [usize],
    pub allow_tried: bool,
    pub tokens: u64,
}

impl<'a> Ask<'a> {
    /// An ask that skips the deployments tried.
    pub fn new(
        pool: &'a Pool,
        tags: Option<&'a TagFilter>,
        tried: &'a [usize],
        tokens: u64,
    ) -> Ask<'a> {
        Ask {
            pool,
            tags,
            tried,
            allow_tried: false,
            tokens,
        }
    }

    /// The same ask with the deployments tried allowed again (when only they are left).
    pub fn again(self) -> Ask<'a> {
        Ask {
            allow_tried: true,
            ..self
        }
    }
}

/// One model name and its deployments.
#[derive(Debug)]
pub struct Pool {
    pub spec: PoolSpec,
    pub deployments: Vec<Arc<DeploymentState>>,
    /// Some deployment is tagged `default` (it and its like take untagged requests
    /// when tag filtering is on).
    pub has_default: bool,
}

impl Pool {
    /// A pool of `deployments`, noting whether one is tagged `default`.
    pub fn new(spec: PoolSpec, deployments: Vec<Arc<DeploymentState>>) -> Pool {
        let has_default = deployments
            .iter()
            .any(|d| d.deployment.tags.iter().any(|t| t == tags::DEFAULT_TAG));
        Pool {
            spec,
            deployments,
            has_default,
        }
    }

    /// Whether every deployment of the pool takes `wire`'s requests as they came and
    /// the pool has no fallbacks: a request of that wire then never needs the
    /// canonical translation.
    pub fn passes_through(&self, wire: crate::error::Wire) -> bool {
        self.spec.fallbacks.is_empty()
            && self.spec.context_window_fallbacks.is_empty()
            && !self.deployments.is_empty()
            && self.deployments.iter().all(|d| {
                d.target
                    .as_ref()
                    .is_some_and(|t| t.protocol.passes_through(wire))
            })
    }
}

/// LiteLLM's pre-call context-window check: the deployments of `pool` whose
/// `max_input_tokens` a prompt of `prompt` tokens fits (`pool` itself when all do),
/// or, when none does, the largest window among them.
pub fn fitting(pool: &Arc<Pool>, prompt: Option<u64>) -> Result<Arc<Pool>, u64> {
    let fits = |d: &DeploymentState| {
        d.deployment
            .max_input_tokens
            .is_none_or(|max| prompt.is_none_or(|p| p <= max))
    };
    if pool.deployments.iter().all(|d| fits(d)) {
        return Ok(pool.clone());
    }
    let deployments: Vec<Arc<DeploymentState>> = pool
        .deployments
        .iter()
        .filter(|d| fits(d))
        .cloned()
        .collect();
    if deployments.is_empty() {
        let largest = pool
            .deployments
            .iter()
            .filter_map(|d| d.deployment.max_input_tokens)
            .max()
            .unwrap_or(0);
        return Err(largest);
    }
    Ok(Arc::new(Pool::new(pool.spec.clone(), deployments)))
}

/// The answer when a prompt fits no deployment's context window, as OpenAI words it.
pub fn context_exceeded(largest: u64, prompt: u64) -> GatewayError {
    GatewayError::BadRequest {
        message: format!(
            "This model's maximum context length is {largest} tokens. However, your messages resulted in about {prompt} tokens (the gateway's estimate)."
        ),
        param: Some("messages"),
        code: Some("context_length_exceeded"),
    }
}

/// All pools by name (aliases included), in config order for listing.
#[derive(Debug)]
pub struct Registry {
    by_name: HashMap<String, Arc<Pool>>,
    /// (listed name, pool) in config order; aliases after the pools.
    order: Vec<(String, Arc<Pool>)>,
    pub cooldown: Option<CooldownSpec>,
    /// `[router] enable_tag_filtering`.
    tag_filtering: bool,
    exploration: f64,
    /// Set when `[router] seed` is: reproducible choices.
    seeded: Option<Mutex<StdRng>>,
    /// `[[aliases]]`: credentials for `provider/model` names sent directly.
    credential_aliases: Vec<CredentialAlias>,
    /// `[[models]]` whose name is a pattern, for names not configured otherwise.
    wildcards: wildcard::Wildcards,
    /// Pools made on first use for `provider/model` names, bounded.
    direct: DirectPools,
    default_timeout: Duration,
    /// `[server] request_timeout_secs`: no request outlives it.
    request_timeout: Duration,
    drop_params: bool,
    /// Bounds on what is read from upstreams (`[server]`), for the targets made here.
    pub limits: Limits,
    /// The gateway's metrics (`None`: off).
    pub metrics: Option<Arc<Metrics>>,
    /// Told of each cooldown a failure starts here, each recovery a probe sees and each
    /// health change, so the gateways sharing Redis follow (set by the edge).
    announcer: std::sync::OnceLock<shared::Announcer>,
    /// The counts every gateway on one Redis shares (set by the App; `None`: this
    /// gateway's own counts only).
    shared: std::sync::OnceLock<shared::Shared>,
    /// Some deployment has a context window (`max_input_tokens`): prompts are counted.
    context_windows: bool,
    /// `[router] retry_after_secs`: the shortest wait before a retry that waits.
    pub retry_after: Duration,
}

impl Registry {
    pub fn from_config(
        config: &Config,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Self, TargetError> {
        let routing = &config.routing;
        let mut by_name = HashMap::new();
        let mut order = Vec::new();
        for spec in routing
            .pools
            .iter()
            .filter(|s| !wildcard::is_pattern(&s.name))
        {
            let mut deployments = Vec::new();
            for d in config.models.iter().filter(|d| d.name == spec.name) {
                let series = metrics
                    .as_ref()
                    .map(|m| m.deployment(Some(&d.name), &d.provider_model, d.provider.name()));
                deployments.push(Arc::new(DeploymentState::new(
                    d.clone(),
                    Target::for_deployment(d, &config.limits)?,
                    series,
                )));
            }
            let pool = Arc::new(Pool::new(spec.clone(), deployments));
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
            tag_filtering: routing.tag_filtering,
            exploration: routing.latency_exploration,
            seeded: routing.seed.map(|s| Mutex::new(StdRng::seed_from_u64(s))),
            credential_aliases: config.credential_aliases.clone(),
            wildcards: wildcard::Wildcards::from_config(config),
            direct: DirectPools::new(direct::DIRECT_POOLS),
            default_timeout: config.default_timeout,
            request_timeout: config.request_timeout,
            drop_params: config.drop_params,
            limits: config.limits,
            metrics,
            announcer: std::sync::OnceLock::new(),
            context_windows: config.models.iter().any(|d| d.max_input_tokens.is_some()),
            retry_after: routing.retry_after,
            shared: std::sync::OnceLock::new(),
        })
    }

    /// Carry `old`'s deployment state over (a reload): each deployment takes the live
    /// state of the one with its id in `old`.
    pub fn carry(&self, old: &Registry) {
        let by_id: HashMap<&str, &Arc<DeploymentState>> = old
            .deployments()
            .map(|d| (d.deployment.id.as_str(), d))
            .collect();
        for d in self.deployments() {
            if let Some(was) = by_id.get(d.deployment.id.as_str()) {
                d.carry(was);
            }
        }
    }

    /// The series of a deployment of a pool made for a client-sent name.
    fn direct_metrics(&self, d: &Deployment) -> Option<Arc<DeploymentMetrics>> {
        let m = self.metrics.as_ref()?;
        Some(m.deployment(None, &d.provider_model, d.provider.name()))
    }

    /// The pool for `model` (a name or alias, a `provider/model` name whose
    /// credentials an `[[aliases]]` entry supplies, or a name a wildcard model
    /// matches), if it exists and the caller may use it (`may_use`).
    pub fn resolve(
        &self,
        may_use: impl Fn(&str) -> bool,
        model: &str,
    ) -> Result<Arc<Pool>, RouteError> {
        let pool = match self.pool(model) {
            Some(p) => p.clone(),
            None => {
                // Not a configured name: it may become a `provider/model` pool whose id
                // goes into an upstream URL.
                liter_llm::providers::url::check_name(model).map_err(RouteError::InvalidModel)?;
                if let Ok(pm) = ProviderModel::parse(model) {
                    liter_llm::providers::url::check_model_id(&pm.model_id)
                        .map_err(RouteError::InvalidModel)?;
                }
                self.direct(model)
                    .ok_or_else(|| RouteError::NotFound(model.to_string()))?
            }
        };
        if !may_use(model) {
            return Err(RouteError::NotAllowed(model.to_string()));
        }
        Ok(pool)
    }

    /// A one-deployment pool for a `provider/model` name sent directly, made once.
    fn direct(&self, model: &str) -> Option<Arc<Pool>> {
        self.direct.get_or_make(model, || self.make_direct(model))
    }

    /// How many direct-name pools are cached (at most [`direct::DIRECT_POOLS`]).
    pub fn direct_pools(&self) -> usize {
        self.direct.len()
    }

    /// A pool for a name that is not configured: an `[[aliases]]` pattern's, else a
    /// wildcard model's.
    fn make_direct(&self, model: &str) -> Option<Arc<Pool>> {
        self.make_aliased(model)
            .or_else(|| self.make_wildcard(model))
    }

    /// A one-deployment pool for a `provider/model` name an `[[aliases]]` pattern
    /// covers.
    fn make_aliased(&self, model: &str) -> Option<Arc<Pool>> {
        let pm = ProviderModel::parse(model).ok()?;
        let alias = self
            .credential_aliases
            .iter()
            .find(|a| a.provider == pm.provider && glob_match(&a.pattern, model))?;
        let deployment = Deployment {
            id: model.to_string(),
            stored: false,
            name: model.to_string(),
            provider_model: model.to_string(),
            provider: pm.provider,
            model_id: pm.model_id,
            base_url: alias.base_url.clone(),
            api_key: alias.api_key.clone(),
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
            tags: Vec::new(),
            mode: Default::default(),
            base_model: None,
            max_tokens: None,
            max_input_tokens: None,
            max_output_tokens: None,
            max_retries: None,
            any_provider: false,
        };
        let target = Target::for_deployment(&deployment, &self.limits).ok()?;
        let series = self.direct_metrics(&deployment);
        Some(Arc::new(Pool {
            spec: PoolSpec {
                name: model.to_string(),
                strategy: Default::default(),
                fallbacks: Vec::new(),
                context_window_fallbacks: Vec::new(),
                max_retries: None,
            },
            deployments: vec![Arc::new(DeploymentState::new(deployment, target, series))],
            has_default: false,
        }))
    }

    /// A pool for a name a wildcard model matches: its deployments with the name
    /// filled in.
    fn make_wildcard(&self, model: &str) -> Option<Arc<Pool>> {
        if self.wildcards.is_empty() {
            return None;
        }
        let (spec, deployments) = self.wildcards.resolve(model)?;
        let mut states = Vec::with_capacity(deployments.len());
        for d in deployments {
            let target = Target::for_deployment(&d, &self.limits).ok()?;
            let series = self.direct_metrics(&d);
            states.push(Arc::new(DeploymentState::new(d, target, series)));
        }
        Some(Arc::new(Pool::new(spec, states)))
    }

    /// The `[[aliases]]` patterns, for `/v1/models`.
    pub fn patterns(&self) -> impl Iterator<Item = &CredentialAlias> {
        self.credential_aliases.iter()
    }

    /// A pool by name or alias, with no permission check (fallbacks).
    pub fn pool(&self, name: &str) -> Option<&Arc<Pool>> {
        self.by_name.get(name)
    }

    /// Names the caller may use, in config order, with their pools.
    pub fn visible<'a>(
        &'a self,
        may_use: impl Fn(&str) -> bool + 'a,
    ) -> impl Iterator<Item = (&'a str, &'a Arc<Pool>)> + 'a {
        self.order
            .iter()
            .filter(move |(name, _)| may_use(name))
            .map(|(name, pool)| (name.as_str(), pool))
    }

    /// Every deployment of every pool, once.
    pub fn deployments(&self) -> impl Iterator<Item = &Arc<DeploymentState>> {
        self.order
            .iter()
            .filter(|(name, pool)| *name == pool.spec.name)
            .flat_map(|(_, pool)| pool.deployments.iter())
    }

    /// Whether some deployment has a context window to check prompts against.
    pub fn checks_context(&self) -> bool {
        self.context_windows
    }

    /// Whether requests' tags choose deployments (`[router] enable_tag_filtering`).
    pub fn tag_filtering(&self) -> bool {
        self.tag_filtering
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Choose a deployment for `ask`. The choice is admitted by its breaker and
    /// counted against its rpm/tpm before it is returned: in the counts every gateway
    /// shares when there are some ([`shared`]), else in this process's.
    pub async fn take(&self, ask: &Ask<'_>) -> Result<Picked, RouteError> {
        match self.shared.get() {
            None => self.pick(ask),
            Some(s) => self.pick_shared(&*s.0, ask).await,
        }
    }

    /// [`Registry::take`] on this process's counts.
    pub fn pick(&self, ask: &Ask<'_>) -> Result<Picked, RouteError> {
        let (pool, tokens) = (ask.pool, ask.tokens);
        // A concurrent request may take the last slot between choosing and
        // reserving; try again a few times before giving up.
        for _ in 0..4 {
            let now = Instant::now();
            let cands = self.candidates(ask, now, |_, d| {
                if d.has_room(now, tokens) {
                    Ok(true)
                } else {
                    Err(d.until_next_minute(now))
                }
            })?;
            let (index, chosen) = self.choose(pool, &cands, now);
            if !chosen.breaker().admit(now) {
                continue;
            }
            if !chosen.reserve(now, tokens) {
                chosen.breaker().release_probe();
                continue;
            }
            return Ok((index, chosen.clone(), None));
        }
        Err(RouteError::Busy(pool.spec.name.clone()))
    }

    /// The deployments of the asked pool, with their index, a request may go to now:
    /// not tried (unless allowed), healthy, admitted by the tags, not cooling down, and
    /// with room by `room` (`Ok(false)`: passed over; `Err(wait)`: full for `wait`),
    /// in the best priority tier. When there are none, why.
    fn candidates<'p>(
        &self,
        ask: &Ask<'p>,
        now: Instant,
        room: impl Fn(usize, &DeploymentState) -> Result<bool, Duration>,
    ) -> Result<Vec<(usize, &'p Arc<DeploymentState>)>, RouteError> {
        let Ask {
            pool,
            tags,
            tried,
            allow_tried,
            ..
        } = *ask;
        let mut cands: Vec<(usize, &Arc<DeploymentState>)> =
            Vec::with_capacity(pool.deployments.len());
        let (mut full, mut cooling) = (None::<Duration>, None::<Instant>);
        for (i, d) in pool.deployments.iter().enumerate() {
            if (!allow_tried && tried.contains(&i)) || !d.is_healthy() {
                continue;
            }
            if tags.is_some_and(|f| !f.admits(pool, &d.deployment)) {
                continue;
            }
            let breaker = d.breaker();
            if !breaker.available(now) {
                let at = breaker.reopens_at().unwrap_or(now);
                cooling = Some(cooling.map_or(at, |c| c.min(at)));
                continue;
            }
            drop(breaker);
            match room(i, d) {
                Ok(true) => cands.push((i, d)),
                Ok(false) => {}
                Err(wait) => full = Some(full.map_or(wait, |f| f.min(wait))),
            }
        }
        let Some(tier) = cands.iter().map(|(_, d)| d.deployment.order).min() else {
            return Err(self.none_available(pool, now, full, cooling));
        };
        cands.retain(|(_, d)| d.deployment.order == tier);
        Ok(cands)
    }

    /// The candidate `pool`'s strategy chooses (`cands` is never empty).
    fn choose<'p>(
        &self,
        pool: &Pool,
        cands: &[(usize, &'p Arc<DeploymentState>)],
        now: Instant,
    ) -> (usize, &'p Arc<DeploymentState>) {
        let refs: Vec<&Arc<DeploymentState>> = cands.iter().map(|(_, d)| *d).collect();
        let choice = self.with_rng(|rng| {
            strategy::choose(pool.spec.strategy, &refs, rng, self.exploration, now)
        });
        cands[choice]
    }

    fn none_available(
        &self,
        pool: &Pool,
        now: Instant,
        full: Option<Duration>,
        cooling: Option<Instant>,
    ) -> RouteError {
        let model = pool.spec.name.clone();
        if let Some(wait) = full {
            return RouteError::AtLimit { model, wait };
        }
        match cooling {
            Some(at) => RouteError::CoolingDown {
                model,
                wait: at
                    .saturating_duration_since(now)
                    .max(Duration::from_secs(1)),
            },
            None => RouteError::NoneHealthy(model),
        }
    }

    fn with_rng<T>(&self, f: impl FnOnce(&mut dyn rand::RngCore) -> T) -> T {
        match &self.seeded {
            Some(rng) => f(&mut *rng.lock().unwrap_or_else(|p| p.into_inner())),
            None => f(&mut rand::rng()),
        }
    }
}
