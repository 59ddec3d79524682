//! Counters and latency histograms, and the JSON a run prints.

use std::time::Duration;

use hdrhistogram::Histogram;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::procmon::ProcStats;

/// What one worker (or the whole run) saw inside the measured window.
pub struct Stats {
    /// Completed requests with a 2xx status.
    pub requests: u64,
    /// Non-2xx responses, connection errors and timeouts.
    pub errors: u64,
    /// Time to the end of the response body, in nanoseconds.
    pub total: Histogram<u64>,
    /// Time to the first non-empty body chunk, in nanoseconds.
    pub ttfb: Histogram<u64>,
    /// Open loop only: from the intended send time to the actual one, in nanoseconds. This is
    /// the load generator's own delay; it is inside `total` and `ttfb` on every path alike.
    pub lag: Histogram<u64>,
    /// The first error seen, to tell a misconfigured target from a slow one.
    pub first_error: Option<String>,
}

impl Stats {
    pub fn new() -> anyhow::Result<Self> {
        // 1 µs .. 5 min at 3 significant digits.
        let h = Histogram::new_with_bounds(1_000, 300_000_000_000, 3)?;
        Ok(Self {
            requests: 0,
            errors: 0,
            total: h.clone(),
            ttfb: h.clone(),
            lag: h,
            first_error: None,
        })
    }

    pub fn record(&mut self, ttfb: Duration, total: Duration) {
        self.requests += 1;
        self.ttfb.saturating_record(nanos(ttfb));
        self.total.saturating_record(nanos(total));
    }

    pub fn error(&mut self, what: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what.to_string());
        }
    }

    /// Records a completed exchange: latency if the status is 2xx, an error otherwise.
    pub fn outcome(&mut self, status: StatusCode, ttfb: Duration, total: Duration) {
        if status.is_success() {
            self.record(ttfb, total);
        } else {
            self.error(format_args!("HTTP {status}"));
        }
    }

    pub fn add(&mut self, other: &Stats) -> anyhow::Result<()> {
        self.requests += other.requests;
        self.errors += other.errors;
        self.total.add(&other.total)?;
        self.ttfb.add(&other.ttfb)?;
        self.lag.add(&other.lag)?;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        Ok(())
    }
}

pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Quantile of a nanosecond histogram, in microseconds (one decimal is meaningful).
pub fn us(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    (h.value_at_quantile(q) as f64 / 100.0).round() / 10.0
}

/// The JSON line every mode prints; fields that a mode does not measure are left out.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RunResult {
    pub mode: String,
    pub requests: u64,
    pub errors: u64,
    /// Length of the measured window.
    pub window_secs: f64,
    /// 2xx responses per second over the window.
    pub rps: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfb_p50_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfb_p99_us: Option<f64>,
    /// Open loop: the load generator's delay from the intended to the actual send time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lag_p50_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lag_p99_us: Option<f64>,
    /// CPU time of `--watch-pid` per 2xx response, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_us_per_req: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proc: Option<ProcStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl RunResult {
    pub fn new(mode: &str, stats: &Stats, window: Duration, proc: Option<ProcStats>) -> Self {
        let window_secs = window.as_secs_f64();
        let cpu_us_per_req = proc
            .filter(|_| stats.requests > 0)
            .map(|p| (p.cpu_secs * 1e7 / stats.requests as f64).round() / 10.0);
        Self {
            mode: mode.to_owned(),
            requests: stats.requests,
            errors: stats.errors,
            window_secs,
            rps: (stats.requests as f64 / window_secs * 10.0).round() / 10.0,
            cpu_us_per_req,
            proc,
            first_error: stats.first_error.clone(),
            ..Self::default()
        }
    }
}
