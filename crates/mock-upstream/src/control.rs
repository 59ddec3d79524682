//! The control API under `/__mock/`, for tests that drive the mock over HTTP (e.g. from Python).
//!
//! | method and path            | effect                                                    |
//! |----------------------------|-----------------------------------------------------------|
//! | `POST /__mock/faults`      | body `{"faults":[Fault,...]}`: append; answers `{"queued":N}` |
//! | `GET /__mock/faults`       | the queued faults as a JSON array                         |
//! | `DELETE /__mock/faults`    | clear the fault queue (and releases not used yet)         |
//! | `GET /__mock/requests`     | the recorded requests as a JSON array                     |
//! | `DELETE /__mock/requests`  | clear the recorded requests                               |
//! | `GET /__mock/served`       | the [`crate::Served`] totals                              |
//! | `POST /__mock/release`     | body `{"count":N}` (or empty: 1): let N held requests go on |
//! | `POST /__mock/otlp/v1/traces` | an OTLP/HTTP trace collector that takes every export: answers 200 with an empty `ExportTraceServiceResponse` (the bench points a gateway's `OTEL_EXPORTER_OTLP_ENDPOINT` at `/__mock/otlp`) |
//! | `GET /__mock/otlp`         | `{"exports":N,"bytes":M}`: trace exports taken so far      |
//!
//! Control requests are not recorded, need no API key and are never faulted. This module touches
//! only [`Shared`]'s public operations.

use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use crate::body::{self, MockBody};
use crate::faults::{Fault, FaultKind};
use crate::state::Shared;

/// Body of `POST /__mock/faults`.
#[derive(Deserialize)]
struct PushFaults {
    faults: Vec<Fault>,
}

/// Body of `POST /__mock/release`.
#[derive(Deserialize)]
struct Release {
    count: usize,
}

/// Answers a control request; `route` is the path after `/__mock/`.
pub(crate) async fn handle(
    shared: &Shared,
    method: &Method,
    route: &str,
    incoming: Incoming,
) -> Response<MockBody> {
    match (method, route) {
        (&Method::POST, "faults") => {
            let bytes = match incoming.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(err) => return problem(StatusCode::BAD_REQUEST, &err.to_string()),
            };
            let push: PushFaults = match serde_json::from_slice(&bytes) {
                Ok(push) => push,
                Err(err) => {
                    let message = format!("expected {{\"faults\":[...]}}: {err}");
                    return problem(StatusCode::BAD_REQUEST, &message);
                }
            };
            if let Some(status) = push.faults.iter().find_map(invalid_status) {
                let message = format!("invalid HTTP status {status} in a status fault");
                return problem(StatusCode::BAD_REQUEST, &message);
            }
            let queued = shared.push_faults(push.faults);
            body::json(StatusCode::OK, &json!({ "queued": queued }))
        }
        (&Method::GET, "faults") => body::json(StatusCode::OK, &shared.faults()),
        (&Method::DELETE, "faults") => {
            shared.clear_faults();
            body::json(StatusCode::OK, &json!({ "cleared": true }))
        }
        (&Method::GET, "requests") => body::json(StatusCode::OK, &shared.requests()),
        (&Method::DELETE, "requests") => {
            shared.clear_requests();
            body::json(StatusCode::OK, &json!({ "cleared": true }))
        }
        (&Method::GET, "served") => body::json(StatusCode::OK, &shared.served()),
        (&Method::POST, "release") => release(shared, incoming).await,
        (&Method::POST, "otlp/v1/traces") => match incoming.collect().await {
            Ok(collected) => {
                shared.add_otlp_export(collected.to_bytes().len());
                body::response(StatusCode::OK, "application/x-protobuf", MockBody::empty())
            }
            Err(err) => problem(StatusCode::BAD_REQUEST, &err.to_string()),
        },
        (&Method::GET, "otlp") => {
            let (exports, bytes) = shared.otlp_exports();
            body::json(
                StatusCode::OK,
                &json!({ "exports": exports, "bytes": bytes }),
            )
        }
        _ => problem(
            StatusCode::NOT_FOUND,
            &format!("no control endpoint {method} /__mock/{route}"),
        ),
    }
}

/// `POST /__mock/release`: lets `count` held requests go on (1 without a body).
async fn release(shared: &Shared, incoming: Incoming) -> Response<MockBody> {
    let bytes = match incoming.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => return problem(StatusCode::BAD_REQUEST, &err.to_string()),
    };
    let count = if bytes.is_empty() {
        1
    } else {
        match serde_json::from_slice::<Release>(&bytes) {
            Ok(release) => release.count,
            Err(err) => {
                let message = format!("expected {{\"count\":N}}: {err}");
                return problem(StatusCode::BAD_REQUEST, &message);
            }
        }
    };
    shared.release(count);
    body::json(StatusCode::OK, &json!({ "released": count }))
}

/// The status of a status fault whose code HTTP cannot carry.
fn invalid_status(fault: &Fault) -> Option<u16> {
    match fault.kind {
        FaultKind::Status { status, .. } if StatusCode::from_u16(status).is_err() => Some(status),
        _ => None,
    }
}

/// A control-API error: `{"error": message}`.
fn problem(status: StatusCode, message: &str) -> Response<MockBody> {
    body::json(status, &json!({ "error": message }))
}
