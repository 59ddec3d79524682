//! The response cache stage, between route resolution and governance: a request's
//! key and controls ([`key`]), the entries ([`entry`]), where they live
//! ([`backend`]: memory, or any OpenDAL backend with an optional in-process tier in
//! front), and storing streams ([`tee`]).
//!
//! [`Cache::plan`] reads a request (key, `Cache-Control`, the body's `cache` field);
//! [`Cache::lookup`] finds an entry that may answer it; [`Cache::answer`] renders an
//! entry in the form asked (JSON, or a replayed stream); [`Cache::keep`] stores a
//! complete successful answer. Every answer to a cacheable request says
//! `x-liter-llm-cache: hit|miss|bypass` and `x-litellm-cache-key`.
//!
//! **A failing backend never fails a request.** Each operation is bounded by
//! `timeout_ms`; a failure is counted ([`Cache::errors`]), logged at most once a
//! minute, and the backend is left alone for [`REST`] before the next request tries it
//! again, so an outage costs requests nothing and caching resumes by itself.
//!
//! Uses `upstream` (the usage tap, response shapes), `objstore`, `store` (the clock),
//! `request`, `config` and `error`; never the HTTP edge, `governance` or `app`.

pub mod backend;
pub mod entry;
pub mod key;
pub mod tee;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response};
use bytes::Bytes;
use http_body::Body as _;

use crate::config::{CacheBackend, CacheScope, CacheSpec};
use crate::error::GatewayError;
use crate::metrics::CacheMetrics;
use crate::objstore::{self, ObjStoreError};
use crate::request::{Endpoint, Head};
use crate::store::{Clock, SystemClock};
use crate::tasks::Pending;
use backend::{millis, Memory, Remote, RemoteError};
use entry::Entry;
pub use key::Plan;
pub use tee::UsageSlot;

/// `hit`, `miss` or `bypass`, on every answer to a cacheable request.
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("x-liter-llm-cache");
/// The entry's key (hex SHA-256), under LiteLLM's name.
pub const CACHE_KEY: HeaderName = HeaderName::from_static("x-litellm-cache-key");
/// After a backend failure, requests go on without the backend this long.
pub const REST: Duration = Duration::from_secs(1);
/// At most one warning about a failing backend per this long.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// How a cacheable request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered from an entry.
    Hit,
    /// Looked up and not found (or expired): the answer is stored.
    Miss,
    /// Not looked up: `no-cache` or `no-store`, or the backend is failing.
    Bypass,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Bypass => "bypass",
        }
    }
}

/// Failures of the backend: the count, when the last warning was written, and until
/// when the backend is rested.
struct Health {
    errors: AtomicU64,
    /// Milliseconds since `epoch`.
    rest_until: AtomicU64,
    last_warn: Mutex<Option<Instant>>,
    epoch: Instant,
}

/// The response cache of one gateway.
pub struct Cache {
    near: Option<Memory>,
    far: Option<Arc<Remote>>,
    ttl: Option<Duration>,
    max_entry_bytes: u64,
    scope: CacheScope,
    clock: Arc<dyn Clock>,
    health: Health,
    /// Backend writes still running.
    pending: Arc<Pending>,
    /// Lookups by result and backend failures, in `/metrics`.
    counters: Option<CacheMetrics>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").finish_non_exhaustive()
    }
}

impl Cache {
    /// The cache `spec` describes, on the system clock. Touches no network.
    pub fn new(spec: &CacheSpec) -> Result<Cache, ObjStoreError> {
        Self::with_clock(spec, Arc::new(SystemClock))
    }

    /// As [`Cache::new`], with entry times from `clock`.
    pub fn with_clock(spec: &CacheSpec, clock: Arc<dyn Clock>) -> Result<Cache, ObjStoreError> {
        let far = match &spec.backend {
            CacheBackend::Memory => None,
            CacheBackend::OpenDal { scheme, config } => Some(Arc::new(Remote::new(
                objstore::operator(scheme, config, spec.timeout)?,
                spec.timeout,
            ))),
        };
        Ok(Cache {
            near: spec.max_entries.map(|n| Memory::new(n, spec.max_bytes)),
            far,
            ttl: spec.ttl,
            max_entry_bytes: spec.max_entry_bytes,
            scope: spec.scope,
            clock,
            health: Health {
                errors: AtomicU64::new(0),
                rest_until: AtomicU64::new(0),
                last_warn: Mutex::new(None),
                epoch: Instant::now(),
            },
            pending: Arc::default(),
            counters: None,
        })
    }

    /// Counts lookups (hit, miss) and backend failures into `counters`.
    pub fn counted(mut self, counters: Option<CacheMetrics>) -> Cache {
        self.counters = counters;
        self
    }

    /// Backend operations that failed or timed out since start-up.
    pub fn errors(&self) -> u64 {
        self.health.errors.load(Ordering::Relaxed)
    }

    /// The plan for a request; `key_scope` is the caller's key scope name (`None`:
    /// the master key); `route_tags` the tags that choose its deployments (tag
    /// filtering), so that an answer is shared only by requests routed alike. A
    /// malformed `cache` field is a 400.
    pub fn plan(
        &self,
        key_scope: Option<&str>,
        route_tags: &[String],
        endpoint: Endpoint,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<Plan, GatewayError> {
        let scope = match (self.scope, key_scope) {
            (CacheScope::Key, Some(k)) => k,
            _ => "global",
        };
        if route_tags.is_empty() {
            return key::plan(scope, endpoint, headers, body);
        }
        let mut tags: Vec<&str> = route_tags.iter().map(String::as_str).collect();
        tags.sort_unstable();
        // A tag holds no comma (config::tag_problem), so the join is unambiguous.
        let scope = format!("{scope}\ntags={}", tags.join(","));
        key::plan(&scope, endpoint, headers, body)
    }

    /// The stored answer for `plan`, if one may answer it, and how the lookup went.
    pub async fn lookup(&self, plan: &Plan) -> (Option<Bytes>, Outcome) {
        let (found, outcome) = self.look(plan).await;
        let counter = self.counters.as_ref().and_then(|c| match outcome {
            Outcome::Hit => Some(&c.hits),
            Outcome::Miss => Some(&c.misses),
            Outcome::Bypass => None,
        });
        if let Some(counter) = counter {
            counter.inc();
        }
        (found, outcome)
    }

    async fn look(&self, plan: &Plan) -> (Option<Bytes>, Outcome) {
        if !plan.lookup {
            return (None, Outcome::Bypass);
        }
        let now = self.clock.now_ms();
        let max_age = plan.max_age.map(millis);
        if let Some(e) = self.near.as_ref().and_then(|m| m.get(&plan.key)) {
            if e.usable(now, max_age) {
                return (Some(e.body.clone()), Outcome::Hit);
            }
            if e.expired(now) {
                if let Some(m) = &self.near {
                    m.remove(&plan.key);
                }
            }
        }
        let Some(far) = self.far.as_ref().filter(|_| self.awake()) else {
            let outcome = if self.far.is_some() {
                Outcome::Bypass
            } else {
                Outcome::Miss
            };
            return (None, outcome);
        };
        match far.get(&plan.hex).await {
            Err(e) => {
                self.failed("read", &e);
                (None, Outcome::Bypass)
            }
            Ok(Some(e)) if e.usable(now, max_age) => {
                let body = e.body.clone();
                if let Some(m) = &self.near {
                    m.put(plan.key, Arc::new(e));
                }
                (Some(body), Outcome::Hit)
            }
            Ok(Some(e)) => {
                if e.expired(now) {
                    self.forget(far, &plan.hex);
                }
                (None, Outcome::Miss)
            }
            Ok(None) => (None, Outcome::Miss),
        }
    }

    /// An entry's answer in the form the request asks: JSON, or for a streamed chat
    /// request, the completion replayed as SSE.
    pub fn answer(body: Bytes, head: &Head, endpoint: Endpoint) -> Response<Body> {
        if head.stream && endpoint == Endpoint::Chat {
            if let Some(events) = entry::sse(&body, head.include_usage) {
                return crate::upstream::sse_response(Body::from(events));
            }
        }
        crate::upstream::json_response(body)
    }

    /// Puts the cache headers on a response.
    pub fn decorate(plan: &Plan, outcome: Outcome, resp: &mut Response<Body>) {
        let h = resp.headers_mut();
        h.insert(CACHE_STATUS, HeaderValue::from_static(outcome.label()));
        if let Ok(v) = HeaderValue::from_str(&plan.hex) {
            h.insert(CACHE_KEY, v);
        }
    }

    /// Stores `resp` under `plan` when it is a complete success: a whole answer at
    /// once (in the background), a stream when it ends cleanly (`slot` holds the usage
    /// the gateway hid from the client). Returns the response to send.
    pub async fn keep(
        self: &Arc<Self>,
        plan: &Plan,
        resp: Response<Body>,
        slot: Option<UsageSlot>,
    ) -> Response<Body> {
        if !plan.store || !resp.status().is_success() {
            return resp;
        }
        let (parts, body) = resp.into_parts();
        let is_sse = parts
            .headers
            .get(axum::http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if is_sse {
            let cache = self.clone();
            let (key, hex, ttl) = (plan.key, plan.hex.clone(), plan.ttl);
            let tee = tee::Tee::new(body, self.max_entry_bytes, slot.unwrap_or_default(), {
                move |answer: Bytes| cache.put(key, hex, answer, ttl)
            });
            return Response::from_parts(parts, Body::new(tee));
        }
        let exact = body.size_hint().exact();
        if exact.is_none_or(|n| n > self.max_entry_bytes) {
            return Response::from_parts(parts, body);
        }
        match axum::body::to_bytes(body, usize::MAX).await {
            Ok(bytes) => {
                self.put(plan.key, plan.hex.clone(), bytes.clone(), plan.ttl);
                Response::from_parts(parts, Body::from(bytes))
            }
            Err(e) => Response::from_parts(parts, Body::new(ErrorBody(Some(e)))),
        }
    }

    /// Stores an answer: in the memory tier at once, on the backend in a task of its
    /// own (tracked for [`Cache::settled`]).
    fn put(self: &Arc<Self>, key: [u8; 32], hex: String, body: Bytes, ttl: Option<Duration>) {
        if body.len() as u64 > self.max_entry_bytes {
            return;
        }
        let now = self.clock.now_ms();
        let entry = Entry {
            created_ms: now,
            expires_ms: ttl.or(self.ttl).map(|t| now.saturating_add(millis(t))),
            body,
        };
        if let Some(m) = &self.near {
            m.put(key, Arc::new(entry.clone()));
        }
        if self.far.is_none() || !self.awake() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let cache = self.clone();
        self.pending.spawn(&rt, async move {
            if let Some(far) = &cache.far {
                if let Err(e) = far.put(&hex, &entry).await {
                    cache.failed("write", &e);
                }
            }
        });
    }

    /// Deletes an expired object (a backend without expiry of its own keeps it), in the
    /// background.
    fn forget(&self, far: &Arc<Remote>, hex: &str) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (far, hex) = (far.clone(), hex.to_owned());
        self.pending.spawn(&rt, async move {
            let _ = far.remove(&hex).await;
        });
    }

    /// Waits until every backend write started so far has ended.
    pub async fn settled(&self) {
        self.pending.idle().await;
    }

    fn since_epoch(&self) -> u64 {
        u64::try_from(self.health.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the backend is not resting after a failure.
    fn awake(&self) -> bool {
        self.since_epoch() >= self.health.rest_until.load(Ordering::Relaxed)
    }

    /// Counts a failure, rests the backend, and warns at most once a minute.
    fn failed(&self, op: &str, e: &RemoteError) {
        let total = self.health.errors.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(c) = &self.counters {
            c.errors.inc();
        }
        let until = self
            .since_epoch()
            .saturating_add(millis(REST).unsigned_abs());
        self.health.rest_until.store(until, Ordering::Relaxed);
        let mut last = self
            .health
            .last_warn
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(
                operation = op,
                error = %e,
                errors = total,
                "the cache backend failed; requests go on without it (logged once a minute)"
            );
        }
    }
}

/// A body that fails with the error its source had (reading a whole answer failed).
struct ErrorBody(Option<axum::Error>);

impl http_body::Body for ErrorBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        std::task::Poll::Ready(self.0.take().map(Err))
    }
}
