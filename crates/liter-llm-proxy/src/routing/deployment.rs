//! A deployment's live state: in-flight count, recent latency, its per-minute usage
//! against its own rpm/tpm, its circuit breaker and its health.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::breaker::Breaker;
use super::shared::Hold;
use crate::config::Deployment;
use crate::metrics::DeploymentMetrics;
use crate::upstream::Target;

/// Requests and tokens used in the current minute.
#[derive(Debug, Default, Clone, Copy)]
pub struct MinuteUsage {
    pub minute: u64,
    pub requests: u32,
    pub tokens: u64,
}

#[derive(Debug)]
pub struct DeploymentState {
    pub deployment: Deployment,
    /// `None` for the in-process mock provider.
    pub target: Option<Target>,
    pub in_flight: AtomicU32,
    /// Exponentially weighted latency of successful attempts, in microseconds (0: none yet).
    pub latency_us: AtomicU64,
    pub healthy: AtomicBool,
    /// The last health-probe error, for readiness.
    pub health_error: Mutex<Option<String>>,
    usage: Mutex<MinuteUsage>,
    /// With shared counts: the shared window refused this deployment until then
    /// (skipped here until then, without asking again).
    full_until: Mutex<Option<Instant>>,
    breaker: Mutex<Breaker>,
    /// Reference point for minute windows.
    epoch: Instant,
    /// Its series in `/metrics` (`None`: metrics are off).
    pub metrics: Option<Arc<DeploymentMetrics>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DeploymentState {
    pub fn new(
        deployment: Deployment,
        target: Option<Target>,
        metrics: Option<Arc<DeploymentMetrics>>,
    ) -> Self {
        let now = Instant::now();
        Self {
            deployment,
            target,
            in_flight: AtomicU32::new(0),
            latency_us: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            health_error: Mutex::new(None),
            usage: Mutex::new(MinuteUsage::default()),
            full_until: Mutex::new(None),
            breaker: Mutex::new(Breaker::new(now)),
            epoch: now,
            metrics,
        }
    }

    /// Take `old`'s live state (a reload of the same deployment): breaker and
    /// cooldown, health, latency, and this minute's usage.
    pub fn carry(&self, old: &DeploymentState) {
        let now = Instant::now();
        *lock(&self.breaker) = old.breaker().clone();
        self.healthy.store(old.is_healthy(), Ordering::Relaxed);
        *lock(&self.health_error) = lock(&old.health_error).clone();
        self.latency_us
            .store(old.latency_us.load(Ordering::Relaxed), Ordering::Relaxed);
        let used = old.usage(now);
        if used.requests > 0 || used.tokens > 0 {
            *lock(&self.usage) = MinuteUsage {
                minute: self.minute(now),
                ..used
            };
        }
    }

    fn minute(&self, now: Instant) -> u64 {
        now.duration_since(self.epoch).as_secs() / 60
    }

    /// Time until the current minute window ends.
    pub fn until_next_minute(&self, now: Instant) -> Duration {
        let secs = now.duration_since(self.epoch).as_secs_f64();
        Duration::from_secs_f64(60.0 - secs % 60.0)
    }

    /// This minute's usage (a zero record once the minute has passed).
    pub fn usage(&self, now: Instant) -> MinuteUsage {
        let u = *lock(&self.usage);
        if u.minute == self.minute(now) {
            u
        } else {
            MinuteUsage {
                minute: self.minute(now),
                ..MinuteUsage::default()
            }
        }
    }

    /// Whether one more request of `tokens` fits this minute's rpm/tpm.
    pub fn has_room(&self, now: Instant, tokens: u64) -> bool {
        let d = &self.deployment;
        if d.rpm.is_none() && d.tpm.is_none() {
            return true;
        }
        let u = self.usage(now);
        d.rpm.is_none_or(|rpm| u.requests < rpm)
            && d.tpm
                .is_none_or(|tpm| u.tokens == 0 || u.tokens + tokens <= tpm)
    }

    /// Headroom left against rpm/tpm, 0 to 1 (1 with no limits).
    pub fn headroom(&self, now: Instant) -> f64 {
        let d = &self.deployment;
        let u = self.usage(now);
        let rpm = d
            .rpm
            .map_or(1.0, |r| 1.0 - f64::from(u.requests) / f64::from(r));
        let tpm = d.tpm.map_or(1.0, |t| 1.0 - u.tokens as f64 / t as f64);
        rpm.min(tpm).max(0.0)
    }

    /// Count a request of `tokens` against this minute; false if it does not fit.
    pub fn reserve(&self, now: Instant, tokens: u64) -> bool {
        let d = &self.deployment;
        if d.rpm.is_none() && d.tpm.is_none() {
            return true;
        }
        let minute = self.minute(now);
        let mut u = lock(&self.usage);
        if u.minute != minute {
            *u = MinuteUsage {
                minute,
                ..MinuteUsage::default()
            };
        }
        let fits = d.rpm.is_none_or(|rpm| u.requests < rpm)
            && d.tpm
                .is_none_or(|tpm| u.tokens == 0 || u.tokens + tokens <= tpm);
        if fits {
            u.requests += 1;
            u.tokens += tokens;
        }
        fits
    }

    /// Replace a reservation's estimate by the tokens really used.
    pub fn settle_tokens(&self, now: Instant, estimated: u64, actual: u64) {
        if self.deployment.tpm.is_none() {
            return;
        }
        let mut u = lock(&self.usage);
        if u.minute == self.minute(now) {
            u.tokens = (u.tokens + actual).saturating_sub(estimated);
        }
    }

    /// With shared counts: `Err(wait)` while the shared window refused this
    /// deployment.
    pub fn shared_room(&self, now: Instant) -> Result<(), Duration> {
        match *lock(&self.full_until) {
            Some(until) if now < until => Err(until - now),
            _ => Ok(()),
        }
    }

    /// The shared window refused this deployment until `until`.
    pub fn mark_full(&self, until: Instant) {
        *lock(&self.full_until) = Some(until);
    }

    pub fn breaker(&self) -> MutexGuard<'_, Breaker> {
        lock(&self.breaker)
    }

    /// Mark the deployment healthy (`None`) or unhealthy with the probe's error;
    /// whether it was healthy before.
    pub fn set_health(&self, error: Option<String>) -> bool {
        let was = self.healthy.swap(error.is_none(), Ordering::Relaxed);
        *lock(&self.health_error) = error;
        was
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Fold a successful attempt's latency into the moving average.
    pub fn record_latency(&self, latency: Duration) {
        let sample = latency.as_micros().max(1) as u64;
        let old = self.latency_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            (old * 4 + sample) / 5
        };
        self.latency_us.store(new, Ordering::Relaxed);
    }
}

/// Holds one in-flight slot of a deployment until dropped (for streams, until the
/// stream ends), and with it the shared counts' hold of the request, if any.
#[derive(Debug)]
pub struct InFlight(pub Arc<DeploymentState>, Option<Arc<dyn Hold>>);

impl InFlight {
    pub fn new(d: Arc<DeploymentState>, hold: Option<Arc<dyn Hold>>) -> Self {
        d.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(d, hold)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        // The shared counts' hold ends with the slot (or with the request, if later).
        drop(self.1.take());
    }
}
