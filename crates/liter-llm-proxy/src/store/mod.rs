//! Stores: the durable state behind the budget, spend and key stages.
//!
//! Five narrow traits, [`SpendStore`] (budget reservations and the spend ledger),
//! [`KeyStore`] (virtual keys, by hash), [`FileStore`] (the files API's metadata),
//! [`ResponseStore`] (the Responses API's stored conversations) and [`ModelStore`]
//! (the model admin API's models),
//! each with an SQLite implementation (the embedded default, one file) and a
//! PostgreSQL one (several gateways sharing one database); files, responses and
//! models also have an in-memory one (the `memory` files backend; a gateway without a
//! database).
//! All pass one conformance suite (`tests/store.rs`). [`open`] picks the backend from
//! a URL, creates the database if needed and runs the embedded migrations.
//! This module touches only its database (and, for SQLite, the lock file and the
//! reservation journal next to it).
//!
//! # Accounting invariants
//!
//! 1. **No overspend under concurrency.** [`SpendStore::reserve`] admits an amount only
//!    if, for *every* scope, `spent + reserved + amount <= limit` in the scope's current
//!    window, and it reserves in all of them or none. SQLite: the one gateway that owns
//!    the file (an exclusive lock on `<db>.lock`; a second one is refused at open) checks
//!    and holds in memory under one mutex. PostgreSQL: the check and the write happen in
//!    one transaction that locks each scope row with an upsert (`INSERT .. ON CONFLICT DO
//!    UPDATE`, which takes the row lock) in name order, so gateways sharing the database
//!    never deadlock and read-committed always sees the latest committed counters.
//! 2. **Recorded spend is never lower than what providers billed.** A reservation is
//!    durable against a crash of the gateway once `reserve` returns (SQLite: appended to
//!    the journal, `journal.rs`; PostgreSQL: committed), and it is an upper bound of the
//!    bill (priced with `max_tokens`). [`SpendStore::settle`] releases it, adds the billed
//!    cost to every scope it touched (even past the limit) and writes the ledger row
//!    (SQLite: in memory at once, committed by the book's writer within a turn, see
//!    `sqlite_book.rs`; PostgreSQL: in one transaction). A reservation whose ledger row
//!    never got committed is counted in full, with a status-0 ledger row, by
//!    [`SpendStore::reconcile`] (SQLite: replayed from the journal at open).
//! 3. **Exact money.** Amounts are stored as integer nano-dollars; `f64` USD is
//!    converted once, at the edge (see `logic.rs`).
//! 4. **Settling is idempotent.** Reservation ids are never reused and the ledger holds
//!    at most one row per reservation, so a repeated or late settle changes nothing.
//! 5. **Reconcile only takes reservations of dead gateways.** PostgreSQL: every store
//!    handle has a random owner id held by a session advisory lock for its whole life;
//!    `reconcile` takes a reservation only once it can take its owner's lock, so a live
//!    peer's in-flight reservations are left alone. Run it at start-up and periodically
//!    (a peer's death may be noticed late). SQLite: the handle owns the file, so there is
//!    no peer; open replays the journal and the first `reconcile` reports the count.
//!    `settle` and `reconcile` run to completion even if their caller goes away.
//! 6. **Periods reset on schedule.** A scope with a [`Period`] stores when its window
//!    started; windows follow each other back to back, and the first write after a
//!    window ends starts the spend again from zero. Times come from the store's
//!    [`Clock`] ([`open_with_clock`] injects one) as [`UnixMillis`] (UTC).
//! 7. **No secret is stored.** [`KeyStore`] only takes the SHA-256 of a key, checked to
//!    be 64 hex digits; ledger rows name keys by id and alias.

mod clock;
mod files;
mod journal;
mod logic;
mod models;
mod postgres;
mod postgres_keys;
mod responses;
mod sql_files;
mod sql_keys;
mod sql_models;
mod sql_responses;
mod sqlite;
mod sqlite_book;
/// How long settled spend waits before an SQLite store commits it, unless the config
/// says otherwise (see [`SpendStore::set_write_interval`]).
pub use sqlite_book::COMMIT_EVERY as DEFAULT_WRITE_INTERVAL;
/// Settled rows waiting that make an SQLite store commit at once, whatever its write
/// interval.
pub use sqlite_book::MAX_WAITING as MAX_WAITING_ROWS;
mod sqlite_keys;
mod types;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

pub use clock::{
    day_string, parse_rfc3339, Clock, ManualClock, Period, PeriodParseError, SystemClock,
    UnixMillis, DAY_MS,
};
pub use files::{FileOrder, FileQuery, MemoryFileStore, StoredFile};
pub use models::{MemoryModelStore, StoredModel};
pub use responses::{MemoryResponseStore, StoredResponse, MEMORY_LIMIT_BYTES};
pub use types::{
    BudgetScope, GroupBy, KeyUpdate, LedgerEntry, LedgerFilter, NewKey, Reservation, ReservationId,
    ReserveError, ScopeSpend, Settlement, SpendGroup, StoreError, StoredKey, UniqueField,
};

/// Budgets and the spend ledger.
#[async_trait]
pub trait SpendStore: Send + Sync {
    /// Holds `r.amount_usd` back in every scope of `r`, or in none: fails with
    /// [`ReserveError::OverBudget`] naming the first scope (by name) it does not fit in.
    /// Creates scope rows on first use and stores each scope's latest limit and period.
    async fn reserve(&self, r: Reservation) -> Result<ReservationId, ReserveError>;

    /// Ends a reservation: releases it, adds `entry.cost_usd` to each of its scopes
    /// (even past the limit) and writes `entry` to the ledger, in one transaction.
    /// Idempotent: a second settle of the same id changes nothing.
    async fn settle(&self, id: ReservationId, entry: LedgerEntry)
        -> Result<Settlement, StoreError>;

    /// Counts every reservation whose owner (another store handle) is dead as spent in
    /// full, writes a status-0 ledger row for it and removes it. Run at start-up (and
    /// whenever convenient: it never touches a live owner's reservations). Returns how
    /// many reservations it took.
    async fn reconcile(&self) -> Result<u64, StoreError>;

    /// A scope's counters as of now (a window that has ended reads as zero spend). An
    /// unknown scope reads as zeros with no limit.
    async fn spent(&self, scope: &str) -> Result<ScopeSpend, StoreError>;

    /// `false` while the store is known to be unreachable (PostgreSQL: the connection
    /// holding its owner lock, checked every second, is broken and not yet made
    /// again). A hint for admission, which then does not wait for the store.
    fn reachable(&self) -> bool {
        true
    }

    /// Tells `/metrics` of the write path from now on: rows waiting to be written and
    /// the time of each write. A store with nothing to write (memory) ignores it.
    fn instrument(&self, _metrics: crate::metrics::SpendMetrics) {}

    /// With `false` (LiteLLM's `disable_spend_logs`), `settle` writes no ledger row
    /// from now on, and a settle of an id that is not reserved reports
    /// [`Settlement::AlreadySettled`]; the scopes are kept exactly as with rows, across
    /// a crash too (SQLite commits a mark of the reservation in the row's place, for
    /// its start-up to read, and deletes it once its journal segment is gone). A
    /// reservation a crash left, counted in full, still gets its status-0 row.
    fn set_ledger_rows(&self, on: bool) -> Result<(), StoreError>;

    /// How long settled spend may wait before it is committed to the database
    /// (`general.spend_write_interval_secs`, LiteLLM's `proxy_batch_write_at`; by
    /// default a second). Budgets and spend reads are exact in memory at once either
    /// way, and a reservation not yet committed is counted in full after a crash. SQLite
    /// commits every interval (or sooner, with many rows waiting or on a flush); a store
    /// that commits each settlement as it happens (PostgreSQL, where the config refuses
    /// the setting) or has no database (memory) has nothing to wait for.
    fn set_write_interval(&self, _every: std::time::Duration) {}

    /// Waits until everything settled so far is durable (a backend that commits each
    /// settlement before `settle` returns has nothing to wait for). Call before the
    /// process exits.
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Ledger rows matching `filter`, newest first.
    async fn ledger(&self, filter: &LedgerFilter) -> Result<Vec<LedgerEntry>, StoreError>;

    /// The total cost in USD of the rows matching `filter` (`limit`/`offset` ignored).
    async fn total(&self, filter: &LedgerFilter) -> Result<f64, StoreError>;

    /// Cost, request and token totals per key, model or day over the rows matching
    /// `filter` (`limit`/`offset` ignored). See [`GroupBy`] for the order.
    async fn grouped(
        &self,
        by: GroupBy,
        filter: &LedgerFilter,
    ) -> Result<Vec<SpendGroup>, StoreError>;
}

/// Virtual keys, found by the SHA-256 of their secret.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a new key with a fresh id. Fails with [`StoreError::Conflict`] when the
    /// hash or the alias is taken, [`StoreError::InvalidInput`] when `key_hash` is not
    /// 64 hex digits.
    async fn create(&self, key: NewKey) -> Result<StoredKey, StoreError>;

    /// The key whose secret hashes to `key_hash` (hex, any case). Blocked and expired
    /// keys are returned too: the caller decides.
    async fn find_by_hash(&self, key_hash: &str) -> Result<Option<StoredKey>, StoreError>;

    /// The key with this id.
    async fn get(&self, id: &str) -> Result<Option<StoredKey>, StoreError>;

    /// Keys in creation order.
    async fn list(&self, offset: u64, limit: u64) -> Result<Vec<StoredKey>, StoreError>;

    /// Applies `update` atomically; `None` when there is no such key.
    async fn update(&self, id: &str, update: KeyUpdate) -> Result<Option<StoredKey>, StoreError>;

    /// Deletes the key; `false` when there was none. Its ledger rows stay.
    async fn delete(&self, id: &str) -> Result<bool, StoreError>;
}

/// The files API's metadata (`[files]`). Ids sort by creation time (see `files.rs`).
#[async_trait]
pub trait FileStore: Send + Sync {
    /// Records a new file.
    async fn insert(&self, file: &StoredFile) -> Result<(), StoreError>;

    /// The file with this id, whoever owns it.
    async fn get(&self, id: &str) -> Result<Option<StoredFile>, StoreError>;

    /// The files `query` selects, in its order, at most `query.limit`.
    async fn list(&self, query: &FileQuery) -> Result<Vec<StoredFile>, StoreError>;

    /// Forgets the file (and its provider copies' ids); `false` when there was none.
    async fn delete(&self, id: &str) -> Result<bool, StoreError>;
}

/// The Responses API's stored responses (`responses.rs`), each readable and deletable
/// by its owner only.
#[async_trait]
pub trait ResponseStore: Send + Sync {
    /// Records a new response; its id must be new.
    async fn put(&self, response: &StoredResponse) -> Result<(), StoreError>;

    /// The response with this id if `owner` owns it; `None` otherwise (absent or
    /// another owner's: the two read the same).
    async fn get(&self, id: &str, owner: &str) -> Result<Option<StoredResponse>, StoreError>;

    /// Forgets the response if `owner` owns it; `false` when there was none of theirs.
    async fn delete(&self, id: &str, owner: &str) -> Result<bool, StoreError>;
}

/// The model admin API's models (`models.rs`), served after the config file's.
#[async_trait]
pub trait ModelStore: Send + Sync {
    /// Every stored model, oldest first.
    async fn list_models(&self) -> Result<Vec<StoredModel>, StoreError>;

    /// Records a model, or replaces the one with its id.
    async fn put_model(&self, model: &StoredModel) -> Result<(), StoreError>;

    /// Forgets the model; `false` when there was none with this id.
    async fn delete_model(&self, id: &str) -> Result<bool, StoreError>;
}

/// The stores of one database, as [`open`] returns them. Cloning shares them. The
/// handle's owner lock (invariant 5) lives until the last clone of both is dropped.
#[derive(Clone)]
pub struct Stores {
    /// Virtual keys.
    pub keys: Arc<dyn KeyStore>,
    /// Budgets and the ledger.
    pub spend: Arc<dyn SpendStore>,
    /// The files API's metadata.
    pub files: Arc<dyn FileStore>,
    /// The Responses API's stored responses.
    pub responses: Arc<dyn ResponseStore>,
    /// The model admin API's models.
    pub models: Arc<dyn ModelStore>,
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`); any
/// other `database_url` is an SQLite file.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens the database at `url` with the system clock; see [`open_with_clock`].
pub async fn open(url: &str) -> Result<Stores, StoreError> {
    open_with_clock(url, Arc::new(SystemClock)).await
}

/// Opens the database at `url`, creating it if needed and running the embedded
/// migrations:
/// - `postgres://...` or `postgresql://...`: PostgreSQL (the database must exist; the
///   tables go to the connection's `search_path`, e.g. `?options=-c%20search_path%3Dx`);
/// - `sqlite:///abs/path.db`, `sqlite://rel/path.db`, `sqlite:path.db` or a bare path:
///   an SQLite file, created with its parent directories on first start.
pub async fn open_with_clock(url: &str, clock: Arc<dyn Clock>) -> Result<Stores, StoreError> {
    if is_postgres(url) {
        return postgres::open(url, clock).await;
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.contains("://") || path == ":memory:" {
        return Err(StoreError::Config(format!(
            "unsupported database url {:?}: use postgres://... or an SQLite file path",
            redact(url)
        )));
    }
    sqlite::open(std::path::Path::new(path), clock).await
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_owned(),
    }
}
