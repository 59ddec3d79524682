//! Authentication stage: who is calling, and may they use this model.
//!
//! Keys are looked up by their SHA-256 digest in a hash map (O(1) however many keys
//! there are) and the digest is then compared in constant time, so neither the lookup
//! nor the comparison reveals how much of a guessed key was right. The registry keeps
//! digests only (the validated config still holds the file's keys, as `SecretString`s
//! that are never printed). Touches only request headers and extensions.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Request};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

use crate::config::{Config, KeyLimits, RateLimits};
use crate::error::GatewayError;
use crate::governance::limits::Window;
use crate::governance::KeyAccount;
use crate::store::KeyStore;

/// Why a request was not authenticated (401), or the key store failed (503).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no API key provided, and this gateway has no master_key or [[keys]] configured")]
    NoKeysConfigured,
    #[error("no API key provided: send \"Authorization: Bearer <key>\" or \"x-api-key: <key>\"")]
    Missing,
    #[error("invalid API key")]
    Invalid,
    #[error("this API key is blocked")]
    Blocked,
    #[error("the key store is unavailable; try again later")]
    StoreUnavailable,
}

impl From<AuthError> for GatewayError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::StoreUnavailable => GatewayError::StoreUnavailable(e.to_string()),
            other => GatewayError::Unauthorized(other.to_string()),
        }
    }
}

/// The caller of a request, put in the request's extensions by [`Authenticate`].
#[derive(Debug)]
pub enum Principal {
    /// The master key: every model, no limits.
    Master,
    /// A virtual key from `[[keys]]` or the key store.
    Virtual(Box<VirtualKey>),
}

#[derive(Debug)]
pub struct VirtualKey {
    /// A stable id for budgets and the ledger, never the secret: `cfg-` and the first
    /// 16 hex digits of the key's SHA-256 for keys from the file.
    pub id: String,
    /// The name of the key's budget scope (`"key:<id>"`), made once.
    pub scope: Arc<str>,
    /// A safe label for logs: the description, or `key#N` (its position in the file).
    pub label: crate::metrics::Label,
    /// `None` means every model.
    pub models: Option<HashSet<String>>,
    /// rpm, tpm, budget, expiry.
    pub limits: KeyLimits,
    /// The key's rpm/tpm window (`None` without rpm/tpm).
    pub window: Option<Arc<Window>>,
    /// A blocked runtime key is refused (401).
    pub blocked: bool,
    /// Created through the admin API (read from the key store), not from the file.
    pub runtime: bool,
    /// Added to each of its requests, for tag filtering.
    pub tags: Box<[String]>,
}

impl VirtualKey {
    /// What the governance stage needs of this key.
    pub fn account(&self) -> KeyAccount<'_> {
        KeyAccount {
            id: &self.id,
            label: self.label.as_str(),
            scope: &self.scope,
            limits: &self.limits,
            window: self.window.as_ref(),
            runtime: self.runtime,
        }
    }
}

impl Principal {
    /// May this caller use the model named `model`?
    pub fn may_use(&self, model: &str) -> bool {
        match self {
            Principal::Master => true,
            Principal::Virtual(k) => k.models.as_ref().is_none_or(|m| m.contains(model)),
        }
    }

    /// The key's account for the governance stage; `None` for the master key.
    pub fn account(&self) -> Option<KeyAccount<'_>> {
        match self {
            Principal::Master => None,
            Principal::Virtual(k) => Some(k.account()),
        }
    }

    /// The key's tags (none for the master key).
    pub fn tags(&self) -> &[String] {
        match self {
            Principal::Master => &[],
            Principal::Virtual(k) => &k.tags,
        }
    }

    pub fn label(&self) -> &str {
        match self {
            Principal::Master => "master",
            Principal::Virtual(k) => k.label.as_str(),
        }
    }
}

type Digest32 = [u8; 32];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn digest(token: &str) -> Digest32 {
    Sha256::digest(token.as_bytes()).into()
}

/// Every credential the gateway accepts: the master key and `[[keys]]` (in memory),
/// and keys created through the admin API (in the key store, by SHA-256; found on
/// first use and cached here until changed through the admin API or
/// [`RUNTIME_KEY_TTL`] passes, so a change made on another gateway is seen soon).
#[derive(Default)]
pub struct KeyRegistry {
    by_digest: HashMap<Digest32, Arc<Principal>>,
    store: Option<Arc<dyn KeyStore>>,
    runtime: Mutex<HashMap<Digest32, (std::time::Instant, Arc<Principal>)>>,
    /// Bumped by each [`KeyRegistry::forget_runtime`] (under the `runtime` lock): a key
    /// read from the store before a change was announced is not cached after it.
    forgotten: std::sync::atomic::AtomicU64,
    /// rpm/tpm windows of runtime keys, by key id: kept when a key is re-read, and
    /// shared with the registry a reload makes.
    windows: Arc<Mutex<HashMap<String, Arc<Window>>>>,
}

impl std::fmt::Debug for KeyRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRegistry")
            .field("keys", &self.by_digest.len())
            .finish_non_exhaustive()
    }
}

/// How long a runtime key read from the store is trusted before it is read again.
pub const RUNTIME_KEY_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// The lowercase hex SHA-256 of a key, as the key store holds it.
pub fn key_hash(token: &str) -> String {
    digest(token).iter().map(|b| format!("{b:02x}")).collect()
}

impl KeyRegistry {
    pub fn from_config(config: &Config, store: Option<Arc<dyn KeyStore>>) -> Self {
        let mut by_digest = HashMap::new();
        for (i, k) in config.keys.iter().enumerate() {
            let label = k
                .description
                .clone()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| format!("key#{i}"))
                .as_str()
                .into();
            let models = (!k.models.is_empty()).then(|| k.models.iter().cloned().collect());
            let d = digest(k.key.expose_secret());
            let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
            let id = format!("cfg-{hex}");
            by_digest.insert(
                d,
                Arc::new(Principal::Virtual(Box::new(VirtualKey {
                    scope: crate::store::BudgetScope::key_name(&id),
                    id,
                    label,
                    models,
                    limits: k.limits.clone(),
                    blocked: false,
                    runtime: false,
                    tags: k.tags.clone().into(),
                    window: k
                        .limits
                        .rate
                        .is_set()
                        .then(|| Arc::new(Window::new(k.limits.rate))),
                }))),
            );
        }
        if let Some(master) = &config.master_key {
            by_digest.insert(digest(master.expose_secret()), Arc::new(Principal::Master));
        }
        Self {
            by_digest,
            store,
            ..Self::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// The principal for a presented token, if any.
    pub fn find(&self, token: &str) -> Option<Arc<Principal>> {
        let presented = digest(token);
        let (stored, principal) = self.by_digest.get_key_value(&presented)?;
        bool::from(stored.ct_eq(&presented)).then(|| principal.clone())
    }

    /// A key from the key store (a runtime key), cached. `Err` when the store failed.
    pub async fn find_runtime(&self, token: &str) -> Result<Option<Arc<Principal>>, AuthError> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let d = digest(token);
        if let Some((at, p)) = lock(&self.runtime).get(&d) {
            if at.elapsed() < RUNTIME_KEY_TTL {
                return Ok(Some(p.clone()));
            }
        }
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        let generation = self.forgotten.load(Ordering::Acquire);
        let found = store.find_by_hash(&hex).await.map_err(|e| {
            tracing::error!(error = %e, "key store unavailable");
            AuthError::StoreUnavailable
        })?;
        let Some(k) = found else {
            return Ok(None);
        };
        let window = {
            let rate = RateLimits {
                rpm: k.rpm_limit.map(|r| u32::try_from(r).unwrap_or(u32::MAX)),
                tpm: k.tpm_limit,
            };
            let mut windows = lock(&self.windows);
            match windows.get(&k.id) {
                Some(w) if w.limits == rate => Some(w.clone()),
                _ if rate.is_set() => {
                    let w = Arc::new(Window::new(rate));
                    windows.insert(k.id.clone(), w.clone());
                    Some(w)
                }
                _ => None,
            }
        };
        let principal = Arc::new(Principal::Virtual(Box::new(VirtualKey {
            label: k
                .key_alias
                .clone()
                .unwrap_or_else(|| format!("key-{}", &k.id[..8.min(k.id.len())]))
                .as_str()
                .into(),
            models: (!k.models.is_empty()).then(|| k.models.iter().cloned().collect()),
            limits: KeyLimits {
                rate: window
                    .as_ref()
                    .map_or_else(RateLimits::default, |w| w.limits),
                budget_limit: k.max_budget,
                budget_period: k.budget_duration,
                expires_at: k.expires_at,
            },
            blocked: k.blocked,
            runtime: true,
            tags: k.tags.clone().into(),
            scope: crate::store::BudgetScope::key_name(&k.id),
            id: k.id,
            window,
        })));
        let mut cache = lock(&self.runtime);
        // A change announced while the store was read may not be in what was read.
        if self.forgotten.load(Ordering::Acquire) == generation {
            cache.insert(d, (std::time::Instant::now(), principal.clone()));
        }
        Ok(Some(principal))
    }

    /// Carry `old`'s rate-limit windows over (a reload): a key of the file keeps its
    /// window when its limits are unchanged, and runtime keys keep theirs.
    pub fn carry(&mut self, old: &KeyRegistry) {
        self.windows = old.windows.clone();
        for (d, principal) in &mut self.by_digest {
            let Some(Principal::Virtual(new)) = Arc::get_mut(principal) else {
                continue;
            };
            let Some(Principal::Virtual(was)) = old.by_digest.get(d).map(|p| &**p) else {
                continue;
            };
            if let (Some(w), Some(old_w)) = (&new.window, &was.window) {
                if w.limits == old_w.limits {
                    new.window = Some(old_w.clone());
                }
            }
        }
    }

    /// Forget cached runtime keys (after an admin change).
    pub fn forget_runtime(&self) {
        let mut cache = lock(&self.runtime);
        self.forgotten.fetch_add(1, Ordering::AcqRel);
        cache.clear();
    }

    /// Whether a token is a key of the file (master or `[[keys]]`).
    pub fn is_configured(&self, token: &str) -> bool {
        self.find(token).is_some()
    }
}

/// Anthropic's key header, which its SDKs and Claude Code send.
pub const X_API_KEY: &str = "x-api-key";

/// The key of a request: `Authorization: Bearer X` (or a bare `Authorization: X`), else
/// `x-api-key: X` (Anthropic's header). With both, `Authorization` decides.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        let key = headers.get(X_API_KEY)?.to_str().ok()?.trim();
        return (!key.is_empty()).then_some(key);
    };
    let value = value.to_str().ok()?.trim();
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return None,
        None => value,
    };
    (!token.is_empty()).then_some(token)
}

/// What the key check decides without waiting: the caller, the 401, or a token to look
/// up in the key store (a runtime key; only then does a request pay for a boxed future).
enum Check {
    Found(Arc<Principal>),
    Refused(AuthError),
    Lookup(String),
}

fn check(keys: &KeyRegistry, headers: &HeaderMap) -> Check {
    let Some(token) = bearer(headers) else {
        return Check::Refused(if keys.is_empty() {
            AuthError::NoKeysConfigured
        } else {
            AuthError::Missing
        });
    };
    match keys.find(token) {
        Some(p) => match refusal(&p) {
            Some(e) => Check::Refused(e),
            None => Check::Found(p),
        },
        None => Check::Lookup(token.to_owned()),
    }
}

/// The 401 for a blocked key.
fn refusal(p: &Principal) -> Option<AuthError> {
    match p {
        Principal::Virtual(k) if k.blocked => Some(AuthError::Blocked),
        _ => None,
    }
}

/// The authentication stage: 401 unless the request carries a known key (from the file,
/// or from the key store); the principal goes into the request's extensions for the
/// handlers' per-model check, and into the response's for the request log (which logs
/// its label, never the secret). A hand-written layer: for the file's keys, no boxed
/// service or future per request.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    keys: Arc<KeyRegistry>,
}

impl AuthLayer {
    pub fn new(keys: Arc<KeyRegistry>) -> Self {
        Self { keys }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Authenticate<S> {
        Authenticate {
            keys: self.keys.clone(),
            inner,
        }
    }
}

/// See [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Authenticate<S> {
    keys: Arc<KeyRegistry>,
    inner: S,
}

type BoxFuture<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

impl<S, B> Service<Request<B>> for Authenticate<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Unpin + Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = AuthFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> AuthFuture<S::Future, S::Error> {
        match check(&self.keys, req.headers()) {
            Check::Found(principal) => {
                req.extensions_mut().insert(principal.clone());
                AuthFuture::Allowed {
                    inner: self.inner.call(req),
                    principal: Some(principal),
                }
            }
            Check::Refused(e) => AuthFuture::Denied(Some(GatewayError::from(e).into_response())),
            Check::Lookup(token) => {
                let keys = self.keys.clone();
                // the readied service goes with the request; its clone stays here
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                AuthFuture::Store(Box::pin(async move {
                    let found = match keys.find_runtime(&token).await {
                        Ok(Some(p)) => refusal(&p).map_or(Ok(p), Err),
                        Ok(None) => Err(AuthError::Invalid),
                        Err(e) => Err(e),
                    };
                    let principal = match found {
                        Ok(p) => p,
                        Err(e) => return Ok(GatewayError::from(e).into_response()),
                    };
                    req.extensions_mut().insert(principal.clone());
                    let mut resp = inner.call(req).await?;
                    resp.extensions_mut().insert(principal);
                    Ok(resp)
                }))
            }
        }
    }
}

/// [`Authenticate`]'s future: the 401, the inner stack's answer tagged with the caller,
/// or (for a key not in the file) the key-store lookup followed by either.
pub enum AuthFuture<F, E> {
    Denied(Option<Response>),
    Allowed {
        inner: F,
        principal: Option<Arc<Principal>>,
    },
    Store(BoxFuture<E>),
}

impl<F, E> Future for AuthFuture<F, E>
where
    F: Future<Output = Result<Response, E>> + Unpin,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            AuthFuture::Denied(resp) => match resp.take() {
                Some(resp) => Poll::Ready(Ok(resp)),
                None => Poll::Pending, // polled again after completion: never ready again
            },
            AuthFuture::Allowed { inner, principal } => {
                let mut resp = ready!(Pin::new(inner).poll(cx))?;
                if let Some(principal) = principal.take() {
                    resp.extensions_mut().insert(principal);
                }
                Poll::Ready(Ok(resp))
            }
            AuthFuture::Store(fut) => fut.as_mut().poll(cx),
        }
    }
}
