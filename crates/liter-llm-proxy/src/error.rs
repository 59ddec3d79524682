//! The gateway's one error type, rendered in exactly one place as OpenAI's error JSON
//! (`{"error":{"message","type","param","code"}}`) with the right status and headers
//! (`Retry-After`, `x-ratelimit-*`), or, for a client of another wire ([`Wire`]), in
//! that wire's shape (Anthropic's `{"type":"error","error":{"type","message"}}`, see
//! [`anthropic_body`]). Stages keep their own small error types
//! (`governance::Refused`, `upstream::TargetError`, `config::ConfigError`, ...) and
//! convert into this one; nothing else renders an error.
//!
//! Messages never carry a key or secret: callers pass model names, statuses and
//! upstream messages only. A leaf of the crate: it imports no other module of it.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use liter_llm::types::{ErrorBody, ErrorDetail};

/// The wire protocol a client speaks at the front door, which decides how its errors
/// (and stream error events) are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wire {
    /// OpenAI's chat completions and embeddings.
    #[default]
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The request is malformed (400).
    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<&'static str>,
        code: Option<&'static str>,
    },
    /// No or wrong credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The key may not use this model (403).
    #[error("key not allowed to access model {model:?}")]
    ModelNotAllowed { model: String },
    /// No model by that name (404).
    #[error("the model {model:?} does not exist")]
    ModelNotFound { model: String },
    /// No such route (404) or method (405).
    #[error("{message}")]
    Route { status: StatusCode, message: String },
    /// The request body stalled past `server.body_timeout_secs` (408).
    #[error("{0}")]
    RequestTimeout(String),
    /// Body over `server.body_limit_bytes` (413).
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// A limit was hit (429, with `Retry-After` and, for a key's or the gateway's
    /// limits, `x-ratelimit-*`).
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
        limits: Option<RateHeaders>,
    },
    /// The caller may not use this route (403), e.g. an admin route with a virtual key.
    #[error("{0}")]
    Forbidden(String),
    /// The named thing does not exist (404), e.g. an unknown key in the admin API.
    #[error("{0}")]
    NotFound(String),
    /// A thing a request parameter names does not exist (404), with OpenAI's `param`
    /// and `code` (an unknown `previous_response_id`).
    #[error("{message}")]
    Missing {
        message: String,
        param: &'static str,
        code: &'static str,
    },
    /// A budget would be crossed (402).
    #[error("{0}")]
    BudgetExceeded(String),
    /// The store behind budgets or keys failed (503).
    #[error("{0}")]
    StoreUnavailable(String),
    /// No deployment can take the request now (503, `Retry-After` when known).
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after: Option<std::time::Duration>,
    },
    /// An upstream answered with an error we pass on (4xx, with the provider's message).
    #[error("upstream error {status}")]
    Upstream {
        status: StatusCode,
        body: Bytes,
        retry_after: Option<HeaderValue>,
    },
    /// The upstream failed (5xx) or could not be reached (502).
    #[error("{0}")]
    BadGateway(String),
    /// A timeout (504).
    #[error("{0}")]
    Timeout(String),
    /// A bug or an unexpected state (500).
    #[error("{0}")]
    Internal(String),
}

impl GatewayError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        GatewayError::BadRequest {
            message: message.into(),
            param: None,
            code: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            GatewayError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            GatewayError::ModelNotAllowed { .. } => StatusCode::FORBIDDEN,
            GatewayError::ModelNotFound { .. } => StatusCode::NOT_FOUND,
            GatewayError::Route { status, .. } => *status,
            GatewayError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            GatewayError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::Forbidden(_) => StatusCode::FORBIDDEN,
            GatewayError::NotFound(_) | GatewayError::Missing { .. } => StatusCode::NOT_FOUND,
            GatewayError::BudgetExceeded(_) => StatusCode::PAYMENT_REQUIRED,
            GatewayError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Upstream { status, .. } => *status,
            GatewayError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            GatewayError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A low-cardinality label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewayError::BadRequest { .. } => "bad_request",
            GatewayError::Unauthorized(_) => "unauthorized",
            GatewayError::ModelNotAllowed { .. } => "model_not_allowed",
            GatewayError::ModelNotFound { .. } => "model_not_found",
            GatewayError::Route { .. } => "route",
            GatewayError::RequestTimeout(_) => "request_timeout",
            GatewayError::PayloadTooLarge { .. } => "payload_too_large",
            GatewayError::RateLimited { .. } => "rate_limited",
            GatewayError::Forbidden(_) => "forbidden",
            GatewayError::NotFound(_) | GatewayError::Missing { .. } => "not_found",
            GatewayError::BudgetExceeded(_) => "budget_exceeded",
            GatewayError::StoreUnavailable(_) => "store_unavailable",
            GatewayError::Unavailable { .. } => "unavailable",
            GatewayError::Upstream { .. } => "upstream_client_error",
            GatewayError::BadGateway(_) => "bad_gateway",
            GatewayError::Timeout(_) => "timeout",
            GatewayError::Internal(_) => "internal",
        }
    }

    /// OpenAI's `type` and `code` for this error.
    fn type_and_code(&self) -> (&'static str, Option<&'static str>) {
        match self {
            GatewayError::BadRequest { code, .. } => ("invalid_request_error", *code),
            GatewayError::Unauthorized(_) => ("invalid_request_error", Some("invalid_api_key")),
            GatewayError::ModelNotAllowed { .. } => ("permission_error", Some("model_not_allowed")),
            GatewayError::ModelNotFound { .. } => {
                ("invalid_request_error", Some("model_not_found"))
            }
            GatewayError::Route { status, .. } if *status == StatusCode::METHOD_NOT_ALLOWED => {
                ("invalid_request_error", Some("method_not_allowed"))
            }
            GatewayError::Route { .. } => ("invalid_request_error", Some("unknown_url")),
            GatewayError::RequestTimeout(_) => ("invalid_request_error", Some("request_timeout")),
            GatewayError::PayloadTooLarge { .. } => {
                ("invalid_request_error", Some("request_too_large"))
            }
            GatewayError::RateLimited { .. } => ("rate_limit_error", Some("rate_limit_exceeded")),
            GatewayError::Forbidden(_) => ("permission_error", Some("forbidden")),
            GatewayError::NotFound(_) => ("invalid_request_error", Some("not_found")),
            GatewayError::Missing { code, .. } => ("invalid_request_error", Some(*code)),
            GatewayError::BudgetExceeded(_) => ("budget_exceeded", Some("budget_exceeded")),
            GatewayError::StoreUnavailable(_) => ("api_error", Some("store_unavailable")),
            GatewayError::Unavailable { .. } => ("api_error", Some("no_deployment_available")),
            GatewayError::Upstream { .. } => ("invalid_request_error", None),
            GatewayError::BadGateway(_) => ("api_error", Some("upstream_error")),
            GatewayError::Timeout(_) => ("timeout_error", Some("timeout")),
            GatewayError::Internal(_) => ("api_error", Some("internal_error")),
        }
    }

    /// The error as OpenAI's JSON body.
    pub fn body(&self) -> ErrorBody {
        let (kind, code) = self.type_and_code();
        let param = match self {
            GatewayError::BadRequest { param, .. } => param.map(str::to_string),
            GatewayError::Missing { param, .. } => Some((*param).to_string()),
            GatewayError::ModelNotAllowed { .. } | GatewayError::ModelNotFound { .. } => {
                Some("model".to_string())
            }
            _ => None,
        };
        ErrorBody {
            error: ErrorDetail {
                message: self.to_string(),
                kind: kind.to_string(),
                param,
                code: code.map(str::to_string),
            },
        }
    }

    /// The body as bytes, for the response and for SSE error events.
    pub fn body_bytes(&self) -> Bytes {
        match self {
            GatewayError::Upstream { body, .. } => body.clone(),
            other => Bytes::from(serde_json::to_vec(&other.body()).unwrap_or_default()),
        }
    }

    /// The body in `wire`'s shape.
    pub fn body_in(&self, wire: Wire) -> Bytes {
        match wire {
            Wire::OpenAi => self.body_bytes(),
            Wire::Anthropic => anthropic_body(self.status(), &self.body_bytes()),
        }
    }
}

/// Every error `type` Anthropic documents.
const ANTHROPIC_TYPES: &[&str] = &[
    "invalid_request_error",
    "authentication_error",
    "billing_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "timeout_error",
    "overloaded_error",
];

/// Anthropic's error `type` for an error of `status` whose OpenAI-shaped `type` is
/// `openai_type`. The status decides where Anthropic's SDKs raise a typed exception
/// for it (401, 402, 403, 404, 413, 429); otherwise a type that is already one of
/// Anthropic's is kept (an Anthropic upstream's `overloaded_error`), else the status
/// decides (504 `timeout_error`, 5xx `api_error`, other 4xx `invalid_request_error`).
pub fn anthropic_type(status: StatusCode, openai_type: &str) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        s => match ANTHROPIC_TYPES.iter().find(|t| **t == openai_type) {
            Some(t) => t,
            None if s == 504 => "timeout_error",
            None if s == 529 => "overloaded_error",
            None if s >= 500 => "api_error",
            None => "invalid_request_error",
        },
    }
}

/// An OpenAI-shaped error body (`{"error":{"message","type",...}}`, as [`GatewayError`]
/// renders it) written in Anthropic's shape: `{"type":"error","error":{"type",
/// "message"}}`. A body of another shape keeps its text as the message.
pub fn anthropic_body(status: StatusCode, openai: &[u8]) -> Bytes {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(openai).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let text = |key: &str| error.and_then(|e| e.get(key)).and_then(|v| v.as_str());
    let message = text("message").map_or_else(
        || String::from_utf8_lossy(openai).chars().take(500).collect(),
        str::to_string,
    );
    let out = serde_json::json!({
        "type": "error",
        "error": {
            "type": anthropic_type(status, text("type").unwrap_or("")),
            "message": message,
        },
    });
    Bytes::from(serde_json::to_vec(&out).unwrap_or_default())
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, self.body_bytes()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let retry_after = match &self {
            GatewayError::Upstream { retry_after, .. } => retry_after.clone(),
            GatewayError::RateLimited { retry_after, .. } => Some(seconds(*retry_after)),
            GatewayError::Unavailable { retry_after, .. } => retry_after.map(seconds),
            // A store that went away is retried every second (governance's spool).
            GatewayError::StoreUnavailable(_) => Some(HeaderValue::from_static("1")),
            _ => None,
        };
        if let Some(v) = retry_after {
            headers.insert(header::RETRY_AFTER, v);
        }
        if let GatewayError::RateLimited {
            limits: Some(limits),
            ..
        } = &self
        {
            limits.write(headers);
        }
        response.extensions_mut().insert(ErrorKind(self.kind()));
        response
            .extensions_mut()
            .insert(ErrorMessage(self.log_message()));
        response
    }
}

impl GatewayError {
    /// The message the client sees (a provider's own, for an error it answered).
    fn log_message(&self) -> String {
        if let GatewayError::Upstream { body, .. } = self {
            let said = serde_json::from_slice::<ErrorBody>(body).map(|b| b.error.message);
            if let Ok(message) = said {
                return message;
            }
        }
        self.to_string()
    }
}

/// A provider's error, already in OpenAI's shape (from a translating adapter): passed on
/// with the status the adapter chose.
impl From<liter_llm::types::ProviderError> for GatewayError {
    fn from(e: liter_llm::types::ProviderError) -> Self {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_GATEWAY);
        let retry_after = e.retry_after.map(seconds);
        let body = serde_json::to_vec(&ErrorBody { error: e.error }).unwrap_or_default();
        GatewayError::Upstream {
            status,
            body: Bytes::from(body),
            retry_after,
        }
    }
}

/// Whole seconds, rounded up, as a header value.
fn seconds(d: std::time::Duration) -> HeaderValue {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

pub const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
pub const REMAINING_REQUESTS: HeaderName =
    HeaderName::from_static("x-ratelimit-remaining-requests");
pub const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
pub const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");

/// The `x-ratelimit-*` values of a response: (limit, remaining) per minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub requests: Option<(u64, u64)>,
    pub tokens: Option<(u64, u64)>,
}

impl RateHeaders {
    pub fn write(&self, h: &mut HeaderMap) {
        if let Some((limit, left)) = self.requests {
            h.insert(LIMIT_REQUESTS, number(limit));
            h.insert(REMAINING_REQUESTS, number(left));
        }
        if let Some((limit, left)) = self.tokens {
            h.insert(LIMIT_TOKENS, number(limit));
            h.insert(REMAINING_TOKENS, number(left));
        }
    }
}

/// `n` as a header value, in one allocation (`HeaderValue::from(u64)` takes two).
fn number(n: u64) -> HeaderValue {
    let mut digits = itoa::Buffer::new();
    HeaderValue::from_bytes(digits.format(n).as_bytes()).unwrap_or(HeaderValue::from_static("0"))
}

/// Put on error responses so the request log can name the error kind.
#[derive(Debug, Clone, Copy)]
pub struct ErrorKind(pub &'static str);

/// Put on error responses for the request log sinks: the error's message.
#[derive(Debug, Clone)]
pub struct ErrorMessage(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let e = GatewayError::ModelNotAllowed {
            model: "gpt-4o".into(),
        };
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        let v = serde_json::to_value(e.body()).unwrap();
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["type"], "permission_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("gpt-4o"));
        let t = GatewayError::Timeout("slow".into());
        assert_eq!(t.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            serde_json::to_value(t.body()).unwrap()["error"]["code"],
            "timeout"
        );
    }
}
