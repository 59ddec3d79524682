//! OpenTelemetry traces (`general.enable_tracing`): a span per API request and a child
//! span per upstream attempt, with the GenAI semantic conventions' attributes,
//! exported over OTLP/HTTP (protobuf) by a batch processor on its own thread.
//!
//! Never in a request's way: a span that finds the export queue full is dropped and
//! counted (`liter_llm_trace_spans_dropped_total`), as is every span of a batch the
//! collector failed to take. The client's W3C `traceparent`/`tracestate` continue its
//! trace; each attempt sends its own `traceparent` upstream. Prompts and completions
//! are put in spans only with `general.trace_content`. When tracing is off nothing
//! here runs: the stages hold `Option`s.
//!
//! A leaf beside `metrics`: it imports `config`, `metrics`, `logtext` and
//! `objstore` (for the process-wide TLS provider its HTTP client needs) only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, Span, SpanData,
    SpanExporter, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use secrecy::ExposeSecret;

use crate::config::TracingSpec;
use crate::metrics::TraceMetrics;

/// Spans waiting for export at most; one more is dropped (and counted).
pub const QUEUE: usize = 2048;
/// Spans per export request.
const BATCH: usize = 512;
/// How long one export may take before it counts as failed.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest prompt or completion text put in a span (with `trace_content`).
pub const CONTENT_CAP: usize = 64 * 1024;

/// The trace exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP trace exporter: {0}")]
pub struct TracingError(String);

/// The gateway's tracer. Built once by the `App`; shut down (flushing) on drop.
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
    /// `general.trace_content`.
    pub content: bool,
}

impl Tracing {
    pub fn start(spec: &TracingSpec, counters: TraceMetrics) -> Result<Tracing, TracingError> {
        let headers: HashMap<String, String> = spec
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.expose_secret().to_owned()))
            .collect();
        crate::objstore::install_crypto_provider();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(spec.endpoint.clone())
            .with_headers(headers)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            // The error names the setting, never a header value.
            .map_err(|e| TracingError(e.to_string()))?;
        let queued = Arc::new(AtomicUsize::new(0));
        let counted = Counted {
            inner: exporter,
            queued: queued.clone(),
            counters: counters.clone(),
        };
        let batch = BatchSpanProcessor::builder(counted)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(QUEUE)
                    .with_max_export_batch_size(BATCH)
                    .with_scheduled_delay(Duration::from_millis(500))
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(Bounded {
                inner: batch,
                queued,
                counters,
            })
            .with_resource(
                Resource::builder()
                    .with_service_name(spec.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("liter-llm");
        Ok(Tracing {
            provider,
            tracer,
            propagator: TraceContextPropagator::new(),
            content: spec.content,
        })
    }

    /// Sends what is queued and waits for it (tests, shutdown).
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }

    /// The span of an API request (`operation`: `chat` or `embeddings`), continuing
    /// the client's trace when its headers carry one.
    pub fn request(self: &Arc<Self>, headers: &HeaderMap, operation: &'static str) -> Trace {
        let parent = self.propagator.extract(&HeaderRead(headers));
        let span = self
            .tracer
            .span_builder(operation)
            .with_kind(SpanKind::Server)
            .with_attributes([KeyValue::new("gen_ai.operation.name", operation)])
            .start_with_context(&self.tracer, &parent);
        Trace {
            tracing: self.clone(),
            cx: parent.with_span(span),
            operation,
        }
    }
}

impl std::fmt::Debug for Tracing {
    // The exporter's settings hold the OTLP headers (secrets): never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracing")
            .field("content", &self.content)
            .finish_non_exhaustive()
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// A request's span, and what its attempts need to start theirs.
#[derive(Debug, Clone)]
pub struct Trace {
    tracing: Arc<Tracing>,
    cx: Context,
    operation: &'static str,
}

/// One upstream attempt's span.
pub struct Attempt {
    cx: Context,
}

impl Trace {
    /// Whether prompts and completions go in spans.
    pub fn content(&self) -> bool {
        self.tracing.content
    }

    /// Set attributes on the request's span.
    pub fn set(&self, attributes: impl IntoIterator<Item = KeyValue>) {
        self.cx.span().set_attributes(attributes);
    }

    /// The span name the conventions ask for: `{operation} {model}`.
    pub fn name(&self, model: &str) {
        self.cx.span().update_name(format!(
            "{} {}",
            self.operation,
            crate::logtext::capped(model)
        ));
    }

    /// Ends the request's span with its status (`error`: the error's kind).
    pub fn end(&self, status: u16, error: Option<&'static str>) {
        end_span(&self.cx, status, error);
    }

    /// A child span for one attempt on `deployment` of `provider`, sending
    /// `traceparent` (and `tracestate`) upstream in `headers`.
    pub fn attempt(
        &self,
        provider: &'static str,
        model: &str,
        upstream: Option<&axum::http::Uri>,
        headers: &mut Vec<(HeaderName, HeaderValue)>,
    ) -> Attempt {
        let t = &self.tracing;
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", self.operation),
            KeyValue::new("gen_ai.provider.name", provider),
            KeyValue::new("gen_ai.system", provider),
            KeyValue::new("gen_ai.request.model", model.to_owned()),
        ];
        if let Some(uri) = upstream {
            if let Some(host) = uri.host() {
                attributes.push(KeyValue::new("server.address", host.to_owned()));
            }
            if let Some(port) = uri.port_u16() {
                attributes.push(KeyValue::new("server.port", i64::from(port)));
            }
        }
        let span = t
            .tracer
            .span_builder(format!("{} {}", self.operation, model))
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(&t.tracer, &self.cx);
        let cx = self.cx.with_span(span);
        t.propagator.inject_context(&cx, &mut HeaderWrite(headers));
        Attempt { cx }
    }
}

impl Attempt {
    pub fn set(&self, attributes: impl IntoIterator<Item = KeyValue>) {
        self.cx.span().set_attributes(attributes);
    }

    /// Ends the attempt with the upstream's status (`error`: the failure's kind).
    pub fn end(&self, status: u16, error: Option<&'static str>) {
        end_span(&self.cx, status, error);
    }
}

/// Ends the span of `cx` with an HTTP status and, for a failure, its kind.
fn end_span(cx: &Context, status: u16, error: Option<&'static str>) {
    let span = cx.span();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status),
    ));
    if let Some(kind) = error {
        span.set_attribute(KeyValue::new("error.type", kind));
        span.set_status(Status::error(kind));
    }
    span.end();
}

/// `text` cut to [`CONTENT_CAP`] bytes (at a character boundary).
pub fn capped_content(text: &str) -> String {
    let mut end = text.len().min(CONTENT_CAP);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

struct HeaderRead<'a>(&'a HeaderMap);

impl Extractor for HeaderRead<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderWrite<'a>(&'a mut Vec<(HeaderName, HeaderValue)>);

impl Injector for HeaderWrite<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.retain(|(name, _)| *name != n);
            self.0.push((n, v));
        }
    }
}

/// Admits a span to the batch queue only while fewer than [`QUEUE`] wait, so the
/// processor never has to drop one unseen: a span past the bound is dropped and
/// counted here.
#[derive(Debug)]
struct Bounded {
    inner: BatchSpanProcessor,
    queued: Arc<AtomicUsize>,
    counters: TraceMetrics,
}

impl SpanProcessor for Bounded {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= QUEUE {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.counters.dropped.inc();
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The exporter, counting what it sent and what a failed export lost.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    queued: Arc<AtomicUsize>,
    counters: TraceMetrics,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        let result = self.inner.export(batch).await;
        self.queued.fetch_sub(n, Ordering::AcqRel);
        match &result {
            Ok(()) => self.counters.exported.inc_by(n as u64),
            Err(_) => self.counters.dropped.inc_by(n as u64),
        };
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// What the spans read of a whole answer: the rest of it is skipped, not built
/// (parsing it into a `serde_json::Value` was most of tracing's cost per request).
#[derive(serde::Deserialize)]
struct AnswerFacts<'a> {
    #[serde(default, borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    choices: Vec<ChoiceFacts<'a>>,
}

#[derive(serde::Deserialize)]
struct ChoiceFacts<'a> {
    #[serde(default, borrow)]
    finish_reason: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<&'a serde_json::value::RawValue>,
}

/// The GenAI attributes of a whole answer in OpenAI's shape: its id, model, finish
/// reasons, usage, and (with `content`) the completion.
pub fn answer_attributes(bytes: &[u8], content: bool) -> Vec<KeyValue> {
    let Ok(a) = serde_json::from_slice::<AnswerFacts<'_>>(bytes) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(id) = &a.id {
        out.push(KeyValue::new(
            "gen_ai.response.id",
            crate::logtext::capped(id).to_owned(),
        ));
    }
    if let Some(model) = &a.model {
        out.push(KeyValue::new(
            "gen_ai.response.model",
            crate::logtext::capped(model).to_owned(),
        ));
    }
    let reasons: Vec<opentelemetry::StringValue> = a
        .choices
        .iter()
        .filter_map(|c| c.finish_reason.as_deref())
        .map(|r| crate::logtext::capped(r).to_owned().into())
        .collect();
    if !reasons.is_empty() {
        out.push(KeyValue::new(
            "gen_ai.response.finish_reasons",
            opentelemetry::Value::Array(reasons.into()),
        ));
    }
    if content {
        let messages: Vec<&serde_json::value::RawValue> =
            a.choices.iter().filter_map(|c| c.message).collect();
        if let Ok(json) = serde_json::to_string(&messages) {
            out.push(KeyValue::new(
                "gen_ai.output.messages",
                capped_content(&json),
            ));
        }
    }
    out
}

/// The GenAI attributes of what a streamed answer said of itself (nothing for a
/// whole answer, whose attributes [`answer_attributes`] gave).
pub fn stream_attributes(
    id: Option<String>,
    model: Option<String>,
    finish_reasons: Vec<String>,
) -> Vec<KeyValue> {
    let mut out = Vec::new();
    let capped = |s: String| crate::logtext::capped(&s).to_owned();
    if let Some(id) = id {
        out.push(KeyValue::new("gen_ai.response.id", capped(id)));
    }
    if let Some(model) = model {
        out.push(KeyValue::new("gen_ai.response.model", capped(model)));
    }
    if !finish_reasons.is_empty() {
        let reasons: Vec<opentelemetry::StringValue> = finish_reasons
            .into_iter()
            .map(|r| capped(r).into())
            .collect();
        out.push(KeyValue::new(
            "gen_ai.response.finish_reasons",
            opentelemetry::Value::Array(reasons.into()),
        ));
    }
    out
}

/// What the spans read of a request body (the rest is skipped, not built).
#[derive(serde::Deserialize)]
struct RequestFacts<'a> {
    #[serde(default)]
    max_completion_tokens: Option<i64>,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default, borrow)]
    messages: Option<&'a serde_json::value::RawValue>,
    #[serde(default, borrow)]
    input: Option<&'a serde_json::value::RawValue>,
}

/// The GenAI request attributes of an OpenAI-shaped body: the model asked for, the
/// sampling parameters, and (with `content`) the messages.
pub fn request_attributes(body: &[u8], model: &str, content: bool) -> Vec<KeyValue> {
    let mut out = vec![KeyValue::new(
        "gen_ai.request.model",
        crate::logtext::capped(model).to_owned(),
    )];
    let Ok(r) = serde_json::from_slice::<RequestFacts<'_>>(body) else {
        return out;
    };
    if let Some(n) = r.max_completion_tokens.or(r.max_tokens) {
        out.push(KeyValue::new("gen_ai.request.max_tokens", n));
    }
    for (value, key) in [
        (r.temperature, "gen_ai.request.temperature"),
        (r.top_p, "gen_ai.request.top_p"),
    ] {
        if let Some(x) = value {
            out.push(KeyValue::new(key, x));
        }
    }
    if content {
        if let Some(m) = r.messages.or(r.input) {
            out.push(KeyValue::new(
                "gen_ai.input.messages",
                capped_content(m.get()),
            ));
        }
    }
    out
}
