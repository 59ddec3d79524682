//! Reading a Messages request without building a JSON tree: its fields are borrowed
//! `&RawValue`s (slices of the client's body), read further only where the
//! translation needs them. A field of the wrong JSON type reads as absent, as a
//! lookup in a JSON value would, so blocks the translation does not know pass through
//! whatever their fields hold.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::GatewayError;

/// A field, as the client wrote it.
pub type Raw<'a> = &'a RawValue;

/// The string a field holds (`None`: absent or not a string). Borrowed from the body
/// unless it has escapes.
pub fn text<'a>(raw: Option<Raw<'a>>) -> Option<Cow<'a, str>> {
    let s = raw?.get();
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(s).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// A field's string, or `""`.
pub fn text_or_empty<'a>(raw: Option<Raw<'a>>) -> Cow<'a, str> {
    text(raw).unwrap_or(Cow::Borrowed(""))
}

/// Whether a field is this string.
pub fn is(raw: Option<Raw<'_>>, want: &str) -> bool {
    text(raw).is_some_and(|s| s == want)
}

/// The fields of an object field as `T` (all defaults when it is absent or not an
/// object).
pub fn fields<'a, T: Deserialize<'a> + Default>(raw: Option<Raw<'a>>) -> Result<T, GatewayError> {
    match raw {
        Some(r) if r.get().starts_with('{') => serde_json::from_str(r.get())
            .map_err(|e| GatewayError::bad_request(format!("invalid Messages request: {e}"))),
        _ => Ok(T::default()),
    }
}

/// What a `content` (or `system`) field holds.
pub enum Content<'a> {
    /// A string.
    Text(Cow<'a, str>),
    /// A list of blocks.
    Blocks(Vec<Raw<'a>>),
    /// `null`.
    Null,
    /// Any other JSON type.
    Other,
}

/// Reads a `content` (or `system`) field.
pub fn content(raw: Raw<'_>) -> Result<Content<'_>, GatewayError> {
    let s = raw.get();
    Ok(match s.as_bytes().first() {
        Some(b'"') => text(Some(raw)).map_or(Content::Other, Content::Text),
        Some(b'[') => Content::Blocks(
            serde_json::from_str(s)
                .map_err(|e| GatewayError::bad_request(format!("invalid Messages request: {e}")))?,
        ),
        Some(b'n') => Content::Null,
        _ => Content::Other,
    })
}

/// The fields of a content block (or a tool, or a `tool_choice`) the translation reads.
#[derive(Deserialize, Default)]
pub struct Block<'a> {
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub text: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub source: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub title: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub tool_use_id: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub content: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub id: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub name: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub input: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub description: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub input_schema: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub disable_parallel_tool_use: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub user_id: Option<Raw<'a>>,
}

impl<'a> Block<'a> {
    /// Reads a block (an object; anything else reads as a block without fields).
    pub fn read(raw: Raw<'a>) -> Result<Self, GatewayError> {
        fields(Some(raw))
    }

    /// Its `type`, or `""`.
    pub fn kind(&self) -> Cow<'a, str> {
        text_or_empty(self.kind)
    }
}

/// An image or document `source`'s fields.
#[derive(Deserialize, Default)]
pub struct Source<'a> {
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub media_type: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub data: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub url: Option<Raw<'a>>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn raw(s: &str) -> &RawValue {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        assert!(matches!(
            text(Some(raw(r#""plain""#))),
            Some(Cow::Borrowed("plain"))
        ));
        assert_eq!(text(Some(raw(r#""a\"b\n""#))).unwrap(), "a\"b\n");
        assert_eq!(text(Some(raw(r#""\u00e9""#))).unwrap(), "é");
        assert!(text(Some(raw("3"))).is_none());
        assert!(text(Some(raw("null"))).is_none());
        assert!(text(None).is_none());
    }

    #[test]
    fn fields_of_the_wrong_type_read_as_absent() {
        let b = Block::read(raw(
            r#"{"type":"search_result","source":"https://x","title":5}"#,
        ))
        .unwrap();
        assert_eq!(b.kind(), "search_result");
        let s: Source = fields(b.source).unwrap();
        assert!(s.kind.is_none());
        assert!(text(b.title).is_none());
        let none = Block::read(raw("[1]")).unwrap();
        assert_eq!(none.kind(), "");
    }

    #[test]
    fn content_tells_its_shapes_apart() {
        assert!(matches!(content(raw(r#""hi""#)).unwrap(), Content::Text(t) if t == "hi"));
        assert!(
            matches!(content(raw(r#"[{"type":"text"}, 1]"#)).unwrap(), Content::Blocks(b) if b.len() == 2)
        );
        assert!(matches!(content(raw("null")).unwrap(), Content::Null));
        assert!(matches!(content(raw("{}")).unwrap(), Content::Other));
        assert!(matches!(content(raw("3")).unwrap(), Content::Other));
    }
}
