//! Rate-limit stage: requests and tokens per minute, per virtual key and gateway-wide
//! (`[[keys]] rpm/tpm`, `[rate_limit]`).
//!
//! Each limit is a sliding window of the last 60 seconds, kept as a log of buckets:
//! admissions within `SLOT` (100 ms) of a bucket's first one share that bucket (a
//! count of requests and a sum of tokens), so a window holds at most 601 buckets
//! whatever the request rate. A bucket leaves the window only once its latest
//! admission is 60 seconds old. So the limit is a hard upper bound: no 60-second span
//! ever holds more than `rpm` requests or more than `tpm` tokens, whatever the
//! boundaries; the price is that a request may be admitted up to 100 ms later than an
//! exact per-request log would admit it (and `Retry-After` is never over 60 s). A refusal's
//! `retry_after` is the time until enough buckets have left for the request to fit.
//!
//! A request reserves its estimated tokens (prompt plus `max_tokens`) when it is
//! admitted; when it ends, [`Admission::settle`] replaces the estimate with the tokens
//! the provider reported, in the bucket that holds it (if still in the window); only a
//! provider reporting more than the estimate can take a minute past `tpm`. A
//! request is checked against its key and the global limits together and admitted by
//! both or neither (locks taken in that order, never the other).
//!
//! State is per process. Touches nothing but its own counters.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::RateLimits;

const WINDOW: Duration = Duration::from_secs(60);
/// How close together admissions must be to share a bucket.
const SLOT: Duration = Duration::from_millis(100);

/// Admissions from `start` to just before `start + SLOT` (or, if the clock readings of
/// concurrent callers arrive out of order, slightly before `start`).
#[derive(Debug)]
struct Bucket {
    start: Instant,
    /// The latest admission in the bucket.
    last: Instant,
    /// Numbers buckets in order, so a settlement finds its bucket by index.
    seq: u64,
    requests: u32,
    tokens: u64,
}

impl Bucket {
    /// When the bucket's latest admission is `WINDOW` old.
    fn expires(&self) -> Instant {
        self.last + WINDOW
    }
}

#[derive(Debug, Default)]
struct Log {
    buckets: VecDeque<Bucket>,
    requests: u64,
    tokens: u64,
    next_seq: u64,
}

impl Log {
    fn expire(&mut self, now: Instant) {
        while let Some(b) = self.buckets.front() {
            if now < b.expires() {
                break;
            }
            self.requests -= u64::from(b.requests);
            self.tokens = self.tokens.saturating_sub(b.tokens);
            self.buckets.pop_front();
        }
    }

    /// How long until `fits(requests, tokens)` holds as buckets leave (`None`: it does
    /// not even with the window empty). After `expire(now)`, never zero.
    fn free_in(&self, now: Instant, fits: impl Fn(u64, u64) -> bool) -> Option<Duration> {
        let (mut requests, mut tokens) = (self.requests, self.tokens);
        for b in &self.buckets {
            requests -= u64::from(b.requests);
            tokens = tokens.saturating_sub(b.tokens);
            if fits(requests, tokens) {
                return Some(b.expires().saturating_duration_since(now));
            }
        }
        None
    }

    /// Counts one admission at `now`; returns its bucket's `seq`.
    fn record(&mut self, now: Instant, tokens: u64) -> u64 {
        self.requests += 1;
        self.tokens += tokens;
        if let Some(b) = self.buckets.back_mut() {
            if now < b.start + SLOT {
                b.last = b.last.max(now);
                b.requests += 1;
                b.tokens += tokens;
                return b.seq;
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.buckets.push_back(Bucket {
            start: now,
            last: now,
            seq,
            requests: 1,
            tokens,
        });
        seq
    }

    fn bucket_mut(&mut self, seq: u64) -> Option<&mut Bucket> {
        let front = self.buckets.front()?.seq;
        let idx = usize::try_from(seq.checked_sub(front)?).ok()?;
        self.buckets.get_mut(idx).filter(|b| b.seq == seq)
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

    /// Whether one more request of `tokens` fits in `log` (already expired to `now`);
    /// if not, what is over and how long until it fits (both limits at once).
    fn check(
        &self,
        log: &Log,
        now: Instant,
        tokens: u64,
    ) -> Result<(), (&'static str, Option<Duration>)> {
        let rpm = self.limits.rpm.map(u64::from);
        let tpm = self.limits.tpm;
        let fits = |requests: u64, used: u64| {
            rpm.is_none_or(|rpm| requests < rpm)
                && tpm.is_none_or(|tpm| used.saturating_add(tokens) <= tpm)
        };
        if fits(log.requests, log.tokens) {
            return Ok(());
        }
        if tpm.is_some_and(|tpm| tokens > tpm) {
            return Err(("tokens", None));
        }
        let what = if rpm.is_some_and(|rpm| log.requests >= rpm) {
            "requests"
        } else {
            "tokens"
        };
        Err((what, log.free_in(now, fits)))
    }

    fn remaining(&self, log: &Log) -> Remaining {
        Remaining::of(self.limits, log.requests, log.tokens)
    }
}

impl Remaining {
    /// What `limits` leave once `requests` and `tokens` are counted.
    pub fn of(limits: RateLimits, requests: u64, tokens: u64) -> Remaining {
        Remaining {
            limits,
            requests: limits
                .rpm
                .map(|r| u32::try_from(u64::from(r).saturating_sub(requests)).unwrap_or(0)),
            tokens: limits.tpm.map(|t| t.saturating_sub(tokens)),
        }
    }
}

/// A request admitted by every window it was checked against.
#[derive(Debug)]
pub struct Admission {
    held: Held,
    tokens: u64,
    /// The tightest window, for the `x-ratelimit-*` headers.
    pub remaining: Option<Remaining>,
}

/// Where an admission is counted, for its settlement.
#[derive(Debug)]
enum Held {
    /// Each window of this process with the `seq` of the bucket that holds the request.
    Local(Vec<(Arc<Window>, u64)>),
    /// Windows another backend keeps (Redis).
    Elsewhere(Box<dyn Settle>),
}

/// Settles an admission a backend other than this process's windows made.
pub trait Settle: Send + Sync + std::fmt::Debug {
    /// Replace the `estimate` by the tokens really used (`actual`).
    fn settle(&self, estimate: u64, actual: u64);
}

impl Admission {
    /// An admission counted by another backend, settled through `held`.
    pub fn elsewhere(held: Box<dyn Settle>, tokens: u64, remaining: Option<Remaining>) -> Self {
        Admission {
            held: Held::Elsewhere(held),
            tokens,
            remaining,
        }
    }
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
        // Tokens are only counted where they are limited (so the sums stay bounded).
        let counted = if w.limits.tpm.is_some() { tokens } else { 0 };
        let seq = log.record(now, counted);
        held.push(((*w).clone(), seq));
        remaining = tightest(remaining, w.remaining(log));
    }
    Ok(Admission {
        held: Held::Local(held),
        tokens,
        remaining,
    })
}

/// The tighter of `prev` (if any) and `r`.
pub fn tightest(prev: Option<Remaining>, r: Remaining) -> Option<Remaining> {
    Some(match prev {
        Some(prev) if tighter(prev, r) => prev,
        _ => r,
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
    /// Replace the estimate by the tokens really used, in the bucket that holds the
    /// request (if it is still in the window). Called once, when the request ends.
    pub fn settle(&self, actual: u64) {
        let held = match &self.held {
            Held::Local(held) => held,
            Held::Elsewhere(h) => return h.settle(self.tokens, actual),
        };
        for (w, seq) in held {
            if w.limits.tpm.is_none() {
                continue;
            }
            let mut log = lock(&w.log);
            let Some(b) = log.bucket_mut(*seq) else {
                continue;
            };
            let old = b.tokens;
            b.tokens = old.saturating_sub(self.tokens).saturating_add(actual);
            let new = b.tokens;
            log.tokens = log.tokens.saturating_sub(old).saturating_add(new);
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

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// xorshift64, so the schedules are the same on every run.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rpm_is_a_sliding_window() {
        let key = w(Some(2), None);
        let t0 = Instant::now();
        admit(&[("key", &key)], t0, 1).unwrap();
        admit(&[("key", &key)], t0 + ms(30_000), 1).unwrap();
        let r = admit(&[("key", &key)], t0 + ms(59_000), 1).unwrap_err();
        assert_eq!(r.what, "requests");
        assert_eq!(r.retry_after, Some(ms(1_000)));
        // At 60 s the first one has left; the second is still in.
        admit(&[("key", &key)], t0 + ms(60_000), 1).unwrap();
        assert!(admit(&[("key", &key)], t0 + ms(61_000), 1).is_err());
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

    #[tokio::test(start_paused = true)]
    async fn buckets_stay_bounded_whatever_the_rate() {
        let g = w(Some(u32::MAX), Some(u64::MAX));
        let buckets = |w: &Window| lock(&w.log).buckets.len();
        let t0 = Instant::now();
        // 10,000 admissions over 60 s, one every 6 ms.
        for i in 0..10_000 {
            let a = admit(&[("gateway", &g)], t0 + ms(6 * i), 1).unwrap();
            assert!(buckets(&g) <= 601);
            if i == 9_999 {
                let left = a.remaining.unwrap();
                assert_eq!(left.requests, Some(u32::MAX - 10_000));
                assert_eq!(left.tokens, Some(u64::MAX - 10_000));
            }
        }
        // The worst case, one admission per slot, for two minutes: a full minute of
        // slots.
        let g = w(Some(u32::MAX), None);
        let mut most = 0;
        for i in 0..1_200 {
            admit(&[("gateway", &g)], t0 + SLOT * i, 1).unwrap();
            most = most.max(buckets(&g));
        }
        assert_eq!(most, 600);
    }

    /// Admitted requests as a client would see them: when, which key, tokens so far.
    struct Rec {
        at: u64,
        key: usize,
        tokens: u64,
    }

    /// Requests and tokens of `recs` (those of `key`, or all) in the minute ending at
    /// `end` (the span (end - 60 s, end]: a request 60 s old has left).
    fn in_span(recs: &[Rec], end: u64, key: Option<usize>) -> (u64, u64) {
        recs.iter()
            .filter(|r| r.at <= end && end - r.at < 60_000 && key.is_none_or(|k| r.key == k))
            .fold((0, 0), |(n, t), r| (n + 1, t + r.tokens))
    }

    #[tokio::test(start_paused = true)]
    async fn no_minute_ever_holds_more_than_the_limits() {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;

        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let keys = [w(Some(30), Some(3_000)), w(Some(30), Some(3_000))];
        let gateway = w(Some(50), Some(5_000));
        let t0 = Instant::now();
        let mut times: Vec<u64> = (0..2_000).map(|_| rng.below(180_000)).collect();
        times.sort_unstable();
        let mut recs: Vec<Rec> = Vec::new();
        let mut admissions: Vec<Admission> = Vec::new();
        // (when, index in recs, actual tokens)
        let mut settles: BinaryHeap<Reverse<(u64, usize, u64)>> = BinaryHeap::new();
        let mut refused = [0u32; 2];
        for at in times {
            while let Some(&Reverse((when, i, actual))) = settles.peek() {
                if when > at {
                    break;
                }
                settles.pop();
                admissions[i].settle(actual);
                recs[i].tokens = actual;
            }
            let key = rng.below(2) as usize;
            let estimate = 1 + rng.below(300);
            let windows = [("key", &keys[key]), ("gateway", &gateway)];
            match admit(&windows, t0 + ms(at), estimate) {
                Ok(a) => {
                    // Providers report at most what was reserved (prompt plus max_tokens).
                    let actual = rng.below(estimate + 1);
                    settles.push(Reverse((at + rng.below(70_000), recs.len(), actual)));
                    admissions.push(a);
                    recs.push(Rec {
                        at,
                        key,
                        tokens: estimate,
                    });
                    for (k, (rpm, tpm)) in [
                        (Some(0), (30, 3_000)),
                        (Some(1), (30, 3_000)),
                        (None, (50, 5_000)),
                    ] {
                        let (n, t) = in_span(&recs, at, k);
                        assert!(n <= rpm && t <= tpm, "{n} requests, {t} tokens at {at} ms");
                    }
                }
                Err(r) => {
                    assert!(r.retry_after.is_some_and(|d| d > Duration::ZERO));
                    refused[usize::from(r.what == "tokens")] += 1;
                }
            }
        }
        assert!(refused[0] > 0 && refused[1] > 0, "{refused:?}");
        // And with the final tokens, sliding over every span that starts at an admission.
        let mut end = 0;
        for start in 0..recs.len() {
            while end < recs.len() && recs[end].at - recs[start].at < 60_000 {
                end += 1;
            }
            let span = &recs[start..end];
            assert!(span.len() <= 50);
            assert!(span.iter().map(|r| r.tokens).sum::<u64>() <= 5_000);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured() {
        let t0 = Instant::now();
        let key = w(Some(3), None);
        for at in [0, 10_000, 20_050] {
            admit(&[("key", &key)], t0 + ms(at), 1).unwrap();
        }
        let r = admit(&[("key", &key)], t0 + ms(30_000), 1).unwrap_err();
        assert_eq!((r.what, r.retry_after), ("requests", Some(ms(30_000))));
        assert!(admit(
            &[("key", &key)],
            t0 + ms(60_000) - Duration::from_nanos(1),
            1
        )
        .is_err());
        admit(&[("key", &key)], t0 + ms(60_000), 1).unwrap();

        let key = w(None, Some(100));
        admit(&[("key", &key)], t0, 40).unwrap();
        admit(&[("key", &key)], t0 + ms(5_030), 40).unwrap();
        // 70 more fit only once both have left.
        let r = admit(&[("key", &key)], t0 + ms(10_000), 70).unwrap_err();
        assert_eq!((r.what, r.retry_after), ("tokens", Some(ms(55_030))));
        assert!(admit(
            &[("key", &key)],
            t0 + ms(65_030) - Duration::from_nanos(1),
            70
        )
        .is_err());
        admit(&[("key", &key)], t0 + ms(65_030), 70).unwrap();

        // A client that always waits exactly `retry_after` gets in, never a moment sooner.
        let mut rng = Rng(0x0dd_ba11_cafe_f00d);
        let key = w(Some(20), Some(1_500));
        let mut held: Vec<Admission> = Vec::new();
        let mut now = t0;
        let mut refused = [0u32; 2];
        for _ in 0..3_000 {
            now += ms(rng.below(500));
            if !held.is_empty() && rng.below(4) == 0 {
                let a = held.swap_remove(rng.below(held.len() as u64) as usize);
                a.settle(rng.below(a.estimated_tokens() + 1));
            }
            let estimate = 1 + rng.below(150);
            match admit(&[("key", &key)], now, estimate) {
                Ok(a) => held.push(a),
                Err(r) => {
                    refused[usize::from(r.what == "tokens")] += 1;
                    let wait = r.retry_after.unwrap();
                    assert!(wait > Duration::ZERO);
                    let early = now + wait - Duration::from_nanos(1);
                    assert!(admit(&[("key", &key)], early, estimate).is_err());
                    now += wait;
                    held.push(admit(&[("key", &key)], now, estimate).unwrap());
                }
            }
        }
        assert!(refused[0] > 0 && refused[1] > 0, "{refused:?}");
    }
}
