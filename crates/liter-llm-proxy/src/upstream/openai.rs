//! The OpenAI wire, pass-through: the client's bytes are forwarded with `model`
//! rewritten (OpenAI, the OpenAI-compatible family and Azure OpenAI; chat, embeddings
//! and legacy completions), answers and
//! streams are relayed as they come, and error answers are read into OpenAI's shape.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use bytes::Bytes;
use liter_llm::providers::adapter::UpstreamRequest;
use liter_llm::types::{ErrorBody, ErrorDetail};

use super::protocol::{Hold, Job, Native, Protocol};
use super::stream::{self, Source};
use crate::error::{GatewayError, Wire};
use crate::request::{with_model, Endpoint};

/// Where an OpenAI-compatible deployment lives.
#[derive(Debug, Clone)]
pub struct PassThrough {
    /// Client-facing model name, for messages.
    pub name: String,
    pub chat_uri: Uri,
    /// `None` when the provider has no embeddings endpoint.
    pub embeddings_uri: Option<Uri>,
    /// Legacy completions (`/completions`), forwarded as the client sent them.
    pub completions_uri: Option<Uri>,
    /// Marked sensitive so it is never printed by `Debug` of a request.
    pub auth: Option<(HeaderName, HeaderValue)>,
}

impl Protocol for PassThrough {
    fn request(
        &self,
        job: &Job<'_>,
        model_id: &str,
        _token: Option<&str>,
    ) -> Result<UpstreamRequest, GatewayError> {
        let uri = match job.endpoint {
            Endpoint::Chat => self.chat_uri.clone(),
            Endpoint::Embeddings => self.embeddings_uri.clone().ok_or_else(|| {
                GatewayError::bad_request(format!(
                    "model {:?} does not offer embeddings",
                    self.name
                ))
            })?,
        };
        let mut body = with_model(job.body, job.head, model_id);
        if job.tap.is_some() && job.head.stream && !job.head.include_usage {
            // Accounting needs the usage chunk; the relay hides it from the client.
            body = with_include_usage(&body);
        }
        Ok(UpstreamRequest {
            uri,
            headers: super::protocol::with_room(self.auth.as_slice()),
            body,
            dropped: Vec::new(),
        })
    }

    fn error(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> GatewayError {
        let retry_after = headers.get(header::RETRY_AFTER).cloned();
        upstream_error(status, retry_after, body, &self.name)
    }

    fn stream(&self, source: Source, job: &Job<'_>, hold: Hold) -> Body {
        stream::relay(
            source,
            hold,
            job.tap.map(|t| stream::Tapped {
                tap: t.boxed(),
                hide_usage: !job.head.include_usage,
                facts: job.trace.is_some(),
            }),
            Wire::OpenAi,
        )
    }

    fn answer(&self, bytes: Bytes, _job: &Job<'_>) -> Result<Bytes, GatewayError> {
        Ok(bytes)
    }

    fn passes_through(&self, wire: Wire) -> bool {
        self.completions_uri.is_some() && wire == Wire::OpenAi
    }

    /// A legacy completion as it came, to `/completions`.
    fn native(&self, native: &Native, model_id: &str, metered: bool) -> Option<UpstreamRequest> {
        let uri = self
            .completions_uri
            .clone()
            .filter(|_| native.wire == Wire::OpenAi)?;
        let mut body = with_model(&native.body, &native.head, model_id);
        if metered && native.head.stream && !native.head.include_usage {
            body = with_include_usage(&body);
        }
        Some(UpstreamRequest {
            uri,
            headers: super::protocol::with_room(self.auth.as_slice()),
            body,
            dropped: Vec::new(),
        })
    }
}

/// `body` with `stream_options.include_usage = true` (other stream options kept).
fn with_include_usage(body: &Bytes) -> Bytes {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice(body) else {
        return body.clone();
    };
    let options = map
        .entry("stream_options")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    if !options.is_object() {
        *options = serde_json::Value::Object(Default::default());
    }
    if let Some(o) = options.as_object_mut() {
        o.insert("include_usage".into(), serde_json::Value::Bool(true));
    }
    serde_json::to_vec(&map).map_or_else(|_| body.clone(), Bytes::from)
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

#[cfg(test)]
mod tests {
    use super::*;

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
