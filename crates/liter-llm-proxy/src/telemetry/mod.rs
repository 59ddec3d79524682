//! Telemetry stage: request ids and the one log line per request.
//!
//! The line carries the request id, method, path (never the query), model,
//! deployment, status, latency and error kind. Keys and bodies are never logged.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ErrorKind;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Which model and deployment served a request; set by the handlers.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    pub model: String,
    pub deployment: String,
}

/// The request's id, put in request extensions for inner stages.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

fn new_id() -> HeaderValue {
    let id = format!("req_{:032x}", rand::random::<u128>());
    HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("req_unknown"))
}

/// Keep a client's `x-request-id` if it is short and printable, else make one.
fn request_id(req: &Request) -> HeaderValue {
    req.headers()
        .get(&REQUEST_ID)
        .filter(|v| v.len() <= 128 && v.as_bytes().iter().all(|b| b.is_ascii_graphic()))
        .cloned()
        .unwrap_or_else(new_id)
}

pub async fn request_log(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut resp = next.run(req).await;
    let status = resp.status().as_u16();
    let latency_us = start.elapsed().as_micros() as u64;
    let info = resp.extensions().get::<RouteInfo>();
    let error = resp.extensions().get::<ErrorKind>().map(|k| k.0);
    tracing::info!(
        target: "liter_llm::request",
        request_id = id.to_str().unwrap_or(""),
        %method,
        path,
        model = info.map(|i| i.model.as_str()),
        deployment = info.map(|i| i.deployment.as_str()),
        status,
        latency_ms = latency_us as f64 / 1000.0,
        error,
        "request"
    );
    resp.headers_mut().insert(REQUEST_ID, id);
    resp
}
