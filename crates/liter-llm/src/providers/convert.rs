//! Small conversions every translating adapter needs the same way: base64 `data:`
//! URLs of content parts, and tool-call `arguments` strings as JSON objects. They
//! return the problem as a message; each adapter wraps it in its own error with the
//! parameter path.

use serde_json::{json, Value};

use crate::types::ProviderError;

/// A 400 `invalid_request_error` whose `param` names the offending field.
pub fn invalid(message: impl Into<String>, param: impl Into<String>) -> ProviderError {
    ProviderError::new(400, "invalid_request_error", message).with_param(param)
}

/// The items of an OpenAI `content` (a string or an array of parts) in a provider's
/// shape: a string becomes one `{"text": ...}` item, each part goes through `part`
/// (`None` drops it); empty text is left out. `path` names the message (`messages[i]`).
pub fn content_items<F>(
    content: Option<&Value>,
    path: &str,
    mut part: F,
) -> Result<Vec<Value>, ProviderError>
where
    F: FnMut(&Value, &str) -> Result<Option<Value>, ProviderError>,
{
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({ "text": s })]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, p) in parts.iter().enumerate() {
                if let Some(item) = part(p, &format!("{path}.content[{j}]"))? {
                    out.push(item);
                }
            }
            Ok(out)
        }
        Some(_) => Err(invalid(
            "content must be a string or an array of content parts",
            format!("{path}.content"),
        )),
    }
}

/// The text of a `text` or `refusal` part (`kind`), as `{"text": ...}`; `None` when
/// empty.
pub fn text_item(part: &Value, kind: &str, path: &str) -> Result<Option<Value>, ProviderError> {
    let Some(text) = part.get(kind).and_then(Value::as_str) else {
        return Err(invalid(
            format!("a {kind} part needs a string `{kind}`"),
            path,
        ));
    };
    Ok((!text.is_empty()).then(|| json!({ "text": text })))
}

/// The URL of an `image_url` part (`{"image_url": {"url": ...}}`, or the bare string).
pub fn image_url<'a>(part: &'a Value, path: &str) -> Result<&'a str, ProviderError> {
    let image = &part["image_url"];
    image
        .get("url")
        .and_then(Value::as_str)
        .or_else(|| image.as_str())
        .ok_or_else(|| invalid("image_url.url is required", path))
}

/// The message for a `data:` URL that is not `data:<media type>[;params];base64,<data>`.
pub const BAD_DATA_URL: &str = "expected a data URL: data:<media type>;base64,<data>";

/// `data:<media type>[;params];base64,<data>` split into media type and base64 data.
pub fn parse_data_url(url: &str) -> Result<(&str, &str), &'static str> {
    let rest = url.strip_prefix("data:").ok_or(BAD_DATA_URL)?;
    let (meta, data) = rest.split_once(',').ok_or(BAD_DATA_URL)?;
    let meta = meta.strip_suffix(";base64").ok_or(BAD_DATA_URL)?;
    let media_type = meta.split(';').next().unwrap_or("").trim();
    if media_type.is_empty() || data.is_empty() {
        return Err(BAD_DATA_URL);
    }
    Ok((media_type, data))
}

/// Tool-call arguments (a JSON string) as the object providers want; empty means `{}`.
pub fn tool_arguments(arguments: &str) -> Result<Value, String> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("tool call arguments must be a JSON object".into()),
        Err(e) => Err(format!("tool call arguments are not valid JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls() {
        assert_eq!(
            parse_data_url("data:image/jpeg;base64,AAAA"),
            Ok(("image/jpeg", "AAAA"))
        );
        assert_eq!(
            parse_data_url("data:application/pdf;name=a.pdf;base64,QQ=="),
            Ok(("application/pdf", "QQ=="))
        );
        for bad in [
            "data:;base64,AAAA",
            "data:image/png;base64,",
            "data:image/png,abc",
            "https://x/y.png",
        ] {
            assert!(parse_data_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arguments() {
        assert_eq!(tool_arguments(" "), Ok(json!({})));
        assert_eq!(tool_arguments(r#"{"a":1}"#), Ok(json!({"a":1})));
        assert!(tool_arguments("[1]").unwrap_err().contains("object"));
        assert!(tool_arguments("{x").unwrap_err().contains("JSON"));
    }
}
