//! Handlers of the front doors of other client protocols (`crate::front`): decode
//! the client's request, run the same pipeline as chat (`handlers::proxy`), encode
//! the answer back. Their routes carry the door's error layer ([`routes`]), so every
//! error, the auth stage's included, is in the client's shape.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Response};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::json;

use super::handlers::proxy;
use crate::app::App;
use crate::auth::{AuthLayer, Principal};
use crate::error::{GatewayError, Wire};
use crate::front::messages::{count_tokens_body, Messages};
use crate::front::{self, FrontDoor};
use crate::request::{Endpoint, RawBody};

type Resp = Response<Body>;

/// The front doors' routes (with and without `/v1`), behind auth, errors in each
/// door's shape.
pub fn routes(app: &App) -> Router<Arc<App>> {
    let mut router = Router::new();
    for prefix in ["/v1", ""] {
        router = router
            .route(&format!("{prefix}/messages"), post(messages))
            .route(
                &format!("{prefix}/messages/count_tokens"),
                post(count_tokens),
            );
    }
    router
        .route_layer(AuthLayer::new(app.keys.clone()))
        .layer(axum::middleware::map_response(|resp: Resp| {
            front::errors_in(Wire::Anthropic, resp)
        }))
}

/// Runs `door`'s request through the pipeline and encodes the answer.
async fn serve_door(
    door: &dyn FrontDoor,
    app: Arc<App>,
    principal: Arc<Principal>,
    headers: &HeaderMap,
    body: bytes::Bytes,
) -> Resp {
    let decoded = match door.decode(&body, headers) {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let max_event_bytes = app.config.limits.max_event_bytes;
    let resp = proxy(
        app,
        principal,
        headers,
        decoded.canonical,
        Endpoint::Chat,
        Some(&decoded.native),
    )
    .await;
    front::encode(door, resp, max_event_bytes).await
}

/// `POST /v1/messages`.
pub async fn messages(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Resp {
    serve_door(&Messages, app, principal, &headers, body).await
}

/// `POST /v1/messages/count_tokens`: the gateway's own estimate of the prompt
/// (OpenAI's `o200k_base` tokenizer, as for rate limits and budgets), for any model
/// the key may use; nothing is sent upstream.
pub async fn count_tokens(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    RawBody(body): RawBody,
) -> Resp {
    let (model, canonical) = match count_tokens_body(&body) {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = app.routes.resolve(|m| principal.may_use(m), &model) {
        return GatewayError::from(e).into_response();
    }
    let governor = app.governor.clone();
    match tokio::task::spawn_blocking(move || governor.prompt_tokens(&canonical)).await {
        Ok(n) => Json(json!({"input_tokens": n})).into_response(),
        Err(_) => GatewayError::Internal("the token count failed".into()).into_response(),
    }
}
