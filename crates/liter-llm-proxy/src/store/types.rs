//! The values that cross the [`super::SpendStore`] and [`super::KeyStore`] traits, and
//! their errors. Money crosses as `f64` US dollars; inside the stores it is integer
//! nano-dollars (see [`super::logic`]), so sums and limit checks are exact.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::clock::{Period, UnixMillis};

/// A reservation's handle, returned by [`super::SpendStore::reserve`] and passed back
/// to [`super::SpendStore::settle`]. Ids are never reused within a database, which is
/// what makes `settle` idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReservationId(pub i64);

/// One budget a reservation must fit in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetScope {
    /// The scope's name: `"global"`, `"key:<key id>"`, `"model:<provider/model>"`, or any
    /// other string; one row of spend per distinct name. See [`BudgetScope::key`] and
    /// friends. Shared: the gateway names each scope once and every reservation
    /// refers to that name.
    pub scope: Arc<str>,
    /// The limit in USD for the current window (`f64::INFINITY`: no limit, spend is
    /// still counted). The latest reservation's limit is the one stored and checked,
    /// so a key's `max_budget` can change at any time.
    pub limit_usd: f64,
    /// When set, the scope's spend starts again from zero every period, counted back to
    /// back from the first time the scope was seen with a period.
    pub period: Option<Period>,
}

impl BudgetScope {
    /// The gateway-wide scope `"global"`.
    pub fn global(limit_usd: f64, period: Option<Period>) -> Self {
        Self::named("global", limit_usd, period)
    }

    /// The scope of one key, `"key:<id>"` (the key's id, never its secret).
    pub fn key(key_id: &str, limit_usd: f64, period: Option<Period>) -> Self {
        Self::named(Self::key_name(key_id), limit_usd, period)
    }

    /// The name of a key's scope, `"key:<id>"`.
    pub fn key_name(key_id: &str) -> Arc<str> {
        format!("key:{key_id}").into()
    }

    /// The scope of one model, `"model:<provider/model>"`.
    pub fn model(model: &str, limit_usd: f64, period: Option<Period>) -> Self {
        Self::named(Self::model_name(model), limit_usd, period)
    }

    /// The name of a model's scope, `"model:<provider/model>"`.
    pub fn model_name(model: &str) -> Arc<str> {
        format!("model:{model}").into()
    }

    /// A scope with any name.
    pub fn named(scope: impl Into<Arc<str>>, limit_usd: f64, period: Option<Period>) -> Self {
        Self {
            scope: scope.into(),
            limit_usd,
            period,
        }
    }
}

/// What [`super::SpendStore::reserve`] holds back before a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    /// The gateway's request id (kept on the reservation so a crashed one can be traced).
    pub request_id: String,
    /// Every budget the call must fit in; distinct names. Empty is allowed (the call is
    /// then only recorded in the ledger when settled).
    pub scopes: Vec<BudgetScope>,
    /// The amount held back in every scope, in USD, `>= 0`. For the crash invariant to
    /// hold it must be an upper bound of what the provider can bill (e.g. priced with
    /// `max_tokens`): after a crash the reservation is counted in full, not more.
    pub amount_usd: f64,
}

/// One finished request: a row of the spend ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The gateway's request id.
    pub request_id: String,
    /// The key's id (never the secret); `None` when the request had no stored key.
    pub key_id: Option<String>,
    /// The key's alias at the time of the request.
    pub key_alias: Option<String>,
    /// The model the client asked for (`provider/model` or a router alias).
    pub model: String,
    /// The deployment that served the request (empty when none did).
    pub deployment: String,
    /// Input tokens as the provider reported them (cached ones included).
    pub prompt_tokens: u64,
    /// Output tokens as the provider reported them.
    pub completion_tokens: u64,
    /// The part of `prompt_tokens` served from the provider's prompt cache.
    pub cached_tokens: u64,
    /// What the provider billed, in USD, `>= 0`.
    pub cost_usd: f64,
    /// The HTTP status the client got; `0` for a reservation that a crashed gateway
    /// left behind and [`super::SpendStore::reconcile`] counted in full.
    pub status: u16,
    /// Answered from the gateway's response cache (cost 0, no provider call).
    #[serde(default)]
    pub cache_hit: bool,
    /// When the request started.
    pub started_at: UnixMillis,
    /// When the request ended (or was reconciled).
    pub ended_at: UnixMillis,
}

/// What [`super::SpendStore::settle`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The reservation was released, the cost added to its scopes and the row written.
    Applied,
    /// This reservation was settled (or reconciled) before; nothing changed.
    AlreadySettled,
    /// No such reservation was ever made in this database: the ledger row was written,
    /// no scope was touched.
    Unreserved,
}

/// One scope's counters, as [`super::SpendStore::spent`] reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeSpend {
    /// The scope's name.
    pub scope: String,
    /// Settled (and reconciled) spend in the current window, in USD.
    pub spent_usd: f64,
    /// Reservations not settled yet, in USD.
    pub reserved_usd: f64,
    /// The limit the latest reservation carried; `None` for a scope never reserved.
    pub limit_usd: Option<f64>,
    /// The scope's period, if any.
    pub period: Option<Period>,
    /// When the current window started (`None` without a period).
    pub period_start: Option<UnixMillis>,
}

/// Which ledger rows a query looks at. The default is every row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerFilter {
    /// Only rows whose `key_id` or `key_alias` equals this.
    pub key: Option<String>,
    /// Only rows of this model.
    pub model: Option<String>,
    /// Only rows that started at or after this time.
    pub since: Option<UnixMillis>,
    /// Only rows that started before this time.
    pub until: Option<UnixMillis>,
    /// At most this many rows ([`super::SpendStore::ledger`] only).
    pub limit: Option<u64>,
    /// Skip this many rows first ([`super::SpendStore::ledger`] only).
    pub offset: u64,
}

/// How [`super::SpendStore::grouped`] groups the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// By `key_id`, else `key_alias`, else `""`; most expensive first.
    Key,
    /// By model; most expensive first.
    Model,
    /// By the UTC date the request started (`YYYY-MM-DD`); oldest first.
    Day,
}

/// One group of ledger rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpendGroup {
    /// The key, model or day.
    pub group: String,
    /// Total cost in USD.
    pub cost_usd: f64,
    /// Number of requests.
    pub requests: u64,
    /// Prompt plus completion tokens.
    pub tokens: u64,
}

/// A key to create. The secret itself never reaches the store: only its hash.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewKey {
    /// SHA-256 of the secret, 64 hex digits (normalised to lower case). Anything else is
    /// rejected, so a clear key passed by mistake is never written.
    pub key_hash: String,
    /// A unique, human-readable name.
    pub key_alias: Option<String>,
    /// Models the key may use; empty means all.
    pub models: Vec<String>,
    /// Budget in USD per `budget_duration` window (or ever, without one).
    pub max_budget: Option<f64>,
    /// Requests per minute.
    pub rpm_limit: Option<u64>,
    /// Tokens per minute.
    pub tpm_limit: Option<u64>,
    /// When the key's spend resets.
    pub budget_duration: Option<Period>,
    /// When the key stops working.
    pub expires_at: Option<UnixMillis>,
    /// Free-form JSON the admin attached.
    pub metadata: serde_json::Value,
    /// A blocked key is kept but refused.
    pub blocked: bool,
    /// Tags added to the key's requests, for tag filtering.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A partial update: `None` leaves a field alone; `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyUpdate {
    /// A new secret hash (key rotation); same rules as [`NewKey::key_hash`].
    pub key_hash: Option<String>,
    /// See [`NewKey::key_alias`].
    pub key_alias: Option<Option<String>>,
    /// See [`NewKey::models`].
    pub models: Option<Vec<String>>,
    /// See [`NewKey::max_budget`].
    pub max_budget: Option<Option<f64>>,
    /// See [`NewKey::rpm_limit`].
    pub rpm_limit: Option<Option<u64>>,
    /// See [`NewKey::tpm_limit`].
    pub tpm_limit: Option<Option<u64>>,
    /// See [`NewKey::budget_duration`].
    pub budget_duration: Option<Option<Period>>,
    /// See [`NewKey::expires_at`].
    pub expires_at: Option<Option<UnixMillis>>,
    /// Replaces the metadata.
    pub metadata: Option<serde_json::Value>,
    /// See [`NewKey::blocked`].
    pub blocked: Option<bool>,
    /// See [`NewKey::tags`].
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// A key as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredKey {
    /// The store's id for the key (32 hex digits); what the ledger and the `key:` scope
    /// use.
    pub id: String,
    /// SHA-256 of the secret, lower-case hex. Unique.
    pub key_hash: String,
    /// Unique when set.
    pub key_alias: Option<String>,
    /// See [`NewKey::models`].
    pub models: Vec<String>,
    /// See [`NewKey::max_budget`].
    pub max_budget: Option<f64>,
    /// See [`NewKey::rpm_limit`].
    pub rpm_limit: Option<u64>,
    /// See [`NewKey::tpm_limit`].
    pub tpm_limit: Option<u64>,
    /// See [`NewKey::budget_duration`].
    pub budget_duration: Option<Period>,
    /// See [`NewKey::expires_at`].
    pub expires_at: Option<UnixMillis>,
    /// See [`NewKey::metadata`].
    pub metadata: serde_json::Value,
    /// When the key was created.
    pub created_at: UnixMillis,
    /// See [`NewKey::blocked`].
    pub blocked: bool,
    /// See [`NewKey::tags`].
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Which unique field a write collided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueField {
    /// Another key has this hash.
    KeyHash,
    /// Another key has this alias.
    KeyAlias,
}

/// A store failure. Messages never contain a secret (the stores never see one).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A unique constraint was violated.
    #[error("another key already has this {0:?}")]
    Conflict(UniqueField),
    /// The caller passed something the store refuses (negative amount, bad hash, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The URL names no supported backend, or the database is newer than this binary.
    #[error("{0}")]
    Config(String),
    /// A stored value could not be decoded.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// A file next to the SQLite database (its lock or reservation journal) could not
    /// be used.
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a reservation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    /// The amount does not fit in `scope`; nothing was reserved anywhere.
    #[error("budget exceeded for {scope}: {remaining_usd} of {limit_usd} USD left")]
    OverBudget {
        /// The first scope (by name) the amount did not fit in.
        scope: String,
        /// Its limit.
        limit_usd: f64,
        /// What is left in it: `limit - spent - reserved`, never negative.
        remaining_usd: f64,
    },
    /// The store failed; nothing was reserved.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ReserveError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(e))
    }
}
