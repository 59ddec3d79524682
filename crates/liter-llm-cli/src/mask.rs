//! `check-config` output: the resolved file as TOML with every secret masked (the
//! masking is config's, in [`Inspection::masked`]), and a summary of how each model
//! resolved (provider, upstream model id, base URL and where its key comes from,
//! never the key).

use std::fmt::Write;

use liter_llm_proxy::config::{Deployment, Inspection};

pub fn resolved(inspection: &Inspection) -> String {
    let mut out = toml::to_string_pretty(&inspection.masked)
        .unwrap_or_else(|e| format!("# cannot render: {e}\n"));
    let _ = writeln!(out, "\n# Resolved models");
    for d in &inspection.config.models {
        let _ = writeln!(
            out,
            "# {:?} -> provider {}, upstream model {:?}, base_url {}, {}",
            d.name,
            d.provider.name(),
            d.model_id,
            d.base_url.as_deref().unwrap_or("(in-process)"),
            credentials(d),
        );
    }
    let _ = match &inspection.master_key_source {
        Some(from) => writeln!(out, "# master_key: {from}"),
        None => writeln!(out, "# master_key: not set"),
    };
    out
}

/// Where the deployment's credentials come from, without them.
fn credentials(d: &Deployment) -> String {
    let s = &d.settings;
    match (&d.api_key, &s.aws_access_key_id, &s.aws_region_name) {
        (_, Some(_), Some(region)) => format!(
            "aws credentials set{}, region {region}",
            if s.aws_session_token.is_some() {
                " (with session token)"
            } else {
                ""
            }
        ),
        (Some(_), _, _) => "api key set".to_string(),
        _ => "api key not set".to_string(),
    }
}
