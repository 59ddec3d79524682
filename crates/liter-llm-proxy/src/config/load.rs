//! Finding and reading the config file, and turning parse errors into messages that
//! name the file, line and column.

use std::fmt;
use std::path::{Path, PathBuf};

use super::file::{FileConfig, ModelEntry};
use super::interpolate::{interpolate, line_col, Interpolated};
use super::overrides::Overrides;
use super::problems::{render_path, Seg};
use super::validate::{validate, Config};
use super::view::{inspect, Inspection};

pub const CONFIG_FILE_NAME: &str = "liter-llm-proxy.toml";

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Dotted key path, e.g. `models[1].provider_model` (empty when unknown).
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Io { file: String, error: std::io::Error },
    /// No `--config` and no `liter-llm-proxy.toml` in the working directory or above.
    NotFound { start: PathBuf },
    /// The TOML did not parse into the schema (syntax, type, unknown field).
    InvalidToml { file: String, issue: Issue },
    /// A LiteLLM YAML file that is not YAML we can read (syntax, limits).
    InvalidYaml { file: String, issue: Issue },
    /// The TOML parsed but values are wrong or not supported yet.
    Invalid { file: String, issues: Vec<Issue> },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { file, error } => write!(f, "cannot read config {file}: {error}"),
            ConfigError::NotFound { start } => write!(
                f,
                "no {CONFIG_FILE_NAME} (nor LiteLLM's config.yaml or proxy_config.yaml) found in {} or any parent directory; pass --config <path>",
                start.display()
            ),
            ConfigError::InvalidToml { file, issue } => {
                write!(
                    f,
                    "invalid TOML config {file}:{}:{}: {}",
                    issue.line, issue.column, issue.message
                )
            }
            ConfigError::InvalidYaml { file, issue } => write!(
                f,
                "invalid YAML config {file}:{}:{}: {}",
                issue.line, issue.column, issue.message
            ),
            ConfigError::Invalid { file, issues } => {
                write!(f, "invalid config {file}: {} problem(s)", issues.len())?;
                for i in issues {
                    write!(f, "\n  {file}:{}:{}: ", i.line, i.column)?;
                    if !i.path.is_empty() {
                        write!(f, "{}: ", i.path)?;
                    }
                    write!(f, "{}", i.message)?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Walk from `start` upward to the filesystem root looking for the config file.
pub fn discover(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(CONFIG_FILE_NAME))
        .find(|candidate| candidate.is_file())
}

/// Read, interpolate from the process environment, parse and validate a file.
pub fn load_file(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
    read_file(path, overrides, &[]).map(|(_, config)| config)
}

/// As [`load_file`], plus what `check-config` prints of the file (secrets masked).
pub fn inspect_file(path: &Path, overrides: &Overrides) -> Result<Inspection, ConfigError> {
    inspect_file_with(path, overrides, &[])
}

/// As [`inspect_file`], with `extra` models after the file's (see [`inspect_with`]).
pub(crate) fn inspect_file_with(
    path: &Path,
    overrides: &Overrides,
    extra: &[ModelEntry],
) -> Result<Inspection, ConfigError> {
    let (parsed, config) = read_file(path, overrides, extra)?;
    Ok(inspect(parsed, config, overrides))
}

fn read_file(
    path: &Path,
    overrides: &Overrides,
    extra: &[ModelEntry],
) -> Result<(FileConfig, Config), ConfigError> {
    let name = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
        file: name.clone(),
        error,
    })?;
    let env = |var: &str| std::env::var(var).ok();
    let (parsed, mut config) = parse_and_validate(&source, &name, overrides, &env, extra)?;
    config.source = Some(path.to_path_buf());
    Ok((parsed, config))
}

/// Interpolate, parse and validate `source`; `file` names it in errors.
pub fn load_str(
    source: &str,
    file: &str,
    overrides: &Overrides,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    parse_and_validate(source, file, overrides, &env, &[]).map(|(_, config)| config)
}

/// As [`load_str`], plus what `check-config` prints of the file (secrets masked).
pub fn inspect_str(
    source: &str,
    file: &str,
    overrides: &Overrides,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Inspection, ConfigError> {
    inspect_with(source, file, overrides, &env, &[])
}

/// As [`inspect_str`], with `extra` models after the file's (the stored models of the
/// model admin API, validated with the file as one config).
pub(crate) fn inspect_with(
    source: &str,
    file: &str,
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
    extra: &[ModelEntry],
) -> Result<Inspection, ConfigError> {
    let (parsed, config) = parse_and_validate(source, file, overrides, env, extra)?;
    Ok(inspect(parsed, config, overrides))
}

fn parse_and_validate(
    source: &str,
    file: &str,
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
    extra: &[ModelEntry],
) -> Result<(FileConfig, Config), ConfigError> {
    let expanded = interpolate(source, env);
    let mut parsed: FileConfig = toml::from_str(&expanded.text).map_err(|e| {
        let offset = e.span().map_or(0, |s| expanded.original_offset(s.start));
        let (line, column) = line_col(source, offset);
        ConfigError::InvalidToml {
            file: file.to_string(),
            issue: Issue {
                path: String::new(),
                line,
                column,
                message: first_line(e.message()),
            },
        }
    })?;
    parsed.models.extend_from_slice(extra);
    let config = validate(&parsed, overrides, env).map_err(|problems| ConfigError::Invalid {
        file: file.to_string(),
        issues: problems
            .into_iter()
            .map(|(path, message)| {
                let (line, column) = locate(source, &expanded, &path);
                Issue {
                    path: render_path(&path),
                    line,
                    column,
                    message,
                }
            })
            .collect(),
    })?;
    Ok((parsed, config))
}

/// The parser's own message, without any echo of the (expanded) source line and
/// without the values it quotes: a string value may have come from `${VAR}`. Field
/// names (`unknown field \`prot\``) are kept; quoted values and unknown variants are
/// replaced by `"…"`.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    loop {
        let quote = rest.find('"');
        let variant = rest.find("variant `");
        match (quote, variant) {
            (Some(q), v) if v.is_none_or(|v| q < v) => {
                out.push_str(&rest[..q]);
                out.push_str("\"…\"");
                match rest[q + 1..].find('"') {
                    Some(end) => rest = &rest[q + 1 + end + 1..],
                    None => return out,
                }
            }
            (_, Some(v)) => {
                let start = v + "variant `".len();
                out.push_str(&rest[..start]);
                out.push('…');
                match rest[start..].find('`') {
                    Some(end) => rest = &rest[start + end..],
                    None => return out,
                }
            }
            _ => break,
        }
    }
    out.push_str(rest);
    out
}

/// Line and column of the value at `path`, or of the deepest table on it that exists.
fn locate(source: &str, expanded: &Interpolated, path: &[Seg]) -> (usize, usize) {
    use toml::de::{DeTable, DeValue};
    let Ok(root) = DeTable::parse(&expanded.text) else {
        return (1, 1);
    };
    let mut span = root.span();
    let mut table = Some(root.get_ref());
    let mut array: Option<&toml::de::DeArray<'_>> = None;
    for seg in path {
        let next = match (seg, table, array) {
            (Seg::Key(k), Some(t), _) => t
                .iter()
                .find(|(key, _)| key.get_ref().as_ref() == k.as_str())
                .map(|(key, value)| (key.span(), value)),
            (Seg::Index(i), _, Some(a)) => a.get(*i).map(|v| (v.span(), v)),
            _ => None,
        };
        let Some((at, value)) = next else { break };
        span = at;
        table = None;
        array = None;
        match value.get_ref() {
            DeValue::Table(t) => table = Some(t),
            DeValue::Array(a) => {
                array = Some(a);
                // An inline array is reported at its `[`; an array of tables at its header.
                if value.span().start > span.start {
                    span = value.span();
                }
            }
            _ => span = value.span(),
        }
    }
    line_col(source, expanded.original_offset(span.start))
}

#[cfg(test)]
mod tests {
    use super::first_line;

    #[test]
    fn parser_messages_lose_their_values() {
        assert_eq!(
            first_line(
                "invalid type: string \"sk-secret\", expected u16\n  |\n1 | port = \"sk-secret\""
            ),
            "invalid type: string \"…\", expected u16"
        );
        assert_eq!(
            first_line("unknown variant `sk-secret`, expected `hard` or `soft`"),
            "unknown variant `…`, expected `hard` or `soft`"
        );
        assert_eq!(
            first_line("unknown field `prot`, expected one of `host`, `port`"),
            "unknown field `prot`, expected one of `host`, `port`"
        );
    }
}
