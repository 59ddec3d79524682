//! Handlers: parse, call the pipeline, render. Each keeps to that.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use bytes::Bytes;
use liter_llm::types::ModelObject;
use liter_llm::Provider;
use serde_json::json;
use tokio::time::Instant;

use super::body::{parse_head, with_model, RawBody};
use super::{mock, App};
use crate::auth::Principal;
use crate::error::GatewayError;
use crate::routing::Route;
use crate::telemetry::RouteInfo;
use crate::upstream::{self, stream, Endpoint};

type Resp = Response<Body>;

/// Attach what the request log needs to know about the route taken.
fn tagged(result: Result<Resp, GatewayError>, model: Option<&Route>) -> Resp {
    let mut resp = result.unwrap_or_else(IntoResponse::into_response);
    if let Some(route) = model {
        resp.extensions_mut().insert(RouteInfo {
            model: route.deployment.name.clone(),
            deployment: route.deployment.provider_model.clone(),
        });
    }
    resp
}

pub async fn chat_completions(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    RawBody(body): RawBody,
) -> Resp {
    proxy(app, principal, body, Endpoint::Chat).await
}

pub async fn embeddings(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    RawBody(body): RawBody,
) -> Resp {
    proxy(app, principal, body, Endpoint::Embeddings).await
}

async fn proxy(app: Arc<App>, principal: Arc<Principal>, body: Bytes, endpoint: Endpoint) -> Resp {
    let deadline = Instant::now() + app.config.request_timeout;
    let head = match parse_head(&body) {
        Ok(h) => h,
        Err(e) => return e.into_response(),
    };
    let route = match app.routes.resolve(&principal, &head.model) {
        Ok(r) => r.clone(),
        Err(e) => return e.into_response(),
    };
    let result = match &route.target {
        None => tokio::time::timeout_at(
            deadline,
            mock::answer(&route.deployment, &body, endpoint, head.stream),
        )
        .await
        .unwrap_or_else(|_| {
            Err(GatewayError::Timeout(
                "the request ran past server.request_timeout_secs".into(),
            ))
        }),
        Some(target) => {
            let body = with_model(&body, &head, &route.deployment.model_id);
            forward(
                &app,
                target,
                endpoint,
                body,
                head.stream && endpoint == Endpoint::Chat,
                deadline,
            )
            .await
        }
    };
    tagged(result, Some(&route))
}

/// Send to an OpenAI-compatible upstream and relay its answer.
async fn forward(
    app: &App,
    target: &upstream::Target,
    endpoint: Endpoint,
    body: Bytes,
    streaming: bool,
    deadline: Instant,
) -> Result<Resp, GatewayError> {
    let (resp, body_deadline) = app.upstream.send(target, endpoint, body, deadline).await?;
    let (parts, incoming) = resp.into_parts();
    if !parts.status.is_success() {
        let bytes = upstream::read_body(incoming, &target.name, body_deadline).await?;
        let retry_after = parts.headers.get(header::RETRY_AFTER).cloned();
        return Err(upstream::upstream_error(
            parts.status,
            retry_after,
            &bytes,
            &target.name,
        ));
    }
    if streaming {
        let body = stream::relay(incoming, target.name.clone(), target.timeout, deadline);
        return Ok(sse_response(body));
    }
    let bytes = upstream::read_body(incoming, &target.name, body_deadline).await?;
    Ok(upstream::json_response(bytes))
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

fn model_object(app: &App, route: &Route) -> ModelObject {
    ModelObject {
        id: route.deployment.name.clone(),
        object: "model",
        created: app.started_at,
        owned_by: match route.deployment.provider {
            Provider::OpenAiCompat(p) => p.name.to_string(),
            Provider::Mock => "liter-llm".to_string(),
        },
    }
}

pub async fn list_models(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
) -> Resp {
    let data: Vec<ModelObject> = app
        .routes
        .visible(&principal)
        .map(|r| model_object(&app, r))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

pub async fn get_model(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
) -> Resp {
    match app.routes.resolve(&principal, &id) {
        Ok(route) => Json(model_object(&app, route)).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn health() -> Resp {
    Json(json!({"status": "healthy"})).into_response()
}

pub async fn liveness() -> Resp {
    Json(json!({"status": "alive"})).into_response()
}

pub async fn readiness(State(app): State<Arc<App>>) -> Resp {
    if app.draining.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
        )
            .into_response();
    }
    Json(json!({"status": "ready", "models": app.routes.len()})).into_response()
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
