//! `[general]`: the master key (with `--master-key` and `LITER_LLM_MASTER_KEY`
//! applied), timeouts, retries and gateway-wide switches.

use std::time::Duration;

use secrecy::SecretString;

use crate::config::file::{GeneralSection, LogFormat, MetricsAccess};
use crate::config::overrides::Overrides;
use crate::config::problems::{given, path, Problems, Seg};

/// `[general]`, resolved (the store and pricing file are governance's).
pub(crate) struct General {
    pub master_key: Option<SecretString>,
    pub default_timeout: Duration,
    pub max_retries: u32,
    pub drop_params: bool,
    pub enable_cost_tracking: bool,
    pub metrics: MetricsAccess,
    pub tracing: Option<TracingSpec>,
    pub log_format: LogFormat,
    pub debug: bool,
    pub health_check_details: bool,
}

/// `enable_tracing = true`: where spans go, from the standard `OTEL_*` variables.
#[derive(Debug, Clone)]
pub struct TracingSpec {
    /// The OTLP/HTTP traces URL: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as it is, or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` with `/v1/traces`, or the collector's default
    /// on this machine.
    pub endpoint: String,
    /// `OTEL_EXPORTER_OTLP_HEADERS` (then `..._TRACES_HEADERS`): secrets, often a
    /// backend's API key.
    pub headers: Vec<(String, SecretString)>,
    /// `OTEL_SERVICE_NAME`, default `liter-llm`.
    pub service_name: String,
    /// `general.trace_content`: prompts and completions in spans.
    pub content: bool,
}

/// `k1=v1,k2=v2`, values percent-decoded, as the OpenTelemetry variables write them.
fn otlp_headers(text: &str) -> Result<Vec<(String, SecretString)>, String> {
    let mut out = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = pair.split_once('=') else {
            return Err("an entry without '=' (the form is name=value,name=value)".into());
        };
        let name = name.trim();
        if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!(
                "{:?} is not a header name",
                crate::logtext::capped(name)
            ));
        }
        let value = percent_decode(value.trim());
        if axum::http::HeaderValue::from_str(&value).is_err() {
            return Err(format!(
                "the value of header {name:?} is not a valid header value"
            ));
        }
        out.push((name.to_owned(), SecretString::from(value)));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An OTLP/HTTP signal's (`traces`, `logs`) endpoint and headers from the standard
/// variables: `OTEL_EXPORTER_OTLP_{SIGNAL}_ENDPOINT` as it is, or
/// `OTEL_EXPORTER_OTLP_ENDPOINT` with `/v1/{signal}`, or a collector on this machine;
/// the headers of `OTEL_EXPORTER_OTLP_HEADERS`, then of `..._{SIGNAL}_HEADERS` (which
/// wins for a header both name). A header variable that does not parse is a problem at
/// `at`, naming the variable (never its value).
pub(crate) fn otlp_env(
    signal: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
    at: &dyn Fn() -> Vec<Seg>,
) -> (String, Vec<(String, SecretString)>) {
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let upper = signal.to_ascii_uppercase();
    let endpoint = match (
        var(&format!("OTEL_EXPORTER_OTLP_{upper}_ENDPOINT")),
        var("OTEL_EXPORTER_OTLP_ENDPOINT"),
    ) {
        (Some(url), _) => url.trim().to_owned(),
        (None, Some(base)) => format!("{}/v1/{signal}", base.trim().trim_end_matches('/')),
        (None, None) => format!("http://localhost:4318/v1/{signal}"),
    };
    let mut headers = Vec::new();
    for name in [
        "OTEL_EXPORTER_OTLP_HEADERS".to_owned(),
        format!("OTEL_EXPORTER_OTLP_{upper}_HEADERS"),
    ] {
        match var(&name).map(|v| otlp_headers(&v)) {
            Some(Ok(h)) => {
                headers.retain(|(n, _): &(String, SecretString)| {
                    !h.iter().any(|(m, _)| m.eq_ignore_ascii_case(n))
                });
                headers.extend(h);
            }
            Some(Err(e)) => problems.push((at(), format!("{name}: {e}"))),
            None => {}
        }
    }
    (endpoint, headers)
}

/// `OTEL_SERVICE_NAME`, default `liter-llm`.
pub(crate) fn otel_service_name(env: &dyn Fn(&str) -> Option<String>) -> String {
    env("OTEL_SERVICE_NAME")
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "liter-llm".to_owned())
}

/// The tracing settings from the environment; a problem is reported at
/// `general.enable_tracing`, naming the variable (never its value).
fn tracing_spec(
    g: &GeneralSection,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> TracingSpec {
    let at = || path(&["general", "enable_tracing"]);
    let (endpoint, headers) = otlp_env("traces", env, problems, &at);
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        || endpoint.parse::<axum::http::Uri>().is_err()
    {
        problems.push((
            at(),
            "the OTLP endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT) must be an http:// or https:// URL".into(),
        ));
    }
    TracingSpec {
        endpoint,
        headers,
        service_name: otel_service_name(env),
        content: g.trace_content,
    }
}

pub(crate) fn check(
    g: &GeneralSection,
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> General {
    if g.default_timeout_secs == 0 {
        problems.push((
            path(&["general", "default_timeout_secs"]),
            "default_timeout_secs must be greater than 0".into(),
        ));
    }
    if g.trace_content && !g.enable_tracing {
        problems.push((
            path(&["general", "trace_content"]),
            "trace_content = true needs enable_tracing = true".into(),
        ));
    }
    let tracing = g.enable_tracing.then(|| tracing_spec(g, env, problems));
    General {
        master_key: overrides.master_key(given(&g.master_key)).map(|(k, _)| k),
        default_timeout: Duration::from_secs(g.default_timeout_secs),
        max_retries: g.max_retries,
        drop_params: g.drop_params,
        enable_cost_tracking: g.enable_cost_tracking,
        metrics: g.metrics,
        tracing,
        log_format: g.log_format,
        debug: g.debug,
        health_check_details: g.health_check_details,
    }
}
