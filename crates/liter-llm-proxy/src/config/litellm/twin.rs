//! The TOML twin being built from a LiteLLM file: the file structs, the map from each
//! twin key path back to the YAML path, line and column it came from, the keys that
//! are not supported, and the problems found while mapping.
//!
//! Also the readers of YAML values: each takes a node and its YAML path, turns
//! `os.environ/NAME` into `${NAME}` for strings (resolved at once for numbers and
//! booleans, which are never secrets) and reports a wrong type as a problem.

use std::collections::HashMap;

use super::yaml::{Entry, Node, Value};
use crate::config::file::FileConfig;
use crate::config::load::Issue;

/// Where a twin key came from in the YAML file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loc {
    pub path: String,
    pub line: usize,
    pub col: usize,
}

pub(crate) struct Twin<'e> {
    pub file: FileConfig,
    /// Twin key path (`models[1].api_key`) → where it was written in the YAML.
    pub locs: HashMap<String, Loc>,
    /// Keys read but not supported: reported, or ignored with `--allow-unsupported`.
    pub unsupported: Vec<Issue>,
    /// Values that are wrong (a type, a provider that cannot be told).
    pub problems: Vec<Issue>,
    /// `environment_variables` first, then the process environment.
    pub env: &'e dyn Fn(&str) -> Option<String>,
    /// The names `environment_variables` sets, in file order.
    pub env_names: Vec<String>,
    /// Facts for the converted file's header (where a value came from).
    pub notes: Vec<String>,
}

impl<'e> Twin<'e> {
    pub fn new(env: &'e dyn Fn(&str) -> Option<String>) -> Self {
        Twin {
            file: FileConfig::default(),
            locs: HashMap::new(),
            unsupported: Vec::new(),
            problems: Vec::new(),
            env,
            env_names: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Remember that twin key `twin` came from `path` at `line:col`.
    pub fn loc(&mut self, twin: impl Into<String>, path: &str, line: usize, col: usize) {
        self.locs.insert(
            twin.into(),
            Loc {
                path: path.to_string(),
                line,
                col,
            },
        );
    }

    /// As [`Twin::loc`], at an entry's key.
    pub fn loc_entry(&mut self, twin: impl Into<String>, path: &str, e: &Entry) {
        self.loc(twin, path, e.line, e.col);
    }

    pub fn unsupported(&mut self, path: &str, line: usize, col: usize, why: &str) {
        self.unsupported.push(Issue {
            path: path.to_string(),
            line,
            column: col,
            message: format!("not supported yet: {why}"),
        });
    }

    /// An entry whose key we do not read at all.
    pub fn unknown(&mut self, path: &str, e: &Entry) {
        self.unsupported(
            path,
            e.line,
            e.col,
            "liter-llm does not read this LiteLLM key",
        );
    }

    pub fn problem(&mut self, path: &str, line: usize, col: usize, message: String) {
        self.problems.push(Issue {
            path: path.to_string(),
            line,
            column: col,
            message,
        });
    }

    fn wrong(&mut self, path: &str, node: &Node, expected: &str) {
        self.problem(
            path,
            node.line,
            node.col,
            format!("expected {expected}, found {}", node.kind()),
        );
    }

    /// A string value; `os.environ/NAME` becomes `${NAME}`; numbers and booleans are
    /// taken as their text; null is "not given".
    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Null => None,
            Value::Str(s) => match s.strip_prefix("os.environ/") {
                Some(name) if is_var_name(name) => Some(format!("${{{name}}}")),
                Some(_) => {
                    self.problem(
                        path,
                        node.line,
                        node.col,
                        "os.environ/ must be followed by a variable name (letters, digits, _)"
                            .into(),
                    );
                    None
                }
                None => Some(s.clone()),
            },
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Seq(_) | Value::Map(_) => {
                self.wrong(path, node, "a string");
                None
            }
        }
    }

    /// The text of a scalar with `os.environ/NAME` looked up now (for numbers and
    /// booleans, which are not secrets).
    fn resolved_text(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => match s.strip_prefix("os.environ/") {
                Some(name) => match (self.env)(name) {
                    Some(v) => Some(v.trim().to_string()),
                    None => {
                        self.problem(
                            path,
                            node.line,
                            node.col,
                            format!("{name} is not set (read through os.environ/)"),
                        );
                        None
                    }
                },
                None => Some(s.trim().to_string()),
            },
            _ => None,
        }
    }

    /// A whole number of 0 or more.
    pub fn uint(&mut self, node: &Node, path: &str) -> Option<u64> {
        let parsed = match &node.value {
            Value::Null => return None,
            Value::Int(i) => u64::try_from(*i).ok(),
            Value::Float(f) if f.fract() == 0.0 && *f >= 0.0 && *f < 1e19 => Some(*f as u64),
            Value::Str(_) => match self.resolved_text(node, path) {
                Some(t) => t.parse::<u64>().ok(),
                None => return None,
            },
            _ => None,
        };
        if parsed.is_none() {
            self.wrong(path, node, "a whole number of 0 or more");
        }
        parsed
    }

    /// A whole number that fits a `u32`.
    pub fn uint32(&mut self, node: &Node, path: &str) -> Option<u32> {
        let n = self.uint(node, path)?;
        match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                self.wrong(path, node, "a whole number below 4294967296");
                None
            }
        }
    }

    /// A number.
    pub fn float(&mut self, node: &Node, path: &str) -> Option<f64> {
        let parsed = match &node.value {
            Value::Null => return None,
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(_) => match self.resolved_text(node, path) {
                Some(t) => t.parse::<f64>().ok(),
                None => return None,
            },
            _ => None,
        };
        if parsed.is_none() {
            self.wrong(path, node, "a number");
        }
        parsed
    }

    /// A duration in whole seconds (LiteLLM allows fractions; a fraction is refused
    /// rather than rounded).
    pub fn seconds(&mut self, node: &Node, path: &str) -> Option<u64> {
        let f = self.float(node, path)?;
        if f.fract() != 0.0 || !(0.0..1e12).contains(&f) {
            self.problem(
                path,
                node.line,
                node.col,
                "must be a whole number of seconds (liter-llm's timeouts are in seconds)".into(),
            );
            return None;
        }
        Some(f as u64)
    }

    pub fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        let parsed = match &node.value {
            Value::Null => return None,
            Value::Bool(b) => Some(*b),
            Value::Str(_) => match self.resolved_text(node, path) {
                Some(t) => match t.to_ascii_lowercase().as_str() {
                    "true" | "yes" | "on" | "1" => Some(true),
                    "false" | "no" | "off" | "0" => Some(false),
                    _ => None,
                },
                None => return None,
            },
            _ => None,
        };
        if parsed.is_none() {
            self.wrong(path, node, "true or false");
        }
        parsed
    }

    /// A list of strings (a single string counts as a list of one).
    pub fn strings(&mut self, node: &Node, path: &str) -> Vec<String> {
        match &node.value {
            Value::Null => Vec::new(),
            Value::Seq(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    if let Some(s) = self.string(item, &format!("{path}[{i}]")) {
                        out.push(s);
                    }
                }
                out
            }
            Value::Str(_) => self.string(node, path).into_iter().collect(),
            _ => {
                self.wrong(path, node, "a list of strings");
                Vec::new()
            }
        }
    }

    /// The entries of a mapping, or a problem (`None`) when it is something else.
    pub fn mapping<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Entry]> {
        match &node.value {
            Value::Map(m) => Some(m),
            Value::Null => Some(&[]),
            _ => {
                self.wrong(path, node, "a mapping");
                None
            }
        }
    }
}

/// Whether `name` can be an environment variable name: ASCII letters, digits, `_`.
pub(crate) fn is_var_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
