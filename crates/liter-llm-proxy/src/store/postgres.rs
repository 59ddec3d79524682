//! The PostgreSQL backend, for several gateways sharing one database.
//!
//! Transactions run at READ COMMITTED with explicit row locks: every scope row a
//! reservation, settle or reconcile touches is locked (upsert `ON CONFLICT DO UPDATE`
//! or `SELECT .. FOR UPDATE`) in scope-name order before it is read, so the value read
//! is the latest committed one, the check and the write cannot interleave with another
//! transaction's, and lock waits never form a cycle. No serialization retries needed.
//!
//! Each handle holds a session advisory lock on its random owner id on a dedicated
//! connection; the server drops it when that connection dies, however the process ends.
//! [`SpendStore::reconcile`] takes a dead owner's reservations only inside a transaction
//! that holds that same lock (`pg_try_advisory_xact_lock`). The server notices a dead
//! peer's closed socket a moment after it dies, so a reconcile right at start-up may
//! not see it yet: run reconcile periodically too. Should the lock connection of a live
//! gateway break, a peer's reconcile counts that gateway's reservations in full and its
//! later settles become no-ops: spend is then over-counted, never under-counted.

use std::collections::BTreeMap;
use std::io;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, QueryBuilder, Row};

use super::clock::{day_string, Clock, DAY_MS};
use super::logic::{self, Prepared, ScopeRow};
use super::types::{
    GroupBy, LedgerEntry, LedgerFilter, Reservation, ReservationId, ReserveError, ScopeSpend,
    Settlement, SpendGroup, StoreError,
};
use super::{SpendStore, Stores};

/// Embedded migrations, applied in order; the version is the position + 1.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_cache_hit.sql"),
    include_str!("../../migrations/postgres/0003_files.sql"),
    include_str!("../../migrations/postgres/0004_responses.sql"),
    include_str!("../../migrations/postgres/0005_key_tags.sql"),
    include_str!("../../migrations/postgres/0006_models.sql"),
];

/// The longest a query waits for a connection (the pool's are busy, or the database
/// refuses new ones) before it fails.
pub(super) const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The advisory lock (two-key form, apart from owner ids) that serialises migrations.
const MIGRATION_LOCK: (i32, i32) = (0x4c4c_4d00, 1);

const LEDGER_COLUMNS: &str = "request_id, key_id, key_alias, model, deployment, prompt_tokens, \
     completion_tokens, cached_tokens, cost_nanos, status, started_at, ended_at, cache_hit";

const SCOPE_COLUMNS: &str = "spent_nanos, reserved_nanos, limit_nanos, period, period_start";

/// A PostgreSQL database: both stores over one pool.
#[derive(Clone)]
pub(super) struct PgStore(pub(super) Arc<Inner>);

pub(super) struct Inner {
    pub(super) pool: PgPool,
    pub(super) clock: Arc<dyn Clock>,
    owner: i64,
    /// Dropped with the handle: the task holding this handle's owner lock then closes
    /// its connection (the lock is released).
    _owner_guard: tokio::sync::oneshot::Sender<()>,
    /// Whether the owner lock's connection works (see [`hold_owner_lock`]).
    reachable: Arc<std::sync::atomic::AtomicBool>,
    /// `/metrics`' view of the settlements in flight and their writes, once instrumented.
    metrics: std::sync::OnceLock<crate::metrics::SpendMetrics>,
    /// `general.disable_spend_logs`: settlements write no ledger row (a reservation
    /// reconcile counts in full still gets its status-0 row: the record of a crash).
    /// The scopes do not need them here: a reservation row is deleted in the very
    /// transaction that settles its scopes, so it is what makes a settle happen once.
    no_ledger: std::sync::atomic::AtomicBool,
}

pub(super) async fn open(url: &str, clock: Arc<dyn Clock>) -> Result<Stores, StoreError> {
    let options = PgConnectOptions::from_str(url)?;
    let pool = PgPoolOptions::new()
        .max_connections(16)
        // A database that went away fails a request in 10 seconds, not after sqlx's
        // default 30 (which keeps retrying a refused connection until then).
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.clone())
        .await?;
    migrate(&pool).await?;
    let owner = rand::random::<i64>();
    let owner_conn = lock_owner(&options, owner).await?;
    let (guard, dropped) = tokio::sync::oneshot::channel();
    let reachable = Arc::new(std::sync::atomic::AtomicBool::new(true));
    tokio::spawn(hold_owner_lock(
        options,
        owner,
        owner_conn,
        dropped,
        reachable.clone(),
    ));
    let store = PgStore(Arc::new(Inner {
        pool,
        clock,
        owner,
        _owner_guard: guard,
        reachable,
        metrics: std::sync::OnceLock::new(),
        no_ledger: std::sync::atomic::AtomicBool::new(false),
    }));
    Ok(Stores {
        keys: Arc::new(store.clone()),
        files: Arc::new(store.clone()),
        responses: Arc::new(store.clone()),
        models: Arc::new(store.clone()),
        spend: Arc::new(store),
    })
}

/// A connection holding the session advisory lock on `owner`.
async fn lock_owner(options: &PgConnectOptions, owner: i64) -> Result<PgConnection, sqlx::Error> {
    let mut conn = PgConnection::connect_with(options).await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(owner)
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

/// How often the owner lock's connection is checked.
const OWNER_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Keeps the owner lock for the handle's life: checks its connection every
/// [`OWNER_CHECK`] and, when it broke (the database restarted or was unreachable),
/// takes the lock again on a new one, so that once the database is back a peer's
/// reconcile leaves this live handle's reservations alone again. `reachable` says
/// whether the connection works (a broken one: the database is unreachable until a new
/// one is made). Ends, closing the connection and so releasing the lock, when the
/// handle is dropped.
async fn hold_owner_lock(
    options: PgConnectOptions,
    owner: i64,
    conn: PgConnection,
    mut dropped: tokio::sync::oneshot::Receiver<()>,
    reachable: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    let mut conn = Some(conn);
    let mut tick = tokio::time::interval(OWNER_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut dropped => return,
            _ = tick.tick() => {}
        }
        let alive = match conn.as_mut() {
            Some(c) => c.ping().await.is_ok(),
            None => false,
        };
        if alive {
            continue;
        }
        if reachable.swap(false, Ordering::AcqRel) {
            tracing::error!("the spend store (PostgreSQL) is unreachable: requests no budget applies to are served and their spend is buffered in memory; budgeted requests get 503");
        }
        conn = None;
        let relock = tokio::select! {
            _ = &mut dropped => return,
            r = tokio::time::timeout(ACQUIRE_TIMEOUT, lock_owner(&options, owner)) => r,
        };
        if let Ok(Ok(c)) = relock {
            tracing::warn!(
                "the spend store's owner lock was lost with its connection and is held again"
            );
            conn = Some(c);
            reachable.store(true, Ordering::Release);
        }
    }
}

async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(MIGRATION_LOCK.0)
        .bind(MIGRATION_LOCK.1)
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS store_migrations (
             version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    let current: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0)::BIGINT FROM store_migrations")
            .fetch_one(&mut *tx)
            .await?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if current > known {
        return Err(StoreError::Config(format!(
            "the database schema (version {current}) is newer than this gateway (version {known})"
        )));
    }
    for (version, sql) in (1i64..)
        .zip(MIGRATIONS.iter())
        .skip(usize::try_from(current).unwrap_or(0))
    {
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO store_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(version)
            .bind(super::SystemClock.now_ms())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn read_scope(r: &PgRow) -> Result<ScopeRow, StoreError> {
    Ok(ScopeRow {
        spent: r.try_get(0)?,
        reserved: r.try_get(1)?,
        limit: r.try_get(2)?,
        period: ScopeRow::period_from(r.try_get(3)?)?,
        period_start: r.try_get(4)?,
    })
}

/// Locks and reads a scope row that may not exist yet (created with `limit`).
async fn lock_or_create_scope(
    conn: &mut PgConnection,
    scope: &str,
    limit: i64,
) -> Result<ScopeRow, StoreError> {
    let row = sqlx::query(&format!(
        "INSERT INTO budget_scopes (scope, limit_nanos) VALUES ($1, $2)
         ON CONFLICT (scope) DO UPDATE SET limit_nanos = budget_scopes.limit_nanos
         RETURNING {SCOPE_COLUMNS}"
    ))
    .bind(scope)
    .bind(limit)
    .fetch_one(&mut *conn)
    .await?;
    read_scope(&row)
}

/// Locks and reads an existing scope row.
async fn lock_scope(conn: &mut PgConnection, scope: &str) -> Result<Option<ScopeRow>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {SCOPE_COLUMNS} FROM budget_scopes WHERE scope = $1 FOR UPDATE"
    ))
    .bind(scope)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(read_scope).transpose()
}

async fn store_scope(
    conn: &mut PgConnection,
    scope: &str,
    row: &ScopeRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE budget_scopes SET limit_nanos = $2, period = $3, period_start = $4,
             spent_nanos = $5, reserved_nanos = $6
         WHERE scope = $1",
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

/// Releases `reserved` and adds `cost` in each scope, locking them in name order.
async fn settle_scopes(
    conn: &mut PgConnection,
    deltas: &BTreeMap<String, (i64, i64)>,
    now: i64,
) -> Result<(), StoreError> {
    for (name, (reserved, cost)) in deltas {
        if let Some(row) = lock_scope(conn, name).await? {
            let mut row = row.rolled_own(now);
            row.settle(*reserved, *cost);
            store_scope(conn, name, &row).await?;
        }
    }
    Ok(())
}

/// Writes a ledger row unless one exists for `reservation`; `true` when written.
async fn insert_entry(
    conn: &mut PgConnection,
    reservation: Option<i64>,
    e: &LedgerEntry,
    cost: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(&format!(
        "INSERT INTO spend_ledger (reservation_id, {LEDGER_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
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
    .bind(e.cache_hit)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

fn read_entry(r: &PgRow) -> Result<LedgerEntry, StoreError> {
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

fn push_filter(qb: &mut QueryBuilder<'_, sqlx::Postgres>, f: &LedgerFilter) {
    qb.push(" WHERE TRUE");
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

fn parse_reservation(r: &PgRow) -> Result<(i64, Vec<String>), StoreError> {
    Ok((
        r.try_get(0)?,
        logic::parse_names(&r.try_get::<String, _>(1)?)?,
    ))
}

impl Inner {
    async fn reserve_now(&self, r: Reservation) -> Result<ReservationId, ReserveError> {
        let p = Prepared::new(&r)?;
        let names = p.names_json()?;
        let mut tx = self.pool.begin().await?;
        let now = self.clock.now_ms();
        let mut rows = Vec::with_capacity(p.scopes.len());
        for s in &p.scopes {
            let row = lock_or_create_scope(&mut tx, &s.name, s.limit).await?;
            match row.hold(s, p.amount, now) {
                Ok(row) => rows.push(row),
                Err(refused) => {
                    tx.rollback().await?;
                    return Err(refused);
                }
            }
        }
        for (s, row) in p.scopes.iter().zip(&rows) {
            store_scope(&mut tx, &s.name, row).await?;
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO reservations (request_id, owner, amount_nanos, scopes, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(&r.request_id)
        .bind(self.owner)
        .bind(p.amount)
        .bind(names)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ReservationId(id))
    }

    /// Undoes a reservation nobody will settle (its caller went away): no ledger row.
    async fn release(&self, id: ReservationId) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let res =
            sqlx::query("DELETE FROM reservations WHERE id = $1 RETURNING amount_nanos, scopes")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(res) = res {
            let (amount, names) = parse_reservation(&res)?;
            let deltas = names.into_iter().map(|n| (n, (amount, 0))).collect();
            settle_scopes(&mut tx, &deltas, self.clock.now_ms()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn settle_now(
        &self,
        id: ReservationId,
        entry: LedgerEntry,
    ) -> Result<Settlement, StoreError> {
        let cost = logic::amount_nanos(entry.cost_usd, "a cost")?;
        let mut tx = self.pool.begin().await?;
        // Deleting locks the reservation row: a concurrent settle of the same id waits
        // here, then finds it gone and the ledger row present.
        let res =
            sqlx::query("DELETE FROM reservations WHERE id = $1 RETURNING amount_nanos, scopes")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
        let no_ledger = self.no_ledger.load(std::sync::atomic::Ordering::Relaxed);
        let outcome = match res {
            // Without ledger rows an id that is not reserved cannot be told from one
            // settled (or reconciled) before; either way nothing is to change.
            None if no_ledger => Settlement::AlreadySettled,
            None => {
                if insert_entry(&mut tx, Some(id.0), &entry, cost).await? {
                    Settlement::Unreserved
                } else {
                    Settlement::AlreadySettled
                }
            }
            Some(res) => {
                let (amount, names) = parse_reservation(&res)?;
                let deltas = names.into_iter().map(|n| (n, (amount, cost))).collect();
                settle_scopes(&mut tx, &deltas, self.clock.now_ms()).await?;
                if !no_ledger {
                    insert_entry(&mut tx, Some(id.0), &entry, cost).await?;
                }
                Settlement::Applied
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn reconcile_now(&self) -> Result<u64, StoreError> {
        let owners: Vec<i64> =
            sqlx::query_scalar("SELECT DISTINCT owner FROM reservations WHERE owner <> $1")
                .bind(self.owner)
                .fetch_all(&self.pool)
                .await?;
        let mut taken = 0u64;
        for owner in owners {
            let mut tx = self.pool.begin().await?;
            let dead: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(owner)
                .fetch_one(&mut *tx)
                .await?;
            if !dead {
                tx.rollback().await?;
                continue;
            }
            let rows = sqlx::query(
                "DELETE FROM reservations WHERE owner = $1
                 RETURNING amount_nanos, scopes, id, request_id, created_at",
            )
            .bind(owner)
            .fetch_all(&mut *tx)
            .await?;
            let now = self.clock.now_ms();
            let mut deltas: BTreeMap<String, (i64, i64)> = BTreeMap::new();
            for r in &rows {
                let (amount, names) = parse_reservation(r)?;
                for n in &names {
                    let d = deltas.entry(n.clone()).or_default();
                    d.0 = d.0.saturating_add(amount);
                    d.1 = d.1.saturating_add(amount);
                }
                let entry = logic::orphan_entry(r.try_get(3)?, &names, amount, r.try_get(4)?, now);
                insert_entry(&mut tx, Some(r.try_get(2)?), &entry, amount).await?;
                taken += 1;
            }
            settle_scopes(&mut tx, &deltas, now).await?;
            tx.commit().await?;
        }
        Ok(taken)
    }
}

/// Runs `f` on its own task so that a caller who goes away cannot abort it half-way.
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
impl SpendStore for PgStore {
    async fn reserve(&self, r: Reservation) -> Result<ReservationId, ReserveError> {
        let inner = Arc::clone(&self.0);
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let result = inner.reserve_now(r).await;
            // The caller is gone: give the reservation back instead of leaking it.
            if let Err(Ok(id)) = tx.send(result) {
                if let Err(e) = inner.release(id).await {
                    tracing::warn!(error = %e, "could not release an abandoned reservation");
                }
            }
        });
        rx.await
            .map_err(|_| StoreError::Io(io::Error::other("reservation task failed")))?
    }

    async fn settle(
        &self,
        id: ReservationId,
        entry: LedgerEntry,
    ) -> Result<Settlement, StoreError> {
        let inner = Arc::clone(&self.0);
        detached(async move {
            let Some(m) = inner.metrics.get().cloned() else {
                return inner.settle_now(id, entry).await;
            };
            m.queued.inc();
            let started = std::time::Instant::now();
            let settled = inner.settle_now(id, entry).await;
            m.write.observe(started.elapsed().as_secs_f64());
            m.queued.dec();
            settled
        })
        .await
    }

    fn instrument(&self, metrics: crate::metrics::SpendMetrics) {
        let _ = self.0.metrics.set(metrics);
    }

    fn set_ledger_rows(&self, on: bool) -> Result<(), StoreError> {
        self.0
            .no_ledger
            .store(!on, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn reachable(&self) -> bool {
        self.0.reachable.load(std::sync::atomic::Ordering::Acquire)
    }

    async fn reconcile(&self) -> Result<u64, StoreError> {
        let inner = Arc::clone(&self.0);
        detached(async move { inner.reconcile_now().await }).await
    }

    async fn spent(&self, scope: &str) -> Result<ScopeSpend, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SCOPE_COLUMNS} FROM budget_scopes WHERE scope = $1"
        ))
        .bind(scope)
        .fetch_optional(&self.0.pool)
        .await?;
        let row = row.as_ref().map(read_scope).transpose()?;
        Ok(ScopeRow::spend(row, scope, self.0.clock.now_ms()))
    }

    async fn ledger(&self, filter: &LedgerFilter) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut qb = QueryBuilder::new(format!("SELECT {LEDGER_COLUMNS} FROM spend_ledger"));
        push_filter(&mut qb, filter);
        qb.push(" ORDER BY started_at DESC, id DESC");
        if let Some(limit) = filter.limit {
            qb.push(" LIMIT ").push_bind(logic::tokens_col(limit));
        }
        qb.push(" OFFSET ")
            .push_bind(logic::tokens_col(filter.offset));
        let rows = qb.build().fetch_all(&self.0.pool).await?;
        rows.iter().map(read_entry).collect()
    }

    async fn total(&self, filter: &LedgerFilter) -> Result<f64, StoreError> {
        let mut qb =
            QueryBuilder::new("SELECT COALESCE(SUM(cost_nanos), 0)::BIGINT FROM spend_ledger");
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
                format!("(started_at / {DAY_MS})::TEXT"),
                "MIN(started_at) ASC",
            ),
        };
        let mut qb = QueryBuilder::new(format!(
            "SELECT {group} AS g, COALESCE(SUM(cost_nanos), 0)::BIGINT AS cost, COUNT(*),
                    COALESCE(SUM(prompt_tokens + completion_tokens), 0)::BIGINT
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
