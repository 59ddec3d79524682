//! OTLP's trace export request (`ExportTraceServiceRequest`, protobuf) written straight
//! from the gateway's spans.
//!
//! Why not the generated types: building them copies every attribute key and value
//! into its own `String` and then encodes with nested lengths recomputed at each
//! level, which was most of what a traced request cost in `bench/callgrind.sh`. Here
//! each length is computed once, bottom-up, and the bytes are written in one pass.
//! The unit tests decode the output with `opentelemetry-proto`'s generated types.
//!
//! Field numbers are those of `opentelemetry/proto/trace/v1/trace.proto`,
//! `common/v1/common.proto` and `collector/trace/v1/trace_service.proto`.

use std::borrow::Cow;
use std::sync::Arc;

/// A span's kind (OTLP's `Span.SpanKind`).
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Server = 2,
    Client = 3,
}

/// An attribute's value.
#[derive(Debug, Clone)]
pub enum Val {
    Str(Cow<'static, str>),
    /// A string put on more than one span (an answer's id, say): cloned by count.
    Shared(Arc<str>),
    Int(i64),
    F64(f64),
    Strs(Arc<[String]>),
}

impl From<&'static str> for Val {
    fn from(s: &'static str) -> Self {
        Val::Str(Cow::Borrowed(s))
    }
}

impl From<String> for Val {
    fn from(s: String) -> Self {
        Val::Str(Cow::Owned(s))
    }
}

impl From<i64> for Val {
    fn from(n: i64) -> Self {
        Val::Int(n)
    }
}

impl From<f64> for Val {
    fn from(x: f64) -> Self {
        Val::F64(x)
    }
}

impl From<Arc<str>> for Val {
    fn from(s: Arc<str>) -> Self {
        Val::Shared(s)
    }
}

impl From<Vec<String>> for Val {
    fn from(v: Vec<String>) -> Self {
        Val::Strs(v.into())
    }
}

/// One span attribute. Keys are the conventions' names, always static.
#[derive(Debug, Clone)]
pub struct Attr {
    pub key: &'static str,
    pub value: Val,
}

impl Attr {
    pub fn new(key: &'static str, value: impl Into<Val>) -> Attr {
        Attr {
            key,
            value: value.into(),
        }
    }
}

/// An ended span, as it is exported.
#[derive(Debug, Clone)]
pub struct SpanData {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    /// The parent's span lives in another process (the client's).
    pub remote_parent: bool,
    /// The W3C trace flags (bit 0: sampled).
    pub flags: u8,
    pub trace_state: Option<Arc<str>>,
    pub name: String,
    pub kind: Kind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attrs: Vec<Attr>,
    /// Ended with an error of this kind (status ERROR, its message the kind).
    pub error: Option<&'static str>,
}

// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// OTLP `SpanFlags`: the `is_remote` bit of the parent is known, and its value.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;
/// OTLP `Status.StatusCode.STATUS_CODE_ERROR`.
const STATUS_ERROR: u64 = 2;

fn varint_len(v: u64) -> usize {
    // Bits needed (at least one), seven to a byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[inline]
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field << 3 | u32::from(wire)));
}

fn tag_len(field: u32) -> usize {
    varint_len(u64::from(field << 3))
}

/// The size of a length-delimited field whose content is `n` bytes.
fn field_len(field: u32, n: usize) -> usize {
    tag_len(field) + varint_len(n as u64) + n
}

/// Tag and length of a length-delimited field; its `n` bytes follow.
fn open(out: &mut Vec<u8>, field: u32, n: usize) {
    tag(out, field, LEN);
    varint(out, n as u64);
}

#[inline]
fn bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    open(out, field, b.len());
    out.extend_from_slice(b);
}

/// `AnyValue`'s content size.
fn any_len(v: &Val) -> usize {
    match v {
        Val::Str(s) => field_len(1, s.len()),
        Val::Shared(s) => field_len(1, s.len()),
        Val::Int(n) => tag_len(3) + varint_len(*n as u64),
        Val::F64(_) => tag_len(4) + 8,
        Val::Strs(items) => field_len(5, array_len(items)),
    }
}

/// `ArrayValue`'s content size: each string an `AnyValue`.
fn array_len(items: &[String]) -> usize {
    items
        .iter()
        .map(|s| field_len(1, field_len(1, s.len())))
        .sum()
}

fn any(out: &mut Vec<u8>, v: &Val) {
    match v {
        Val::Str(s) => bytes_field(out, 1, s.as_bytes()),
        Val::Shared(s) => bytes_field(out, 1, s.as_bytes()),
        Val::Int(n) => {
            tag(out, 3, VARINT);
            varint(out, *n as u64);
        }
        Val::F64(x) => {
            tag(out, 4, FIXED64);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Val::Strs(items) => {
            open(out, 5, array_len(items));
            for s in items.iter() {
                open(out, 1, field_len(1, s.len()));
                bytes_field(out, 1, s.as_bytes());
            }
        }
    }
}

/// `KeyValue`'s content size.
fn kv_len(key: &str, v: &Val) -> usize {
    field_len(1, key.len()) + field_len(2, any_len(v))
}

/// A repeated `KeyValue` field `field`.
fn kv(out: &mut Vec<u8>, field: u32, key: &str, v: &Val) {
    let value = any_len(v);
    open(out, field, field_len(1, key.len()) + field_len(2, value));
    bytes_field(out, 1, key.as_bytes());
    open(out, 2, value);
    any(out, v);
}

fn status_len(kind: &str) -> usize {
    field_len(2, kind.len()) + tag_len(3) + varint_len(STATUS_ERROR)
}

fn span_len(s: &SpanData) -> usize {
    let mut n = field_len(1, 16) + field_len(2, 8);
    if let Some(state) = &s.trace_state {
        n += field_len(3, state.len());
    }
    if s.parent.is_some() {
        n += field_len(4, 8);
    }
    n += field_len(5, s.name.len());
    n += tag_len(6) + varint_len(s.kind as u64);
    n += 2 * (tag_len(7) + 8);
    for a in &s.attrs {
        n += field_len(9, kv_len(a.key, &a.value));
    }
    if let Some(kind) = s.error {
        n += field_len(15, status_len(kind));
    }
    n + tag_len(16) + 4
}

fn span(out: &mut Vec<u8>, s: &SpanData, len: usize) {
    open(out, 2, len);
    bytes_field(out, 1, &s.trace_id);
    bytes_field(out, 2, &s.span_id);
    if let Some(state) = &s.trace_state {
        bytes_field(out, 3, state.as_bytes());
    }
    if let Some(parent) = &s.parent {
        bytes_field(out, 4, parent);
    }
    bytes_field(out, 5, s.name.as_bytes());
    tag(out, 6, VARINT);
    varint(out, s.kind as u64);
    tag(out, 7, FIXED64);
    out.extend_from_slice(&s.start_ns.to_le_bytes());
    tag(out, 8, FIXED64);
    out.extend_from_slice(&s.end_ns.to_le_bytes());
    for a in &s.attrs {
        kv(out, 9, a.key, &a.value);
    }
    if let Some(kind) = s.error {
        open(out, 15, status_len(kind));
        bytes_field(out, 2, kind.as_bytes());
        tag(out, 3, VARINT);
        varint(out, STATUS_ERROR);
    }
    let remote = if s.remote_parent { IS_REMOTE } else { 0 };
    tag(out, 16, FIXED32);
    out.extend_from_slice(&(u32::from(s.flags) | HAS_IS_REMOTE | remote).to_le_bytes());
}

/// The instrumentation scope's name.
const SCOPE: &str = "liter-llm";
const SERVICE_NAME: &str = "service.name";

/// One export request with `spans`, from the service `service`.
pub fn encode(spans: &[SpanData], service: &str) -> Vec<u8> {
    let service = Val::Str(Cow::Owned(service.to_owned()));
    let resource = field_len(1, kv_len(SERVICE_NAME, &service));
    let scope = field_len(1, SCOPE.len()) + field_len(2, env!("CARGO_PKG_VERSION").len());
    let lens: Vec<usize> = spans.iter().map(span_len).collect();
    let scope_spans = field_len(1, scope) + lens.iter().map(|&n| field_len(2, n)).sum::<usize>();
    let resource_spans = field_len(1, resource) + field_len(2, scope_spans);
    let mut out = Vec::with_capacity(field_len(1, resource_spans));
    open(&mut out, 1, resource_spans);
    open(&mut out, 1, resource);
    kv(&mut out, 1, SERVICE_NAME, &service);
    open(&mut out, 2, scope_spans);
    open(&mut out, 1, scope);
    bytes_field(&mut out, 1, SCOPE.as_bytes());
    bytes_field(&mut out, 2, env!("CARGO_PKG_VERSION").as_bytes());
    for (s, &n) in spans.iter().zip(&lens) {
        span(&mut out, s, n);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message;

    fn sample(n: usize) -> SpanData {
        SpanData {
            trace_id: [7; 16],
            span_id: [n as u8 + 1; 8],
            parent: (n > 0).then_some([1; 8]),
            remote_parent: n == 0,
            flags: 1,
            trace_state: (n == 0).then(|| Arc::from("vendor=x")),
            name: format!("chat model-{n}"),
            kind: if n == 0 { Kind::Server } else { Kind::Client },
            start_ns: 1_700_000_000_000_000_000 + n as u64,
            end_ns: 1_700_000_000_500_000_000,
            attrs: vec![
                Attr::new("gen_ai.operation.name", "chat"),
                Attr::new("gen_ai.request.model", "x".repeat(200 * n)),
                Attr::new("gen_ai.usage.input_tokens", 12_i64),
                Attr::new("negative", -3_i64),
                Attr::new("gen_ai.request.temperature", 0.25),
                Attr::new("gen_ai.response.id", Arc::<str>::from("chatcmpl-1")),
                Attr::new(
                    "gen_ai.response.finish_reasons",
                    vec!["stop".to_owned(), "ü".repeat(70)],
                ),
            ],
            error: (n == 1).then_some("upstream_error"),
        }
    }

    #[test]
    fn what_is_written_decodes_as_otlp_with_every_field() {
        let spans: Vec<SpanData> = (0..3).map(sample).collect();
        let bytes = encode(&spans, "gw-test");
        let req = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(req.resource_spans.len(), 1);
        let rs = &req.resource_spans[0];
        let res = rs.resource.as_ref().unwrap();
        assert_eq!(res.attributes[0].key, "service.name");
        assert_eq!(
            res.attributes[0].value.as_ref().unwrap().value,
            Some(Any::StringValue("gw-test".into()))
        );
        let ss = &rs.scope_spans[0];
        assert_eq!(ss.scope.as_ref().unwrap().name, "liter-llm");
        assert_eq!(ss.spans.len(), 3);
        for (i, (got, want)) in ss.spans.iter().zip(&spans).enumerate() {
            assert_eq!(got.trace_id, want.trace_id);
            assert_eq!(got.span_id, want.span_id);
            assert_eq!(
                got.parent_span_id,
                want.parent.map_or(vec![], |p| p.to_vec())
            );
            assert_eq!(got.name, want.name);
            assert_eq!(got.kind, want.kind as i32);
            assert_eq!(got.start_time_unix_nano, want.start_ns);
            assert_eq!(got.end_time_unix_nano, want.end_ns);
            assert_eq!(got.trace_state, if i == 0 { "vendor=x" } else { "" });
            let remote = if i == 0 { 0x300 } else { 0x100 };
            assert_eq!(got.flags, 1 | remote);
            let values: Vec<(&str, &Any)> = got
                .attributes
                .iter()
                .map(|a| {
                    (
                        a.key.as_str(),
                        a.value.as_ref().unwrap().value.as_ref().unwrap(),
                    )
                })
                .collect();
            assert_eq!(values.len(), 7);
            assert_eq!(
                values[0],
                ("gen_ai.operation.name", &Any::StringValue("chat".into()))
            );
            assert_eq!(values[1].1, &Any::StringValue("x".repeat(200 * i)));
            assert_eq!(values[2].1, &Any::IntValue(12));
            assert_eq!(values[3].1, &Any::IntValue(-3));
            assert_eq!(values[4].1, &Any::DoubleValue(0.25));
            assert_eq!(values[5].1, &Any::StringValue("chatcmpl-1".into()));
            let Any::ArrayValue(a) = values[6].1 else {
                panic!("not an array")
            };
            let reasons: Vec<_> = a.values.iter().map(|v| v.value.clone().unwrap()).collect();
            assert_eq!(
                reasons,
                vec![
                    Any::StringValue("stop".into()),
                    Any::StringValue("ü".repeat(70))
                ]
            );
            let status = got.status.clone().unwrap_or_default();
            if i == 1 {
                assert_eq!(
                    (status.code, status.message.as_str()),
                    (2, "upstream_error")
                );
            } else {
                assert_eq!(status.code, 0);
            }
        }
    }

    #[test]
    fn varint_lengths_match_what_is_written() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
        }
    }

    #[test]
    fn an_empty_batch_is_a_valid_request() {
        let req = ExportTraceServiceRequest::decode(encode(&[], "s").as_slice()).unwrap();
        assert!(req.resource_spans[0].scope_spans[0].spans.is_empty());
    }
}
