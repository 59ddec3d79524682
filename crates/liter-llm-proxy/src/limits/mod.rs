//! Rate-limit stage: requests and tokens per minute, per virtual key and gateway-wide
//! (`[[keys]] rpm/tpm`, `[rate_limit]`).
//!
//! Each limit is a sliding window of the last 60 seconds, kept as a log of admitted
//! requests (time and tokens), so it is exact: no 60-second span ever holds more than
//! `rpm` requests or more than `tpm` tokens, whatever the boundaries. A request
//! reserves its estimated tokens (prompt plus `max_tokens`) when it is admitted; when it
//! ends, [`Admission::settle`] replaces the estimate with the tokens the provider
//! reported. A request is checked against its key and the global limits together and
//! admitted by both or neither (locks taken in that order, never the other).
//!
//! State is per process. Touches nothing but its own counters.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::RateLimits;

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Entry {
    at: Instant,
    seq: u64,
    tokens: u64,
}

#[derive(Debug, Default)]
struct Log {
    entries: VecDeque<Entry>,
    tokens: u64,
    next_seq: u64,
}

impl Log {
    fn expire(&mut self, now: Instant) {
        while let Some(e) = self.entries.front() {
            if now.duration_since(e.at) < WINDOW {
                break;
            }
            self.tokens -= e.tokens;
            self.entries.pop_front();
        }
    }

    /// How long until `tokens` more fit under `tpm` (`None`: they never will).
    fn tokens_free_in(&self, now: Instant, tpm: u64, tokens: u64) -> Option<Duration> {
        if tokens > tpm {
            return None;
        }
        let mut used = self.tokens;
        for e in &self.entries {
            if used + tokens <= tpm {
                break;
            }
            used -= e.tokens;
            if used + tokens <= tpm {
                return Some((e.at + WINDOW).saturating_duration_since(now));
            }
        }
        Some(Duration::ZERO)
    }
}

/// One set of limits and its log.
#[derive(Debug)]
pub struct Window {
    pub limits: RateLimits,
    log: Mutex<Log>,
}

/// What a window reports for response headers, after an admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remaining {
    pub limits: RateLimits,
    pub requests: Option<u32>,
    pub tokens: Option<u64>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// "key" or "gateway".
    pub scope: &'static str,
    /// "requests" or "tokens".
    pub what: &'static str,
    /// When to try again; `None`: never (the request alone is over the limit).
    pub retry_after: Option<Duration>,
    pub remaining: Remaining,
}

fn lock(m: &Mutex<Log>) -> MutexGuard<'_, Log> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Window {
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            log: Mutex::new(Log::default()),
        }
    }

    fn check(
        &self,
        log: &Log,
        now: Instant,
        tokens: u64,
    ) -> Result<(), (&'static str, Option<Duration>)> {
        if let Some(rpm) = self.limits.rpm {
            if log.entries.len() >= rpm as usize {
                // The oldest of the last `rpm` requests has to leave the window.
                let oldest = &log.entries[log.entries.len() - rpm as usize];
                return Err((
                    "requests",
                    Some((oldest.at + WINDOW).saturating_duration_since(now)),
                ));
            }
        }
        if let Some(tpm) = self.limits.tpm {
            if log.tokens + tokens > tpm {
                return Err(("tokens", log.tokens_free_in(now, tpm, tokens)));
            }
        }
        Ok(())
    }

    fn remaining(&self, log: &Log) -> Remaining {
        Remaining {
            limits: self.limits,
            requests: self
                .limits
                .rpm
                .map(|r| r.saturating_sub(log.entries.len() as u32)),
            tokens: self.limits.tpm.map(|t| t.saturating_sub(log.tokens)),
        }
    }
}

/// A request admitted by every window it was checked against.
#[derive(Debug)]
pub struct Admission {
    held: Vec<(Arc<Window>, u64)>,
    tokens: u64,
    /// The tightest window, for the `x-ratelimit-*` headers.
    pub remaining: Option<Remaining>,
}

/// Admits a request of `tokens` (estimated) against `windows` (each with its scope name:
/// the key's first, then the gateway's), all or none.
pub fn admit(
    windows: &[(&'static str, &Arc<Window>)],
    now: Instant,
    tokens: u64,
) -> Result<Admission, Refusal> {
    let mut logs: Vec<MutexGuard<'_, Log>> = Vec::with_capacity(windows.len());
    for (scope, w) in windows {
        let mut log = lock(&w.log);
        log.expire(now);
        if let Err((what, retry_after)) = w.check(&log, now, tokens) {
            return Err(Refusal {
                scope,
                what,
                retry_after,
                remaining: w.remaining(&log),
            });
        }
        logs.push(log);
    }
    let mut held = Vec::with_capacity(windows.len());
    let mut remaining: Option<Remaining> = None;
    for ((_, w), log) in windows.iter().zip(logs.iter_mut()) {
        let seq = log.next_seq;
        log.next_seq += 1;
        log.entries.push_back(Entry {
            at: now,
            seq,
            tokens,
        });
        log.tokens += tokens;
        held.push(((*w).clone(), seq));
        let r = w.remaining(log);
        remaining = Some(match remaining {
            Some(prev) if tighter(prev, r) => prev,
            _ => r,
        });
    }
    Ok(Admission {
        held,
        tokens,
        remaining,
    })
}

/// Whether `a` leaves less room than `b` (requests first, then tokens).
fn tighter(a: Remaining, b: Remaining) -> bool {
    match (a.requests, b.requests) {
        (Some(x), Some(y)) if x != y => return x < y,
        (Some(_), None) => return true,
        (None, Some(_)) => return false,
        _ => {}
    }
    match (a.tokens, b.tokens) {
        (Some(x), Some(y)) => x < y,
        (Some(_), None) => true,
        _ => false,
    }
}

impl Admission {
    /// Replace the estimate by the tokens really used (if the entry is still in the
    /// window). Called once, when the request ends.
    pub fn settle(&self, actual: u64) {
        for (w, seq) in &self.held {
            if w.limits.tpm.is_none() {
                continue;
            }
            let mut log = lock(&w.log);
            let front = log.entries.front().map(|e| e.seq);
            let Some(front) = front else { continue };
            let Some(idx) = seq.checked_sub(front) else {
                continue;
            };
            let Ok(idx) = usize::try_from(idx) else {
                continue;
            };
            if let Some(e) = log.entries.get_mut(idx) {
                if e.seq == *seq {
                    let old = std::mem::replace(&mut e.tokens, actual);
                    log.tokens = log.tokens + actual - old;
                }
            }
        }
    }

    pub fn estimated_tokens(&self) -> u64 {
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(rpm: Option<u32>, tpm: Option<u64>) -> Arc<Window> {
        Arc::new(Window::new(RateLimits { rpm, tpm }))
    }

    #[tokio::test(start_paused = true)]
    async fn rpm_is_a_sliding_window() {
        let key = w(Some(2), None);
        let t0 = Instant::now();
        admit(&[("key", &key)], t0, 1).unwrap();
        admit(&[("key", &key)], t0 + Duration::from_secs(30), 1).unwrap();
        let r = admit(&[("key", &key)], t0 + Duration::from_secs(59), 1).unwrap_err();
        assert_eq!(r.what, "requests");
        assert_eq!(r.retry_after, Some(Duration::from_secs(1)));
        // At 60 s the first one has left; the second is still in.
        admit(&[("key", &key)], t0 + Duration::from_secs(60), 1).unwrap();
        assert!(admit(&[("key", &key)], t0 + Duration::from_secs(61), 1).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_settle_to_the_actual_use() {
        let key = w(None, Some(100));
        let t0 = Instant::now();
        let a = admit(&[("key", &key)], t0, 80).unwrap();
        let r = admit(&[("key", &key)], t0, 30).unwrap_err();
        assert_eq!((r.what, r.retry_after), ("tokens", Some(WINDOW)));
        a.settle(10);
        let b = admit(&[("key", &key)], t0, 30).unwrap();
        assert_eq!(b.remaining.unwrap().tokens, Some(60));
        // A request alone over the limit never fits.
        assert_eq!(
            admit(&[("key", &key)], t0, 101).unwrap_err().retry_after,
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn key_and_gateway_admit_together_or_not_at_all() {
        let key = w(Some(10), None);
        let global = w(Some(1), None);
        let t0 = Instant::now();
        admit(&[("key", &key), ("gateway", &global)], t0, 1).unwrap();
        let r = admit(&[("key", &key), ("gateway", &global)], t0, 1).unwrap_err();
        assert_eq!(r.scope, "gateway");
        // The refused request took nothing from the key.
        assert_eq!(
            admit(&[("key", &key)], t0, 1)
                .unwrap()
                .remaining
                .unwrap()
                .requests,
            Some(8)
        );
    }
}
