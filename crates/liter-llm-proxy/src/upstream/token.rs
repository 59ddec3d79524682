//! Short-lived access tokens for adapters that authenticate with one (Vertex AI: a
//! service-account assertion exchanged for an OAuth token). One [`TokenCache`] per
//! deployment, made with its [`Target`](super::Target): the token is fetched with the
//! gateway's own HTTP client before a request when there is none or it expires within
//! [`REFRESH_MARGIN`], and reused until then.
//!
//! **Single flight**: the cache's lock is held across the exchange, so requests that
//! arrive while a token is being fetched wait for that one exchange and then use its
//! token, rather than each starting their own. A failed exchange is not cached: the next
//! request tries again. Its error is OpenAI-shaped (401 when the token endpoint refused
//! the credentials, 502 when it could not be reached or answered nonsense) and never
//! quotes the assertion or the token.

use std::fmt;
use std::time::Duration;

use axum::http::{Method, Request};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use liter_llm::providers::adapter::TokenRequest;
use liter_llm::providers::SharedAdapter;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{error_chain, Upstream};
use crate::error::GatewayError;

/// A token this close to its expiry is replaced before use.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The largest token endpoint answer read (a real one is a few hundred bytes).
pub const MAX_TOKEN_ANSWER_BYTES: usize = 64 * 1024;

struct Cached {
    token: String,
    expires_at: Instant,
}

/// One deployment's access token.
pub struct TokenCache {
    adapter: SharedAdapter,
    /// Held across an exchange (single flight); `None` until the first one succeeds.
    slot: Mutex<Option<Cached>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache").finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TokenCache {
    /// A cache for `adapter`, or `None` when it needs no token.
    pub fn for_adapter(adapter: &SharedAdapter) -> Option<TokenCache> {
        if !adapter.uses_token() {
            return None;
        }
        Some(TokenCache {
            adapter: adapter.clone(),
            slot: Mutex::new(None),
        })
    }

    /// The current token, fetched through `upstream` when needed.
    pub async fn get(
        &self,
        upstream: &Upstream,
        name: &str,
        deadline: Instant,
    ) -> Result<String, GatewayError> {
        let mut slot = self.slot.lock().await;
        if let Some(c) = slot.as_ref() {
            if Instant::now() + REFRESH_MARGIN < c.expires_at {
                return Ok(c.token.clone());
            }
        }
        let req = match self.adapter.token_exchange(unix_now()) {
            Some(r) => r?,
            None => {
                return Err(GatewayError::Internal(
                    "no token exchange for this model".into(),
                ))
            }
        };
        let (status, body) = upstream.exchange(req, name, deadline).await?;
        let token = self.adapter.parse_token(status, &body)?;
        *slot = Some(Cached {
            token: token.token.clone(),
            expires_at: Instant::now() + Duration::from_secs(token.expires_in_secs),
        });
        Ok(token.token)
    }
}

impl Upstream {
    /// Sends a token exchange and reads the whole answer before `deadline`. Failures
    /// to reach the endpoint are 502s naming the model, not the endpoint's secrets.
    pub async fn exchange(
        &self,
        req: TokenRequest,
        name: &str,
        deadline: Instant,
    ) -> Result<(u16, Bytes), GatewayError> {
        let mut builder = Request::builder().method(Method::POST).uri(req.uri);
        for (k, v) in req.headers {
            builder = builder.header(k, v);
        }
        let request = builder.body(Full::new(req.body)).map_err(|e| {
            GatewayError::Internal(format!("could not build the token request: {e}"))
        })?;
        let failed = |why: String| {
            GatewayError::BadGateway(format!(
                "the access-token exchange for model {name:?} failed: {why}"
            ))
        };
        let resp = match tokio::time::timeout_at(deadline, self.client.request(request)).await {
            Err(_) => return Err(failed("no answer in time".into())),
            Ok(Err(e)) => return Err(failed(error_chain(&e))),
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status().as_u16();
        let body = http_body_util::Limited::new(resp.into_body(), MAX_TOKEN_ANSWER_BYTES);
        match tokio::time::timeout_at(deadline, body.collect()).await {
            Err(_) => Err(failed("no answer in time".into())),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(failed(format!(
                "the answer is larger than {MAX_TOKEN_ANSWER_BYTES} bytes"
            ))),
            Ok(Err(e)) => Err(failed(error_chain(e.as_ref()))),
            Ok(Ok(body)) => Ok((status, body.to_bytes())),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Driven through the real Vertex adapter, built from a config as the gateway builds
    //! it, against the mock upstream's OAuth token endpoint over loopback.

    use std::sync::Arc;
    use std::time::Duration;

    use mock_upstream::{Fault, MockUpstream};
    use serde_json::{json, Value};

    use super::*;
    use crate::config::{load_str, Overrides};
    use crate::upstream::Target;

    /// A Vertex deployment whose service account's `token_uri` is the mock's `/token`:
    /// its token cache, and the file (kept alive with it).
    fn vertex_cache(mock: &MockUpstream) -> (Arc<TokenCache>, tempfile::NamedTempFile) {
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../liter-llm/tests/fixtures/gemini/TEST-ONLY-service-account.json"
        );
        let mut sa: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
        sa["token_uri"] = json!(format!("http://{}/token", mock.addr()));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), sa.to_string()).unwrap();
        let toml = format!(
            "[[models]]\nname = \"vtx\"\nprovider_model = \"vertex_ai/gemini-2.0-flash\"\nvertex_project = \"proj\"\nvertex_location = \"europe-west4\"\nvertex_credentials = \"{}\"\nbase_url = \"http://{}\"\n",
            file.path().display(),
            mock.addr()
        );
        let cfg = load_str(&toml, "test.toml", &Overrides::default(), |_| None).unwrap();
        let target = Target::for_deployment(&cfg.models[0], &cfg.limits)
            .unwrap()
            .unwrap();
        (target.token.unwrap(), file)
    }

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    fn exchanges(mock: &MockUpstream) -> usize {
        mock.requests()
            .iter()
            .filter(|r| r.path == "/token")
            .count()
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_exchange() {
        let mock = MockUpstream::start().await.unwrap();
        let (cache, _file) = vertex_cache(&mock);
        let upstream = Upstream::new();
        // The exchange is held at the mock until both callers are waiting on it.
        mock.push_fault(Fault::hold());
        let release = async {
            let until = std::time::Instant::now() + Duration::from_secs(20);
            while mock.requests().is_empty() && std::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            assert_eq!(exchanges(&mock), 1);
            mock.release(1);
        };
        let (a, b, ()) = tokio::join!(
            cache.get(&upstream, "vtx", deadline()),
            cache.get(&upstream, "vtx", deadline()),
            release
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.starts_with("ya29.mock-token-"), "{a}");
        assert_eq!(a, b);
        assert_eq!(exchanges(&mock), 1);
    }

    #[tokio::test]
    async fn tokens_are_reused_until_their_refresh_margin() {
        let mock = MockUpstream::start().await.unwrap();
        let (cache, _file) = vertex_cache(&mock);
        let upstream = Upstream::new();
        // A token that expires within REFRESH_MARGIN is replaced at its next use...
        mock.set_token_lifetime(REFRESH_MARGIN.as_secs() / 2);
        let first = cache.get(&upstream, "vtx", deadline()).await.unwrap();
        let second = cache.get(&upstream, "vtx", deadline()).await.unwrap();
        assert_ne!(first, second);
        assert_eq!(exchanges(&mock), 2);
        // ... one that lives well past it is reused.
        mock.set_token_lifetime(3600);
        let third = cache.get(&upstream, "vtx", deadline()).await.unwrap();
        assert_ne!(third, second);
        assert_eq!(
            cache.get(&upstream, "vtx", deadline()).await.unwrap(),
            third
        );
        assert_eq!(exchanges(&mock), 3);
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let mock = MockUpstream::start().await.unwrap();
        let (cache, _file) = vertex_cache(&mock);
        let upstream = Upstream::new();
        // The endpoint refuses the credentials: 401.
        mock.push_fault(Fault::status(400).with_body(
            json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
        ));
        let e = cache.get(&upstream, "vtx", deadline()).await.unwrap_err();
        assert_eq!(e.status().as_u16(), 401);
        // The endpoint cannot be reached: 502.
        mock.push_fault(Fault::drop_connection());
        let e = cache.get(&upstream, "vtx", deadline()).await.unwrap_err();
        assert_eq!(e.status().as_u16(), 502);
        // Neither was kept: the next use exchanges again, and succeeds.
        let token = cache.get(&upstream, "vtx", deadline()).await.unwrap();
        assert!(token.starts_with("ya29.mock-token-"), "{token}");
        assert_eq!(exchanges(&mock), 3);
    }
}
