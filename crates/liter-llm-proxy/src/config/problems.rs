//! The vocabulary every validator shares: key paths ([`Seg`]), the list of problems
//! found ([`Problems`]), and a few helpers.
//!
//! A leaf: it imports nothing else of `config/`, so every other module may use it
//! without creating a cycle.

/// A step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Every problem found, each with the key path it is about.
pub(crate) type Problems = Vec<(Vec<Seg>, String)>;

pub(crate) fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

/// The path made of these keys, e.g. `path(&["server", "host"])`.
pub(crate) fn path(keys: &[&str]) -> Vec<Seg> {
    keys.iter().map(|k| key(k)).collect()
}

/// `Some` only for a non-empty string: an unset `${VAR}` means "not given".
pub(crate) fn given(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Report `name must be greater than 0` unless `ok`.
pub(crate) fn positive(problems: &mut Problems, at: Vec<Seg>, name: &str, ok: bool) {
    if !ok {
        problems.push((at, format!("{name} must be greater than 0")));
    }
}

/// `models[1].provider_model`.
pub(crate) fn render_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}
