//! The per-deployment circuit breaker, as a small state machine.
//!
//! Closed: traffic flows; transient failures are counted in a window, and
//! `allowed_fails` of them (or one 429 with `Retry-After`) open the breaker.
//! Open: no traffic until the cooldown ends. Half-open: exactly one request is let
//! through; its success closes the breaker, its failure opens it again.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::CooldownSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed { fails: u32, since: Instant },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug, Clone)]
pub struct Breaker {
    state: State,
}

impl Breaker {
    pub fn new(now: Instant) -> Self {
        Self {
            state: State::Closed {
                fails: 0,
                since: now,
            },
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Could a request be admitted now? (No change of state.)
    pub fn available(&self, now: Instant) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until } => now >= until,
            State::HalfOpen { probing } => !probing,
        }
    }

    /// When an open breaker lets a probe through, if it is open.
    pub fn reopens_at(&self) -> Option<Instant> {
        match self.state {
            State::Open { until } => Some(until),
            _ => None,
        }
    }

    /// Admit a request; false if the breaker does not allow one now.
    pub fn admit(&mut self, now: Instant) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen { probing: true };
                true
            }
            State::HalfOpen { probing: false } => {
                self.state = State::HalfOpen { probing: true };
                true
            }
            _ => false,
        }
    }

    /// An answer: the breaker closes. True when it was a half-open probe's (the
    /// deployment has recovered from a cooldown).
    pub fn success(&mut self, now: Instant) -> bool {
        let recovered = matches!(self.state, State::HalfOpen { .. });
        self.state = State::Closed {
            fails: 0,
            since: now,
        };
        recovered
    }

    /// A transient failure. `retry_after` (from a 429) opens the breaker for that long.
    /// True when this failure started a cooldown (the breaker was not open before).
    pub fn failure(
        &mut self,
        now: Instant,
        spec: &CooldownSpec,
        retry_after: Option<Duration>,
    ) -> bool {
        let was_open = matches!(self.state, State::Open { .. });
        self.state = match (retry_after, self.state) {
            (Some(wait), _) => State::Open { until: now + wait },
            (None, State::Closed { fails, since }) => {
                let (fails, since) = if now.duration_since(since) > spec.window {
                    (1, now)
                } else {
                    (fails + 1, since)
                };
                if fails >= spec.allowed_fails {
                    State::Open {
                        until: now + spec.duration,
                    }
                } else {
                    State::Closed { fails, since }
                }
            }
            (None, State::HalfOpen { .. } | State::Open { .. }) => State::Open {
                until: now + spec.duration,
            },
        };
        !was_open && matches!(self.state, State::Open { .. })
    }

    /// Open until `until` (a cooldown another gateway started), unless it is open
    /// longer already.
    pub fn cool_until(&mut self, until: Instant) {
        match self.state {
            State::Open { until: u } if u >= until => {}
            _ => self.state = State::Open { until },
        }
    }

    /// A request admitted as the half-open probe ended without a verdict (a client
    /// error, say): let the next request probe instead.
    pub fn release_probe(&mut self) {
        if self.state == (State::HalfOpen { probing: true }) {
            self.state = State::HalfOpen { probing: false };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(allowed: u32) -> CooldownSpec {
        CooldownSpec {
            duration: Duration::from_secs(10),
            allowed_fails: allowed,
            window: Duration::from_secs(60),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_allowed_fails_and_half_opens() {
        let t0 = Instant::now();
        let mut b = Breaker::new(t0);
        b.failure(t0, &spec(2), None);
        assert!(b.available(t0), "one failure of two allowed");
        b.failure(t0, &spec(2), None);
        assert!(!b.available(t0));
        assert!(!b.available(t0 + Duration::from_secs(9)));
        let later = t0 + Duration::from_secs(10);
        assert!(b.admit(later), "the probe");
        assert!(!b.admit(later), "only one probe");
        b.failure(later, &spec(2), None);
        assert_eq!(b.reopens_at(), Some(later + Duration::from_secs(10)));
        let again = later + Duration::from_secs(10);
        assert!(b.admit(again));
        b.success(again);
        assert!(b.admit(again) && b.admit(again), "closed again");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_outside_the_window_do_not_add_up() {
        let t0 = Instant::now();
        let mut b = Breaker::new(t0);
        b.failure(t0, &spec(2), None);
        b.failure(t0 + Duration::from_secs(61), &spec(2), None);
        assert!(b.available(t0 + Duration::from_secs(61)));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_sets_the_cooldown() {
        let t0 = Instant::now();
        let mut b = Breaker::new(t0);
        b.failure(t0, &spec(5), Some(Duration::from_secs(3)));
        assert!(!b.available(t0 + Duration::from_secs(2)));
        assert!(b.available(t0 + Duration::from_secs(3)));
    }
}
