//! The Responses API's routes (`crate::front::responses`): create (through the same
//! pipeline as chat), retrieve, delete and list the input items of a stored response.
//! A stored response is its key's only: another key, the master key included, gets the
//! 404 an unknown id gets (and the master key sees only the responses made with it).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Response};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::front::serve_door;
use crate::apidoc::Access::Key;
use crate::apidoc::{route, Route};
use crate::app::App;
use crate::auth::Principal;
use crate::error::GatewayError;
use crate::front::responses::Responses;
use crate::request::RawBody;
use crate::store::StoredResponse;

type Resp = Response<Body>;

/// The routes, for the route table (each also without `/v1`).
pub fn routes() -> Vec<Route<Arc<App>>> {
    [
        route::<__path_create, _, _, _>(Key, create),
        route::<__path_retrieve, _, _, _>(Key, retrieve),
        route::<__path_delete, _, _, _>(Key, delete),
        route::<__path_input_items, _, _, _>(Key, input_items),
    ]
    .into_iter()
    .flat_map(|r| r.unprefixed().into_iter().chain([r]))
    .collect()
}

/// Whose responses a key reads: a virtual key's budget scope name, or `master`.
pub fn owner(principal: &Principal) -> String {
    match principal {
        Principal::Master => "master".to_string(),
        Principal::Virtual(k) => k.scope.to_string(),
    }
}

/// `POST /v1/responses`.
#[utoipa::path(post, path = "/v1/responses", tag = "responses", operation_id = "create_response",
    summary = "OpenAI's Responses API, whole or streamed (`stream: true`), on any configured model; `store` and `previous_response_id` keep the conversation in the gateway",
    request_body(content = Object, description = "A Responses request", content_type = "application/json"),
    responses(
        (status = 200, description = "A `response` object; a stream of Responses' typed server-sent events with `stream: true`",
            content((Object = "application/json"), (String = "text/event-stream"))),
        (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn create(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Resp {
    let door = Responses::prepare(
        &body,
        &app.responses,
        &owner(&principal),
        app.config.body_limit,
    )
    .await;
    match door {
        Ok(door) => serve_door(&door, app, principal, &headers, body).await,
        Err(e) => e.into_response(),
    }
}

fn not_found(id: &str) -> GatewayError {
    GatewayError::NotFound(format!("Response with id '{id}' not found."))
}

/// The key's stored response `id`, or 404.
async fn stored(
    app: &App,
    principal: &Principal,
    id: &str,
) -> Result<StoredResponse, GatewayError> {
    app.responses
        .get(id, &owner(principal))
        .await
        .map_err(|e| GatewayError::StoreUnavailable(format!("the response store failed: {e}")))?
        .ok_or_else(|| not_found(id))
}

/// `GET /v1/responses/{id}`.
#[utoipa::path(get, path = "/v1/responses/{id}", tag = "responses", operation_id = "retrieve_response",
    summary = "A stored response (the key's own)",
    params(("id" = String, Path, description = "The response id")),
    responses(
        (status = 200, description = "The `response` object", body = Object),
        (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn retrieve(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
) -> Resp {
    match stored(&app, &principal, &id).await {
        Ok(r) => {
            let mut resp = Response::new(Body::from(r.response));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(e) => e.into_response(),
    }
}

/// `DELETE /v1/responses/{id}`.
#[utoipa::path(delete, path = "/v1/responses/{id}", tag = "responses", operation_id = "delete_response",
    summary = "Forget a stored response (the key's own)",
    params(("id" = String, Path, description = "The response id")),
    responses(
        (status = 200, description = "`{\"id\", \"object\": \"response\", \"deleted\": true}`", body = super::openapi::Deleted),
        (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn delete(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
) -> Resp {
    match app.responses.delete(&id, &owner(&principal)).await {
        Ok(true) => Json(super::openapi::Deleted {
            id,
            object: "response",
            deleted: true,
        })
        .into_response(),
        Ok(false) => not_found(&id).into_response(),
        Err(e) => GatewayError::StoreUnavailable(format!("the response store failed: {e}"))
            .into_response(),
    }
}

/// `GET /v1/responses/{id}/input_items`'s query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemsParams {
    /// 1 to 100, default 20.
    limit: Option<u32>,
    /// `asc` or `desc` (default).
    order: Option<String>,
    /// An item id: the page starts after it.
    after: Option<String>,
}

/// `GET /v1/responses/{id}/input_items`.
#[utoipa::path(get, path = "/v1/responses/{id}/input_items", tag = "responses", operation_id = "response_input_items",
    summary = "The input items of a stored response's conversation, a page at a time",
    params(("id" = String, Path, description = "The response id"), ItemsParams),
    responses(
        (status = 200, description = "`{\"object\": \"list\", \"data\", \"first_id\", \"last_id\", \"has_more\"}`", body = Object),
        (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn input_items(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
    query: Result<Query<ItemsParams>, QueryRejection>,
) -> Resp {
    let page = async {
        let Query(q) = query
            .map_err(|e| GatewayError::bad_request(format!("invalid query: {}", e.body_text())))?;
        let limit = q.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(GatewayError::BadRequest {
                message: "limit must be an integer from 1 to 100".into(),
                param: Some("limit"),
                code: Some("invalid_value"),
            });
        }
        let r = stored(&app, &principal, &id).await?;
        let mut items: Vec<Value> = serde_json::from_str(&r.input_items)
            .map_err(|e| GatewayError::Internal(format!("a stored response is unreadable: {e}")))?;
        match q.order.as_deref() {
            None | Some("desc") => items.reverse(),
            Some("asc") => {}
            Some(_) => return Err(GatewayError::bad_request("order must be 'asc' or 'desc'")),
        }
        if let Some(after) = &q.after {
            let at = items.iter().position(|i| i["id"] == after.as_str());
            items.drain(..at.map_or(0, |p| p + 1));
        }
        let has_more = items.len() > limit as usize;
        items.truncate(limit as usize);
        Ok(
            json!({"object": "list", "first_id": items.first().map(|i| i["id"].clone()),
            "last_id": items.last().map(|i| i["id"].clone()), "has_more": has_more, "data": items}),
        )
    };
    match page.await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
