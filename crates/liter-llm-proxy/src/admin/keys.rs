//! `/key/*`: virtual keys created, read, changed and deleted at runtime.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use crate::reload::LiveHandle;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{rfc3339, store_failed, stores};
use crate::app::App;
use crate::auth::{key_hash, Principal};
use crate::error::GatewayError;
use crate::request::{parse_json, RawBody};
use crate::store::{Clock, SystemClock};
use crate::store::{KeyUpdate, NewKey, Period, StoreError, StoredKey, UniqueField};

/// `/key/generate`'s body (LiteLLM's fields; `expires_at` is ours).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateBody {
    #[serde(default)]
    models: Vec<String>,
    max_budget: Option<f64>,
    rpm_limit: Option<u64>,
    tpm_limit: Option<u64>,
    budget_duration: Option<String>,
    /// How long the key lives ("30d", "1h"; absent or null: forever).
    duration: Option<String>,
    /// RFC 3339 expiry (instead of `duration`).
    expires_at: Option<String>,
    key_alias: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    blocked: Option<bool>,
    /// Added to each of the key's requests, for tag routing (`[router]
    /// enable_tag_filtering`).
    #[serde(default)]
    tags: Option<Vec<String>>,
}

fn bad(message: String, param: &'static str) -> GatewayError {
    GatewayError::BadRequest {
        message,
        param: Some(param),
        code: None,
    }
}

/// A key's tags keep the bounds of the config's tags.
fn check_tags(tags: Option<&[String]>) -> Result<(), GatewayError> {
    let Some(tags) = tags else {
        return Ok(());
    };
    if tags.len() > crate::config::MAX_TAGS {
        let max = crate::config::MAX_TAGS;
        return Err(bad(format!("at most {max} tags"), "tags"));
    }
    match tags.iter().find_map(|t| crate::config::tag_problem(t)) {
        Some(why) => Err(bad(why, "tags")),
        None => Ok(()),
    }
}

fn period(field: &'static str, s: &str) -> Result<Period, GatewayError> {
    s.parse::<Period>().map_err(|e| bad(e.to_string(), field))
}

fn check_limits(
    max_budget: Option<f64>,
    rpm: Option<u64>,
    tpm: Option<u64>,
) -> Result<(), GatewayError> {
    if max_budget.is_some_and(|b| !b.is_finite() || b < 0.0) {
        return Err(bad(
            "max_budget must be a number of USD, 0 or more".into(),
            "max_budget",
        ));
    }
    if rpm == Some(0) {
        return Err(bad("rpm_limit must be greater than 0".into(), "rpm_limit"));
    }
    if tpm == Some(0) {
        return Err(bad("tpm_limit must be greater than 0".into(), "tpm_limit"));
    }
    Ok(())
}

fn expiry(duration: Option<&str>, expires_at: Option<&str>) -> Result<Option<i64>, GatewayError> {
    match (duration, expires_at) {
        (Some(_), Some(_)) => Err(bad(
            "give duration or expires_at, not both".into(),
            "duration",
        )),
        (Some("permanent"), None) => Ok(None),
        (Some(d), None) => Ok(Some(SystemClock.now_ms() + period("duration", d)?.millis())),
        (None, Some(t)) => Ok(Some(super::parse_time("expires_at", t, false)?)),
        (None, None) => Ok(None),
    }
}

fn conflict(e: StoreError) -> GatewayError {
    match e {
        StoreError::Conflict(UniqueField::KeyAlias) => {
            bad("another key already has this key_alias".into(), "key_alias")
        }
        StoreError::Conflict(UniqueField::KeyHash) => {
            GatewayError::Internal("generated key collided; try again".into())
        }
        StoreError::InvalidInput(m) => GatewayError::bad_request(m),
        other => store_failed(other),
    }
}

/// A key as the admin API shows it (never the secret).
fn view(k: &StoredKey, spend: f64) -> Value {
    json!({
        "token": k.id,
        "key_alias": k.key_alias,
        "key_name": k.key_alias,
        "models": k.models,
        "max_budget": k.max_budget,
        "budget_duration": k.budget_duration.map(|p| p.to_string()),
        "rpm_limit": k.rpm_limit,
        "tpm_limit": k.tpm_limit,
        "expires": k.expires_at.map(rfc3339),
        "metadata": k.metadata,
        "blocked": k.blocked,
        "tags": k.tags,
        "created_at": rfc3339(k.created_at),
        "spend": spend,
    })
}

fn new_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sk-{hex}")
}

/// The key's spend in its current budget window (for its lifetime without one).
/// Tells the other gateways sharing Redis to forget the keys they cached.
fn announce_keys(live: &LiveHandle) {
    if let Some(live) = live.0.upgrade() {
        live.announce(crate::reload::sync::Change::Keys);
    }
}

async fn key_spend(app: &App, id: &str) -> f64 {
    match stores(app) {
        Ok(s) => s
            .spend
            .spent(&crate::store::BudgetScope::key(id, 0.0, None).scope)
            .await
            .map_or(0.0, |s| s.spent_usd),
        Err(_) => 0.0,
    }
}

#[utoipa::path(post, path = "/key/generate", tag = "admin", operation_id = "key_generate", request_body = GenerateBody,
    responses((status = 200, description = "The new key (its clear value, shown only here) and its settings", body = Object), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn generate(State(app): State<Arc<App>>, RawBody(raw): RawBody) -> Response {
    let run = async {
        let body: GenerateBody = parse_json(&raw)?;
        let stores = stores(&app)?;
        check_limits(body.max_budget, body.rpm_limit, body.tpm_limit)?;
        check_tags(body.tags.as_deref())?;
        let budget_duration = body
            .budget_duration
            .as_deref()
            .map(|d| period("budget_duration", d))
            .transpose()?;
        let expires_at = expiry(body.duration.as_deref(), body.expires_at.as_deref())?;
        let secret = new_secret();
        let stored = stores
            .keys
            .create(NewKey {
                key_hash: key_hash(&secret),
                key_alias: body.key_alias.filter(|a| !a.is_empty()),
                models: body.models,
                max_budget: body.max_budget,
                rpm_limit: body.rpm_limit,
                tpm_limit: body.tpm_limit,
                budget_duration,
                expires_at,
                metadata: body.metadata.unwrap_or_else(|| json!({})),
                blocked: body.blocked.unwrap_or(false),
                tags: body.tags.unwrap_or_default(),
            })
            .await
            .map_err(conflict)?;
        let mut out = view(&stored, 0.0);
        out["key"] = Value::String(secret);
        Ok::<_, GatewayError>(Json(out).into_response())
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// A key named by its clear value (`sk-...`) or its token (id).
async fn lookup(app: &App, key: &str) -> Result<Option<StoredKey>, GatewayError> {
    let s = stores(app)?;
    let by_hash = s
        .keys
        .find_by_hash(&key_hash(key))
        .await
        .map_err(store_failed)?;
    if by_hash.is_some() {
        return Ok(by_hash);
    }
    s.keys.get(key).await.map_err(store_failed)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InfoQuery {
    key: Option<String>,
}

#[utoipa::path(get, path = "/key/info", tag = "admin", operation_id = "key_info", params(InfoQuery),
    responses((status = 200, description = "The key's settings and spend (a virtual key: its own only)", body = Object), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn info(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    Query(q): Query<InfoQuery>,
) -> Response {
    let run = async {
        let own = match &*principal {
            Principal::Master => None,
            Principal::Virtual(k) => Some(k),
        };
        match (q.key.as_deref(), own) {
            (None, None) => Err(bad("key is required".into(), "key")),
            // A virtual key reads itself: asked without ?key, or with its own.
            (asked, Some(k)) => {
                if let Some(asked) = asked {
                    let same = asked == k.id
                        || app
                            .keys
                            .find(asked)
                            .is_some_and(|p| matches!(&*p, Principal::Virtual(v) if v.id == k.id))
                        || lookup(&app, asked).await?.is_some_and(|s| s.id == k.id);
                    if !same {
                        return Err(super::forbidden());
                    }
                }
                let info = match lookup(&app, &k.id).await {
                    Ok(Some(stored)) => view(&stored, key_spend(&app, &k.id).await),
                    _ => json!({
                        "token": k.id,
                        "key_alias": k.label.as_str(),
                        "models": k.models.as_ref().map(|m| { let mut v: Vec<_> = m.iter().cloned().collect(); v.sort(); v }).unwrap_or_default(),
                        "max_budget": k.limits.budget_limit,
                        "budget_duration": k.limits.budget_period.map(|p| p.to_string()),
                        "rpm_limit": k.limits.rate.rpm,
                        "tpm_limit": k.limits.rate.tpm,
                        "expires": k.limits.expires_at.map(rfc3339),
                        "tags": k.tags,
                        "spend": key_spend(&app, &k.id).await,
                    }),
                };
                Ok(Json(json!({"key": k.id, "info": info})).into_response())
            }
            (Some(asked), None) => match lookup(&app, asked).await? {
                Some(stored) => {
                    let spend = key_spend(&app, &stored.id).await;
                    Ok(
                        Json(json!({"key": stored.id, "info": view(&stored, spend)}))
                            .into_response(),
                    )
                }
                None => Err(GatewayError::NotFound("no such key".into())),
            },
        }
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// `/key/update`'s body: `key` (clear or token) and the fields to change; `null`
/// clears a nullable field.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    key: String,
    models: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    max_budget: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    rpm_limit: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    tpm_limit: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    budget_duration: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    duration: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    key_alias: Option<Option<String>>,
    metadata: Option<Value>,
    blocked: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    tags: Option<Option<Vec<String>>>,
}

/// Present-and-null is `Some(None)`; absent is `None` (with `#[serde(default)]`).
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[utoipa::path(post, path = "/key/update", tag = "admin", operation_id = "key_update", request_body = UpdateBody,
    responses((status = 200, description = "The key's new settings", body = Object), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn update(
    State(app): State<Arc<App>>,
    Extension(live): Extension<LiveHandle>,
    RawBody(raw): RawBody,
) -> Response {
    let run = async {
        let body: UpdateBody = parse_json(&raw)?;
        let s = stores(&app)?;
        let Some(existing) = lookup(&app, &body.key).await? else {
            return Err(GatewayError::NotFound("no such key".into()));
        };
        check_limits(
            body.max_budget.flatten(),
            body.rpm_limit.flatten(),
            body.tpm_limit.flatten(),
        )?;
        check_tags(body.tags.as_ref().and_then(|t| t.as_deref()))?;
        let expires_at = match (&body.duration, &body.expires_at) {
            (None, None) => None,
            (Some(None), _) | (_, Some(None)) => Some(None),
            (d, e) => Some(expiry(
                d.as_ref().and_then(|d| d.as_deref()),
                e.as_ref().and_then(|e| e.as_deref()),
            )?),
        };
        let update = KeyUpdate {
            key_hash: None,
            key_alias: body.key_alias,
            models: body.models,
            max_budget: body.max_budget,
            rpm_limit: body.rpm_limit,
            tpm_limit: body.tpm_limit,
            budget_duration: body
                .budget_duration
                .map(|d| d.map(|d| period("budget_duration", &d)).transpose())
                .transpose()?,
            expires_at,
            metadata: body.metadata,
            blocked: body.blocked,
            tags: body.tags.map(Option::unwrap_or_default),
        };
        let updated = s
            .keys
            .update(&existing.id, update)
            .await
            .map_err(conflict)?;
        app.keys.forget_runtime();
        announce_keys(&live);
        match updated {
            Some(k) => {
                let spend = key_spend(&app, &k.id).await;
                Ok(Json(view(&k, spend)).into_response())
            }
            None => Err(GatewayError::NotFound("no such key".into())),
        }
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    key_aliases: Vec<String>,
}

#[utoipa::path(post, path = "/key/delete", tag = "admin", operation_id = "key_delete", request_body = DeleteBody,
    responses((status = 200, description = "The deleted keys", body = Object), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn delete(
    State(app): State<Arc<App>>,
    Extension(live): Extension<LiveHandle>,
    RawBody(raw): RawBody,
) -> Response {
    let run = async {
        let body: DeleteBody = parse_json(&raw)?;
        let s = stores(&app)?;
        if body.keys.is_empty() && body.key_aliases.is_empty() {
            return Err(bad("give keys or key_aliases to delete".into(), "keys"));
        }
        let mut ids = Vec::new();
        for k in &body.keys {
            match lookup(&app, k).await? {
                Some(found) => ids.push(found.id),
                None => return Err(bad("no such key in keys".into(), "keys")),
            }
        }
        if !body.key_aliases.is_empty() {
            let all = s.keys.list(0, u64::MAX).await.map_err(store_failed)?;
            for alias in &body.key_aliases {
                match all
                    .iter()
                    .find(|k| k.key_alias.as_deref() == Some(alias.as_str()))
                {
                    Some(found) => ids.push(found.id.clone()),
                    None => return Err(bad(format!("no key with alias {alias:?}"), "key_aliases")),
                }
            }
        }
        let mut deleted = Vec::new();
        for id in ids {
            if s.keys.delete(&id).await.map_err(store_failed)? {
                deleted.push(id);
            }
        }
        app.keys.forget_runtime();
        announce_keys(&live);
        Ok::<_, GatewayError>(Json(json!({"deleted_keys": deleted})).into_response())
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    page: Option<u64>,
    size: Option<u64>,
    #[serde(default)]
    return_full_object: bool,
}

#[utoipa::path(get, path = "/key/list", tag = "admin", operation_id = "key_list", params(ListQuery),
    responses((status = 200, description = "A page of keys", body = Object), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn list(State(app): State<Arc<App>>, Query(q): Query<ListQuery>) -> Response {
    let run = async {
        let s = stores(&app)?;
        let size = q.size.unwrap_or(10).clamp(1, 1000);
        let page = q.page.unwrap_or(1).max(1);
        let all = s.keys.list(0, u64::MAX).await.map_err(store_failed)?;
        let total = all.len() as u64;
        let start = ((page - 1) * size).min(total) as usize;
        let end = (start + size as usize).min(all.len());
        let mut keys = Vec::new();
        for k in &all[start..end] {
            keys.push(if q.return_full_object {
                view(k, key_spend(&app, &k.id).await)
            } else {
                Value::String(k.id.clone())
            });
        }
        Ok::<_, GatewayError>(
            Json(json!({
                "keys": keys,
                "total_count": total,
                "current_page": page,
                "total_pages": total.div_ceil(size),
            }))
            .into_response(),
        )
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}
