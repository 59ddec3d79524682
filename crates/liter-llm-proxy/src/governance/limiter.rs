//! The rate-limit backends behind one narrow trait: [`Local`], this process's
//! windows ([`super::limits`]), and `RedisLimiter` ([`super::redis_limits`]), windows
//! every gateway on one Redis shares. Both admit a request against its key's and the
//! gateway's limits together (both or neither) and settle its tokens to the real usage
//! through the [`Admission`] they return.
//!
//! Touches nothing but the windows; the governance stage picks the backend.

use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;

use super::limits::{self, Admission, Refusal, Window};

/// One limit a request is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Limit<'a> {
    /// `key` or `gateway`, for the refusal.
    pub scope: &'static str,
    /// A name every gateway gives the same limit: the key's budget scope
    /// (`key:<id>`) or `global`.
    pub name: &'a str,
    /// The limits and this process's window of them.
    pub window: &'a Arc<Window>,
}

/// Why a backend did not admit a request.
#[derive(Debug)]
pub enum Denied {
    /// Over a limit (429).
    Refused(Refusal),
    /// The backend could not decide (Redis unreachable, slow or skipped by its
    /// breaker); the configured policy decides.
    Unavailable,
}

/// A rate-limit backend.
pub trait Limiter: Send + Sync {
    /// Admits a request of `tokens` (estimated) against every limit of `limits`, or
    /// none.
    fn admit(
        &self,
        limits: &[Limit<'_>],
        tokens: u64,
    ) -> impl Future<Output = Result<Admission, Denied>> + Send;
}

/// This process's windows: exact for one instance; each instance counts alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct Local;

impl Local {
    /// [`Limiter::admit`], without the future.
    pub fn admit_now(limits: &[Limit<'_>], tokens: u64) -> Result<Admission, Refusal> {
        let now = Instant::now();
        match limits {
            [a] => limits::admit(&[(a.scope, a.window)], now, tokens),
            [a, b] => limits::admit(&[(a.scope, a.window), (b.scope, b.window)], now, tokens),
            more => {
                let all: Vec<_> = more.iter().map(|l| (l.scope, l.window)).collect();
                limits::admit(&all, now, tokens)
            }
        }
    }
}

impl Limiter for Local {
    async fn admit(&self, limits: &[Limit<'_>], tokens: u64) -> Result<Admission, Denied> {
        Self::admit_now(limits, tokens).map_err(Denied::Refused)
    }
}
