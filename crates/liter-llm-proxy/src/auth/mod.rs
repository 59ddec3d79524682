//! Authentication stage: who is calling, and may they use this model.
//!
//! Keys are looked up by their SHA-256 digest in a hash map (O(1) however many keys
//! there are) and the digest is then compared in constant time, so neither the lookup
//! nor the comparison reveals how much of a guessed key was right. The registry keeps
//! digests only (the validated config still holds the file's keys, as `SecretString`s
//! that are never printed). Touches only request headers and extensions.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{Config, KeyLimits};
use crate::error::GatewayError;
use crate::limits::Window;

/// The caller of a request, put in the request's extensions by [`authenticate`].
#[derive(Debug)]
pub enum Principal {
    /// The master key: every model, no limits.
    Master,
    /// A virtual key from `[[keys]]`.
    Virtual(VirtualKey),
}

#[derive(Debug)]
pub struct VirtualKey {
    /// A stable id for budgets and the ledger, never the secret: `cfg-` and the first
    /// 16 hex digits of the key's SHA-256 for keys from the file.
    pub id: String,
    /// A safe label for logs: the description, or `key#N` (its position in the file).
    pub label: String,
    /// `None` means every model.
    pub models: Option<HashSet<String>>,
    /// rpm, tpm, budget, expiry.
    pub limits: KeyLimits,
    /// The key's rpm/tpm window (`None` without rpm/tpm).
    pub window: Option<Arc<Window>>,
}

impl Principal {
    /// May this caller use the model named `model`?
    pub fn may_use(&self, model: &str) -> bool {
        match self {
            Principal::Master => true,
            Principal::Virtual(k) => k.models.as_ref().is_none_or(|m| m.contains(model)),
        }
    }

    pub fn label(&self) -> &str {
        match self {
            Principal::Master => "master",
            Principal::Virtual(k) => &k.label,
        }
    }
}

type Digest32 = [u8; 32];

fn digest(token: &str) -> Digest32 {
    Sha256::digest(token.as_bytes()).into()
}

/// Every credential the gateway accepts.
#[derive(Debug, Default)]
pub struct KeyRegistry {
    by_digest: HashMap<Digest32, Arc<Principal>>,
}

impl KeyRegistry {
    pub fn from_config(config: &Config) -> Self {
        let mut by_digest = HashMap::new();
        for (i, k) in config.keys.iter().enumerate() {
            let label = k
                .description
                .clone()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| format!("key#{i}"));
            let models = (!k.models.is_empty()).then(|| k.models.iter().cloned().collect());
            let d = digest(k.key.expose_secret());
            let id: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
            by_digest.insert(
                d,
                Arc::new(Principal::Virtual(VirtualKey {
                    id: format!("cfg-{id}"),
                    label,
                    models,
                    limits: k.limits.clone(),
                    window: k
                        .limits
                        .rate
                        .is_set()
                        .then(|| Arc::new(Window::new(k.limits.rate))),
                })),
            );
        }
        if let Some(master) = &config.master_key {
            by_digest.insert(digest(master.expose_secret()), Arc::new(Principal::Master));
        }
        Self { by_digest }
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
}

/// The bearer token of a request: `Authorization: Bearer X` (or a bare `Authorization: X`).
fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?.trim();
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return None,
        None => value,
    };
    (!token.is_empty()).then_some(token)
}

/// Middleware: 401 unless the request carries a known key; the principal goes into
/// the request's extensions for the handlers' per-model check.
pub async fn authenticate(
    State(keys): State<Arc<KeyRegistry>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(token) = bearer(&req) else {
        let msg = if keys.is_empty() {
            "no API key provided, and this gateway has no master_key or [[keys]] configured"
        } else {
            "no API key provided: send \"Authorization: Bearer <key>\""
        };
        return GatewayError::Unauthorized(msg.into()).into_response();
    };
    match keys.find(token) {
        Some(principal) => {
            req.extensions_mut().insert(principal.clone());
            let mut resp = next.run(req).await;
            // for the request log: which key (by label, never the secret) was used
            resp.extensions_mut().insert(principal);
            resp
        }
        None => GatewayError::Unauthorized("invalid API key".into()).into_response(),
    }
}
