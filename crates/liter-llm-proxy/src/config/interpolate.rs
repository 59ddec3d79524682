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

/// Expand `${NAME}` using `lookup` (normally `std::env::var`).
pub fn interpolate(source: &str, lookup: impl Fn(&str) -> Option<String>) -> Interpolated {
    let mut text = String::with_capacity(source.len());
    let mut substitutions = Vec::new();
    let mut rest = source;
    let mut consumed = 0usize;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            break; // unclosed: keep the remainder literally
        };
        let name = &after[..end];
        text.push_str(&rest[..start]);
        let value = lookup(name).unwrap_or_default();
        let orig_start = consumed + start;
        let orig_len = 2 + end + 1;
        substitutions.push((text.len(), value.len(), orig_start, orig_len));
        text.push_str(&value);
        let advance = start + orig_len;
        consumed += advance;
        rest = &rest[advance..];
    }
    text.push_str(rest);
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
