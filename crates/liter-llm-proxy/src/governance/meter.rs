//! The meter: one governed request from admission to settlement.
//!
//! The dispatcher tells it the usage the provider reported (a non-streamed answer's
//! `usage`, a stream's usage chunk or a translator's count) through
//! [`UsageTap`], and the handler which deployment answered. **Settlement happens when
//! the last handle on the meter is dropped** (the handler's, and a stream body's): the
//! rate window gets the real tokens, and the reservation is settled with the real cost
//! and a ledger row, on a task of its own when the store needs one. So a client that
//! disconnects mid-stream is settled too: with the usage seen so far when the provider
//! reported it, else with the whole reservation (an upper bound of what the provider
//! can bill, so recorded spend never falls short).

use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::{HeaderName, HeaderValue, Response};
use liter_llm::types::Usage;

use super::estimate::Estimate;
use super::limits::Admission;
use super::Governor;
use crate::store::{Clock, LedgerEntry, ReservationId, SystemClock, UnixMillis};
use crate::upstream::UsageTap;

/// Set when a soft `[budget]` limit was crossed and the request let through.
pub const BUDGET_WARNING: HeaderName = HeaderName::from_static("x-liter-llm-budget-warning");

/// One governed request, from admission to settlement. Cheap to clone.
#[derive(Clone)]
pub struct Meter(pub(super) Arc<Inner>);

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter").finish_non_exhaustive()
    }
}

pub(super) struct Inner {
    pub gov: Arc<Governor>,
    pub admission: Option<Admission>,
    pub reservation: Option<ReservationId>,
    /// Admitted with no reservation while the spend store was down: the spool's room
    /// for this request's record.
    pub slot: Option<super::spool::Slot>,
    pub reserved_usd: f64,
    pub estimate: Estimate,
    pub request_id: String,
    pub key_id: Option<String>,
    pub key_alias: Option<String>,
    pub model: String,
    pub started_at: UnixMillis,
    pub soft_warning: Option<String>,
    /// Answered from the response cache: billed nothing.
    pub cache_hit: bool,
    pub state: Mutex<State>,
}

#[derive(Default)]
pub(super) struct State {
    usage: Option<Usage>,
    /// The cost of `usage`, when the dispatcher priced it already.
    cost: Option<f64>,
    deployment: Option<String>,
    /// The status the client got; 0 while unknown.
    status: u16,
}

impl Meter {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
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
            super::rate_headers(&r).write(h);
        }
        if let Some(w) = &self.0.soft_warning {
            if let Ok(v) = HeaderValue::from_str(w) {
                h.insert(BUDGET_WARNING, v);
            }
        }
    }
}

impl UsageTap for Meter {
    fn report(&self, usage: Usage, cost: Option<f64>) {
        let mut s = self.state();
        s.usage = Some(usage);
        s.cost = cost;
    }

    fn boxed(&self) -> Box<dyn UsageTap> {
        Box::new(self.clone())
    }
}

impl Inner {
    /// The finished request's tokens, for the rate windows.
    fn tokens(&self, state: &State) -> u64 {
        // Without reported usage, an error answer billed nothing; anything else may
        // have been billed up to the whole reservation.
        match (&state.usage, state.status >= 400) {
            (Some(u), _) => u
                .total_tokens
                .max(u.prompt_tokens.saturating_add(u.completion_tokens)),
            (None, true) => 0,
            (None, false) => self.estimate.total(),
        }
    }

    /// The ledger row of the finished request.
    fn entry(&mut self, state: State) -> LedgerEntry {
        let failed = state.status >= 400;
        let cost = match (&state.usage, state.cost, &state.deployment) {
            (Some(_), Some(priced), _) => priced,
            (Some(u), None, Some(d)) => self.gov.prices.as_ref().map_or(0.0, |p| p.cost(d, u)),
            (Some(_), None, None) => 0.0,
            (None, _, _) if failed => 0.0,
            (None, _, _) => self.reserved_usd,
        };
        let usage = state.usage.unwrap_or_default();
        LedgerEntry {
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
            cache_hit: self.cache_hit,
            started_at: self.started_at,
            ended_at: SystemClock.now_ms(),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let state = std::mem::take(self.state.get_mut().unwrap_or_else(|p| p.into_inner()));
        if let Some(a) = &self.admission {
            a.settle(self.tokens(&state));
        }
        if let Some(slot) = self.slot.take() {
            slot.push(self.entry(state));
            return;
        }
        let (Some(stores), Some(id)) = (&self.gov.stores, self.reservation) else {
            return;
        };
        let spend = stores.spend.clone();
        let spool = self.gov.spool.clone();
        let entry = self.entry(state);
        let mut settle = Box::pin(async move {
            // Kept for a retry through the spool, should the store fail.
            let retry = spool.as_ref().map(|_| entry.clone());
            let Err(e) = spend.settle(id, entry).await else {
                return;
            };
            let buffered = match (spool, retry) {
                (Some(spool), Some(entry)) => spool.retry_settle(id, entry),
                _ => false,
            };
            if buffered {
                tracing::warn!(error = %e, "could not settle a reservation: buffered, it is retried until the store answers");
            } else {
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
        self.gov.pending.spawn(&rt, settle);
    }
}
