//! `/model/new`, `/model/update`, `PATCH /model/{id}/update`, `/model/delete`:
//! LiteLLM's model admin API. A model
//! added here is kept in the model store (the database; without one, in memory until
//! a restart) and served after the config file's models: each change reads the file
//! again with the stored models, validates them as one config and swaps the gateway
//! (`reload::Live::edit`), so it is served at once, or refused with the config's
//! problem and nothing changes. A stored model never replaces a model of the file:
//! an id of the file is refused (400), and the file's models change only in the file.
//! Master key only.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::model_info::{entry_json, live};
use super::store_failed;
use crate::app::App;
use crate::config::{Issue, StoredEntry};
use crate::error::GatewayError;
use crate::reload::{LiveHandle, ReloadError};
use crate::request::{parse_json, RawBody};
use crate::store::{Clock, StoredModel, SystemClock};

/// `/model/new`'s body, and `/model/update`'s (whose `id`, or `model_info.id`, names
/// the model: LiteLLM's API takes the latter, its CLI sends the former).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelBody {
    #[serde(default)]
    id: Option<String>,
    model_name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    litellm_params: Option<Map<String, Value>>,
    #[serde(default)]
    #[schema(value_type = Object)]
    model_info: Option<Map<String, Value>>,
}

/// `/model/delete`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    id: String,
}

/// The `model_info` keys this API owns (not the model's own settings).
const OWN_INFO_KEYS: &[&str] = &[
    "id",
    "db_model",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
];

fn bad(message: String, param: &'static str, code: &'static str) -> GatewayError {
    GatewayError::BadRequest {
        message,
        param: Some(param),
        code: Some(code),
    }
}

fn issues(list: &[Issue]) -> String {
    list.iter()
        .map(|i| {
            if i.path.is_empty() {
                i.message.clone()
            } else {
                format!("{}: {}", i.path, i.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A refused change, in the API's terms.
fn refused(e: ReloadError) -> GatewayError {
    match e {
        ReloadError::Config(c) => bad(
            format!("the config with this model is not valid: {c}"),
            "litellm_params",
            "invalid_model",
        ),
        ReloadError::NoFile => bad(e.to_string(), "model_name", "no_config_file"),
        ReloadError::Store(s) => store_failed(s),
        other => GatewayError::Internal(other.to_string()),
    }
}

/// The body as stored (`model_info` without the keys this API owns) and its entry.
fn checked(body: &ModelBody) -> Result<(Value, crate::config::ModelEntry), GatewayError> {
    let name = body.model_name.as_deref().unwrap_or_default();
    if name.trim().is_empty() {
        return Err(bad(
            "model_name is required".into(),
            "model_name",
            "invalid_model",
        ));
    }
    let mut info = body.model_info.clone().unwrap_or_default();
    info.retain(|k, _| !OWN_INFO_KEYS.contains(&k.as_str()));
    let mut stored = json!({
        "model_name": name,
        "litellm_params": body.litellm_params.clone().unwrap_or_default(),
    });
    if !info.is_empty() {
        stored["model_info"] = Value::Object(info);
    }
    let entry = crate::config::stored_entry(&stored)
        .map_err(|list| bad(issues(&list), "litellm_params", "invalid_model"))?;
    Ok((stored, entry))
}

/// Validate the stored models `next`, persist `row` (or delete `gone`), and serve
/// them; nothing changes on an error.
async fn apply(
    handle: &LiveHandle,
    change: impl FnOnce(&App, &[StoredEntry]) -> Result<(Vec<StoredEntry>, Persist), GatewayError>,
) -> Result<Arc<App>, GatewayError> {
    let live = live(handle)?;
    let mut edit = live.edit().await;
    let app = edit.app();
    let (next, persist) = change(&app, edit.stored())?;
    let changes = edit.prepare(next).await.map_err(refused)?;
    match persist {
        Persist::Put(row) => app.models.put_model(&row).await.map_err(store_failed)?,
        Persist::Delete(id) => {
            app.models.delete_model(&id).await.map_err(store_failed)?;
        }
    }
    edit.commit();
    live.announce(crate::reload::sync::Change::Models);
    tracing::info!("model admin API: {}", changes.summary());
    Ok(live.app())
}

enum Persist {
    Put(StoredModel),
    Delete(String),
}

/// Refuses an id of the file's models: those change only in the file.
fn not_a_file_model(app: &App, id: &str) -> Result<(), GatewayError> {
    if app.config.models.iter().any(|d| d.id == id && !d.stored) {
        return Err(bad(
            format!("model {id:?} comes from the config file: change it there (then reload)"),
            "id",
            "model_in_config_file",
        ));
    }
    Ok(())
}

fn row(id: String, body: &Value, created_at: i64) -> StoredModel {
    let now = SystemClock.now_ms();
    StoredModel {
        id,
        model_name: body["model_name"].as_str().unwrap_or_default().to_string(),
        body: body.to_string(),
        created_at: if created_at == 0 { now } else { created_at },
        updated_at: now,
    }
}

/// The stored model `id` as it is in the store.
async fn stored_row(app: &App, id: &str) -> Result<StoredModel, GatewayError> {
    let rows = app.models.list_models().await.map_err(store_failed)?;
    rows.into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| GatewayError::NotFound(format!("no stored model with id {id:?}")))
}

#[utoipa::path(post, path = "/model/new", tag = "admin", operation_id = "model_new", request_body = ModelBody,
    responses((status = 200, description = "The new model, served at once", body = Object), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn new(Extension(handle): Extension<LiveHandle>, RawBody(raw): RawBody) -> Response {
    let run = async {
        let body: ModelBody = parse_json(&raw)?;
        let (stored, entry) = checked(&body)?;
        let wanted = wanted_id(&body);
        let mut made = None;
        let app = apply(&handle, |app, current| {
            let id = wanted.unwrap_or_else(new_id);
            not_a_file_model(app, &id)?;
            if current.iter().any(|s| s.id == id) {
                return Err(bad(
                    format!("a stored model has id {id:?}: use /model/update"),
                    "id",
                    "model_exists",
                ));
            }
            let mut next = current.to_vec();
            next.push(StoredEntry {
                id: id.clone(),
                entry,
            });
            made = Some(id.clone());
            Ok((next, Persist::Put(row(id, &stored, 0))))
        })
        .await?;
        let id = made.unwrap_or_default();
        Ok::<_, GatewayError>(Json(entry_json(&app, &id).await?).into_response())
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// The id a body names: `id`, else `model_info.id`.
fn wanted_id(body: &ModelBody) -> Option<String> {
    let info = body.model_info.as_ref().and_then(|i| i.get("id"));
    body.id
        .clone()
        .or_else(|| info.and_then(Value::as_str).map(str::to_owned))
}

/// A new model id: 16 random bytes in UUID form, as LiteLLM's ids look.
fn new_id() -> String {
    let b: [u8; 16] = rand::random();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[utoipa::path(post, path = "/model/update", tag = "admin", operation_id = "model_update", request_body = ModelBody,
    responses((status = 200, description = "The changed model, served at once", body = Object), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn update(
    State(app): State<Arc<App>>,
    Extension(handle): Extension<LiveHandle>,
    RawBody(raw): RawBody,
) -> Response {
    let run = async {
        let body: ModelBody = parse_json(&raw)?;
        let id = wanted_id(&body).ok_or_else(|| {
            bad(
                "id (or model_info.id) is required".into(),
                "model_info.id",
                "invalid_model",
            )
        })?;
        change(&app, &handle, id, body).await
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

#[utoipa::path(patch, path = "/model/{model_id}/update", tag = "admin", operation_id = "model_patch", request_body = ModelBody,
    params(("model_id" = String, Path, description = "The stored model's id")),
    responses((status = 200, description = "The changed model, served at once", body = Object), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
/// LiteLLM's partial update: only the fields given change; a `null` value, as LiteLLM
/// reads it, is not given (so a key left out or sent as `null` is kept).
pub async fn patch(
    State(app): State<Arc<App>>,
    Extension(handle): Extension<LiveHandle>,
    Path(id): Path<String>,
    RawBody(raw): RawBody,
) -> Response {
    let run = async {
        let mut body: ModelBody = parse_json(&raw)?;
        if wanted_id(&body).is_some_and(|given| given != id) {
            return Err(bad(
                "the body's id differs from the path's".into(),
                "model_info.id",
                "invalid_model",
            ));
        }
        for map in [&mut body.litellm_params, &mut body.model_info]
            .into_iter()
            .flatten()
        {
            map.retain(|_, v| !v.is_null());
        }
        change(&app, &handle, id, body).await
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// `body` merged into the stored model `id`: the given `model_name`, `litellm_params`
/// keys and `model_info` keys replace the stored ones, the rest is kept.
async fn change(
    app: &App,
    handle: &LiveHandle,
    id: String,
    body: ModelBody,
) -> Result<Response, GatewayError> {
    not_a_file_model(app, &id)?;
    let was = stored_row(app, &id).await?;
    let mut merged: ModelBody = serde_json::from_str(&was.body)
        .map_err(|e| GatewayError::Internal(format!("stored model {id:?} is unreadable: {e}")))?;
    if body.model_name.is_some() {
        merged.model_name = body.model_name;
    }
    for (into, from) in [
        (&mut merged.litellm_params, body.litellm_params),
        (&mut merged.model_info, body.model_info),
    ] {
        if let Some(from) = from {
            into.get_or_insert_with(Map::new).extend(from);
        }
    }
    let (stored, entry) = checked(&merged)?;
    let app = apply(handle, |_, current| {
        let mut next = current.to_vec();
        let Some(slot) = next.iter_mut().find(|s| s.id == id) else {
            return Err(GatewayError::NotFound(format!(
                "no stored model with id {id:?}"
            )));
        };
        slot.entry = entry;
        Ok((next, Persist::Put(row(id.clone(), &stored, was.created_at))))
    })
    .await?;
    Ok(Json(entry_json(&app, &id).await?).into_response())
}

#[utoipa::path(post, path = "/model/delete", tag = "admin", operation_id = "model_delete", request_body = DeleteBody,
    responses((status = 200, description = "The model is no longer served", body = Object), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn delete(
    State(app): State<Arc<App>>,
    Extension(handle): Extension<LiveHandle>,
    RawBody(raw): RawBody,
) -> Response {
    let run = async {
        let body: DeleteBody = parse_json(&raw)?;
        not_a_file_model(&app, &body.id)?;
        let id = body.id;
        apply(&handle, |_, current| {
            if !current.iter().any(|s| s.id == id) {
                return Err(GatewayError::NotFound(format!(
                    "no stored model with id {id:?}"
                )));
            }
            let next = current.iter().filter(|s| s.id != id).cloned().collect();
            Ok((next, Persist::Delete(id.clone())))
        })
        .await?;
        Ok::<_, GatewayError>(
            Json(json!({"message": format!("Model: {id} deleted successfully")})).into_response(),
        )
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}
