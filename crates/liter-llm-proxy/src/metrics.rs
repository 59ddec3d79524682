//! The gateway's Prometheus metrics (`GET /metrics`), on the `prometheus-client`
//! crate. A leaf: it imports nothing of the gateway, and every stage that counts
//! something gets a handle from here (the `App` owns the one [`Metrics`]).
//!
//! Labels stay low-cardinality: a model or deployment label is a configured name, or
//! `other` for a `provider/model` name a client sent (an `[[aliases]]` pattern made
//! its pool); a key label is the key's configured label (`master`, its description or
//! alias, `key#N`), never the key; a route label is the route's template. Per
//! deployment, every series is resolved once ([`DeploymentMetrics`]), so a request
//! pays for atomic adds, not for label hashing, on its upstream path.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The label of a name no configuration gave (a client-sent `provider/model`).
pub const OTHER: &str = "other";

/// Histogram buckets in seconds, from 1 ms to 10 min.
pub const BUCKETS: [f64; 18] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// A label value, made once with its hash: finding a request's series then hashes one
/// number per label, not the label's text.
#[derive(Clone, Debug)]
pub struct Label {
    text: Arc<str>,
    hash: u64,
}

impl Label {
    pub fn new(text: &str) -> Label {
        let mut h = rustc_hash::FxHasher::default();
        h.write(text.as_bytes());
        Label {
            text: text.into(),
            hash: h.finish(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl From<&str> for Label {
    fn from(text: &str) -> Label {
        Label::new(text)
    }
}

impl Hash for Label {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for Label {
    fn eq(&self, other: &Label) -> bool {
        self.hash == other.hash && (Arc::ptr_eq(&self.text, &other.text) || self.text == other.text)
    }
}

impl Eq for Label {}

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// Which deployment: model (pool) name, deployment (`provider/model`), provider.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentLabels {
    pub model: Label,
    pub deployment: Label,
    pub provider: Label,
}

/// `requests_total`: a finished request.
#[derive(Clone, Debug, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    model: Label,
    deployment: Label,
    provider: Label,
    key: Label,
    route: Label,
    status: &'static str,
}

/// `request_duration_seconds`.
#[derive(Clone, Debug, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: Label,
    model: Label,
}

/// The label sets every request looks up are hashed as one number made of their
/// labels' own hashes: a family's map hashes with SipHash, which costs per value
/// written, and these sets have up to six.
fn one_hash<H: Hasher>(state: &mut H, parts: &[u64]) {
    let mut h = rustc_hash::FxHasher::default();
    for &p in parts {
        h.write_u64(p);
    }
    state.write_u64(h.finish());
}

impl Hash for RequestLabels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // A status class is told by its first digit ("2xx").
        let status = self.status.as_bytes().first().copied().unwrap_or(0);
        one_hash(
            state,
            &[
                self.model.hash,
                self.deployment.hash,
                self.provider.hash,
                self.key.hash,
                self.route.hash,
                u64::from(status),
            ],
        );
    }
}

impl Hash for RouteLabels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        one_hash(state, &[self.route.hash, self.model.hash]);
    }
}

/// An HTTP status, by its class.
fn status_class(status: u16) -> &'static str {
    match status {
        0..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    model: Label,
    deployment: Label,
    provider: Label,
    r#type: &'static str,
}

/// A refusal before any upstream call: `kind` is `rate_limit` or `budget`, `scope`
/// is `key`, `gateway`, `model` or `deployment`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    kind: &'static str,
    scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    model: Label,
    to: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Every series of one deployment, resolved once.
#[derive(Debug)]
pub struct DeploymentMetrics {
    pub labels: DeploymentLabels,
    pub upstream_duration: Histogram,
    pub time_to_first_token: Histogram,
    pub input_tokens: Counter,
    pub output_tokens: Counter,
    pub cached_tokens: Counter,
    pub cost: Counter<f64, AtomicU64>,
    pub retries: Counter,
    pub cooldowns: Counter,
    pub healthy: Gauge,
    pub in_flight: Gauge,
}

impl DeploymentMetrics {
    /// The time of one upstream attempt (to the whole answer, or to a stream's first
    /// chunk).
    pub fn upstream(&self, took: Duration) {
        self.upstream_duration.observe(took.as_secs_f64());
    }
}

/// The cache stage's counters (hits, misses, errors), for the cache to increment.
#[derive(Debug, Clone)]
pub struct CacheMetrics {
    pub hits: Counter,
    pub misses: Counter,
    pub errors: Counter,
}

/// Counters of the trace exporter: spans ended, exported, and dropped (a full queue
/// or a failed export: a collector that is down).
#[derive(Debug, Clone, Default)]
pub struct TraceMetrics {
    pub exported: Counter,
    pub dropped: Counter,
}

/// The spend store's writes: ledger rows settled and not yet written to the database,
/// and how long each write took (a batch for SQLite, a settlement for PostgreSQL).
#[derive(Debug, Clone)]
pub struct SpendMetrics {
    pub queued: Gauge,
    pub write: Histogram,
    /// Requests' spend records held in memory while the spend store is down.
    pub spooled: Gauge,
    /// Requests refused (503) because that buffer was full.
    pub spool_refused: Counter,
}

/// The request log sinks' counters, by sink (`file#0`, `webhook#1`: configured
/// positions, never a URL or a path).
#[derive(Debug, Clone, Default)]
pub struct LogMetrics {
    sent: Family<SinkLabel, Counter>,
    dropped: Family<SinkLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabel {
    sink: Label,
}

impl LogMetrics {
    /// The (sent, dropped) counters of the sink named `sink`.
    pub fn sink(&self, sink: &str) -> (Counter, Counter) {
        let label = SinkLabel { sink: sink.into() };
        (
            self.sent.get_or_create_owned(&label),
            self.dropped.get_or_create_owned(&label),
        )
    }
}

/// The gateway's registry and the families every stage records into.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RouteLabels, Histogram>,
    upstream_duration: Family<DeploymentLabels, Histogram>,
    time_to_first_token: Family<DeploymentLabels, Histogram>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<DeploymentLabels, Counter<f64, AtomicU64>>,
    rejections: Family<RejectionLabels, Counter>,
    retries: Family<DeploymentLabels, Counter>,
    fallbacks: Family<FallbackLabels, Counter>,
    cooldowns: Family<DeploymentLabels, Counter>,
    healthy: Family<DeploymentLabels, Gauge>,
    in_flight: Family<DeploymentLabels, Gauge>,
    pub cache: CacheMetrics,
    pub traces: TraceMetrics,
    pub logs: LogMetrics,
    pub spend: SpendMetrics,
    /// Rate-limit decisions Redis could not make (`general.redis_url`).
    pub redis_unavailable: Counter,
    /// The label `""`: no model, deployment or provider.
    none: Label,
    /// The master key's label.
    master: Label,
    /// The routes' labels, made on first use (route templates: a few dozen at most).
    routes: RwLock<HashMap<Box<str>, Label, rustc_hash::FxBuildHasher>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// What the request log knows of a finished request.
pub struct Finished<'a> {
    pub deployment: Option<&'a DeploymentLabels>,
    pub key: Option<&'a Label>,
    pub route: &'a Label,
    pub status: u16,
    pub duration: Duration,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("liter_llm");
        let requests = Family::default();
        registry.register(
            "requests",
            "Requests answered, by model, deployment, provider, key, route and status class",
            requests.clone(),
        );
        let request_duration =
            Family::<RouteLabels, Histogram>::new_with_constructor(histogram as fn() -> _);
        registry.register_with_unit(
            "request_duration",
            "Time from the request to the end of its response (a stream's last byte)",
            Unit::Seconds,
            request_duration.clone(),
        );
        let upstream_duration =
            Family::<DeploymentLabels, Histogram>::new_with_constructor(histogram as fn() -> _);
        registry.register_with_unit(
            "upstream_duration",
            "Time of one upstream attempt, to the whole answer or a stream's first chunk",
            Unit::Seconds,
            upstream_duration.clone(),
        );
        let time_to_first_token =
            Family::<DeploymentLabels, Histogram>::new_with_constructor(histogram as fn() -> _);
        registry.register_with_unit(
            "time_to_first_token",
            "Time from the upstream request to a stream's first chunk",
            Unit::Seconds,
            time_to_first_token.clone(),
        );
        let tokens = Family::default();
        registry.register(
            "tokens",
            "Tokens the providers reported, by type (input, output, cached)",
            tokens.clone(),
        );
        let cost = Family::default();
        registry.register_with_unit(
            "cost",
            "Cost of answers in USD, as priced by the gateway (cost tracking on)",
            Unit::Other("usd".into()),
            cost.clone(),
        );
        let rejections = Family::default();
        registry.register(
            "rejections",
            "Requests refused by a rate limit or a budget, by scope",
            rejections.clone(),
        );
        let retries = Family::default();
        registry.register(
            "retries",
            "Attempts after the first in a model's pool (a retry), by the deployment retried on",
            retries.clone(),
        );
        let fallbacks = Family::default();
        registry.register(
            "fallbacks",
            "Requests moved on to a fallback model",
            fallbacks.clone(),
        );
        let cooldowns = Family::default();
        registry.register(
            "cooldowns",
            "Times a deployment entered a cooldown",
            cooldowns.clone(),
        );
        let healthy = Family::default();
        registry.register(
            "deployment_healthy",
            "1 when the deployment's health probe passes and it is not cooling down",
            healthy.clone(),
        );
        let in_flight = Family::default();
        registry.register(
            "deployment_in_flight",
            "Requests in flight on the deployment",
            in_flight.clone(),
        );
        let cache = register_cache(&mut registry);
        let traces = TraceMetrics::default();
        registry.register(
            "trace_spans_exported",
            "Spans the trace exporter sent",
            traces.exported.clone(),
        );
        registry.register(
            "trace_spans_dropped",
            "Spans dropped: the export queue was full or the collector failed",
            traces.dropped.clone(),
        );
        let logs = register_logs(&mut registry);
        let spend = register_spend(&mut registry);
        let redis_unavailable = register_redis(&mut registry);
        Metrics {
            registry,
            requests,
            request_duration,
            upstream_duration,
            time_to_first_token,
            tokens,
            cost,
            rejections,
            retries,
            fallbacks,
            cooldowns,
            healthy,
            in_flight,
            cache,
            traces,
            logs,
            spend,
            redis_unavailable,
            none: Label::new(""),
            master: Label::new("master"),
            routes: RwLock::default(),
        }
    }

    /// The series of a deployment: `model` is `None` for a pool a client-sent
    /// `provider/model` name made (both labels are then `other`).
    pub fn deployment(
        &self,
        model: Option<&str>,
        deployment: &str,
        provider: &str,
    ) -> Arc<DeploymentMetrics> {
        let (model, deployment): (Label, Label) = match model {
            Some(m) => (m.into(), deployment.into()),
            None => (OTHER.into(), OTHER.into()),
        };
        let labels = DeploymentLabels {
            model,
            deployment,
            provider: provider.into(),
        };
        let token = |r#type| {
            self.tokens.get_or_create_owned(&TokenLabels {
                model: labels.model.clone(),
                deployment: labels.deployment.clone(),
                provider: labels.provider.clone(),
                r#type,
            })
        };
        Arc::new(DeploymentMetrics {
            upstream_duration: self.upstream_duration.get_or_create_owned(&labels),
            time_to_first_token: self.time_to_first_token.get_or_create_owned(&labels),
            input_tokens: token("input"),
            output_tokens: token("output"),
            cached_tokens: token("cached"),
            cost: self.cost.get_or_create_owned(&labels),
            retries: self.retries.get_or_create_owned(&labels),
            cooldowns: self.cooldowns.get_or_create_owned(&labels),
            healthy: self.healthy.get_or_create_owned(&labels),
            in_flight: self.in_flight.get_or_create_owned(&labels),
            labels,
        })
    }

    /// A label value made once (a route template, a key's label).
    pub fn label(value: &str) -> Label {
        value.into()
    }

    /// The label of the route template `route`, made once.
    pub fn route_label(&self, route: &str) -> Label {
        /// Route templates are the router's own, so this many is never reached; past it
        /// a label is made per call rather than kept.
        const MAX_ROUTES: usize = 512;
        if let Some(l) = self
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(route)
        {
            return l.clone();
        }
        let label = Label::new(route);
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        if routes.len() < MAX_ROUTES {
            routes.insert(route.into(), label.clone());
        }
        label
    }

    /// The label of the master key (made once).
    pub fn master_label(&self) -> &Label {
        &self.master
    }

    /// A finished request (called by the request log).
    pub fn finished(&self, f: Finished<'_>) {
        let none = &self.none;
        let (model, deployment, provider) = match f.deployment {
            Some(d) => (&d.model, &d.deployment, &d.provider),
            None => (none, none, none),
        };
        self.requests
            .get_or_create(&RequestLabels {
                model: model.clone(),
                deployment: deployment.clone(),
                provider: provider.clone(),
                key: f.key.unwrap_or(none).clone(),
                route: f.route.clone(),
                status: status_class(f.status),
            })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabels {
                route: f.route.clone(),
                model: model.clone(),
            })
            .observe(f.duration.as_secs_f64());
    }

    /// A request refused by a rate limit (`kind` = `rate_limit`) or a budget
    /// (`budget`), in `scope`.
    pub fn rejected(&self, kind: &'static str, scope: &'static str) {
        self.rejections
            .get_or_create(&RejectionLabels { kind, scope })
            .inc();
    }

    /// A request moved from model `from` on to its fallback `to` (labels of
    /// configured names, or `other`).
    pub fn fell_back(&self, from: &Label, to: &Label) {
        self.fallbacks
            .get_or_create(&FallbackLabels {
                model: from.clone(),
                to: to.clone(),
            })
            .inc();
    }

    /// The registry in Prometheus' text format (0.0.4), or in OpenMetrics' when
    /// `openmetrics`.
    pub fn encode(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        }
        Ok(out)
    }
}

fn register_spend(registry: &mut Registry) -> SpendMetrics {
    let spend = SpendMetrics {
        queued: Gauge::default(),
        write: histogram(),
        spooled: Gauge::default(),
        spool_refused: Counter::default(),
    };
    registry.register(
        "spend_queue_depth",
        "Ledger rows settled and not yet written to the spend store",
        spend.queued.clone(),
    );
    registry.register_with_unit(
        "spend_write_duration",
        "Time of one write to the spend store (a batch of ledger rows, or one settlement)",
        Unit::Seconds,
        spend.write.clone(),
    );
    registry.register(
        "spend_buffered",
        "Spend records held in memory because the spend store is unreachable (written when it answers)",
        spend.spooled.clone(),
    );
    registry.register(
        "spend_buffer_refused",
        "Requests refused with 503 because the spend store was unreachable and its in-memory buffer full",
        spend.spool_refused.clone(),
    );
    spend
}

fn register_logs(registry: &mut Registry) -> LogMetrics {
    let logs = LogMetrics::default();
    registry.register(
        "log_records_sent",
        "Request records a log sink wrote (file) or delivered (webhook)",
        logs.sent.clone(),
    );
    registry.register(
        "log_records_dropped",
        "Request records a log sink lost: its queue was full, or a webhook batch failed every try",
        logs.dropped.clone(),
    );
    logs
}

fn register_redis(registry: &mut Registry) -> Counter {
    let counter = Counter::default();
    registry.register(
        "redis_limit_unavailable",
        "Rate-limit and routing decisions the shared Redis could not make (unreachable, too slow, or skipped while its breaker is open); general.redis_failure decided them",
        counter.clone(),
    );
    counter
}

fn register_cache(registry: &mut Registry) -> CacheMetrics {
    let family = Family::<ResultLabel, Counter>::default();
    registry.register(
        "cache_lookups",
        "Response cache lookups, by result (hit, miss, error)",
        family.clone(),
    );
    let of = |result| family.get_or_create_owned(&ResultLabel { result });
    CacheMetrics {
        hits: of("hit"),
        misses: of("miss"),
        errors: of("error"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_deployment_series_is_shared_and_client_names_are_other() {
        let m = Metrics::new();
        let a = m.deployment(Some("gpt-4o"), "openai/gpt-4o", "openai");
        let b = m.deployment(Some("gpt-4o"), "openai/gpt-4o", "openai");
        a.input_tokens.inc_by(3);
        b.input_tokens.inc_by(4);
        let direct = m.deployment(None, "openai/some-client-text", "openai");
        direct.retries.inc();
        let text = m.encode(false).unwrap();
        assert!(text.contains(
            r#"liter_llm_tokens_total{model="gpt-4o",deployment="openai/gpt-4o",provider="openai",type="input"} 7"#
        ), "{text}");
        assert!(
            text.contains(
                r#"liter_llm_retries_total{model="other",deployment="other",provider="openai"} 1"#
            ),
            "{text}"
        );
        assert!(!text.contains("some-client-text"));
        assert!(m.encode(true).unwrap().ends_with("# EOF\n"));
    }
}
