//! Small conversions every translating adapter needs the same way: base64 `data:`
//! URLs of content parts, and tool-call `arguments` strings as JSON objects. They
//! return the problem as a message; each adapter wraps it in its own error with the
//! parameter path.

use serde_json::{json, Value};

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
