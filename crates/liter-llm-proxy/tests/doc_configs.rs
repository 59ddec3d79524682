//! Every TOML block in the docs and the README is a config the loader takes, so the docs
//! cannot drift from what the code accepts. A block that shows a mistake on purpose (a
//! config the loader refuses, to show its error) is marked by the line
//! `<!-- refused -->` just before it and must be refused; a block that is part of a
//! file (one section, which would not stand alone) is marked `<!-- fragment -->` and is
//! only checked to be valid TOML.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use liter_llm_proxy::config::{load_str, Overrides};

#[derive(Debug, PartialEq)]
enum Mark {
    Whole,
    Refused,
    Fragment,
}

/// Every ```toml block of `text`: (line, mark, source).
fn blocks(text: &str) -> Vec<(usize, Mark, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "```toml" {
            let mark = match i.checked_sub(1).map(|p| lines[p].trim()) {
                Some("<!-- refused -->") => Mark::Refused,
                Some("<!-- fragment -->") => Mark::Fragment,
                _ => Mark::Whole,
            };
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && lines[end].trim() != "```" {
                end += 1;
            }
            out.push((start, mark, lines[start..end].join("\n")));
            i = end;
        }
        i += 1;
    }
    out
}

fn files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut out = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The environment a block sees: each `${VAR}` it writes is set (a URL for a name that
/// says it is one, else a value naming the variable, so two keys never collide), and
/// nothing else, so a block is judged on its text, not on this machine's environment.
/// The page's text names the variables its blocks rely on (`AZURE_API_BASE`, the AWS
/// credentials): those are set too.
fn env_for<'a>(source: &'a str, page: &'a str) -> impl Fn(&str) -> Option<String> + 'a {
    move |name: &str| {
        if !source.contains(&format!("${{{name}}}")) && !page.contains(name) {
            return None;
        }
        Some(match name {
            "REDIS_URL" => "redis://127.0.0.1:9".into(),
            n if n.ends_with("_URL") || n.ends_with("_BASE") || n.ends_with("ENDPOINT") => {
                "http://127.0.0.1:9".into()
            }
            n if n.ends_with("HEADERS") => "x-doc=1".into(),
            n if n.contains("REGION") => "us-east-1".into(),
            n if n.contains("PORT") => "4000".into(),
            // Base64 (an Azure storage key must be), and different for every name.
            n => {
                let mut v = format!("ZG9j{}", n.replace('_', ""));
                while v.len() % 4 != 0 {
                    v.push('A');
                }
                v
            }
        })
    }
}

#[test]
fn every_toml_block_in_the_docs_loads_or_is_marked() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for path in files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for (line, mark, source) in blocks(&text) {
            checked += 1;
            let at = format!("{name}:{line}");
            match mark {
                Mark::Fragment => {
                    if let Err(e) = source.parse::<toml::Table>() {
                        problems.push(format!("{at}: not TOML: {e}"));
                    }
                }
                Mark::Whole => {
                    if let Err(e) =
                        load_str(&source, &at, &Overrides::default(), env_for(&source, &text))
                    {
                        problems.push(format!("{at}: refused: {e}"));
                    }
                }
                Mark::Refused => {
                    if load_str(&source, &at, &Overrides::default(), env_for(&source, &text))
                        .is_ok()
                    {
                        problems.push(format!("{at}: marked refused, but it loads"));
                    }
                }
            }
        }
    }
    assert!(checked > 40, "only {checked} blocks found");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
