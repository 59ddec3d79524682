//! The SQLite store's spend book: budgets, reservations and settlements of the one
//! gateway that owns the database, kept in memory, journalled, and written to SQLite
//! in the background.
//!
//! - **Reserve** checks and holds the amount in every scope under one mutex (so the
//!   check-and-hold is atomic between tasks) and appends the reservation to the journal
//!   (`journal.rs`: one `write`) before it returns: from then on the reservation
//!   survives `SIGKILL`.
//! - **Settle** releases the reservation, adds the cost to its scopes and queues the
//!   ledger row, in memory; nothing waits for the disk.
//! - **The writer thread**, while there is work, syncs the journal (`fdatasync`) every
//!   [`TURN`] and, every write interval ([`COMMIT_EVERY`] unless
//!   `general.spend_write_interval_secs` sets it), when [`MAX_WAITING`] rows wait, or
//!   when a flush is asked for, commits in one
//!   transaction the queued ledger rows and the scope rows as they stood when it took
//!   them (taken together under the mutex, so the committed spend is exactly the sum of
//!   the committed rows). A journal segment is deleted once every reservation in it has
//!   its ledger row (or mark, below) committed.
//!
//! With the ledger rows off (`general.disable_spend_logs`), a settlement commits a mark
//! (`settled_marks`: its reservation id) instead of its row, in the same transaction as
//! the scopes, so it proves the same thing; a mark goes once its reservation's journal
//! segment is deleted (all but the newest, which keeps the ids from being reused): the
//! next commit that writes marks deletes those below the oldest segment still on disk.
//!
//! At start-up, [`replay`] counts in full every journalled reservation without a ledger
//! row or a mark (the previous process died with it in flight, or before its row was
//! committed), then loads the scopes into memory. So recorded spend is never lower than
//! what providers billed, and a budget holds across a crash. Only one process may own
//! the book: `sqlite.rs` holds an exclusive lock on the database for the handle's life.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use rustc_hash::FxHashMap;
use tokio::sync::oneshot;

use super::clock::Clock;
use super::journal::{Journal, Leftover, Record};
use super::logic::{self, Prepared, ScopeLimit, ScopeRow};
use crate::metrics::SpendMetrics;

use super::types::{LedgerEntry, ReservationId, ReserveError, ScopeSpend, Settlement, StoreError};

/// While there is work, the writer syncs the journal to disk every turn: the window a
/// power cut can take from the journal.
const TURN: Duration = Duration::from_millis(100);
/// ... and commits the ledger rows and counters at most this often by default (or when a
/// flush is asked for); `general.spend_write_interval_secs` (LiteLLM's
/// `proxy_batch_write_at`) changes it through [`Book::set_write_interval`]. A commit
/// costs its WAL frames and an `fsync` whatever it carries (on a virtual disk about a
/// millisecond of CPU), so at 1,000 req/s this is what keeps it to about a microsecond
/// a request. Until committed, a settled request's reservation is in the journal, so a
/// crash counts it in full: never less than billed.
pub const COMMIT_EVERY: Duration = Duration::from_secs(1);
/// Settled rows waiting that make the writer commit at once, whatever the interval: a
/// long interval on a busy gateway would otherwise hold minutes of rows (a few hundred
/// bytes each) in memory, and keep that many journal segments on disk. At 1,000 req/s
/// this is ten seconds' worth; one commit of it takes some tens of milliseconds.
pub const MAX_WAITING: usize = 10_000;
/// How long the writer waits before trying again after the database failed.
const RETRY: Duration = Duration::from_secs(1);

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Io(io::Error::other(format!("sqlite: {e}")))
}

const STORE_SCOPE: &str = "INSERT INTO budget_scopes
         (scope, limit_nanos, period, period_start, spent_nanos, reserved_nanos)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
     ON CONFLICT (scope) DO UPDATE SET
         limit_nanos = excluded.limit_nanos, period = excluded.period,
         period_start = excluded.period_start, spent_nanos = excluded.spent_nanos,
         reserved_nanos = excluded.reserved_nanos";
const INSERT_MARK: &str = "INSERT INTO settled_marks (id) VALUES (?1) ON CONFLICT (id) DO NOTHING";
/// Marks no journal segment needs any more: below `?1` (the first reservation of the
/// oldest segment still there), all but the newest.
const PRUNE_MARKS: &str = "DELETE FROM settled_marks
     WHERE id < ?1 AND id < (SELECT MAX(id) FROM settled_marks)";
const INSERT_ENTRY: &str = "INSERT INTO spend_ledger (id, request_id, key_id,
         key_alias, model, deployment, prompt_tokens, completion_tokens, cached_tokens,
         cost_nanos, status, started_at, ended_at, cache_hit)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
     ON CONFLICT (id) DO NOTHING";
/// Ledger rows written by one statement when there are enough (one statement's fixed
/// cost then serves them all).
const CHUNK: usize = 32;
/// Columns of a ledger row.
const COLUMNS: usize = 14;

/// `INSERT` of [`CHUNK`] ledger rows.
fn insert_many() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let row = format!("({})", vec!["?"; COLUMNS].join(", "));
        format!(
            "INSERT INTO spend_ledger (id, request_id, key_id, key_alias, model, deployment,
                 prompt_tokens, completion_tokens, cached_tokens, cost_nanos, status,
                 started_at, ended_at, cache_hit)
             VALUES {}
             ON CONFLICT (id) DO NOTHING",
            vec![row; CHUNK].join(", ")
        )
    })
}

/// A journal segment of this process.
struct Segment {
    /// Its reservations whose ledger row (or mark) is not committed yet.
    pending: usize,
    /// Its first reservation's id (ids are journalled in order, so every reservation in
    /// it and in later segments has this id or a higher one).
    first: i64,
}

/// A scope's counters and whether they changed since the writer last took them.
struct Scope {
    row: ScopeRow,
    dirty: bool,
}

/// A reservation in flight.
struct Open {
    amount: i64,
    scopes: Vec<ScopeLimit>,
    /// The journal segment holding it.
    segment: u64,
}

/// A ledger row (or mark) waiting for the writer.
struct Settled {
    reservation: i64,
    entry: LedgerEntry,
    cost: i64,
    /// Ledger rows are off: commit a mark instead of the row.
    mark: bool,
    /// The journal segment of its reservation (`None`: not one of ours).
    segment: Option<u64>,
    /// For a reservation id this book does not know: told whether the row was new.
    inserted: Option<oneshot::Sender<bool>>,
}

/// Maps keyed by scope names and reservation ids, both ours (not a client's text), hash
/// with the Fx hash: a few instructions where std's SipHash takes a hundred or more.
struct State {
    scopes: FxHashMap<Arc<str>, Scope>,
    /// Names of the scopes with `dirty` set.
    dirty: Vec<Arc<str>>,
    open: FxHashMap<i64, Open>,
    /// The first id this process handed out; ids below are a previous process's.
    first_id: i64,
    next_id: i64,
    /// The journal segments this process wrote to and has not deleted.
    segments: BTreeMap<u64, Segment>,
    settled: Vec<Settled>,
    /// A wake-up was sent and the writer has not taken the work yet.
    nudged: bool,
    /// [`MAX_WAITING`] rows wait and a commit was asked for (or the writer is failing
    /// and retries on its own): the next settlements need not ask again.
    full: bool,
}

impl Scope {
    /// Stores `row`; the first change since the writer took the scope lists it in
    /// `dirty`.
    fn set(&mut self, name: &Arc<str>, row: ScopeRow, dirty: &mut Vec<Arc<str>>) {
        self.row = row;
        if !self.dirty {
            self.dirty = true;
            dirty.push(Arc::clone(name));
        }
    }
}

impl State {
    fn put(&mut self, name: &Arc<str>, row: ScopeRow) {
        match self.scopes.get_mut(&**name) {
            Some(s) => s.set(name, row, &mut self.dirty),
            None => {
                self.scopes
                    .insert(Arc::clone(name), Scope { row, dirty: true });
                self.dirty.push(Arc::clone(name));
            }
        }
    }

    /// `true` when the caller should wake the writer.
    fn nudge(&mut self) -> bool {
        !std::mem::replace(&mut self.nudged, true)
    }
}

struct Shared {
    state: Mutex<State>,
    journal: Journal,
    clock: Arc<dyn Clock>,
    /// `/metrics`' view of the queue and the commits, once instrumented.
    metrics: OnceLock<SpendMetrics>,
    /// Ledger rows are off (`general.disable_spend_logs`): settlements commit marks.
    no_ledger: AtomicBool,
    /// The write interval in milliseconds (see [`COMMIT_EVERY`]).
    commit_every_ms: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `n` more ledger rows wait for a commit (`n < 0`: fewer).
    fn queued(&self, n: i64) {
        if let Some(m) = self.metrics.get() {
            m.queued.inc_by(n);
        }
    }
}

enum Msg {
    /// There is work; gather a turn's worth, then write.
    Nudge,
    /// Write now; answer when it is committed.
    Flush(Option<oneshot::Sender<Result<(), String>>>),
}

/// What [`Book::settle`] knows at once.
pub(super) enum Settle {
    Done(Settlement),
    /// Not a reservation of this process: the ledger decides (`true`: the row is new).
    Check(oneshot::Receiver<bool>),
}

/// The book of one store handle; dropping it writes what is left and stops the writer.
pub(super) struct Book {
    shared: Arc<Shared>,
    wake: Option<Sender<Msg>>,
    writer: Option<JoinHandle<()>>,
}

impl Book {
    /// Replays what a previous process left (see [`replay`]) on `conn`, then starts the
    /// writer thread on it. Returns the book and how many reservations were counted in
    /// full.
    pub(super) fn open(
        mut conn: Connection,
        journal: Journal,
        leftover: Leftover,
        clock: Arc<dyn Clock>,
        write: Arc<tokio::sync::Mutex<()>>,
    ) -> Result<(Book, u64), StoreError> {
        let (state, taken) = replay(&mut conn, &leftover, clock.now_ms())?;
        if leftover.unreadable > 0 {
            // A record cut short by a crash (its request was never sent) or damage.
            tracing::warn!(
                records = leftover.unreadable,
                "skipped unreadable records in the reservation journal"
            );
        }
        leftover.remove()?;
        // The first reservation should not wait for a segment to be made.
        journal.ensure_spare()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            journal,
            clock,
            metrics: OnceLock::new(),
            no_ledger: AtomicBool::new(false),
            commit_every_ms: AtomicU64::new(millis(COMMIT_EVERY)),
        });
        let (wake, queue) = mpsc::channel();
        let writer = Writer {
            conn,
            shared: Arc::clone(&shared),
            write,
            spare: Vec::new(),
        };
        let handle = std::thread::Builder::new()
            .name("spend-writer".to_owned())
            .spawn(move || writer.run(queue))?;
        Ok((
            Book {
                shared,
                wake: Some(wake),
                writer: Some(handle),
            },
            taken,
        ))
    }

    /// Report the queue and the commits to `metrics` from now on.
    pub(super) fn instrument(&self, metrics: SpendMetrics) {
        let queued = i64::try_from(self.shared.lock().settled.len()).unwrap_or(i64::MAX);
        if self.shared.metrics.set(metrics).is_ok() {
            self.shared.queued(queued);
        }
    }

    /// Settlements from now on commit their ledger row (`true`) or only a mark.
    pub(super) fn set_ledger_rows(&self, on: bool) {
        self.shared.no_ledger.store(!on, Ordering::Relaxed);
    }

    /// Commits at most every `every` from now on (at least a millisecond), besides
    /// flushes and [`MAX_WAITING`]. The writer reads it every turn, so a shorter
    /// interval applies within [`TURN`].
    pub(super) fn set_write_interval(&self, every: Duration) {
        self.shared
            .commit_every_ms
            .store(millis(every).max(1), Ordering::Relaxed);
    }

    fn send(&self, m: Msg) {
        if let Some(w) = &self.wake {
            let _ = w.send(m);
        }
    }

    /// Holds `p.amount` in every scope of `p` or in none, and journals it.
    pub(super) fn reserve(
        &self,
        request_id: &str,
        p: Prepared,
    ) -> Result<ReservationId, ReserveError> {
        let now = self.shared.clock.now_ms();
        let mut st = self.shared.lock();
        // What holding the amount makes of a scope's row (the names are distinct, so
        // one scope's hold does not change another's).
        let held = |st: &State, s: &ScopeLimit| {
            st.scopes
                .get(&*s.name)
                .map_or_else(|| ScopeRow::fresh(s.limit), |c| c.row.clone())
                .hold(s, p.amount, now)
        };
        // Every scope is checked before any is held: all or none.
        for s in &p.scopes {
            held(&st, s)?;
        }
        let id = st.next_id;
        let segment = self
            .shared
            .journal
            .append(&Record {
                id,
                request_id,
                amount: p.amount,
                scopes: &p.scopes[..],
                at: now,
            })
            .map_err(StoreError::Io)?;
        st.next_id += 1;
        for s in &p.scopes {
            if let Ok(row) = held(&st, s) {
                st.put(&s.name, row);
            }
        }
        st.segments
            .entry(segment)
            .or_insert(Segment {
                pending: 0,
                first: id,
            })
            .pending += 1;
        st.open.insert(
            id,
            Open {
                amount: p.amount,
                scopes: p.scopes,
                segment,
            },
        );
        let nudge = st.nudge();
        drop(st);
        if nudge {
            self.send(Msg::Nudge);
        }
        Ok(ReservationId(id))
    }

    /// Ends a reservation; see [`super::SpendStore::settle`].
    pub(super) fn settle(&self, id: ReservationId, entry: LedgerEntry, cost: i64) -> Settle {
        let now = self.shared.clock.now_ms();
        let mut guard = self.shared.lock();
        let st = &mut *guard;
        if let Some(open) = st.open.remove(&id.0) {
            for scope in &open.scopes {
                if let Some(s) = st.scopes.get_mut(&*scope.name) {
                    let mut row = s.row.clone().rolled_own(now);
                    row.settle(open.amount, cost);
                    s.set(&scope.name, row, &mut st.dirty);
                }
            }
            st.settled.push(Settled {
                reservation: id.0,
                entry,
                cost,
                mark: self.shared.no_ledger.load(Ordering::Relaxed),
                segment: Some(open.segment),
                inserted: None,
            });
            let full = st.settled.len() >= MAX_WAITING && !std::mem::replace(&mut st.full, true);
            let nudge = st.nudge();
            drop(guard);
            self.shared.queued(1);
            if full {
                self.send(Msg::Flush(None));
            } else if nudge {
                self.send(Msg::Nudge);
            }
            return Settle::Done(Settlement::Applied);
        }
        if (st.first_id..st.next_id).contains(&id.0) {
            // Ours, and no longer open: settled before.
            return Settle::Done(Settlement::AlreadySettled);
        }
        // A previous process's (its row is there if it finished or was counted at
        // start-up) or one never handed out (never hand it out now).
        st.next_id = st.next_id.max(id.0.saturating_add(1));
        if self.shared.no_ledger.load(Ordering::Relaxed) {
            // Without rows the ledger cannot decide, and the scopes do not move either
            // way: nothing to change (as PostgreSQL answers).
            return Settle::Done(Settlement::AlreadySettled);
        }
        let (tx, rx) = oneshot::channel();
        st.settled.push(Settled {
            reservation: id.0,
            entry,
            cost,
            mark: false,
            segment: None,
            inserted: Some(tx),
        });
        drop(guard);
        self.shared.queued(1);
        self.send(Msg::Flush(None));
        Settle::Check(rx)
    }

    /// A scope's counters as of now.
    pub(super) fn spent(&self, scope: &str) -> ScopeSpend {
        let now = self.shared.clock.now_ms();
        let row = self.shared.lock().scopes.get(scope).map(|s| s.row.clone());
        ScopeRow::spend(row, scope, now)
    }

    /// Waits until everything settled so far is committed.
    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Flush(Some(tx)));
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Io(io::Error::other(e))),
            Err(_) => Err(StoreError::Io(io::Error::other(
                "the spend writer has stopped",
            ))),
        }
    }
}

impl Drop for Book {
    fn drop(&mut self) {
        // Closing the queue makes the writer write what is left and stop.
        self.wake = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// The writer thread: its own connection, and the book it empties.
struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    /// The handle's write mutex (see `sqlite.rs`), held while committing.
    write: Arc<tokio::sync::Mutex<()>>,
    /// The last batch's vector, emptied: the next turn's settlements go into it, so
    /// requests do not grow a fresh one (and copy it as it doubles) every turn.
    spare: Vec<Settled>,
}

impl Writer {
    fn run(mut self, queue: Receiver<Msg>) {
        let mut failing = false;
        // Work is pending: tick every `TURN` until it is committed.
        let mut busy = false;
        let mut last_commit = Instant::now();
        loop {
            let mut waiters = Vec::new();
            let mut force = false;
            let mut last = false;
            let first = if failing {
                queue.recv_timeout(RETRY)
            } else if busy {
                queue.recv_timeout(TURN)
            } else {
                queue.recv().map_err(|_| RecvTimeoutError::Disconnected)
            };
            match first {
                Ok(Msg::Nudge) if !busy && !failing => {
                    // Work has started: let a turn's worth gather before writing.
                    busy = true;
                    continue;
                }
                Ok(Msg::Nudge) | Err(RecvTimeoutError::Timeout) => {}
                Ok(Msg::Flush(w)) => {
                    force = true;
                    waiters.extend(w);
                }
                Err(RecvTimeoutError::Disconnected) => last = true,
            }
            while let Ok(m) = queue.try_recv() {
                if let Msg::Flush(w) = m {
                    force = true;
                    waiters.extend(w);
                }
            }
            let every = Duration::from_millis(self.shared.commit_every_ms.load(Ordering::Relaxed));
            let commit = force || last || failing || last_commit.elapsed() >= every;
            let result = self.turn(commit);
            match &result {
                Ok(pending) => {
                    busy = *pending;
                    if commit {
                        last_commit = Instant::now();
                    }
                }
                Err(e) => {
                    busy = true;
                    tracing::error!(error = %e, "could not write the spend ledger; retrying (budgets are still enforced from memory, and the journal keeps every reservation)");
                }
            }
            failing = result.is_err();
            for w in waiters {
                let _ = w.send(result.clone().map(|_| ()));
            }
            if last {
                return;
            }
        }
    }

    /// Syncs the journal; with `commit`, also takes the queued rows and changed scopes
    /// and commits them. `Ok(true)` when work is still pending (nothing was committed).
    fn turn(&mut self, commit: bool) -> Result<bool, String> {
        let synced = self.shared.journal.sync();
        if let Err(e) = self.shared.journal.ensure_spare() {
            tracing::warn!(error = %e, "could not prepare the next journal segment");
        }
        if !commit {
            return synced
                .map(|()| true)
                .map_err(|e| format!("journal sync: {e}"));
        }
        let (batch, scopes, floor) = {
            let mut st = self.shared.lock();
            st.nudged = false;
            st.full = false;
            // Every mark a journal segment on disk may need is this id or above.
            let floor = st
                .segments
                .values()
                .map(|s| s.first)
                .min()
                .unwrap_or(st.next_id);
            let batch = std::mem::replace(&mut st.settled, std::mem::take(&mut self.spare));
            let names = std::mem::take(&mut st.dirty);
            let mut scopes = Vec::with_capacity(names.len());
            for name in names {
                if let Some(s) = st.scopes.get_mut(&name) {
                    s.dirty = false;
                    scopes.push((name, s.row.clone()));
                }
            }
            (batch, scopes, floor)
        };
        let committed = if batch.is_empty() && scopes.is_empty() {
            Ok(Vec::new())
        } else {
            let write = Arc::clone(&self.write);
            let _writer = write.blocking_lock();
            let started = Instant::now();
            let written = write_batch(&mut self.conn, &batch, &scopes, floor);
            if let Some(m) = self.shared.metrics.get() {
                m.write.observe(started.elapsed().as_secs_f64());
            }
            written
        };
        let mut st = self.shared.lock();
        match committed {
            Ok(inserted) => {
                let mut batch = batch;
                let len = batch.len();
                self.shared.queued(-i64::try_from(len).unwrap_or(i64::MAX));
                for (row, new) in batch.drain(..).zip(inserted) {
                    if let Some(seg) = row.segment {
                        if let Some(s) = st.segments.get_mut(&seg) {
                            s.pending = s.pending.saturating_sub(1);
                        }
                    }
                    if let Some(tx) = row.inserted {
                        let _ = tx.send(new);
                    }
                }
                // Kept for the next turn unless far larger than turns need now.
                if batch.capacity() <= 2 * len.max(1024) {
                    self.spare = batch;
                }
                let active = self.shared.journal.active_seq();
                let finished: Vec<u64> = st
                    .segments
                    .iter()
                    .filter(|(&seg, s)| s.pending == 0 && seg != active)
                    .map(|(&seg, _)| seg)
                    .collect();
                for seg in finished {
                    // Kept (and its marks with it) until its file is gone: start-up
                    // reads every segment it finds.
                    match self.shared.journal.remove(seg) {
                        Ok(()) => {
                            st.segments.remove(&seg);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "could not delete a finished journal segment");
                        }
                    }
                }
                synced
                    .map(|()| false)
                    .map_err(|e| format!("journal sync: {e}"))
            }
            Err(e) => {
                // Keep everything for the next turn, in order.
                let newer = std::mem::replace(&mut st.settled, batch);
                st.settled.extend(newer);
                // The writer retries every `RETRY` on its own: a full queue need not
                // make it retry sooner.
                st.full = true;
                for (name, _) in scopes {
                    if let Some(s) = st.scopes.get_mut(&name) {
                        if !s.dirty {
                            s.dirty = true;
                            st.dirty.push(name);
                        }
                    }
                }
                Err(e.to_string())
            }
        }
    }
}

/// Binds one ledger row at parameters `first..first + COLUMNS`.
fn bind_entry(
    stmt: &mut rusqlite::Statement<'_>,
    first: usize,
    reservation: i64,
    e: &LedgerEntry,
    cost: i64,
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(first, reservation)?;
    stmt.raw_bind_parameter(first + 1, &e.request_id)?;
    stmt.raw_bind_parameter(first + 2, &e.key_id)?;
    stmt.raw_bind_parameter(first + 3, &e.key_alias)?;
    stmt.raw_bind_parameter(first + 4, &e.model)?;
    stmt.raw_bind_parameter(first + 5, &e.deployment)?;
    stmt.raw_bind_parameter(first + 6, logic::tokens_col(e.prompt_tokens))?;
    stmt.raw_bind_parameter(first + 7, logic::tokens_col(e.completion_tokens))?;
    stmt.raw_bind_parameter(first + 8, logic::tokens_col(e.cached_tokens))?;
    stmt.raw_bind_parameter(first + 9, cost)?;
    stmt.raw_bind_parameter(first + 10, i32::from(e.status))?;
    stmt.raw_bind_parameter(first + 11, e.started_at)?;
    stmt.raw_bind_parameter(first + 12, e.ended_at)?;
    stmt.raw_bind_parameter(first + 13, e.cache_hit)
}

/// Writes a ledger row unless one with this id exists; `true` when written.
fn insert_entry(
    stmt: &mut rusqlite::Statement<'_>,
    reservation: i64,
    e: &LedgerEntry,
    cost: i64,
) -> Result<bool, StoreError> {
    bind_entry(stmt, 1, reservation, e, cost).map_err(db)?;
    Ok(stmt.raw_execute().map_err(db)? > 0)
}

fn store_scope(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    row: &ScopeRow,
) -> Result<(), StoreError> {
    tx.prepare_cached(STORE_SCOPE)
        .map_err(db)?
        .execute(params![
            name,
            row.limit,
            row.period.map(|p| p.to_string()),
            row.period_start,
            row.spent,
            row.reserved,
        ])
        .map_err(db)?;
    Ok(())
}

/// One transaction: the ledger rows (whether each was new) or marks, the scope rows,
/// and the deletion of the marks below `floor` (see [`PRUNE_MARKS`]).
fn write_batch(
    conn: &mut Connection,
    batch: &[Settled],
    scopes: &[(Arc<str>, ScopeRow)],
    floor: i64,
) -> Result<Vec<bool>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let mut inserted = vec![true; batch.len()];
    {
        let mut one = tx.prepare_cached(INSERT_ENTRY).map_err(db)?;
        // Rows of this gateway's own reservations have fresh ids: they go in chunks. A
        // settle of an id it does not know may find its row there: one at a time.
        let mut ours = Vec::with_capacity(batch.len());
        let mut marks = 0usize;
        for (i, s) in batch.iter().enumerate() {
            if s.mark {
                tx.prepare_cached(INSERT_MARK)
                    .map_err(db)?
                    .execute([s.reservation])
                    .map_err(db)?;
                marks += 1;
            } else if s.inserted.is_some() {
                inserted[i] = insert_entry(&mut one, s.reservation, &s.entry, s.cost)?;
            } else {
                ours.push(s);
            }
        }
        if marks > 0 {
            tx.prepare_cached(PRUNE_MARKS)
                .map_err(db)?
                .execute([floor])
                .map_err(db)?;
        }
        let mut chunks = ours.chunks_exact(CHUNK);
        if chunks.len() > 0 {
            let mut many = tx.prepare_cached(insert_many()).map_err(db)?;
            for chunk in &mut chunks {
                for (k, s) in chunk.iter().enumerate() {
                    bind_entry(&mut many, 1 + k * COLUMNS, s.reservation, &s.entry, s.cost)
                        .map_err(db)?;
                }
                many.raw_execute().map_err(db)?;
            }
        }
        for s in chunks.remainder() {
            insert_entry(&mut one, s.reservation, &s.entry, s.cost)?;
        }
    }
    for (name, row) in scopes {
        store_scope(&tx, name, row)?;
    }
    tx.commit().map_err(db)?;
    Ok(inserted)
}

/// Reads and empties the `reservations` table an older version wrote.
fn take_legacy(tx: &rusqlite::Transaction<'_>) -> Result<Vec<Record>, StoreError> {
    let mut legacy = Vec::new();
    {
        let mut stmt = tx
            .prepare("SELECT id, request_id, amount_nanos, scopes, created_at FROM reservations")
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(db)?;
        for row in rows {
            let (id, request_id, amount, names, at) = row.map_err(db)?;
            legacy.push(Record {
                id,
                request_id,
                amount,
                scopes: logic::parse_names(&names)?,
                at,
            });
        }
    }
    tx.execute("DELETE FROM reservations", []).map_err(db)?;
    Ok(legacy)
}

/// Writes a status-0 ledger row for each reservation without one; returns how many,
/// the amount each scope gains, and the highest reservation id seen.
fn count_orphans<'r>(
    tx: &rusqlite::Transaction<'_>,
    records: impl Iterator<Item = &'r Record>,
    now: i64,
) -> Result<(u64, BTreeMap<String, i64>, i64), StoreError> {
    let mut taken = 0u64;
    let mut deltas: BTreeMap<String, i64> = BTreeMap::new();
    let mut max_id = 0i64;
    for r in records {
        max_id = max_id.max(r.id);
        let finished = tx
            .prepare_cached(
                "SELECT 1 FROM spend_ledger WHERE id = ?1
                 UNION ALL SELECT 1 FROM settled_marks WHERE id = ?1",
            )
            .map_err(db)?
            .query_row([r.id], |_| Ok(()))
            .optional()
            .map_err(db)?
            .is_some();
        if finished {
            continue;
        }
        let entry = logic::orphan_entry(r.request_id.clone(), &r.scopes, r.amount, r.at, now);
        let mut stmt = tx.prepare_cached(INSERT_ENTRY).map_err(db)?;
        insert_entry(&mut stmt, r.id, &entry, r.amount)?;
        for name in &r.scopes {
            *deltas.entry(name.clone()).or_default() += r.amount;
        }
        taken += 1;
    }

    Ok((taken, deltas, max_id))
}

/// Every scope row of the database.
fn load_scopes(tx: &rusqlite::Transaction<'_>) -> Result<FxHashMap<String, ScopeRow>, StoreError> {
    let mut scopes = FxHashMap::default();
    {
        let mut stmt = tx
            .prepare(
                "SELECT scope, spent_nanos, limit_nanos, period, period_start FROM budget_scopes",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })
            .map_err(db)?;
        for row in rows {
            let (name, spent, limit, period, period_start) = row.map_err(db)?;
            let row = ScopeRow {
                spent,
                reserved: 0,
                limit,
                period: ScopeRow::period_from(period)?,
                period_start,
            };
            scopes.insert(name, row);
        }
    }
    Ok(scopes)
}

/// Counts in full every reservation a previous process left without a ledger row (the
/// journal's, and rows of the `reservations` table an older version wrote), writing a
/// status-0 row for each, then loads every scope. Returns the book's state and how many
/// reservations were counted.
fn replay(
    conn: &mut Connection,
    leftover: &Leftover,
    now: i64,
) -> Result<(State, u64), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let legacy = take_legacy(&tx)?;
    let (taken, deltas, max_id) = count_orphans(&tx, leftover.records.iter().chain(&legacy), now)?;
    let mut scopes = load_scopes(&tx)?;
    for (name, amount) in deltas {
        let row = scopes
            .remove(&name)
            .map_or_else(|| ScopeRow::fresh(i64::MAX), |r| r.rolled_own(now));
        let mut row = row;
        row.settle(0, amount);
        store_scope(&tx, &name, &row)?;
        scopes.insert(name, row);
    }
    tx.execute("UPDATE budget_scopes SET reserved_nanos = 0", [])
        .map_err(db)?;

    let ledger_max: Option<i64> = tx
        .query_row(
            "SELECT MAX(m) FROM (SELECT MAX(id) AS m FROM spend_ledger
                                 UNION ALL SELECT MAX(id) FROM settled_marks)",
            [],
            |r| r.get(0),
        )
        .map_err(db)?;
    let sequence: Option<i64> = tx
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'reservations'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(db)?;
    tx.commit().map_err(db)?;

    let next_id = max_id
        .max(ledger_max.unwrap_or(0))
        .max(sequence.unwrap_or(0))
        .saturating_add(1);
    let state = State {
        scopes: scopes
            .into_iter()
            .map(|(name, row)| (Arc::from(name), Scope { row, dirty: false }))
            .collect(),
        dirty: Vec::new(),
        open: FxHashMap::default(),
        first_id: next_id,
        next_id,
        segments: BTreeMap::new(),
        settled: Vec::new(),
        nudged: false,
        full: false,
    };
    Ok((state, taken))
}
