//! OTLP's trace export request (`ExportTraceServiceRequest`, protobuf) written straight
//! from the gateway's spans.
//!
//! A span is encoded while it is recorded: [`Body`] is the bytes of one OTLP `Span`
//! message, to which each attribute is appended as it is set, and the fields known
//! only at the end (name, end time, status) when it ends. Protobuf lets a message's
//! fields come in any order, so nothing is held in between and nothing is encoded
//! twice: an export request is the spans' bytes behind a fixed envelope. Attributes
//! two spans share (an answer's) are encoded once, as [`Attrs`], and copied.
//! The unit tests decode the output with `opentelemetry-proto`'s generated types.
//!
//! Field numbers are those of `opentelemetry/proto/trace/v1/trace.proto`,
//! `common/v1/common.proto` and `collector/trace/v1/trace_service.proto`.

/// A span's kind (OTLP's `Span.SpanKind`).
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Server = 2,
    Client = 3,
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
/// The tag of `Span.flags` (field 16, fixed32): a two-byte varint.
const FLAGS_TAG: [u8; 2] = {
    let tag = 16 << 3 | FIXED32;
    [tag & 0x7f | 0x80, tag >> 7]
};
/// `Span.attributes`.
const ATTRIBUTES: u32 = 9;
/// The one-byte tags of `Span.attributes`, `KeyValue.key` and `KeyValue.value`.
const ATTRIBUTES_TAG: u8 = (ATTRIBUTES as u8) << 3 | LEN;
const KEY_TAG: u8 = 1 << 3 | LEN;
const VALUE_TAG: u8 = 2 << 3 | LEN;

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

/// Encoded span attributes: repeated `KeyValue`s of a `Span` (field 9), each written
/// when it is set. Keys are the conventions' names, always static.
#[derive(Debug, Default, Clone)]
pub struct Attrs(Vec<u8>);

impl Attrs {
    pub fn with_capacity(n: usize) -> Attrs {
        Attrs(Vec::with_capacity(n))
    }

    /// A `KeyValue` entry's tag, length and key, then the tag and length of its
    /// `AnyValue`, whose `value` bytes follow.
    #[inline]
    fn open(&mut self, key: &str, value: usize) {
        // The common case, a short key and value: every length fits one byte, so the
        // header is written as two fixed pieces around the key.
        let kv = 2 + key.len() + 2 + value;
        if kv < 0x80 {
            self.0.reserve(kv + 2);
            self.0
                .extend_from_slice(&[ATTRIBUTES_TAG, kv as u8, KEY_TAG, key.len() as u8]);
            self.0.extend_from_slice(key.as_bytes());
            self.0.extend_from_slice(&[VALUE_TAG, value as u8]);
            return;
        }
        let out = &mut self.0;
        open(
            out,
            ATTRIBUTES,
            field_len(1, key.len()) + field_len(2, value),
        );
        bytes_field(out, 1, key.as_bytes());
        open(out, 2, value);
    }

    #[inline]
    pub fn str(&mut self, key: &'static str, v: &str) {
        self.open(key, field_len(1, v.len()));
        // `AnyValue.string_value`: field 1.
        bytes_field(&mut self.0, 1, v.as_bytes());
    }

    /// The bytes written since `from` (a length this had), for another span.
    pub fn since(&self, from: usize) -> &[u8] {
        self.0.get(from..).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    #[inline]
    pub fn int(&mut self, key: &'static str, v: i64) {
        self.open(key, tag_len(3) + varint_len(v as u64));
        tag(&mut self.0, 3, VARINT);
        varint(&mut self.0, v as u64);
    }

    pub fn f64(&mut self, key: &'static str, v: f64) {
        self.open(key, tag_len(4) + 8);
        tag(&mut self.0, 4, FIXED64);
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    /// A string array (`ArrayValue`, each string an `AnyValue`).
    pub fn strs<S: AsRef<str>>(&mut self, key: &'static str, items: &[S]) {
        let item = |s: &S| field_len(1, field_len(1, s.as_ref().len()));
        let array: usize = items.iter().map(item).sum();
        self.open(key, field_len(5, array));
        open(&mut self.0, 5, array);
        for s in items {
            let s = s.as_ref();
            open(&mut self.0, 1, field_len(1, s.len()));
            bytes_field(&mut self.0, 1, s.as_bytes());
        }
    }

    /// Appends attributes encoded elsewhere (bytes [`Attrs::since`] gave).
    pub fn extend(&mut self, encoded: &[u8]) {
        self.0.extend_from_slice(encoded);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a span knows when it starts.
pub struct Start<'a> {
    pub trace_id: &'a [u8; 16],
    pub span_id: &'a [u8; 8],
    pub parent: Option<&'a [u8; 8]>,
    /// The parent's span lives in another process (the client's).
    pub remote_parent: bool,
    /// The W3C trace flags (bit 0: sampled).
    pub flags: u8,
    pub trace_state: Option<&'a str>,
    pub kind: Kind,
    pub start_ns: u64,
}

/// One span's `Span` message as it is being recorded: the fields known at its start,
/// then its attributes; [`Body::end`] adds the rest.
#[derive(Debug)]
pub struct Body(Attrs);

impl Body {
    /// `capacity`: the bytes the span is expected to take, so it is not regrown.
    pub fn start(s: &Start<'_>, capacity: usize) -> Body {
        let mut b = Attrs::with_capacity(capacity);
        let out = &mut b.0;
        // The fields every span has are of fixed sizes: written as one piece, each a
        // one-byte tag (two for field 16) and, for the ids, a one-byte length.
        let remote = if s.remote_parent { IS_REMOTE } else { 0 };
        let flags = u32::from(s.flags) | HAS_IS_REMOTE | remote;
        let mut head = [0u8; 45];
        head[0] = 1 << 3 | LEN;
        head[1] = 16;
        head[2..18].copy_from_slice(s.trace_id);
        head[18] = 2 << 3 | LEN;
        head[19] = 8;
        head[20..28].copy_from_slice(s.span_id);
        head[28] = 6 << 3 | VARINT;
        head[29] = s.kind as u8;
        head[30] = 7 << 3 | FIXED64;
        head[31..39].copy_from_slice(&s.start_ns.to_le_bytes());
        head[39..41].copy_from_slice(&FLAGS_TAG);
        head[41..45].copy_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&head);
        if let Some(parent) = s.parent {
            out.extend_from_slice(&[4 << 3 | LEN, 8]);
            out.extend_from_slice(parent);
        }
        if let Some(state) = s.trace_state {
            bytes_field(out, 3, state.as_bytes());
        }
        Body(b)
    }

    /// The span's attributes, to add to.
    pub fn attrs(&mut self) -> &mut Attrs {
        &mut self.0
    }

    /// The span's name: `parts` joined. Written once.
    pub fn name(&mut self, parts: &[&str]) {
        let out = &mut self.0 .0;
        open(out, 5, parts.iter().map(|p| p.len()).sum());
        for p in parts {
            out.extend_from_slice(p.as_bytes());
        }
    }

    /// The whole `Span` message: the end time and, for an error, the status with the
    /// error's kind as its message.
    pub fn end(self, end_ns: u64, error: Option<&str>) -> Vec<u8> {
        let mut out = self.0 .0;
        tag(&mut out, 8, FIXED64);
        out.extend_from_slice(&end_ns.to_le_bytes());
        if let Some(kind) = error {
            open(
                &mut out,
                15,
                field_len(2, kind.len()) + tag_len(3) + varint_len(STATUS_ERROR),
            );
            bytes_field(&mut out, 2, kind.as_bytes());
            tag(&mut out, 3, VARINT);
            varint(&mut out, STATUS_ERROR);
        }
        out
    }
}

/// The instrumentation scope's name.
const SCOPE: &str = "liter-llm";
const SERVICE_NAME: &str = "service.name";

/// One export request with `spans` (each a whole `Span` message), from the service
/// `service`.
pub fn encode(spans: &[Vec<u8>], service: &str) -> Vec<u8> {
    let mut resource = Attrs::default();
    resource.str(SERVICE_NAME, service);
    // A `Resource`'s attributes are its field 1; a `Span`'s are 9.
    resource.0[0] = 1 << 3 | LEN;
    let scope = field_len(1, SCOPE.len()) + field_len(2, env!("CARGO_PKG_VERSION").len());
    let spans_len: usize = spans.iter().map(|s| field_len(2, s.len())).sum();
    let scope_spans = field_len(1, scope) + spans_len;
    let resource_spans = field_len(1, resource.0.len()) + field_len(2, scope_spans);
    let mut out = Vec::with_capacity(field_len(1, resource_spans));
    open(&mut out, 1, resource_spans);
    bytes_field(&mut out, 1, &resource.0);
    open(&mut out, 2, scope_spans);
    open(&mut out, 1, scope);
    bytes_field(&mut out, 1, SCOPE.as_bytes());
    bytes_field(&mut out, 2, env!("CARGO_PKG_VERSION").as_bytes());
    for s in spans {
        bytes_field(&mut out, 2, s);
    }
    out
}

/// What `attrs` decode to: each key with its value (tests).
#[cfg(test)]
pub fn decoded(
    attrs: &Attrs,
) -> Vec<(
    String,
    opentelemetry_proto::tonic::common::v1::any_value::Value,
)> {
    use opentelemetry_proto::tonic::trace::v1::Span;
    use prost::Message;
    Span::decode(attrs.0.as_slice())
        .map(|s| s.attributes)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|kv| Some((kv.key, kv.value?.value?)))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message;

    const START: u64 = 1_700_000_000_000_000_000;
    const END: u64 = 1_700_000_000_500_000_000;

    /// Span `n`: the first a server span with a remote parent and a trace state, the
    /// second failed; attributes set directly and shared.
    fn sample(n: usize, shared: &Attrs) -> Vec<u8> {
        let span_id = [n as u8 + 1; 8];
        let mut b = Body::start(
            &Start {
                trace_id: &[7; 16],
                span_id: &span_id,
                parent: (n > 0).then_some(&[1; 8]),
                remote_parent: n == 0,
                flags: 1,
                trace_state: (n == 0).then_some("vendor=x"),
                kind: if n == 0 { Kind::Server } else { Kind::Client },
                start_ns: START + n as u64,
            },
            // Too small on purpose: the buffer grows.
            16,
        );
        let a = b.attrs();
        a.str("gen_ai.operation.name", "chat");
        a.str("gen_ai.request.model", &"x".repeat(200 * n));
        a.int("gen_ai.usage.input_tokens", 12);
        a.int("negative", -3);
        a.f64("gen_ai.request.temperature", 0.25);
        a.extend(shared.since(0));
        b.name(&["chat", " ", &format!("model-{n}")]);
        b.end(END, (n == 1).then_some("upstream_error"))
    }

    #[test]
    fn what_is_written_decodes_as_otlp_with_every_field() {
        let mut shared = Attrs::default();
        shared.str("gen_ai.response.id", "chatcmpl-1");
        shared.strs(
            "gen_ai.response.finish_reasons",
            &["stop".to_owned(), "ü".repeat(70)],
        );
        let spans: Vec<Vec<u8>> = (0..3).map(|n| sample(n, &shared)).collect();
        let bytes = encode(&spans, "gw-test");
        let req = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(req.resource_spans.len(), 1);
        let rs = &req.resource_spans[0];
        let res = rs.resource.as_ref().unwrap();
        assert_eq!(res.attributes.len(), 1);
        assert_eq!(res.attributes[0].key, "service.name");
        assert_eq!(
            res.attributes[0].value.as_ref().unwrap().value,
            Some(Any::StringValue("gw-test".into()))
        );
        let ss = &rs.scope_spans[0];
        assert_eq!(ss.scope.as_ref().unwrap().name, "liter-llm");
        assert_eq!(
            ss.scope.as_ref().unwrap().version,
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(ss.spans.len(), 3);
        for (i, got) in ss.spans.iter().enumerate() {
            assert_eq!(got.trace_id, [7; 16]);
            assert_eq!(got.span_id, [i as u8 + 1; 8]);
            let parent: Vec<u8> = if i > 0 { vec![1; 8] } else { vec![] };
            assert_eq!(got.parent_span_id, parent);
            assert_eq!(got.name, format!("chat model-{i}"));
            assert_eq!(got.kind, if i == 0 { 2 } else { 3 });
            assert_eq!(got.start_time_unix_nano, START + i as u64);
            assert_eq!(got.end_time_unix_nano, END);
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
            assert_eq!(
                values[5],
                ("gen_ai.response.id", &Any::StringValue("chatcmpl-1".into()))
            );
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
