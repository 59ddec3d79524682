//! Google's wire formats: the Gemini API (`POST /v1beta/models/{model}:{method}`, or `/v1/…`,
//! key in `x-goog-api-key`), Vertex AI (`POST /v1/projects/{p}/locations/{l}/publishers/google/
//! models/{model}:{method}`, or `/v1beta1/…`, `Authorization: Bearer` with a token this mock issued),
//! Claude on Vertex AI (`…/publishers/anthropic/models/{model}:rawPredict` and
//! `:streamRawPredict`, answered by [`crate::anthropic`]) and the OAuth token endpoint
//! (`POST /token`, the JWT-bearer grant of a service account).
//!
//! Errors use Google's shape (`{"error":{"code","message","status"}}`). The answers live
//! in [`generate`]; the token endpoint in [`token`].

mod generate;
mod token;

use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use crate::body::{self, MockBody, Reply};
use crate::server::Payload;
use crate::state::Shared;

/// The Bearer tokens this mock issues start with this.
pub(crate) const TOKEN_PREFIX: &str = "ya29.mock-token-";
/// The token endpoint's path.
pub(crate) const TOKEN_PATH: &str = "/token";

/// Which Google API a path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// The Gemini API (AI Studio).
    Gemini,
    /// Vertex AI, Google's models.
    Vertex,
    /// Vertex AI, Anthropic's models.
    VertexAnthropic,
    /// The OAuth token endpoint.
    Token,
}

/// A parsed path: the API, the model and the method after the `:`.
pub(crate) struct Route<'a> {
    pub(crate) api: Api,
    pub(crate) model: &'a str,
    pub(crate) method: &'a str,
}

/// The route of a `POST` path, if it is one of Google's.
pub(crate) fn route(path: &str) -> Option<Route<'_>> {
    if path == TOKEN_PATH {
        return Some(Route {
            api: Api::Token,
            model: "",
            method: "",
        });
    }
    // Both APIs serve a stable and a beta version with the same methods: the Gemini API
    // `v1` and `v1beta` (google-genai defaults to `v1`), Vertex AI `v1` and `v1beta1`
    // (google-genai's default).
    let gemini = ["/v1beta/models/", "/v1/models/"];
    let (api, rest) = if let Some(rest) = gemini.iter().find_map(|p| path.strip_prefix(p)) {
        (Api::Gemini, rest)
    } else {
        let rest = ["/v1/projects/", "/v1beta1/projects/"]
            .iter()
            .find_map(|p| path.strip_prefix(p))?;
        let mut segs = rest.splitn(6, '/');
        let (_project, locations, _location, publishers, publisher, tail) = (
            segs.next()?,
            segs.next()?,
            segs.next()?,
            segs.next()?,
            segs.next()?,
            segs.next()?,
        );
        if locations != "locations" || publishers != "publishers" {
            return None;
        }
        let api = match publisher {
            "google" => Api::Vertex,
            "anthropic" => Api::VertexAnthropic,
            _ => return None,
        };
        (api, tail.strip_prefix("models/")?)
    };
    let (model, method) = rest.rsplit_once(':')?;
    if model.is_empty() || model.contains('/') {
        return None;
    }
    Some(Route { api, model, method })
}

/// Whether the request streams.
pub(crate) fn is_streaming(route: &Route<'_>) -> bool {
    matches!(route.method, "streamGenerateContent" | "streamRawPredict")
}

/// Gemini API: `x-goog-api-key: <key>`; Vertex: a Bearer token this mock issued; the
/// token endpoint authenticates by its assertion.
pub(crate) fn authorized(api: Api, headers: &HeaderMap, key: &str) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match api {
        Api::Gemini => header("x-goog-api-key").is_some_and(|v| v.trim() == key),
        Api::Vertex | Api::VertexAnthropic => header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t.starts_with(TOKEN_PREFIX)),
        Api::Token => true,
    }
}

/// Google's answer to a missing or wrong credential: the Gemini API says 400
/// `API_KEY_INVALID`, Vertex 401 `UNAUTHENTICATED`.
pub(crate) fn unauthorized(api: Api) -> Reply {
    match api {
        Api::Gemini => error_with(
            StatusCode::BAD_REQUEST,
            "API key not valid. Please pass a valid API key.",
            &[json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID", "domain": "googleapis.com"})],
        ),
        _ => error(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
        ),
    }
    .into()
}

/// Answers a request the pipeline let through.
pub(crate) fn respond(shared: &Shared, route: &Route<'_>, payload: &Payload) -> Reply {
    match (route.api, route.method) {
        (Api::Token, _) => token::respond(shared, payload),
        (Api::VertexAnthropic, "rawPredict" | "streamRawPredict") => {
            crate::anthropic::respond_vertex(shared, payload, route.model)
        }
        (Api::Gemini | Api::Vertex, "generateContent" | "streamGenerateContent") => {
            generate::respond(shared, route, payload)
        }
        (Api::Gemini, "batchEmbedContents") | (Api::Vertex, "predict") => {
            generate::embed(route, payload)
        }
        _ => error(
            StatusCode::NOT_FOUND,
            &format!("method {:?} is not served by the mock", route.method),
        )
        .into(),
    }
}

/// The canonical status name of an HTTP status.
fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "NOT_IMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// The answer to a status fault without a custom body, in Google's shape.
pub(crate) fn fault_error(status: StatusCode) -> http::Response<MockBody> {
    let message = match status.canonical_reason() {
        Some(reason) => format!("mock-upstream fault: HTTP {} {reason}", status.as_u16()),
        None => format!("mock-upstream fault: HTTP {}", status.as_u16()),
    };
    error(status, &message)
}

/// Google's error JSON.
pub(crate) fn error(status: StatusCode, message: &str) -> http::Response<MockBody> {
    error_with(status, message, &[])
}

fn error_with(status: StatusCode, message: &str, details: &[Value]) -> http::Response<MockBody> {
    let mut err = json!({
        "code": status.as_u16(),
        "message": message,
        "status": status_name(status.as_u16()),
    });
    if !details.is_empty() {
        err["details"] = Value::from(details.to_vec());
    }
    body::json(status, &json!({ "error": err }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = route("/v1beta/models/gemini-2.0-flash:generateContent").unwrap();
        assert_eq!(
            (r.api, r.model, r.method),
            (Api::Gemini, "gemini-2.0-flash", "generateContent")
        );
        let r = route(
            "/v1/projects/p/locations/us-central1/publishers/google/models/g:streamGenerateContent",
        )
        .unwrap();
        assert_eq!((r.api, r.model), (Api::Vertex, "g"));
        assert!(is_streaming(&r));
        let r =
            route("/v1/projects/p/locations/l/publishers/anthropic/models/claude-x@1:rawPredict")
                .unwrap();
        assert_eq!(
            (r.api, r.model, r.method),
            (Api::VertexAnthropic, "claude-x@1", "rawPredict")
        );
        assert_eq!(route("/token").unwrap().api, Api::Token);
        let r = route("/v1/models/gemini-2.0-flash:batchEmbedContents").unwrap();
        assert_eq!((r.api, r.method), (Api::Gemini, "batchEmbedContents"));
        let r =
            route("/v1beta1/projects/p/locations/l/publishers/google/models/g:predict").unwrap();
        assert_eq!((r.api, r.model), (Api::Vertex, "g"));
        for bad in [
            "/v1/chat/completions",
            "/v1beta/models/x",
            "/v1/projects/p/locations/l/publishers/meta/models/x:predict",
            "/v1beta/models/a/b:generateContent",
        ] {
            assert!(route(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn credentials() {
        let mut h = HeaderMap::new();
        assert!(!authorized(Api::Gemini, &h, "k"));
        h.insert("x-goog-api-key", http::HeaderValue::from_static("k"));
        assert!(authorized(Api::Gemini, &h, "k"));
        assert!(!authorized(Api::Vertex, &h, "k"));
        h.insert(
            "authorization",
            http::HeaderValue::from_static("Bearer ya29.mock-token-1"),
        );
        assert!(authorized(Api::Vertex, &h, "k"));
        assert!(authorized(Api::Token, &HeaderMap::new(), "k"));
    }
}
