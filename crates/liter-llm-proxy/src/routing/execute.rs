//! Executing a request over a pool: pick a deployment, try it, and on a transient
//! failure (429, 5xx, timeout, connection error) retry on another deployment of the
//! pool, then move down the model's `fallbacks`. A `context_length_exceeded` answer
//! goes to the model's `context_window_fallbacks` instead. 4xx other than 429 are
//! never retried.
//!
//! Streams are retried only until their first chunk arrives: after that the stream is
//! the client's and a failure ends it with an error event. Every wait between attempts
//! honours `Retry-After` and stops at the request's deadline.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Response, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::{DeploymentState, InFlight, Pool};
use crate::budget::Meter;
use crate::error::GatewayError;
use crate::server::body::{with_model, Head};
use crate::server::App;
use crate::upstream::{self, backoff, stream, translate, Endpoint, Target, Wire};
use axum::http::{HeaderName, HeaderValue};
use liter_llm::providers::adapter::{Call, Operation, StreamMeta, UpstreamRequest};
use liter_llm::providers::embeddings;

/// What the router needs to know of the request.
pub struct Job<'a> {
    pub body: &'a Bytes,
    pub head: &'a Head,
    pub endpoint: Endpoint,
    pub deadline: Instant,
    /// The governance stage's meter, told the usage the provider reports.
    pub meter: Option<&'a Meter>,
}

/// Which model and deployment answered (or failed last).
#[derive(Debug, Clone)]
pub struct Served {
    pub model: String,
    pub deployment: String,
}

enum Attempt {
    Done(Response<Body>),
    Failed {
        err: GatewayError,
        transient: bool,
        retry_after: Option<Duration>,
        context_exceeded: bool,
    },
}

fn served(pool: &Pool, d: &DeploymentState) -> Served {
    Served {
        model: pool.spec.name.clone(),
        deployment: d.deployment.provider_model.clone(),
    }
}

/// Run `job` on `first` and its fallbacks.
pub async fn execute(
    app: &App,
    first: &Arc<Pool>,
    job: Job<'_>,
) -> (Result<Response<Body>, GatewayError>, Option<Served>) {
    let routes = &app.routes;
    // A rough size for rpm/tpm reservations: about four bytes a token.
    let tokens = (job.body.len() / 4) as u64 + 1;
    let mut queue: VecDeque<Arc<Pool>> = VecDeque::from([first.clone()]);
    let mut seen: Vec<String> = vec![first.spec.name.clone()];
    let mut last: Option<(GatewayError, Option<Served>)> = None;

    'pools: while let Some(pool) = queue.pop_front() {
        let mut tried: Vec<usize> = Vec::new();
        let mut wait: Option<Duration> = None;
        for attempt in 0..=app.config.max_retries {
            if Instant::now() >= job.deadline {
                // Out of time: no more attempts, and no deployment is blamed for it.
                let err = GatewayError::Timeout(
                    "the request ran past server.request_timeout_secs".into(),
                );
                return (Err(err), last.and_then(|(_, info)| info));
            }
            let picked = match routes.pick(&pool, &tried, false, tokens) {
                Err(_) if !tried.is_empty() => {
                    // Only deployments already tried are left: wait, then try again.
                    let w = wait.take().unwrap_or_else(|| backoff(attempt));
                    if Instant::now() + w >= job.deadline {
                        break;
                    }
                    tokio::time::sleep(w).await;
                    routes.pick(&pool, &tried, true, tokens)
                }
                other => other,
            };
            let (index, dep) = match picked {
                Ok(p) => p,
                Err(e) => {
                    if last.is_none() || tried.is_empty() {
                        last = Some((e, None));
                    }
                    break;
                }
            };
            tried.push(index);
            let info = served(&pool, &dep);
            match attempt_one(app, &dep, &job, tokens).await {
                Attempt::Done(resp) => {
                    dep.breaker().success(Instant::now());
                    return (Ok(resp), Some(info));
                }
                Attempt::Failed {
                    err,
                    transient,
                    retry_after,
                    context_exceeded,
                } => {
                    if context_exceeded && !pool.spec.context_window_fallbacks.is_empty() {
                        dep.breaker().success(Instant::now());
                        for name in pool.spec.context_window_fallbacks.iter().rev() {
                            if let Some(p) = routes.pool(name) {
                                if !seen.contains(&p.spec.name) {
                                    seen.push(p.spec.name.clone());
                                    queue.push_front(p.clone());
                                }
                            }
                        }
                        last = Some((err, Some(info)));
                        continue 'pools;
                    }
                    if !transient {
                        dep.breaker().success(Instant::now());
                        return (Err(err), Some(info));
                    }
                    // A failure counts as a slow answer, so latency-based routing
                    // does not keep choosing a deployment that never succeeds.
                    dep.record_latency(dep.deployment.timeout);
                    match &routes.cooldown {
                        Some(spec) => dep.breaker().failure(Instant::now(), spec, retry_after),
                        None => dep.breaker().release_probe(),
                    }
                    tracing::debug!(model = %info.model, deployment = %info.deployment, error = %err, "attempt failed");
                    wait = retry_after;
                    last = Some((err, Some(info)));
                }
            }
        }
        for name in &pool.spec.fallbacks {
            if let Some(p) = routes.pool(name) {
                if !seen.contains(&p.spec.name) {
                    seen.push(p.spec.name.clone());
                    queue.push_back(p.clone());
                }
            }
        }
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

/// `context_length_exceeded` in an OpenAI-shaped error body.
fn is_context_error(err: &GatewayError) -> bool {
    match err {
        GatewayError::Upstream { status, body, .. } if *status == StatusCode::BAD_REQUEST => {
            memchr::memmem::find(body, b"context_length_exceeded").is_some()
        }
        _ => false,
    }
}

fn failed(err: GatewayError, retry_after: Option<Duration>) -> Attempt {
    let transient = matches!(
        err,
        GatewayError::Timeout(_) | GatewayError::BadGateway(_) | GatewayError::RateLimited { .. }
    ) || matches!(&err, GatewayError::Upstream { status, .. }
        if *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error());
    let context_exceeded = is_context_error(&err);
    Attempt::Failed {
        err,
        transient,
        retry_after,
        context_exceeded,
    }
}

/// The response cost in USD, as a header value and for the request log.
pub const RESPONSE_COST: HeaderName = HeaderName::from_static("x-liter-llm-response-cost");
/// LiteLLM's name for the same header, for tools that read it.
pub const LITELLM_RESPONSE_COST: HeaderName = HeaderName::from_static("x-litellm-response-cost");

/// The parameters a translated provider could not honour and `drop_params` dropped,
/// comma-separated.
pub const DROPPED_PARAMS: HeaderName = HeaderName::from_static("x-liter-llm-dropped-params");

fn dropped_header(dropped: Vec<String>) -> Option<HeaderValue> {
    if dropped.is_empty() {
        return None;
    }
    HeaderValue::from_str(&dropped.join(", ")).ok()
}

/// `usd` in decimal with ten places, as `format!("{usd:.10}")` writes it but without
/// the float formatter (the last place may round the other way in rare ties).
fn cost_value(usd: f64) -> HeaderValue {
    /// 10^10: units of the tenth decimal place in a dollar.
    const SCALE: f64 = 1e10;
    let units = (usd * SCALE).round();
    if !(0.0..1e18).contains(&units) {
        // Negative, huge or not a number: no price does that, but say it as it is.
        return HeaderValue::from_str(&format!("{usd:.10}"))
            .unwrap_or(HeaderValue::from_static("0"));
    }
    let mut n = units as u64;
    let mut text = [0u8; 24];
    let mut at = text.len();
    let mut places = 0;
    while n > 0 || places <= 10 {
        if places == 10 {
            at -= 1;
            text[at] = b'.';
        }
        at -= 1;
        text[at] = b'0' + (n % 10) as u8;
        n /= 10;
        places += 1;
    }
    HeaderValue::from_bytes(&text[at..]).unwrap_or(HeaderValue::from_static("0"))
}

/// The cost of a finished answer, for the request log.
#[derive(Debug, Clone, Copy)]
pub struct ResponseCost(pub f64);

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The complete upstream request for this deployment's wire protocol.
pub(crate) fn prepare(
    target: &Target,
    dep: &DeploymentState,
    job: &Job<'_>,
    token: Option<&str>,
) -> Result<UpstreamRequest, GatewayError> {
    match &target.wire {
        Wire::OpenAi(t) => {
            let uri = match job.endpoint {
                Endpoint::Chat => t.chat_uri.clone(),
                Endpoint::Embeddings => t.embeddings_uri.clone().ok_or_else(|| {
                    GatewayError::bad_request(format!(
                        "model {:?} does not offer embeddings",
                        target.name
                    ))
                })?,
            };
            let mut body = with_model(job.body, job.head, &dep.deployment.model_id);
            if job.meter.is_some() && job.head.stream && !job.head.include_usage {
                // Accounting needs the usage chunk; the relay hides it from the client.
                body = with_include_usage(&body);
            }
            Ok(UpstreamRequest {
                uri,
                headers: t.auth.iter().cloned().collect(),
                body,
                dropped: Vec::new(),
            })
        }
        Wire::Adapter(adapter) => {
            let op = match job.endpoint {
                Endpoint::Embeddings => Operation::Embeddings,
                Endpoint::Chat if job.head.stream => Operation::ChatStream,
                Endpoint::Chat => Operation::Chat,
            };
            Ok(adapter.build(Call {
                op,
                body: job.body,
                token,
                now: unix_now(),
            })?)
        }
    }
}

/// `body` with `stream_options.include_usage = true` (other stream options kept).
fn with_include_usage(body: &Bytes) -> Bytes {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice(body) else {
        return body.clone();
    };
    let options = map
        .entry("stream_options")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    if !options.is_object() {
        *options = serde_json::Value::Object(Default::default());
    }
    if let Some(o) = options.as_object_mut() {
        o.insert("include_usage".into(), serde_json::Value::Bool(true));
    }
    serde_json::to_vec(&map).map_or_else(|_| body.clone(), Bytes::from)
}

/// One try on one deployment.
async fn attempt_one(app: &App, dep: &Arc<DeploymentState>, job: &Job<'_>, tokens: u64) -> Attempt {
    let start = Instant::now();
    let in_flight = InFlight::new(dep.clone());
    let streaming = job.head.stream && job.endpoint == Endpoint::Chat;
    let Some(target) = &dep.target else {
        let answer = tokio::time::timeout_at(
            job.deadline,
            crate::server::mock::answer(
                &dep.deployment,
                job.body,
                job.endpoint,
                job.head.stream,
                job.meter,
            ),
        )
        .await
        .unwrap_or_else(|_| {
            Err(GatewayError::Timeout(
                "the request ran past server.request_timeout_secs".into(),
            ))
        });
        return match answer {
            Ok(resp) => Attempt::Done(resp),
            Err(e) => failed(e, None),
        };
    };
    // Token-authenticated providers (Vertex AI): a cached token, or one fetched now.
    let token = match &target.token {
        Some(cache) => match cache.get(&app.upstream, &target.name, job.deadline).await {
            Ok(t) => Some(t),
            Err(e) => return failed(e, None),
        },
        None => None,
    };
    let mut out = match prepare(target, dep, job, token.as_deref()) {
        Ok(p) => p,
        Err(e) => return failed(e, None),
    };
    let dropped = dropped_header(std::mem::take(&mut out.dropped));
    let attempt_deadline = (start + target.timeout).min(job.deadline);
    let first_byte_deadline = match dep.deployment.stream_timeout {
        Some(t) if streaming => (start + t).min(job.deadline),
        _ => attempt_deadline,
    };
    let resp = match app
        .upstream
        .send_once(target, out, first_byte_deadline)
        .await
    {
        Ok(r) => r,
        Err(e) => return failed(e, None),
    };
    let (parts, mut incoming) = resp.into_parts();
    if !parts.status.is_success() {
        let retry_after = upstream::retry_after(&parts.headers);
        let bytes = match upstream::read_body(incoming, &target.name, attempt_deadline).await {
            Ok(b) => b,
            Err(e) => return failed(e, retry_after),
        };
        let err = match &target.wire {
            Wire::OpenAi(_) => {
                let header = parts.headers.get(header::RETRY_AFTER).cloned();
                upstream::upstream_error(parts.status, header, &bytes, &target.name)
            }
            Wire::Adapter(adapter) => GatewayError::from(adapter.parse_error(
                parts.status.as_u16(),
                &parts.headers,
                &bytes,
            )),
        };
        return failed(err, retry_after);
    }
    if streaming {
        // Committed only once the first chunk is here: until then, a retry is safe.
        let first = match tokio::time::timeout_at(first_byte_deadline, incoming.frame()).await {
            Err(_) => {
                return failed(
                    GatewayError::Timeout(format!(
                        "the upstream for model {:?} sent no stream data in time",
                        target.name
                    )),
                    None,
                )
            }
            Ok(None) => {
                return failed(
                    GatewayError::BadGateway(format!(
                        "the upstream for model {:?} ended the stream before any data",
                        target.name
                    )),
                    None,
                )
            }
            Ok(Some(Err(e))) => {
                return failed(
                    GatewayError::BadGateway(format!(
                        "the upstream for model {:?} broke off the stream: {}",
                        target.name,
                        upstream::error_chain(&e)
                    )),
                    None,
                )
            }
            Ok(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        };
        dep.record_latency(start.elapsed());
        let body = match &target.wire {
            Wire::OpenAi(_) => stream::relay(
                incoming,
                first,
                target.name.clone(),
                target.timeout,
                job.deadline,
                in_flight,
                job.meter.map(|m| stream::Tapped {
                    tap: Box::new(m.clone()),
                    hide_usage: !job.head.include_usage,
                }),
            ),
            Wire::Adapter(adapter) => translate::translated(
                stream::Source::new(
                    incoming,
                    first,
                    target.name.clone(),
                    target.timeout,
                    job.deadline,
                ),
                adapter.stream(StreamMeta {
                    id: format!("chatcmpl-{:024x}", rand::random::<u128>() >> 32),
                    model: job.head.model.clone(),
                    created: unix_now(),
                    include_usage: job.head.include_usage,
                }),
                in_flight,
                job.meter
                    .map(|m| Box::new(m.clone()) as Box<dyn stream::UsageTap>),
            ),
        };
        let mut resp = crate::server::handlers::sse_response(body);
        if let Some(v) = dropped {
            resp.headers_mut().insert(DROPPED_PARAMS, v);
        }
        return Attempt::Done(resp);
    }
    let bytes = match upstream::read_body(incoming, &target.name, attempt_deadline).await {
        Ok(b) => b,
        Err(e) => return failed(e, None),
    };
    dep.record_latency(start.elapsed());
    let bytes = match &target.wire {
        Wire::OpenAi(_) => bytes,
        Wire::Adapter(adapter) => {
            let parsed = match job.endpoint {
                Endpoint::Chat => adapter
                    .parse_chat(&bytes, &job.head.model, unix_now())
                    .map(|c| serde_json::to_vec(&c)),
                Endpoint::Embeddings => {
                    adapter
                        .parse_embeddings(&bytes, &job.head.model)
                        .map(|mut e| {
                            // Adapters answer floats; OpenAI's SDKs ask for base64 by default.
                            if embeddings::wants_base64(job.body) {
                                embeddings::encode_base64(&mut e);
                            }
                            serde_json::to_vec(&e)
                        })
                }
            };
            match parsed {
                Ok(Ok(v)) => Bytes::from(v),
                Ok(Err(e)) => {
                    return failed(
                        GatewayError::Internal(format!("cannot encode the answer: {e}")),
                        None,
                    )
                }
                Err(e) => return failed(GatewayError::from(e), None),
            }
        }
    };
    let mut cost = None;
    if dep.deployment.tpm.is_some() || app.pricing.is_some() || job.meter.is_some() {
        if let Some(u) = upstream::usage::reported(&bytes) {
            dep.settle_tokens(Instant::now(), tokens, u.total_tokens);
            let u: liter_llm::types::Usage = u.into();
            if app.config.enable_cost_tracking {
                cost = app.price_of(&dep.deployment.provider_model, &u);
            }
            if let Some(m) = job.meter {
                m.record_priced(u, cost);
            }
        }
    }
    let mut resp = upstream::json_response(bytes);
    if let Some(v) = dropped {
        resp.headers_mut().insert(DROPPED_PARAMS, v);
    }
    if let Some(c) = cost {
        let v = cost_value(c);
        resp.headers_mut().insert(RESPONSE_COST, v.clone());
        resp.headers_mut().insert(LITELLM_RESPONSE_COST, v);
        resp.extensions_mut().insert(ResponseCost(c));
    }
    Attempt::Done(resp)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cost_values_read_as_the_float_formatter_writes_them() {
        for usd in [
            0.0,
            1e-10,
            4e-10,
            6e-10,
            0.000_001_23,
            0.5,
            1.0,
            12.345_678_901_2,
            99_999.25,
            1.5e-7 * 5.0 + 6e-7 * 6.0,
        ] {
            let ours = cost_value(usd);
            assert_eq!(ours.to_str().unwrap(), format!("{usd:.10}"), "{usd}");
        }
        assert_eq!(cost_value(-1.0).to_str().unwrap(), "-1.0000000000");
        assert_eq!(cost_value(f64::NAN).to_str().unwrap(), "NaN");
    }
}
