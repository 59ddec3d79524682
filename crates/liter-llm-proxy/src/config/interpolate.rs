//! `${VAR}` interpolation on the raw TOML source, as the spec describes.
//!
//! Runs before parsing, so every string (and anything else) in the file is expanded
//! uniformly. An unknown variable expands to the empty string; a `${` with no closing
//! `}` is left as written. The result remembers where each piece came from, so an error
//! found in the expanded text can be reported at the line and column of the file the
//! user actually wrote (and without echoing an expanded secret).

/// The expanded source plus a map from expanded offsets back to original offsets.
#[derive(Debug, Clone)]
pub struct Interpolated {
    pub text: String,
    /// `(expanded_start, expanded_len, original_start, original_len)` for each `${VAR}`
    /// substitution, in order. Text between substitutions maps one to one.
    substitutions: Vec<(usize, usize, usize, usize)>,
}

impl Interpolated {
    /// Map a byte offset in the expanded text to the offset in the original source.
    /// An offset inside a substituted value maps to the start of its `${VAR}`.
    pub fn original_offset(&self, expanded: usize) -> usize {
        let mut delta: isize = 0;
        for &(exp_start, exp_len, orig_start, orig_len) in &self.substitutions {
            if expanded < exp_start {
                break;
            }
            if expanded < exp_start + exp_len {
                return orig_start;
            }
            delta = (orig_start + orig_len) as isize - (exp_start + exp_len) as isize;
        }
        (expanded as isize + delta).max(0) as usize
    }
}

/// Whether `name` can be an environment variable name: ASCII letters, digits, `_`.
fn is_var_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Expand `${NAME}` using `lookup` (normally `std::env::var`).
///
/// Only a well-formed `${NAME}` is replaced. A `${` whose closing `}` is missing, or
/// that encloses anything but a variable name (a space, a quote, a newline), is left
/// as written and scanning goes on right after it, so a stray `${` can never swallow
/// the text up to some later `}`.
pub fn interpolate(source: &str, lookup: impl Fn(&str) -> Option<String>) -> Interpolated {
    let mut text = String::with_capacity(source.len());
    let mut substitutions = Vec::new();
    let mut copied = 0usize; // source[..copied] is already in `text`
    let mut search = 0usize;
    while let Some(found) = source[search..].find("${") {
        let start = search + found;
        let after = &source[start + 2..];
        let name_len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        let name = &after[..name_len];
        if !is_var_name(name) || !after[name_len..].starts_with('}') {
            search = start + 2; // literal `${`
            continue;
        }
        text.push_str(&source[copied..start]);
        let value = lookup(name).unwrap_or_default();
        let orig_len = 2 + name_len + 1;
        substitutions.push((text.len(), value.len(), start, orig_len));
        text.push_str(&value);
        copied = start + orig_len;
        search = copied;
    }
    text.push_str(&source[copied..]);
    Interpolated {
        text,
        substitutions,
    }
}

/// 1-based line and column (in characters) of a byte offset in `source`.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let mut boundary = offset;
    while !source.is_char_boundary(boundary) {
        boundary -= 1;
    }
    let before = &source[..boundary];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-secret-value".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_known_and_unknown() {
        let out = interpolate("a = \"${KEY}\"\nb = \"${NOPE}\"", env);
        assert_eq!(out.text, "a = \"sk-secret-value\"\nb = \"\"");
    }

    #[test]
    fn unclosed_stays_literal() {
        let out = interpolate("a = \"${KEY}\" b = \"${OPEN\"", env);
        assert_eq!(out.text, "a = \"sk-secret-value\" b = \"${OPEN\"");
    }

    #[test]
    fn a_stray_opener_never_swallows_later_text() {
        let src =
            "master_key = \"${MASTER\"\n[[models]]\napi_key = \"${KEY}\"\n# costs ${ dollars }\n";
        let out = interpolate(src, env);
        assert_eq!(
            out.text,
            "master_key = \"${MASTER\"\n[[models]]\napi_key = \"sk-secret-value\"\n# costs ${ dollars }\n"
        );
        assert_eq!(
            interpolate("${a-b} ${KEY}", env).text,
            "${a-b} sk-secret-value"
        );
        assert_eq!(interpolate("$${KEY}", env).text, "$sk-secret-value");
        assert_eq!(interpolate("${}", env).text, "${}");
    }

    #[test]
    fn multiple_and_adjacent() {
        let out = interpolate("${KEY}${KEY}-${EMPTY}x", env);
        assert_eq!(out.text, "sk-secret-valuesk-secret-value-x");
    }

    #[test]
    fn offsets_map_back() {
        let src = "a = \"${KEY}\"\nbad";
        let out = interpolate(src, env);
        let expanded_bad = out.text.find("bad").unwrap();
        assert_eq!(out.original_offset(expanded_bad), src.find("bad").unwrap());
        // inside the substituted value → start of ${KEY}
        let inside = out.text.find("secret").unwrap();
        assert_eq!(out.original_offset(inside), src.find("${KEY}").unwrap());
        assert_eq!(line_col(src, src.find("bad").unwrap()), (2, 1));
    }

    #[test]
    fn offset_before_first_substitution_is_identity() {
        let out = interpolate("xx ${KEY}", env);
        assert_eq!(out.original_offset(1), 1);
    }
}
