//! `[cache]`: the response cache's backend, limits, lifetime, scope and timeout.
//!
//! The backend is `memory` or an OpenDAL scheme; a scheme this build does not know, or
//! a `backend_config` OpenDAL refuses, is a load error. Building the operator touches
//! no network, so a backend that is down (or a host that does not resolve) loads fine
//! and fails softly at run time.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::config::file::{CacheScope, CacheSection};
use crate::config::problems::{path, positive, Problems};
use crate::objstore;

/// The in-process tier's byte limit when `max_bytes` is not set.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Answers above this size are not stored when `max_entry_bytes` is not set.
pub const DEFAULT_MAX_ENTRY_BYTES: u64 = 1024 * 1024;
/// A backend operation's time limit when `timeout_ms` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

/// Where entries live.
#[derive(Clone, PartialEq, Eq)]
pub enum CacheBackend {
    /// In the gateway's memory only.
    Memory,
    /// An OpenDAL scheme and its `backend_config`, values as text, passed unchanged.
    OpenDal {
        scheme: String,
        config: BTreeMap<String, String>,
    },
}

impl fmt::Debug for CacheBackend {
    /// Names the `backend_config` keys, never their values (some are secrets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheBackend::Memory => f.write_str("Memory"),
            CacheBackend::OpenDal { scheme, config } => f
                .debug_struct("OpenDal")
                .field("scheme", scheme)
                .field("config_keys", &config.keys().collect::<Vec<_>>())
                .finish(),
        }
    }
}

/// `[cache]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSpec {
    pub backend: CacheBackend,
    /// The in-process tier's entry limit: the memory backend's capacity; with another
    /// backend, a tier of recent entries in front of it (none when unset).
    pub max_entries: Option<u64>,
    /// The in-process tier's byte limit.
    pub max_bytes: u64,
    /// Larger answers are not stored.
    pub max_entry_bytes: u64,
    /// An entry's lifetime (`None`: until evicted).
    pub ttl: Option<Duration>,
    pub scope: CacheScope,
    /// Bound on each backend operation.
    pub timeout: Duration,
}

pub(crate) fn check(c: &CacheSection, problems: &mut Problems) -> Option<CacheSpec> {
    let at = |f: &str| path(&["cache", f]);
    let before = problems.len();
    for (field, value) in [
        ("max_entries", c.max_entries),
        ("ttl_seconds", c.ttl_seconds),
        ("max_bytes", c.max_bytes),
        ("max_entry_bytes", c.max_entry_bytes),
        ("timeout_ms", c.timeout_ms),
    ] {
        positive(problems, at(field), field, value != Some(0));
    }
    let backend = backend(c, problems);
    if backend == Some(CacheBackend::Memory) && c.max_entries.is_none() {
        problems.push((
            at("max_entries"),
            "max_entries is required for the memory backend (the most entries it holds)".into(),
        ));
    }
    let max_bytes = c.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    let max_entry_bytes = c.max_entry_bytes.unwrap_or(DEFAULT_MAX_ENTRY_BYTES);
    if max_entry_bytes > u64::from(u32::MAX) || max_entry_bytes > max_bytes {
        problems.push((
            at("max_entry_bytes"),
            format!("max_entry_bytes must be at most max_bytes ({max_bytes}) and 4 GiB"),
        ));
    }
    if problems.len() > before {
        return None;
    }
    Some(CacheSpec {
        backend: backend?,
        max_entries: c.max_entries,
        max_bytes,
        max_entry_bytes,
        ttl: c.ttl_seconds.map(Duration::from_secs),
        scope: c.scope,
        timeout: c.timeout_ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis),
    })
}

/// The backend, checked by building its operator (no network is touched).
fn backend(c: &CacheSection, problems: &mut Problems) -> Option<CacheBackend> {
    let scheme = c.backend.trim();
    if scheme == "memory" {
        if !c.backend_config.is_empty() {
            problems.push((
                path(&["cache", "backend_config"]),
                "backend_config has no effect with backend = \"memory\"; remove it".into(),
            ));
            return None;
        }
        return Some(CacheBackend::Memory);
    }
    let config: BTreeMap<String, String> = c
        .backend_config
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    match objstore::operator(scheme, &config, DEFAULT_TIMEOUT) {
        Ok(_) => Some(CacheBackend::OpenDal {
            scheme: scheme.to_owned(),
            config,
        }),
        Err(e) => {
            let message = if e.reason == "Unsupported" {
                format!("unknown cache backend {scheme:?}: use \"memory\" or an OpenDAL scheme this build has (redis, fs, s3, azblob, gcs)")
            } else {
                format!(
                    "backend {scheme:?} does not accept this backend_config: {}",
                    e.reason
                )
            };
            let field = if e.reason == "Unsupported" {
                "backend"
            } else {
                "backend_config"
            };
            problems.push((path(&["cache", field]), message));
            None
        }
    }
}
