//! What a reload changes: the settings that only a restart can change (a config that
//! changes one is refused, naming them), and the summary the log gets of the rest
//! (names, labels and counts; never a secret).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::config::{Config, Deployment, KeySpec, MetricsAccess, SinkKind};

/// The settings of `new` that differ from `old` and need a restart, by name.
pub fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |differs: bool, name: &'static str| {
        if differs {
            out.push(name);
        }
    };
    check(old.host != new.host, "server.host");
    check(old.port != new.port, "server.port");
    check(
        old.limits != new.limits,
        "server connection limits and timeouts (max_connections, *_timeout_secs, upstream buffer limits)",
    );
    let url = |c: &Config| {
        c.governance
            .database_url
            .as_ref()
            .map(|u| u.expose_secret().to_owned())
    };
    check(url(old) != url(new), "general.database_url");
    check(
        (old.metrics == MetricsAccess::Off) != (new.metrics == MetricsAccess::Off),
        "general.metrics (turning it on or off)",
    );
    let tracing = |c: &Config| {
        c.tracing.as_ref().map(|t| {
            let headers: Vec<_> = t
                .headers
                .iter()
                .map(|(k, v)| digest(&[k, v.expose_secret()]))
                .collect();
            (
                t.endpoint.clone(),
                t.service_name.clone(),
                t.content,
                headers,
            )
        })
    };
    check(
        tracing(old) != tracing(new),
        "general.enable_tracing and general.trace_content",
    );
    check(sinks(old) != sinks(new), "[[logging]]");
    // The binary sets its logging up once, before the config's first load.
    check(
        old.log_format != new.log_format || old.debug != new.debug,
        "general.log_format and general.debug (LiteLLM's json_logs and set_verbose)",
    );
    out
}

/// The `[[logging]]` sinks as comparable text, their header values as digests.
fn sinks(c: &Config) -> Vec<String> {
    c.logging
        .iter()
        .map(|s| {
            let mut text = format!("{:?}/{}/{}/{:?}", s.on, s.content, s.max_queue, s.kind);
            if let SinkKind::Webhook { headers, .. } = &s.kind {
                for (k, v) in headers {
                    text.push_str(&digest(&[k, v.expose_secret()]));
                }
            }
            text
        })
        .collect()
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a reload changed, for the log.
#[derive(Debug, Default)]
pub struct Changes {
    /// Deployments as `name (id)`.
    pub models_added: Vec<String>,
    pub models_removed: Vec<String>,
    pub models_changed: Vec<String>,
    /// Keys of the file by label (description, or `key#N`).
    pub keys_added: Vec<String>,
    pub keys_removed: Vec<String>,
    pub keys_changed: Vec<String>,
    /// Other top-level sections of the file whose (masked) values differ.
    pub sections: Vec<String>,
}

/// A deployment's settings as a digest (its key included, so a new key shows).
fn model_print(d: &Deployment) -> String {
    let key = d.api_key.as_ref().map_or("", |k| k.expose_secret());
    digest(&[&format!("{d:?}"), key])
}

fn key_id(k: &KeySpec) -> String {
    digest(&[k.key.expose_secret()])
}

fn key_label(i: usize, k: &KeySpec) -> String {
    k.description
        .clone()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| format!("key#{i}"))
}

impl Changes {
    /// The changes from `old` to `new`; `views` are their masked files (`GET /config`),
    /// compared section by section.
    pub fn between(
        old: &Config,
        new: &Config,
        views: (Option<&serde_json::Value>, Option<&serde_json::Value>),
    ) -> Changes {
        let mut c = Changes::default();
        let models = |cfg: &Config| -> BTreeMap<String, (String, String)> {
            cfg.models
                .iter()
                .map(|d| {
                    (
                        d.id.clone(),
                        (format!("{} ({})", d.name, d.id), model_print(d)),
                    )
                })
                .collect()
        };
        diff(
            &models(old),
            &models(new),
            (
                &mut c.models_added,
                &mut c.models_removed,
                &mut c.models_changed,
            ),
        );
        let keys = |cfg: &Config| -> BTreeMap<String, (String, String)> {
            cfg.keys
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    let print = format!(
                        "{:?}{:?}{:?}{:?}",
                        k.description, k.models, k.limits, k.tags
                    );
                    (key_id(k), (key_label(i, k), print))
                })
                .collect()
        };
        diff(
            &keys(old),
            &keys(new),
            (&mut c.keys_added, &mut c.keys_removed, &mut c.keys_changed),
        );
        if let (Some(serde_json::Value::Object(a)), Some(serde_json::Value::Object(b))) = views {
            let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            c.sections = names
                .into_iter()
                .filter(|n| !matches!(n.as_str(), "models" | "keys"))
                .filter(|n| a.get(*n) != b.get(*n))
                .cloned()
                .collect();
        }
        c
    }

    pub fn is_empty(&self) -> bool {
        self.models_added.is_empty()
            && self.models_removed.is_empty()
            && self.models_changed.is_empty()
            && self.keys_added.is_empty()
            && self.keys_removed.is_empty()
            && self.keys_changed.is_empty()
            && self.sections.is_empty()
    }

    /// One line: each non-empty list by name.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "nothing changed".into();
        }
        let mut out = String::new();
        for (what, list) in [
            ("models added", &self.models_added),
            ("models removed", &self.models_removed),
            ("models changed", &self.models_changed),
            ("keys added", &self.keys_added),
            ("keys removed", &self.keys_removed),
            ("keys changed", &self.keys_changed),
            ("sections changed", &self.sections),
        ] {
            if !list.is_empty() {
                if !out.is_empty() {
                    out.push_str("; ");
                }
                let _ = write!(out, "{what}: {}", list.join(", "));
            }
        }
        out
    }
}

type Lists<'a> = (
    &'a mut Vec<String>,
    &'a mut Vec<String>,
    &'a mut Vec<String>,
);

/// Added, removed and changed entries between two maps of id → (label, print).
fn diff(
    old: &BTreeMap<String, (String, String)>,
    new: &BTreeMap<String, (String, String)>,
    (added, removed, changed): Lists<'_>,
) {
    for (id, (label, print)) in new {
        match old.get(id) {
            None => added.push(label.clone()),
            Some((_, was)) if was != print => changed.push(label.clone()),
            Some(_) => {}
        }
    }
    removed.extend(
        old.iter()
            .filter(|(id, _)| !new.contains_key(*id))
            .map(|(_, (label, _))| label.clone()),
    );
}
