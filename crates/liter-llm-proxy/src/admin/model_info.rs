//! `/model/info` (and `/v1/model/info`) and `/model_group/info`: the deployments and
//! model groups served, in LiteLLM's shapes. The master key sees every one; a virtual
//! key only those of the models it may use. A model of the model admin API has
//! `model_info.db_model: true`, one of the config file `false`. No key is shown.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::rfc3339;
use crate::app::App;
use crate::auth::Principal;
use crate::config::Deployment;
use crate::error::GatewayError;
use crate::reload::{Live, LiveHandle};

/// The running gateway behind a route (always there while it serves).
pub(super) fn live(handle: &LiveHandle) -> Result<Arc<Live>, GatewayError> {
    handle
        .0
        .upgrade()
        .ok_or_else(|| GatewayError::Internal("the gateway is shutting down".into()))
}

/// When each stored model was created and last updated (RFC 3339), by id; empty when
/// no deployment is stored.
async fn stored_times(app: &App) -> Result<HashMap<String, (String, String)>, GatewayError> {
    if !app.config.models.iter().any(|d| d.stored) {
        return Ok(HashMap::new());
    }
    let rows = app
        .models
        .list_models()
        .await
        .map_err(super::store_failed)?;
    Ok(rows
        .into_iter()
        .map(|r| (r.id, (rfc3339(r.created_at), rfc3339(r.updated_at))))
        .collect())
}

/// One deployment as `/model/info` lists it (`times`: a stored model's creation and
/// update times).
fn deployment_json(d: &Deployment, times: Option<&(String, String)>) -> Value {
    let mut params = Map::new();
    params.insert("model".into(), json!(d.provider_model));
    let optional = [
        ("api_base", d.base_url.as_ref().map(|b| json!(b))),
        ("rpm", d.rpm.map(|v| json!(v))),
        ("tpm", d.tpm.map(|v| json!(v))),
        (
            "stream_timeout",
            d.stream_timeout.map(|t| json!(t.as_secs_f64())),
        ),
        (
            "input_cost_per_token",
            d.input_cost_per_token.map(|v| json!(v)),
        ),
        (
            "output_cost_per_token",
            d.output_cost_per_token.map(|v| json!(v)),
        ),
        ("tags", (!d.tags.is_empty()).then(|| json!(d.tags))),
        ("max_retries", d.max_retries.map(|v| json!(v))),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            params.insert(k.into(), v);
        }
    }
    params.insert("timeout".into(), json!(d.timeout.as_secs_f64()));
    params.insert("weight".into(), json!(d.weight));
    params.insert("order".into(), json!(d.order));
    let mut info = json!({
        "id": d.id,
        "db_model": d.stored,
        "mode": d.mode.name(),
        "base_model": d.base_model,
        "max_tokens": d.max_tokens,
        "max_input_tokens": d.max_input_tokens,
        "max_output_tokens": d.max_output_tokens,
        "input_cost_per_token": d.input_cost_per_token,
        "output_cost_per_token": d.output_cost_per_token,
    });
    if let Some((created, updated)) = times {
        info["created_at"] = json!(created);
        info["updated_at"] = json!(updated);
    }
    json!({
        "model_name": d.name,
        "litellm_params": params,
        "model_info": info,
    })
}

/// The deployment `id` of `app`, as `/model/new` and `/model/update` answer it.
pub(super) async fn entry_json(app: &App, id: &str) -> Result<Value, GatewayError> {
    let Some(d) = app.config.models.iter().find(|d| d.id == id) else {
        return Ok(Value::Null);
    };
    let times = stored_times(app).await?;
    let mut v = deployment_json(d, times.get(id));
    v["model_id"] = json!(id);
    Ok(v)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InfoQuery {
    /// Only the deployment with this id.
    litellm_model_id: Option<String>,
}

#[utoipa::path(get, path = "/model/info", tag = "admin", operation_id = "model_info", params(InfoQuery),
    responses((status = 200, description = "The deployments served (a virtual key: of its models only), keys left out", body = Object), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn info(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    Query(q): Query<InfoQuery>,
) -> Response {
    let times = match stored_times(&app).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let data: Vec<Value> = app
        .config
        .models
        .iter()
        .filter(|d| principal.may_use(&d.name))
        .filter(|d| q.litellm_model_id.as_ref().is_none_or(|id| *id == d.id))
        .map(|d| deployment_json(d, times.get(&d.id)))
        .collect();
    Json(json!({ "data": data })).into_response()
}

#[utoipa::path(get, path = "/v1/model/info", tag = "admin", operation_id = "model_info_v1", params(InfoQuery),
    responses((status = 200, description = "As /model/info", body = Object), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn info_v1(
    state: State<Arc<App>>,
    principal: Extension<Arc<Principal>>,
    query: Query<InfoQuery>,
) -> Response {
    info(state, principal, query).await
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupQuery {
    /// Only this model group.
    model_group: Option<String>,
}

#[utoipa::path(get, path = "/model_group/info", tag = "admin", operation_id = "model_group_info", params(GroupQuery),
    responses((status = 200, description = "The model names served (a virtual key: those it may use), with their providers and limits", body = Object), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn group_info(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    Query(q): Query<GroupQuery>,
) -> Response {
    let data: Vec<Value> = app
        .routes
        .visible(|name| principal.may_use(name))
        .filter(|(name, _)| q.model_group.as_deref().is_none_or(|g| g == *name))
        .map(|(name, pool)| {
            let ds: Vec<&Deployment> = pool.deployments.iter().map(|d| &d.deployment).collect();
            let mut providers: Vec<&str> = ds.iter().map(|d| d.provider.name()).collect();
            providers.sort_unstable();
            providers.dedup();
            let sum = |f: &dyn Fn(&Deployment) -> Option<u64>| -> Option<u64> {
                ds.iter().map(|d| f(d)).sum::<Option<u64>>()
            };
            // LiteLLM reports the group's limits and mode from its deployments; here
            // the most any deployment takes, and the first deployment's mode.
            let most =
                |f: &dyn Fn(&Deployment) -> Option<u64>| ds.iter().filter_map(|d| f(d)).max();
            json!({
                "model_group": name,
                "providers": providers,
                "mode": ds.first().map_or("chat", |d| d.mode.name()),
                "max_input_tokens": most(&|d| d.max_input_tokens),
                "max_output_tokens": most(&|d| d.max_output_tokens),
                "input_cost_per_token": ds.first().and_then(|d| d.input_cost_per_token),
                "output_cost_per_token": ds.first().and_then(|d| d.output_cost_per_token),
                "rpm": sum(&|d| d.rpm.map(u64::from)),
                "tpm": sum(&|d| d.tpm),
            })
        })
        .collect();
    Json(json!({ "data": data })).into_response()
}
