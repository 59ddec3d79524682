//! Admin API, in LiteLLM's shapes so LiteLLM's tooling works against it: virtual keys
//! (`/key/generate`, `/key/info`, `/key/update`, `/key/delete`, `/key/list`) and spend
//! (`/spend/logs`, `/global/spend`, `/global/spend/keys`, `/global/spend/models`,
//! `/global/spend/report`), models (`/model/new`, `/model/update`,
//! `PATCH /model/{id}/update`, `/model/delete`,
//! `/model/info`, `/v1/model/info`, `/model_group/info`), and the running config
//! (`/config`, secrets masked).
//!
//! Master key only, as a whole: the server puts [`routes`] behind [`master_only`], a
//! route layer that answers 403 (OpenAI-shaped) to any other key, except on the routes
//! named in [`VIRTUAL_KEY_ROUTES`] (a virtual key reading its own `/key/info`). A new
//! admin route
//! is therefore master-only unless it is added to that list. Keys live in the key store
//! as SHA-256 hashes: the clear key is returned once, by `/key/generate`, and never
//! stored or logged. Every route needs the store (`general.database_url`, or the
//! default SQLite file beside the config file); without one they answer 503 naming it.

mod config;
mod keys;
mod model_info;
mod models;
mod spend;

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::apidoc::Access::Master;
use crate::apidoc::{route, Route};
use crate::app::App;
use crate::auth::Principal;
use crate::error::GatewayError;
use crate::store::{Stores, UnixMillis, DAY_MS};

/// The admin routes (`Access::Master`: the server puts them behind [`master_only`]).
pub fn routes() -> Vec<Route<Arc<App>>> {
    use keys::*;
    use spend::*;
    vec![
        route::<__path_generate, _, _, _>(Master, generate),
        route::<__path_info, _, _, _>(Master, info),
        route::<__path_update, _, _, _>(Master, update),
        route::<__path_delete, _, _, _>(Master, delete),
        route::<__path_list, _, _, _>(Master, list),
        route::<__path_logs, _, _, _>(Master, logs),
        route::<__path_global, _, _, _>(Master, global),
        route::<__path_by_key, _, _, _>(Master, by_key),
        route::<__path_by_model, _, _, _>(Master, by_model),
        route::<__path_report, _, _, _>(Master, report),
        route::<config::__path_running_config, _, _, _>(Master, config::running_config),
        route::<models::__path_new, _, _, _>(Master, models::new),
        route::<models::__path_update, _, _, _>(Master, models::update),
        route::<models::__path_patch, _, _, _>(Master, models::patch),
        route::<models::__path_delete, _, _, _>(Master, models::delete),
        route::<model_info::__path_info, _, _, _>(Master, model_info::info),
        route::<model_info::__path_info_v1, _, _, _>(Master, model_info::info_v1),
        route::<model_info::__path_group_info, _, _, _>(Master, model_info::group_info),
    ]
}

/// The admin routes a virtual key may call (each handler then limits it to its own
/// key, or to the models it may use). Every other admin route is the master key's alone.
pub const VIRTUAL_KEY_ROUTES: &[&str] = &[
    "/key/info",
    "/model/info",
    "/v1/model/info",
    "/model_group/info",
];

/// The route layer: the master key, or a virtual key on [`VIRTUAL_KEY_ROUTES`].
pub async fn master_only(req: Request, next: Next) -> Response {
    let allowed = match req.extensions().get::<Arc<Principal>>().map(|p| &**p) {
        Some(Principal::Master) => true,
        // A route layer runs only on a matched route, so the path is that route's.
        Some(Principal::Virtual(_)) => VIRTUAL_KEY_ROUTES.contains(&req.uri().path()),
        None => false,
    };
    if !allowed {
        return forbidden().into_response();
    }
    next.run(req).await
}

fn forbidden() -> GatewayError {
    GatewayError::Forbidden("this route needs the master key".into())
}

fn stores(app: &App) -> Result<&Stores, GatewayError> {
    app.governor.stores.as_ref().ok_or_else(|| {
        GatewayError::StoreUnavailable(
            "the admin API needs a database: set general.database_url (a postgres:// URL or an SQLite file path)".into(),
        )
    })
}

fn store_failed(e: crate::store::StoreError) -> GatewayError {
    tracing::error!(error = %e, "store error in the admin API");
    GatewayError::StoreUnavailable("the store is unavailable; try again later".into())
}

/// Unix milliseconds as RFC 3339 UTC (`2027-01-31T12:00:00Z`).
fn rfc3339(ms: UnixMillis) -> String {
    let days = ms.div_euclid(DAY_MS);
    let in_day = ms.rem_euclid(DAY_MS) / 1000;
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        crate::store::day_string(days),
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    )
}

/// A date or time query parameter; `end` makes a bare date include its whole day.
fn parse_time(field: &'static str, s: &str, end: bool) -> Result<UnixMillis, GatewayError> {
    let t = crate::store::parse_rfc3339(s).ok_or_else(|| GatewayError::BadRequest {
        message: format!("{field} must be a date (YYYY-MM-DD) or an RFC 3339 time"),
        param: Some(field),
        code: None,
    })?;
    Ok(if end && !s.contains('T') {
        t + DAY_MS
    } else {
        t
    })
}
