//! Admin API, in LiteLLM's shapes so LiteLLM's tooling works against it: virtual keys
//! (`/key/generate`, `/key/info`, `/key/update`, `/key/delete`, `/key/list`) and spend
//! (`/spend/logs`, `/global/spend`, `/global/spend/keys`, `/global/spend/models`,
//! `/global/spend/report`).
//!
//! Master key only (403, OpenAI-shaped, for any other key), except that a virtual key
//! may read its own `/key/info`. Keys live in the key store as SHA-256 hashes: the clear
//! key is returned once, by `/key/generate`, and never stored or logged. Every route
//! needs the database (`general.database_url`); without one they answer 503 naming it.

mod keys;
mod spend;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::auth::Principal;
use crate::error::GatewayError;
use crate::server::App;
use crate::store::{Stores, UnixMillis, DAY_MS};

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/key/generate", post(keys::generate))
        .route("/key/info", get(keys::info))
        .route("/key/update", post(keys::update))
        .route("/key/delete", post(keys::delete))
        .route("/key/list", get(keys::list))
        .route("/spend/logs", get(spend::logs))
        .route("/global/spend", get(spend::global))
        .route("/global/spend/keys", get(spend::by_key))
        .route("/global/spend/models", get(spend::by_model))
        .route("/global/spend/report", get(spend::report))
}

fn forbidden() -> GatewayError {
    GatewayError::Forbidden("this route needs the master key".into())
}

/// The master key, or 403.
fn master_only(principal: &Principal) -> Result<(), GatewayError> {
    match principal {
        Principal::Master => Ok(()),
        Principal::Virtual(_) => Err(forbidden()),
    }
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
