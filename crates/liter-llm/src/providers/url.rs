//! Model ids in upstream URLs.
//!
//! Gemini, Vertex AI, Azure OpenAI (deployment URLs) and Bedrock put the model id in
//! the request's path, and a `provider/model` name may come straight from a client. So
//! an id is checked ([`check_model_id`]) and then written as one percent-encoded path
//! segment ([`encode_segment`]): it can never add a segment, a query or a fragment, nor
//! climb out of the path prefix the deployment's base URL gives.

use std::fmt;

/// The longest model id accepted, in bytes.
pub const MAX_MODEL_ID_BYTES: usize = 256;

/// Why a model id cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelIdError {
    Empty,
    /// Longer than [`MAX_MODEL_ID_BYTES`].
    TooLong,
    /// A control character (a newline, a NUL, an escape, ...).
    Control,
    /// `.` or `..` as the id or as one of its `/`-separated parts: a dot segment once a
    /// server or proxy on the way decodes `%2F`.
    DotSegment,
}

impl fmt::Display for ModelIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelIdError::Empty => f.write_str("the model id is empty"),
            ModelIdError::TooLong => {
                write!(f, "the model id is longer than {MAX_MODEL_ID_BYTES} bytes")
            }
            ModelIdError::Control => f.write_str("the model id contains a control character"),
            ModelIdError::DotSegment => {
                f.write_str("the model id has a \".\" or \"..\" part, which no model id has")
            }
        }
    }
}

impl std::error::Error for ModelIdError {}

/// Whether `id` may be sent upstream: not empty, at most [`MAX_MODEL_ID_BYTES`] bytes,
/// no control character, and no `.` or `..` between slashes.
pub fn check_model_id(id: &str) -> Result<(), ModelIdError> {
    if id.is_empty() {
        return Err(ModelIdError::Empty);
    }
    check_name(id)?;
    if id.split('/').any(|part| part == "." || part == "..") {
        return Err(ModelIdError::DotSegment);
    }
    Ok(())
}

/// The checks every client-sent model name passes, whatever it names: at most
/// [`MAX_MODEL_ID_BYTES`] bytes and no control character.
pub fn check_name(name: &str) -> Result<(), ModelIdError> {
    if name.len() > MAX_MODEL_ID_BYTES {
        return Err(ModelIdError::TooLong);
    }
    if name.chars().any(char::is_control) {
        return Err(ModelIdError::Control);
    }
    Ok(())
}

/// `s` as one path segment: every byte but the RFC 3986 unreserved characters
/// (letters, digits, `-`, `.`, `_`, `~`) and `@` (Vertex AI's `claude-…@date` ids) is
/// percent-encoded, so `/`, `?`, `#`, `%` and `:` are data, never syntax. An id that is
/// all dots is refused by [`check_model_id`] before it gets here.
pub fn encode_segment(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// `id` checked and encoded as one path segment.
pub fn model_segment(id: &str) -> Result<String, ModelIdError> {
    check_model_id(id)?;
    Ok(encode_segment(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_everything_that_is_syntax() {
        assert_eq!(encode_segment("gemini-2.0-flash"), "gemini-2.0-flash");
        assert_eq!(
            encode_segment("claude-sonnet-4@20250514"),
            "claude-sonnet-4@20250514"
        );
        assert_eq!(
            encode_segment("../x?y=1#z%2F:é"),
            "..%2Fx%3Fy%3D1%23z%252F%3A%C3%A9"
        );
    }

    #[test]
    fn refuses_what_cannot_be_a_model_id() {
        assert_eq!(check_model_id(""), Err(ModelIdError::Empty));
        assert_eq!(check_model_id(".."), Err(ModelIdError::DotSegment));
        assert_eq!(check_model_id("."), Err(ModelIdError::DotSegment));
        assert_eq!(check_model_id("a/../b"), Err(ModelIdError::DotSegment));
        assert_eq!(
            check_model_id("../../canary"),
            Err(ModelIdError::DotSegment)
        );
        assert_eq!(check_model_id("x\ny"), Err(ModelIdError::Control));
        assert_eq!(check_model_id("x\u{1b}[31m"), Err(ModelIdError::Control));
        assert_eq!(check_model_id("x\u{85}"), Err(ModelIdError::Control));
        let long = "m".repeat(MAX_MODEL_ID_BYTES + 1);
        assert_eq!(check_model_id(&long), Err(ModelIdError::TooLong));
        assert!(check_model_id(&long[1..]).is_ok());
        for ok in [
            "gemini-2.0-flash",
            "...",
            "a..b",
            "x?y=1",
            "x#y",
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3",
        ] {
            assert!(check_model_id(ok).is_ok(), "{ok}");
        }
    }
}
