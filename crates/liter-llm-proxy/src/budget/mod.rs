//! Governance stage, between routing's name resolution and execution: key expiry,
//! per-key and global rate limits (`limits`), and budget reservation in the spend
//! store; then, when the request ends, settlement.
//!
//! [`admit`] runs in this order: expired key (401), rate limits (429 with `Retry-After`
//! and `x-ratelimit-*`), budget reservation (402, or a warning header under soft
//! enforcement). It returns a [`Meter`], which follows the request to its end: the
//! dispatcher tells it the usage the provider reported (a non-streamed answer's
//! `usage`, a stream's usage chunk or a translator's count) and which deployment
//! answered. **Settlement happens when the last handle on the meter is dropped** (the
//! handler's, and a stream body's): the rate window gets the real tokens, and the
//! reservation is settled with the real cost and a ledger row, on a task of its own. So
//! a client that disconnects mid-stream is settled too: with the usage seen so far when
//! the provider reported it, else with the whole reservation (an upper bound of what
//! the provider can bill, so recorded spend never falls short).
//!
//! Requests with nothing to govern (the master key, no global limit, no store) get no
//! meter and cost nothing here.

pub mod estimate;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderName, HeaderValue, Response};
use axum::response::IntoResponse;
use liter_llm::types::Usage;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::auth::{Principal, VirtualKey};
use crate::config::{Config, Enforcement};
use crate::error::GatewayError;
use crate::limits::{self, Admission, Refusal, Remaining, Window};
use crate::routing::Pool;
use crate::server::body::Head;
use crate::server::App;
use crate::store::{
    BudgetScope, Clock, LedgerEntry, Reservation, ReservationId, ReserveError, Stores, SystemClock,
    UnixMillis,
};
use crate::upstream::Endpoint;
use estimate::{Estimate, Tokenizer};

pub const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
pub const REMAINING_REQUESTS: HeaderName =
    HeaderName::from_static("x-ratelimit-remaining-requests");
pub const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
pub const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
/// Set when a soft `[budget]` limit was crossed and the request let through.
pub const BUDGET_WARNING: HeaderName = HeaderName::from_static("x-liter-llm-budget-warning");

/// Settlement tasks still running, so tests and shutdown can wait for them.
#[derive(Debug, Default)]
struct Pending {
    count: AtomicUsize,
    idle: Notify,
}

/// What the governance stage keeps for the gateway's lifetime.
#[derive(Debug)]
pub struct Governor {
    /// The spend store and key store, when budgets, cost tracking or the key admin API
    /// use one.
    pub stores: Option<Stores>,
    global_window: Option<Arc<Window>>,
    /// The name of the `"global"` scope, made once.
    global_scope: Arc<str>,
    /// Per `provider/model` with a budget (`[budget] model_limits`): its scope's name,
    /// made once, and its limit in USD.
    model_scopes: std::collections::HashMap<String, (Arc<str>, f64)>,
    tokenizer: Tokenizer,
    pending: Arc<Pending>,
}

/// Whether this config needs the database.
fn needs_store(config: &Config) -> bool {
    let g = &config.governance;
    g.database_url.is_some()
        || g.has_budgets()
        || config.keys.iter().any(|k| k.limits.budget_limit.is_some())
        || (config.enable_cost_tracking && config.source.is_some())
}

/// The database URL to open: the configured one, or the default SQLite file beside
/// the config file.
fn database_url(config: &Config) -> Result<String, String> {
    if let Some(url) = &config.governance.database_url {
        return Ok(secrecy::ExposeSecret::expose_secret(url).to_string());
    }
    match &config.source {
        Some(file) => Ok(crate::config::default_database(Some(file))
            .display()
            .to_string()),
        None => Err(
            "budgets need a database: set general.database_url (a postgres:// URL or an SQLite file path)"
                .into(),
        ),
    }
}

impl Governor {
    /// Opens the store (creating it, running migrations, reconciling reservations that
    /// a crashed gateway left) and warms the tokenizer.
    pub async fn open(config: &Config) -> Result<Governor, String> {
        let stores = if needs_store(config) {
            let url = database_url(config)?;
            let stores = crate::store::open(&url)
                .await
                .map_err(|e| format!("cannot open the database: {e}"))?;
            match stores.spend.reconcile().await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    reservations = n,
                    "counted in full the reservations a stopped gateway left behind"
                ),
                Err(e) => return Err(format!("cannot reconcile the spend store: {e}")),
            }
            Some(stores)
        } else {
            None
        };
        let tokenizer = Tokenizer::default();
        let counts_tokens = stores.is_some()
            || config.governance.global_rate.tpm.is_some()
            || config.keys.iter().any(|k| k.limits.rate.tpm.is_some());
        if counts_tokens {
            let t = tokenizer.clone();
            let _ = tokio::task::spawn_blocking(move || t.warm()).await;
        }
        Ok(Governor {
            stores,
            global_window: config
                .governance
                .global_rate
                .is_set()
                .then(|| Arc::new(Window::new(config.governance.global_rate))),
            global_scope: BudgetScope::global(0.0, None).scope,
            model_scopes: config
                .governance
                .model_budgets
                .iter()
                .map(|(m, &limit)| (m.clone(), (BudgetScope::model_name(m), limit)))
                .collect(),
            tokenizer,
            pending: Arc::default(),
        })
    }

    /// Waits until every settlement started so far has been written and is durable.
    pub async fn settled(&self) {
        loop {
            let notified = self.pending.idle.notified();
            if self.pending.count.load(Ordering::Acquire) == 0 {
                break;
            }
            notified.await;
        }
        if let Some(s) = &self.stores {
            if let Err(e) = s.spend.flush().await {
                tracing::error!(error = %e, "could not write the spend ledger");
            }
        }
    }
}

/// One governed request, from admission to settlement. Cheap to clone.
#[derive(Clone)]
pub struct Meter(Arc<Inner>);

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter").finish_non_exhaustive()
    }
}

struct Inner {
    app: Arc<App>,
    admission: Option<Admission>,
    reservation: Option<ReservationId>,
    reserved_usd: f64,
    estimate: Estimate,
    request_id: String,
    key_id: Option<String>,
    key_alias: Option<String>,
    model: String,
    started_at: UnixMillis,
    soft_warning: Option<String>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    usage: Option<Usage>,
    /// The cost of `usage`, when the dispatcher priced it already.
    cost: Option<f64>,
    deployment: Option<String>,
    /// The status the client got; 0 while unknown.
    status: u16,
}

impl Meter {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The usage the provider reported.
    pub fn record_usage(&self, usage: Usage) {
        self.record_priced(usage, None);
    }

    /// The usage the provider reported and its cost, when already known (priced for
    /// the deployment that answered).
    pub fn record_priced(&self, usage: Usage, cost: Option<f64>) {
        let mut s = self.state();
        s.usage = Some(usage);
        s.cost = cost;
    }

    /// Which deployment answered, and with what status.
    pub fn served(&self, deployment: Option<&str>, status: u16) {
        let mut s = self.state();
        if let Some(d) = deployment {
            s.deployment = Some(d.to_owned());
        }
        s.status = status;
    }

    /// The `x-ratelimit-*` and budget-warning headers for the response.
    pub fn decorate<B>(&self, resp: &mut Response<B>) {
        let h = resp.headers_mut();
        if let Some(r) = self.0.admission.as_ref().and_then(|a| a.remaining) {
            rate_headers(h, &r);
        }
        if let Some(w) = &self.0.soft_warning {
            if let Ok(v) = HeaderValue::from_str(w) {
                h.insert(BUDGET_WARNING, v);
            }
        }
    }
}

impl crate::upstream::stream::UsageTap for Meter {
    fn usage(&self, usage: Usage) {
        self.record_usage(usage);
    }
}

fn rate_headers(h: &mut axum::http::HeaderMap, r: &Remaining) {
    if let (Some(limit), Some(left)) = (r.limits.rpm, r.requests) {
        h.insert(LIMIT_REQUESTS, number(limit.into()));
        h.insert(REMAINING_REQUESTS, number(left.into()));
    }
    if let (Some(limit), Some(left)) = (r.limits.tpm, r.tokens) {
        h.insert(LIMIT_TOKENS, number(limit));
        h.insert(REMAINING_TOKENS, number(left));
    }
}

/// `n` as a header value, in one allocation (`HeaderValue::from(u64)` takes two).
fn number(n: u64) -> HeaderValue {
    let mut digits = itoa::Buffer::new();
    HeaderValue::from_bytes(digits.format(n).as_bytes()).unwrap_or(HeaderValue::from_static("0"))
}

impl Drop for Inner {
    fn drop(&mut self) {
        let state = std::mem::take(self.state.get_mut().unwrap_or_else(|p| p.into_inner()));
        let failed = state.status >= 400;
        // Without reported usage, an error answer billed nothing; anything else may
        // have been billed up to the whole reservation.
        let tokens = match (state.usage, failed) {
            (Some(u), _) => u.total_tokens.max(u.prompt_tokens + u.completion_tokens),
            (None, true) => 0,
            (None, false) => self.estimate.total(),
        };
        if let Some(a) = &self.admission {
            a.settle(tokens);
        }
        let (Some(stores), Some(id)) = (&self.app.governor.stores, self.reservation) else {
            return;
        };
        let cost = match (&state.usage, state.cost, &state.deployment) {
            (Some(_), Some(priced), _) => priced,
            (Some(u), None, Some(d)) => self.app.price_of(d, u).unwrap_or(0.0),
            (Some(_), None, None) => 0.0,
            (None, _, _) if failed => 0.0,
            (None, _, _) => self.reserved_usd,
        };
        let usage = state.usage.unwrap_or_default();
        let entry = LedgerEntry {
            request_id: std::mem::take(&mut self.request_id),
            key_id: self.key_id.take(),
            key_alias: self.key_alias.take(),
            model: std::mem::take(&mut self.model),
            deployment: state.deployment.unwrap_or_default(),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cached_tokens: usage
                .prompt_tokens_details
                .map_or(0, |d| d.cached_tokens)
                .max(usage.cache_read_input_tokens.unwrap_or(0)),
            cost_usd: cost,
            status: state.status,
            started_at: self.started_at,
            ended_at: SystemClock.now_ms(),
        };
        let spend = stores.spend.clone();
        let mut settle = Box::pin(async move {
            if let Err(e) = spend.settle(id, entry).await {
                tracing::error!(error = %e, "could not settle a reservation: it stays reserved and is counted in full at the next start");
            }
        });
        // A store that settles in memory is done at the first poll; one that waits on
        // a database gets a task of its own.
        if futures_util::FutureExt::now_or_never(&mut settle).is_some() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            // No runtime (process exit): the reservation stays and is counted in full
            // by the next start's reconcile.
            return;
        };
        let pending = self.app.governor.pending.clone();
        pending.count.fetch_add(1, Ordering::AcqRel);
        rt.spawn(async move {
            settle.await;
            if pending.count.fetch_sub(1, Ordering::AcqRel) == 1 {
                pending.idle.notify_waiters();
            }
        });
    }
}

/// The 429 for a refused request.
fn refused(r: Refusal) -> Response<axum::body::Body> {
    let message = match (r.scope, r.retry_after) {
        (scope, None) => format!(
            "this request alone needs more {} than the {scope}'s per-minute limit allows",
            r.what
        ),
        ("key", Some(_)) => format!("rate limit reached for this key: {} per minute", r.what),
        (_, Some(_)) => format!("rate limit reached for this gateway: {} per minute", r.what),
    };
    let mut resp = GatewayError::RateLimited {
        message,
        retry_after: r.retry_after.unwrap_or(std::time::Duration::from_secs(60)),
    }
    .into_response();
    rate_headers(resp.headers_mut(), &r.remaining);
    resp
}

/// The budget scopes of a request: the key's, the gateway's and the model's.
fn scopes(app: &App, key: Option<&VirtualKey>, pool: &Pool, soft: bool) -> Vec<BudgetScope> {
    let g = &app.config.governance;
    let soft_limit = |limit: f64| if soft { f64::INFINITY } else { limit };
    let mut out = Vec::with_capacity(3);
    if let Some(k) = key {
        // Always kept, so a key's spend is known whether or not it has a budget.
        out.push(BudgetScope::named(
            Arc::clone(&k.scope),
            k.limits.budget_limit.unwrap_or(f64::INFINITY),
            k.limits.budget_period,
        ));
    }
    out.push(BudgetScope::named(
        Arc::clone(&app.governor.global_scope),
        g.global_budget.map_or(f64::INFINITY, soft_limit),
        None,
    ));
    let mut models: Vec<&(Arc<str>, f64)> = pool
        .deployments
        .iter()
        .filter_map(|d| app.governor.model_scopes.get(&d.deployment.provider_model))
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

/// Admits a request, or answers it: 401 (expired key), 429 (rate limit), 402 (budget),
/// 503 (store unreachable: budgets fail closed).
pub async fn admit(
    app: &Arc<App>,
    principal: &Principal,
    head: &Head,
    body: &[u8],
    pool: &Pool,
    endpoint: Endpoint,
    request_id: &str,
) -> Result<Option<Meter>, Response<axum::body::Body>> {
    let gov = &app.governor;
    let key = match principal {
        Principal::Virtual(k) => Some(k),
        Principal::Master => None,
    };
    let now_ms = SystemClock.now_ms();
    if let Some(exp) = key.and_then(|k| k.limits.expires_at) {
        if now_ms >= exp {
            return Err(
                GatewayError::Unauthorized("this API key has expired".into()).into_response(),
            );
        }
    }
    let mut windows: Vec<(&'static str, &Arc<Window>)> = Vec::with_capacity(2);
    if let Some(w) = key.and_then(|k| k.window.as_ref()) {
        windows.push(("key", w));
    }
    if let Some(w) = &gov.global_window {
        windows.push(("gateway", w));
    }
    if windows.is_empty() && gov.stores.is_none() {
        return Ok(None);
    }

    let needs_tokens = gov.stores.is_some() || windows.iter().any(|(_, w)| w.limits.tpm.is_some());
    let estimate = if needs_tokens {
        match endpoint {
            Endpoint::Chat => {
                let max_out = pool
                    .deployments
                    .iter()
                    .filter_map(|d| {
                        app.pricing
                            .as_ref()?
                            .get(&d.deployment.provider_model)?
                            .max_output_tokens
                    })
                    .max();
                estimate::chat(&gov.tokenizer, body, max_out)
            }
            Endpoint::Embeddings => estimate::embeddings(&gov.tokenizer, body),
        }
    } else {
        Estimate {
            prompt: 0,
            max_output: 0,
        }
    };
    let admission = if windows.is_empty() {
        None
    } else {
        Some(limits::admit(&windows, Instant::now(), estimate.total()).map_err(refused)?)
    };

    let mut reservation = None;
    let mut reserved_usd = 0.0;
    let mut soft_warning = None;
    if let Some(stores) = &gov.stores {
        // The most any deployment of the pool could bill for this request.
        let usage = Usage::new(estimate.prompt, estimate.max_output);
        reserved_usd = pool
            .deployments
            .iter()
            .filter_map(|d| app.price_of(&d.deployment.provider_model, &usage))
            .fold(0.0, f64::max);
        let soft = app.config.governance.enforcement == Enforcement::Soft;
        let reservation_of = |soft: bool| Reservation {
            request_id: request_id.to_owned(),
            scopes: scopes(app, key, pool, soft),
            amount_usd: reserved_usd,
        };
        let result = match stores.spend.reserve(reservation_of(false)).await {
            Err(ReserveError::OverBudget { scope, .. }) if soft && !scope.starts_with("key:") => {
                tracing::warn!(scope = %scope, model = %head.model, "soft budget crossed: request let through");
                soft_warning = Some(format!("budget exceeded for {scope} (soft enforcement)"));
                stores.spend.reserve(reservation_of(true)).await
            }
            other => other,
        };
        match result {
            Ok(id) => reservation = Some(id),
            Err(e) => {
                if let Some(a) = &admission {
                    a.settle(0);
                }
                return Err(match e {
                    ReserveError::OverBudget { scope, .. } => {
                        let whose = if scope.starts_with("key:") {
                            "this key's budget".to_owned()
                        } else if scope == "global" {
                            "the gateway's budget".to_owned()
                        } else {
                            format!("the budget of {}", scope.trim_start_matches("model:"))
                        };
                        GatewayError::BudgetExceeded(format!(
                            "{whose} would be exceeded by this request (up to ${reserved_usd:.6})"
                        ))
                    }
                    ReserveError::Store(e) => {
                        tracing::error!(error = %e, "spend store unavailable: request refused");
                        GatewayError::StoreUnavailable(
                            "the spend store is unavailable; try again later".into(),
                        )
                    }
                }
                .into_response());
            }
        }
    }
    Ok(Some(Meter(Arc::new(Inner {
        app: app.clone(),
        admission,
        reservation,
        reserved_usd,
        estimate,
        request_id: request_id.to_owned(),
        key_id: key.map(|k| k.id.clone()),
        key_alias: key.map(|k| k.label.clone()),
        model: head.model.clone(),
        started_at: now_ms,
        soft_warning,
        state: Mutex::default(),
    }))))
}
