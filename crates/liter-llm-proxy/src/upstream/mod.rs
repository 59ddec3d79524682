//! The dispatcher: the only place that talks HTTP to providers. It owns the client
//! and per-attempt timeouts, so adapters never repeat them; the router
//! (`routing::execute`) decides on retries with the helpers here (backoff,
//! `Retry-After`).

pub mod stream;
pub mod token;
pub mod translate;
pub mod usage;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use liter_llm::providers::adapter::UpstreamRequest;
use liter_llm::providers::SharedAdapter;
use liter_llm::types::{ErrorBody, ErrorDetail};
use rand::Rng;
use tokio::time::Instant;

use crate::error::GatewayError;

/// Where and how to send one deployment's requests, computed once at start-up.
#[derive(Debug, Clone)]
pub struct Target {
    /// Client-facing model name, for messages.
    pub name: String,
    /// The wire protocol, and with it the translation.
    pub wire: Wire,
    pub timeout: Duration,
    /// For adapters that authenticate with a short-lived token (Vertex AI).
    pub token: Option<std::sync::Arc<token::TokenCache>>,
}

/// How requests are written for a provider.
#[derive(Debug, Clone)]
pub enum Wire {
    /// OpenAI's protocol: the client's bytes are forwarded (`model` rewritten).
    OpenAi(Box<OpenAiTarget>),
    /// Any other protocol: an adapter translates both ways.
    Adapter(SharedAdapter),
}

/// Where an OpenAI-compatible deployment lives.
#[derive(Debug, Clone)]
pub struct OpenAiTarget {
    pub chat_uri: Uri,
    /// `None` when the provider has no embeddings endpoint.
    pub embeddings_uri: Option<Uri>,
    /// Marked sensitive so it is never printed by `Debug` of a request.
    pub auth: Option<(HeaderName, HeaderValue)>,
}

/// Which OpenAI endpoint a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Embeddings,
}

pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// Base of the exponential backoff between retries.
const BACKOFF_BASE: Duration = Duration::from_millis(50);
/// No single wait between retries is longer than this.
const BACKOFF_CAP: Duration = Duration::from_secs(8);

impl Default for Upstream {
    fn default() -> Self {
        Self::new()
    }
}

impl Upstream {
    pub fn new() -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_keepalive(Some(Duration::from_secs(60)));
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(tls);
        Self { client }
    }

    fn build(&self, out: UpstreamRequest) -> Result<Request<Full<Bytes>>, GatewayError> {
        let mut req = Request::builder().method(Method::POST).uri(out.uri);
        let (mut has_type, mut has_accept) = (false, false);
        for (name, value) in out.headers {
            has_type |= name == header::CONTENT_TYPE;
            has_accept |= name == header::ACCEPT;
            req = req.header(name, value);
        }
        if !has_type {
            req = req.header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        if !has_accept {
            req = req.header(
                header::ACCEPT,
                HeaderValue::from_static("application/json, text/event-stream"),
            );
        }
        req.body(Full::new(out.body))
            .map_err(|e| GatewayError::Internal(format!("could not build upstream request: {e}")))
    }

    /// One attempt: send and wait for the response headers until `deadline`.
    /// Retries, fallbacks and cooldowns are the router's (`routing::execute`).
    pub async fn send_once(
        &self,
        target: &Target,
        out: UpstreamRequest,
        deadline: Instant,
    ) -> Result<Response<Incoming>, GatewayError> {
        let req = self.build(out)?;
        match tokio::time::timeout_at(deadline, self.client.request(req)).await {
            Err(_) => Err(GatewayError::Timeout(format!(
                "the upstream for model {:?} did not answer in time",
                target.name
            ))),
            Ok(Err(e)) => Err(GatewayError::BadGateway(format!(
                "could not reach the upstream for model {:?}: {}",
                target.name,
                error_chain(&e)
            ))),
            Ok(Ok(resp)) => Ok(resp),
        }
    }
}

/// Full-jitter exponential backoff for the given (0-based) attempt.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_CAP);
    let millis =
        rand::rng().random_range(ceiling.as_millis() as u64 / 2..=ceiling.as_millis() as u64);
    Duration::from_millis(millis)
}

/// `Retry-After` in seconds (the HTTP-date form is treated as absent).
pub(crate) fn retry_after(headers: &axum::http::HeaderMap) -> Option<Duration> {
    let secs: f64 = headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // Capped at an hour; callers never wait past their deadline anyway.
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Read a whole upstream body before `deadline`.
pub async fn read_body(
    body: Incoming,
    name: &str,
    deadline: Instant,
) -> Result<Bytes, GatewayError> {
    match tokio::time::timeout_at(deadline, body.collect()).await {
        Err(_) => Err(GatewayError::Timeout(format!(
            "the upstream for model {name:?} did not finish its answer in time"
        ))),
        Ok(Err(e)) => Err(GatewayError::BadGateway(format!(
            "the upstream for model {name:?} broke off its answer: {}",
            error_chain(&e)
        ))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// Turn a non-2xx upstream answer into the client's error: 4xx passes through with the
/// provider's message (OpenAI-shaped), 5xx becomes 502.
pub fn upstream_error(
    status: StatusCode,
    retry_after: Option<HeaderValue>,
    body: &[u8],
    name: &str,
) -> GatewayError {
    let detail = error_detail(body, status);
    if status.is_client_error() {
        GatewayError::Upstream {
            status,
            body: error_body(detail, body),
            retry_after,
        }
    } else {
        GatewayError::BadGateway(format!(
            "the upstream for model {name:?} failed with status {}: {}",
            status.as_u16(),
            detail.message
        ))
    }
}

/// The client's error body: OpenAI's four fields, plus any other field of the provider's
/// error object as it was sent (Azure's `innererror` with its content-filter results).
fn error_body(detail: ErrorDetail, raw: &[u8]) -> Bytes {
    let mut out = serde_json::to_value(ErrorBody { error: detail }).unwrap_or_default();
    let original: Option<serde_json::Value> = serde_json::from_slice(raw).ok();
    if let (Some(serde_json::Value::Object(extra)), Some(serde_json::Value::Object(error))) = (
        original.as_ref().and_then(|v| v.get("error")),
        out.get_mut("error"),
    ) {
        for (k, v) in extra {
            if !error.contains_key(k) {
                error.insert(k.clone(), v.clone());
            }
        }
    }
    Bytes::from(serde_json::to_vec(&out).unwrap_or_default())
}

/// The provider's error, read from OpenAI's shape or a bare string; else the raw text.
fn error_detail(body: &[u8], status: StatusCode) -> ErrorDetail {
    let default_type = if status == StatusCode::TOO_MANY_REQUESTS {
        "rate_limit_error"
    } else if status.is_client_error() {
        "invalid_request_error"
    } else {
        "api_error"
    };
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_string);
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    match error {
        Some(serde_json::Value::Object(obj)) => ErrorDetail {
            message: text(obj.get("message"))
                .unwrap_or_else(|| format!("upstream status {}", status.as_u16())),
            kind: text(obj.get("type")).unwrap_or_else(|| default_type.into()),
            param: text(obj.get("param")),
            code: obj.get("code").and_then(|c| match c {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }),
        },
        Some(serde_json::Value::String(s)) => ErrorDetail {
            message: s.clone(),
            kind: default_type.into(),
            param: None,
            code: None,
        },
        _ => {
            let raw = String::from_utf8_lossy(body);
            let mut message: String = raw.trim().chars().take(500).collect();
            if message.is_empty() {
                message = format!("upstream status {}", status.as_u16());
            }
            ErrorDetail {
                message,
                kind: default_type.into(),
                param: None,
                code: None,
            }
        }
    }
}

/// A finished JSON answer from upstream, passed through as bytes.
pub fn json_response(body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    // Room for what later stages add (request id, answering model and deployment, rate
    // limit, cost), so the map is not regrown per request.
    *resp.headers_mut() = axum::http::HeaderMap::with_capacity(16);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert!(backoff(0) <= BACKOFF_BASE);
        assert!(backoff(3) >= BACKOFF_BASE * 4);
        assert!(backoff(30) <= BACKOFF_CAP);
    }

    #[test]
    fn error_detail_shapes() {
        let d = error_detail(
            br#"{"error":{"message":"bad","type":"x","param":"p","code":7}}"#,
            StatusCode::BAD_REQUEST,
        );
        assert_eq!(
            (d.message.as_str(), d.kind.as_str(), d.code.as_deref()),
            ("bad", "x", Some("7"))
        );
        let d = error_detail(br#"{"error":"plain"}"#, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            (d.message.as_str(), d.kind.as_str()),
            ("plain", "rate_limit_error")
        );
        let d = error_detail(b"<html>oops</html>", StatusCode::BAD_GATEWAY);
        assert_eq!(d.message, "<html>oops</html>");
    }

    #[test]
    fn error_body_keeps_extra_fields() {
        let raw = br#"{"error":{"message":"filtered","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation"}}}"#;
        let body = error_body(error_detail(raw, StatusCode::BAD_REQUEST), raw);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "content_filter");
        assert_eq!(v["error"]["status"], 400);
        assert_eq!(
            v["error"]["innererror"]["code"],
            "ResponsibleAIPolicyViolation"
        );
    }
}
