//! `litellm_settings.cache` and `cache_params` → `[cache]`: `local` is the memory
//! backend, `redis` the OpenDAL redis backend (host, port and password from
//! `cache_params`, else LiteLLM's `REDIS_URL` / `REDIS_HOST` / `REDIS_PORT` /
//! `REDIS_PASSWORD`, kept as `${VAR}`), `s3` and `disk` the OpenDAL `s3` and `fs`
//! backends. Semantic caches and unknown parameters are reported.

use std::collections::BTreeMap;

use super::twin::Twin;
use super::yaml::Entry;
use crate::config::file::{BackendValue, CacheSection};

/// LiteLLM's in-memory cache defaults: 200 entries, 10 minutes.
const LOCAL_MAX_ENTRIES: u64 = 200;
const LOCAL_TTL_SECS: u64 = 600;

/// The call types whose answers liter-llm caches: chat completions and embeddings.
const CACHED_CALLS: &[&str] = &["completion", "acompletion", "embedding", "aembedding"];

/// `cache_params` keys of each backend, LiteLLM's name → OpenDAL's.
const S3_KEYS: &[(&str, &str)] = &[
    ("s3_bucket_name", "bucket"),
    ("s3_region_name", "region"),
    ("s3_endpoint_url", "endpoint"),
    ("s3_aws_access_key_id", "access_key_id"),
    ("s3_aws_secret_access_key", "secret_access_key"),
    ("s3_aws_session_token", "session_token"),
    ("s3_path", "root"),
];

pub(crate) fn map(t: &mut Twin<'_>, on: Option<&Entry>, params: Option<&Entry>) {
    let enabled = on.and_then(|e| t.boolean(&e.value, "litellm_settings.cache")) == Some(true);
    if !enabled {
        if let Some(p) = params {
            t.unsupported(
                "litellm_settings.cache_params",
                p.line,
                p.col,
                "cache_params without cache: true (add cache: true, or remove them)",
            );
        }
        return;
    }
    if let Some(e) = on {
        t.loc_entry("cache", "litellm_settings.cache", e);
    }
    let entries: &[Entry] = match params {
        Some(p) => t
            .mapping(&p.value, "litellm_settings.cache_params")
            .unwrap_or(&[]),
        None => &[],
    };
    let path = |k: &str| format!("litellm_settings.cache_params.{k}");
    let kind_entry = entries.iter().find(|e| e.key == "type");
    let kind = kind_entry
        .and_then(|e| t.string(&e.value, &path("type")))
        .unwrap_or_else(|| "local".into());
    let Some(mut c) = section_for(&kind) else {
        let (line, col) = kind_entry.map_or((1, 1), |e| (e.line, e.col));
        t.unsupported(
            &path("type"),
            line,
            col,
            &format!("cache type {kind:?} (built: local, redis, s3, disk)"),
        );
        return;
    };
    let mut config: BTreeMap<String, BackendValue> = BTreeMap::new();
    if let Some(e) = kind_entry {
        t.loc_entry("cache.backend", &path("type"), e);
    }
    let mut redis = Redis::default();
    for e in entries {
        let p = path(&e.key);
        let v = &e.value;
        match (kind.as_str(), e.key.as_str()) {
            (_, "type") => {}
            (_, "ttl") => {
                c.ttl_seconds = t.seconds(v, &p);
                t.loc_entry("cache.ttl_seconds", &p, e);
            }
            ("local", "max_size_in_memory") => {
                c.max_entries = t.uint(v, &p);
                t.loc_entry("cache.max_entries", &p, e);
            }
            ("redis" | "s3" | "disk", "namespace") => {
                if let Some(ns) = t.string(v, &p) {
                    config.insert("root".into(), BackendValue::Text(format!("/{ns}/")));
                }
                t.loc_entry("cache.backend_config", &p, e);
            }
            ("redis", "host") => redis.host = t.string(v, &p),
            ("redis", "port") => redis.port = t.string(v, &p),
            ("redis", "password") => redis.password = t.string(v, &p),
            ("redis", "url" | "redis_url") => redis.url = t.string(v, &p),
            ("s3", key) if S3_KEYS.iter().any(|(k, _)| *k == key) => {
                let ours = S3_KEYS
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map_or(key, |(_, o)| o);
                if let Some(s) = t.string(v, &p) {
                    config.insert(ours.to_string(), BackendValue::Text(s));
                }
                t.loc_entry("cache.backend_config", &p, e);
            }
            ("disk", "disk_cache_dir") => {
                if let Some(s) = t.string(v, &p) {
                    config.insert("root".into(), BackendValue::Text(s));
                }
                t.loc_entry("cache.backend_config", &p, e);
            }
            (_, "supported_call_types") => {
                let calls = t.strings(v, &p);
                let all_cached = calls.iter().all(|c| CACHED_CALLS.contains(&c.as_str()));
                let both = calls.iter().any(|c| c.ends_with("completion"))
                    && calls.iter().any(|c| c.ends_with("embedding"));
                if !(all_cached && both) {
                    t.unsupported(&p, e.line, e.col, "supported_call_types other than completion and embedding together (liter-llm caches exactly those)");
                }
            }
            (_, "mode") => {
                if t.string(v, &p).as_deref() != Some("default_on") {
                    t.unsupported(
                        &p,
                        e.line,
                        e.col,
                        "cache mode default_off (caching on request only)",
                    );
                }
            }
            _ => t.unknown(&p, e),
        }
    }
    if kind == "redis" {
        redis_config(t, redis, &mut config, params);
    }
    if kind == "disk" && !config.contains_key("root") {
        let (line, col) = params.map_or((1, 1), |e| (e.line, e.col));
        t.problem(
            &path("disk_cache_dir"),
            line,
            col,
            "a disk cache needs disk_cache_dir".into(),
        );
    }
    c.backend_config = config;
    t.file.cache = Some(c);
}

/// The `[cache]` of a LiteLLM cache type, before its parameters.
fn section_for(kind: &str) -> Option<CacheSection> {
    let mut c = CacheSection::default();
    match kind {
        "local" => {
            c.backend = "memory".into();
            c.max_entries = Some(LOCAL_MAX_ENTRIES);
            c.ttl_seconds = Some(LOCAL_TTL_SECS);
        }
        "redis" => c.backend = "redis".into(),
        "s3" => c.backend = "s3".into(),
        "disk" => c.backend = "fs".into(),
        _ => return None,
    }
    Some(c)
}

#[derive(Default)]
struct Redis {
    host: Option<String>,
    port: Option<String>,
    password: Option<String>,
    url: Option<String>,
}

/// The redis endpoint and password: `cache_params`, else LiteLLM's variables.
fn redis_config(
    t: &mut Twin<'_>,
    r: Redis,
    config: &mut BTreeMap<String, BackendValue>,
    params: Option<&Entry>,
) {
    let set = |t: &Twin<'_>, name: &str| (t.env)(name).is_some_and(|v| !v.is_empty());
    let endpoint = match (r.url, r.host) {
        (Some(url), _) => Some(url),
        (None, Some(host)) => Some(format!(
            "redis://{host}:{}",
            r.port.unwrap_or_else(|| "6379".into())
        )),
        (None, None) if set(t, "REDIS_URL") => Some("${REDIS_URL}".into()),
        (None, None) if set(t, "REDIS_HOST") => {
            let port = if set(t, "REDIS_PORT") {
                "${REDIS_PORT}"
            } else {
                "6379"
            };
            Some(format!("redis://${{REDIS_HOST}}:{port}"))
        }
        (None, None) => None,
    };
    let (line, col) = params.map_or((1, 1), |e| (e.line, e.col));
    match endpoint {
        Some(e) => {
            config.insert("endpoint".into(), BackendValue::Text(e));
        }
        None => t.problem(
            "litellm_settings.cache_params.host",
            line,
            col,
            "a redis cache needs host (or url) in cache_params, or REDIS_HOST / REDIS_URL in the environment".into(),
        ),
    }
    let password = r
        .password
        .or_else(|| set(t, "REDIS_PASSWORD").then(|| "${REDIS_PASSWORD}".to_string()));
    if let Some(p) = password {
        config.insert("password".into(), BackendValue::Text(p));
    }
    t.loc(
        "cache.backend_config",
        "litellm_settings.cache_params",
        line,
        col,
    );
}
