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

/// `[server]`, resolved.
pub(crate) struct Server {
    pub host: String,
    pub port: u16,
    pub request_timeout: Duration,
    pub body_limit: usize,
    pub cors: CorsOrigins,
}

pub(crate) fn check(s: &ServerSection, overrides: &Overrides, problems: &mut Problems) -> Server {
    let host = overrides.host(&s.host);
    if host.trim().is_empty() {
        problems.push((path(&["server", "host"]), "host is empty".into()));
    }
    for (field, value) in [
        ("request_timeout_secs", s.request_timeout_secs),
        ("body_limit_bytes", s.body_limit_bytes as u64),
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
