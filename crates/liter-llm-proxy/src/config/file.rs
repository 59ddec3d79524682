//! The config file as written: one struct per TOML table, `deny_unknown_fields`
//! everywhere, defaults exactly as the spec documents them.
//!
//! Nothing here is checked beyond its TOML type; `validate` turns this into the
//! runtime [`crate::config::Config`] and reports every problem at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub server: ServerSection,
    pub general: GeneralSection,
    pub models: Vec<ModelEntry>,
    pub aliases: Vec<AliasEntry>,
    pub keys: Vec<KeyEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<FilesSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<CooldownSection>,
    /// Extension: how requests are spread over a pool's deployments.
    pub router: RouterSection,
    /// Extension: request log sinks (LiteLLM's success and failure callbacks).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logging: Vec<LoggingEntry>,
}

/// Extension `[[logging]]`: one request log sink. `type` says which; the fields of the
/// other types are refused.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingEntry {
    /// `file`, `webhook` or `otlp`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Which requests: every one, the successes (status below 400), or the failures.
    #[serde(default)]
    pub on: LogOn,
    /// Put the prompt and the answer in the records (off by default).
    #[serde(default)]
    pub content: bool,
    /// Records waiting for the sink at most; one more is dropped (and counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue: Option<usize>,
    /// `file`: the JSON-lines file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `file`: rotate when the file reaches this size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// `file`: rotated files kept (`path.1` newest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<u32>,
    /// `webhook`: where batches are POSTed; `otlp`: the logs URL (default: the standard
    /// `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`, or `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/logs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `webhook`, `otlp`: extra request headers (may hold secrets: masked by
    /// `check-config`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// `webhook`, `otlp`: records per POST at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// `webhook`, `otlp`: the longest a record waits for its batch to fill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_ms: Option<u64>,
    /// `webhook`, `otlp`: tries after a failed POST before the batch is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// `webhook`, `otlp`: the longest one POST may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

/// `[[logging]] on`: LiteLLM's `success_callback` / `failure_callback` split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogOn {
    #[default]
    All,
    Success,
    Failure,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub host: String,
    pub port: u16,
    pub request_timeout_secs: u64,
    pub body_limit_bytes: usize,
    pub cors_origins: Vec<String>,
    /// Extension: the time a client has to send a request's whole head.
    pub header_timeout_secs: u64,
    /// Extension: the longest a request body may go without sending a byte.
    pub body_timeout_secs: u64,
    /// Extension: how long an idle kept-alive connection stays open.
    pub keepalive_timeout_secs: u64,
    /// Extension: the most client connections open at once.
    pub max_connections: usize,
    /// Extension: the largest single SSE event accepted from an upstream.
    pub max_event_bytes: usize,
    /// Extension: the largest non-streamed answer accepted from an upstream.
    pub max_response_bytes: usize,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 4000,
            request_timeout_secs: 600,
            body_limit_bytes: 10 * 1024 * 1024,
            cors_origins: vec!["*".into()],
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            keepalive_timeout_secs: 75,
            max_connections: 4096,
            max_event_bytes: 1024 * 1024,
            max_response_bytes: 32 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneralSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key: Option<String>,
    pub default_timeout_secs: u64,
    pub max_retries: u32,
    pub enable_cost_tracking: bool,
    pub enable_tracing: bool,
    /// Extension (LiteLLM's `drop_params`): for translated providers, drop a parameter
    /// the provider cannot honour (named in a warning header) instead of answering 400.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub drop_params: bool,
    /// Extension: where spend, the ledger and runtime keys live: `postgres://...`, or
    /// an SQLite file path (default `liter-llm.db` beside the config file, opened only
    /// when budgets, cost tracking or the key admin API need it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Extension: a price file in LiteLLM's `model_prices_and_context_window.json`
    /// format, merged over the embedded table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pricing_file: Option<String>,
    /// Extension: who may read `GET /metrics`: the master key (`"master"`, the
    /// default), anyone (`"public"`), or nobody, with nothing recorded (`"off"`).
    #[serde(skip_serializing_if = "MetricsAccess::is_master")]
    pub metrics: MetricsAccess,
    /// Extension: with `enable_tracing`, put the prompt and the completion in the
    /// request spans (as the GenAI conventions' opt-in events). Off by default.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub trace_content: bool,
    /// Extension: the Redis through which gateways share their rate limits
    /// (`redis://[:password@]host:port[/db]`, `rediss://` for TLS). Unset: LiteLLM's
    /// `REDIS_URL`, or `REDIS_HOST` / `REDIS_PORT` / `REDIS_PASSWORD`; none of them:
    /// limits are per instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Extension: the rate limits while Redis is unreachable: `"fail_open"` (the
    /// default: each instance enforces them alone) or `"fail_closed"` (503).
    #[serde(skip_serializing_if = "RedisFailure::is_open")]
    pub redis_failure: RedisFailure,
    /// Extension: the most one Redis call may take, connecting included (default
    /// [`DEFAULT_REDIS_TIMEOUT_MS`]).
    #[serde(skip_serializing_if = "is_default_redis_timeout")]
    pub redis_timeout_ms: u64,
    /// Extension: the prefix of every Redis key (default `liter-llm`); gateways that
    /// share limits use the same one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_namespace: Option<String>,
    /// Extension: how many requests' spend records the gateway keeps in memory while
    /// the spend store is unreachable (default [`DEFAULT_SPEND_BUFFER_RECORDS`]; 0:
    /// none, every metered request gets 503 while it is down).
    #[serde(skip_serializing_if = "is_default_spend_buffer")]
    pub spend_buffer_records: usize,
    /// Extension (LiteLLM's `litellm_settings.json_logs`): the format of the
    /// gateway's own log lines, `"text"` (the default) or `"json"`, as
    /// `--log-format`, which wins when given. Read at start-up only.
    #[serde(skip_serializing_if = "LogFormat::is_text")]
    pub log_format: LogFormat,
    /// Extension (LiteLLM's `litellm_settings.set_verbose`): debug-level log lines
    /// from the gateway, as `--debug` (`RUST_LOG`, when set, wins over both). Read at
    /// start-up only.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub debug: bool,
    /// Extension (LiteLLM's `general_settings.health_check_details`): with `false`,
    /// `/health/readiness` shows each deployment's model name and state only, no
    /// error text, upstream model, in-flight count or process figures.
    #[serde(skip_serializing_if = "is_true")]
    pub health_check_details: bool,
    /// Extension (LiteLLM's `general_settings.disable_spend_logs`): write no ledger
    /// row per request; budgets and the keys' spend are kept exactly as before, across
    /// a crash too.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disable_spend_logs: bool,
    /// Extension (LiteLLM's `general_settings.proxy_batch_write_at`): at most how many
    /// seconds settled spend waits in memory before the SQLite store commits it
    /// (unset: [`crate::store::DEFAULT_WRITE_INTERVAL`]; 1 to
    /// [`MAX_SPEND_WRITE_INTERVAL_SECS`]). Not supported yet with PostgreSQL, which
    /// commits each request's spend when it ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spend_write_interval_secs: Option<u64>,
}

/// The longest `general.spend_write_interval_secs`: an hour.
pub const MAX_SPEND_WRITE_INTERVAL_SECS: u64 = 3600;

fn is_true(b: &bool) -> bool {
    *b
}

/// `general.log_format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    fn is_text(&self) -> bool {
        *self == LogFormat::Text
    }
}

/// `general.spend_buffer_records` by default.
pub const DEFAULT_SPEND_BUFFER_RECORDS: usize = 10_000;

fn is_default_spend_buffer(n: &usize) -> bool {
    *n == DEFAULT_SPEND_BUFFER_RECORDS
}

/// `general.redis_failure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisFailure {
    #[default]
    FailOpen,
    FailClosed,
}

/// `general.redis_timeout_ms` by default.
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 100;

fn is_default_redis_timeout(ms: &u64) -> bool {
    *ms == DEFAULT_REDIS_TIMEOUT_MS
}

impl RedisFailure {
    fn is_open(&self) -> bool {
        *self == RedisFailure::FailOpen
    }
}

/// `general.metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAccess {
    #[default]
    Master,
    Public,
    Off,
}

impl MetricsAccess {
    fn is_master(&self) -> bool {
        *self == MetricsAccess::Master
    }
}

impl Default for GeneralSection {
    fn default() -> Self {
        Self {
            master_key: None,
            default_timeout_secs: 120,
            max_retries: 3,
            enable_cost_tracking: false,
            enable_tracing: false,
            drop_params: false,
            database_url: None,
            pricing_file: None,
            metrics: MetricsAccess::Master,
            trace_content: false,
            redis_url: None,
            redis_failure: RedisFailure::FailOpen,
            redis_timeout_ms: DEFAULT_REDIS_TIMEOUT_MS,
            redis_namespace: None,
            spend_buffer_records: DEFAULT_SPEND_BUFFER_RECORDS,
            log_format: LogFormat::Text,
            debug: false,
            health_check_details: true,
            disable_spend_logs: false,
            spend_write_interval_secs: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    pub provider_model: String,
    /// Extension (LiteLLM's `model_info.id`): the deployment's id, as the model admin
    /// API and `/model/info` show it; derived from the entry when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Extension: simulated latency for the built-in `mock/` provider only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mock_latency_ms: Option<u64>,
    /// Extension: share of traffic for `simple-shuffle` (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// Extension: this deployment's own requests-per-minute limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    /// Extension: this deployment's own tokens-per-minute limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// Extension: priority tier, lower first (default 1). A higher tier is used only
    /// when no deployment of the lower tiers can take the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<u32>,
    /// Extension: for streams, the time allowed until the first chunk arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_timeout_secs: Option<u64>,
    /// Extension: models to try when this one answers `context_length_exceeded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context_window_fallbacks: Vec<String>,
    /// Extension: price per input token in USD (used by `cost-based` routing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_cost_per_token: Option<f64>,
    /// Extension: price per output token in USD (used by `cost-based` routing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_cost_per_token: Option<f64>,
    /// Extension: `general.drop_params` for this model only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_params: Option<bool>,
    /// Extension (azure/): the `api-version` query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Extension (bedrock/): AWS credentials and region; the standard AWS variables
    /// are used when these are not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_secret_access_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_session_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_region_name: Option<String>,
    /// Extension (vertex_ai/): project, location and service-account JSON file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertex_project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertex_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertex_credentials: Option<String>,
    /// Extension (anthropic/, gemini/, vertex_ai/, bedrock/ Claude): thinking budgets
    /// in tokens per `reasoning_effort` level, overriding the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_budgets: Option<ReasoningBudgetsEntry>,
    /// Extension (anthropic/, bedrock/, cohere/): serve `n` > 1 with n upstream
    /// requests (n times the cost); without it such a request is a 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fan_out_n: Option<bool>,
    /// Extension (LiteLLM's `litellm_params.tags`): with `[router] enable_tag_filtering`,
    /// a request carrying tags goes only to deployments carrying one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Extension (LiteLLM's `model_info.mode`): what the deployment serves, `chat`
    /// (the default), `completion` or `embedding`; its health probe makes that call,
    /// and `/model/info` reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Extension (LiteLLM's `model_info.base_model`): the `provider/model` whose
    /// prices price this deployment (an Azure deployment's underlying model), unless
    /// `input_cost_per_token`/`output_cost_per_token` are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model: Option<String>,
    /// Extension (LiteLLM's `model_info.max_tokens`): reported by `/model/info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Extension (LiteLLM's `model_info.max_input_tokens`): the deployment's context
    /// window. A request whose estimated prompt is longer does not go to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_tokens: Option<u64>,
    /// Extension (LiteLLM's `model_info.max_output_tokens`): reported by `/model/info`
    /// and `/model_group/info`, and the output a request is assumed to allow when it
    /// does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// Extension (LiteLLM's `litellm_params.max_retries`): retries of a request to
    /// this model, instead of `[general] max_retries`. Entries sharing a name give the
    /// same value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
}

/// `reasoning_budgets = { minimal = .., low = .., medium = .., high = .. }`: a level
/// left out keeps its default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReasoningBudgetsEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimal: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AliasEntry {
    pub pattern: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_limit: Option<f64>,
    /// Extension: `budget_limit` applies per window of this length ("30d", "1h", ...)
    /// instead of for the key's lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_duration: Option<String>,
    /// Extension: the key is refused from this time on (RFC 3339, or a date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Extension: tags added to every request of the key (with `[router]
    /// enable_tag_filtering`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    #[default]
    Hard,
    Soft,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global_limit: Option<f64>,
    /// Extension: the price of a model the price table does not know, per input
    /// token, for requests a budget applies to (without it they are refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_input_cost_per_token: Option<f64>,
    /// Extension: as `default_input_cost_per_token`, per output token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_output_cost_per_token: Option<f64>,
    pub model_limits: BTreeMap<String, f64>,
    pub enforcement: Enforcement,
}

/// `[cache] scope`: who shares entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheScope {
    /// Every key (and the master key) shares one set of entries.
    #[default]
    Global,
    /// Each virtual key has its own entries; the master key uses the global ones.
    Key,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_entries: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    pub backend: String,
    pub backend_config: BTreeMap<String, BackendValue>,
    /// Extension: the in-process tier's limit in bytes (entries count for at least
    /// `max_bytes / max_entries` each).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Extension: answers larger than this are not stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_entry_bytes: Option<u64>,
    /// Extension: `global` (default) or `key`.
    pub scope: CacheScope,
    /// Extension: the longest a backend operation may take before the request goes on
    /// without the cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl Default for CacheSection {
    fn default() -> Self {
        Self {
            max_entries: None,
            ttl_seconds: None,
            backend: "memory".into(),
            backend_config: BTreeMap::new(),
            max_bytes: None,
            max_entry_bytes: None,
            scope: CacheScope::Global,
            timeout_ms: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesSection {
    pub backend: String,
    pub prefix: String,
    pub backend_config: BTreeMap<String, BackendValue>,
    /// Extension: the largest file an upload may carry (OpenAI's limit by default).
    pub max_file_bytes: u64,
    /// Extension: the longest one backend operation (or one step of an upload or a
    /// download) may take.
    pub timeout_secs: u64,
}

/// OpenAI's limit on one file: 512 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

impl Default for FilesSection {
    fn default() -> Self {
        Self {
            backend: "memory".into(),
            prefix: "liter-llm-files/".into(),
            backend_config: BTreeMap::new(),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            timeout_secs: 30,
        }
    }
}

/// A `backend_config` value: a TOML string, integer or boolean, passed to the backend
/// as text (`8080`, `true`); written back as it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum BackendValue {
    Text(String),
    Integer(i64),
    Bool(bool),
}

impl std::fmt::Display for BackendValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendValue::Text(s) => f.write_str(s),
            BackendValue::Integer(i) => write!(f, "{i}"),
            BackendValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl<'de> Deserialize<'de> for BackendValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = BackendValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, an integer or a boolean")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<BackendValue, E> {
                Ok(BackendValue::Text(v.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<BackendValue, E> {
                Ok(BackendValue::Integer(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<BackendValue, E> {
                i64::try_from(v)
                    .map(BackendValue::Integer)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<BackendValue, E> {
                Ok(BackendValue::Bool(v))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_model: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CooldownSection {
    pub duration_secs: u64,
    /// Extension: transient failures within `window_secs` that trip the breaker (default 1).
    #[serde(default = "default_allowed_fails")]
    pub allowed_fails: u32,
    /// Extension: the window in which failures are counted (default 60).
    #[serde(default = "default_fail_window")]
    pub window_secs: u64,
}

fn default_allowed_fails() -> u32 {
    1
}

fn default_fail_window() -> u64 {
    60
}

/// Routing strategies. Each also accepts LiteLLM's `routing_strategy` spelling
/// (`latency-based-routing`, ...); `check-config` shows the short name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Weighted random (by `weight`).
    #[default]
    SimpleShuffle,
    /// Fewest requests in flight.
    LeastBusy,
    /// Lowest recent latency, exploring a share of the traffic.
    #[serde(alias = "latency-based-routing")]
    LatencyBased,
    /// Most headroom against the deployment's own rpm/tpm.
    #[serde(alias = "usage-based-routing", alias = "usage-based-routing-v2")]
    UsageBased,
    /// Cheapest by price per token.
    #[serde(alias = "cost-based-routing")]
    CostBased,
}

/// Extension `[router]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterSection {
    /// The strategy for every pool without its own.
    pub strategy: Strategy,
    /// Per-pool strategies, by model name.
    pub model_strategy: BTreeMap<String, Strategy>,
    /// Names that point to another model's pool (LiteLLM's `model_group_alias`).
    pub model_group_alias: BTreeMap<String, String>,
    /// `latency-based`: share of requests sent to a random deployment, so latencies
    /// of the others stay fresh (0 to 1).
    pub latency_exploration: f64,
    /// Seed for the router's random choices (reproducible distributions in tests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// LiteLLM's `enable_tag_filtering`: requests' tags (and their keys' tags) choose
    /// among a pool's deployments by the deployments' `tags`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enable_tag_filtering: bool,
    /// LiteLLM's `retry_after`: the shortest wait before a retry that has to wait
    /// (every deployment of the model was tried), in seconds (default 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub retry_after_secs: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Default for RouterSection {
    fn default() -> Self {
        Self {
            strategy: Strategy::SimpleShuffle,
            model_strategy: BTreeMap::new(),
            model_group_alias: BTreeMap::new(),
            latency_exploration: 0.1,
            seed: None,
            enable_tag_filtering: false,
            retry_after_secs: 0,
        }
    }
}
