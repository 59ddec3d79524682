//! Handlers: parse, call the pipeline, render. Each keeps to that.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use bytes::Bytes;
use liter_llm::types::ModelObject;
use liter_llm::Provider;
use serde_json::json;
use tokio::time::Instant;

use super::body::{parse_head, RawBody};
use super::App;
use crate::auth::Principal;
use crate::budget;
use crate::error::GatewayError;
use crate::routing::execute::{execute, Job, Served};
use crate::routing::Pool;
use crate::telemetry::RouteInfo;
use crate::telemetry::REQUEST_ID;
use crate::upstream::Endpoint;

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
        });
    }
    resp
}

/// Which model (pool) answered: differs from the requested one after a fallback.
pub const ANSWERED_BY_MODEL: HeaderName = HeaderName::from_static("x-liter-llm-model");
/// Which deployment (`provider_model`) answered.
pub const ANSWERED_BY_DEPLOYMENT: HeaderName = HeaderName::from_static("x-liter-llm-deployment");

pub async fn chat_completions(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Resp {
    proxy(app, principal, &headers, body, Endpoint::Chat).await
}

pub async fn embeddings(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Resp {
    proxy(app, principal, &headers, body, Endpoint::Embeddings).await
}

async fn proxy(
    app: Arc<App>,
    principal: Arc<Principal>,
    headers: &HeaderMap,
    body: Bytes,
    endpoint: Endpoint,
) -> Resp {
    let deadline = Instant::now() + app.config.request_timeout;
    let head = match parse_head(&body) {
        Ok(h) => h,
        Err(e) => return e.into_response(),
    };
    let pool = match app.routes.resolve(&principal, &head.model) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let request_id = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let meter =
        match budget::admit(&app, &principal, &head, &body, &pool, endpoint, request_id).await {
            Ok(m) => m,
            Err(resp) => return resp,
        };
    let job = Job {
        body: &body,
        head: &head,
        endpoint,
        deadline,
        meter: meter.as_ref(),
    };
    let (result, served) = execute(&app, &pool, job).await;
    let Some(meter) = meter else {
        return tagged(result, served);
    };
    let status = match &result {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.status().as_u16(),
    };
    meter.served(served.as_ref().map(|s| s.deployment.as_str()), status);
    let mut resp = tagged(result, served);
    meter.decorate(&mut resp);
    resp
}

pub fn sse_response(body: Body) -> Resp {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
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

pub async fn list_models(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
) -> Resp {
    let mut data: Vec<ModelObject> = app
        .routes
        .visible(&principal)
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
    Json(json!({"object": "list", "data": data})).into_response()
}

pub async fn get_model(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
) -> Resp {
    match app.routes.resolve(&principal, &id) {
        Ok(pool) => Json(model_object(&app, &id, &pool)).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn health() -> Resp {
    Json(json!({"status": "healthy"})).into_response()
}

pub async fn liveness() -> Resp {
    Json(json!({"status": "alive"})).into_response()
}

/// Per-deployment state: healthy (probes), cooling down (breaker), in flight.
pub async fn readiness(State(app): State<Arc<App>>) -> Resp {
    if app.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
        )
            .into_response();
    }
    let now = Instant::now();
    let deployments: Vec<serde_json::Value> = app
        .routes
        .deployments()
        .map(|d| {
            let breaker = d.breaker().state();
            let cooling =
                matches!(breaker, crate::routing::breaker::State::Open { until } if until > now);
            let error = d.health_error.lock().map(|e| e.clone()).unwrap_or(None);
            json!({
                "model": d.deployment.name,
                "deployment": d.deployment.provider_model,
                "healthy": d.is_healthy(),
                "cooling_down": cooling,
                "half_open": matches!(breaker, crate::routing::breaker::State::HalfOpen { .. }),
                "in_flight": d.in_flight.load(Ordering::Relaxed),
                "health_error": error,
            })
        })
        .collect();
    Json(json!({"status": "ready", "models": app.routes.len(), "deployments": deployments}))
        .into_response()
}

pub async fn not_found() -> Resp {
    GatewayError::Route {
        status: StatusCode::NOT_FOUND,
        message: "no such route; this gateway serves the OpenAI API under /v1".into(),
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
