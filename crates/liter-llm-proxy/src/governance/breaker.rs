//! The circuit breaker in front of the shared limiter's Redis: after [`FAILURES`]
//! calls in a row fail (an error or the timeout), Redis is skipped for [`COOL_OFF`];
//! then one request probes it (the others keep being decided without it) and its
//! outcome closes the breaker or opens it again. So a dead Redis costs one timeout
//! per cool-off, not one per request.
//!
//! Each transition is reported once by the returned [`Change`], for the caller to
//! log. A leaf: imports nothing of ours.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Failures in a row that open the breaker.
pub const FAILURES: u32 = 3;
/// How long an open breaker skips Redis before a probe.
pub const COOL_OFF: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Redis is used; `failures` calls in a row have failed.
    Closed { failures: u32 },
    /// Redis is skipped until `until`.
    Open { until: Instant },
    /// One call is probing Redis; the others skip it.
    Probing,
}

/// A transition worth a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Opened,
    Closed,
}

#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }
}

impl Breaker {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this call may use Redis (it becomes the probe when the cool-off is
    /// over).
    pub fn allow(&self, now: Instant) -> bool {
        let mut s = self.state();
        match *s {
            State::Closed { .. } => true,
            State::Open { until } if now >= until => {
                *s = State::Probing;
                true
            }
            State::Open { .. } | State::Probing => false,
        }
    }

    /// Whether calls are being decided without Redis.
    pub fn is_open(&self) -> bool {
        !matches!(*self.state(), State::Closed { .. })
    }

    /// An allowed call succeeded.
    pub fn succeeded(&self) -> Option<Change> {
        let mut s = self.state();
        let was = *s;
        *s = State::Closed { failures: 0 };
        (was == State::Probing).then_some(Change::Closed)
    }

    /// An allowed call failed at `now`.
    pub fn failed(&self, now: Instant) -> Option<Change> {
        let mut s = self.state();
        match *s {
            State::Closed { failures } if failures + 1 < FAILURES => {
                *s = State::Closed {
                    failures: failures + 1,
                };
                None
            }
            State::Closed { .. } => {
                *s = State::Open {
                    until: now + COOL_OFF,
                };
                Some(Change::Opened)
            }
            // A failed probe: open again, quietly (the opening was reported).
            State::Probing | State::Open { .. } => {
                *s = State::Open {
                    until: now + COOL_OFF,
                };
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_failures_in_a_row_then_one_probe_closes_it() {
        let b = Breaker::default();
        let t0 = Instant::now();
        assert!(b.allow(t0));
        assert_eq!(b.failed(t0), None);
        assert_eq!(b.succeeded(), None, "a success resets the count");
        for _ in 0..FAILURES - 1 {
            assert_eq!(b.failed(t0), None);
        }
        assert!(!b.is_open());
        assert_eq!(b.failed(t0), Some(Change::Opened));
        assert!(b.is_open());
        assert!(!b.allow(t0 + COOL_OFF - Duration::from_millis(1)));
        // The cool-off is over: one probe, the others still skip Redis.
        assert!(b.allow(t0 + COOL_OFF));
        assert!(!b.allow(t0 + COOL_OFF));
        // The probe fails: open again, reported once only.
        assert_eq!(b.failed(t0 + COOL_OFF), None);
        assert!(!b.allow(t0 + COOL_OFF * 2 - Duration::from_millis(1)));
        assert!(b.allow(t0 + COOL_OFF * 2));
        assert_eq!(b.succeeded(), Some(Change::Closed));
        assert!(!b.is_open());
        assert!(b.allow(t0 + COOL_OFF * 2));
    }
}
