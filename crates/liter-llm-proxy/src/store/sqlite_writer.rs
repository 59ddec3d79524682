//! The SQLite write path for reservations and settlements: one OS thread per store
//! handle owning a synchronous connection (rusqlite over the same `libsqlite3-sys` as
//! sqlx, so one SQLite library), fed by a queue.
//!
//! Each turn takes everything queued (up to [`MAX_BATCH`]) and runs it as one
//! `BEGIN IMMEDIATE` transaction with one commit (group commit: one `fsync` serves the
//! whole batch), then answers each caller. Inside the batch, operations apply in queue
//! order with the same check as `logic.rs`; every scope row the batch touches is read
//! once, kept in memory while the batch runs and written back once before the commit,
//! so a batch costs one or two cached prepared statements per operation plus two per
//! scope, all on this thread (no per-statement hand-off to a worker thread).
//!
//! Invariants (see `store/mod.rs`): the write lock is taken before the first read, so
//! the checks and writes of a batch never interleave with another writer's, in this
//! process (the handle's write mutex, held for the whole batch) or another one
//! (`BEGIN IMMEDIATE`). Nobody hears back before the commit, so a reservation is
//! durable (`synchronous=FULL`) when `reserve` returns. A database failure fails every
//! operation of the batch, and none of them took effect. A caller that went away before
//! its reservation was answered gets it released in the next batch (no ledger row).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{oneshot, Mutex};

use super::clock::Clock;
use super::logic::{self, Prepared, ScopeRow};
use super::types::{LedgerEntry, ReservationId, ReserveError, Settlement, StoreError};

/// Most operations one transaction takes.
pub(super) const MAX_BATCH: usize = 256;

/// A write waiting for the writer thread.
pub(super) enum Op {
    Reserve {
        request_id: String,
        p: Prepared,
        reply: oneshot::Sender<Result<ReservationId, ReserveError>>,
    },
    Settle {
        id: ReservationId,
        entry: LedgerEntry,
        cost: i64,
        reply: oneshot::Sender<Result<Settlement, StoreError>>,
    },
}

enum Outcome {
    Reserve(Result<ReservationId, ReserveError>),
    Settle(Settlement),
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Io(io::Error::other(format!("sqlite: {e}")))
}

const LOAD_SCOPE: &str = "SELECT spent_nanos, reserved_nanos, limit_nanos, period, period_start
     FROM budget_scopes WHERE scope = ?1";
const STORE_SCOPE: &str = "INSERT INTO budget_scopes
         (scope, limit_nanos, period, period_start, spent_nanos, reserved_nanos)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
     ON CONFLICT (scope) DO UPDATE SET
         limit_nanos = excluded.limit_nanos, period = excluded.period,
         period_start = excluded.period_start, spent_nanos = excluded.spent_nanos,
         reserved_nanos = excluded.reserved_nanos";
const INSERT_RESERVATION: &str =
    "INSERT INTO reservations (request_id, owner, amount_nanos, scopes, created_at)
     VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id";
const TAKE_RESERVATION: &str =
    "DELETE FROM reservations WHERE id = ?1 RETURNING amount_nanos, scopes";
const INSERT_ENTRY: &str = "INSERT INTO spend_ledger (reservation_id, request_id, key_id,
         key_alias, model, deployment, prompt_tokens, completion_tokens, cached_tokens,
         cost_nanos, status, started_at, ended_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
     ON CONFLICT (reservation_id) DO NOTHING";

/// The writer thread's state.
pub(super) struct Writer {
    conn: Connection,
    owner: i64,
    clock: Arc<dyn Clock>,
    /// The handle's write mutex (see `sqlite.rs`), held for each batch.
    write: Arc<Mutex<()>>,
}

impl Writer {
    /// Opens the writer's connection to the (already migrated) database at `path`.
    pub(super) fn open(
        path: &Path,
        owner: i64,
        clock: Arc<dyn Clock>,
        write: Arc<Mutex<()>>,
    ) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        conn.set_prepared_statement_cache_capacity(16);
        Ok(Self {
            conn,
            owner,
            clock,
            write,
        })
    }

    /// Runs batches until the queue closes (the store handle is dropped) and nothing is
    /// left to release.
    pub(super) fn run(mut self, queue: Receiver<Op>) {
        let mut ops = Vec::with_capacity(MAX_BATCH);
        let mut releases = Vec::new();
        loop {
            if releases.is_empty() {
                match queue.recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => return,
                }
            }
            while ops.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            self.run_batch(&mut ops, &mut releases);
        }
    }

    /// Runs `ops` (and the releases of abandoned reservations) in one transaction,
    /// then answers each op. Reservations whose caller is gone go to `releases`.
    fn run_batch(&mut self, ops: &mut Vec<Op>, releases: &mut Vec<i64>) {
        let write = Arc::clone(&self.write);
        let _writer = write.blocking_lock();
        let now = self.clock.now_ms();
        let pending = std::mem::take(releases);
        match self.apply(ops, &pending, now) {
            Ok(outcomes) => {
                for (op, outcome) in ops.drain(..).zip(outcomes) {
                    match (op, outcome) {
                        (Op::Reserve { reply, .. }, Outcome::Reserve(r)) => {
                            // The caller is gone: give the reservation back next turn.
                            if let Err(Ok(id)) = reply.send(r) {
                                releases.push(id.0);
                            }
                        }
                        (Op::Settle { reply, .. }, Outcome::Settle(s)) => {
                            let _ = reply.send(Ok(s));
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => {
                if !pending.is_empty() {
                    tracing::warn!(error = %e, "could not release abandoned reservations");
                }
                let message = e.to_string();
                let failed = || StoreError::Io(io::Error::other(message.clone()));
                for op in ops.drain(..) {
                    match op {
                        Op::Reserve { reply, .. } => {
                            let _ = reply.send(Err(ReserveError::Store(failed())));
                        }
                        Op::Settle { reply, .. } => {
                            let _ = reply.send(Err(failed()));
                        }
                    }
                }
            }
        }
    }

    fn apply(
        &mut self,
        ops: &[Op],
        releases: &[i64],
        now: i64,
    ) -> Result<Vec<Outcome>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let mut batch = Batch {
            tx: &tx,
            owner: self.owner,
            now,
            scopes: HashMap::new(),
        };
        for &id in releases {
            batch.release(id)?;
        }
        let mut outcomes = Vec::with_capacity(ops.len());
        for op in ops {
            outcomes.push(match op {
                Op::Reserve { request_id, p, .. } => {
                    Outcome::Reserve(batch.reserve(request_id, p)?)
                }
                Op::Settle {
                    id, entry, cost, ..
                } => Outcome::Settle(batch.settle(*id, entry, *cost)?),
            });
        }
        batch.flush()?;
        tx.commit().map_err(db)?;
        Ok(outcomes)
    }
}

/// A scope row as the batch sees it: `None` when it does not exist (yet).
struct Cached {
    row: Option<ScopeRow>,
    dirty: bool,
}

/// One batch's transaction and the scope rows it has read or changed.
struct Batch<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    owner: i64,
    now: i64,
    scopes: HashMap<String, Cached>,
}

impl Batch<'_> {
    /// The scope row as of this point in the batch.
    fn scope(&mut self, name: &str) -> Result<Option<ScopeRow>, StoreError> {
        if let Some(c) = self.scopes.get(name) {
            return Ok(c.row.clone());
        }
        let raw = self
            .tx
            .prepare_cached(LOAD_SCOPE)
            .map_err(db)?
            .query_row([name], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })
            .optional()
            .map_err(db)?;
        let row = raw
            .map(|(spent, reserved, limit, period, period_start)| {
                Ok::<_, StoreError>(ScopeRow {
                    spent,
                    reserved,
                    limit,
                    period: ScopeRow::period_from(period)?,
                    period_start,
                })
            })
            .transpose()?;
        self.scopes.insert(
            name.to_owned(),
            Cached {
                row: row.clone(),
                dirty: false,
            },
        );
        Ok(row)
    }

    /// Replaces a scope row (written back by [`Batch::flush`]).
    fn put(&mut self, name: &str, row: ScopeRow) {
        match self.scopes.entry(name.to_owned()) {
            Entry::Occupied(mut e) => {
                let c = e.get_mut();
                c.row = Some(row);
                c.dirty = true;
            }
            Entry::Vacant(e) => {
                e.insert(Cached {
                    row: Some(row),
                    dirty: true,
                });
            }
        }
    }

    /// Writes back every changed scope row.
    fn flush(&mut self) -> Result<(), StoreError> {
        let mut stmt = self.tx.prepare_cached(STORE_SCOPE).map_err(db)?;
        for (name, c) in &self.scopes {
            if let (true, Some(row)) = (c.dirty, &c.row) {
                stmt.execute(params![
                    name,
                    row.limit,
                    row.period.map(|p| p.to_string()),
                    row.period_start,
                    row.spent,
                    row.reserved,
                ])
                .map_err(db)?;
            }
        }
        Ok(())
    }

    /// One reservation. `Ok(Err(OverBudget))` changed nothing.
    fn reserve(
        &mut self,
        request_id: &str,
        p: &Prepared,
    ) -> Result<Result<ReservationId, ReserveError>, StoreError> {
        let mut rows = Vec::with_capacity(p.scopes.len());
        for s in &p.scopes {
            let mut row = self
                .scope(&s.name)?
                .unwrap_or_else(|| ScopeRow::fresh(s.limit))
                .rolled(s.period, self.now);
            row.limit = s.limit;
            if let Err(left) = row.check(p.amount, s.limit) {
                return Ok(Err(ReserveError::OverBudget {
                    scope: s.name.clone(),
                    limit_usd: logic::limit_usd(s.limit),
                    remaining_usd: logic::usd(left),
                }));
            }
            row.reserved = row.reserved.saturating_add(p.amount);
            rows.push(row);
        }
        let id: i64 = self
            .tx
            .prepare_cached(INSERT_RESERVATION)
            .map_err(db)?
            .query_row(
                params![request_id, self.owner, p.amount, p.names_json()?, self.now],
                |r| r.get(0),
            )
            .map_err(db)?;
        for (s, row) in p.scopes.iter().zip(rows) {
            self.put(&s.name, row);
        }
        Ok(Ok(ReservationId(id)))
    }

    /// Deletes a reservation; its amount and scope names when it existed.
    fn take(&mut self, id: i64) -> Result<Option<(i64, Vec<String>)>, StoreError> {
        let res = self
            .tx
            .prepare_cached(TAKE_RESERVATION)
            .map_err(db)?
            .query_row([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .optional()
            .map_err(db)?;
        res.map(|(amount, names)| Ok((amount, logic::parse_names(&names)?)))
            .transpose()
    }

    /// Undoes a reservation nobody will settle (its caller went away): no ledger row.
    fn release(&mut self, id: i64) -> Result<(), StoreError> {
        if let Some((amount, names)) = self.take(id)? {
            for name in names {
                if let Some(mut row) = self.scope(&name)? {
                    row.settle(amount, 0);
                    self.put(&name, row);
                }
            }
        }
        Ok(())
    }

    /// One settlement.
    fn settle(
        &mut self,
        id: ReservationId,
        entry: &LedgerEntry,
        cost: i64,
    ) -> Result<Settlement, StoreError> {
        let Some((amount, names)) = self.take(id.0)? else {
            return Ok(if self.insert_entry(id.0, entry, cost)? {
                Settlement::Unreserved
            } else {
                Settlement::AlreadySettled
            });
        };
        for name in names {
            if let Some(row) = self.scope(&name)? {
                let mut row = row.rolled_own(self.now);
                row.settle(amount, cost);
                self.put(&name, row);
            }
        }
        self.insert_entry(id.0, entry, cost)?;
        Ok(Settlement::Applied)
    }

    /// Writes a ledger row unless one exists for `reservation`; `true` when written.
    fn insert_entry(
        &mut self,
        reservation: i64,
        e: &LedgerEntry,
        cost: i64,
    ) -> Result<bool, StoreError> {
        let n = self
            .tx
            .prepare_cached(INSERT_ENTRY)
            .map_err(db)?
            .execute(params![
                reservation,
                e.request_id,
                e.key_id,
                e.key_alias,
                e.model,
                e.deployment,
                logic::tokens_col(e.prompt_tokens),
                logic::tokens_col(e.completion_tokens),
                logic::tokens_col(e.cached_tokens),
                cost,
                i32::from(e.status),
                e.started_at,
                e.ended_at,
            ])
            .map_err(db)?;
        Ok(n > 0)
    }
}
