//! Handlers of the front doors of other client protocols (`crate::front`): decode
//! the client's request, run the same pipeline as chat (`handlers::proxy`), encode
//! the answer back. Their routes carry the door's error layer ([`routes`]), so every
//! error, the auth stage's included, is in the client's shape.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Response};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde_json::json;

use super::handlers::proxy;
use crate::apidoc::Access::{Door, Key};
use crate::apidoc::{route, Route};
use crate::app::App;
use crate::auth::Principal;
use crate::error::{GatewayError, Wire};
use crate::front::completions::{single_prompt, Completions};
use crate::front::messages::{count_tokens_body, Messages};
use crate::front::{self, FrontDoor};
use crate::request::{parse_head, Endpoint, RawBody};

type Resp = Response<Body>;

/// The front doors' routes for the route table (`routes.rs`), each served with and
/// without `/v1`; the table puts them behind auth and the door's error layer.
pub fn routes() -> Vec<Route<Arc<App>>> {
    let door = Door(Wire::Anthropic);
    let routes = [
        route::<__path_messages, _, _, _>(door, messages),
        route::<__path_count_tokens, _, _, _>(door, count_tokens),
        route::<__path_completions, _, _, _>(Key, completions),
    ];
    routes
        .into_iter()
        .flat_map(|r| r.unprefixed().into_iter().chain([r]))
        .collect()
}

/// Runs `door`'s request through the pipeline and encodes the answer.
pub(super) async fn serve_door(
    door: &dyn FrontDoor,
    app: Arc<App>,
    principal: Arc<Principal>,
    headers: &HeaderMap,
    body: bytes::Bytes,
) -> Resp {
    // A pool that only passes the client's requests through needs no canonical one.
    let all_native = |head: &crate::request::Head| {
        app.routes
            .resolve(|m| principal.may_use(m), &head.model)
            .is_ok_and(|pool| pool.passes_through(door.wire()))
    };
    let decoded = match door.decode(&body, headers, &all_native) {
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
        decoded.native.as_ref(),
    )
    .await;
    front::encode(door, resp, &decoded.dropped, max_event_bytes).await
}

/// `POST /v1/messages`.
#[utoipa::path(post, path = "/v1/messages", tag = "anthropic", operation_id = "messages",
    summary = "Anthropic's Messages API, whole or streamed (`stream: true`), on any configured model",
    request_body(content = Object, description = "An Anthropic Messages request", content_type = "application/json"),
    responses(
        (status = 200, description = "An Anthropic message; a stream of Anthropic's server-sent events with `stream: true`",
            content((Object = "application/json"), (String = "text/event-stream"))),
        (status = "default", description = "An error in Anthropic's shape: `{\"type\":\"error\",\"error\":{\"type\",\"message\"}}`", body = Object)))]
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
#[utoipa::path(post, path = "/v1/messages/count_tokens", tag = "anthropic", operation_id = "count_tokens",
    summary = "The prompt's token count (the gateway's estimate)",
    request_body(content = Object, description = "An Anthropic Messages request", content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"input_tokens\": N}`", body = Object),
        (status = "default", description = "An error in Anthropic's shape", body = Object)))]
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

/// `POST /v1/completions`: forwarded as it came to OpenAI-compatible deployments,
/// through chat for the others.
#[utoipa::path(post, path = "/v1/completions", tag = "completions", operation_id = "completions",
    summary = "OpenAI's legacy completions, whole or streamed (`stream: true`), on any configured model",
    request_body(content = Object, description = "A completions request (`prompt`, `max_tokens`, ...)", content_type = "application/json"),
    responses(
        (status = 200, description = "A `text_completion`; a stream of `text_completion` chunks with `stream: true`",
            content((Object = "application/json"), (String = "text/event-stream"))),
        (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn completions(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Resp {
    if let Err(e) = prompts_fit(&app, &principal, &body) {
        return e.into_response();
    }
    serve_door(&Completions, app, principal, &headers, body).await
}

/// Several prompts (or token arrays) in one request: only OpenAI-compatible
/// deployments answer them (the request goes to them as it came); a model with any
/// other deployment is a 400.
fn prompts_fit(app: &App, principal: &Principal, body: &[u8]) -> Result<(), GatewayError> {
    if single_prompt(body) {
        return Ok(());
    }
    let Ok(head) = parse_head(body) else {
        return Ok(());
    };
    let Ok(pool) = app.routes.resolve(|m| principal.may_use(m), &head.model) else {
        return Ok(());
    };
    let translated = pool.deployments.iter().any(|d| {
        !matches!(
            d.deployment.provider,
            liter_llm::Provider::OpenAiCompat(_) | liter_llm::Provider::Azure
        )
    });
    if translated {
        return Err(GatewayError::BadRequest {
            message: format!(
                "model {:?} answers completions through chat, one text prompt at a time: send 'prompt' as one string",
                head.model
            ),
            param: Some("prompt"),
            code: Some("invalid_value"),
        });
    }
    Ok(())
}
