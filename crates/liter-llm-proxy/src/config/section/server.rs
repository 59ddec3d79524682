//! `[server]`: the listener, with `--host` and `--port` applied.

use std::time::Duration;

use crate::config::file::ServerSection;
use crate::config::overrides::Overrides;
use crate::config::problems::{key, path, Problems, Seg};

/// Where browsers may call from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    Any,
    List(Vec<String>),
}

/// The limits that protect the gateway from its clients and its upstreams
/// (`[server]`; see docs/security.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `header_timeout_secs`: the time a client has to send a request's whole head.
    pub header_timeout: Duration,
    /// `body_timeout_secs`: the longest a request body may go without a byte.
    pub body_timeout: Duration,
    /// `keepalive_timeout_secs`: how long an idle kept-alive connection stays open.
    pub keepalive_timeout: Duration,
    /// `max_connections`: client connections open at once.
    pub max_connections: usize,
    /// `max_event_bytes`: the largest SSE event accepted from an upstream.
    pub max_event_bytes: usize,
    /// `max_response_bytes`: the largest non-streamed upstream answer.
    pub max_response_bytes: usize,
}

/// `[server]`, resolved.
pub(crate) struct Server {
    pub host: String,
    pub port: u16,
    pub request_timeout: Duration,
    pub body_limit: usize,
    pub cors: CorsOrigins,
    pub limits: Limits,
}

pub(crate) fn check(s: &ServerSection, overrides: &Overrides, problems: &mut Problems) -> Server {
    let host = overrides.host(&s.host);
    if host.trim().is_empty() {
        problems.push((path(&["server", "host"]), "host is empty".into()));
    }
    for (field, value) in [
        ("request_timeout_secs", s.request_timeout_secs),
        ("body_limit_bytes", s.body_limit_bytes as u64),
        ("header_timeout_secs", s.header_timeout_secs),
        ("body_timeout_secs", s.body_timeout_secs),
        ("keepalive_timeout_secs", s.keepalive_timeout_secs),
        ("max_connections", s.max_connections as u64),
        ("max_event_bytes", s.max_event_bytes as u64),
        ("max_response_bytes", s.max_response_bytes as u64),
    ] {
        if value == 0 {
            problems.push((
                path(&["server", field]),
                format!("{field} must be greater than 0"),
            ));
        }
    }
    Server {
        host: host.to_string(),
        port: overrides.port(s.port),
        request_timeout: Duration::from_secs(s.request_timeout_secs),
        body_limit: s.body_limit_bytes,
        cors: cors(&s.cors_origins, problems),
        limits: Limits {
            header_timeout: Duration::from_secs(s.header_timeout_secs),
            body_timeout: Duration::from_secs(s.body_timeout_secs),
            keepalive_timeout: Duration::from_secs(s.keepalive_timeout_secs),
            max_connections: s.max_connections,
            max_event_bytes: s.max_event_bytes,
            max_response_bytes: s.max_response_bytes,
        },
    }
}

fn cors(origins: &[String], problems: &mut Problems) -> CorsOrigins {
    if origins.iter().any(|o| o == "*") {
        if origins.len() > 1 {
            problems.push((
                path(&["server", "cors_origins"]),
                "\"*\" allows every origin and cannot be combined with explicit origins".into(),
            ));
        }
        return CorsOrigins::Any;
    }
    for (i, origin) in origins.iter().enumerate() {
        let ok = origin.parse::<http::Uri>().ok().is_some_and(|u| {
            matches!(u.scheme_str(), Some("http") | Some("https"))
                && u.authority().is_some()
                && u.path() == "/"
                && !origin.ends_with('/')
        });
        if !ok || http::HeaderValue::from_str(origin).is_err() {
            problems.push((
                vec![key("server"), key("cors_origins"), Seg::Index(i)],
                "not an origin like \"https://app.example.com\" (scheme and host, no path)".into(),
            ));
        }
    }
    CorsOrigins::List(origins.to_vec())
}
