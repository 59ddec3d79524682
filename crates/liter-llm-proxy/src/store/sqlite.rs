//! The SQLite backend: one file in WAL mode, owned by one gateway process.
//!
//! Budgets, reservations and settlements go through the spend book
//! (`sqlite_book.rs`): kept in memory, every reservation journalled before `reserve`
//! returns (`journal.rs`, beside the database as `<db>.journal/`), ledger rows and
//! scope counters committed by a writer thread in batches. Keys and ledger queries use
//! a small sqlx pool; ledger queries first wait for the writer, so they see every
//! settlement made before them.
//!
//! The handle holds an exclusive `flock` on `<db>.lock` for its whole life (the kernel
//! releases it however the process ends): a second gateway on the same file is refused
//! at start-up with a message pointing to PostgreSQL, the backend for several gateways.
//! Key writes and the book's commits are serialised by one mutex, so they queue instead
//! of spinning in SQLite's busy handler. Readers never block.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fs4::fs_std::FileExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row};
use tokio::sync::Mutex;

use super::clock::{day_string, Clock, DAY_MS};
use super::journal::Journal;
use super::logic::{self, Prepared};
use super::sqlite_book::{Book, Settle};
use super::types::{
    GroupBy, LedgerEntry, LedgerFilter, Reservation, ReservationId, ReserveError, ScopeSpend,
    Settlement, SpendGroup, StoreError,
};
use super::{SpendStore, Stores};

/// Embedded migrations, applied in order; the version is the position + 1.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_ledger_by_reservation.sql"),
    include_str!("../../migrations/sqlite/0003_cache_hit.sql"),
    include_str!("../../migrations/sqlite/0004_files.sql"),
    include_str!("../../migrations/sqlite/0005_responses.sql"),
    include_str!("../../migrations/sqlite/0006_key_tags.sql"),
    include_str!("../../migrations/sqlite/0007_models.sql"),
    include_str!("../../migrations/sqlite/0008_settled_marks.sql"),
];

/// The columns of a ledger row, in [`read_entry`]'s order.
const LEDGER_COLUMNS: &str = "request_id, key_id, key_alias, model, deployment, prompt_tokens, \
     completion_tokens, cached_tokens, cost_nanos, status, started_at, ended_at, cache_hit";

/// An SQLite database: both stores over one pool.
#[derive(Clone)]
pub(super) struct SqliteStore(pub(super) Arc<Inner>);

pub(super) struct Inner {
    pub(super) pool: SqlitePool,
    pub(super) clock: Arc<dyn Clock>,
    /// Held by whoever writes (key writes, the book's commits); see the module doc.
    pub(super) write: Arc<Mutex<()>>,
    book: Book,
    /// Reservations counted in full at start-up, reported by the first `reconcile`.
    replayed: std::sync::atomic::AtomicU64,
    /// Released (by the kernel, however the process ends) with the last handle.
    _lock: File,
}

pub(super) async fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Stores, StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    let options = SqliteConnectOptions::from_str("sqlite:")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    migrate(&pool).await?;

    let lock = lock_database(path)?;
    let (journal, leftover) = Journal::open(&beside(path, ".journal"))?;
    let write = Arc::new(Mutex::new(()));
    let conn = writer_connection(path)?;
    let (book, replayed) = Book::open(
        conn,
        journal,
        leftover,
        Arc::clone(&clock),
        Arc::clone(&write),
    )?;
    let inner = Arc::new(Inner {
        pool,
        clock,
        write,
        book,
        replayed: replayed.into(),
        _lock: lock,
    });
    let store = SqliteStore(inner);
    Ok(Stores {
        keys: Arc::new(store.clone()),
        files: Arc::new(store.clone()),
        responses: Arc::new(store.clone()),
        models: Arc::new(store.clone()),
        spend: Arc::new(store),
    })
}

async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS store_migrations (
             version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    let current: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM store_migrations")
        .fetch_one(&mut *tx)
        .await?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if current > known {
        return Err(StoreError::Config(format!(
            "the database schema (version {current}) is newer than this gateway (version {known})"
        )));
    }
    for (version, sql) in (1..)
        .zip(MIGRATIONS.iter())
        .skip(usize::try_from(current).unwrap_or(0))
    {
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO store_migrations (version, applied_at) VALUES (?, ?)")
            .bind(version)
            .bind(super::SystemClock.now_ms())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// `<db><suffix>`, next to the database.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut p = OsString::from(path.as_os_str());
    p.push(suffix);
    PathBuf::from(p)
}

/// Takes the exclusive lock on `<db>.lock`, or explains who has it.
fn lock_database(path: &Path) -> Result<File, StoreError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(beside(path, ".lock"))?;
    if !file.try_lock_exclusive()? {
        return Err(StoreError::Config(format!(
            "the SQLite database {} is in use by another gateway process; an SQLite store \
             serves one gateway: to share budgets and keys between gateways, set \
             general.database_url to a postgres:// URL",
            path.display()
        )));
    }
    Ok(file)
}

/// The book's own synchronous connection (rusqlite, over the same SQLite library as
/// sqlx).
fn writer_connection(path: &Path) -> Result<rusqlite::Connection, StoreError> {
    let db = |e: rusqlite::Error| StoreError::Io(io::Error::other(format!("sqlite: {e}")));
    let conn = rusqlite::Connection::open(path).map_err(db)?;
    conn.busy_timeout(Duration::from_secs(30)).map_err(db)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(db)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(db)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
    conn.set_prepared_statement_cache_capacity(16);
    Ok(conn)
}

fn read_entry(r: &SqliteRow) -> Result<LedgerEntry, StoreError> {
    Ok(LedgerEntry {
        request_id: r.try_get(0)?,
        key_id: r.try_get(1)?,
        key_alias: r.try_get(2)?,
        model: r.try_get(3)?,
        deployment: r.try_get(4)?,
        prompt_tokens: logic::count(r.try_get(5)?),
        completion_tokens: logic::count(r.try_get(6)?),
        cached_tokens: logic::count(r.try_get(7)?),
        cost_usd: logic::usd(r.try_get(8)?),
        status: u16::try_from(r.try_get::<i32, _>(9)?).unwrap_or(0),
        started_at: r.try_get(10)?,
        ended_at: r.try_get(11)?,
        cache_hit: r.try_get(12)?,
    })
}

fn push_filter(qb: &mut QueryBuilder<'_, sqlx::Sqlite>, f: &LedgerFilter) {
    qb.push(" WHERE 1 = 1");
    if let Some(k) = &f.key {
        qb.push(" AND (key_id = ").push_bind(k.clone());
        qb.push(" OR key_alias = ").push_bind(k.clone()).push(")");
    }
    if let Some(m) = &f.model {
        qb.push(" AND model = ").push_bind(m.clone());
    }
    if let Some(t) = f.since {
        qb.push(" AND started_at >= ").push_bind(t);
    }
    if let Some(t) = f.until {
        qb.push(" AND started_at < ").push_bind(t);
    }
}

#[async_trait]
impl SpendStore for SqliteStore {
    async fn reserve(&self, r: Reservation) -> Result<ReservationId, ReserveError> {
        let p = Prepared::new(&r)?;
        self.0.book.reserve(&r.request_id, p)
    }

    async fn settle(
        &self,
        id: ReservationId,
        entry: LedgerEntry,
    ) -> Result<Settlement, StoreError> {
        let cost = logic::amount_nanos(entry.cost_usd, "a cost")?;
        match self.0.book.settle(id, entry, cost) {
            Settle::Done(s) => Ok(s),
            Settle::Check(rx) => match rx.await {
                Ok(true) => Ok(Settlement::Unreserved),
                Ok(false) => Ok(Settlement::AlreadySettled),
                Err(_) => Err(StoreError::Io(io::Error::other(
                    "the spend writer has stopped",
                ))),
            },
        }
    }

    async fn reconcile(&self) -> Result<u64, StoreError> {
        // Done at open: this handle owns the database, so no other gateway can have
        // reservations in flight in it.
        Ok(self.0.replayed.swap(0, std::sync::atomic::Ordering::AcqRel))
    }

    async fn spent(&self, scope: &str) -> Result<ScopeSpend, StoreError> {
        Ok(self.0.book.spent(scope))
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.0.book.flush().await
    }

    fn instrument(&self, metrics: crate::metrics::SpendMetrics) {
        self.0.book.instrument(metrics);
    }

    fn set_ledger_rows(&self, on: bool) -> Result<(), StoreError> {
        self.0.book.set_ledger_rows(on);
        Ok(())
    }

    fn set_write_interval(&self, every: std::time::Duration) {
        self.0.book.set_write_interval(every);
    }

    async fn ledger(&self, filter: &LedgerFilter) -> Result<Vec<LedgerEntry>, StoreError> {
        self.0.book.flush().await?;
        let mut qb = QueryBuilder::new(format!("SELECT {LEDGER_COLUMNS} FROM spend_ledger"));
        push_filter(&mut qb, filter);
        let limit = filter.limit.map_or(-1, logic::tokens_col);
        qb.push(" ORDER BY started_at DESC, id DESC LIMIT ")
            .push_bind(limit);
        qb.push(" OFFSET ")
            .push_bind(logic::tokens_col(filter.offset));
        let rows = qb.build().fetch_all(&self.0.pool).await?;
        rows.iter().map(read_entry).collect()
    }

    async fn total(&self, filter: &LedgerFilter) -> Result<f64, StoreError> {
        self.0.book.flush().await?;
        let mut qb = QueryBuilder::new("SELECT COALESCE(SUM(cost_nanos), 0) FROM spend_ledger");
        push_filter(&mut qb, filter);
        let nanos: i64 = qb.build_query_scalar().fetch_one(&self.0.pool).await?;
        Ok(logic::usd(nanos))
    }

    async fn grouped(
        &self,
        by: GroupBy,
        filter: &LedgerFilter,
    ) -> Result<Vec<SpendGroup>, StoreError> {
        self.0.book.flush().await?;
        let (group, order) = match by {
            GroupBy::Key => (
                "COALESCE(key_id, key_alias, '')".to_owned(),
                "cost DESC, g ASC",
            ),
            GroupBy::Model => ("model".to_owned(), "cost DESC, g ASC"),
            GroupBy::Day => (
                format!("CAST(started_at / {DAY_MS} AS TEXT)"),
                "MIN(started_at) ASC",
            ),
        };
        let mut qb = QueryBuilder::new(format!(
            "SELECT {group} AS g, COALESCE(SUM(cost_nanos), 0) AS cost, COUNT(*),
                    COALESCE(SUM(prompt_tokens + completion_tokens), 0)
             FROM spend_ledger"
        ));
        push_filter(&mut qb, filter);
        qb.push(format!(" GROUP BY g ORDER BY {order}"));
        let rows = qb.build().fetch_all(&self.0.pool).await?;
        rows.iter()
            .map(|r| {
                let g: String = r.try_get(0)?;
                let group = match by {
                    GroupBy::Day => day_string(
                        g.parse()
                            .map_err(|_| StoreError::Corrupt(format!("day bucket {g:?}")))?,
                    ),
                    _ => g,
                };
                Ok(SpendGroup {
                    group,
                    cost_usd: logic::usd(r.try_get(1)?),
                    requests: logic::count(r.try_get(2)?),
                    tokens: logic::count(r.try_get(3)?),
                })
            })
            .collect()
    }
}
