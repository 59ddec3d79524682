//! `GET /config`: the running config, as the file was parsed (a LiteLLM file as its
//! `liter-llm-proxy.toml` twin, with the stored models of the model admin API after
//! the file's), every secret masked (`config::Inspection::masked`, the same masking
//! as `check-config`). Master key only.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::app::App;
use crate::error::GatewayError;

#[utoipa::path(get, path = "/config", tag = "admin", operation_id = "running_config",
    responses((status = 200, description = "The running config, every secret masked", body = Object), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn running_config(State(app): State<Arc<App>>) -> Response {
    match &app.view {
        Some(view) => Json(&**view).into_response(),
        None => GatewayError::NotFound(
            "the running config did not come from a file, so there is none to show".into(),
        )
        .into_response(),
    }
}
