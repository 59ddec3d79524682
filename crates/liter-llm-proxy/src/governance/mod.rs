//! Governance stage, between routing's name resolution and execution: key expiry,
//! per-key and global rate limits ([`limits`]), the token estimate ([`estimate`]) and
//! budget reservation in the spend store; then, when the request ends, settlement by
//! the [`Meter`] ([`meter`]).
//!
//! [`admit`] is the one entry point. It runs in this order: expired key (401), rate
//! limits (429 with `Retry-After` and `x-ratelimit-*`), budget reservation (402, or a
//! warning header under soft enforcement; 503 when the store is unreachable and a
//! budget applies: budgets fail closed). It returns a [`Meter`], which follows the
//! request to its end. A request no budget applies to is admitted while the store is
//! unreachable with room for its spend in the [`spool`] (503 when it is full), which
//! writes it when the store answers again.
//!
//! Requests with nothing to govern (the master key, no global limit, no ledger) get no
//! meter and cost nothing here. Uses `routing` (the pool's deployments), `upstream`
//! (the usage tap it implements), `pricing`, `store`, `config`; never the HTTP edge.

pub mod bpe;
mod bpe_layout;
pub mod breaker;
pub mod estimate;
pub mod limiter;
pub mod limits;
pub mod meter;
pub mod redis_limits;
pub mod spool;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use liter_llm::types::Usage;

use crate::config::{Config, Enforcement, KeyLimits, RedisFailure};
use crate::error::{GatewayError, RateHeaders};
use crate::logtext::Clean;
use crate::pricing::Prices;
use crate::request::{Endpoint, Head};
use crate::routing::Pool;
use crate::store::{
    BudgetScope, Clock, Reservation, ReservationId, ReserveError, StoreError, Stores, SystemClock,
};
use crate::tasks::Pending;
use estimate::{Estimate, Tokenizer};
use limiter::{Denied, Limit, Limiter, Local};
use limits::{Admission, Refusal, Remaining, Window};
pub use meter::{Meter, BUDGET_WARNING};
use redis_limits::{RedisLimiter, RedisUrlError};
use spool::Spool;

/// The longest a request no budget applies to waits for its reservation before its
/// spend goes to the spool instead (the reservation, should it land later, is given
/// back).
pub const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the governance stage keeps for the gateway's lifetime.
#[derive(Debug)]
pub struct Governor {
    /// The spend store and key store, when budgets, cost tracking or the key admin API
    /// use one.
    pub stores: Option<Stores>,
    /// Whether every request is metered into the ledger (a configured database,
    /// budgets or cost tracking), or only runtime keys' (the store was opened for the
    /// admin API alone).
    meter_all: bool,
    global_window: Option<Arc<Window>>,
    /// The windows every gateway on `general.redis_url` shares (`None`: this
    /// process's windows only).
    pub shared: Option<RedisLimiter>,
    /// `[budget] global_limit`.
    global_budget: Option<f64>,
    /// `[budget] enforcement = "soft"`.
    soft: bool,
    /// The name of the `"global"` scope, made once.
    global_scope: Arc<str>,
    /// Per `provider/model` with a budget (`[budget] model_limits`): its scope's name,
    /// made once, and its limit in USD.
    model_scopes: HashMap<String, (Arc<str>, f64)>,
    tokenizer: Tokenizer,
    prices: Option<Arc<Prices>>,
    /// Settlement tasks still running.
    pending: Arc<Pending>,
    /// Spend the store could not take yet (`stores` is set).
    pub spool: Option<Arc<Spool>>,
}

/// The governance stage could not start.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    #[error("{0}: set general.database_url (a postgres:// URL or an SQLite file path)")]
    NoDatabase(&'static str),
    #[error("cannot open the database: {0}")]
    Open(StoreError),
    #[error("cannot reconcile the spend store: {0}")]
    Reconcile(StoreError),
    #[error("general.disable_spend_logs: {0}")]
    Ledger(StoreError),
    #[error(transparent)]
    Redis(#[from] RedisUrlError),
}

/// Why a request was refused, rendered by `GatewayError`.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("this API key has expired")]
    Expired,
    #[error("{}", rate_message(.0))]
    RateLimited(Refusal),
    #[error("{whose} would be exceeded by this request (up to ${amount:.6})")]
    OverBudget {
        whose: String,
        amount: f64,
        /// `key`, `gateway` or `model`.
        scope: &'static str,
    },
    #[error("the spend store is unavailable; try again later")]
    StoreUnavailable,
    /// The spend store is down and its in-memory buffer is full.
    #[error("the spend store is unavailable and the gateway's buffer of unwritten spend is full; try again later")]
    SpoolFull,
    /// Redis could not decide the shared rate limits and `general.redis_failure` is
    /// `fail_closed`.
    #[error("the shared rate limiter is unavailable; try again later")]
    LimiterUnavailable,
    /// A budget applies and the model has no price, so the budget could not hold.
    #[error("model {0:?} has no price, so the budget that applies to this request cannot be enforced; price it with input_cost_per_token / output_cost_per_token on its [[models]] entry or in general.pricing_file, or set [budget] default_input_cost_per_token / default_output_cost_per_token")]
    Unpriced(String),
}

impl Refused {
    /// For `/metrics`: (`rate_limit` or `budget`, the scope: `key`, `gateway` or
    /// `model`); `None` for a refusal of another kind.
    pub fn scope(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Refused::RateLimited(r) => Some(("rate_limit", r.scope)),
            Refused::OverBudget { scope, .. } => Some(("budget", scope)),
            _ => None,
        }
    }
}

fn rate_message(r: &Refusal) -> String {
    match (r.scope, r.retry_after) {
        (scope, None) => format!(
            "this request alone needs more {} than the {scope}'s per-minute limit allows",
            r.what
        ),
        ("key", Some(_)) => format!("rate limit reached for this key: {} per minute", r.what),
        (_, Some(_)) => format!("rate limit reached for this gateway: {} per minute", r.what),
    }
}

impl From<Refused> for GatewayError {
    fn from(r: Refused) -> Self {
        let message = r.to_string();
        match r {
            Refused::Expired => GatewayError::Unauthorized(message),
            Refused::RateLimited(refusal) => GatewayError::RateLimited {
                message,
                retry_after: refusal.retry_after.unwrap_or(Duration::from_secs(60)),
                limits: Some(rate_headers(&refusal.remaining)),
            },
            Refused::OverBudget { .. } => GatewayError::BudgetExceeded(message),
            Refused::StoreUnavailable | Refused::SpoolFull | Refused::LimiterUnavailable => {
                GatewayError::StoreUnavailable(message)
            }
            Refused::Unpriced(_) => GatewayError::BadRequest {
                message,
                param: Some("model"),
                code: Some("model_not_priced"),
            },
        }
    }
}

/// The `x-ratelimit-*` values of a window.
fn rate_headers(r: &Remaining) -> RateHeaders {
    RateHeaders {
        requests: r
            .limits
            .rpm
            .zip(r.requests)
            .map(|(l, left)| (l.into(), left.into())),
        tokens: r.limits.tpm.zip(r.tokens),
    }
}

/// What governance needs of a virtual key (borrowed from the authenticated caller).
#[derive(Debug, Clone, Copy)]
pub struct KeyAccount<'a> {
    /// Stable id for the ledger, never the secret.
    pub id: &'a str,
    /// A safe label for the ledger's alias column.
    pub label: &'a str,
    /// The key's budget scope name.
    pub scope: &'a Arc<str>,
    pub limits: &'a KeyLimits,
    pub window: Option<&'a Arc<Window>>,
    /// Created through the admin API (metered whenever there is a store).
    pub runtime: bool,
}

/// Whether `[files]` keeps its metadata in the database: every backend but `memory`
/// (whose objects, and so whose metadata, live in the process only).
fn files_need_store(config: &Config) -> bool {
    config.files.as_ref().is_some_and(|f| !f.is_volatile())
}

/// The database URL to open, or `None` when nothing needs one. The default is the
/// SQLite file beside the config file: for budgets, the files API's metadata, and
/// (whenever the config came from a file) cost tracking and the admin API (a master
/// key).
pub fn database_url(config: &Config) -> Result<Option<String>, GovernanceError> {
    let g = &config.governance;
    if let Some(url) = &g.database_url {
        return Ok(Some(secrecy::ExposeSecret::expose_secret(url).to_owned()));
    }
    let budgets = g.has_budgets() || config.keys.iter().any(|k| k.limits.budget_limit.is_some());
    let files = files_need_store(config);
    let from_file = config.source.is_some();
    if !(budgets
        || files
        || (from_file && (config.enable_cost_tracking || config.master_key.is_some())))
    {
        return Ok(None);
    }
    match &config.source {
        Some(file) => Ok(Some(
            crate::config::default_database(Some(file))
                .display()
                .to_string(),
        )),
        None if budgets => Err(GovernanceError::NoDatabase("budgets need a database")),
        None => Err(GovernanceError::NoDatabase(
            "the files API on a persistent backend needs a database for its file metadata",
        )),
    }
}

/// Opens the store the config needs, if any (creating it, running migrations,
/// reconciling reservations that a crashed gateway left). When only the admin API
/// asked for the default file and it cannot be opened (another gateway holds it), the
/// gateway starts without a store, says so, and the admin API answers 503.
pub async fn open_store(config: &Config) -> Result<Option<Stores>, GovernanceError> {
    let Some(url) = database_url(config)? else {
        return Ok(None);
    };
    let stores = match crate::store::open(&url).await {
        Ok(s) => s,
        Err(e) if !config.meters_all() && !files_need_store(config) => {
            tracing::warn!(error = %e, "the admin API is off: its default database could not be opened; set general.database_url");
            return Ok(None);
        }
        Err(e) => return Err(GovernanceError::Open(e)),
    };
    match stores.spend.reconcile().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            reservations = n,
            "counted in full the reservations a stopped gateway left behind"
        ),
        Err(e) => return Err(GovernanceError::Reconcile(e)),
    }
    Ok(Some(stores))
}

impl Governor {
    /// The stage over `stores` (from [`open_store`]); warms the tokenizer when
    /// tokens are counted. Fails only on a Redis URL the client cannot use.
    pub async fn new(
        config: &Config,
        stores: Option<Stores>,
        prices: Option<Arc<Prices>>,
    ) -> Result<Governor, GovernanceError> {
        let g = &config.governance;
        let meter_all = config.meters_all();
        let tokenizer = Tokenizer::default();
        // Loaded now when every request counts tokens; otherwise (a store for the admin
        // API's keys only) on the first count, so an ungoverned gateway never holds it.
        let counts_tokens = (stores.is_some() && meter_all)
            || g.global_rate.tpm.is_some()
            || config.keys.iter().any(|k| k.limits.rate.tpm.is_some());
        if counts_tokens {
            let t = tokenizer.clone();
            let _ = tokio::task::spawn_blocking(move || t.warm()).await;
        }
        let pending = Arc::<Pending>::default();
        let spool = stores
            .as_ref()
            .map(|s| Spool::new(s.spend.clone(), g.spend_buffer_records));
        let shared = match &g.redis {
            Some(spec) => {
                tracing::info!(from = spec.source, namespace = %spec.namespace, "rate limits are shared through Redis");
                Some(RedisLimiter::new(spec, pending.clone())?)
            }
            None => None,
        };
        Ok(Governor {
            stores,
            meter_all,
            shared,
            global_window: g
                .global_rate
                .is_set()
                .then(|| Arc::new(Window::new(g.global_rate))),
            global_budget: g.global_budget,
            soft: g.enforcement == Enforcement::Soft,
            global_scope: BudgetScope::global(0.0, None).scope,
            model_scopes: g
                .model_budgets
                .iter()
                .map(|(m, &limit)| (m.clone(), (BudgetScope::model_name(m), limit)))
                .collect(),
            tokenizer,
            prices,
            pending,
            spool,
        })
    }

    /// Admits a request against `limits` in Redis when the limits are shared, else
    /// (or when Redis cannot decide and the policy is `fail_open`) in this process.
    async fn limit(&self, limits: &[Limit<'_>], tokens: u64) -> Result<Admission, Refused> {
        if let Some(shared) = &self.shared {
            match shared.admit(limits, tokens).await {
                Ok(a) => return Ok(a),
                Err(Denied::Refused(r)) => return Err(Refused::RateLimited(r)),
                Err(Denied::Unavailable) if shared.failure() == RedisFailure::FailClosed => {
                    return Err(Refused::LimiterUnavailable)
                }
                Err(Denied::Unavailable) => {}
            }
        }
        Local::admit_now(limits, tokens).map_err(Refused::RateLimited)
    }

    /// Carry `old`'s live state over (a reload): the gateway's rate-limit window when
    /// its limits are unchanged, and the settlements still running.
    pub fn carry(&mut self, old: &Governor) {
        if let (Some(w), Some(old_w)) = (&self.global_window, &old.global_window) {
            if w.limits == old_w.limits {
                self.global_window = Some(old_w.clone());
            }
        }
        self.pending = old.pending.clone();
        if let (Some(new), Some(old)) = (&self.spool, &old.spool) {
            if let Some(stores) = &self.stores {
                if old.serves(&stores.spend) {
                    old.set_max_records(new.max_records());
                    self.spool = Some(old.clone());
                }
            }
        }
    }

    /// The prompt tokens of a chat body, as the estimate counts them (the tokenizer
    /// loads on first use: call from a blocking task).
    pub fn prompt_tokens(&self, body: &[u8]) -> u64 {
        estimate::chat(&self.tokenizer, body, None).prompt
    }

    /// The input tokens of a chat or embeddings body, as the estimate counts them
    /// (call from a blocking task, as [`Self::prompt_tokens`]).
    pub fn input_tokens(&self, body: &[u8], endpoint: Endpoint) -> u64 {
        match endpoint {
            Endpoint::Chat => self.prompt_tokens(body),
            Endpoint::Embeddings => estimate::embeddings(&self.tokenizer, body).prompt,
        }
    }

    /// Waits until every settlement started so far has been written and is durable.
    pub async fn settled(&self) {
        self.pending.idle().await;
        if let Some(s) = &self.stores {
            if let Err(e) = s.spend.flush().await {
                tracing::error!(error = %e, "could not write the spend ledger");
            }
        }
    }

    /// Waits until the spend buffered while the store was down has been written and the
    /// store answers (see [`spool`]).
    pub async fn drained(&self) {
        if let Some(s) = &self.spool {
            s.drained().await;
        }
    }

    /// The budget scopes of a request: the key's, the gateway's and the model's.
    fn scopes(&self, key: Option<&KeyAccount<'_>>, pool: &Pool, soft: bool) -> Vec<BudgetScope> {
        let soft_limit = |limit: f64| if soft { f64::INFINITY } else { limit };
        let mut out = Vec::with_capacity(3);
        if let Some(k) = key {
            // Always kept, so a key's spend is known whether or not it has a budget.
            out.push(BudgetScope::named(
                Arc::clone(k.scope),
                k.limits.budget_limit.unwrap_or(f64::INFINITY),
                k.limits.budget_period,
            ));
        }
        out.push(BudgetScope::named(
            Arc::clone(&self.global_scope),
            self.global_budget.map_or(f64::INFINITY, soft_limit),
            None,
        ));
        let mut models: Vec<&(Arc<str>, f64)> = pool
            .deployments
            .iter()
            .filter_map(|d| self.model_scopes.get(&d.deployment.provider_model))
            .collect();
        models.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        models.dedup_by(|a, b| a.0 == b.0);
        for (name, limit) in models {
            out.push(BudgetScope::named(
                Arc::clone(name),
                soft_limit(*limit),
                None,
            ));
        }
        out
    }

    /// Whether any spend limit applies to a request of `key` on `pool`: the key's
    /// budget, the gateway's, or a model budget of one of its deployments.
    fn budget_applies(&self, key: Option<&KeyAccount<'_>>, pool: &Pool) -> bool {
        key.is_some_and(|k| k.limits.budget_limit.is_some())
            || self.global_budget.is_some()
            || pool
                .deployments
                .iter()
                .any(|d| self.model_scopes.contains_key(&d.deployment.provider_model))
    }

    /// The tokens this request may use: its prompt and the most it may answer.
    fn estimate(&self, body: &[u8], pool: &Pool, endpoint: Endpoint) -> Estimate {
        match endpoint {
            Endpoint::Chat => {
                let max_out = pool
                    .deployments
                    .iter()
                    .filter_map(|d| {
                        d.deployment.max_output_tokens.or_else(|| {
                            self.prices
                                .as_ref()?
                                .get(&d.deployment.provider_model)?
                                .max_output_tokens
                        })
                    })
                    .max();
                estimate::chat(&self.tokenizer, body, max_out)
            }
            Endpoint::Embeddings => estimate::embeddings(&self.tokenizer, body),
        }
    }

    /// Reserves the most any deployment of the pool could bill for this request, in
    /// every budget scope it belongs to; under soft enforcement, a crossed gateway or
    /// model budget lets the request through with a warning. A cache hit (`free`)
    /// reserves 0 and needs no price.
    async fn reserve(
        &self,
        stores: &Stores,
        key: Option<&KeyAccount<'_>>,
        pool: &Pool,
        estimate: Estimate,
        request: (&str, &str),
        free: bool,
    ) -> Result<Reserved, Refused> {
        let (request_id, model) = request;
        let budgeted = self.budget_applies(key, pool);
        if !free && budgeted {
            let unpriced = pool.deployments.iter().find(|d| {
                let name = &d.deployment.provider_model;
                d.target.is_some() && !self.prices.as_ref().is_some_and(|p| p.is_priced(name))
            });
            if let Some(d) = unpriced {
                return Err(Refused::Unpriced(d.deployment.provider_model.clone()));
            }
        }
        let usage = Usage::new(estimate.prompt, estimate.max_output);
        let amount = match &self.prices {
            _ if free => 0.0,
            Some(p) => pool
                .deployments
                .iter()
                .map(|d| p.cost(&d.deployment.provider_model, &usage))
                .fold(0.0, f64::max),
            None => 0.0,
        };
        let reservation_of = |soft: bool| Reservation {
            request_id: request_id.to_owned(),
            scopes: self.scopes(key, pool, soft),
            amount_usd: amount,
        };
        if self.spool.as_ref().is_some_and(|s| s.is_down()) {
            return self.spooled(key, pool, request, budgeted, amount);
        }
        let mut warning = None;
        // A request no budget applies to waits for the store at most STORE_TIMEOUT, then
        // goes to the spool; a budgeted one waits as long as the store takes (a
        // reservation contended by many requests is slow, not a store that is down).
        let first = if budgeted {
            stores.spend.reserve(reservation_of(false)).await
        } else {
            reserve_in_time(stores, reservation_of(false)).await
        };
        let result = match first {
            Err(ReserveError::OverBudget { scope, .. })
                if self.soft && !scope.starts_with("key:") =>
            {
                tracing::warn!(scope = %Clean(&scope), model = %Clean(model), "soft budget crossed: request let through");
                warning = Some(format!("budget exceeded for {scope} (soft enforcement)"));
                stores.spend.reserve(reservation_of(true)).await
            }
            other => other,
        };
        match result {
            Ok(id) => Ok(Reserved {
                id: Some(id),
                slot: None,
                amount,
                warning,
            }),
            Err(ReserveError::OverBudget { scope, .. }) => Err(Refused::OverBudget {
                whose: whose_budget(&scope),
                amount,
                scope: if scope.starts_with("key:") {
                    "key"
                } else if scope == "global" {
                    "gateway"
                } else {
                    "model"
                },
            }),
            Err(ReserveError::Store(e)) => {
                tracing::error!(error = %e, "spend store unavailable");
                self.spooled(key, pool, request, budgeted, amount)
            }
        }
    }

    /// Admits a request while the spend store is down: with room in the spool for its
    /// record when no budget applies to it; refused (503) otherwise, as a budget
    /// cannot hold without the store.
    fn spooled(
        &self,
        key: Option<&KeyAccount<'_>>,
        pool: &Pool,
        (request_id, model): (&str, &str),
        budgeted: bool,
        amount: f64,
    ) -> Result<Reserved, Refused> {
        let Some(spool) = self.spool.as_ref().filter(|_| !budgeted) else {
            return Err(Refused::StoreUnavailable);
        };
        let deployment = pool
            .deployments
            .iter()
            .map(|d| d.deployment.provider_model.as_str())
            .max_by_key(|m| m.len())
            .unwrap_or("");
        let bytes = spool::record_bytes([
            request_id,
            model,
            deployment,
            key.map_or("", |k| k.id),
            key.map_or("", |k| k.label),
        ]);
        match spool.hold(self.scopes(key, pool, false), bytes) {
            Some(slot) => Ok(Reserved {
                id: None,
                slot: Some(slot),
                amount,
                warning: None,
            }),
            None => {
                tracing::error!("spend store down and its buffer full: request refused");
                Err(Refused::SpoolFull)
            }
        }
    }
}

/// A reservation, or a store error when the store takes longer than [`STORE_TIMEOUT`]
/// (the reservation is then given back when it lands).
async fn reserve_in_time(stores: &Stores, r: Reservation) -> Result<ReservationId, ReserveError> {
    match tokio::time::timeout(STORE_TIMEOUT, stores.spend.reserve(r)).await {
        Ok(result) => result,
        Err(_) => Err(ReserveError::Store(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the spend store did not answer in time",
        )))),
    }
}

/// A budget reservation held for a request.
struct Reserved {
    /// `None` when admitted into the spool while the store is down.
    id: Option<ReservationId>,
    /// The spool's room for the record of a request admitted with no reservation.
    slot: Option<spool::Slot>,
    amount: f64,
    /// Set when a soft limit was crossed.
    warning: Option<String>,
}

/// How a refusal names a budget scope.
fn whose_budget(scope: &str) -> String {
    if scope.starts_with("key:") {
        "this key's budget".to_owned()
    } else if scope == "global" {
        "the gateway's budget".to_owned()
    } else {
        format!("the budget of {}", scope.trim_start_matches("model:"))
    }
}

/// The request as governance sees it.
pub struct Request<'a> {
    pub head: &'a Head,
    pub body: &'a [u8],
    pub endpoint: Endpoint,
    pub request_id: &'a str,
    /// Answered from the response cache: it counts for the rpm windows only (no
    /// tokens), is reserved and billed at 0, and its ledger row says `cache_hit`.
    pub cache_hit: bool,
}

/// Admits a request (`Some(meter)` when it is governed, `None` when there is nothing
/// to govern), or refuses it: 401 (expired key), 429 (rate limit), 402 (budget), 503
/// (store unreachable: budgets fail closed). A cache hit (`req.cache_hit`) goes through
/// the same checks with no tokens and a reservation of 0, so it costs nothing, counts
/// for rpm, and is still refused to a key whose budget is already spent.
pub async fn admit(
    gov: &Arc<Governor>,
    key: Option<KeyAccount<'_>>,
    pool: &Pool,
    req: Request<'_>,
) -> Result<Option<Meter>, Refused> {
    let now_ms = SystemClock.now_ms();
    if key
        .and_then(|k| k.limits.expires_at)
        .is_some_and(|exp| now_ms >= exp)
    {
        return Err(Refused::Expired);
    }
    let mut windows: Vec<Limit<'_>> = Vec::with_capacity(2);
    if let Some(k) = key {
        if let Some(window) = k.window {
            let name = k.scope;
            windows.push(Limit {
                scope: "key",
                name,
                window,
            });
        }
    }
    if let Some(window) = &gov.global_window {
        windows.push(Limit {
            scope: "gateway",
            name: "global",
            window,
        });
    }
    let stores = gov
        .stores
        .as_ref()
        .filter(|_| gov.meter_all || key.is_some_and(|k| k.runtime));
    if windows.is_empty() && stores.is_none() {
        return Ok(None);
    }
    let needs_tokens = !req.cache_hit
        && (stores.is_some() || windows.iter().any(|l| l.window.limits.tpm.is_some()));
    let estimate = if needs_tokens {
        gov.estimate(req.body, pool, req.endpoint)
    } else {
        Estimate {
            prompt: 0,
            max_output: 0,
        }
    };
    let admission: Option<Admission> = if windows.is_empty() {
        None
    } else {
        Some(gov.limit(&windows, estimate.total()).await?)
    };
    let mut reserved = match stores {
        Some(stores) => {
            let request = (req.request_id, req.head.model.as_str());
            match gov
                .reserve(stores, key.as_ref(), pool, estimate, request, req.cache_hit)
                .await
            {
                Ok(r) => Some(r),
                Err(refused) => {
                    if let Some(a) = &admission {
                        a.settle(0);
                    }
                    return Err(refused);
                }
            }
        }
        None => None,
    };
    Ok(Some(Meter(Arc::new(meter::Inner {
        gov: gov.clone(),
        admission,
        reservation: reserved.as_ref().and_then(|r| r.id),
        slot: reserved.as_mut().and_then(|r| r.slot.take()),
        reserved_usd: reserved.as_ref().map_or(0.0, |r| r.amount),
        estimate,
        request_id: req.request_id.to_owned(),
        key_id: key.map(|k| k.id.to_owned()),
        key_alias: key.map(|k| k.label.to_owned()),
        model: req.head.model.clone(),
        started_at: now_ms,
        soft_warning: reserved.and_then(|r| r.warning),
        cache_hit: req.cache_hit,
        state: Mutex::default(),
    }))))
}
