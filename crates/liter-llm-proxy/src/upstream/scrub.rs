//! Keeping a deployment's own secrets out of the upstream text the gateway passes on.
//!
//! An upstream may echo the credentials it was sent (`Incorrect API key provided:
//! sk-...`). Each [`Target`](super::Target) carries a [`Scrub`] of its secrets (the
//! API key, the AWS secret key and session token, Vertex AI's service-account key
//! material), built once at start-up, and the dispatcher passes every error of an
//! attempt through it before it reaches the client, the router's logs or a stream's
//! error event; the pass-through relay passes each batch of events through it.
//!
//! Each secret is looked for as written and as JSON writes it in a string (escaped,
//! and with `/` as `\/`), and replaced by [`REDACTED`]. Error bodies are scrubbed as
//! JSON: every string value, once decoded, so no escaping hides a secret there.
//! Secrets shorter than [`MIN_SECRET_CHARS`] are not looked for (they would match
//! ordinary text, and no provider issues keys that short).

use bytes::Bytes;
use memchr::memmem::Finder;

use crate::error::GatewayError;

/// What a secret is replaced by.
pub const REDACTED: &str = "[redacted]";
/// Shorter secrets are not looked for.
pub const MIN_SECRET_CHARS: usize = 8;

/// The secrets of one deployment, ready to be searched for.
#[derive(Default)]
pub struct Scrub {
    /// Every form of every secret, longest first (so a secret that contains another
    /// is replaced whole).
    needles: Vec<Finder<'static>>,
}

impl std::fmt::Debug for Scrub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrub({} forms)", self.needles.len())
    }
}

impl Scrub {
    /// A scrub of `secrets` (short ones are left out).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Scrub {
        let mut forms: Vec<String> = Vec::new();
        for secret in secrets {
            if secret.chars().count() < MIN_SECRET_CHARS {
                continue;
            }
            let quoted = serde_json::to_string(secret).unwrap_or_default();
            let json = quoted
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .unwrap_or(secret)
                .to_string();
            let slashed = json.replace('/', "\\/");
            for form in [secret.to_string(), json, slashed] {
                if !form.is_empty() && !forms.contains(&form) {
                    forms.push(form);
                }
            }
        }
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        Scrub {
            needles: forms
                .iter()
                .map(|f| Finder::new(f.as_bytes()).into_owned())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `hay` with every secret replaced, or `None` when it holds none (the common
    /// case: one search per form, no copy).
    fn replaced(&self, hay: &[u8]) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        for needle in &self.needles {
            let current = out.as_deref().unwrap_or(hay);
            if needle.find(current).is_none() {
                continue;
            }
            let mut next = Vec::with_capacity(current.len());
            let mut at = 0;
            for found in needle.find_iter(current) {
                next.extend_from_slice(&current[at..found]);
                next.extend_from_slice(REDACTED.as_bytes());
                at = found + needle.needle().len();
            }
            next.extend_from_slice(&current[at..]);
            out = Some(next);
        }
        out
    }

    /// `text` without the secrets.
    pub fn text(&self, text: String) -> String {
        // A needle is valid UTF-8 and so is the text: matches fall on character
        // boundaries, and the result is UTF-8.
        self.changed(&text).unwrap_or(text)
    }

    /// Raw upstream bytes (relayed stream events) without the secrets.
    pub fn bytes(&self, bytes: Bytes) -> Bytes {
        if self.is_empty() {
            return bytes;
        }
        match self.replaced(&bytes) {
            Some(out) => Bytes::from(out),
            None => bytes,
        }
    }

    /// `text` without the secrets, `None` when it holds none.
    fn changed(&self, text: &str) -> Option<String> {
        let bytes = self.replaced(text.as_bytes())?;
        Some(
            String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        )
    }

    /// Every string of `value` (keys included) without the secrets; whether any held one.
    fn json(&self, value: &mut serde_json::Value) -> bool {
        use serde_json::Value;
        match value {
            Value::String(s) => match self.changed(s) {
                Some(clean) => {
                    *s = clean;
                    true
                }
                None => false,
            },
            Value::Array(items) => items.iter_mut().fold(false, |any, v| self.json(v) | any),
            Value::Object(map) => {
                let mut any = false;
                for (k, mut v) in std::mem::take(map) {
                    any |= self.json(&mut v);
                    let k = match self.changed(&k) {
                        Some(clean) => {
                            any = true;
                            clean
                        }
                        None => k,
                    };
                    map.insert(k, v);
                }
                any
            }
            _ => false,
        }
    }

    /// An error body (OpenAI's JSON) without the secrets; the same bytes when it held
    /// none.
    fn body(&self, body: Bytes) -> Bytes {
        let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return self.bytes(body);
        };
        if !self.json(&mut value) {
            return body;
        }
        serde_json::to_vec(&value).map_or_else(|_| self.bytes(body), Bytes::from)
    }

    /// `err` without the secrets in its message or body.
    pub fn error(&self, err: GatewayError) -> GatewayError {
        if self.is_empty() {
            return err;
        }
        let t = |s: String| self.text(s);
        match err {
            GatewayError::Upstream {
                status,
                body,
                retry_after,
            } => GatewayError::Upstream {
                status,
                body: self.body(body),
                retry_after,
            },
            GatewayError::BadGateway(m) => GatewayError::BadGateway(t(m)),
            GatewayError::Timeout(m) => GatewayError::Timeout(t(m)),
            GatewayError::RequestTimeout(m) => GatewayError::RequestTimeout(t(m)),
            GatewayError::Internal(m) => GatewayError::Internal(t(m)),
            GatewayError::Unauthorized(m) => GatewayError::Unauthorized(t(m)),
            GatewayError::Forbidden(m) => GatewayError::Forbidden(t(m)),
            GatewayError::NotFound(m) => GatewayError::NotFound(t(m)),
            GatewayError::BudgetExceeded(m) => GatewayError::BudgetExceeded(t(m)),
            GatewayError::StoreUnavailable(m) => GatewayError::StoreUnavailable(t(m)),
            GatewayError::BadRequest {
                message,
                param,
                code,
            } => GatewayError::BadRequest {
                message: t(message),
                param,
                code,
            },
            GatewayError::Missing {
                message,
                param,
                code,
            } => GatewayError::Missing {
                message: t(message),
                param,
                code,
            },
            GatewayError::Route { status, message } => GatewayError::Route {
                status,
                message: t(message),
            },
            GatewayError::RateLimited {
                message,
                retry_after,
                limits,
            } => GatewayError::RateLimited {
                message: t(message),
                retry_after,
                limits,
            },
            GatewayError::Unavailable {
                message,
                retry_after,
            } => GatewayError::Unavailable {
                message: t(message),
                retry_after,
            },
            GatewayError::ModelNotAllowed { model } => {
                GatewayError::ModelNotAllowed { model: t(model) }
            }
            GatewayError::ModelNotFound { model } => {
                GatewayError::ModelNotFound { model: t(model) }
            }
            other @ GatewayError::PayloadTooLarge { .. } => other,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::StatusCode;

    const KEY: &str = "sk-live-0123456789/abc+def";

    #[test]
    fn every_form_of_a_secret_is_replaced() {
        let s = Scrub::new([KEY, "short"]);
        assert_eq!(
            s.text(format!("Incorrect API key provided: {KEY}. {KEY}!")),
            "Incorrect API key provided: [redacted]. [redacted]!"
        );
        // JSON-escaped forms in raw bytes (a relayed event).
        let raw = Bytes::from(r#"data: {"error":{"message":"key sk-live-0123456789\/abc+def"}}"#);
        assert!(!String::from_utf8_lossy(&s.bytes(raw)).contains("0123456789"));
        // A short secret is not looked for; text without secrets is not copied.
        assert_eq!(s.text("short".into()), "short");
        let clean = Bytes::from_static(b"data: {}\n\n");
        assert_eq!(s.bytes(clean.clone()).as_ptr(), clean.as_ptr());
    }

    #[test]
    fn error_bodies_are_scrubbed_after_decoding() {
        let s = Scrub::new([KEY]);
        // \u escapes hide the key from a byte search, not from a decoded one.
        let body = Bytes::from(
            r#"{"error":{"message":"bad \u0073k-live-0123456789/abc+def","extra":{"echo":["sk-live-0123456789/abc+def"]}}}"#,
        );
        let err = s.error(GatewayError::Upstream {
            status: StatusCode::UNAUTHORIZED,
            body,
            retry_after: None,
        });
        let text = String::from_utf8(err.body_bytes().to_vec()).unwrap();
        assert!(!text.contains("0123456789"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
        // A body without secrets is passed on byte for byte.
        let clean = Bytes::from_static(br#"{"error":{"message":"bad","type":"x"}}"#);
        let err = s.error(GatewayError::Upstream {
            status: StatusCode::BAD_REQUEST,
            body: clean.clone(),
            retry_after: None,
        });
        assert_eq!(err.body_bytes(), clean);
        let err = s.error(GatewayError::BadGateway(format!("failed: {KEY}")));
        assert_eq!(err.to_string(), "failed: [redacted]");
    }
}
