//! Architecture checks, run by `cargo test` with the other tests. They read the source
//! as text; nothing is compiled or run.
//!
//! - [`top_level_modules_have_no_cycles`]: the gateway's top-level modules (`server`,
//!   `routing`, `store`, …) depend on each other without a cycle, so each can be read,
//!   tested and changed from the bottom up.
//! - [`no_function_is_longer_than_120_lines`]: no function of any workspace crate is
//!   longer than [`MAX_FN_LINES`] lines.
//!
//! Both go through a small Rust lexer ([`lex`]) that drops comments (doc comments too),
//! string literals (raw, byte and C strings too) and char literals, and tells lifetimes
//! (`'a`) from char literals (`'a'`). The checker's own tests are the `checker_*` tests
//! at the end of this file.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

/// The longest a function may be, from the line of its `fn` to its closing brace.
const MAX_FN_LINES: usize = 120;

// ---------------------------------------------------------------------------------
// The checks.

/// Every `.rs` file of `crates/liter-llm-proxy/src` except the crate roots (`lib.rs`,
/// `main.rs`) and `src/bin/**` belongs to a top-level module, the first component of its
/// path under `src/` (`server/handlers.rs` → `server`, `error.rs` → `error`). A module
/// depends on another when it names it through a `crate::` path (`use crate::a::b;`,
/// grouped uses `use crate::{a::X, b};`, inline paths `crate::a::f()`), or through
/// `super::` paths that climb to the crate root (`super::x` in `error.rs` or in
/// `server/mod.rs`, `super::super::x` in `server/handlers.rs`). Naming itself is not a
/// dependency; names that are not top-level modules (items re-exported at the crate
/// root) are not either.
///
/// On failure every cycle is printed as `a -> b -> c -> a`, each edge with one file and
/// line it comes from. A tangle of modules has many cycles; the ones printed are, for
/// each edge that lies on a cycle, the shortest cycle through it, so every edge that
/// would have to go is shown at least once.
#[test]
fn top_level_modules_have_no_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for path in rust_files(&src) {
        let rel = path.strip_prefix(&src).unwrap_or(&path).to_path_buf();
        let Some(module) = top_module(&rel) else {
            continue;
        };
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        files.push((rel, module, text));
    }
    let modules: BTreeSet<String> = files.iter().map(|(_, m, _)| m.clone()).collect();
    let mut graph = Graph::new();
    for (rel, module, text) in &files {
        let shown = Path::new("crates/liter-llm-proxy/src").join(rel);
        for r in crate_refs(&lex(text), module_depth(rel)) {
            if r.module != *module && modules.contains(&r.module) {
                let place = format!("{}:{}", shown.display(), r.line);
                graph.add(module, &r.module, place);
            }
        }
    }
    let cycles = graph.cycles();
    if !cycles.is_empty() {
        let mut report = format!(
            "{} module cycle(s) among the top-level modules of liter-llm-proxy:\n",
            cycles.len()
        );
        for cycle in &cycles {
            report.push_str(&graph.describe(cycle));
        }
        panic!("{report}");
    }
}

/// Every function with a body in `crates/*/src/**/*.rs`, counted from the line of its
/// `fn` to the line of its closing brace. Test code is not counted: items under a
/// `#[cfg(test)]` attribute (a `mod tests { .. }`, a test-only function or impl), files
/// that are test-only modules (`#[cfg(test)] mod name;`, and what is below them) and
/// files with `#![cfg(test)]`. Table-driven tests may be long; production code may not.
#[test]
fn no_function_is_longer_than_120_lines() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let crates = fs::canonicalize(manifest.join("..")).unwrap_or_else(|e| panic!("{e}"));
    let root = crates.parent().unwrap_or(&crates).to_path_buf();
    let mut sources = Vec::new();
    let mut test_only = BTreeSet::new();
    for krate in sorted_dir(&crates) {
        let src = krate.join("src");
        if !src.is_dir() {
            continue;
        }
        for path in rust_files(&src) {
            let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            let tokens = lex(&text);
            let scan = scan_functions(&tokens);
            for name in &scan.test_modules {
                test_only.extend(child_module_files(&path, name));
            }
            if scan.whole_file_is_test {
                test_only.insert(path.clone());
            }
            sources.push((path, scan.functions));
        }
    }
    let mut offenders = Vec::new();
    for (path, functions) in &sources {
        if is_test_only(path, &test_only) {
            continue;
        }
        let shown = path.strip_prefix(&root).unwrap_or(path).display();
        for f in functions.iter().filter(|f| f.lines() > MAX_FN_LINES) {
            offenders.push(format!(
                "{shown}:{} {} ({} lines)",
                f.line,
                f.name,
                f.lines()
            ));
        }
    }
    assert!(
        offenders.is_empty(),
        "{} function(s) longer than {MAX_FN_LINES} lines:\n{}\n",
        offenders.len(),
        offenders.join("\n")
    );
}

// ---------------------------------------------------------------------------------
// Files.

/// The `.rs` files under `dir`, sorted, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in sorted_dir(dir) {
        if entry.is_dir() {
            out.extend(rust_files(&entry));
        } else if entry.extension().is_some_and(|e| e == "rs") {
            out.push(entry);
        }
    }
    out
}

fn sorted_dir(dir: &Path) -> Vec<PathBuf> {
    let read = fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
    let mut entries: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    entries
}

/// The top-level module of a file (its path under `src/`); `None` for the crate roots
/// and `src/bin/**`.
fn top_module(rel: &Path) -> Option<String> {
    let mut parts = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    let first = parts.next()?;
    let is_file = parts.next().is_none();
    match first.as_str() {
        "lib.rs" | "main.rs" | "bin" => None,
        _ if is_file => first.strip_suffix(".rs").map(str::to_string),
        _ => Some(first),
    }
}

/// How deep a file's module is below the crate root: `error.rs` and `server/mod.rs` 1,
/// `server/handlers.rs` 2.
fn module_depth(rel: &Path) -> usize {
    let n = rel.components().count();
    if rel.file_name().is_some_and(|f| f == "mod.rs") {
        n - 1
    } else {
        n
    }
}

/// The files that can hold module `name` declared in `path` (`mod name;`).
fn child_module_files(path: &Path, name: &str) -> Vec<PathBuf> {
    let Some(dir) = path.parent() else {
        return Vec::new();
    };
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    let base = match stem.as_deref() {
        Some("mod" | "lib" | "main") | None => dir.to_path_buf(),
        Some(stem) => dir.join(stem),
    };
    vec![
        base.join(format!("{name}.rs")),
        base.join(name).join("mod.rs"),
    ]
}

/// Whether `path` is a test-only module file or lies below one.
fn is_test_only(path: &Path, test_only: &BTreeSet<PathBuf>) -> bool {
    test_only.iter().any(|t| {
        if path == t {
            return true;
        }
        // Below `a/tests.rs` (a/tests/..) or `a/tests/mod.rs` (a/tests/..).
        let dir = if t.file_name().is_some_and(|f| f == "mod.rs") {
            t.parent().map(Path::to_path_buf)
        } else {
            t.parent().zip(t.file_stem()).map(|(p, s)| p.join(s))
        };
        dir.is_some_and(|d| path.starts_with(d))
    })
}

// ---------------------------------------------------------------------------------
// The lexer.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
    /// A string, char or number literal, or a lifetime: its text does not matter.
    Literal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    tok: Tok,
    line: usize,
}

/// The tokens of Rust source, with comments and the contents of literals gone.
fn lex(src: &str) -> Vec<Token> {
    let mut lexer = Lexer {
        c: src.chars().collect(),
        i: 0,
        line: 1,
        out: Vec::new(),
    };
    lexer.run();
    lexer.out
}

struct Lexer {
    c: Vec<char>,
    i: usize,
    line: usize,
    out: Vec<Token>,
}

fn is_ident_start(ch: char) -> bool {
    ch == '_' || ch.is_alphabetic()
}

fn is_ident_continue(ch: char) -> bool {
    ch == '_' || ch.is_alphanumeric()
}

impl Lexer {
    fn at(&self, k: usize) -> Option<char> {
        self.c.get(self.i + k).copied()
    }

    fn push(&mut self, tok: Tok, line: usize) {
        self.out.push(Token { tok, line });
    }

    /// Moves past one char, counting lines.
    fn bump(&mut self) {
        if self.at(0) == Some('\n') {
            self.line += 1;
        }
        self.i += 1;
    }

    fn run(&mut self) {
        while let Some(ch) = self.at(0) {
            let line = self.line;
            match ch {
                _ if ch.is_whitespace() => self.bump(),
                '/' if self.at(1) == Some('/') => {
                    while self.at(0).is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                '/' if self.at(1) == Some('*') => self.block_comment(),
                '"' => {
                    self.bump();
                    self.string_body();
                    self.push(Tok::Literal, line);
                }
                '\'' => {
                    self.quote();
                    self.push(Tok::Literal, line);
                }
                ':' if self.at(1) == Some(':') => {
                    self.i += 2;
                    self.push(Tok::PathSep, line);
                }
                _ if ch.is_ascii_digit() => {
                    while self.at(0).is_some_and(is_ident_continue) {
                        self.bump();
                    }
                    self.push(Tok::Literal, line);
                }
                _ if is_ident_start(ch) => {
                    if self.prefixed_literal() {
                        self.push(Tok::Literal, line);
                    } else {
                        let word = self.ident();
                        self.push(Tok::Ident(word), line);
                    }
                }
                _ => {
                    self.bump();
                    self.push(Tok::Punct(ch), line);
                }
            }
        }
    }

    /// `/* .. */`, nested.
    fn block_comment(&mut self) {
        let mut depth = 0;
        while let Some(ch) = self.at(0) {
            if ch == '/' && self.at(1) == Some('*') {
                depth += 1;
                self.i += 2;
            } else if ch == '*' && self.at(1) == Some('/') {
                depth -= 1;
                self.i += 2;
                if depth == 0 {
                    return;
                }
            } else {
                self.bump();
            }
        }
    }

    /// After the opening `"`: up to and past the closing one.
    fn string_body(&mut self) {
        while let Some(ch) = self.at(0) {
            self.bump();
            match ch {
                '\\' => self.bump(),
                '"' => return,
                _ => {}
            }
        }
    }

    /// At `'`: a char literal (`'x'`, `'\n'`, `'\''`, `'\u{..}'`) or a lifetime or
    /// label (`'a`, `'static`).
    fn quote(&mut self) {
        self.bump();
        if self.at(0) == Some('\\') {
            self.bump();
            self.bump();
            while self.at(0).is_some_and(|c| c != '\'') {
                self.bump();
            }
            self.bump();
        } else if self.at(1) == Some('\'') {
            self.i += 2;
        } else {
            while self.at(0).is_some_and(is_ident_continue) {
                self.bump();
            }
        }
    }

    /// At an identifier's first char: a literal with a prefix (`b'x'`, `b".."`, `c".."`,
    /// `r".."`, `r#".."#`, `br#".."#`, `cr".."`) is consumed and `true`.
    fn prefixed_literal(&mut self) -> bool {
        let (prefix, raw) = match (self.at(0), self.at(1)) {
            (Some('b' | 'c'), Some('r')) => (2, true),
            (Some('r'), _) => (1, true),
            (Some('b' | 'c'), _) => (1, false),
            _ => return false,
        };
        if !raw {
            return match self.at(1) {
                Some('"') => {
                    self.i += 2;
                    self.string_body();
                    true
                }
                Some('\'') if self.at(0) == Some('b') => {
                    self.i += 1;
                    self.quote();
                    true
                }
                _ => false,
            };
        }
        let mut hashes = 0;
        while self.at(prefix + hashes) == Some('#') {
            hashes += 1;
        }
        if self.at(prefix + hashes) != Some('"') {
            return false;
        }
        self.i += prefix + hashes + 1;
        while self.at(0).is_some() {
            if self.at(0) == Some('"') && (1..=hashes).all(|k| self.at(k) == Some('#')) {
                self.i += 1 + hashes;
                return true;
            }
            self.bump();
        }
        true
    }

    /// An identifier (`r#name` gives `name`).
    fn ident(&mut self) -> String {
        if self.at(0) == Some('r')
            && self.at(1) == Some('#')
            && self.at(2).is_some_and(is_ident_start)
        {
            self.i += 2;
        }
        let start = self.i;
        while self.at(0).is_some_and(is_ident_continue) {
            self.i += 1;
        }
        self.c[start..self.i].iter().collect()
    }
}

fn is_ident(t: Option<&Token>, word: &str) -> bool {
    matches!(t, Some(Token { tok: Tok::Ident(w), .. }) if w == word)
}

fn is_punct(t: Option<&Token>, ch: char) -> bool {
    matches!(t, Some(Token { tok: Tok::Punct(p), .. }) if *p == ch)
}

fn is_path_sep(t: Option<&Token>) -> bool {
    matches!(
        t,
        Some(Token {
            tok: Tok::PathSep,
            ..
        })
    )
}

/// The index of the token that closes the bracket opened at `open` (`{`, `(` or `[`),
/// or the last index if it is never closed.
fn matching(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (k, t) in tokens.iter().enumerate().skip(open) {
        match t.tok {
            Tok::Punct('{' | '(' | '[') => depth += 1,
            Tok::Punct('}' | ')' | ']') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    tokens.len().saturating_sub(1)
}

// ---------------------------------------------------------------------------------
// Module references.

/// A top-level module named by a path that starts at the crate root.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ref {
    module: String,
    line: usize,
}

/// The first segments of the paths in `tokens` that start at the crate root: `crate::`
/// (or `$crate::`) anywhere, and `super::` chains that climb exactly to the root (a file
/// at `depth` below the root, plus the inline `mod x { .. }` blocks around the path).
fn crate_refs(tokens: &[Token], depth: usize) -> Vec<Ref> {
    let mut refs = Vec::new();
    let mut braces = 0usize;
    // The brace depth inside each enclosing inline `mod x { .. }`.
    let mut mods: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        // A path segment after `::` does not start a path.
        let starts_path = !(i > 0 && is_path_sep(tokens.get(i - 1)));
        let opens_mod = matches!(tokens.get(i + 1).map(|t| &t.tok), Some(Tok::Ident(_)))
            && is_punct(tokens.get(i + 2), '{');
        match &tokens[i].tok {
            Tok::Punct('{') => braces += 1,
            Tok::Punct('}') => {
                if mods.last() == Some(&braces) {
                    mods.pop();
                }
                braces = braces.saturating_sub(1);
            }
            Tok::Ident(w) if w == "mod" && opens_mod => mods.push(braces + 1),
            Tok::Ident(w) if w == "crate" && starts_path && is_path_sep(tokens.get(i + 1)) => {
                root_targets(tokens, i + 2, &mut refs);
            }
            Tok::Ident(w) if w == "super" && starts_path => {
                let mut k = i;
                let mut climbs = 0;
                while is_ident(tokens.get(k), "super") && is_path_sep(tokens.get(k + 1)) {
                    climbs += 1;
                    k += 2;
                }
                if climbs > 0 && climbs == depth + mods.len() {
                    root_targets(tokens, k, &mut refs);
                }
                i = k.max(i + 1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    refs
}

/// The module names a root path continues with at `at`: one name, or the first segment
/// of each item of a group `{a::X, b, c::{..}}` (`self` and globs name no module).
fn root_targets(tokens: &[Token], at: usize, refs: &mut Vec<Ref>) {
    let push = |t: Option<&Token>, refs: &mut Vec<Ref>| {
        if let Some(Token {
            tok: Tok::Ident(name),
            line,
        }) = t
        {
            if name != "self" {
                refs.push(Ref {
                    module: name.clone(),
                    line: *line,
                });
            }
        }
    };
    if !is_punct(tokens.get(at), '{') {
        push(tokens.get(at), refs);
        return;
    }
    let end = matching(tokens, at);
    let mut depth = 0;
    let mut item_start = true;
    for k in at..=end {
        match tokens[k].tok {
            Tok::Punct('{') => {
                depth += 1;
                item_start = depth == 1;
                continue;
            }
            Tok::Punct('}') => depth -= 1,
            Tok::Punct(',') if depth == 1 => {
                item_start = true;
                continue;
            }
            _ if item_start => push(tokens.get(k), refs),
            _ => {}
        }
        item_start = false;
    }
}

// ---------------------------------------------------------------------------------
// The module graph.

struct Graph {
    /// from → to → one place the edge comes from (`path:line`), the first seen.
    edges: BTreeMap<String, BTreeMap<String, String>>,
}

impl Graph {
    fn new() -> Self {
        Self {
            edges: BTreeMap::new(),
        }
    }

    fn add(&mut self, from: &str, to: &str, place: String) {
        self.edges
            .entry(from.to_string())
            .or_default()
            .entry(to.to_string())
            .or_insert(place);
    }

    /// For every edge on a cycle, the shortest cycle through it; each cycle once (as
    /// its nodes, starting from the smallest name), shortest first.
    fn cycles(&self) -> Vec<Vec<String>> {
        let mut found = BTreeSet::new();
        for (from, tos) in &self.edges {
            for to in tos.keys() {
                if let Some(back) = self.shortest_path(to, from) {
                    let mut cycle = vec![from.clone()];
                    cycle.extend(back.into_iter().take_while(|m| m != from));
                    found.insert(rotate_to_smallest(cycle));
                }
            }
        }
        let mut cycles: Vec<Vec<String>> = found.into_iter().collect();
        cycles.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
        cycles
    }

    /// The nodes from `from` to `to` (both included) along a shortest path.
    fn shortest_path(&self, from: &str, to: &str) -> Option<Vec<String>> {
        let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([from]);
        let mut seen = BTreeSet::from([from]);
        while let Some(node) = queue.pop_front() {
            if node == to {
                let mut path = vec![to.to_string()];
                let mut at = to;
                while at != from {
                    at = previous[at];
                    path.push(at.to_string());
                }
                path.reverse();
                return Some(path);
            }
            for next in self.edges.get(node).into_iter().flat_map(|m| m.keys()) {
                if seen.insert(next.as_str()) {
                    previous.insert(next.as_str(), node);
                    queue.push_back(next.as_str());
                }
            }
        }
        None
    }

    /// `a -> b -> c -> a`, then each edge with where it comes from.
    fn describe(&self, cycle: &[String]) -> String {
        let mut closed: Vec<&str> = cycle.iter().map(String::as_str).collect();
        closed.push(&cycle[0]);
        let mut out = format!("\n{}\n", closed.join(" -> "));
        for pair in closed.windows(2) {
            let place = &self.edges[pair[0]][pair[1]];
            out.push_str(&format!("    {} -> {}: {place}\n", pair[0], pair[1]));
        }
        out
    }
}

fn rotate_to_smallest(mut cycle: Vec<String>) -> Vec<String> {
    let start = (0..cycle.len()).min_by_key(|&k| &cycle[k]).unwrap_or(0);
    cycle.rotate_left(start);
    cycle
}

// ---------------------------------------------------------------------------------
// Functions.

#[derive(Debug, Clone, PartialEq, Eq)]
struct FnSpan {
    name: String,
    /// The line of `fn`.
    line: usize,
    /// The line of the closing brace.
    end: usize,
}

impl FnSpan {
    fn lines(&self) -> usize {
        self.end - self.line + 1
    }
}

#[derive(Debug, Default)]
struct FnScan {
    /// Functions with a body, outside test code.
    functions: Vec<FnSpan>,
    /// `#[cfg(test)] mod name;`: modules in files of their own that are test code.
    test_modules: Vec<String>,
    /// `#![cfg(test)]`.
    whole_file_is_test: bool,
}

/// Whether the tokens at `at` are `cfg(test)]` (after `#[` or `#![`).
fn is_cfg_test(tokens: &[Token], at: usize) -> bool {
    is_ident(tokens.get(at), "cfg")
        && is_punct(tokens.get(at + 1), '(')
        && is_ident(tokens.get(at + 2), "test")
        && is_punct(tokens.get(at + 3), ')')
        && is_punct(tokens.get(at + 4), ']')
}

/// The function bodies of a file, and what of it is test code.
fn scan_functions(tokens: &[Token]) -> FnScan {
    let mut scan = FnScan::default();
    // Token ranges of items under `#[cfg(test)]`.
    let mut test_ranges: Vec<(usize, usize)> = Vec::new();
    for i in 0..tokens.len() {
        if !is_punct(tokens.get(i), '#') {
            continue;
        }
        if is_punct(tokens.get(i + 1), '!') && is_punct(tokens.get(i + 2), '[') {
            scan.whole_file_is_test |= is_cfg_test(tokens, i + 3);
        } else if is_punct(tokens.get(i + 1), '[') && is_cfg_test(tokens, i + 2) {
            match test_item(tokens, i + 7) {
                TestItem::Body(start, end) => test_ranges.push((start, end)),
                TestItem::ModFile(name) => scan.test_modules.push(name),
                TestItem::Other => {}
            }
        }
    }
    for i in 0..tokens.len() {
        if !is_ident(tokens.get(i), "fn") || test_ranges.iter().any(|&(s, e)| s <= i && i <= e) {
            continue;
        }
        let Some(Token {
            tok: Tok::Ident(name),
            ..
        }) = tokens.get(i + 1)
        else {
            continue; // `fn(..)` pointer types, `fn $name` in macros
        };
        if let Some(open) = body_start(tokens, i + 2) {
            let close = matching(tokens, open);
            scan.functions.push(FnSpan {
                name: name.clone(),
                line: tokens[i].line,
                end: tokens[close].line,
            });
        }
    }
    scan
}

enum TestItem {
    /// The item from its first token to its closing `}`, as token indices.
    Body(usize, usize),
    /// `mod name;`
    ModFile(String),
    Other,
}

/// The item that starts at `at`, past its other attributes.
fn test_item(tokens: &[Token], mut at: usize) -> TestItem {
    while is_punct(tokens.get(at), '#') && is_punct(tokens.get(at + 1), '[') {
        at = matching(tokens, at + 1) + 1;
    }
    let mut depth = 0usize;
    for (k, t) in tokens.iter().enumerate().skip(at) {
        match t.tok {
            Tok::Punct('(' | '[') => depth += 1,
            Tok::Punct(')' | ']') => depth = depth.saturating_sub(1),
            Tok::Punct('{') if depth == 0 => return TestItem::Body(at, matching(tokens, k)),
            Tok::Punct(';') if depth == 0 => {
                let name = k.checked_sub(1).and_then(|p| tokens.get(p));
                let keyword = k.checked_sub(2).and_then(|p| tokens.get(p));
                return match name {
                    Some(Token {
                        tok: Tok::Ident(name),
                        ..
                    }) if is_ident(keyword, "mod") => TestItem::ModFile(name.clone()),
                    _ => TestItem::Other,
                };
            }
            _ => {}
        }
    }
    TestItem::Other
}

/// After a function's name: the index of its body's `{`, or `None` when a `;` comes
/// first (a declaration without a body).
fn body_start(tokens: &[Token], from: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, t) in tokens.iter().enumerate().skip(from) {
        match t.tok {
            Tok::Punct('(' | '[') => depth += 1,
            Tok::Punct(')' | ']') => depth = depth.saturating_sub(1),
            Tok::Punct('{') if depth == 0 => return Some(k),
            Tok::Punct(';') if depth == 0 => return None,
            _ => {}
        }
    }
    None
}

// ---------------------------------------------------------------------------------
// The checker's own tests.

fn idents(src: &str) -> Vec<String> {
    lex(src)
        .into_iter()
        .filter_map(|t| match t.tok {
            Tok::Ident(w) => Some(w),
            _ => None,
        })
        .collect()
}

fn modules(src: &str, depth: usize) -> Vec<(String, usize)> {
    crate_refs(&lex(src), depth)
        .into_iter()
        .map(|r| (r.module, r.line))
        .collect()
}

fn owned(pairs: &[(&str, usize)]) -> Vec<(String, usize)> {
    pairs.iter().map(|&(m, l)| (m.to_string(), l)).collect()
}

#[test]
fn checker_reads_plain_grouped_and_inline_paths() {
    let src = "use crate::a::b;\n\
               use crate::{c::X, d, self as me, e::{f, g::{H, I}},\n    \
                   j::*};\n\
               fn f() { crate::k::call(); let x = crate :: l::Y; }\n\
               pub(crate) fn g() {}\n\
               use std::{io, crate_like::m};\n";
    assert_eq!(
        modules(src, 2),
        owned(&[
            ("a", 1),
            ("c", 2),
            ("d", 2),
            ("e", 2),
            ("j", 3),
            ("k", 4),
            ("l", 4)
        ])
    );
}

#[test]
fn checker_skips_comments_strings_and_chars() {
    let src = r####"
        // use crate::a;
        /// crate::b in a doc comment
        //! crate::c
        /* crate::d /* nested crate::e */ crate::f */
        let s = "crate::g \" crate::h";
        let r = r#"crate::i "quoted" crate::j"#;
        let r2 = r##"a "# crate::k"##;
        let b = b"crate::l"; let br = br#"crate::m"#; let c = c"crate::n";
        let ch = '"'; let q = '\''; let brace = '{'; let u = '\u{1F600}'; let bc = b'"';
        crate::real::f();
    "####;
    assert_eq!(modules(src, 1), owned(&[("real", 11)]));
    assert_eq!(idents("r#type r#\"x\"# b'a' x"), ["type", "x"]);
}

#[test]
fn checker_tells_lifetimes_from_chars() {
    let src = "fn f<'a>(x: &'a str, c: char) -> &'static str {\n\
               if c == '}' { return \"}\"; }\n\
               'outer: loop { break 'outer; }\n\
               crate::m::g(x)\n\
               }\n\
               fn after() {}\n";
    let tokens = lex(src);
    assert_eq!(modules(src, 1), owned(&[("m", 4)]));
    let scan = scan_functions(&tokens);
    let spans: Vec<(&str, usize, usize)> = scan
        .functions
        .iter()
        .map(|f| (f.name.as_str(), f.line, f.end))
        .collect();
    assert_eq!(spans, [("f", 1, 5), ("after", 6, 6)]);
}

#[test]
fn checker_follows_super_to_the_crate_root_only() {
    // error.rs (depth 1): `super::x` is the root; inside its `mod tests` it is not.
    let src = "use super::config::X;\nuse super::{routing, self};\n\
               mod tests { use super::store::Y; use super::super::server; }\n\
               fn f() { super::limits::g(); }\n";
    assert_eq!(
        modules(src, 1),
        owned(&[("config", 1), ("routing", 2), ("server", 3), ("limits", 4)])
    );
    // server/handlers.rs (depth 2): `super::x` is a sibling, `super::super::x` the root.
    let src = "use super::body::B;\nuse super::super::store;\n";
    assert_eq!(modules(src, 2), owned(&[("store", 2)]));
    assert_eq!(module_depth(Path::new("server/mod.rs")), 1);
    assert_eq!(module_depth(Path::new("server/handlers.rs")), 2);
    assert_eq!(module_depth(Path::new("error.rs")), 1);
    assert_eq!(
        top_module(Path::new("server/handlers.rs")).as_deref(),
        Some("server")
    );
    assert_eq!(top_module(Path::new("error.rs")).as_deref(), Some("error"));
    assert_eq!(top_module(Path::new("lib.rs")), None);
    assert_eq!(top_module(Path::new("bin/tool.rs")), None);
}

#[test]
fn checker_prints_cycles_with_their_places() {
    let mut g = Graph::new();
    g.add("a", "b", "a.rs:1".into());
    g.add("b", "c", "b.rs:2".into());
    g.add("c", "a", "c.rs:3".into());
    g.add("c", "d", "c.rs:4".into());
    g.add("b", "a", "b.rs:5".into());
    let cycles = g.cycles();
    assert_eq!(cycles, [vec!["a", "b"], vec!["a", "b", "c"]]);
    assert_eq!(
        g.describe(&cycles[1]),
        "\na -> b -> c -> a\n    a -> b: a.rs:1\n    b -> c: b.rs:2\n    c -> a: c.rs:3\n"
    );
    let mut g = Graph::new();
    g.add("a", "b", "a.rs:1".into());
    assert!(g.cycles().is_empty());
}

#[test]
fn checker_measures_functions_and_skips_test_code() {
    let src = "trait T { fn declared(&self) -> [u8; 4]; }\n\
               fn long(\n  x: fn(u8) -> u8,\n) -> u8 {\n  let s = \"}}}\";\n  /* } */\n  x(1)\n}\n\
               #[cfg(test)]\n#[allow(dead_code)]\nmod tests {\n  fn inside() {\n  }\n}\n\
               #[cfg(test)]\nmod more;\n\
               #[cfg(test)]\nfn helper() {}\n\
               macro_rules! m { ($name:ident) => { fn $name() {} }; }\n\
               impl X { pub(crate) fn method<'a>(&'a self) where Self: Sized { } }\n";
    let scan = scan_functions(&lex(src));
    let spans: Vec<(&str, usize, usize)> = scan
        .functions
        .iter()
        .map(|f| (f.name.as_str(), f.line, f.lines()))
        .collect();
    assert_eq!(spans, [("long", 2, 7), ("method", 20, 1)]);
    assert_eq!(scan.test_modules, ["more"]);
    assert!(!scan.whole_file_is_test);
    assert!(scan_functions(&lex("#![cfg(test)]\nfn a() {}")).whole_file_is_test);

    let children = child_module_files(Path::new("/s/src/a/b.rs"), "more");
    assert_eq!(
        children,
        [
            PathBuf::from("/s/src/a/b/more.rs"),
            PathBuf::from("/s/src/a/b/more/mod.rs")
        ]
    );
    let test_only = BTreeSet::from([PathBuf::from("/s/src/a/b/more.rs")]);
    assert!(is_test_only(Path::new("/s/src/a/b/more.rs"), &test_only));
    assert!(is_test_only(Path::new("/s/src/a/b/more/x.rs"), &test_only));
    assert!(!is_test_only(Path::new("/s/src/a/b.rs"), &test_only));
}
