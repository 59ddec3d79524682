//! The files API's handlers, `/v1/files...` (and `/files...`): parse the request, call
//! `files`, render OpenAI's shapes. Behind the auth route layer like every API route.
//!
//! The upload route has its own body limit, `[files] max_file_bytes` plus
//! [`MULTIPART_SLACK`] for the part headers and the `purpose` part, instead of
//! `server.body_limit_bytes`: its body streams to the backend and is never buffered.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;

use crate::apidoc::Access::Key;
use crate::apidoc::{route, Route};
use crate::app::App;
use crate::auth::Principal;
use crate::error::GatewayError;
use crate::files::{self, Files, FilesError, Finished, ListRequest, Upload, MAX_LIST_LIMIT};
use crate::logtext::Clean;
use crate::request::BodyTimedOut;
use crate::store::FileOrder;

type Resp = Response<Body>;

/// What an upload's body may carry beyond the file itself: part headers, boundaries
/// and the `purpose` part.
pub const MULTIPART_SLACK: u64 = 64 * 1024;

/// The longest `purpose` part read.
const MAX_PURPOSE_BYTES: usize = 64;

/// The files routes (`/v1/...`; the table adds the unprefixed forms).
pub(super) fn routes(app: &App) -> Vec<Route<Arc<App>>> {
    let upload_limit = app.files.as_deref().map_or(app.config.body_limit, |f| {
        usize::try_from(upload_limit(f)).unwrap_or(usize::MAX)
    });
    vec![
        route::<__path_upload, _, _, _>(Key, upload)
            .map(|r| r.layer(DefaultBodyLimit::max(upload_limit))),
        route::<__path_list, _, _, _>(Key, list),
        route::<__path_retrieve, _, _, _>(Key, retrieve),
        route::<__path_delete, _, _, _>(Key, delete),
        route::<__path_content, _, _, _>(Key, content),
    ]
}

fn upload_limit(files: &Files) -> u64 {
    files.max_file_bytes().saturating_add(MULTIPART_SLACK)
}

fn enabled(app: &App) -> Result<&Files, GatewayError> {
    app.files.as_deref().ok_or_else(|| {
        GatewayError::NotFound(
            "the files API is not enabled on this gateway: its config has no [files] table".into(),
        )
    })
}

/// The caller's key id, `None` for the master key (who sees every file).
fn owner(principal: &Principal) -> Option<&str> {
    match principal {
        Principal::Master => None,
        Principal::Virtual(k) => Some(&k.id),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn render<T: serde::Serialize>(result: Result<T, GatewayError>) -> Resp {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /v1/files`: multipart `file` and `purpose`.
#[utoipa::path(post, path = "/v1/files", tag = "files", operation_id = "upload_file",
    request_body(content = super::openapi::FileUpload, content_type = "multipart/form-data"),
    responses((status = 200, description = "The stored file", body = crate::files::FileObject), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn upload(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    req: Request,
) -> Resp {
    render(upload_file(&app, &principal, req).await)
}

async fn upload_file(
    app: &App,
    principal: &Principal,
    req: Request,
) -> Result<files::FileObject, GatewayError> {
    let files = enabled(app)?;
    let announced = http_body::Body::size_hint(req.body()).lower();
    if announced > upload_limit(files) {
        return Err(FilesError::TooLarge {
            limit: files.max_file_bytes(),
        }
        .into());
    }
    let mut multipart = Multipart::from_request(req, &()).await.map_err(|e| {
        GatewayError::bad_request(format!(
            "expected a multipart/form-data body with the parts 'file' and 'purpose': {}",
            e.body_text()
        ))
    })?;
    let now = now_ms();
    let mut parts = Parts::default();
    if let Err(e) = parts.read(files, &mut multipart, now).await {
        if let Some((upload, _)) = parts.file.take() {
            upload.abort().await;
        }
        return Err(e);
    }
    let (purpose, upload, filename) = match (parts.purpose.take(), parts.file.take()) {
        (Some(purpose), Some((upload, filename))) => (purpose, upload, filename),
        (None, Some((upload, _))) => {
            upload.abort().await;
            return Err(missing("purpose"));
        }
        (_, None) => return Err(missing("file")),
    };
    let file = upload
        .finish(Finished {
            owner: owner(principal),
            filename,
            purpose,
            created_at: now,
        })
        .await?;
    tracing::info!(
        file = %file.id,
        filename = %Clean(&file.filename),
        bytes = file.bytes,
        purpose = %file.purpose,
        "file uploaded"
    );
    Ok(file)
}

fn missing(param: &'static str) -> GatewayError {
    GatewayError::BadRequest {
        message: format!("missing required parameter: '{param}'"),
        param: Some(param),
        code: Some("missing_required_parameter"),
    }
}

/// The parts of an upload read so far.
#[derive(Default)]
struct Parts {
    purpose: Option<String>,
    /// The upload and its filename.
    file: Option<(Upload, String)>,
}

impl Parts {
    async fn read(
        &mut self,
        files: &Files,
        multipart: &mut Multipart,
        now: i64,
    ) -> Result<(), GatewayError> {
        while let Some(mut field) = multipart
            .next_field()
            .await
            .map_err(|e| read_error(files, &e))?
        {
            match field.name() {
                Some("purpose") => {
                    let purpose = small_text(files, &mut field).await?;
                    files::check_purpose(&purpose)?;
                    self.purpose = Some(purpose);
                }
                Some("file") if self.file.is_some() => {
                    return Err(GatewayError::BadRequest {
                        message: "an upload carries one 'file' part".into(),
                        param: Some("file"),
                        code: None,
                    });
                }
                Some("file") => {
                    let filename = files::clean_filename(field.file_name());
                    let upload = files.begin_upload(now).await?;
                    let (upload, _) = self.file.insert((upload, filename));
                    while let Some(chunk) =
                        field.chunk().await.map_err(|e| read_error(files, &e))?
                    {
                        upload.write(chunk).await?;
                    }
                }
                other => {
                    return Err(GatewayError::bad_request(format!(
                        "unsupported parameter: '{}' (an upload takes 'file' and 'purpose')",
                        Clean(other.unwrap_or(""))
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A short text part, read whole (it is at most [`MAX_PURPOSE_BYTES`]).
async fn small_text(
    files: &Files,
    field: &mut axum::extract::multipart::Field<'_>,
) -> Result<String, GatewayError> {
    let mut text = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| read_error(files, &e))? {
        text.extend_from_slice(&chunk);
        if text.len() > MAX_PURPOSE_BYTES {
            return Err(FilesError::Invalid {
                message: format!("'purpose' must be one of {}", files::PURPOSES.join(", ")),
                param: "purpose",
            }
            .into());
        }
    }
    String::from_utf8(text).map_err(|_| GatewayError::BadRequest {
        message: "'purpose' is not UTF-8 text".into(),
        param: Some("purpose"),
        code: None,
    })
}

/// Why the multipart body could not be read, as the client's error.
fn read_error(files: &Files, e: &axum::extract::multipart::MultipartError) -> GatewayError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return FilesError::TooLarge {
            limit: files.max_file_bytes(),
        }
        .into();
    }
    if let Some(t) = BodyTimedOut::cause_of(e) {
        return GatewayError::RequestTimeout(format!(
            "{t} (server.body_timeout_secs); the upload was discarded"
        ));
    }
    GatewayError::bad_request(format!(
        "could not read the multipart body: {}",
        e.body_text()
    ))
}

/// `GET /v1/files`'s query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    purpose: Option<String>,
    limit: Option<String>,
    order: Option<String>,
    after: Option<String>,
}

fn list_request(params: ListParams) -> Result<ListRequest, GatewayError> {
    let invalid = |message: String, param: &'static str| GatewayError::BadRequest {
        message,
        param: Some(param),
        code: Some("invalid_value"),
    };
    let limit = match params.limit.as_deref() {
        None => MAX_LIST_LIMIT,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIST_LIMIT).contains(n))
            .ok_or_else(|| {
                invalid(
                    format!("limit must be an integer from 1 to {MAX_LIST_LIMIT}"),
                    "limit",
                )
            })?,
    };
    let order = match params.order.as_deref() {
        None | Some("desc") => FileOrder::Desc,
        Some("asc") => FileOrder::Asc,
        Some(_) => return Err(invalid("order must be 'asc' or 'desc'".into(), "order")),
    };
    Ok(ListRequest {
        purpose: params.purpose.filter(|p| !p.is_empty()),
        limit,
        order,
        after: params.after.filter(|a| !a.is_empty()),
    })
}

/// `GET /v1/files`.
#[utoipa::path(get, path = "/v1/files", tag = "files", operation_id = "list_files",
    params(ListParams),
    responses((status = 200, description = "A page of files, newest first by default", body = crate::files::FileList), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Resp {
    let result = async {
        let files = enabled(&app)?;
        let Query(params) = query
            .map_err(|e| GatewayError::bad_request(format!("invalid query: {}", e.body_text())))?;
        let request = list_request(params)?;
        Ok(files.list(owner(&principal), request).await?)
    };
    render(result.await)
}

/// `GET /v1/files/{id}`.
#[utoipa::path(get, path = "/v1/files/{id}", tag = "files", operation_id = "retrieve_file",
    params(("id" = String, Path, description = "The file id")),
    responses((status = 200, description = "The file", body = crate::files::FileObject), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn retrieve(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
) -> Resp {
    let result = async { Ok(enabled(&app)?.get(owner(&principal), &id).await?) };
    render(result.await)
}

/// `DELETE /v1/files/{id}`.
#[utoipa::path(delete, path = "/v1/files/{id}", tag = "files", operation_id = "delete_file",
    params(("id" = String, Path, description = "The file id")),
    responses((status = 200, description = "`{\"id\", \"object\": \"file\", \"deleted\": true}`", body = super::openapi::Deleted), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn delete(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
) -> Resp {
    let result = async {
        enabled(&app)?.delete(owner(&principal), &id).await?;
        tracing::info!(file = %Clean(&id), "file deleted");
        Ok(super::openapi::Deleted {
            id,
            object: "file",
            deleted: true,
        })
    };
    render(result.await)
}

/// `GET /v1/files/{id}/content`: the bytes, streamed from the backend.
#[utoipa::path(get, path = "/v1/files/{id}/content", tag = "files", operation_id = "file_content",
    params(("id" = String, Path, description = "The file id")),
    responses((status = 200, description = "The file's bytes", body = Vec<u8>, content_type = "application/octet-stream"), (status = "default", description = "An error in OpenAI's shape", body = liter_llm::types::ErrorBody)))]
pub async fn content(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
) -> Resp {
    let result =
        async { Ok::<_, GatewayError>(enabled(&app)?.content(owner(&principal), &id).await?) };
    match result.await {
        Ok(c) => {
            let mut resp = Response::new(Body::from_stream(c.body));
            let headers = resp.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(c.file.bytes));
            resp
        }
        Err(e) => e.into_response(),
    }
}
