//! The spend spool: ledger writes the spend store could not take (PostgreSQL down or
//! unreachable), held in memory within a bound and written, oldest first, when the
//! store answers again.
//!
//! Two kinds of record wait here:
//! - a request admitted **without a reservation** while the store was down (only a
//!   request no budget applies to: see `Governor::reserve`). Its room in the spool is
//!   taken at admission (a [`Slot`]), so a request is refused (503) up front rather
//!   than served and its spend lost when the spool turns out full at the end. When the
//!   request ends, the slot becomes a record: its scopes and ledger row. It is written
//!   as a reservation of 0 followed by its settlement, the same two writes as any
//!   request, so the scopes and the ledger see it exactly as they see the others;
//! - a **settlement that failed** (the store went away while the request ran). Its
//!   reservation is durable already (an upper bound of the bill), so the spend is not
//!   lost either way; when the spool has room the settlement is retried, else the
//!   reservation stays and counts in full at the next reconcile after this gateway
//!   stops. Settling is idempotent, so a retry after a lost acknowledgement writes
//!   nothing twice.
//!
//! One flusher task at a time (started when there is something to do, ended when the
//! spool is empty and the store answers) writes the oldest record, retrying every
//! [`RETRY`] while the store fails; a record leaves the spool only once written. While
//! the store is known to be down (a write of the spool failed, or the store says it is
//! unreachable: `SpendStore::reachable`), admissions do not try it, so no request waits
//! for a connection that cannot come.
//!
//! Bounds: [`Spool::new`]'s record count (`general.spend_buffer_records`) and
//! [`MAX_BYTES`], whichever is reached first; a record's size is estimated at
//! admission from the strings it will hold. Touches only the spend store.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use tokio::sync::Notify;

use crate::store::{BudgetScope, LedgerEntry, Reservation, ReservationId, SpendStore};

/// The most memory the spool's records may take, estimated.
pub const MAX_BYTES: usize = 32 << 20;

/// How often the flusher tries the store again while it fails.
pub const RETRY: Duration = Duration::from_secs(1);

/// What a record costs besides its strings: the entry, the scopes' vector and the
/// queue's slot, rounded up.
const RECORD_OVERHEAD: usize = 512;

/// Ledger writes waiting for the spend store.
pub struct Spool {
    spend: Arc<dyn SpendStore>,
    state: Mutex<State>,
    /// Set by a failed write, cleared by a successful write or probe (an atomic: every
    /// admission reads it).
    down: AtomicBool,
    /// Woken when the spool empties with the store up.
    idle: Notify,
    metrics: OnceLock<(Gauge, Counter)>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    /// Records waiting, oldest first (the first one may be being written).
    queue: VecDeque<Record>,
    /// Slots held by requests still running, and their bytes.
    held: usize,
    held_bytes: usize,
    queued_bytes: usize,
    /// The bound on records (`held + queue.len()`).
    max_records: usize,
    /// A flusher task is running.
    flushing: bool,
}

impl State {
    /// Whether one more record of `bytes` stays within the bounds.
    fn fits(&self, bytes: usize) -> bool {
        self.held + self.queue.len() < self.max_records
            && self.held_bytes + self.queued_bytes + bytes <= MAX_BYTES
    }
}

struct Record {
    /// `None` until the record's reservation of 0 is written.
    reservation: Option<ReservationId>,
    /// For a request admitted without a reservation: the scopes it counts in.
    scopes: Vec<BudgetScope>,
    entry: LedgerEntry,
    bytes: usize,
}

/// Room for one request's record, taken at admission; given back when dropped unused.
pub struct Slot {
    spool: Arc<Spool>,
    scopes: Vec<BudgetScope>,
    bytes: usize,
    used: bool,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("bytes", &self.bytes).finish()
    }
}

impl Slot {
    /// The request ended: its record joins the queue.
    pub fn push(mut self, entry: LedgerEntry) {
        self.used = true;
        let scopes = std::mem::take(&mut self.scopes);
        let mut s = self.spool.state();
        s.held -= 1;
        s.held_bytes -= self.bytes;
        s.queued_bytes += self.bytes;
        s.queue.push_back(Record {
            reservation: None,
            scopes,
            entry,
            bytes: self.bytes,
        });
        self.spool.publish(&s);
        drop(s);
        self.spool.wake();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.used {
            let mut s = self.spool.state();
            s.held -= 1;
            s.held_bytes -= self.bytes;
            self.spool.publish(&s);
            drop(s);
            self.spool.idle.notify_waiters();
        }
    }
}

/// The estimated size of a record whose strings are `strings`.
pub fn record_bytes<'a>(strings: impl IntoIterator<Item = &'a str>) -> usize {
    RECORD_OVERHEAD + strings.into_iter().map(str::len).sum::<usize>()
}

impl Spool {
    /// A spool in front of `spend` holding at most `max_records` records (0: none; a
    /// request that would need one is refused while the store is down).
    pub fn new(spend: Arc<dyn SpendStore>, max_records: usize) -> Arc<Spool> {
        Arc::new(Spool {
            spend,
            state: Mutex::new(State {
                max_records,
                ..State::default()
            }),
            down: AtomicBool::new(false),
            idle: Notify::new(),
            metrics: OnceLock::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this spool writes to `spend`.
    pub fn serves(&self, spend: &Arc<dyn SpendStore>) -> bool {
        Arc::ptr_eq(&self.spend, spend)
    }

    /// The bound on records.
    pub fn max_records(&self) -> usize {
        self.state().max_records
    }

    /// A new bound on records (a reload); records already held stay.
    pub fn set_max_records(&self, max_records: usize) {
        self.state().max_records = max_records;
    }

    /// Tells `/metrics` of the records waiting and the requests refused for want of room.
    pub fn instrument(&self, depth: Gauge, refused: Counter) {
        let _ = self.metrics.set((depth, refused));
        self.publish(&self.state());
    }

    fn publish(&self, s: &State) {
        if let Some((depth, _)) = self.metrics.get() {
            depth.set(i64::try_from(s.held + s.queue.len()).unwrap_or(i64::MAX));
        }
    }

    /// Whether the store is known to be down: a write of the spool failed since the
    /// last success, or the store says it is unreachable.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire) || !self.spend.reachable()
    }

    /// Room for a request's record of about `bytes` counting in `scopes`, or `None`
    /// (counted as a refusal) when the spool is full.
    pub fn hold(self: &Arc<Self>, scopes: Vec<BudgetScope>, bytes: usize) -> Option<Slot> {
        let mut s = self.state();
        if !s.fits(bytes) {
            drop(s);
            if let Some((_, refused)) = self.metrics.get() {
                refused.inc();
            }
            return None;
        }
        s.held += 1;
        s.held_bytes += bytes;
        self.publish(&s);
        Some(Slot {
            spool: self.clone(),
            scopes,
            bytes,
            used: false,
        })
    }

    /// Queues a settlement the store failed to take, when there is room; `false` when
    /// there is none (the reservation then stays, counted in full at a later reconcile).
    pub fn retry_settle(self: &Arc<Self>, id: ReservationId, entry: LedgerEntry) -> bool {
        let bytes = record_bytes([
            entry.request_id.as_str(),
            entry.model.as_str(),
            entry.deployment.as_str(),
            entry.key_id.as_deref().unwrap_or(""),
            entry.key_alias.as_deref().unwrap_or(""),
        ]);
        self.down.store(true, Ordering::Release);
        let mut s = self.state();
        if !s.fits(bytes) {
            return false;
        }
        s.queued_bytes += bytes;
        s.queue.push_back(Record {
            reservation: Some(id),
            scopes: Vec::new(),
            entry,
            bytes,
        });
        self.publish(&s);
        drop(s);
        self.wake();
        true
    }

    /// Starts the flusher unless one runs.
    fn wake(self: &Arc<Self>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut s = self.state();
            if s.flushing {
                return;
            }
            s.flushing = true;
        }
        let spool = self.clone();
        rt.spawn(async move { spool.flush().await });
    }

    /// Writes the records oldest first until none is left and the store answers.
    async fn flush(self: Arc<Self>) {
        loop {
            let next = {
                let mut s = self.state();
                match s.queue.front() {
                    Some(r) => Some((r.reservation, r.scopes.clone(), r.entry.clone())),
                    None if self.down.load(Ordering::Acquire) => None,
                    None => {
                        s.flushing = false;
                        drop(s);
                        self.idle.notify_waiters();
                        return;
                    }
                }
            };
            let written = match next {
                Some((reservation, scopes, entry)) => self.write(reservation, scopes, entry).await,
                None => self.spend.spent("global").await.map(|_| ()),
            };
            match written {
                Ok(()) => {
                    if self.down.swap(false, Ordering::AcqRel) {
                        tracing::warn!("the spend store answers again: writing the buffered spend");
                    }
                }
                Err(crate::store::StoreError::InvalidInput(e)) => {
                    // The store refuses this record and always will: keeping it would
                    // stop every record behind it.
                    tracing::error!(error = %e, "a buffered spend record was refused by the store and dropped");
                    self.pop();
                }
                Err(e) => {
                    if !self.down.swap(true, Ordering::AcqRel) {
                        tracing::error!(error = %e, "the spend store is unreachable: buffered spend waits in memory");
                    }
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    /// Writes one record; on success it leaves the queue.
    async fn write(
        &self,
        reservation: Option<ReservationId>,
        scopes: Vec<BudgetScope>,
        entry: LedgerEntry,
    ) -> Result<(), crate::store::StoreError> {
        let id = match reservation {
            Some(id) => id,
            None => {
                let id = self
                    .spend
                    .reserve(Reservation {
                        request_id: entry.request_id.clone(),
                        scopes,
                        amount_usd: 0.0,
                    })
                    .await
                    .map_err(|e| match e {
                        crate::store::ReserveError::Store(e) => e,
                        // Unreachable: every scope of an unreserved request has no
                        // limit, and 0 fits in any.
                        other => crate::store::StoreError::InvalidInput(other.to_string()),
                    })?;
                if let Some(r) = self.state().queue.front_mut() {
                    r.reservation = Some(id);
                }
                id
            }
        };
        self.spend.settle(id, entry).await?;
        self.pop();
        Ok(())
    }

    /// Removes the oldest record (written, or refused for good).
    fn pop(&self) {
        let mut s = self.state();
        if let Some(r) = s.queue.pop_front() {
            s.queued_bytes -= r.bytes;
        }
        self.publish(&s);
    }

    /// Waits until the spool is empty (no record waiting, no request holding room for
    /// one) and its last write succeeded: for tests, or a drain before a planned stop.
    pub async fn drained(&self) {
        loop {
            let notified = self.idle.notified();
            {
                let s = self.state();
                if s.queue.is_empty()
                    && s.held == 0
                    && !self.down.load(Ordering::Acquire)
                    && !s.flushing
                {
                    return;
                }
            }
            notified.await;
        }
    }
}
