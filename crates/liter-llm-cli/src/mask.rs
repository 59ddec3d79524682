//! `check-config` output: the resolved config as TOML with every secret masked, and
//! a summary of how each model resolved (provider, upstream model id, base URL and
//! where its key comes from, never the key).

use std::fmt::Write;

use liter_llm_proxy::config::Config;

const MASK: &str = "********";

fn mask(s: &mut Option<String>) {
    if let Some(v) = s {
        if !v.is_empty() {
            *v = MASK.to_string();
        }
    }
}

pub fn resolved(cfg: &Config) -> String {
    let mut file = cfg.file.clone();
    mask(&mut file.general.master_key);
    for m in &mut file.models {
        mask(&mut m.api_key);
        mask(&mut m.aws_access_key_id);
        mask(&mut m.aws_secret_access_key);
        mask(&mut m.aws_session_token);
    }
    for a in &mut file.aliases {
        mask(&mut a.api_key);
    }
    for k in &mut file.keys {
        k.key = MASK.to_string();
    }
    let mut out =
        toml::to_string_pretty(&file).unwrap_or_else(|e| format!("# cannot render: {e}\n"));
    let _ = writeln!(out, "\n# Resolved models");
    for d in &cfg.models {
        let _ = writeln!(
            out,
            "# {:?} -> provider {}, upstream model {:?}, base_url {}, {}",
            d.name,
            d.provider.name(),
            d.model_id,
            d.base_url.as_deref().unwrap_or("(in-process)"),
            match (
                &d.api_key,
                &d.settings.aws_access_key_id,
                &d.settings.aws_region_name
            ) {
                (_, Some(_), Some(region)) => format!(
                    "aws credentials set{}, region {region}",
                    if d.settings.aws_session_token.is_some() {
                        " (with session token)"
                    } else {
                        ""
                    }
                ),
                (Some(_), _, _) => "api key set".to_string(),
                _ => "api key not set".to_string(),
            },
        );
    }
    let _ = writeln!(
        out,
        "# master key {}",
        if cfg.master_key.is_some() {
            "set"
        } else {
            "not set"
        }
    );
    out
}
