//! `/spend/logs` and `/global/spend*`: the ledger, as rows, totals and groups. With
//! `general.disable_spend_logs` there is no ledger to read: they answer 404 saying so
//! (the keys' spend stays in `/key/info`).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{parse_time, rfc3339, store_failed, stores};
use crate::app::App;
use crate::error::GatewayError;
use crate::store::{GroupBy, LedgerEntry, LedgerFilter, Stores};

/// The stores, when the ledger is written.
fn ledger(app: &App) -> Result<&Stores, GatewayError> {
    if app.config.governance.disable_spend_logs {
        return Err(GatewayError::NotFound(
            "spend logs are off (general.disable_spend_logs): no row is written per request; each key's spend is in /key/info".into(),
        ));
    }
    stores(app)
}

/// Filters shared by the spend routes (LiteLLM's names).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SpendQuery {
    /// A key's token (id) or alias (never the clear key: query strings end up in logs).
    api_key: Option<String>,
    model: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    limit: Option<u64>,
    offset: Option<u64>,
    group_by: Option<String>,
}

fn filter(q: &SpendQuery) -> Result<LedgerFilter, GatewayError> {
    Ok(LedgerFilter {
        key: q.api_key.clone(),
        model: q.model.clone(),
        since: q
            .start_date
            .as_deref()
            .map(|s| parse_time("start_date", s, false))
            .transpose()?,
        until: q
            .end_date
            .as_deref()
            .map(|s| parse_time("end_date", s, true))
            .transpose()?,
        limit: Some(q.limit.unwrap_or(100).min(10_000)),
        offset: q.offset.unwrap_or(0),
    })
}

fn row(e: &LedgerEntry) -> Value {
    json!({
        "request_id": e.request_id,
        "api_key": e.key_id,
        "key_alias": e.key_alias,
        "model": e.model,
        "model_id": e.deployment,
        "spend": e.cost_usd,
        "prompt_tokens": e.prompt_tokens,
        "completion_tokens": e.completion_tokens,
        "total_tokens": e.prompt_tokens.saturating_add(e.completion_tokens),
        "cached_tokens": e.cached_tokens,
        "status": e.status,
        "cache_hit": e.cache_hit,
        "startTime": rfc3339(e.started_at),
        "endTime": rfc3339(e.ended_at),
    })
}

/// The handler's answer, or its error rendered.
async fn answered<F>(f: F) -> Response
where
    F: std::future::Future<Output = Result<Response, GatewayError>>,
{
    f.await.unwrap_or_else(IntoResponse::into_response)
}

#[utoipa::path(get, path = "/spend/logs", tag = "admin", operation_id = "spend_logs", params(SpendQuery),
    responses((status = 200, description = "Ledger rows, newest first", body = Object), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn logs(State(app): State<Arc<App>>, Query(q): Query<SpendQuery>) -> Response {
    answered(async {
        let f = filter(&q)?;
        let rows = ledger(&app)?.spend.ledger(&f).await.map_err(store_failed)?;
        Ok(Json(rows.iter().map(row).collect::<Vec<_>>()).into_response())
    })
    .await
}

#[utoipa::path(get, path = "/global/spend", tag = "admin", operation_id = "global_spend", params(SpendQuery),
    responses((status = 200, description = "Total spend and the global budget", body = Object), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn global(State(app): State<Arc<App>>, Query(q): Query<SpendQuery>) -> Response {
    answered(async {
        let f = filter(&q)?;
        let total = ledger(&app)?.spend.total(&f).await.map_err(store_failed)?;
        Ok(Json(json!({
            "spend": total,
            "max_budget": app.config.governance.global_budget,
        }))
        .into_response())
    })
    .await
}

async fn grouped(app: &App, q: &SpendQuery, by: GroupBy) -> Result<Response, GatewayError> {
    let f = filter(q)?;
    let groups = ledger(app)?
        .spend
        .grouped(by, &f)
        .await
        .map_err(store_failed)?;
    let name = match by {
        GroupBy::Key => "api_key",
        GroupBy::Model => "model",
        GroupBy::Day => "date",
    };
    Ok(Json(
        groups
            .iter()
            .map(|g| {
                json!({
                    name: g.group,
                    "spend": g.cost_usd,
                    "requests": g.requests,
                    "total_tokens": g.tokens,
                })
            })
            .collect::<Vec<_>>(),
    )
    .into_response())
}

#[utoipa::path(get, path = "/global/spend/keys", tag = "admin", operation_id = "global_spend_keys", params(SpendQuery),
    responses((status = 200, description = "Spend by key", body = Object), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn by_key(State(app): State<Arc<App>>, Query(q): Query<SpendQuery>) -> Response {
    answered(grouped(&app, &q, GroupBy::Key)).await
}

#[utoipa::path(get, path = "/global/spend/models", tag = "admin", operation_id = "global_spend_models", params(SpendQuery),
    responses((status = 200, description = "Spend by model", body = Object), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn by_model(State(app): State<Arc<App>>, Query(q): Query<SpendQuery>) -> Response {
    answered(grouped(&app, &q, GroupBy::Model)).await
}

/// `group_by=day` (default), `key` or `model`.
#[utoipa::path(get, path = "/global/spend/report", tag = "admin", operation_id = "global_spend_report", params(SpendQuery),
    responses((status = 200, description = "Spend by day, key or model (`group_by`)", body = Object), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn report(State(app): State<Arc<App>>, Query(q): Query<SpendQuery>) -> Response {
    answered(async {
        let by = match q.group_by.as_deref() {
            None | Some("day" | "date") => GroupBy::Day,
            Some("key" | "api_key") => GroupBy::Key,
            Some("model") => GroupBy::Model,
            Some(_) => {
                return Err(GatewayError::BadRequest {
                    message: "group_by must be day, key or model".into(),
                    param: Some("group_by"),
                    code: None,
                })
            }
        };
        grouped(&app, &q, by).await
    })
    .await
}
