//! Rate limits shared by every gateway on one Redis (`general.redis_url`): the same
//! sliding windows as [`super::limits`], kept in Redis and decided by one atomic
//! script per admission ([`ADMIT`], on the Redis server's clock), so no instance can
//! go over a limit by racing another. Tokens are settled to the real usage by a second
//! script ([`SETTLE`]) on a task of the gateway's `Pending`.
//!
//! Scripts are called by hash (`EVALSHA`); an unknown hash (`NOSCRIPT`, after a
//! restart or `SCRIPT FLUSH`) is answered by sending the script (`EVAL`, which also
//! caches it), and a server or proxy that refuses `EVALSHA` gets `EVAL` from then on.
//! Every call, connecting included, is bounded by `general.redis_timeout_ms`, and a
//! [`Breaker`] skips Redis after failures in a row; an undecided request is
//! [`Denied::Unavailable`] and the governance stage applies `general.redis_failure`.
//!
//! Keys: `{<namespace>}:rl:<limit name>` (a hash) and the same with `:z` (a sorted
//! set); the braces keep a gateway's keys in one Redis Cluster slot. Touches only
//! Redis and its own state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, ServerErrorKind, Value};
use secrecy::ExposeSecret;
use tokio::time::Instant;

use super::breaker::{Breaker, Change};
use super::limiter::{Denied, Limit, Limiter};
use super::limits::{self, Admission, Refusal, Remaining, Settle};
use crate::config::{RedisFailure, RedisSpec};
use crate::tasks::Pending;

/// The admission script (see the file for its keys, arguments and reply).
pub const ADMIT: &str = concat!(include_str!("admit.lua"), "\nreturn admit(KEYS, ARGV)\n");
/// The routing script: chooses and admits a deployment (after admit.lua's functions).
pub const ROUTE: &str = concat!(include_str!("admit.lua"), include_str!("route.lua"));
/// The settlement script.
pub const SETTLE: &str = include_str!("settle.lua");

/// The window and bucket length the scripts use, as the in-process windows do.
const WINDOW_US: u64 = 60_000_000;
const SLOT_US: u64 = 100_000;

/// A script with its SHA-1, made once.
#[derive(Debug)]
struct Script {
    body: &'static str,
    sha: String,
}

impl Script {
    fn new(body: &'static str) -> Self {
        Script {
            body,
            sha: redis::Script::new(body).get_hash().to_owned(),
        }
    }
}

/// Windows in Redis, shared by every gateway that names the same Redis and namespace.
#[derive(Debug, Clone)]
pub struct RedisLimiter(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    client: redis::Client,
    /// The open connection (multiplexed: every call shares it); `None` until the first
    /// call and after a failure, so the next allowed call reconnects.
    conn: Mutex<Option<MultiplexedConnection>>,
    timeout: Duration,
    /// `{<namespace>}:rl:`.
    prefix: String,
    failure: RedisFailure,
    breaker: Breaker,
    /// Set once `EVALSHA` was refused: scripts are sent whole from then on.
    eval_only: AtomicBool,
    admit: Script,
    settle: Script,
    route: Script,
    /// Settlement tasks, which the gateway waits for.
    pending: Arc<Pending>,
    /// Decisions Redis could not make (`/metrics`).
    unavailable: OnceLock<Counter>,
}

/// Why the URL cannot be used (never the URL itself: it may carry a password).
#[derive(Debug, thiserror::Error)]
#[error("general.redis_url: {0}")]
pub struct RedisUrlError(String);

impl RedisLimiter {
    /// A limiter on `spec`'s Redis; connects on first use.
    pub fn new(spec: &RedisSpec, pending: Arc<Pending>) -> Result<Self, RedisUrlError> {
        // rediss:// needs a process-wide TLS provider; ring is the one we ship.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = redis::Client::open(spec.url.expose_secret())
            .map_err(|e| RedisUrlError(e.category().to_owned()))?;
        Ok(RedisLimiter(Arc::new(Inner {
            client,
            conn: Mutex::new(None),
            timeout: spec.timeout,
            prefix: format!("{{{}}}:rl:", spec.namespace),
            failure: spec.failure,
            breaker: Breaker::default(),
            eval_only: AtomicBool::new(false),
            admit: Script::new(ADMIT),
            settle: Script::new(SETTLE),
            route: Script::new(ROUTE),
            pending,
            unavailable: OnceLock::new(),
        })))
    }

    /// The client of this Redis (for the gateways' announcements, `reload::sync`).
    pub fn client(&self) -> redis::Client {
        self.0.client.clone()
    }

    /// Counts undecided requests into `counter`.
    pub fn instrument(&self, counter: Counter) {
        let _ = self.0.unavailable.set(counter);
    }

    /// What the governance stage does when Redis cannot decide.
    pub fn failure(&self) -> RedisFailure {
        self.0.failure
    }

    /// Whether the breaker is skipping Redis.
    pub fn is_degraded(&self) -> bool {
        self.0.breaker.is_open()
    }

    /// Admits against the windows in Redis; `at` (microseconds) replaces the server's
    /// clock in the tests of the script's edge cases.
    pub(super) async fn decide(
        &self,
        limits: &[Limit<'_>],
        tokens: u64,
        at: Option<u64>,
    ) -> Result<Admission, Denied> {
        let inner = &self.0;
        let mut keys = Vec::with_capacity(limits.len() * 2);
        let mut args: Vec<String> = Vec::with_capacity(4 + limits.len() * 2);
        args.extend([
            tokens.to_string(),
            WINDOW_US.to_string(),
            SLOT_US.to_string(),
            at.map(|t| t.to_string()).unwrap_or_default(),
        ]);
        for l in limits {
            let hash = format!("{}{}", inner.prefix, l.name);
            let set = format!("{hash}:z");
            keys.push(hash);
            keys.push(set);
            let limits = l.window.limits;
            args.push(limits.rpm.map(|r| r.to_string()).unwrap_or_default());
            args.push(limits.tpm.map(|t| t.to_string()).unwrap_or_default());
        }
        let decision = inner.run(&inner.admit, &keys, &args, decode).await?;
        self.admission(limits, keys, tokens, decision)
    }

    /// The admission or refusal a decoded reply says.
    fn admission(
        &self,
        limits: &[Limit<'_>],
        mut keys: Vec<String>,
        tokens: u64,
        decision: Decision,
    ) -> Result<Admission, Denied> {
        match decision {
            Decision::Admitted { bucket, totals } => {
                let mut remaining = None;
                for (l, (r, t)) in limits.iter().zip(totals) {
                    remaining = limits::tightest(remaining, Remaining::of(l.window.limits, r, t));
                }
                // Only the windows that count tokens are settled (the hashes, in order).
                let mut i = 0;
                keys.retain(|_| {
                    i += 1;
                    i % 2 == 1 && limits[(i - 1) / 2].window.limits.tpm.is_some()
                });
                let ticket = Ticket {
                    limiter: self.clone(),
                    hashes: keys,
                    bucket,
                };
                Ok(Admission::elsewhere(Box::new(ticket), tokens, remaining))
            }
            Decision::Refused {
                index,
                tokens: what_tokens,
                retry_after,
                totals: (r, t),
            } => {
                let l = limits.get(index).ok_or_else(|| self.0.undecided())?;
                Err(Denied::Refused(Refusal {
                    scope: l.scope,
                    what: if what_tokens { "tokens" } else { "requests" },
                    retry_after,
                    remaining: Remaining::of(l.window.limits, r, t),
                }))
            }
        }
    }
}

impl Limiter for RedisLimiter {
    async fn admit(&self, limits: &[Limit<'_>], tokens: u64) -> Result<Admission, Denied> {
        self.decide(limits, tokens, None).await
    }
}

impl Inner {
    /// Runs `script` within the timeout, unless the breaker skips Redis, and reads its
    /// reply with `decode`; a failure (or a reply `decode` cannot read) is told to the
    /// breaker and leaves the request undecided.
    async fn run<T>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
        decode: impl FnOnce(&Value) -> Option<T>,
    ) -> Result<T, Denied> {
        if !self.breaker.allow(Instant::now()) {
            return Err(self.undecided());
        }
        let reply = tokio::time::timeout(self.timeout, self.eval(script, keys, args))
            .await
            .unwrap_or_else(|_| Err(timed_out()))
            .and_then(|v| decode(&v).ok_or_else(bad_reply));
        match reply {
            Ok(decision) => {
                if self.breaker.succeeded() == Some(Change::Closed) {
                    tracing::warn!(
                        "Redis is reachable again: rate limits and routing counts are shared again"
                    );
                }
                Ok(decision)
            }
            Err(e) => {
                self.failed(&e);
                Err(self.undecided())
            }
        }
    }

    /// Runs `work` on the gateway's pending tasks, in the background, unless the
    /// breaker is skipping Redis; a failure is told to the breaker.
    fn background<F>(self: &Arc<Self>, work: impl FnOnce(Arc<Inner>) -> F + Send + 'static)
    where
        F: std::future::Future<Output = Result<(), RedisError>> + Send + 'static,
    {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = self.clone();
        self.pending.clone().spawn(&rt, async move {
            if inner.breaker.is_open() {
                return;
            }
            let timeout = inner.timeout;
            match tokio::time::timeout(timeout, work(inner.clone())).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => inner.failed(&e),
                Err(_) => inner.failed(&timed_out()),
            }
        });
    }

    /// Counts an undecided request.
    fn undecided(&self) -> Denied {
        if let Some(c) = self.unavailable.get() {
            c.inc();
        }
        Denied::Unavailable
    }

    /// A call failed: the connection is dropped (the next allowed call reconnects)
    /// and the breaker told; its opening is logged once.
    fn failed(&self, e: &RedisError) {
        *lock(&self.conn) = None;
        if self.breaker.failed(Instant::now()) == Some(Change::Opened) {
            let policy = match self.failure {
                RedisFailure::FailOpen => {
                    "each instance enforces the rate limits alone (general.redis_failure = \"fail_open\")"
                }
                RedisFailure::FailClosed => {
                    "rate-limited requests are refused with 503 (general.redis_failure = \"fail_closed\")"
                }
            };
            tracing::error!(error = %e.category(), "Redis is unreachable or too slow for shared rate limits: {policy} until it answers again");
        } else {
            tracing::debug!(error = %e.category(), "a Redis call failed");
        }
    }

    /// The shared connection, connecting when there is none.
    async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        if let Some(c) = lock(&self.conn).clone() {
            return Ok(c);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *lock(&self.conn) = Some(c.clone());
        Ok(c)
    }

    /// Runs `script` by hash, sending it whole when Redis does not know the hash or
    /// refuses `EVALSHA`.
    async fn eval(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<Value, RedisError> {
        let mut conn = self.connection().await?;
        let call = |command: &str, script: &str| {
            let mut cmd = redis::cmd(command);
            cmd.arg(script).arg(keys.len()).arg(keys).arg(args);
            cmd
        };
        if !self.eval_only.load(Ordering::Relaxed) {
            match call("EVALSHA", &script.sha).query_async(&mut conn).await {
                Ok(v) => return Ok(v),
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {}
                Err(e) if refuses_evalsha(&e) => {
                    tracing::warn!(error = %e.category(), "Redis (or a proxy in front of it) refuses EVALSHA: the rate-limit scripts are sent whole from now on");
                    self.eval_only.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        call("EVAL", script.body).query_async(&mut conn).await
    }
}

/// Whether an error answers `EVALSHA` itself rather than the script: an ACL's
/// `NOPERM`, or a proxy's "unknown command" or "not allowed".
fn refuses_evalsha(e: &RedisError) -> bool {
    if e.kind() == ErrorKind::Server(ServerErrorKind::NoPerm) || e.code() == Some("NOPERM") {
        return true;
    }
    let detail = e.detail().unwrap_or_default().to_ascii_lowercase();
    [
        "unknown command",
        "not allowed",
        "not supported",
        "disabled",
    ]
    .iter()
    .any(|s| detail.contains(s))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn timed_out() -> RedisError {
    RedisError::from((ErrorKind::Io, "timed out"))
}

fn bad_reply() -> RedisError {
    RedisError::from((ErrorKind::UnexpectedReturnType, "unexpected script reply"))
}

/// What the admission script answered.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// The bucket that holds the request, and each window's (requests, tokens).
    Admitted {
        bucket: String,
        totals: Vec<(u64, u64)>,
    },
    Refused {
        /// Which limit (0-based).
        index: usize,
        tokens: bool,
        retry_after: Option<Duration>,
        totals: (u64, u64),
    },
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn count(v: &Value) -> Option<u64> {
    int(v).map(|i| u64::try_from(i).unwrap_or(0))
}

fn decode(v: &Value) -> Option<Decision> {
    let Value::Array(items) = v else {
        return None;
    };
    match (items.first().and_then(int)?, items.get(1)?) {
        (1, bucket) => {
            let bucket = int(bucket)?.to_string();
            let totals = items[2..]
                .chunks_exact(2)
                .map(|p| Some((count(&p[0])?, count(&p[1])?)))
                .collect::<Option<Vec<_>>>()?;
            Some(Decision::Admitted { bucket, totals })
        }
        (0, index) => {
            let index = usize::try_from(int(index)?).ok()?.checked_sub(1)?;
            let retry = int(items.get(3)?)?;
            Some(Decision::Refused {
                index,
                tokens: int(items.get(2)?)? == 2,
                retry_after: u64::try_from(retry).ok().map(Duration::from_micros),
                totals: (count(items.get(4)?)?, count(items.get(5)?)?),
            })
        }
        _ => None,
    }
}

/// An admission held in Redis, settled by [`SETTLE`].
#[derive(Debug)]
struct Ticket {
    limiter: RedisLimiter,
    /// The hashes of the windows that count tokens.
    hashes: Vec<String>,
    bucket: String,
}

impl Settle for Ticket {
    fn settle(&self, estimate: u64, actual: u64) {
        if self.hashes.is_empty() || estimate == actual {
            return;
        }
        let hashes = self.hashes.clone();
        let args = [
            self.bucket.clone(),
            estimate.to_string(),
            actual.to_string(),
        ];
        // Skipped while Redis is down: the estimate stays counted (an upper bound).
        self.limiter.0.background(move |inner| async move {
            inner.eval(&inner.settle, &hashes, &args).await.map(drop)
        });
    }
}

#[path = "redis_routes.rs"]
mod routes;

#[cfg(test)]
#[path = "redis_limits_tests.rs"]
mod tests;
