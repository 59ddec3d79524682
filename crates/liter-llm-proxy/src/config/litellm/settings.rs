//! `litellm_settings`, `router_settings` and `general_settings`, mapped onto
//! `[general]`, `[server]`, `[router]`, `[cooldown]`, `[health]` and the models'
//! fallbacks; the cache settings are `cache.rs`'s.

use serde::Deserialize;

use super::twin::Twin;
use super::yaml::{Entry, Node, Value};
use crate::config::file::{CooldownSection, HealthSection, LogFormat, MetricsAccess, Strategy};

/// LiteLLM's cooldown defaults: a deployment with 3 failed calls in a minute rests 5 s.
const LITELLM_ALLOWED_FAILS: u32 = 3;
const LITELLM_COOLDOWN_SECS: u64 = 5;
/// LiteLLM's `health_check_interval` default.
const LITELLM_HEALTH_INTERVAL: u64 = 300;

/// Which fallback list a setting fills.
#[derive(Clone, Copy)]
enum Fallbacks {
    Plain,
    ContextWindow,
}

/// `default_fallbacks` seen, applied after every other fallback setting.
#[derive(Default)]
pub(crate) struct Deferred {
    default_fallbacks: Option<(Vec<String>, String, usize, usize)>,
}

pub(crate) fn litellm_settings(t: &mut Twin<'_>, entries: &[Entry], deferred: &mut Deferred) {
    let cache_on = entries.iter().find(|e| e.key == "cache");
    let cache_params = entries.iter().find(|e| e.key == "cache_params");
    super::cache::map(t, cache_on, cache_params);
    for e in entries {
        let path = format!("litellm_settings.{}", e.key);
        let v = &e.value;
        match e.key.as_str() {
            "cache" | "cache_params" => {}
            "num_retries" => {
                t.file.general.max_retries = t.uint32(v, &path).unwrap_or(3);
                t.loc_entry("general.max_retries", &path, e);
            }
            "request_timeout" => timeout(t, e, &path),
            "drop_params" => {
                t.file.general.drop_params = t.boolean(v, &path).unwrap_or(false);
                t.loc_entry("general.drop_params", &path, e);
            }
            "fallbacks" => fallbacks(t, v, &path, Fallbacks::Plain),
            "context_window_fallbacks" => fallbacks(t, v, &path, Fallbacks::ContextWindow),
            "default_fallbacks" => default_fallbacks(t, e, &path, deferred),
            "callbacks" | "success_callback" | "failure_callback" => callbacks(t, v, &path),
            "set_verbose" => {
                t.file.general.debug = t.boolean(v, &path).unwrap_or(false);
                t.loc_entry("general.debug", &path, e);
            }
            "json_logs" => {
                if t.boolean(v, &path) == Some(true) {
                    t.file.general.log_format = LogFormat::Json;
                }
                t.loc_entry("general.log_format", &path, e);
            }
            _ => t.unknown(&path, e),
        }
    }
}

pub(crate) fn router_settings(t: &mut Twin<'_>, entries: &[Entry], deferred: &mut Deferred) {
    let mut cooldown: Option<CooldownSection> = None;
    redis(t, entries);
    for e in entries {
        let path = format!("router_settings.{}", e.key);
        let v = &e.value;
        match e.key.as_str() {
            "routing_strategy" => {
                if let Some(s) = t.string(v, &path) {
                    let parsed = Strategy::deserialize(serde::de::value::StrDeserializer::<
                        serde::de::value::Error,
                    >::new(&s));
                    match parsed {
                        Ok(strategy) => t.file.router.strategy = strategy,
                        Err(_) => t.unsupported(&path, e.line, e.col, &format!("routing_strategy {s:?} (supported: simple-shuffle, least-busy, latency-based-routing, usage-based-routing, usage-based-routing-v2, cost-based-routing)")),
                    }
                    t.loc_entry("router.strategy", &path, e);
                }
            }
            "num_retries" => {
                t.file.general.max_retries = t.uint32(v, &path).unwrap_or(3);
                t.loc_entry("general.max_retries", &path, e);
            }
            "timeout" => timeout(t, e, &path),
            "allowed_fails" | "cooldown_time" => {
                let c = cooldown.get_or_insert(CooldownSection {
                    duration_secs: LITELLM_COOLDOWN_SECS,
                    allowed_fails: LITELLM_ALLOWED_FAILS,
                    window_secs: 60,
                });
                if e.key == "allowed_fails" {
                    c.allowed_fails = t.uint32(v, &path).unwrap_or(LITELLM_ALLOWED_FAILS);
                    t.loc_entry("cooldown.allowed_fails", &path, e);
                } else {
                    c.duration_secs = t.seconds(v, &path).unwrap_or(LITELLM_COOLDOWN_SECS);
                    t.loc_entry("cooldown.duration_secs", &path, e);
                }
                t.loc_entry("cooldown", &path, e);
            }
            "fallbacks" => fallbacks(t, v, &path, Fallbacks::Plain),
            "context_window_fallbacks" => fallbacks(t, v, &path, Fallbacks::ContextWindow),
            "default_fallbacks" => default_fallbacks(t, e, &path, deferred),
            "model_group_alias" => group_aliases(t, e, &path),
            "redis_host" | "redis_port" | "redis_password" | "redis_url" => {}
            "retry_after" => {
                t.file.router.retry_after_secs = t.seconds(v, &path).unwrap_or(0);
                t.loc_entry("router.retry_after_secs", &path, e);
            }
            "enable_tag_filtering" => {
                t.file.router.enable_tag_filtering = t.boolean(v, &path).unwrap_or(false);
                t.loc_entry("router.enable_tag_filtering", &path, e);
            }
            // The context-window check runs whenever a deployment has
            // max_input_tokens (the other pre-call checks, rpm/tpm, always run).
            "enable_pre_call_checks" => {
                t.boolean(v, &path);
            }
            _ => t.unknown(&path, e),
        }
    }
    t.file.cooldown = cooldown;
}

/// `router_settings.redis_url`, or `redis_host` / `redis_port` / `redis_password`:
/// `general.redis_url`, which shares the rate limits between instances (cooldowns and
/// usage counts are not shared yet: said in the converted file's header).
fn redis(t: &mut Twin<'_>, entries: &[Entry]) {
    let mut part = |key: &str| {
        let e = entries.iter().find(|e| e.key == key)?;
        let path = format!("router_settings.{key}");
        let value = t.string(&e.value, &path)?;
        t.loc_entry("general.redis_url", &path, e);
        Some(value)
    };
    let url = part("redis_url");
    let host = part("redis_host");
    let port = part("redis_port");
    let password = part("redis_password");
    let url = match (url, host) {
        (Some(url), _) => url,
        (None, Some(host)) => {
            let auth = password.map(|p| format!(":{p}@")).unwrap_or_default();
            let port = port.unwrap_or_else(|| "6379".into());
            format!("redis://{auth}{host}:{port}")
        }
        (None, None) => return,
    };
    t.file.general.redis_url = Some(url);
    t.notes.push(
        "general.redis_url comes from router_settings: rate limits are shared between instances; cooldowns and usage-based routing are not shared yet".into(),
    );
}

pub(crate) fn general_settings(t: &mut Twin<'_>, entries: &[Entry]) {
    let mut health_on: Option<bool> = None;
    let mut interval: Option<u64> = None;
    for e in entries {
        let path = format!("general_settings.{}", e.key);
        let v = &e.value;
        match e.key.as_str() {
            "master_key" => {
                t.file.general.master_key = t.string(v, &path);
                t.loc_entry("general.master_key", &path, e);
            }
            "database_url" => {
                t.file.general.database_url = t.string(v, &path);
                t.loc_entry("general.database_url", &path, e);
            }
            "background_health_checks" => {
                health_on = t.boolean(v, &path);
                t.loc_entry("health", &path, e);
            }
            "health_check_interval" => {
                interval = t.seconds(v, &path);
                t.loc_entry("health.interval_secs", &path, e);
            }
            "max_request_size_mb" => {
                if let Some(mb) = t.float(v, &path) {
                    t.file.server.body_limit_bytes = (mb * 1024.0 * 1024.0) as usize;
                }
                t.loc_entry("server.body_limit_bytes", &path, e);
            }
            "max_response_size_mb" => {
                if let Some(mb) = t.float(v, &path) {
                    t.file.server.max_response_bytes = (mb * 1024.0 * 1024.0) as usize;
                }
                t.loc_entry("server.max_response_bytes", &path, e);
            }
            "health_check_details" => {
                t.file.general.health_check_details = t.boolean(v, &path).unwrap_or(true);
                t.loc_entry("general.health_check_details", &path, e);
            }
            "disable_spend_logs" => {
                t.file.general.disable_spend_logs = t.boolean(v, &path).unwrap_or(false);
                t.loc_entry("general.disable_spend_logs", &path, e);
            }
            "proxy_batch_write_at" => {
                // Checked with the TOML key: 1 to an hour, SQLite only.
                t.file.general.spend_write_interval_secs = t.uint(v, &path);
                t.loc_entry("general.spend_write_interval_secs", &path, e);
            }
            _ => t.unknown(&path, e),
        }
    }
    if health_on == Some(true) {
        t.file.health = Some(HealthSection {
            interval_secs: Some(interval.unwrap_or(LITELLM_HEALTH_INTERVAL)),
            probe_model: None,
        });
    } else if let (Some(_), Some(e)) = (
        interval,
        entries.iter().find(|e| e.key == "health_check_interval"),
    ) {
        t.unsupported(
            "general_settings.health_check_interval",
            e.line,
            e.col,
            "health_check_interval without background_health_checks: true",
        );
    }
}

/// `LITELLM_MASTER_KEY` and `DATABASE_URL`, LiteLLM's variables, when the file does
/// not set the values: kept as `${VAR}` references, never expanded into the twin.
pub(crate) fn litellm_variables(t: &mut Twin<'_>) {
    let set = |t: &Twin<'_>, name: &str| (t.env)(name).is_some_and(|v| !v.is_empty());
    if t.file.general.master_key.is_none() && set(t, "LITELLM_MASTER_KEY") {
        t.file.general.master_key = Some("${LITELLM_MASTER_KEY}".into());
        t.notes.push(
            "general.master_key comes from LITELLM_MASTER_KEY (set in this environment)".into(),
        );
    }
    if t.file.general.database_url.is_none() && set(t, "DATABASE_URL") {
        t.file.general.database_url = Some("${DATABASE_URL}".into());
        t.notes
            .push("general.database_url comes from DATABASE_URL (set in this environment)".into());
    }
    if t.file.general.metrics == MetricsAccess::Public {
        t.notes.push(
            "the prometheus callback: /metrics is open without a key, as LiteLLM serves it".into(),
        );
    }
}

/// `request_timeout` / `timeout`: the default upstream timeout.
fn timeout(t: &mut Twin<'_>, e: &Entry, path: &str) {
    if let Some(s) = t.seconds(&e.value, path) {
        t.file.general.default_timeout_secs = s;
    }
    t.loc_entry("general.default_timeout_secs", path, e);
}

/// A switch whose `false` is LiteLLM's default (and ours); `true` is not built.
fn only_false(t: &mut Twin<'_>, e: &Entry, path: &str, what: &str) {
    if t.boolean(&e.value, path) == Some(true) {
        t.unsupported(path, e.line, e.col, what);
    }
}

/// `callbacks` and friends: `prometheus` → `/metrics` (open, as LiteLLM serves it),
/// `otel` → tracing; every other callback is reported by name.
fn callbacks(t: &mut Twin<'_>, node: &Node, path: &str) {
    let items: Vec<&Node> = match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("{path}[{i}]");
        match t.string(item, &at).as_deref() {
            Some("prometheus") => {
                t.file.general.metrics = MetricsAccess::Public;
                t.loc("general.metrics", &at, item.line, item.col);
            }
            Some("otel") => {
                t.file.general.enable_tracing = true;
                t.loc("general.enable_tracing", &at, item.line, item.col);
            }
            Some(other) => t.unsupported(&at, item.line, item.col, &format!("the {other:?} callback (built: prometheus, otel; request logs: [[logging]] in the TOML format)")),
            None => {}
        }
    }
}

/// `[{"gpt-4o": ["claude", "gpt-4o-mini"]}, ...]`: onto every entry of that name.
fn fallbacks(t: &mut Twin<'_>, node: &Node, path: &str, which: Fallbacks) {
    let Value::Seq(items) = &node.value else {
        if node.value != Value::Null {
            t.problem(
                path,
                node.line,
                node.col,
                "expected a list of {model: [fallbacks]}".into(),
            );
        }
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Some(entries) = t.mapping(item, &at) else {
            continue;
        };
        for e in entries {
            let p = format!("{at}.{}", e.key);
            let list = t.strings(&e.value, &p);
            let mut found = false;
            for k in 0..t.file.models.len() {
                if t.file.models[k].name != e.key {
                    continue;
                }
                found = true;
                let (target, field) = match which {
                    Fallbacks::Plain => (&mut t.file.models[k].fallbacks, "fallbacks"),
                    Fallbacks::ContextWindow => (
                        &mut t.file.models[k].context_window_fallbacks,
                        "context_window_fallbacks",
                    ),
                };
                for f in &list {
                    if !target.contains(f) {
                        target.push(f.clone());
                    }
                }
                t.loc_entry(format!("models[{k}].{field}"), &p, e);
                for j in 0..list.len() {
                    t.loc_entry(format!("models[{k}].{field}[{j}]"), &p, e);
                }
            }
            if !found {
                t.problem(
                    &p,
                    e.line,
                    e.col,
                    format!(
                        "fallbacks for {:?}: no model_list entry has this model_name",
                        e.key
                    ),
                );
            }
        }
    }
}

fn default_fallbacks(t: &mut Twin<'_>, e: &Entry, path: &str, deferred: &mut Deferred) {
    let list = t.strings(&e.value, path);
    deferred.default_fallbacks = Some((list, path.to_string(), e.line, e.col));
}

/// `default_fallbacks`: for every model without fallbacks of its own.
pub(crate) fn apply_deferred(t: &mut Twin<'_>, deferred: Deferred) {
    let Some((list, path, line, col)) = deferred.default_fallbacks else {
        return;
    };
    for k in 0..t.file.models.len() {
        let m = &mut t.file.models[k];
        if !m.fallbacks.is_empty() {
            continue;
        }
        let name = m.name.clone();
        m.fallbacks = list.iter().filter(|f| **f != name).cloned().collect();
        for j in 0..m.fallbacks.len() {
            t.loc(format!("models[{k}].fallbacks[{j}]"), &path, line, col);
        }
    }
}

/// `model_group_alias`: `alias: model`, or `alias: {model: m, hidden: false}`.
fn group_aliases(t: &mut Twin<'_>, e: &Entry, path: &str) {
    let Some(entries) = t.mapping(&e.value, path) else {
        return;
    };
    for a in entries {
        let p = format!("{path}.{}", a.key);
        let target = match &a.value.value {
            Value::Map(fields) => {
                let mut model = None;
                for f in fields {
                    let fp = format!("{p}.{}", f.key);
                    match f.key.as_str() {
                        "model" => model = t.string(&f.value, &fp),
                        "hidden" => only_false(t, f, &fp, "hidden group aliases"),
                        _ => t.unknown(&fp, f),
                    }
                }
                model
            }
            _ => t.string(&a.value, &p),
        };
        if let Some(target) = target {
            t.file
                .router
                .model_group_alias
                .insert(a.key.clone(), target);
            t.loc_entry(format!("router.model_group_alias.{}", a.key), &p, a);
        }
    }
}
