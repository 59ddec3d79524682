//! The request as the gateway reads it: our own body extractor (so a bad body gets
//! OpenAI's error JSON), the one-pass "head" parse of a JSON request, and which
//! endpoint it is for. Every stage may use this module; it uses only `error`.
//!
//! The gateway forwards bytes: it reads only `model`, `stream` and
//! `stream_options.include_usage`, remembers where `model` sits in the buffer, and
//! splices the provider's model id in; it notes whether `metadata` or `tags` are there
//! (request tags, which `routing::tags` takes out). Every other field reaches the
//! provider as the client wrote it.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use bytes::{Bytes, BytesMut};
use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::GatewayError;

/// Which OpenAI endpoint a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Embeddings,
}

impl Endpoint {
    /// The GenAI conventions' `gen_ai.operation.name`.
    pub fn operation(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Embeddings => "embeddings",
        }
    }
}

/// The raw request body, limited by `server.body_limit_bytes`: an announced
/// `Content-Length` over the limit is refused (413) before any of the body is read, a
/// body that grows past it while being read too, and one that stalls past
/// `server.body_timeout_secs` ([`BodyTimedOut`]) gets a 408.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = GatewayError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(usize::MAX, |l| l.0);
        // The announced length (`Content-Length`, as hyper decoded it), before reading.
        let announced = http_body::Body::size_hint(req.body()).lower();
        if announced > u64::try_from(limit).unwrap_or(u64::MAX) {
            return Err(GatewayError::PayloadTooLarge { limit });
        }
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(RawBody(bytes)),
            Err(rejection) => Err(unreadable(&rejection, limit)),
        }
    }
}

/// Why a body could not be read, as the client's error.
fn unreadable(rejection: &BytesRejection, limit: usize) -> GatewayError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return GatewayError::PayloadTooLarge { limit };
    }
    if let Some(t) = BodyTimedOut::cause_of(rejection) {
        return GatewayError::RequestTimeout(format!(
            "{t} (server.body_timeout_secs); the request was not processed"
        ));
    }
    GatewayError::bad_request(format!(
        "could not read the request body: {}",
        rejection.body_text()
    ))
}

/// The error of a request body that sent nothing for `server.body_timeout_secs`: the
/// server's body wrapper yields it, [`RawBody`] turns it into a 408.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body sent nothing for {} s", .0.as_secs())]
pub struct BodyTimedOut(pub Duration);

impl BodyTimedOut {
    /// The body timeout behind `error`, if that is why it failed (anywhere in its
    /// chain of sources).
    pub fn cause_of(error: &(dyn std::error::Error + 'static)) -> Option<BodyTimedOut> {
        let mut cause = Some(error);
        while let Some(e) = cause {
            if let Some(t) = e.downcast_ref::<BodyTimedOut>() {
                return Some(*t);
            }
            cause = e.source();
        }
        None
    }
}

/// The body as text. JSON is UTF-8: a body that is not is refused (400) before anything
/// parses or forwards it. One SIMD pass; the position is looked up only on error.
fn utf8(body: &[u8]) -> Result<&str, GatewayError> {
    simdutf8::basic::from_utf8(body).map_err(|_| {
        let at = std::str::from_utf8(body)
            .err()
            .map_or(0, |e| e.valid_up_to());
        GatewayError::bad_request(format!(
            "the request body is not valid UTF-8 (invalid byte at offset {at}); JSON must be UTF-8"
        ))
    })
}

/// A JSON body parsed into `T`; malformed JSON (or UTF-8) or a wrong field is a 400 in
/// OpenAI's shape naming the problem.
pub fn parse_json<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, GatewayError> {
    serde_json::from_str(utf8(raw)?)
        .map_err(|e| GatewayError::bad_request(format!("invalid JSON body: {e}")))
}

/// The configured body limit, put in request extensions so errors can name it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// What the gateway needs to know of a JSON request.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub model: String,
    /// Byte range of the `model` value (quotes included) in the body.
    pub model_span: Range<usize>,
    pub stream: bool,
    pub include_usage: bool,
    /// The sampling parameters a span reports, read in the same pass.
    pub sampling: Sampling,
    /// The body has a `metadata` or a top-level `tags` member, where a request's tags
    /// may be (`routing::tags` takes them out).
    pub gateway_fields: bool,
}

/// `max_completion_tokens` (or `max_tokens`), `temperature` and `top_p` when the body
/// gives them as numbers (anything else is the provider's to judge).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sampling {
    pub max_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Field {
    Model,
    Stream,
    StreamOptions,
    MaxTokens,
    MaxCompletionTokens,
    Temperature,
    TopP,
    Metadata,
    Tags,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

struct HeadVisitor;

#[derive(Default)]
struct Found<'de> {
    model: Option<&'de RawValue>,
    stream: bool,
    include_usage: bool,
    sampling: Sampling,
    max_completion_tokens: Option<i64>,
    max_tokens: Option<i64>,
    gateway_fields: bool,
}

/// A number, or `None` for any other JSON value (skipped, not built).
struct Number(Option<f64>);

impl<'de> de::Deserialize<'de> for Number {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_f64<E>(self, x: f64) -> Result<Number, E> {
                Ok(Number(Some(x)))
            }
            fn visit_i64<E>(self, x: i64) -> Result<Number, E> {
                Ok(Number(Some(x as f64)))
            }
            fn visit_u64<E>(self, x: u64) -> Result<Number, E> {
                Ok(Number(Some(x as f64)))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Number, E> {
                Ok(Number(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Number, E> {
                Ok(Number(None))
            }
            fn visit_unit<E>(self) -> Result<Number, E> {
                Ok(Number(None))
            }
            fn visit_none<E>(self) -> Result<Number, E> {
                Ok(Number(None))
            }
            fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Number, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Number, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Number(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Number, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Number(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A whole number of tokens, as a span reports it.
fn tokens(n: Option<f64>) -> Option<i64> {
    n.filter(|x| x.fract() == 0.0 && x.abs() < 1e15)
        .map(|x| x as i64)
}

impl<'de> Visitor<'de> for HeadVisitor {
    type Value = Found<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found<'de>, A::Error> {
        let mut found = Found::default();
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Model => found.model = Some(map.next_value()?),
                Field::Stream => {
                    found.stream = map
                        .next_value::<Option<bool>>()
                        .map_err(|_| de::Error::custom("`stream` must be a boolean"))?
                        .unwrap_or(false)
                }
                Field::StreamOptions => {
                    let opts: Option<StreamOptions> = map
                        .next_value()
                        .map_err(|_| de::Error::custom("`stream_options` must be an object"))?;
                    found.include_usage = opts.and_then(|o| o.include_usage).unwrap_or(false);
                }
                Field::MaxCompletionTokens => {
                    found.max_completion_tokens = tokens(map.next_value::<Number>()?.0)
                }
                Field::MaxTokens => found.max_tokens = tokens(map.next_value::<Number>()?.0),
                Field::Temperature => found.sampling.temperature = map.next_value::<Number>()?.0,
                Field::TopP => found.sampling.top_p = map.next_value::<Number>()?.0,
                Field::Metadata | Field::Tags => {
                    found.gateway_fields = true;
                    map.next_value::<IgnoredAny>()?;
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

/// Parse the head of a JSON request body, validating the whole body's syntax and its
/// UTF-8 (strings the head parse skips would otherwise reach the provider unchecked).
pub fn parse_head(body: &[u8]) -> Result<Head, GatewayError> {
    if body.is_empty() {
        return Err(GatewayError::bad_request(
            "the request body is empty; expected a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_str(utf8(body)?);
    let found = de
        .deserialize_map(HeadVisitor)
        .and_then(|f| de.end().map(|()| f))
        .map_err(|e| GatewayError::bad_request(format!("invalid JSON body: {e}")))?;
    let raw = found.model.ok_or_else(|| GatewayError::BadRequest {
        message: "missing required parameter: 'model'".into(),
        param: Some("model"),
        code: Some("missing_required_parameter"),
    })?;
    let model: String = serde_json::from_str(raw.get()).map_err(|_| GatewayError::BadRequest {
        message: "'model' must be a string".into(),
        param: Some("model"),
        code: Some("invalid_type"),
    })?;
    if model.is_empty() {
        return Err(GatewayError::BadRequest {
            message: "'model' must not be empty".into(),
            param: Some("model"),
            code: Some("missing_required_parameter"),
        });
    }
    let start = (raw.get().as_ptr() as usize).saturating_sub(body.as_ptr() as usize);
    Ok(Head {
        model,
        model_span: start..start + raw.get().len(),
        stream: found.stream,
        include_usage: found.include_usage,
        sampling: Sampling {
            max_tokens: found.max_completion_tokens.or(found.max_tokens),
            ..found.sampling
        },
        gateway_fields: found.gateway_fields,
    })
}

/// The body with the `model` value replaced by `model_id` (unchanged if equal).
pub fn with_model(body: &Bytes, head: &Head, model_id: &str) -> Bytes {
    if head.model == model_id {
        return body.clone();
    }
    let quoted = serde_json::to_string(model_id).unwrap_or_default();
    let mut out = BytesMut::with_capacity(body.len() + quoted.len());
    out.extend_from_slice(&body[..head.model_span.start]);
    out.extend_from_slice(quoted.as_bytes());
    out.extend_from_slice(&body[head.model_span.end..]);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_model_and_flags() {
        let body = br#"{"messages":[{"role":"user","content":"hi \"model\""}], "model" : "gpt-4o","stream":true,"stream_options":{"include_usage":true},"x":{"model":"no"}}"#;
        let head = parse_head(body).unwrap();
        assert_eq!(head.model, "gpt-4o");
        assert_eq!(&body[head.model_span.clone()], b"\"gpt-4o\"");
        assert!(head.stream && head.include_usage);
        let rewritten = with_model(&Bytes::from_static(body), &head, "llama3-70b-8192");
        let v: serde_json::Value = serde_json::from_slice(&rewritten).unwrap();
        assert_eq!(v["model"], "llama3-70b-8192");
        assert_eq!(v["x"]["model"], "no");
        assert_eq!(v["messages"][0]["content"], "hi \"model\"");
    }

    #[test]
    fn sampling_parameters_are_read_with_the_head() {
        let head = parse_head(
            br#"{"max_completion_tokens":12,"model":"m","max_tokens":7,"temperature":0.5,"top_p":1}"#,
        )
        .unwrap();
        let want = Sampling {
            max_tokens: Some(12),
            temperature: Some(0.5),
            top_p: Some(1.0),
        };
        assert_eq!(head.sampling, want);
        let head = parse_head(br#"{"model":"m","max_tokens":7}"#).unwrap();
        assert_eq!(head.sampling.max_tokens, Some(7));
        // Values that are not numbers are the provider's to refuse, not ours.
        let head =
            parse_head(br#"{"model":"m","max_tokens":"7","temperature":{"a":[1]},"top_p":null}"#)
                .unwrap();
        assert_eq!(head.sampling, Sampling::default());
        let head = parse_head(br#"{"model":"m","max_tokens":7.5,"temperature":[0.1]}"#).unwrap();
        assert_eq!(head.sampling, Sampling::default());
    }

    #[test]
    fn escaped_model_name() {
        let body = br#"{"model":"a\u002fb"}"#;
        let head = parse_head(body).unwrap();
        assert_eq!(head.model, "a/b");
        let out = with_model(&Bytes::from_static(body), &head, "x");
        assert_eq!(&out[..], br#"{"model":"x"}"#);
    }

    #[test]
    fn errors() {
        for (body, needle) in [
            (&b""[..], "empty"),
            (b"{", "invalid JSON"),
            (b"[1]", "invalid JSON"),
            (b"{\"messages\":[]}", "'model'"),
            (b"{\"model\":3}", "must be a string"),
            (b"{\"model\":\"\"}", "must not be empty"),
            (b"{\"model\":\"m\",\"stream\":\"yes\"}", "boolean"),
            (b"{\"model\":\"m\"} trailing", "invalid JSON"),
            (
                b"{\"model\":\"m\",\"x\":\"\xff\"}",
                "not valid UTF-8 (invalid byte at offset 18)",
            ),
        ] {
            let err = parse_head(body).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
            assert!(
                err.to_string().contains(needle),
                "{err} should contain {needle}"
            );
        }
    }

    #[test]
    fn null_stream_is_false() {
        let head = parse_head(br#"{"model":"m","stream":null,"stream_options":null}"#).unwrap();
        assert!(!head.stream && !head.include_usage);
    }
}
