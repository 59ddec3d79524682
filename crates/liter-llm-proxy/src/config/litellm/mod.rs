//! LiteLLM's `config.yaml` as a config format.
//!
//! The YAML is read into a located tree (`yaml`), mapped onto the TOML file structs
//! (the "TOML twin", `twin` with `models`, `settings`, `cache`, provider inference in
//! `infer`), and the twin then goes through the normal interpolation and validation,
//! so a YAML file behaves exactly as its twin. Every twin key remembers the YAML path,
//! line and column it came from: a problem found by validation names the YAML file.
//!
//! A key we do not support is reported with its YAML path, line and column, all of
//! them at once; with `allow_unsupported` they are returned instead, for the caller
//! to log once each. `convert` prints the twin as `liter-llm-proxy.toml`.
//!
//! May use: the rest of `config` (file structs, `load`, `view`), never the gateway.

mod cache;
mod convert;
pub(crate) mod infer;
mod models;
mod settings;
mod twin;
pub mod yaml;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::load::{ConfigError, Issue};
use super::overrides::Overrides;
use super::validate::Config;
use super::view::Inspection;
use twin::{Loc, Twin};
use yaml::{Node, Value};

pub use convert::convert_str;
pub use infer::provider_model as infer_provider_model;

/// The LiteLLM file names discovery looks for when no `liter-llm-proxy.toml` is found.
pub const YAML_NAMES: &[&str] = &["config.yaml", "proxy_config.yaml"];

/// Whether `path` names a LiteLLM file (by its `.yaml` / `.yml` extension).
pub fn is_litellm(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// `liter-llm-proxy.toml` in `start` or above, else `config.yaml` / `proxy_config.yaml`
/// in `start` or above.
pub fn discover(start: &Path) -> Option<PathBuf> {
    super::load::discover(start).or_else(|| {
        start
            .ancestors()
            .flat_map(|dir| YAML_NAMES.iter().map(move |n| dir.join(n)))
            .find(|candidate| candidate.is_file())
    })
}

/// A LiteLLM file mapped onto the twin, before validation.
pub(crate) struct Prepared {
    pub file: super::file::FileConfig,
    pub toml: String,
    pub locs: HashMap<String, Loc>,
    pub unsupported: Vec<Issue>,
    pub problems: Vec<Issue>,
    /// `environment_variables`, values resolved.
    pub env_vars: BTreeMap<String, String>,
    pub env_names: Vec<String>,
    pub notes: Vec<String>,
}

fn yaml_error(file: &str, e: yaml::YamlError) -> ConfigError {
    ConfigError::InvalidYaml {
        file: file.to_string(),
        issue: Issue {
            path: String::new(),
            line: e.line,
            column: e.col,
            message: e.message,
        },
    }
}

/// `environment_variables`: each value as text (`os.environ/X` looked up).
fn environment_variables(
    entry: Option<&yaml::Entry>,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Issue>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut vars = BTreeMap::new();
    let mut names = Vec::new();
    let Some(entry) = entry else {
        return (vars, names);
    };
    let bad = |problems: &mut Vec<Issue>, path: String, node: &Node, message: String| {
        problems.push(Issue {
            path,
            line: node.line,
            column: node.col,
            message,
        })
    };
    let Value::Map(entries) = &entry.value.value else {
        if entry.value.value != Value::Null {
            bad(
                problems,
                "environment_variables".into(),
                &entry.value,
                "expected a mapping of NAME: value".into(),
            );
        }
        return (vars, names);
    };
    for e in entries {
        let path = format!("environment_variables.{}", e.key);
        let value = match &e.value.value {
            Value::Str(s) => match s.strip_prefix("os.environ/") {
                Some(name) => env(name).unwrap_or_default(),
                None => s.clone(),
            },
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
            Value::Null => String::new(),
            _ => {
                bad(
                    problems,
                    path,
                    &e.value,
                    "expected a string or a number".into(),
                );
                continue;
            }
        };
        if !twin::is_var_name(&e.key) {
            bad(
                problems,
                path,
                &e.value,
                "not a variable name (letters, digits, _)".into(),
            );
            continue;
        }
        names.push(e.key.clone());
        vars.insert(e.key.clone(), value);
    }
    (vars, names)
}

/// Parse and map `source` (named `file` in errors); `env` is the process environment.
pub(crate) fn prepare(
    source: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Prepared, ConfigError> {
    let root = yaml::parse(source).map_err(|e| yaml_error(file, e))?;
    let entries: &[yaml::Entry] = match &root.value {
        Value::Map(m) => m,
        Value::Null => &[],
        _ => {
            return Err(yaml_error(
                file,
                yaml::YamlError {
                    line: root.line,
                    col: root.col,
                    message: format!(
                        "the file must be a mapping (model_list: ...), found {}",
                        root.kind()
                    ),
                },
            ))
        }
    };
    let find = |k: &str| entries.iter().find(|e| e.key == k);
    let mut problems = Vec::new();
    let (env_vars, env_names) =
        environment_variables(find("environment_variables"), env, &mut problems);
    let overlay = |name: &str| env_vars.get(name).cloned().or_else(|| env(name));
    let mut t = Twin::new(&overlay);
    t.problems = problems;
    t.env_names = env_names;
    if let Some(e) = find("model_list") {
        models::map(&mut t, &e.value);
    }
    let mut deferred = settings::Deferred::default();
    for (key, run) in [
        (
            "litellm_settings",
            settings::litellm_settings
                as fn(&mut Twin<'_>, &[yaml::Entry], &mut settings::Deferred),
        ),
        ("router_settings", settings::router_settings),
    ] {
        if let Some(e) = find(key) {
            if let Some(m) = t.mapping(&e.value, key) {
                run(&mut t, m, &mut deferred);
            }
        }
    }
    settings::apply_deferred(&mut t, deferred);
    models::tags_without_filtering(&mut t);
    if let Some(e) = find("general_settings") {
        if let Some(m) = t.mapping(&e.value, "general_settings") {
            settings::general_settings(&mut t, m);
        }
    }
    for e in entries {
        match e.key.as_str() {
            "model_list"
            | "litellm_settings"
            | "router_settings"
            | "general_settings"
            | "environment_variables" => {}
            _ => t.unknown(&e.key, e),
        }
    }
    settings::litellm_variables(&mut t);
    let toml = toml::to_string(&t.file).map_err(|e| ConfigError::InvalidYaml {
        file: file.to_string(),
        issue: Issue {
            path: String::new(),
            line: 1,
            column: 1,
            message: format!("cannot express the file as TOML: {e}"),
        },
    })?;
    let Twin {
        file: twin_file,
        locs,
        unsupported,
        problems,
        env_names,
        notes,
        ..
    } = t;
    Ok(Prepared {
        file: twin_file,
        toml,
        locs,
        unsupported,
        problems,
        env_vars,
        env_names,
        notes,
    })
}

/// A validation problem of the twin, put back at the YAML path, line and column it
/// came from (the nearest key on its path that the YAML wrote).
fn relocate(issue: Issue, locs: &HashMap<String, Loc>) -> Issue {
    let mut path = issue.path.as_str();
    loop {
        if let Some(loc) = locs.get(path) {
            return Issue {
                path: loc.path.clone(),
                line: loc.line,
                column: loc.col,
                message: issue.message,
            };
        }
        match path.rfind(['.', '[']) {
            Some(cut) if cut > 0 => path = &path[..cut],
            _ => break,
        }
    }
    Issue {
        line: 1,
        column: 1,
        ..issue
    }
}

/// The runtime config of a LiteLLM file, and the unsupported keys it ignored.
pub struct Loaded<T> {
    pub value: T,
    /// Not supported yet, ignored because `allow_unsupported` was given (empty
    /// otherwise: they are errors then).
    pub ignored: Vec<Issue>,
}

type Validate<'a, T> =
    &'a dyn Fn(&str, &str, &Overrides, &dyn Fn(&str) -> Option<String>) -> Result<T, ConfigError>;

fn run<T>(
    source: &str,
    file: &str,
    overrides: &Overrides,
    allow_unsupported: bool,
    env: &dyn Fn(&str) -> Option<String>,
    validate: Validate<'_, T>,
) -> Result<Loaded<T>, ConfigError> {
    let p = prepare(source, file, env)?;
    let overlay = |name: &str| p.env_vars.get(name).cloned().or_else(|| env(name));
    let mut issues = p.problems;
    if !allow_unsupported {
        issues.extend(p.unsupported.iter().cloned());
    }
    let result = validate(&p.toml, file, overrides, &overlay);
    let value = match result {
        Ok(v) => Some(v),
        Err(ConfigError::Invalid { issues: found, .. }) => {
            issues.extend(found.into_iter().map(|i| relocate(i, &p.locs)));
            None
        }
        Err(ConfigError::InvalidToml { issue, .. }) => {
            issues.push(Issue {
                path: String::new(),
                line: 1,
                column: 1,
                message: format!(
                    "a value from the environment breaks the converted config: {}",
                    issue.message
                ),
            });
            None
        }
        Err(other) => return Err(other),
    };
    match value {
        Some(value) if issues.is_empty() => Ok(Loaded {
            value,
            ignored: if allow_unsupported {
                p.unsupported
            } else {
                Vec::new()
            },
        }),
        _ => {
            issues.sort_by_key(|i| (i.line, i.column));
            Err(ConfigError::Invalid {
                file: file.to_string(),
                issues,
            })
        }
    }
}

/// Map, interpolate and validate a LiteLLM file's text; `file` names it in errors.
pub fn load_str(
    source: &str,
    file: &str,
    overrides: &Overrides,
    allow_unsupported: bool,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Loaded<Config>, ConfigError> {
    run(
        source,
        file,
        overrides,
        allow_unsupported,
        &env,
        &|s, f, o, e| super::load::load_str(s, f, o, e),
    )
}

/// As [`load_str`], plus what `check-config` prints (the twin, secrets masked).
pub fn inspect_str(
    source: &str,
    file: &str,
    overrides: &Overrides,
    allow_unsupported: bool,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Loaded<Inspection>, ConfigError> {
    run(
        source,
        file,
        overrides,
        allow_unsupported,
        &env,
        &|s, f, o, e| super::load::inspect_str(s, f, o, e),
    )
}

fn read(path: &Path) -> Result<(String, String), ConfigError> {
    let name = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
        file: name.clone(),
        error,
    })?;
    Ok((source, name))
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Read and load a LiteLLM file with the process environment.
pub fn load_file(
    path: &Path,
    overrides: &Overrides,
    allow_unsupported: bool,
) -> Result<Loaded<Config>, ConfigError> {
    let (source, name) = read(path)?;
    let mut loaded = load_str(&source, &name, overrides, allow_unsupported, process_env)?;
    loaded.value.source = Some(path.to_path_buf());
    Ok(loaded)
}

/// As [`load_file`], for `check-config`.
pub fn inspect_file(
    path: &Path,
    overrides: &Overrides,
    allow_unsupported: bool,
) -> Result<Loaded<Inspection>, ConfigError> {
    let (source, name) = read(path)?;
    let mut loaded = inspect_str(&source, &name, overrides, allow_unsupported, process_env)?;
    loaded.value.config.source = Some(path.to_path_buf());
    Ok(loaded)
}

/// As [`inspect_file`], with `extra` models after the file's (the stored models of
/// the model admin API), validated with the file as one config.
pub(crate) fn inspect_file_with(
    path: &Path,
    overrides: &Overrides,
    allow_unsupported: bool,
    extra: &[super::file::ModelEntry],
) -> Result<Loaded<Inspection>, ConfigError> {
    let (source, name) = read(path)?;
    let mut loaded = run(
        &source,
        &name,
        overrides,
        allow_unsupported,
        &process_env,
        &|s, f, o, e| super::load::inspect_with(s, f, o, e, extra),
    )?;
    loaded.value.config.source = Some(path.to_path_buf());
    Ok(loaded)
}

/// Read a LiteLLM file and print it as `liter-llm-proxy.toml`.
pub fn convert_file(path: &Path) -> Result<String, ConfigError> {
    let (source, name) = read(path)?;
    convert_str(&source, &name, process_env)
}
