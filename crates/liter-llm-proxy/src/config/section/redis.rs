//! `general.redis_url` and its policy: the Redis that several gateways share their
//! rate limits through (LiteLLM's `REDIS_URL`, or `REDIS_HOST` / `REDIS_PORT` /
//! `REDIS_PASSWORD`, when the file names none), what the limits do while it is
//! unreachable, and how long one call may take.

use std::time::Duration;

use secrecy::SecretString;

use crate::config::file::{GeneralSection, RedisFailure, DEFAULT_REDIS_TIMEOUT_MS};
use crate::config::problems::{given, path, Problems};

/// Coordination through Redis, validated.
#[derive(Debug, Clone)]
pub struct RedisSpec {
    /// `redis://` or `rediss://`; secret, as it may carry a password.
    pub url: SecretString,
    /// Where the URL came from (`general.redis_url`, `REDIS_URL` or `REDIS_HOST`), for
    /// the start-up message.
    pub source: &'static str,
    pub failure: RedisFailure,
    /// Bounds every call, connecting included.
    pub timeout: Duration,
    /// The prefix of every key.
    pub namespace: String,
}

/// The URL from the environment when the file names none: `REDIS_URL`, else
/// `REDIS_HOST` with `REDIS_PORT` (default 6379) and `REDIS_PASSWORD`.
fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<(String, &'static str)> {
    let var = |name: &str| {
        env(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if let Some(url) = var("REDIS_URL") {
        return Some((url, "REDIS_URL"));
    }
    let host = var("REDIS_HOST")?;
    let port = var("REDIS_PORT").unwrap_or_else(|| "6379".to_owned());
    let auth = var("REDIS_PASSWORD")
        .map(|p| format!(":{}@", percent_encode(&p)))
        .unwrap_or_default();
    Some((format!("redis://{auth}{host}:{port}"), "REDIS_HOST"))
}

/// Userinfo-safe: every byte but unreserved ones as `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn check(
    g: &GeneralSection,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<RedisSpec> {
    if g.redis_timeout_ms == 0 {
        problems.push((
            path(&["general", "redis_timeout_ms"]),
            "redis_timeout_ms must be greater than 0".into(),
        ));
    }
    let namespace = given(&g.redis_namespace).unwrap_or("liter-llm");
    if namespace.contains(['{', '}']) || namespace.chars().any(char::is_whitespace) {
        problems.push((
            path(&["general", "redis_namespace"]),
            "redis_namespace may not contain braces or spaces".into(),
        ));
    }
    let found = match given(&g.redis_url) {
        Some(url) => Some((url.to_owned(), "general.redis_url")),
        None => from_env(env),
    };
    let Some((url, source)) = found else {
        // Settings of a Redis that is not there would be accepted and ignored.
        for (name, set) in [
            ("redis_failure", g.redis_failure != RedisFailure::FailOpen),
            (
                "redis_timeout_ms",
                g.redis_timeout_ms != DEFAULT_REDIS_TIMEOUT_MS,
            ),
            ("redis_namespace", g.redis_namespace.is_some()),
        ] {
            if set {
                problems.push((
                    path(&["general", name]),
                    format!("{name} needs general.redis_url (or REDIS_URL / REDIS_HOST)"),
                ));
            }
        }
        return None;
    };
    // Never the URL in a message: it may carry a password.
    let at = || path(&["general", "redis_url"]);
    match redis::Client::open(url.as_str()) {
        Ok(_) if url.starts_with("redis://") || url.starts_with("rediss://") => {}
        _ => {
            problems.push((
                at(),
                format!("the Redis URL (from {source}) must be a redis:// or rediss:// URL such as redis://:password@host:6379/0"),
            ));
        }
    }
    Some(RedisSpec {
        url: SecretString::from(url),
        source,
        failure: g.redis_failure,
        timeout: Duration::from_millis(g.redis_timeout_ms),
        namespace: namespace.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_litellm_variables_make_a_url() {
        let env = |name: &str| match name {
            "REDIS_HOST" => Some("cache.internal".to_owned()),
            "REDIS_PASSWORD" => Some("p@ss:w/rd".to_owned()),
            _ => None,
        };
        let (url, source) = from_env(&env).unwrap();
        assert_eq!(url, "redis://:p%40ss%3Aw%2Frd@cache.internal:6379");
        assert_eq!(source, "REDIS_HOST");
        let env = |name: &str| (name == "REDIS_URL").then(|| "rediss://h:6380".to_owned());
        assert_eq!(from_env(&env).unwrap().0, "rediss://h:6380");
        assert!(from_env(&|_: &str| None).is_none());
    }
}
