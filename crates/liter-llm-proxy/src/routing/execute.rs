//! Executing a request over a pool: pick a deployment, hand the attempt to the
//! dispatcher (`upstream::dispatch`), and on a transient failure (429, 5xx, timeout,
//! connection error) retry on another deployment of the pool, then move down the
//! model's `fallbacks`. A `context_length_exceeded` answer goes to the model's
//! `context_window_fallbacks` instead, and so does a prompt longer than every
//! deployment's `max_input_tokens` (checked before any call; a deployment whose
//! window is too small is never tried). 4xx other than 429 are never retried. A
//! model's own `max_retries` replaces the gateway's for its pool.
//!
//! Streams are retried only until their first chunk arrives (the dispatcher commits
//! them then). Every wait between attempts honours `Retry-After` and stops at the
//! request's deadline.
//!
//! With tag filtering, every attempt, retries and fallbacks alike, goes to a
//! deployment the request's tags admit; a pool with none is passed over, and when no
//! pool had one the answer is a 400 naming the tags.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Response;
use tokio::time::Instant;

use super::shared::Hold;
use super::{Announcement, Ask, DeploymentState, InFlight, Pool, Registry, RouteError, TagFilter};
use crate::error::GatewayError;
use crate::logtext::Clean;
use crate::metrics::{DeploymentMetrics, Metrics};
use crate::upstream::{backoff, dispatch, Failure, Job, Upstream};

/// Which model and deployment answered (or failed last).
#[derive(Debug, Clone)]
pub struct Served {
    pub model: String,
    pub deployment: String,
    /// The deployment's series in `/metrics`.
    pub metrics: Option<Arc<DeploymentMetrics>>,
    /// Time spent upstream over every attempt (and waiting between them): what the
    /// overhead header leaves out.
    pub upstream: Duration,
    /// Attempts before the one this names (retries and fallbacks).
    pub retries: u32,
}

fn served(pool: &Pool, d: &DeploymentState) -> Served {
    Served {
        model: pool.spec.name.clone(),
        deployment: d.deployment.provider_model.clone(),
        metrics: d.metrics.clone(),
        upstream: Duration::ZERO,
        retries: 0,
    }
}

/// The label of a pool in `/metrics`: its name when configured, else `other`.
fn pool_label(routes: &Registry, pool: &Pool) -> crate::metrics::Label {
    match routes.pool(&pool.spec.name) {
        Some(_) => Metrics::label(&pool.spec.name),
        None => Metrics::label(crate::metrics::OTHER),
    }
}

/// Counts a move from `first` on to its fallback `pool`.
fn count_fallback(routes: &Registry, first: &Pool, pool: &Pool) {
    if let Some(m) = &routes.metrics {
        m.fell_back(&pool_label(routes, first), &pool_label(routes, pool));
    }
}

/// Where a failed attempt leaves the request.
enum After {
    /// Another attempt on this pool, after `wait` when the upstream asked for one.
    Retry { wait: Option<Duration> },
    /// On to the pool's context-window fallbacks.
    Fallback,
    /// The failure is the answer.
    Stop,
}

/// The pools still to try, and those already queued once.
struct Queue {
    pending: VecDeque<Arc<Pool>>,
    seen: Vec<String>,
}

impl Queue {
    fn new(first: &Arc<Pool>) -> Self {
        Queue {
            pending: VecDeque::from([first.clone()]),
            seen: vec![first.spec.name.clone()],
        }
    }

    /// Queue the pools named in `names`: next when `front`, else last.
    fn add(&mut self, routes: &Registry, names: &[String], front: bool) {
        let mut found: Vec<Arc<Pool>> = Vec::new();
        for name in names {
            if let Some(p) = routes.pool(name) {
                if !self.seen.contains(&p.spec.name) {
                    self.seen.push(p.spec.name.clone());
                    found.push(p.clone());
                }
            }
        }
        if front {
            for p in found.into_iter().rev() {
                self.pending.push_front(p);
            }
        } else {
            self.pending.extend(found);
        }
    }
}

/// Run `job` on `first` and its fallbacks, on the deployments `tags` admits (all
/// without it).
pub async fn execute(
    routes: &Registry,
    upstream: &Upstream,
    max_retries: u32,
    first: &Arc<Pool>,
    tags: Option<&TagFilter>,
    job: Job<'_>,
) -> (Result<Response<Body>, GatewayError>, Option<Served>) {
    // A rough size for rpm/tpm reservations: about four bytes a token.
    let tokens = (job.body.len() / 4) as u64 + 1;
    let mut queue = Queue::new(first);
    let mut last: Option<(GatewayError, Option<Served>)> = None;
    // Upstream time so far: attempts and the waits between them.
    let mut upstream_time = Duration::ZERO;
    let mut attempts = 0;

    'pools: while let Some(pool) = queue.pending.pop_front() {
        let Some(pool) = usable(routes, &mut queue, first, &pool, (tags, &job), &mut last) else {
            continue;
        };
        let mut tried: Vec<usize> = Vec::new();
        let mut wait: Option<Duration> = None;
        for attempt in 0..=pool.spec.max_retries.unwrap_or(max_retries) {
            if Instant::now() >= job.deadline {
                // Out of time: no more attempts, and no deployment is blamed for it.
                let err = GatewayError::Timeout(
                    "the request ran past server.request_timeout_secs".into(),
                );
                return (Err(err), last.and_then(|(_, info)| info));
            }
            let ask = Ask::new(&pool, tags, &tried, tokens);
            let picked = match routes.take(&ask).await {
                Err(_) if !tried.is_empty() => {
                    // Only deployments already tried are left: wait, then try again.
                    let w = retry_wait(routes, wait.take(), attempt);
                    if Instant::now() + w >= job.deadline {
                        break;
                    }
                    tokio::time::sleep(w).await;
                    upstream_time += w;
                    routes.take(&ask.again()).await
                }
                other => other,
            };
            let (index, dep, hold) = match picked {
                Ok(p) => p,
                Err(e) => {
                    if last.is_none() || tried.is_empty() {
                        last = Some((e.into(), None));
                    }
                    break;
                }
            };
            tried.push(index);
            if let (Some(m), true) = (&dep.metrics, attempt > 0) {
                m.retries.inc();
            }
            let mut info = served(&pool, &dep);
            info.retries = attempts;
            attempts += 1;
            let guard = InFlight::new(dep.clone(), hold.clone());
            let target = dep.target.as_ref();
            let started = Instant::now();
            let outcome = dispatch(upstream, &dep.deployment, target, &job, guard).await;
            let took = started.elapsed();
            upstream_time += took;
            info.upstream = upstream_time;
            if let Some(m) = &dep.metrics {
                m.upstream(took);
            }
            match outcome {
                Ok(answer) => {
                    if let (Some(m), Some(ttft)) = (&dep.metrics, answer.first_chunk) {
                        m.time_to_first_token.observe(ttft.as_secs_f64());
                    }
                    if let Some(latency) = answer.latency {
                        dep.record_latency(latency);
                    }
                    if let Some(actual) = answer.tokens {
                        settle(&dep, hold.as_deref(), tokens, actual);
                    }
                    let recovered = dep.breaker().success(Instant::now());
                    if recovered {
                        routes.announce(Announcement::Recovered(&dep.deployment.id));
                    }
                    return (Ok(answer.response), Some(info));
                }
                Err(failure) => match after_failure(routes, &pool, &dep, &failure) {
                    After::Stop => return (Err(failure.err), Some(info)),
                    After::Fallback => {
                        queue.add(routes, &pool.spec.context_window_fallbacks, true);
                        last = Some((failure.err, Some(info)));
                        continue 'pools;
                    }
                    After::Retry { wait: w } => {
                        tracing::debug!(model = %Clean(&info.model), deployment = %Clean(&info.deployment), error = %Clean(&failure.err), "attempt failed");
                        wait = w;
                        last = Some((failure.err, Some(info)));
                    }
                },
            }
        }
        queue.add(routes, &pool.spec.fallbacks, false);
    }
    match last {
        Some((err, info)) => (Err(err), info),
        None => (
            Err(GatewayError::Unavailable {
                message: format!(
                    "no deployment of model {:?} could take the request",
                    first.spec.name
                ),
                retry_after: None,
            }),
            None,
        ),
    }
}

/// `pool` as the request may use it, counted as a fallback when it is not `first`:
/// `None` when the request's tags admit none of its deployments (see [`passed_over`])
/// or its prompt fits no deployment's context window (see [`fitting`]).
fn usable(
    routes: &Registry,
    queue: &mut Queue,
    first: &Arc<Pool>,
    pool: &Arc<Pool>,
    (tags, job): (Option<&TagFilter>, &Job<'_>),
    last: &mut Option<(GatewayError, Option<Served>)>,
) -> Option<Arc<Pool>> {
    if passed_over(routes, queue, first, pool, tags, last) {
        return None;
    }
    if !Arc::ptr_eq(pool, first) {
        count_fallback(routes, first, pool);
    }
    fitting(routes, queue, pool, job.prompt_tokens, last)
}

/// The pre-call check: `pool` with only the deployments whose context window takes
/// the prompt; `None` when none does (the answer is then the context-length error,
/// unless the context-window fallbacks, queued next, answer).
fn fitting(
    routes: &Registry,
    queue: &mut Queue,
    pool: &Arc<Pool>,
    prompt: Option<u64>,
    last: &mut Option<(GatewayError, Option<Served>)>,
) -> Option<Arc<Pool>> {
    match super::fitting(pool, prompt) {
        Ok(fit) => Some(fit),
        Err(largest) => {
            let err = super::context_exceeded(largest, prompt.unwrap_or_default());
            *last = Some((err, None));
            queue.add(routes, &pool.spec.context_window_fallbacks, true);
            None
        }
    }
}

/// The wait before a retry when only deployments already tried are left: the
/// upstream's `Retry-After`, else the backoff, and at least `[router]
/// retry_after_secs`.
fn retry_wait(routes: &Registry, asked: Option<Duration>, attempt: u32) -> Duration {
    asked
        .unwrap_or_else(|| backoff(attempt))
        .max(routes.retry_after)
}

/// Replace the `estimate` of tokens counted against `dep`'s tpm by the tokens really
/// used: in the shared counts that admitted the request (`hold`), else here.
fn settle(dep: &DeploymentState, hold: Option<&dyn Hold>, estimate: u64, actual: u64) {
    match hold {
        Some(hold) => hold.settle(estimate, actual),
        None => dep.settle_tokens(Instant::now(), estimate, actual),
    }
}

/// Whether `tags` admits no deployment of `pool`: then the pool is passed over, its
/// fallbacks queued, and the answer is the tags' 400 unless another error came first.
fn passed_over(
    routes: &Registry,
    queue: &mut Queue,
    first: &Pool,
    pool: &Pool,
    tags: Option<&TagFilter>,
    last: &mut Option<(GatewayError, Option<Served>)>,
) -> bool {
    let Some(filter) = tags.filter(|f| !f.admits_any(pool)) else {
        return false;
    };
    if last.is_none() {
        let err = RouteError::NoTagMatch {
            model: first.spec.name.clone(),
            tags: filter.tags().to_vec(),
        };
        *last = Some((err.into(), None));
    }
    queue.add(routes, &pool.spec.fallbacks, false);
    true
}

/// What a failure means for the deployment (its breaker, its latency) and for the
/// request.
fn after_failure(
    routes: &Registry,
    pool: &Pool,
    dep: &DeploymentState,
    failure: &Failure,
) -> After {
    if failure.is_context_exceeded() && !pool.spec.context_window_fallbacks.is_empty() {
        dep.breaker().success(Instant::now());
        return After::Fallback;
    }
    if !failure.is_transient() {
        dep.breaker().success(Instant::now());
        return After::Stop;
    }
    // A failure counts as a slow answer, so latency-based routing does not keep
    // choosing a deployment that never succeeds.
    dep.record_latency(dep.deployment.timeout);
    let cooling = match &routes.cooldown {
        Some(spec) => dep
            .breaker()
            .failure(Instant::now(), spec, failure.retry_after),
        None => {
            dep.breaker().release_probe();
            false
        }
    };
    if cooling {
        if let Some(m) = &dep.metrics {
            m.cooldowns.inc();
        }
        let until = dep.breaker().reopens_at();
        if let Some(until) = until {
            routes.announce(Announcement::Cooled(
                &dep.deployment.id,
                until.saturating_duration_since(Instant::now()),
            ));
        }
    }
    After::Retry {
        wait: failure.retry_after,
    }
}
