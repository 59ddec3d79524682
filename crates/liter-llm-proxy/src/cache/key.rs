//! A request's cache key and its per-request controls.
//!
//! The key is the SHA-256 of: the scope (`global`, or `key:<id>` under
//! `scope = "key"`), the endpoint, and the body normalised: parsed and written again
//! with object keys sorted and no whitespace, without the fields in [`IGNORED`] (which
//! do not change the answer). The model stays in it as the client sent it. No client
//! header is part of the key: the gateway sends none of them upstream, so none can
//! change the answer.
//!
//! The controls: `Cache-Control: no-cache` (skip the lookup, store the answer),
//! `no-store` (neither), and LiteLLM's body field `cache` (`no-cache`, `no-store`,
//! `ttl`, `s-maxage`), which is removed from the body before it goes upstream.

use std::time::Duration;

use axum::http::{header, HeaderMap};
use bytes::Bytes;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::GatewayError;
use crate::request::{parse_head, Endpoint, Head};

/// Body fields left out of the key: they change how an answer is delivered, who it is
/// attributed to, or where it is logged, never what it says.
pub const IGNORED: &[&str] = &[
    "stream",
    "stream_options",
    "user",
    "safety_identifier",
    "cache",
    "metadata",
    "store",
    "service_tier",
    "prompt_cache_key",
];

/// What the cache does for one request.
#[derive(Debug, Clone)]
pub struct Plan {
    /// SHA-256 of the scope, endpoint and normalised body.
    pub key: [u8; 32],
    /// `key` in lower-case hex (the `x-litellm-cache-key` header and object name).
    pub hex: String,
    /// Whether an entry may answer the request.
    pub lookup: bool,
    /// Whether a successful answer is stored.
    pub store: bool,
    /// This request's entry lifetime (the body's `cache.ttl`), over `[cache]`'s.
    pub ttl: Option<Duration>,
    /// Only entries younger than this may answer (the body's `cache.s-maxage`).
    pub max_age: Option<Duration>,
    /// The body to send upstream and its head, when the `cache` field was taken out.
    pub upstream: Option<(Bytes, Head)>,
}

/// The body's `cache` object.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BodyControls {
    #[serde(default, rename = "no-cache")]
    no_cache: bool,
    #[serde(default, rename = "no-store")]
    no_store: bool,
    #[serde(default)]
    ttl: Option<u64>,
    #[serde(default, rename = "s-maxage")]
    s_maxage: Option<u64>,
}

fn bad_cache_field(detail: impl std::fmt::Display) -> GatewayError {
    GatewayError::BadRequest {
        message: format!(
            "invalid `cache` field: {detail}; expected an object with \"no-cache\" and \"no-store\" (booleans), \"ttl\" and \"s-maxage\" (whole seconds)"
        ),
        param: Some("cache"),
        code: Some("invalid_cache_control"),
    }
}

/// `Cache-Control` directives of the request: (no-cache, no-store).
fn header_controls(headers: &HeaderMap) -> (bool, bool) {
    let mut out = (false, false);
    for value in headers.get_all(header::CACHE_CONTROL) {
        for directive in value.to_str().unwrap_or("").split(',') {
            match directive.trim().to_ascii_lowercase().as_str() {
                "no-cache" => out.0 = true,
                "no-store" => out.1 = true,
                _ => {}
            }
        }
    }
    out
}

/// The plan for a request whose body `parse_head` accepted. `scope` is `"global"` or
/// the key's scope name.
pub fn plan(
    scope: &str,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Plan, GatewayError> {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(body) else {
        return Err(GatewayError::bad_request("invalid JSON body"));
    };
    let (mut no_cache, mut no_store) = header_controls(headers);
    let mut controls = BodyControls::default();
    let mut upstream = None;
    if let Some(field) = map.remove("cache") {
        if !field.is_null() {
            controls = serde_json::from_value(field).map_err(bad_cache_field)?;
        }
        if controls.ttl == Some(0) {
            return Err(bad_cache_field("\"ttl\" must be greater than 0"));
        }
        let bytes = Bytes::from(serde_json::to_vec(&map).unwrap_or_default());
        let head = parse_head(&bytes)?;
        upstream = Some((bytes, head));
    }
    no_cache |= controls.no_cache;
    no_store |= controls.no_store;
    for field in IGNORED {
        map.remove(*field);
    }
    let key = digest(scope, endpoint, &map);
    Ok(Plan {
        hex: hex(&key),
        key,
        lookup: !no_cache && !no_store,
        store: !no_store,
        ttl: controls.ttl.map(Duration::from_secs),
        max_age: controls.s_maxage.map(Duration::from_secs),
        upstream,
    })
}

fn digest(scope: &str, endpoint: Endpoint, body: &Map<String, Value>) -> [u8; 32] {
    let mut canonical = Vec::with_capacity(256);
    canonical.extend_from_slice(b"liter-llm-cache/1\0");
    canonical.extend_from_slice(scope.as_bytes());
    canonical.push(0);
    canonical.extend_from_slice(match endpoint {
        Endpoint::Chat => b"chat/completions\0",
        Endpoint::Embeddings => b"embeddings\0",
    });
    write_object(&mut canonical, body);
    Sha256::digest(&canonical).into()
}

/// JSON with object keys in byte order and no whitespace.
fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Object(map) => write_object(out, map),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        other => {
            // Scalars: serde_json writes them in one canonical form.
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
}

fn write_object(out: &mut Vec<u8>, map: &Map<String, Value>) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut *out, k);
        out.push(b':');
        write_value(out, v);
    }
    out.push(b'}');
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(body: &str) -> String {
        plan("global", Endpoint::Chat, &HeaderMap::new(), body.as_bytes())
            .unwrap()
            .hex
    }

    #[test]
    fn order_whitespace_and_ignored_fields_do_not_change_the_key() {
        let a = key(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0}"#);
        let b = key(
            r#"{ "temperature" : 0, "messages" : [ {"content":"hi", "role":"user"} ],
                "model":"m", "stream": true, "stream_options": {"include_usage": true},
                "user": "u1", "metadata": {"x": 1}, "cache": {"ttl": 5} }"#,
        );
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        for different in [
            r#"{"model":"m2","messages":[{"role":"user","content":"hi"}],"temperature":0}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi!"}],"temperature":0}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":1}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        ] {
            assert_ne!(a, key(different), "{different}");
        }
        let body = br#"{"model":"m","input":"x"}"#;
        let emb = plan("global", Endpoint::Embeddings, &HeaderMap::new(), body).unwrap();
        let chat = plan("global", Endpoint::Chat, &HeaderMap::new(), body).unwrap();
        let scoped = plan("key:k1", Endpoint::Chat, &HeaderMap::new(), body).unwrap();
        assert_ne!(emb.hex, chat.hex);
        assert_ne!(scoped.hex, chat.hex);
    }

    #[test]
    fn controls_from_headers_and_the_body_field() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CACHE_CONTROL,
            "max-age=0, No-Cache".parse().unwrap(),
        );
        let p = plan("global", Endpoint::Chat, &h, br#"{"model":"m"}"#).unwrap();
        assert!(!p.lookup && p.store && p.upstream.is_none());
        h.insert(header::CACHE_CONTROL, "no-store".parse().unwrap());
        let p = plan("global", Endpoint::Chat, &h, br#"{"model":"m"}"#).unwrap();
        assert!(!p.lookup && !p.store);

        let body = br#"{"model":"m","cache":{"no-cache":true,"ttl":7,"s-maxage":3},"n":1}"#;
        let p = plan("global", Endpoint::Chat, &HeaderMap::new(), body).unwrap();
        assert!(!p.lookup && p.store);
        assert_eq!(p.ttl, Some(Duration::from_secs(7)));
        assert_eq!(p.max_age, Some(Duration::from_secs(3)));
        let (upstream, head) = p.upstream.unwrap();
        let v: Value = serde_json::from_slice(&upstream).unwrap();
        assert!(v.get("cache").is_none());
        assert_eq!((v["n"].as_u64(), head.model.as_str()), (Some(1), "m"));

        for bad in [
            r#"{"model":"m","cache":{"no-cache":"yes"}}"#,
            r#"{"model":"m","cache":{"namespace":"x"}}"#,
            r#"{"model":"m","cache":{"ttl":0}}"#,
            r#"{"model":"m","cache":5}"#,
        ] {
            let e = plan("global", Endpoint::Chat, &HeaderMap::new(), bad.as_bytes()).unwrap_err();
            assert_eq!(e.status().as_u16(), 400, "{bad}");
            assert!(e.to_string().contains("cache"), "{e}");
        }
    }
}
