//! `GET /openapi.json`: the OpenAPI 3.1 document of every route this gateway serves,
//! built from the route table (`routes.rs`) and the handlers' `#[utoipa::path]`
//! descriptions, so it lists exactly what the router serves; made by its first request
//! and kept. Public, like the health routes.
//!
//! Here too: the document's frame ([`ApiDoc`]: info, the bearer security scheme, the
//! shared schemas) and the few response shapes that have no type of their own
//! elsewhere (the handlers build them with `json!`).

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{header, HeaderValue, Response};
use bytes::Bytes;
use liter_llm::types::{ErrorBody, ModelObject};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi, ToSchema};

use crate::apidoc::{self, Entry, BEARER};

/// `GET /v1/models`: `{"object": "list", "data": [...]}`.
#[derive(Serialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}

/// `{"status": ...}` of the health routes.
#[derive(Serialize, ToSchema)]
pub struct Status {
    /// `healthy`, `alive` or `draining`.
    pub status: &'static str,
}

/// `POST /v1/files`'s multipart form (for the document only: the handler reads the
/// parts as they stream).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FileUpload {
    /// The file's bytes (its part's filename is kept).
    #[schema(format = Binary, value_type = String)]
    pub file: Vec<u8>,
    /// What the file is for (`batch`, `fine-tune`, `assistants`, `user_data`, ...).
    pub purpose: String,
}

/// `DELETE /v1/files/{id}`'s answer.
#[derive(Serialize, ToSchema)]
pub struct Deleted {
    pub id: String,
    /// `file`, `response`.
    pub object: &'static str,
    pub deleted: bool,
}

/// The document's frame; the paths come from the route table.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "liter-llm",
        description = "An LLM gateway serving OpenAI's API (chat completions, embeddings, models, files) over many providers, with LiteLLM's admin API. Every OpenAI route is served under `/v1` and without it; both are listed."
    ),
    components(schemas(ErrorBody, ModelList, Status, FileUpload, Deleted)),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// The bearer scheme: `Authorization: Bearer <master key or virtual key>`.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut Document) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The master key or a virtual key: `Authorization: Bearer <key>`",
            ))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// The document of `routes`.
pub fn document(routes: &[Entry]) -> Document {
    let mut base = ApiDoc::openapi();
    base.info.version = env!("CARGO_PKG_VERSION").to_owned();
    apidoc::document(base, routes)
}

/// The document served: its routes, set once the table is complete (the route serving
/// it is in the table it describes), and its JSON, made by its first request.
#[derive(Default)]
pub struct Doc {
    routes: OnceLock<Vec<Entry>>,
    json: OnceLock<Bytes>,
}

pub type Served = Arc<Doc>;

impl Doc {
    /// The routes the document lists (the first call wins).
    pub fn set(&self, routes: Vec<Entry>) {
        let _ = self.routes.set(routes);
    }

    fn json(&self) -> Bytes {
        self.json
            .get_or_init(|| {
                let routes = self.routes.get().map_or(&[][..], Vec::as_slice);
                document(routes).to_json().unwrap_or_default().into()
            })
            .clone()
    }
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", operation_id = "openapi",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI 3.1 document of this gateway", body = Object)))]
pub async fn openapi(doc: Served) -> Response<Body> {
    let body = doc.json();
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
