//! Text from outside (a model name a client sent, an upstream's error message) made
//! safe for a log line: [`Clean`] escapes control characters (newlines, ANSI escape
//! sequences, C1 controls, bidirectional overrides) and cuts the text at
//! [`MAX_LOGGED_CHARS`] characters, so a client cannot forge or flood log lines. Log
//! such values as `field = %Clean(value)`. A leaf of the crate.

use std::fmt::{self, Write};

/// The most characters of one outside value written to a log line.
pub const MAX_LOGGED_CHARS: usize = 256;

/// `s` cut at [`MAX_LOGGED_CHARS`] characters, for a field logged as a string (which
/// the log formatters quote and escape themselves).
pub fn capped(s: &str) -> &str {
    // No more bytes than the cap: no more characters either.
    if s.len() <= MAX_LOGGED_CHARS {
        return s;
    }
    match s.char_indices().nth(MAX_LOGGED_CHARS) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// Displays its value escaped and capped (see the module docs).
pub struct Clean<T>(pub T);

impl<T: fmt::Display> fmt::Display for Clean<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Escaper {
            inner: f,
            left: MAX_LOGGED_CHARS,
            cut: false,
        };
        // A value longer than the cap stops the write with an error; that is the cut,
        // not a failure.
        let result = write!(out, "{}", self.0);
        let cut = out.cut;
        match (result, cut) {
            (_, true) => f.write_char('…'),
            (r, false) => r,
        }
    }
}

impl<T: fmt::Display> fmt::Debug for Clean<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Whether `c` must not reach a log line as it is.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

struct Escaper<'a, 'b> {
    inner: &'a mut fmt::Formatter<'b>,
    left: usize,
    cut: bool,
}

impl Write for Escaper<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.left == 0 {
                self.cut = true;
                return Err(fmt::Error);
            }
            self.left -= 1;
            if is_unsafe(c) {
                write!(self.inner, "{}", c.escape_unicode())?;
            } else {
                self.inner.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let forged = "gpt-4o\n2026-01-01T00:00:00Z INFO request status=200\u{1b}[31mred\u{202e}";
        let shown = Clean(forged).to_string();
        assert!(!shown.chars().any(is_unsafe), "{shown}");
        assert!(shown.starts_with("gpt-4o\\u{a}2026"), "{shown}");
        assert!(shown.contains("\\u{1b}[31mred\\u{202e}"), "{shown}");
    }

    #[test]
    fn long_values_are_cut() {
        let long = "x".repeat(10_000);
        let shown = Clean(&long).to_string();
        assert_eq!(shown.chars().count(), MAX_LOGGED_CHARS + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(Clean("short").to_string(), "short");
        let exact = "y".repeat(MAX_LOGGED_CHARS);
        assert_eq!(Clean(&exact).to_string(), exact);
        assert_eq!(capped(&long).len(), MAX_LOGGED_CHARS);
        assert_eq!(
            capped("é".repeat(300).as_str()).chars().count(),
            MAX_LOGGED_CHARS
        );
        assert_eq!(capped("short"), "short");
    }
}
