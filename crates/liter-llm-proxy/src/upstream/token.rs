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
use std::future::Future;
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
        self.get_with(|req| upstream.exchange(req, name, deadline))
            .await
    }

    /// The current token, `send` running the exchange when needed (tests inject it).
    pub async fn get_with<F, Fut>(&self, send: F) -> Result<String, GatewayError>
    where
        F: FnOnce(TokenRequest) -> Fut,
        Fut: Future<Output = Result<(u16, Bytes), GatewayError>>,
    {
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
        let (status, body) = send(req).await?;
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use liter_llm::providers::adapter::{
        AccessToken, Adapter, Call, StreamMeta, StreamTranslate, UpstreamRequest,
    };
    use liter_llm::types::{ChatCompletion, EmbeddingResponse, ProviderError};

    use super::*;

    /// An adapter whose tokens live `ttl` seconds.
    #[derive(Debug)]
    struct Tokened {
        ttl: u64,
    }

    impl Adapter for Tokened {
        fn build(&self, _: Call<'_>) -> Result<UpstreamRequest, ProviderError> {
            unimplemented!()
        }
        fn parse_chat(&self, _: &[u8], _: &str, _: u64) -> Result<ChatCompletion, ProviderError> {
            unimplemented!()
        }
        fn parse_embeddings(&self, _: &[u8], _: &str) -> Result<EmbeddingResponse, ProviderError> {
            unimplemented!()
        }
        fn parse_error(&self, s: u16, _: &axum::http::HeaderMap, _: &[u8]) -> ProviderError {
            ProviderError::new(s, "api_error", "x")
        }
        fn stream(&self, _: StreamMeta) -> Box<dyn StreamTranslate> {
            unimplemented!()
        }
        fn uses_token(&self) -> bool {
            true
        }
        fn token_exchange(&self, _now: u64) -> Option<Result<TokenRequest, ProviderError>> {
            Some(Ok(TokenRequest {
                uri: "http://token.test/token".parse().unwrap(),
                headers: Vec::new(),
                body: Bytes::new(),
            }))
        }
        fn parse_token(&self, status: u16, body: &[u8]) -> Result<AccessToken, ProviderError> {
            if status != 200 {
                return Err(ProviderError::new(401, "authentication_error", "refused"));
            }
            Ok(AccessToken {
                token: String::from_utf8_lossy(body).into_owned(),
                expires_in_secs: self.ttl,
            })
        }
    }

    fn cache(ttl: u64) -> TokenCache {
        let adapter: SharedAdapter = Arc::new(Tokened { ttl });
        TokenCache::for_adapter(&adapter).unwrap()
    }

    /// An exchange that counts its calls and takes a moment, so concurrent callers
    /// overlap.
    async fn counted(calls: &AtomicUsize) -> Result<(u16, Bytes), GatewayError> {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok((200, Bytes::from(format!("tok-{n}"))))
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_share_one_exchange() {
        let cache = cache(3600);
        let calls = AtomicUsize::new(0);
        let (a, b) = tokio::join!(
            cache.get_with(|_| counted(&calls)),
            cache.get_with(|_| counted(&calls))
        );
        assert_eq!(
            (a.unwrap(), b.unwrap()),
            ("tok-1".to_string(), "tok-1".to_string())
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn expiring_tokens_are_refreshed() {
        let cache = cache(3600);
        let calls = AtomicUsize::new(0);
        assert_eq!(cache.get_with(|_| counted(&calls)).await.unwrap(), "tok-1");
        // Still well inside its life: reused.
        tokio::time::advance(Duration::from_secs(3000)).await;
        assert_eq!(cache.get_with(|_| counted(&calls)).await.unwrap(), "tok-1");
        // Within the refresh margin of its expiry: replaced.
        tokio::time::advance(Duration::from_secs(560)).await;
        assert_eq!(cache.get_with(|_| counted(&calls)).await.unwrap(), "tok-2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_not_cached() {
        let cache = cache(3600);
        let e = cache
            .get_with(|_| async { Ok((400, Bytes::from_static(b"{}"))) })
            .await
            .unwrap_err();
        assert_eq!(e.status().as_u16(), 401);
        let e = cache
            .get_with(|_| async { Err(GatewayError::BadGateway("down".into())) })
            .await
            .unwrap_err();
        assert_eq!(e.status().as_u16(), 502);
        let calls = AtomicUsize::new(0);
        assert_eq!(cache.get_with(|_| counted(&calls)).await.unwrap(), "tok-1");
    }
}
