//! A small YAML reader for LiteLLM's config file: the events of `saphyr-parser` built
//! into a tree whose every node knows its line and column.
//!
//! Guarded against hostile input: the file size, the nesting depth and the number of
//! nodes (anchors expanded by aliases count each time they are used, so a
//! "billion laughs" file stops at the limit instead of growing) are bounded, and every
//! failure is an error with a line and column, never a panic. Scalars are typed as
//! PyYAML (which LiteLLM uses) types them: `yes`/`no`/`on`/`off` are booleans too.
//! The `<<` merge key is honoured; a duplicate key is an error.
//!
//! A leaf: it touches nothing else of the gateway.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// The largest file read, in bytes.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;
/// The deepest nesting of sequences and mappings.
pub const MAX_DEPTH: usize = 64;
/// The most nodes the tree may hold, counting each use of an anchor in full.
pub const MAX_NODES: usize = 200_000;

/// A YAML value and where it was written (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// A mapping entry: its key (a scalar, as text) with the key's position.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub line: usize,
    pub col: usize,
    pub value: Node,
}

/// Why the file is not YAML we can read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Node {
    /// The entries of a mapping (`None` for anything else).
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// A word for the node's type, for messages.
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    fn size(&self) -> usize {
        1 + match &self.value {
            Value::Seq(items) => items.iter().map(Node::size).sum(),
            Value::Map(entries) => entries.iter().map(|e| 1 + e.value.size()).sum(),
            _ => 0,
        }
    }
}

/// A container being built.
enum Open {
    Seq {
        at: (usize, usize),
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        at: (usize, usize),
        anchor: usize,
        entries: Vec<Entry>,
        /// The key read, waiting for its value.
        key: Option<(String, usize, usize)>,
        /// Keys that came from a `<<` merge: a key written in the mapping replaces them.
        merged: Vec<String>,
    },
}

struct Builder {
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    root: Option<Node>,
}

fn pos(span: &Span) -> (usize, usize) {
    (span.start.line(), span.start.col() + 1)
}

fn error(at: (usize, usize), message: impl Into<String>) -> YamlError {
    YamlError {
        line: at.0,
        col: at.1,
        message: message.into(),
    }
}

/// Parse the first document of `source` into a tree (`Null` for an empty file).
pub fn parse(source: &str) -> Result<Node, YamlError> {
    if source.len() > MAX_BYTES {
        return Err(error(
            (1, 1),
            format!("the file is larger than {MAX_BYTES} bytes"),
        ));
    }
    let mut b = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        root: None,
    };
    let mut documents = 0;
    for event in Parser::new_from_str(source) {
        let (event, span) = event.map_err(|e| {
            let m = e.marker();
            error((m.line(), m.col() + 1), e.info().to_string())
        })?;
        let at = pos(&span);
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(error(
                        at,
                        "only one YAML document is read; remove the `---` and what follows",
                    ));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(
                    &text,
                    style,
                    tag.as_deref().map(|t| (&*t.handle, &*t.suffix)),
                    at,
                )?;
                b.push(
                    Node {
                        value,
                        line: at.0,
                        col: at.1,
                    },
                    anchor,
                    at,
                )?;
            }
            Event::Alias(id) => {
                let Some(node) = b.anchors.get(&id).cloned() else {
                    return Err(error(at, "alias to an unknown anchor"));
                };
                let size = node.size();
                b.count(size, at)?;
                b.place(node, at)?;
            }
            Event::SequenceStart(anchor, _) => {
                b.open(
                    Open::Seq {
                        at,
                        anchor,
                        items: Vec::new(),
                    },
                    at,
                )?;
            }
            Event::MappingStart(anchor, _) => {
                b.open(
                    Open::Map {
                        at,
                        anchor,
                        entries: Vec::new(),
                        key: None,
                        merged: Vec::new(),
                    },
                    at,
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => b.close(at)?,
            _ => {}
        }
    }
    Ok(b.root.unwrap_or(Node {
        value: Value::Null,
        line: 1,
        col: 1,
    }))
}

impl Builder {
    fn count(&mut self, n: usize, at: (usize, usize)) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(error(
                at,
                format!("the document has more than {MAX_NODES} values (aliases counted each time they are used); refused"),
            ));
        }
        Ok(())
    }

    fn open(&mut self, open: Open, at: (usize, usize)) -> Result<(), YamlError> {
        self.count(1, at)?;
        if self.stack.len() >= MAX_DEPTH {
            return Err(error(
                at,
                format!("nested deeper than {MAX_DEPTH} levels; refused"),
            ));
        }
        self.stack.push(open);
        Ok(())
    }

    fn push(&mut self, node: Node, anchor: usize, at: (usize, usize)) -> Result<(), YamlError> {
        self.count(1, at)?;
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        self.place(node, at)
    }

    fn close(&mut self, at: (usize, usize)) -> Result<(), YamlError> {
        let Some(open) = self.stack.pop() else {
            return Err(error(at, "unbalanced end of a collection"));
        };
        let (node, anchor) = match open {
            Open::Seq { at, anchor, items } => (
                Node {
                    value: Value::Seq(items),
                    line: at.0,
                    col: at.1,
                },
                anchor,
            ),
            Open::Map {
                at,
                anchor,
                entries,
                ..
            } => (
                Node {
                    value: Value::Map(entries),
                    line: at.0,
                    col: at.1,
                },
                anchor,
            ),
        };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        self.place(node, at)
    }

    /// Put a finished node where it belongs: the open sequence, the open mapping (as
    /// key or value), or the root.
    fn place(&mut self, node: Node, at: (usize, usize)) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => {
                self.root.get_or_insert(node);
                Ok(())
            }
            Some(Open::Seq { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Open::Map {
                entries,
                key,
                merged,
                ..
            }) => match key.take() {
                None => {
                    let text = match node.value {
                        Value::Str(s) => s,
                        Value::Int(i) => i.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Null => "null".into(),
                        Value::Seq(_) | Value::Map(_) => {
                            return Err(error(at, "a mapping key must be a plain value"))
                        }
                    };
                    *key = Some((text, node.line, node.col));
                    Ok(())
                }
                Some((k, line, col)) if k == "<<" => merge(entries, merged, node, (line, col)),
                Some((k, line, col)) => {
                    if let Some(i) = merged.iter().position(|m| *m == k) {
                        merged.remove(i);
                        entries.retain(|e| e.key != k);
                    }
                    if entries.iter().any(|e| e.key == k) {
                        return Err(error((line, col), format!("duplicate key {k:?}")));
                    }
                    entries.push(Entry {
                        key: k,
                        line,
                        col,
                        value: node,
                    });
                    Ok(())
                }
            },
        }
    }
}

/// `<<: *base` (or a list of them): copy in the entries not already present.
fn merge(
    entries: &mut Vec<Entry>,
    merged: &mut Vec<String>,
    node: Node,
    at: (usize, usize),
) -> Result<(), YamlError> {
    let sources = match node.value {
        Value::Map(m) => vec![m],
        Value::Seq(items) => {
            let mut out = Vec::new();
            for item in items {
                match item.value {
                    Value::Map(m) => out.push(m),
                    _ => return Err(error(at, "`<<` merges mappings only")),
                }
            }
            out
        }
        _ => return Err(error(at, "`<<` merges mappings only")),
    };
    for source in sources {
        for e in source {
            if !entries.iter().any(|x| x.key == e.key) {
                merged.push(e.key.clone());
                entries.push(e);
            }
        }
    }
    Ok(())
}

/// Type a scalar as PyYAML's safe loader would (quoted: always a string).
fn scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<(&str, &str)>,
    at: (usize, usize),
) -> Result<Value, YamlError> {
    match tag {
        None => {}
        Some(("!!", "str")) | Some(("tag:yaml.org,2002:", "str")) => {
            return Ok(Value::Str(text.to_string()))
        }
        Some((handle, suffix)) => {
            return Err(error(
                at,
                format!("the tag {handle}{suffix} is not supported; write the plain value"),
            ))
        }
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::Str(text.to_string()));
    }
    Ok(plain(text))
}

fn plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => {
            return Value::Bool(true)
        }
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => {
            return Value::Bool(false)
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" => return Value::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let numeric = text
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'_'));
    let has_digit = text.bytes().any(|c| c.is_ascii_digit());
    if numeric && has_digit && !text.starts_with('_') {
        let clean: String = text.chars().filter(|c| *c != '_').collect();
        if let Ok(i) = clean.parse::<i64>() {
            return Value::Int(i);
        }
        if let Ok(f) = clean.parse::<f64>() {
            return Value::Float(f);
        }
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return Value::Int(i);
        }
    }
    Value::Str(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(node: &Node) -> Vec<(&str, &Value)> {
        node.entries()
            .unwrap()
            .iter()
            .map(|e| (e.key.as_str(), &e.value.value))
            .collect()
    }

    #[test]
    fn scalars_are_typed_like_pyyaml() {
        let doc = parse("a: 1\nb: 1.5e-6\nc: yes\nd: ~\ne: '1'\nf: os.environ/X\ng: 2024-02-01\n")
            .unwrap();
        assert_eq!(
            map(&doc),
            vec![
                ("a", &Value::Int(1)),
                ("b", &Value::Float(1.5e-6)),
                ("c", &Value::Bool(true)),
                ("d", &Value::Null),
                ("e", &Value::Str("1".into())),
                ("f", &Value::Str("os.environ/X".into())),
                ("g", &Value::Str("2024-02-01".into())),
            ]
        );
    }

    #[test]
    fn positions_are_one_based() {
        let doc = parse("top:\n  inner: x\n").unwrap();
        let top = &doc.entries().unwrap()[0];
        assert_eq!((top.line, top.col), (1, 1));
        let inner = &top.value.entries().unwrap()[0];
        assert_eq!((inner.line, inner.col), (2, 3));
        assert_eq!((inner.value.line, inner.value.col), (2, 10));
    }

    #[test]
    fn merge_keys_and_aliases() {
        let doc = parse("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n").unwrap();
        let used = &doc.entries().unwrap()[1].value;
        assert_eq!(
            map(used),
            vec![("x", &Value::Int(1)), ("y", &Value::Int(3))]
        );
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!((e.line, e.col), (3, 1));
        assert!(e.message.contains("duplicate key \"a\""));
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            src.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        let e = parse(&src).unwrap_err();
        assert!(e.message.contains("more than"), "{e:?}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let src = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let e = parse(&src).unwrap_err();
        assert!(
            e.message.contains("nested deeper") || e.message.contains("recursion"),
            "{e:?}"
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(e.line >= 2, "{e:?}");
    }
}
