//! The whole request stack, built in one place, outermost layer first.
//!
//! 1. catch-panic: a bug anywhere below becomes a 500 in OpenAI's shape, and the
//!    connection survives. Outermost so that it also covers the log and CORS layers.
//! 2. request log: assigns (or keeps) `x-request-id` and writes one line per request
//!    with the model, deployment, status and latency the inner stages report.
//! 3. CORS (`cors.rs`): before auth, so that browser preflights (which carry no key)
//!    are answered.
//! 4. body limit: caps what any handler may buffer (413 from our own extractor).
//! 5. auth (route layer on the API routes only): deny by default; the public routes
//!    are the health endpoints listed below, nothing else.
//! 6. handlers: parse the head, resolve the route (404/403), dispatch, render.
//!
//! Every API route is also served without the `/v1` prefix, as LiteLLM users expect.
//!
//! The request-log and auth stages are hand-written tower layers rather than
//! `axum::middleware::from_fn`, which boxes a service and a future per request: they run
//! on every request, so their cost shows in the gateway's CPU per request (bench/).

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

use super::body::BodyLimit;
use super::cors::CorsLayer;
use super::handlers as h;
use super::App;
use crate::auth;
use crate::error::GatewayError;
use crate::telemetry;

/// Routes that need no key.
pub const PUBLIC_ROUTES: &[&str] = &[
    "/health",
    "/health/liveness",
    "/health/liveliness",
    "/health/readiness",
];

fn api_routes() -> Router<Arc<App>> {
    let mut router = Router::new();
    for prefix in ["/v1", ""] {
        router = router
            .route(
                &format!("{prefix}/chat/completions"),
                post(h::chat_completions),
            )
            .route(&format!("{prefix}/embeddings"), post(h::embeddings))
            .route(&format!("{prefix}/models"), get(h::list_models))
            .route(&format!("{prefix}/models/{{*id}}"), get(h::get_model));
    }
    // The admin API (master key only, checked by its handlers).
    router.merge(crate::admin::routes())
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked; answered 500");
    GatewayError::Internal("internal error".into()).into_response()
}

pub fn router(app: Arc<App>) -> Router {
    let api = api_routes().route_layer(auth::AuthLayer::new(app.keys.clone()));
    let public = Router::new()
        .route(PUBLIC_ROUTES[0], get(h::health))
        .route(PUBLIC_ROUTES[1], get(h::liveness))
        .route(PUBLIC_ROUTES[2], get(h::liveness))
        .route(PUBLIC_ROUTES[3], get(h::readiness));
    let limit = app.config.body_limit;
    public
        .merge(api)
        .fallback(h::not_found)
        .method_not_allowed_fallback(h::method_not_allowed)
        .with_state(app.clone())
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(telemetry::RequestLogLayer)
                .layer(CorsLayer::new(&app.config.cors))
                .layer(DefaultBodyLimit::max(limit))
                .layer(Extension(BodyLimit(limit))),
        )
}
