//! The SQLite backend: one file, WAL mode, `synchronous=FULL` (a committed settle
//! survives `SIGKILL` and power loss). Opening it creates the file and runs the
//! embedded migrations.
//!
//! Reservations and settlements are queued to one writer thread per handle
//! (`sqlite_writer.rs`: its own synchronous connection), which runs whatever is queued
//! as one transaction with one commit (group commit: under load, one `fsync` serves many
//! requests). Writers are serialised twice: a mutex inside the process (so writers
//! queue instead of spinning in SQLite's busy handler) and `BEGIN IMMEDIATE` across
//! processes
//! (the write lock is taken before the first read, so a check and the write that
//! depends on it can never interleave with another writer's). Readers never block.
//!
//! Each handle's owner id is held by an exclusive `flock` on `<db>.owners/<id>.lock`,
//! released by the kernel however the process ends; [`SpendStore::reconcile`] only
//! takes reservations whose owner lock it can take itself.

use std::collections::BTreeMap;
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
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row};
use tokio::sync::Mutex;

use super::clock::{day_string, Clock, DAY_MS};
use super::logic::{self, Prepared, ScopeRow};
use super::sqlite_writer::{Op, Writer};
use super::types::{
    GroupBy, LedgerEntry, LedgerFilter, Reservation, ReservationId, ReserveError, ScopeSpend,
    Settlement, SpendGroup, StoreError,
};
use super::{SpendStore, Stores};

/// Embedded migrations, applied in order; the version is the position + 1.
const MIGRATIONS: &[&str] = &[include_str!("../../migrations/sqlite/0001_init.sql")];

/// The columns of a ledger row, in [`read_entry`]'s order.
const LEDGER_COLUMNS: &str = "request_id, key_id, key_alias, model, deployment, prompt_tokens, \
     completion_tokens, cached_tokens, cost_nanos, status, started_at, ended_at";

/// An SQLite database: both stores over one pool.
#[derive(Clone)]
pub(super) struct SqliteStore(pub(super) Arc<Inner>);

pub(super) struct Inner {
    pub(super) pool: SqlitePool,
    pub(super) clock: Arc<dyn Clock>,
    /// Held by the one task of this handle that writes; see the module doc.
    pub(super) write: Arc<Mutex<()>>,
    /// Reservations and settlements queued for the writer thread (group commit, see
    /// `sqlite_writer.rs`).
    batch: std::sync::mpsc::Sender<Op>,
    owner: i64,
    owners_dir: PathBuf,
    /// Dropped (file removed, lock released) with the last handle.
    _owner_lock: OwnerLock,
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

    let mut dir = OsString::from(path.as_os_str());
    dir.push(".owners");
    let owners_dir = PathBuf::from(dir);
    let owner = rand::random::<i64>();
    let lock = OwnerLock::acquire(&owners_dir, owner)?;
    let write = Arc::new(Mutex::new(()));
    let writer = Writer::open(path, owner, Arc::clone(&clock), Arc::clone(&write))?;
    let (batch, queue) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("sqlite-writer".to_owned())
        .spawn(move || writer.run(queue))?;
    let inner = Arc::new(Inner {
        pool,
        clock,
        write,
        batch,
        owner,
        owners_dir,
        _owner_lock: lock,
    });
    let store = SqliteStore(inner);
    Ok(Stores {
        keys: Arc::new(store.clone()),
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

/// An exclusive lock on `<dir>/<owner>.lock`, held while the handle lives.
struct OwnerLock {
    path: PathBuf,
    _file: File,
}

fn owner_path(dir: &Path, owner: i64) -> PathBuf {
    dir.join(format!("{:016x}.lock", owner as u64))
}

impl OwnerLock {
    fn acquire(dir: &Path, owner: i64) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let path = owner_path(dir, owner);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        if !file.try_lock_exclusive()? {
            return Err(io::Error::other("owner id already locked"));
        }
        Ok(Self { path, _file: file })
    }
}

impl Drop for OwnerLock {
    fn drop(&mut self) {
        // Remove while still locked: whoever opens it later finds it gone (dead owner).
        let _ = fs::remove_file(&self.path);
    }
}

/// `Some(lock)` when `path`'s owner is dead: its lock file is gone (`Some(None)`) or we
/// could take its lock (held until the returned file is dropped).
fn dead_owner(path: &Path) -> io::Result<Option<Option<File>>> {
    match OpenOptions::new().write(true).open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Some(None)),
        Err(e) => Err(e),
        Ok(file) => Ok(file.try_lock_exclusive()?.then_some(Some(file))),
    }
}

async fn load_scope(
    conn: &mut SqliteConnection,
    scope: &str,
) -> Result<Option<ScopeRow>, StoreError> {
    let row = sqlx::query(
        "SELECT spent_nanos, reserved_nanos, limit_nanos, period, period_start
         FROM budget_scopes WHERE scope = ?",
    )
    .bind(scope)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok(ScopeRow {
            spent: r.try_get(0)?,
            reserved: r.try_get(1)?,
            limit: r.try_get(2)?,
            period: ScopeRow::period_from(r.try_get(3)?)?,
            period_start: r.try_get(4)?,
        })
    })
    .transpose()
}

async fn store_scope(
    conn: &mut SqliteConnection,
    scope: &str,
    row: &ScopeRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO budget_scopes
             (scope, limit_nanos, period, period_start, spent_nanos, reserved_nanos)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (scope) DO UPDATE SET
             limit_nanos = excluded.limit_nanos, period = excluded.period,
             period_start = excluded.period_start, spent_nanos = excluded.spent_nanos,
             reserved_nanos = excluded.reserved_nanos",
    )
    .bind(scope)
    .bind(row.limit)
    .bind(row.period.map(|p| p.to_string()))
    .bind(row.period_start)
    .bind(row.spent)
    .bind(row.reserved)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes a ledger row unless one exists for `reservation`; `true` when written.
async fn insert_entry(
    conn: &mut SqliteConnection,
    reservation: Option<i64>,
    e: &LedgerEntry,
    cost: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(&format!(
        "INSERT INTO spend_ledger (reservation_id, {LEDGER_COLUMNS})
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (reservation_id) DO NOTHING"
    ))
    .bind(reservation)
    .bind(&e.request_id)
    .bind(&e.key_id)
    .bind(&e.key_alias)
    .bind(&e.model)
    .bind(&e.deployment)
    .bind(logic::tokens_col(e.prompt_tokens))
    .bind(logic::tokens_col(e.completion_tokens))
    .bind(logic::tokens_col(e.cached_tokens))
    .bind(cost)
    .bind(i32::from(e.status))
    .bind(e.started_at)
    .bind(e.ended_at)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
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

impl Inner {
    async fn reconcile_now(&self) -> Result<u64, StoreError> {
        let owners: Vec<i64> =
            sqlx::query_scalar("SELECT DISTINCT owner FROM reservations WHERE owner <> ?")
                .bind(self.owner)
                .fetch_all(&self.pool)
                .await?;
        // Owners whose lock we could take; their files stay locked by us until the end.
        let mut dead = Vec::new();
        for owner in owners {
            let path = owner_path(&self.owners_dir, owner);
            if let Some(lock) = dead_owner(&path)? {
                dead.push((owner, path, lock));
            }
        }
        let mut taken = 0u64;
        if !dead.is_empty() {
            let _writer = self.write.lock().await;
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            let now = self.clock.now_ms();
            let mut deltas: BTreeMap<String, i64> = BTreeMap::new();
            for (owner, _, _) in &dead {
                let rows = sqlx::query(
                    "DELETE FROM reservations WHERE owner = ?
                     RETURNING id, request_id, amount_nanos, scopes, created_at",
                )
                .bind(owner)
                .fetch_all(&mut *tx)
                .await?;
                for r in rows {
                    let amount: i64 = r.try_get(2)?;
                    let names = logic::parse_names(&r.try_get::<String, _>(3)?)?;
                    for n in &names {
                        *deltas.entry(n.clone()).or_default() += amount;
                    }
                    let entry =
                        logic::orphan_entry(r.try_get(1)?, &names, amount, r.try_get(4)?, now);
                    insert_entry(&mut tx, Some(r.try_get(0)?), &entry, amount).await?;
                    taken += 1;
                }
            }
            for (name, amount) in &deltas {
                if let Some(row) = load_scope(&mut tx, name).await? {
                    let mut row = row.rolled_own(now);
                    row.settle(*amount, *amount);
                    store_scope(&mut tx, name, &row).await?;
                }
            }
            tx.commit().await?;
        }
        for (_, path, _lock) in dead {
            let _ = fs::remove_file(path);
        }
        self.sweep_owner_files();
        Ok(taken)
    }

    /// Removes lock files of dead owners that left no reservations.
    fn sweep_owner_files(&self) {
        let Ok(entries) = fs::read_dir(&self.owners_dir) else {
            return;
        };
        let mine = owner_path(&self.owners_dir, self.owner);
        for entry in entries.flatten() {
            let path = entry.path();
            if path != mine && path.extension().is_some_and(|e| e == "lock") {
                if let Ok(Some(Some(_lock))) = dead_owner(&path) {
                    let _ = fs::remove_file(&path);
                }
            }
        }
    }
}

/// Runs `f` on its own task so that a caller who goes away (a client disconnect
/// cancelling the request future) cannot abort a transaction half-way.
async fn detached<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
{
    tokio::spawn(f)
        .await
        .map_err(|e| StoreError::Io(io::Error::other(e.to_string())))?
}

#[async_trait]
impl SpendStore for SqliteStore {
    async fn reserve(&self, r: Reservation) -> Result<ReservationId, ReserveError> {
        let p = Prepared::new(&r)?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.0
            .batch
            .send(Op::Reserve {
                request_id: r.request_id,
                p,
                reply,
            })
            .map_err(|_| StoreError::Io(io::Error::other("the store writer has stopped")))?;
        rx.await
            .map_err(|_| StoreError::Io(io::Error::other("the store writer has stopped")))?
    }

    async fn settle(
        &self,
        id: ReservationId,
        entry: LedgerEntry,
    ) -> Result<Settlement, StoreError> {
        let cost = logic::amount_nanos(entry.cost_usd, "a cost")?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.0
            .batch
            .send(Op::Settle {
                id,
                entry,
                cost,
                reply,
            })
            .map_err(|_| StoreError::Io(io::Error::other("the store writer has stopped")))?;
        rx.await
            .map_err(|_| StoreError::Io(io::Error::other("the store writer has stopped")))?
    }

    async fn reconcile(&self) -> Result<u64, StoreError> {
        let inner = Arc::clone(&self.0);
        detached(async move { inner.reconcile_now().await }).await
    }

    async fn spent(&self, scope: &str) -> Result<ScopeSpend, StoreError> {
        let mut conn = self.0.pool.acquire().await?;
        let row = load_scope(&mut conn, scope).await?;
        let now = self.0.clock.now_ms();
        Ok(match row {
            None => ScopeSpend {
                scope: scope.to_owned(),
                spent_usd: 0.0,
                reserved_usd: 0.0,
                limit_usd: None,
                period: None,
                period_start: None,
            },
            Some(row) => {
                let row = row.rolled_own(now);
                ScopeSpend {
                    scope: scope.to_owned(),
                    spent_usd: logic::usd(row.spent),
                    reserved_usd: logic::usd(row.reserved),
                    limit_usd: Some(logic::limit_usd(row.limit)),
                    period: row.period,
                    period_start: row.period_start,
                }
            }
        })
    }

    async fn ledger(&self, filter: &LedgerFilter) -> Result<Vec<LedgerEntry>, StoreError> {
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
