//! Handlers: parse, call the pipeline, render. Each keeps to that. The pipeline of an
//! API request, in order, is listed in `stack.rs`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use bytes::Bytes;
use liter_llm::types::ModelObject;
use liter_llm::Provider;
use serde_json::json;
use tokio::time::Instant;

use super::openapi::{ModelList, Status};
use crate::app::App;
use crate::auth::Principal;
use crate::cache::{Cache, Plan, UsageSlot};
use crate::error::GatewayError;
use crate::governance;
use crate::request::{parse_head, Endpoint, Head, RawBody};
use crate::routing::{self, Pool, Served, TagFilter};
use crate::telemetry::{Record, RouteInfo, REQUEST_ID};
use crate::upstream::stream::Both;
use crate::upstream::{Job, Native, UsageTap};

type Resp = Response<Body>;

/// Attach what the request log and the client need to know about who answered.
fn tagged(result: Result<Resp, GatewayError>, served: Option<Served>) -> Resp {
    let mut resp = result.unwrap_or_else(IntoResponse::into_response);
    if let Some(s) = served {
        if let Ok(v) = HeaderValue::from_str(&s.model) {
            resp.headers_mut().insert(ANSWERED_BY_MODEL, v);
        }
        if let Ok(v) = HeaderValue::from_str(&s.deployment) {
            resp.headers_mut().insert(ANSWERED_BY_DEPLOYMENT, v);
        }
        resp.extensions_mut().insert(RouteInfo {
            model: s.model,
            deployment: s.deployment,
            metrics: s.metrics,
            retries: s.retries,
            upstream: s.upstream,
        });
    }
    resp
}

/// Which model (pool) answered: differs from the requested one after a fallback.
pub const ANSWERED_BY_MODEL: HeaderName = HeaderName::from_static("x-liter-llm-model");
/// Which deployment (`provider_model`) answered.
pub const ANSWERED_BY_DEPLOYMENT: HeaderName = HeaderName::from_static("x-liter-llm-deployment");

#[utoipa::path(post, path = "/v1/chat/completions", tag = "chat", operation_id = "chat_completions",
    summary = "A chat completion, whole or streamed (`stream: true`)",
    request_body = liter_llm::types::ChatCompletionRequest,
    responses(
        (status = 200, description = "The completion; a stream of chunks as server-sent events with `stream: true`",
            content((liter_llm::types::ChatCompletion = "application/json"),
                    (liter_llm::types::ChatCompletionChunk = "text/event-stream"))),
        (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn chat_completions(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Resp {
    proxy(app, principal, &headers, body, Endpoint::Chat, None).await
}

#[utoipa::path(post, path = "/v1/embeddings", tag = "embeddings", operation_id = "embeddings",
    summary = "Embeddings of the input",
    request_body = liter_llm::types::EmbeddingRequest,
    responses(
        (status = 200, description = "The embeddings", body = liter_llm::types::EmbeddingResponse),
        (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn embeddings(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Resp {
    proxy(app, principal, &headers, body, Endpoint::Embeddings, None).await
}

/// The pipeline of a chat or embeddings request after authentication: head parse,
/// route resolution (404/403), the cache's lookup, governance (401/429/402/503),
/// routing with retries and fallbacks, each attempt dispatched upstream; then the meter
/// learns who answered and the cache stores the answer. `body` is OpenAI's (a front
/// door's canonical translation); `native` is the client's own request when it came
/// through another front door.
pub(super) async fn proxy(
    app: Arc<App>,
    principal: Arc<Principal>,
    headers: &HeaderMap,
    body: Bytes,
    endpoint: Endpoint,
    native: Option<&Native>,
) -> Resp {
    // The request's observations, when metrics or tracing are on (`telemetry`).
    let record = app.observes().then(|| {
        let trace = app
            .tracing
            .as_ref()
            .map(|t| t.request(headers, endpoint.operation()));
        let content = app.sinks.as_ref().is_some_and(|s| s.wants_content());
        Record::new(app.cost_prices_arc(), trace, content)
    });
    let request = Incoming {
        headers,
        body: &body,
        endpoint,
        native,
    };
    let mut resp = pipeline(&app, &principal, request, record.as_ref())
        .await
        .unwrap_or_else(IntoResponse::into_response);
    if let Some(r) = record {
        resp.extensions_mut().insert(r);
    }
    resp
}

/// A request as the pipeline takes it.
struct Incoming<'a> {
    headers: &'a HeaderMap,
    /// OpenAI's body (the canonical one).
    body: &'a Bytes,
    endpoint: Endpoint,
    /// The client's own request, from a front door of another wire.
    native: Option<&'a Native>,
}

/// [`proxy`]'s steps; a refusal at any of them is the response.
async fn pipeline(
    app: &App,
    principal: &Principal,
    request: Incoming<'_>,
    record: Option<&Arc<Record>>,
) -> Result<Resp, GatewayError> {
    let Incoming {
        headers,
        body,
        endpoint,
        native,
    } = request;
    let deadline = Instant::now() + app.config.request_timeout;
    let head = parse_head(body)?;
    let untagged = routing::tags::Untagged::take(body, &head, native)?;
    let (body, head) = match &untagged.canonical {
        Some(t) => (&t.body, &t.head),
        None => (body, &head),
    };
    let native = untagged.native.as_ref().or(native);
    let tags = match app.routes.tag_filtering() {
        true => Some(routing::tags::request_filter(
            headers,
            &untagged.tags,
            principal.tags(),
        )?),
        false => None,
    };
    if let Some(r) = record {
        r.started(head, body);
    }
    let pool = app.routes.resolve(|m| principal.may_use(m), &head.model)?;
    let request_id = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // A front door of another wire may be answered in its own wire (pass-through), which
    // the cache, holding OpenAI answers, must not store: such requests are not cached.
    let plan = match app.cache.as_ref().filter(|_| native.is_none()) {
        Some(cache) => {
            let key_scope = principal.account().map(|k| &**k.scope);
            let route_tags = tags.as_ref().map_or(&[][..], TagFilter::tags);
            Some(cache.plan(key_scope, route_tags, endpoint, headers, body)?)
        }
        None => None,
    };
    // The body's `cache` field does not go upstream.
    let (body, head) = match plan.as_ref().and_then(|p| p.upstream.as_ref()) {
        Some((b, h)) => (b, h),
        None => (body, head),
    };
    let req = Req {
        app,
        principal,
        pool: &pool,
        tags: tags.as_ref(),
        head,
        body,
        endpoint,
        request_id,
        deadline,
        record,
        native,
    };
    let (Some(cache), Some(plan)) = (&app.cache, &plan) else {
        return forward(&req, None).await;
    };
    let (found, outcome) = cache.lookup(plan).await;
    let mut resp = match found {
        Some(answer) => from_cache(&req, answer).await,
        None => forward(&req, Some((cache, plan))).await,
    }
    .unwrap_or_else(IntoResponse::into_response);
    Cache::decorate(plan, outcome, &mut resp);
    Ok(resp)
}

/// A chat or embeddings request past route resolution.
struct Req<'a> {
    app: &'a App,
    principal: &'a Principal,
    pool: &'a Arc<Pool>,
    /// With tag filtering on: the deployments the request's tags admit.
    tags: Option<&'a TagFilter>,
    head: &'a Head,
    body: &'a Bytes,
    endpoint: Endpoint,
    request_id: &'a str,
    deadline: Instant,
    /// The request's observations (metrics, trace), when either is on.
    record: Option<&'a Arc<Record>>,
    /// The client's own request, from a front door of another wire.
    native: Option<&'a Native>,
}

impl<'a> Req<'a> {
    fn governed(&self, cache_hit: bool) -> governance::Request<'a> {
        governance::Request {
            head: self.head,
            body: self.body,
            endpoint: self.endpoint,
            request_id: self.request_id,
            cache_hit,
        }
    }

    /// Governance's admission, a refusal counted in `/metrics` by kind and scope.
    async fn admit(&self, cache_hit: bool) -> Result<Option<governance::Meter>, GatewayError> {
        let app = self.app;
        governance::admit(
            &app.governor,
            self.principal.account(),
            self.pool,
            self.governed(cache_hit),
        )
        .await
        .inspect_err(|r| count_refusal(app, r))
        .map_err(GatewayError::from)
    }
}

/// A cache hit: governance (expiry, rpm, a zero-cost ledger row), then the stored
/// answer in the form asked; no upstream call.
async fn from_cache(req: &Req<'_>, answer: Bytes) -> Result<Resp, GatewayError> {
    let meter = req.admit(true).await?;
    let served = Served {
        model: req.pool.spec.name.clone(),
        deployment: "cache".to_owned(),
        metrics: None,
        upstream: std::time::Duration::ZERO,
        retries: 0,
    };
    let mut resp = tagged(
        Ok(Cache::answer(answer, req.head, req.endpoint)),
        Some(served),
    );
    if let Some(m) = meter {
        m.served(None, resp.status().as_u16());
        m.decorate(&mut resp);
    }
    Ok(resp)
}

/// Governance (401/429/402/503), routing with retries and fallbacks, each attempt
/// dispatched upstream; then the meter learns who answered, and with a cache plan a
/// complete successful answer is stored.
async fn forward(req: &Req<'_>, cache: Option<(&Arc<Cache>, &Plan)>) -> Result<Resp, GatewayError> {
    let app = req.app;
    let meter = req.admit(false).await?;
    // A stream to store needs its usage, also when the client did not ask for it.
    let slot = cache
        .filter(|(_, p)| p.store && req.head.stream && req.endpoint == Endpoint::Chat)
        .map(|_| UsageSlot::default());
    let slot_tap = slot
        .as_ref()
        .map(|s| s.tap(meter.as_ref().map(UsageTap::boxed)));
    let governed = match (&slot_tap, &meter) {
        (Some(t), _) => Some(t as &dyn UsageTap),
        (None, Some(m)) => Some(m as &dyn UsageTap),
        (None, None) => None,
    };
    let observer = req.record.map(|r| r.tap());
    let both;
    let tap = match (governed, observer.as_ref()) {
        (Some(g), Some(o)) => {
            both = Both(g, o);
            Some(&both as &dyn UsageTap)
        }
        (Some(g), None) => Some(g),
        (None, o) => o.map(|o| o as &dyn UsageTap),
    };
    let job = Job {
        body: req.body,
        head: req.head,
        endpoint: req.endpoint,
        deadline: req.deadline,
        tap,
        prices: app.cost_prices(),
        trace: req.record.and_then(|r| r.trace()),
        native: req.native,
        prompt_tokens: prompt_tokens(req).await,
    };
    let (result, served) = routing::execute(
        &app.routes,
        &app.upstream,
        app.config.max_retries,
        req.pool,
        req.tags,
        job,
    )
    .await;
    let status = match &result {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.status().as_u16(),
    };
    if let Some(m) = &meter {
        m.served(served.as_ref().map(|s| s.deployment.as_str()), status);
    }
    let mut resp = tagged(result, served);
    if let Some(m) = &meter {
        m.decorate(&mut resp);
    }
    if let Some((cache, plan)) = cache {
        resp = cache.keep(plan, resp, slot).await;
    }
    Ok(resp)
}

/// The prompt's estimated tokens, counted only when a deployment has a context window
/// to check them against (`max_input_tokens`).
async fn prompt_tokens(req: &Req<'_>) -> Option<u64> {
    if !req.app.routes.checks_context() {
        return None;
    }
    let governor = req.app.governor.clone();
    let (body, endpoint) = (req.body.clone(), req.endpoint);
    tokio::task::spawn_blocking(move || governor.input_tokens(&body, endpoint))
        .await
        .ok()
}

/// A governance refusal, counted in `/metrics` by kind and scope.
fn count_refusal(app: &App, refused: &governance::Refused) {
    if let (Some(m), Some((kind, scope))) = (&app.metrics, refused.scope()) {
        m.rejected(kind, scope);
    }
}

fn model_object(app: &App, name: &str, pool: &Pool) -> ModelObject {
    ModelObject {
        id: name.to_string(),
        object: "model",
        created: app.started_at,
        owned_by: match pool.deployments.first().map(|d| d.deployment.provider) {
            Some(Provider::Mock) | None => "liter-llm".to_string(),
            Some(p) => p.name().to_string(),
        },
    }
}

#[utoipa::path(get, path = "/v1/models", tag = "models", operation_id = "list_models",
    summary = "The models the key may use",
    responses(
        (status = 200, description = "`{\"object\": \"list\", \"data\": [model, ...]}`", body = super::openapi::ModelList),
        (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn list_models(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
) -> Resp {
    let mut data: Vec<ModelObject> = app
        .routes
        .visible(|m| principal.may_use(m))
        .map(|(name, pool)| model_object(&app, name, pool))
        .collect();
    // `[[aliases]]` patterns: every matching `provider/model` name is reachable.
    data.extend(
        app.routes
            .patterns()
            .filter(|a| principal.may_use(&a.pattern))
            .map(|a| ModelObject {
                id: a.pattern.clone(),
                object: "model",
                created: app.started_at,
                owned_by: a.provider.name().to_string(),
            }),
    );
    Json(ModelList {
        object: "list",
        data,
    })
    .into_response()
}

#[utoipa::path(get, path = "/v1/models/{*id}", tag = "models", operation_id = "get_model",
    summary = "One model (its id may hold `/`, as in `openai/gpt-4o`)",
    params(("id" = String, Path, description = "The model name")),
    responses(
        (status = 200, description = "The model", body = liter_llm::types::ModelObject),
        (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn get_model(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
) -> Resp {
    match app.routes.resolve(|m| principal.may_use(m), &id) {
        Ok(pool) => Json(model_object(&app, &id, &pool)).into_response(),
        Err(e) => GatewayError::from(e).into_response(),
    }
}

#[utoipa::path(get, path = "/health", tag = "health", operation_id = "health",
    responses((status = 200, description = "`{\"status\": \"healthy\"}`", body = super::openapi::Status)))]
pub async fn health() -> Resp {
    Json(Status { status: "healthy" }).into_response()
}

#[utoipa::path(get, path = "/health/liveness", tag = "health", operation_id = "liveness",
    responses((status = 200, description = "`{\"status\": \"alive\"}`", body = super::openapi::Status)))]
pub async fn liveness() -> Resp {
    Json(Status { status: "alive" }).into_response()
}

#[utoipa::path(get, path = "/health/liveliness", tag = "health", operation_id = "liveliness",
    summary = "LiteLLM's spelling of `/health/liveness`",
    responses((status = 200, description = "`{\"status\": \"alive\"}`", body = super::openapi::Status)))]
pub async fn liveliness() -> Resp {
    liveness().await
}

/// Per-deployment state: healthy (probes), cooling down (breaker), in flight. With
/// `general.health_check_details = false` (the route needs no key), each deployment
/// shows its model name and state only: no upstream model, error text or in-flight
/// count, and no process figures (tasks, heap, cache errors).
#[utoipa::path(get, path = "/health/readiness", tag = "health", operation_id = "readiness",
    responses(
        (status = 200, description = "Ready: per-deployment health, cooldown and in-flight counts", body = Object),
        (status = 503, description = "Draining (shutting down)", body = super::openapi::Status)))]
pub async fn readiness(State(app): State<Arc<App>>) -> Resp {
    if app.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Status { status: "draining" }),
        )
            .into_response();
    }
    let now = Instant::now();
    let details = app.config.health_check_details;
    let deployments: Vec<serde_json::Value> = app
        .routes
        .deployments()
        .map(|d| {
            let breaker = d.breaker().state();
            let cooling =
                matches!(breaker, crate::routing::breaker::State::Open { until } if until > now);
            let mut entry = json!({
                "model": d.deployment.name,
                "healthy": d.is_healthy(),
                "cooling_down": cooling,
                "half_open": matches!(breaker, crate::routing::breaker::State::HalfOpen { .. }),
            });
            if details {
                let error = d.health_error.lock().map(|e| e.clone()).unwrap_or(None);
                entry["deployment"] = json!(d.deployment.provider_model);
                entry["in_flight"] = json!(d.in_flight.load(Ordering::Relaxed));
                entry["health_error"] = json!(error);
            }
            entry
        })
        .collect();
    if !details {
        return Json(
            json!({"status": "ready", "models": app.routes.len(), "deployments": deployments}),
        )
        .into_response();
    }
    // Tasks alive in the runtime: a leak of spawned work shows here (bench/soak.py).
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let mut body = json!({"status": "ready", "models": app.routes.len(), "tasks": tasks, "deployments": deployments});
    if let Some(heap) = crate::telemetry::heap_bytes() {
        body["heap_bytes"] = heap.into();
    }
    if let Some(c) = &app.cache {
        // Cache backend operations that failed or timed out since start-up.
        body["cache_errors"] = json!(c.errors());
    }
    Json(body).into_response()
}

/// `GET /metrics`: Prometheus text, or OpenMetrics when the `Accept` header asks for
/// it. Under `general.metrics = "master"` the route sits behind auth, and only the
/// master key may read it; under `"public"` it is a public route; under `"off"` it is
/// not served.
#[utoipa::path(get, path = "/metrics", tag = "metrics", operation_id = "metrics",
    summary = "Prometheus metrics (text format, or OpenMetrics when `Accept` asks for it)",
    responses(
        (status = 200, description = "The metrics", body = String, content_type = "text/plain"),
        (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn metrics(
    State(app): State<Arc<App>>,
    principal: Option<Extension<Arc<Principal>>>,
    headers: HeaderMap,
) -> Resp {
    let Some(metrics) = &app.metrics else {
        return route_not_found(&axum::http::Method::GET, "/metrics");
    };
    let public = app.config.metrics == crate::config::MetricsAccess::Public;
    if !public && !matches!(principal.as_deref().map(|p| &**p), Some(Principal::Master)) {
        return GatewayError::Forbidden("this route needs the master key".into()).into_response();
    }
    let now = Instant::now();
    for d in app.routes.deployments() {
        if let Some(m) = &d.metrics {
            let cooling = d.breaker().reopens_at().is_some_and(|t| t > now);
            m.healthy.set(i64::from(d.is_healthy() && !cooling));
            m.in_flight
                .set(i64::from(d.in_flight.load(Ordering::Relaxed)));
        }
    }
    let openmetrics = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    match metrics.encode(openmetrics) {
        Ok(text) => ([(axum::http::header::CONTENT_TYPE, content_type)], text).into_response(),
        Err(_) => GatewayError::Internal("could not encode the metrics".into()).into_response(),
    }
}

pub async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> Resp {
    route_not_found(&method, uri.path())
}

/// The 404 of a route not served: the method and path asked for (escaped, capped) and
/// where the served routes are listed.
fn route_not_found(method: &axum::http::Method, path: &str) -> Resp {
    GatewayError::Route {
        status: StatusCode::NOT_FOUND,
        message: format!(
            "no route {method} {}: GET /openapi.json lists every route this gateway serves (OpenAI's API under /v1: chat/completions, completions, embeddings, responses, models; Anthropic's /v1/messages)",
            crate::logtext::Clean(crate::logtext::capped(path))
        ),
    }
    .into_response()
}

pub async fn method_not_allowed() -> Resp {
    GatewayError::Route {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: "method not allowed on this route".into(),
    }
    .into_response()
}
