//! Amazon Bedrock's runtime wire format: `POST /model/{modelId}/converse`,
//! `/converse-stream` (answered in AWS's binary event-stream framing, see [`frame`])
//! and `/invoke` (Titan and Cohere embeddings), SigV4 authentication, and its errors
//! (status, `x-amzn-errortype`, `{"message": …}`).
//!
//! With `require_api_key`, the key is the **secret access key**: the `Authorization`
//! header's signature is recomputed from the request as received (method, path,
//! the signed headers, a SHA-256 of the body) and must match; any access key id is
//! accepted. The canonicalization comes from `liter_llm::providers::bedrock::sigv4`,
//! which is checked against AWS's published test vectors; what this proves end to end
//! is that the gateway signs exactly what it sends (host, encoded path, body).

mod converse;
mod frame;

use http::header::HeaderValue;
use http::{HeaderMap, Method, StatusCode};
use liter_llm::providers::bedrock::sigv4;
use serde_json::{json, Value};

use crate::body::{self, MockBody, Reply};
use crate::server::Payload;
use crate::state::Shared;

/// What a `/model/{id}/…` path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Converse,
    ConverseStream,
    Invoke,
}

/// The action and the (still encoded) model segment of a Bedrock path.
fn split(path: &str) -> Option<(&str, Action)> {
    let rest = path.strip_prefix("/model/")?;
    let (model, action) = rest.rsplit_once('/')?;
    if model.is_empty() || model.contains('/') {
        return None;
    }
    let action = match action {
        "converse" => Action::Converse,
        "converse-stream" => Action::ConverseStream,
        "invoke" => Action::Invoke,
        _ => return None,
    };
    Some((model, action))
}

/// Whether a request is for the Bedrock runtime.
pub(crate) fn handles(method: &Method, path: &str) -> bool {
    method == Method::POST && split(path).is_some()
}

/// The model id of a path, percent-decoded.
pub(crate) fn model(path: &str) -> Option<String> {
    let (segment, _) = split(path)?;
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

pub(crate) fn is_streaming(path: &str) -> bool {
    matches!(split(path), Some((_, Action::ConverseStream)))
}

/// Whether the request carries a valid SigV4 signature made with `secret`.
pub(crate) fn authorized(
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    secret: &str,
) -> bool {
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(rest) = auth.strip_prefix(sigv4::ALGORITHM) else {
        return false;
    };
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return false;
    };
    // AKID/DATE/REGION/SERVICE/aws4_request
    let scope: Vec<&str> = credential.split('/').collect();
    let [_, date, region, service, "aws4_request"] = scope[..] else {
        return false;
    };
    let Some(amz_date) = headers.get("x-amz-date").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let names: Vec<&str> = signed_headers.split(';').collect();
    if !amz_date.starts_with(date)
        || !names.contains(&"host")
        || !names.contains(&"x-amz-date")
        || (headers.contains_key("x-amz-security-token")
            && !names.contains(&"x-amz-security-token"))
        || uri.query().is_some()
    {
        return false;
    }
    let mut signed = Vec::with_capacity(names.len());
    for name in names {
        let value = if name == "host" {
            headers
                .get("host")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .or_else(|| uri.authority().map(|a| a.as_str().to_string()))
        } else {
            let values: Vec<&str> = headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!values.is_empty()).then(|| values.join(","))
        };
        let Some(value) = value else {
            return false;
        };
        signed.push((name.to_string(), value));
    }
    let (canonical, _) = sigv4::canonical_request(
        method.as_str(),
        &sigv4::canonical_uri(uri.path()),
        "",
        &signed,
        &sigv4::sha256_hex(body),
    );
    sigv4::signature(secret, amz_date, region, service, &canonical) == signature
}

/// The 403 Bedrock sends for a bad signature.
pub(crate) fn unauthorized() -> Reply {
    error(
        StatusCode::FORBIDDEN,
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided.",
    )
    .into()
}

/// Answers a request the pipeline let through.
pub(crate) fn respond(
    shared: &Shared,
    path: &str,
    headers: &HeaderMap,
    payload: &Payload,
) -> Reply {
    let (Some((_, action)), Some(model)) = (split(path), model(path)) else {
        return bad_request("unknown operation");
    };
    let Some(json) = payload.json().filter(|v| v.is_object()) else {
        return bad_request("The request body is not valid JSON.");
    };
    match action {
        Action::Invoke => converse::embeddings(json, &model),
        Action::Converse | Action::ConverseStream => {
            if action == Action::ConverseStream
                && headers
                    .get("accept")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|a| !a.contains("eventstream") && !a.contains("*/*"))
            {
                return bad_request("converse-stream answers application/vnd.amazon.eventstream");
            }
            converse::respond(shared, json, action == Action::ConverseStream)
        }
    }
}

pub(crate) fn bad_request(message: &str) -> Reply {
    error(StatusCode::BAD_REQUEST, "ValidationException", message).into()
}

/// The AWS error name for a status.
fn error_type(status: u16) -> &'static str {
    match status {
        400 => "ValidationException",
        401 => "UnrecognizedClientException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    }
}

/// The answer to a status fault without a custom body.
pub(crate) fn fault_error(status: StatusCode) -> http::Response<MockBody> {
    let message = match status.canonical_reason() {
        Some(reason) => format!("mock-upstream fault: HTTP {} {reason}", status.as_u16()),
        None => format!("mock-upstream fault: HTTP {}", status.as_u16()),
    };
    error(status, error_type(status.as_u16()), &message)
}

/// Bedrock's error answer: `x-amzn-errortype` and `{"message": …}`.
pub(crate) fn error(status: StatusCode, kind: &str, message: &str) -> http::Response<MockBody> {
    let mut response = body::json(status, &json!({ "message": message }));
    let value = format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/");
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert("x-amzn-errortype", v);
    }
    response
}

/// The text of Converse content blocks (`text`, and with `tool_results` the text of
/// `toolResult` contents).
pub(crate) fn text_of(content: Option<&Value>, tool_results: bool) -> String {
    let mut text = String::new();
    for block in content.and_then(Value::as_array).into_iter().flatten() {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let (true, Some(r)) = (tool_results, block.get("toolResult")) {
            text.push(' ');
            text.push_str(&text_of(r.get("content"), false));
            text.push(' ');
        }
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_models() {
        assert!(handles(
            &Method::POST,
            "/model/amazon.nova-lite-v1%3A0/converse"
        ));
        assert!(handles(&Method::POST, "/model/m/converse-stream"));
        assert!(handles(&Method::POST, "/model/m/invoke"));
        assert!(!handles(&Method::GET, "/model/m/converse"));
        assert!(!handles(&Method::POST, "/model/m/other"));
        assert!(!handles(&Method::POST, "/v1/chat/completions"));
        assert_eq!(
            model("/model/us.anthropic.claude-v1%3A0/converse").as_deref(),
            Some("us.anthropic.claude-v1:0")
        );
        assert_eq!(model("/model/a%2Fb/invoke").as_deref(), Some("a/b"));
        assert!(is_streaming("/model/m/converse-stream"));
        assert!(!is_streaming("/model/m/converse"));
    }

    #[test]
    fn signatures_are_checked() {
        let creds = sigv4::Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: "secret".into(),
            session_token: None,
        };
        let path = "/model/a.b%3A0/converse";
        let s = sigv4::sign(
            &creds,
            "us-east-1",
            "bedrock",
            "POST",
            "127.0.0.1:9",
            path,
            &[("content-type".into(), "application/json".into())],
            b"{}",
            1_700_000_000,
        );
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:9"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("x-amz-date", HeaderValue::from_str(&s.amz_date).unwrap());
        headers.insert(
            "authorization",
            HeaderValue::from_str(&s.authorization).unwrap(),
        );
        let uri: http::Uri = path.parse().unwrap();
        assert!(authorized(&Method::POST, &uri, &headers, b"{}", "secret"));
        assert!(!authorized(&Method::POST, &uri, &headers, b"{ }", "secret"));
        assert!(!authorized(&Method::POST, &uri, &headers, b"{}", "other"));
        let other: http::Uri = "/model/a.b:0/converse".parse().unwrap();
        assert!(!authorized(
            &Method::POST,
            &other,
            &headers,
            b"{}",
            "secret"
        ));
        headers.insert("host", HeaderValue::from_static("127.0.0.1:10"));
        assert!(!authorized(&Method::POST, &uri, &headers, b"{}", "secret"));
    }
}
