//! Error helpers shared by the translating adapters: `Retry-After`, and the message for an
//! error answer whose body is not the provider's JSON.

use std::time::Duration;

use http::header::RETRY_AFTER;
use http::HeaderMap;

/// `Retry-After` in seconds (integer or decimal); HTTP dates are ignored.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: f64 = value.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// The longest part of a non-JSON error body quoted in a message.
pub const MAX_QUOTED: usize = 512;

/// "`provider` answered HTTP `status`: `body`" (the body cut to [`MAX_QUOTED`]
/// characters), or the status's reason when the body is empty.
pub fn unreadable_error_message(provider: &str, status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("error");
        format!("{provider} answered HTTP {status} {reason}")
    } else {
        let cut: String = text.chars().take(MAX_QUOTED).collect();
        format!("{provider} answered HTTP {status}: {cut}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, http::HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, http::HeaderValue::from_static("0.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(500)));
        h.insert(
            RETRY_AFTER,
            http::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn unreadable_bodies() {
        assert_eq!(
            unreadable_error_message("x", 502, b" <html>bad</html> "),
            "x answered HTTP 502: <html>bad</html>"
        );
        assert_eq!(
            unreadable_error_message("x", 503, b""),
            "x answered HTTP 503 Service Unavailable"
        );
        let long = "é".repeat(MAX_QUOTED + 10);
        let m = unreadable_error_message("x", 500, long.as_bytes());
        assert_eq!(
            m.chars().count(),
            "x answered HTTP 500: ".len() + MAX_QUOTED
        );
    }
}
