//! Small helpers shared by the translating adapters (Anthropic, Gemini and Vertex AI):
//! data URLs, `Retry-After`, tool-call arguments.

use serde_json::Value;

/// `data:<media type>[;params];base64,<data>` split into media type and data; `None`
/// when `url` is not a base64 data URL with a media type and some data.
pub(crate) fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let meta = meta.strip_suffix(";base64")?;
    let media_type = meta.split(';').next().unwrap_or("").trim();
    if media_type.is_empty() || data.is_empty() {
        return None;
    }
    Some((media_type, data))
}

/// Why tool-call arguments cannot be sent as an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArgumentsError {
    NotObject,
    NotJson(String),
}

impl std::fmt::Display for ArgumentsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgumentsError::NotObject => f.write_str("tool call arguments must be a JSON object"),
            ArgumentsError::NotJson(e) => write!(f, "tool call arguments are not valid JSON: {e}"),
        }
    }
}

/// OpenAI tool-call arguments (a JSON string) as the object providers want; empty
/// means `{}`.
pub(crate) fn parse_arguments(arguments: &str) -> Result<Value, ArgumentsError> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(ArgumentsError::NotObject),
        Err(e) => Err(ArgumentsError::NotJson(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls() {
        assert_eq!(
            parse_data_url("data:image/jpeg;base64,AAAA"),
            Some(("image/jpeg", "AAAA"))
        );
        assert_eq!(
            parse_data_url("data:application/pdf;name=a.pdf;base64,QQ=="),
            Some(("application/pdf", "QQ=="))
        );
        assert_eq!(parse_data_url("data:;base64,AAAA"), None);
        assert_eq!(parse_data_url("data:image/png;base64,"), None);
        assert_eq!(parse_data_url("data:image/png,abc"), None);
        assert_eq!(parse_data_url("https://x/y.png"), None);
    }

    #[test]
    fn arguments() {
        assert_eq!(parse_arguments(" ").unwrap(), serde_json::json!({}));
        assert_eq!(
            parse_arguments("{\"a\":1}").unwrap(),
            serde_json::json!({"a":1})
        );
        assert_eq!(parse_arguments("[1]"), Err(ArgumentsError::NotObject));
        assert!(matches!(
            parse_arguments("{x"),
            Err(ArgumentsError::NotJson(_))
        ));
    }
}
