//! `liter-llm convert`: a LiteLLM file printed as the equivalent
//! `liter-llm-proxy.toml`, with `#` comments naming what was not converted and the
//! variables the file expects. `os.environ/X` stays `${X}`: no secret is expanded
//! into the output, and `environment_variables` are named, never copied.

use std::fmt::Write;

use super::prepare;
use crate::config::load::{ConfigError, Issue};

/// The TOML text for `source` (`file` names it in the header and in errors). Fails on
/// YAML errors and on values that cannot be mapped (a provider that cannot be told);
/// unsupported keys become comments.
pub fn convert_str(
    source: &str,
    file: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let p = prepare(source, file, &env)?;
    if !p.problems.is_empty() {
        let mut issues: Vec<Issue> = p.problems;
        issues.sort_by_key(|i| (i.line, i.column));
        return Err(ConfigError::Invalid {
            file: file.to_string(),
            issues,
        });
    }
    let body = toml::to_string_pretty(&p.file).map_err(|e| ConfigError::InvalidYaml {
        file: file.to_string(),
        issue: Issue {
            path: String::new(),
            line: 1,
            column: 1,
            message: format!("cannot express the file as TOML: {e}"),
        },
    })?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# liter-llm-proxy.toml converted from {file} (LiteLLM format)."
    );
    let _ = writeln!(
        out,
        "# Check it with: liter-llm check-config --config liter-llm-proxy.toml"
    );
    if !p.env_names.is_empty() {
        let _ = writeln!(
            out,
            "#\n# The LiteLLM file's environment_variables are not copied (they may hold secrets);\n# set them in the gateway's environment: {}",
            p.env_names.join(", ")
        );
    }
    for note in &p.notes {
        let _ = writeln!(out, "# Note: {note}");
    }
    if !p.unsupported.is_empty() {
        let _ = writeln!(out, "#\n# Not converted ({}):", p.unsupported.len());
        for u in &p.unsupported {
            let _ = writeln!(
                out,
                "#   {} (line {}, column {}): {}",
                u.path,
                u.line,
                u.column,
                u.message.replace('\n', " ")
            );
        }
    }
    out.push('\n');
    out.push_str(&body);
    Ok(out)
}
