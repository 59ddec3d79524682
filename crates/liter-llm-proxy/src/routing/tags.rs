//! Tag filtering (LiteLLM's tag-based routing, `[router] enable_tag_filtering`).
//!
//! A request's tags are those of its `x-litellm-tags` header (comma separated), of its
//! body (`metadata.tags`, or a top-level `tags`) and of its key. With filtering on, a
//! request with tags goes only to deployments carrying at least one of them, in its
//! pool and in every fallback pool; one without tags goes to the deployments tagged
//! `default` when the pool has any, else to any deployment. With filtering off, tags
//! choose nothing.
//!
//! Tags in the body are the gateway's, on or off: [`Untagged::take`] takes them out
//! of the canonical body and of the client's own request before either goes anywhere
//! (cache key, upstream).

use std::fmt;

use axum::http::HeaderMap;
use bytes::{Bytes, BytesMut};
use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::Pool;
use crate::config::{tag_problem, Deployment, MAX_TAGS};
use crate::error::GatewayError;
use crate::request::{parse_head, Head};
use crate::upstream::Native;

/// The request header that carries tags, comma separated (LiteLLM's).
pub const HEADER: &str = "x-litellm-tags";
/// The tag of the deployments that take untagged requests.
pub const DEFAULT_TAG: &str = "default";

/// Which deployments a request's tags admit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagFilter {
    /// No tags: a pool's `default`-tagged deployments when it has some, else all.
    Untagged,
    /// Deployments carrying at least one of these (distinct, in the order given).
    Any(Vec<String>),
}

impl TagFilter {
    /// Whether `d`, a deployment of `pool`, may take the request.
    pub fn admits(&self, pool: &Pool, d: &Deployment) -> bool {
        match self {
            TagFilter::Untagged => !pool.has_default || d.tags.iter().any(|t| t == DEFAULT_TAG),
            TagFilter::Any(tags) => d.tags.iter().any(|t| tags.contains(t)),
        }
    }

    /// Whether any deployment of `pool` may take the request (healthy or not).
    pub fn admits_any(&self, pool: &Pool) -> bool {
        pool.deployments
            .iter()
            .any(|d| self.admits(pool, &d.deployment))
    }

    /// The request's tags (empty when untagged).
    pub fn tags(&self) -> &[String] {
        match self {
            TagFilter::Untagged => &[],
            TagFilter::Any(tags) => tags,
        }
    }
}

/// A 400 about the request's tags.
fn bad_tags(message: String) -> GatewayError {
    GatewayError::BadRequest {
        message,
        param: Some("tags"),
        code: Some("invalid_tags"),
    }
}

/// The filter of a request: the header's tags, then the body's, then the key's,
/// each once, within the bounds (`config::MAX_TAGS` tags, each a valid tag).
pub fn request_filter(
    headers: &HeaderMap,
    body_tags: &[String],
    key_tags: &[String],
) -> Result<TagFilter, GatewayError> {
    let mut tags: Vec<String> = Vec::new();
    let mut add = |tag: &str| -> Result<(), GatewayError> {
        if tags.iter().any(|t| t == tag) {
            return Ok(());
        }
        if let Some(why) = tag_problem(tag) {
            return Err(bad_tags(format!("invalid tag: {why}")));
        }
        if tags.len() == MAX_TAGS {
            return Err(bad_tags(format!(
                "a request carries at most {MAX_TAGS} tags (its own and its key's together)"
            )));
        }
        tags.push(tag.to_owned());
        Ok(())
    };
    for value in headers.get_all(HEADER) {
        let text = value.to_str().map_err(|_| {
            bad_tags(format!(
                "the {HEADER} header must be visible ASCII, tags separated by commas"
            ))
        })?;
        for tag in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            add(tag)?;
        }
    }
    for tag in body_tags.iter().chain(key_tags) {
        add(tag)?;
    }
    Ok(if tags.is_empty() {
        TagFilter::Untagged
    } else {
        TagFilter::Any(tags)
    })
}

/// A body whose tags were taken out.
#[derive(Debug)]
pub struct Taken {
    /// `metadata.tags`, then the top-level `tags`, as given.
    pub tags: Vec<String>,
    /// The body without them (and without a `metadata` left empty).
    pub body: Bytes,
    pub head: Head,
}

/// The top-level members of a JSON object, values as written.
struct Members;

impl<'de> Visitor<'de> for Members {
    type Value = Vec<(String, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            out.push((key, map.next_value()?));
        }
        Ok(out)
    }
}

/// Tags as a client may send them: a list of strings, one string, or null.
fn tag_list(value: Value, field: &str) -> Result<Vec<String>, GatewayError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(bad_tags(format!("'{field}' must be a list of strings"))),
            })
            .collect(),
        _ => Err(bad_tags(format!("'{field}' must be a list of strings"))),
    }
}

/// The body's tags taken out of it: `None` when it has none (then nothing was parsed
/// beyond the head). Every other member keeps its place and its text.
pub fn take_from_body(body: &Bytes, head: &Head) -> Result<Option<Taken>, GatewayError> {
    if !head.gateway_fields {
        return Ok(None);
    }
    let text = std::str::from_utf8(body).map_err(|_| GatewayError::bad_request("not UTF-8"))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let members = de
        .deserialize_map(Members)
        .map_err(|e| GatewayError::bad_request(format!("invalid JSON body: {e}")))?;
    let mut tags = Vec::new();
    let mut found = false;
    let mut kept: Vec<(&str, Option<String>, &RawValue)> = Vec::with_capacity(members.len());
    for (key, raw) in &members {
        match key.as_str() {
            "tags" => {
                found = true;
                tags.extend(tag_list(parse(raw)?, "tags")?);
            }
            "metadata" => match parse(raw)? {
                Value::Object(mut meta) if meta.contains_key("tags") => {
                    found = true;
                    let given = meta.remove("tags").unwrap_or(Value::Null);
                    tags.splice(0..0, tag_list(given, "metadata.tags")?);
                    if !meta.is_empty() {
                        kept.push((key, Some(object_text(meta)?), raw));
                    }
                }
                _ => kept.push((key, None, raw)),
            },
            _ => kept.push((key, None, raw)),
        }
    }
    if !found {
        return Ok(None);
    }
    let mut out = BytesMut::with_capacity(body.len());
    out.extend_from_slice(b"{");
    for (i, (key, replaced, raw)) in kept.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b",");
        }
        let quoted = serde_json::to_string(key).map_err(internal)?;
        out.extend_from_slice(quoted.as_bytes());
        out.extend_from_slice(b":");
        let value = replaced.as_deref().unwrap_or(raw.get());
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(b"}");
    let body = out.freeze();
    let head = parse_head(&body)?;
    Ok(Some(Taken { tags, body, head }))
}

/// A request's body tags, taken out of its bodies: they are the gateway's, so the
/// cache and the upstreams never see them, whether tag filtering is on or not.
pub struct Untagged {
    /// The canonical body without its tags (`None`: it had none).
    pub canonical: Option<Taken>,
    /// The client's own request without its tags (`None`: it had none).
    pub native: Option<Native>,
    /// The tags of both, canonical first.
    pub tags: Vec<String>,
}

impl Untagged {
    pub fn take(body: &Bytes, head: &Head, native: Option<&Native>) -> Result<Self, GatewayError> {
        let mut canonical = take_from_body(body, head)?;
        let mut tags = canonical
            .as_mut()
            .map(|t| std::mem::take(&mut t.tags))
            .unwrap_or_default();
        let native = match native {
            Some(n) => take_from_body(&n.body, &n.head)?.map(|t| {
                tags.extend(t.tags);
                Native {
                    body: t.body,
                    head: t.head,
                    ..n.clone()
                }
            }),
            None => None,
        };
        Ok(Untagged {
            canonical,
            native,
            tags,
        })
    }
}

fn parse(raw: &RawValue) -> Result<Value, GatewayError> {
    serde_json::from_str(raw.get())
        .map_err(|e| GatewayError::bad_request(format!("invalid JSON body: {e}")))
}

fn object_text(map: Map<String, Value>) -> Result<String, GatewayError> {
    serde_json::to_string(&map).map_err(internal)
}

fn internal(e: serde_json::Error) -> GatewayError {
    GatewayError::Internal(format!("re-encoding the body failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn take(body: &str) -> Option<Taken> {
        let body = Bytes::from(body.to_owned());
        let head = parse_head(&body).unwrap();
        take_from_body(&body, &head).unwrap()
    }

    #[test]
    fn body_tags_are_taken_out_in_place() {
        let t = take(r#"{"model":"m","metadata":{"tags":["a","b"],"x":1},"n":1.50,"tags":"c"}"#)
            .unwrap();
        assert_eq!(t.tags, ["a", "b", "c"]);
        assert_eq!(&t.body[..], br#"{"model":"m","metadata":{"x":1},"n":1.50}"#);
        assert_eq!(t.head.model, "m");
        let t = take(r#"{"metadata":{"tags":[]},"model":"m"}"#).unwrap();
        assert_eq!(&t.body[..], br#"{"model":"m"}"#);
        assert!(t.tags.is_empty());
    }

    #[test]
    fn bodies_without_tags_are_left_alone() {
        assert!(take(r#"{"model":"m","messages":[]}"#).is_none());
        assert!(take(r#"{"model":"m","metadata":{"user":"u"}}"#).is_none());
        assert!(take(r#"{"model":"m","metadata":null}"#).is_none());
    }

    #[test]
    fn malformed_tags_are_400() {
        for body in [
            r#"{"model":"m","metadata":{"tags":[1]}}"#,
            r#"{"model":"m","tags":{"a":1}}"#,
        ] {
            let b = Bytes::from(body);
            let head = parse_head(&b).unwrap();
            let e = take_from_body(&b, &head).unwrap_err();
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST, "{body}");
        }
    }

    #[test]
    fn filter_joins_header_body_and_key_once() {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_static(" free , ,paid"));
        let f = request_filter(&h, &["paid".into(), "eu".into()], &["team-a".into()]).unwrap();
        assert_eq!(f.tags(), ["free", "paid", "eu", "team-a"]);
        assert_eq!(
            request_filter(&HeaderMap::new(), &[], &[]).unwrap(),
            TagFilter::Untagged
        );
    }

    #[test]
    fn filter_bounds() {
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        let e = request_filter(&HeaderMap::new(), &many, &[]).unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
        let long = "x".repeat(crate::config::MAX_TAG_BYTES + 1);
        assert!(request_filter(&HeaderMap::new(), &[long], &[]).is_err());
        assert!(request_filter(&HeaderMap::new(), &["a\u{7}".into()], &[]).is_err());
    }
}
