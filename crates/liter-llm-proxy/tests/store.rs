//! The store conformance suite: every test runs against SQLite (a temporary file) and
//! PostgreSQL (a fresh schema per test in the database at `$LITER_LLM_TEST_PG_URL`,
//! default `postgres://postgres@127.0.0.1:5432/test`). PostgreSQL being unreachable is a
//! failure, not a skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use liter_llm_proxy::store::{
    self, BudgetScope, GroupBy, KeyUpdate, LedgerEntry, LedgerFilter, ManualClock, NewKey, Period,
    Reservation, ReservationId, ReserveError, Settlement, SpendGroup, StoreError, Stores,
    UniqueField,
};
use sha2::{Digest, Sha256};
use sqlx::Connection;

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const DAY: i64 = 86_400_000;
/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;

/// One database for one test; `open` may be called several times (several gateways).
trait Harness: Sized {
    /// Whether several gateways may open the database at once (PostgreSQL). An SQLite
    /// store belongs to one gateway process.
    const SHARED: bool = true;

    async fn new() -> Self;
    fn url(&self) -> String;
    async fn finish(self) {}

    async fn open(&self) -> Stores {
        store::open(&self.url()).await.expect("open store")
    }

    async fn open_at(&self, clock: Arc<ManualClock>) -> Stores {
        store::open_with_clock(&self.url(), clock)
            .await
            .expect("open store")
    }
}

struct SqliteDb {
    dir: tempfile::TempDir,
}

impl SqliteDb {
    fn path(&self) -> std::path::PathBuf {
        // A nested path: opening must create the directories too.
        self.dir.path().join("data/gw/liter.db")
    }
}

impl Harness for SqliteDb {
    const SHARED: bool = false;

    async fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.path().display())
    }
}

struct PgDb {
    base: String,
    schema: String,
}

fn pg_base() -> String {
    std::env::var("LITER_LLM_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned())
}

/// Connects to `url`, creating its database first if the server says it is missing.
async fn pg_connect(url: &str) -> sqlx::PgConnection {
    let mut result = sqlx::PgConnection::connect(url).await;
    if let Err(sqlx::Error::Database(e)) = &result {
        if e.code().as_deref() == Some("3D000") {
            create_database(url).await;
            result = sqlx::PgConnection::connect(url).await;
        }
    }
    match result {
        Ok(c) => c,
        Err(e) => panic!(
            "PostgreSQL is required for the store tests and is not reachable at {url}: {e}. \
             Start it (pg_ctlcluster --skip-systemctl-redirect <version> main start) or set \
             LITER_LLM_TEST_PG_URL."
        ),
    }
}

/// Creates the database named in `url` through the server's `postgres` database
/// (tolerating a parallel test that creates it first).
async fn create_database(url: &str) {
    let (head, query) = url.split_once('?').map_or((url, ""), |(h, q)| (h, q));
    let (server, db) = head.rsplit_once('/').expect("a database name in the URL");
    let admin = if query.is_empty() {
        format!("{server}/postgres")
    } else {
        format!("{server}/postgres?{query}")
    };
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {admin}: {e}"));
    let _ = sqlx::raw_sql(&format!("CREATE DATABASE \"{db}\""))
        .execute(&mut conn)
        .await;
}

impl Harness for PgDb {
    async fn new() -> Self {
        let base = pg_base();
        let mut conn = pg_connect(&base).await;
        let schema = format!("store_test_{:016x}", rand::random::<u64>());
        sqlx::raw_sql(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await
            .expect("create schema");
        conn.close().await.ok();
        Self { base, schema }
    }

    fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!(
            "{}{sep}options=-c%20search_path%3D{}",
            self.base, self.schema
        )
    }

    async fn finish(self) {
        let mut conn = pg_connect(&self.base).await;
        sqlx::raw_sql(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .execute(&mut conn)
            .await
            .expect("drop schema");
    }
}

fn scope(name: &str, limit: f64) -> BudgetScope {
    BudgetScope::named(name, limit, None)
}

fn reservation(request_id: &str, scopes: Vec<BudgetScope>, amount: f64) -> Reservation {
    Reservation {
        request_id: request_id.to_owned(),
        scopes,
        amount_usd: amount,
    }
}

fn entry(request_id: &str, key: Option<&str>, model: &str, cost: f64, at: i64) -> LedgerEntry {
    LedgerEntry {
        request_id: request_id.to_owned(),
        key_id: key.map(str::to_owned),
        key_alias: key.map(|k| format!("alias-{k}")),
        model: model.to_owned(),
        deployment: format!("{model}-east"),
        prompt_tokens: 100,
        completion_tokens: 20,
        cached_tokens: 10,
        cost_usd: cost,
        status: 200,
        cache_hit: false,
        started_at: at,
        ended_at: at + 1_500,
    }
}

fn over_budget(e: ReserveError) -> (String, f64) {
    match e {
        ReserveError::OverBudget {
            scope,
            remaining_usd,
            ..
        } => (scope, remaining_usd),
        other => panic!("expected OverBudget, got {other:?}"),
    }
}

fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reconciles until `want` reservations were taken (PostgreSQL releases a dead
/// session's lock a moment after its socket closes).
async fn reconcile_until(s: &Stores, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = 0;
    while got < want {
        got += s.spend.reconcile().await.expect("reconcile");
        assert!(Instant::now() < deadline, "reconciled {got} of {want}");
        if got < want {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(got, want);
}

async fn reserve_settle_arithmetic<H: Harness>() {
    let h = H::new().await;
    let s = h.open().await;
    let g = || vec![scope("global", 10.0)];

    let id = s.spend.reserve(reservation("r1", g(), 3.0)).await.unwrap();
    let now = s.spend.spent("global").await.unwrap();
    assert_eq!(
        (now.spent_usd, now.reserved_usd, now.limit_usd),
        (0.0, 3.0, Some(10.0))
    );

    let e = entry("r1", Some("k1"), "openai/gpt-4o", 2.5, T0);
    assert_eq!(
        s.spend.settle(id, e.clone()).await.unwrap(),
        Settlement::Applied
    );
    let now = s.spend.spent("global").await.unwrap();
    assert_eq!((now.spent_usd, now.reserved_usd), (2.5, 0.0));
    assert_eq!(
        s.spend.ledger(&LedgerFilter::default()).await.unwrap(),
        vec![e]
    );

    // Exactly up to the limit fits; a cent more does not.
    let full = s.spend.reserve(reservation("r2", g(), 7.5)).await.unwrap();
    let err = s
        .spend
        .reserve(reservation("r3", g(), 0.01))
        .await
        .unwrap_err();
    assert_eq!(over_budget(err), ("global".to_owned(), 0.0));

    // What the provider billed is recorded even past the limit.
    let e = entry("r2", None, "openai/gpt-4o", 9.0, T0);
    s.spend.settle(full, e).await.unwrap();
    assert_eq!(s.spend.spent("global").await.unwrap().spent_usd, 11.5);
    let err = s
        .spend
        .reserve(reservation("r4", g(), 0.0))
        .await
        .unwrap_err();
    assert_eq!(over_budget(err), ("global".to_owned(), 0.0));

    // Unknown scopes read as zeros; an unlimited scope still counts.
    let unknown = s.spend.spent("key:nobody").await.unwrap();
    assert_eq!((unknown.spent_usd, unknown.limit_usd), (0.0, None));
    let open = vec![scope("model:x", f64::INFINITY)];
    let id = s.spend.reserve(reservation("r5", open, 1e6)).await.unwrap();
    s.spend
        .settle(id, entry("r5", None, "x", 0.25, T0))
        .await
        .unwrap();
    let x = s.spend.spent("model:x").await.unwrap();
    assert_eq!((x.spent_usd, x.limit_usd), (0.25, Some(f64::INFINITY)));

    // Bad input is refused before anything is written.
    for bad in [
        reservation("b", g(), -1.0),
        reservation("b", g(), f64::NAN),
        reservation("b", vec![scope("global", 1.0), scope("global", 2.0)], 0.1),
        reservation("b", vec![scope("k", -1.0)], 0.1),
    ] {
        let err = s.spend.reserve(bad).await.unwrap_err();
        assert!(
            matches!(err, ReserveError::Store(StoreError::InvalidInput(_))),
            "{err:?}"
        );
    }
    h.finish().await;
}

async fn no_partial_reservation<H: Harness>() {
    let h = H::new().await;
    let s = h.open().await;
    let scopes = || {
        vec![
            scope("global", 100.0),
            scope("key:a", 5.0),
            scope("model:m", 3.0),
        ]
    };
    s.spend
        .reserve(reservation("r1", scopes(), 2.0))
        .await
        .unwrap();
    let err = s
        .spend
        .reserve(reservation("r2", scopes(), 2.0))
        .await
        .unwrap_err();
    assert_eq!(over_budget(err), ("model:m".to_owned(), 1.0));
    for name in ["global", "key:a", "model:m"] {
        assert_eq!(
            s.spend.spent(name).await.unwrap().reserved_usd,
            2.0,
            "{name}"
        );
    }
    // Without the tight scope it fits; the key then limits.
    let two = vec![scope("global", 100.0), scope("key:a", 5.0)];
    s.spend
        .reserve(reservation("r3", two.clone(), 3.0))
        .await
        .unwrap();
    let err = s
        .spend
        .reserve(reservation("r4", two, 0.5))
        .await
        .unwrap_err();
    assert_eq!(over_budget(err), ("key:a".to_owned(), 0.0));
    assert_eq!(s.spend.spent("global").await.unwrap().reserved_usd, 5.0);
    assert_eq!(s.spend.spent("model:m").await.unwrap().reserved_usd, 2.0);
    // A reservation with no scope only reaches the ledger.
    let id = s
        .spend
        .reserve(reservation("r5", vec![], 1.0))
        .await
        .unwrap();
    s.spend
        .settle(id, entry("r5", None, "m", 1.0, T0))
        .await
        .unwrap();
    assert_eq!(s.spend.total(&LedgerFilter::default()).await.unwrap(), 1.0);
    h.finish().await;
}

/// Fires `n` concurrent $`amount` reservations against `scope` (limit `limit`),
/// round-robin over `handles`; returns the ids of those admitted.
async fn race(handles: &[Stores], n: usize, amount: f64, limit: f64) -> Vec<ReservationId> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let spend = handles[i % handles.len()].spend.clone();
        tasks.push(tokio::spawn(async move {
            let scopes = vec![scope("key:k", limit), scope("global", 1e6)];
            spend
                .reserve(reservation(&format!("r{i}"), scopes, amount))
                .await
        }));
    }
    let mut ok = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(id) => ok.push(id),
            Err(e) => assert_eq!(over_budget(e).0, "key:k"),
        }
    }
    ok
}

async fn settle_all(handles: &[Stores], ids: &[ReservationId], cost: f64) {
    let mut tasks = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let spend = handles[i % handles.len()].spend.clone();
        let id = *id;
        tasks.push(tokio::spawn(async move {
            let e = entry(&format!("r{i}"), Some("k"), "m", cost, T0 + i as i64);
            spend.settle(id, e).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), Settlement::Applied);
    }
}

async fn concurrent_reservations_never_overshoot<H: Harness>() {
    let h = H::new().await;
    let s = h.open().await;
    let ok = race(std::slice::from_ref(&s), 200, 1.0, 50.0).await;
    assert_eq!(ok.len(), 50);
    let k = s.spend.spent("key:k").await.unwrap();
    assert_eq!((k.spent_usd, k.reserved_usd), (0.0, 50.0));

    settle_all(std::slice::from_ref(&s), &ok, 0.5).await;
    let k = s.spend.spent("key:k").await.unwrap();
    assert_eq!((k.spent_usd, k.reserved_usd), (25.0, 0.0));
    assert_eq!(s.spend.spent("global").await.unwrap().spent_usd, 25.0);
    assert_eq!(s.spend.total(&LedgerFilter::default()).await.unwrap(), 25.0);
    assert_eq!(
        s.spend
            .ledger(&LedgerFilter::default())
            .await
            .unwrap()
            .len(),
        50
    );
    // Exact money: 0.1 fifty times fills $5 exactly.
    let ok = race(std::slice::from_ref(&s), 60, 0.1, 30.0).await;
    assert_eq!(ok.len(), 50);
    h.finish().await;
}

async fn two_gateways_never_overshoot<H: Harness>() {
    let h = H::new().await;
    if !H::SHARED {
        // One gateway per SQLite file: the second is refused, clearly, until the first
        // is gone.
        let first = h.open().await;
        let Err(StoreError::Config(msg)) = store::open(&h.url()).await else {
            panic!("a second gateway opened the same SQLite file");
        };
        assert!(msg.contains("in use by another gateway"), "{msg}");
        assert!(msg.contains("postgres://"), "{msg}");
        drop(first);
        let _again = h.open().await;
        return;
    }
    let gateways = [h.open().await, h.open().await];
    let ok = race(&gateways, 200, 1.0, 50.0).await;
    assert_eq!(ok.len(), 50);
    settle_all(&gateways, &ok, 0.75).await;
    for g in &gateways {
        let k = g.spend.spent("key:k").await.unwrap();
        assert_eq!((k.spent_usd, k.reserved_usd), (37.5, 0.0));
    }
    let ok = race(&gateways, 40, 1.0, 50.0).await;
    assert_eq!(ok.len(), 12);
    h.finish().await;
}

/// Reservations naming the same scopes in opposite orders ([a, b] and [b, a]), many at
/// once and from two gateways where the database allows it, all complete: none waits
/// forever or fails with a deadlock, and both scopes add up exactly.
async fn opposite_scope_orders_never_deadlock<H: Harness>() {
    let h = H::new().await;
    let handles = if H::SHARED {
        vec![h.open().await, h.open().await]
    } else {
        vec![h.open().await]
    };
    let mut tasks = Vec::new();
    for i in 0..200 {
        let spend = handles[i % handles.len()].spend.clone();
        tasks.push(tokio::spawn(async move {
            let (a, b) = (scope("key:a", 1e6), scope("model:b", 1e6));
            let scopes = if i % 2 == 0 { vec![a, b] } else { vec![b, a] };
            let id = spend
                .reserve(reservation(&format!("d{i}"), scopes, 1.0))
                .await
                .unwrap_or_else(|e| panic!("reservation {i}: {e:?}"));
            let settled = spend
                .settle(id, entry(&format!("d{i}"), None, "m", 0.5, T0 + i as i64))
                .await
                .unwrap_or_else(|e| panic!("settlement {i}: {e:?}"));
            assert_eq!(settled, Settlement::Applied);
        }));
    }
    let all = futures_util::future::join_all(tasks);
    let done = tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("reservations in opposite scope orders did not finish: a deadlock");
    for t in done {
        t.unwrap();
    }
    for name in ["key:a", "model:b"] {
        let spent = handles[0].spend.spent(name).await.unwrap();
        assert_eq!(
            (spent.spent_usd, spent.reserved_usd),
            (100.0, 0.0),
            "{name}"
        );
    }
    drop(handles);
    h.finish().await;
}

async fn settle_is_idempotent<H: Harness>() {
    let h = H::new().await;
    let s = h.open().await;
    let g = || vec![scope("global", 10.0)];
    let id = s.spend.reserve(reservation("r1", g(), 2.0)).await.unwrap();
    let e = entry("r1", None, "m", 1.0, T0);
    assert_eq!(
        s.spend.settle(id, e.clone()).await.unwrap(),
        Settlement::Applied
    );
    assert_eq!(
        s.spend.settle(id, e.clone()).await.unwrap(),
        Settlement::AlreadySettled
    );
    let now = s.spend.spent("global").await.unwrap();
    assert_eq!((now.spent_usd, now.reserved_usd), (1.0, 0.0));

    // Two settles racing: one applies, one sees it done.
    let id = s.spend.reserve(reservation("r2", g(), 2.0)).await.unwrap();
    let (a, b) = tokio::join!(
        s.spend.settle(id, entry("r2", None, "m", 1.5, T0)),
        s.spend.settle(id, entry("r2", None, "m", 1.5, T0)),
    );
    let mut outcomes = vec![a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        outcomes,
        vec![Settlement::AlreadySettled, Settlement::Applied]
    );
    assert_eq!(s.spend.spent("global").await.unwrap().spent_usd, 2.5);

    // An id never reserved: the row is kept, no scope moves; once.
    let ghost = ReservationId(1_000_000);
    let e = entry("r3", None, "m", 4.0, T0);
    assert_eq!(
        s.spend.settle(ghost, e.clone()).await.unwrap(),
        Settlement::Unreserved
    );
    assert_eq!(
        s.spend.settle(ghost, e).await.unwrap(),
        Settlement::AlreadySettled
    );
    assert_eq!(s.spend.spent("global").await.unwrap().spent_usd, 2.5);
    assert_eq!(
        s.spend
            .ledger(&LedgerFilter::default())
            .await
            .unwrap()
            .len(),
        3
    );
    h.finish().await;
}

/// The ledger holds exactly the three `lost*` reservations of
/// `reconcile_counts_a_dead_gateways_reservations`, each counted in full.
async fn assert_lost_rows(s: &Stores) {
    let rows = s.spend.ledger(&LedgerFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!((r.status, r.cost_usd), (0, 2.0));
        assert_eq!((r.key_id.as_deref(), r.model.as_str()), (Some("k"), "m"));
        assert!(r.request_id.starts_with("lost"));
    }
}

async fn reconcile_counts_a_dead_gateways_reservations<H: Harness>() {
    let h = H::new().await;
    let scopes = || {
        vec![
            scope("key:k", 10.0),
            scope("global", 100.0),
            scope("model:m", 50.0),
        ]
    };
    let crashed = h.open().await;
    let mut lost = Vec::new();
    for i in 0..3 {
        lost.push(
            crashed
                .spend
                .reserve(reservation(&format!("lost{i}"), scopes(), 2.0))
                .await
                .unwrap(),
        );
    }
    if !H::SHARED {
        // The owner stops (however it stops: `killed_gateway_is_reconciled` kills one)
        // with its reservations in flight; the next start counts them in full.
        drop(crashed);
        let restarted = h.open().await;
        assert_eq!(restarted.spend.reconcile().await.unwrap(), 3);
        assert_eq!(restarted.spend.reconcile().await.unwrap(), 0);
        let k = restarted.spend.spent("key:k").await.unwrap();
        assert_eq!((k.spent_usd, k.reserved_usd), (6.0, 0.0));
        let g = restarted.spend.spent("global").await.unwrap();
        assert_eq!((g.spent_usd, g.reserved_usd), (6.0, 0.0));
        let late = entry("lost0", Some("k"), "m", 0.5, T0);
        assert_eq!(
            restarted.spend.settle(lost[0], late).await.unwrap(),
            Settlement::AlreadySettled
        );
        assert_lost_rows(&restarted).await;
        // Ids are never handed out twice, across restarts.
        let next = restarted
            .spend
            .reserve(reservation("next", scopes(), 1.0))
            .await
            .unwrap();
        assert!(lost.iter().all(|l| l.0 < next.0));
        h.finish().await;
        return;
    }
    let live = h.open().await;
    let alive = live
        .spend
        .reserve(reservation("alive", vec![scope("global", 100.0)], 1.0))
        .await
        .unwrap();
    // The crashed gateway is still alive here: nobody may take its reservations.
    assert_eq!(live.spend.reconcile().await.unwrap(), 0);
    drop(crashed);

    let restarted = h.open().await;
    reconcile_until(&restarted, 3).await;
    let k = restarted.spend.spent("key:k").await.unwrap();
    assert_eq!((k.spent_usd, k.reserved_usd), (6.0, 0.0));
    let g = restarted.spend.spent("global").await.unwrap();
    assert_eq!(
        (g.spent_usd, g.reserved_usd),
        (6.0, 1.0),
        "the live reservation stays"
    );
    assert_lost_rows(&restarted).await;
    // A late settle of a reconciled reservation changes nothing; the live one settles.
    let late = entry("lost0", Some("k"), "m", 0.5, T0);
    assert_eq!(
        restarted.spend.settle(lost[0], late).await.unwrap(),
        Settlement::AlreadySettled
    );
    let e = entry("alive", None, "m", 0.5, T0);
    assert_eq!(
        live.spend.settle(alive, e).await.unwrap(),
        Settlement::Applied
    );
    assert_eq!(
        restarted.spend.spent("global").await.unwrap().spent_usd,
        6.5
    );
    assert_eq!(restarted.spend.reconcile().await.unwrap(), 0);
    h.finish().await;
}

async fn abandoned_reservation_is_released<H: Harness>() {
    let h = H::new().await;
    let s = h.open().await;
    for i in 0..5 {
        let name = format!("key:gone{i}");
        let r = reservation(&format!("gone{i}"), vec![scope(&name, 5.0)], 1.0);
        // The caller gives up at once (a client disconnect); the store must not leak it.
        if let Ok(done) = tokio::time::timeout(Duration::ZERO, s.spend.reserve(r)).await {
            // Finished before the caller left (not expected, but legal): settle it.
            let id = done.unwrap();
            s.spend
                .settle(id, entry("gone", None, "m", 0.0, T0))
                .await
                .unwrap();
        }
        // Done once the scope exists (the reservation committed) and holds nothing.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = s.spend.spent(&name).await.unwrap();
            if now.limit_usd.is_some() && now.reserved_usd == 0.0 {
                assert_eq!(now.spent_usd, 0.0);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "abandoned reservation leaked: {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert!(
        s.spend
            .ledger(&LedgerFilter::default())
            .await
            .unwrap()
            .len()
            <= 5
    );
    h.finish().await;
}

async fn periods_reset_on_schedule<H: Harness>() {
    let h = H::new().await;
    let clock = Arc::new(ManualClock::new(T0));
    let s = h.open_at(clock.clone()).await;
    let day: Period = "1d".parse().unwrap();
    let scopes = || vec![BudgetScope::key("p", 10.0, Some(day))];

    let id = s
        .spend
        .reserve(reservation("r1", scopes(), 6.0))
        .await
        .unwrap();
    s.spend
        .settle(id, entry("r1", Some("p"), "m", 6.0, T0))
        .await
        .unwrap();
    let err = s
        .spend
        .reserve(reservation("r2", scopes(), 6.0))
        .await
        .unwrap_err();
    assert_eq!(over_budget(err), ("key:p".to_owned(), 4.0));
    let now = s.spend.spent("key:p").await.unwrap();
    assert_eq!((now.period, now.period_start), (Some(day), Some(T0)));

    clock.advance(DAY - 1);
    assert!(s
        .spend
        .reserve(reservation("r3", scopes(), 6.0))
        .await
        .is_err());
    clock.advance(1);
    let now = s.spend.spent("key:p").await.unwrap();
    assert_eq!((now.spent_usd, now.period_start), (0.0, Some(T0 + DAY)));
    // In flight across the next reset: the reservation carries over, the cost lands
    // in the window where it is settled.
    let id = s
        .spend
        .reserve(reservation("r4", scopes(), 6.0))
        .await
        .unwrap();
    clock.advance(DAY * 5 / 2);
    let now = s.spend.spent("key:p").await.unwrap();
    assert_eq!((now.spent_usd, now.reserved_usd), (0.0, 6.0));
    assert_eq!(
        now.period_start,
        Some(T0 + 3 * DAY),
        "windows stay on schedule"
    );
    s.spend
        .settle(id, entry("r4", Some("p"), "m", 5.0, T0))
        .await
        .unwrap();
    let now = s.spend.spent("key:p").await.unwrap();
    assert_eq!(
        (now.spent_usd, now.reserved_usd, now.period_start),
        (5.0, 0.0, Some(T0 + 3 * DAY))
    );
    let err = s
        .spend
        .reserve(reservation("r5", scopes(), 6.0))
        .await
        .unwrap_err();
    assert_eq!(over_budget(err).1, 5.0);

    // Dropping the period keeps the spend and stops resets.
    let forever = vec![BudgetScope::key("p", 10.0, None)];
    s.spend
        .reserve(reservation("r6", forever, 1.0))
        .await
        .unwrap();
    clock.advance(DAY * 10);
    let now = s.spend.spent("key:p").await.unwrap();
    assert_eq!(
        (now.spent_usd, now.period, now.period_start),
        (5.0, None, None)
    );
    h.finish().await;
}

async fn ledger_queries<H: Harness>() {
    let h = H::new().await;
    let s = h.open().await;
    let rows = [
        ("a", Some("k1"), "m1", 1.0, T0),
        ("b", Some("k1"), "m2", 2.0, T0 + 1_000),
        ("c", Some("k2"), "m1", 4.0, T0 + DAY),
        ("d", None, "m2", 8.0, T0 + DAY + 5),
        ("e", Some("k2"), "m2", 16.0, T0 + 3 * DAY),
    ];
    for (req, key, model, cost, at) in rows {
        let id = s
            .spend
            .reserve(reservation(req, vec![], cost))
            .await
            .unwrap();
        s.spend
            .settle(id, entry(req, key, model, cost, at))
            .await
            .unwrap();
    }
    let ids = |f: LedgerFilter| {
        let spend = s.spend.clone();
        async move {
            let rows = spend.ledger(&f).await.unwrap();
            rows.into_iter().map(|r| r.request_id).collect::<Vec<_>>()
        }
    };
    let all = LedgerFilter::default();
    assert_eq!(ids(all.clone()).await, ["e", "d", "c", "b", "a"]);
    let k1 = LedgerFilter {
        key: Some("k1".into()),
        ..all.clone()
    };
    assert_eq!(ids(k1.clone()).await, ["b", "a"]);
    let by_alias = LedgerFilter {
        key: Some("alias-k2".into()),
        ..all.clone()
    };
    assert_eq!(ids(by_alias).await, ["e", "c"]);
    let m2 = LedgerFilter {
        model: Some("m2".into()),
        ..all.clone()
    };
    assert_eq!(ids(m2.clone()).await, ["e", "d", "b"]);
    let window = LedgerFilter {
        since: Some(T0 + 1_000),
        until: Some(T0 + 3 * DAY),
        ..all.clone()
    };
    assert_eq!(ids(window.clone()).await, ["d", "c", "b"]);
    let page = LedgerFilter {
        limit: Some(2),
        offset: 1,
        ..all.clone()
    };
    assert_eq!(ids(page).await, ["d", "c"]);
    let tail = LedgerFilter {
        offset: 3,
        ..all.clone()
    };
    assert_eq!(ids(tail).await, ["b", "a"]);

    assert_eq!(s.spend.total(&all).await.unwrap(), 31.0);
    assert_eq!(s.spend.total(&k1).await.unwrap(), 3.0);
    assert_eq!(s.spend.total(&m2).await.unwrap(), 26.0);
    assert_eq!(s.spend.total(&window).await.unwrap(), 14.0);
    let none = LedgerFilter {
        model: Some("nope".into()),
        ..all.clone()
    };
    assert_eq!(s.spend.total(&none).await.unwrap(), 0.0);

    let group = |g: &str, cost: f64, requests: u64| SpendGroup {
        group: g.to_owned(),
        cost_usd: cost,
        requests,
        tokens: requests * 120,
    };
    assert_eq!(
        s.spend.grouped(GroupBy::Key, &all).await.unwrap(),
        [group("k2", 20.0, 2), group("", 8.0, 1), group("k1", 3.0, 2)]
    );
    assert_eq!(
        s.spend.grouped(GroupBy::Model, &all).await.unwrap(),
        [group("m2", 26.0, 3), group("m1", 5.0, 2)]
    );
    assert_eq!(
        s.spend.grouped(GroupBy::Day, &all).await.unwrap(),
        [
            group("2023-11-14", 3.0, 2),
            group("2023-11-15", 12.0, 2),
            group("2023-11-17", 16.0, 1)
        ]
    );
    assert_eq!(
        s.spend.grouped(GroupBy::Day, &m2).await.unwrap(),
        [
            group("2023-11-14", 2.0, 1),
            group("2023-11-15", 8.0, 1),
            group("2023-11-17", 16.0, 1)
        ]
    );
    assert!(s
        .spend
        .grouped(GroupBy::Model, &none)
        .await
        .unwrap()
        .is_empty());
    h.finish().await;
}

fn new_key(secret: &str, alias: Option<&str>) -> NewKey {
    NewKey {
        key_hash: hash(secret),
        key_alias: alias.map(str::to_owned),
        ..NewKey::default()
    }
}

async fn key_crud<H: Harness>() {
    let h = H::new().await;
    let s = h.open().await;
    let full = NewKey {
        key_hash: hash("sk-one"),
        key_alias: Some("team-a".into()),
        models: vec!["openai/gpt-4o".into(), "anthropic/claude".into()],
        max_budget: Some(12.5),
        rpm_limit: Some(60),
        tpm_limit: Some(100_000),
        budget_duration: Some("30d".parse().unwrap()),
        expires_at: Some(T0 + DAY),
        metadata: serde_json::json!({"team": "a", "tags": [1, 2], "nested": {"x": null}}),
        blocked: false,
        tags: vec!["eu".into(), "paid".into()],
    };
    let a = s.keys.create(full.clone()).await.unwrap();
    assert_eq!(a.id.len(), 32);
    assert_eq!(
        (a.key_hash.as_str(), a.key_alias.as_deref()),
        (full.key_hash.as_str(), Some("team-a"))
    );
    assert_eq!(
        (a.models.clone(), a.max_budget, a.rpm_limit, a.tpm_limit),
        (full.models.clone(), Some(12.5), Some(60), Some(100_000))
    );
    assert_eq!(
        (a.budget_duration, a.expires_at),
        (full.budget_duration, Some(T0 + DAY))
    );
    assert_eq!(a.metadata, full.metadata);
    assert_eq!(a.tags, full.tags);
    assert!(!a.blocked && a.created_at > 0);
    assert_eq!(s.keys.get(&a.id).await.unwrap().as_ref(), Some(&a));
    assert_eq!(
        s.keys.find_by_hash(&hash("sk-one")).await.unwrap().as_ref(),
        Some(&a)
    );
    let upper = hash("sk-one").to_uppercase();
    assert_eq!(
        s.keys.find_by_hash(&upper).await.unwrap().as_ref(),
        Some(&a)
    );
    assert_eq!(s.keys.find_by_hash(&hash("sk-other")).await.unwrap(), None);
    assert_eq!(s.keys.find_by_hash("sk-one").await.unwrap(), None);
    assert_eq!(s.keys.get("missing").await.unwrap(), None);

    let b = s.keys.create(new_key("sk-two", None)).await.unwrap();
    let c = s.keys.create(new_key("sk-three", None)).await.unwrap();
    let listed: Vec<_> = s.keys.list(0, 10).await.unwrap();
    assert_eq!(listed.len(), 3);
    let mut ids: Vec<_> = listed.iter().map(|k| k.id.clone()).collect();
    assert_eq!(s.keys.list(1, 1).await.unwrap().len(), 1);
    assert_eq!(s.keys.list(3, 10).await.unwrap().len(), 0);
    ids.sort();
    let mut want = vec![a.id.clone(), b.id.clone(), c.id.clone()];
    want.sort();
    assert_eq!(ids, want);

    let update = KeyUpdate {
        key_alias: Some(Some("team-a2".into())),
        max_budget: Some(None),
        blocked: Some(true),
        metadata: Some(serde_json::json!({"v": 2})),
        tags: Some(vec!["free".into()]),
        ..KeyUpdate::default()
    };
    let a2 = s.keys.update(&a.id, update).await.unwrap().unwrap();
    assert_eq!(a2.tags, ["free"]);
    assert_eq!(
        (a2.key_alias.as_deref(), a2.max_budget, a2.blocked),
        (Some("team-a2"), None, true)
    );
    assert_eq!(
        (a2.rpm_limit, a2.models.clone(), a2.created_at),
        (Some(60), a.models.clone(), a.created_at)
    );
    assert_eq!(s.keys.get(&a.id).await.unwrap(), Some(a2.clone()));
    // Rotation: the old hash no longer finds it.
    let rotate = KeyUpdate {
        key_hash: Some(hash("sk-one-rotated")),
        ..KeyUpdate::default()
    };
    let rotated = s.keys.update(&a.id, rotate).await.unwrap().unwrap();
    assert_eq!(rotated.tags, ["free"], "an update without tags keeps them");
    assert_eq!(s.keys.find_by_hash(&hash("sk-one")).await.unwrap(), None);
    assert_eq!(
        s.keys
            .find_by_hash(&hash("sk-one-rotated"))
            .await
            .unwrap()
            .unwrap()
            .id,
        a.id
    );
    assert_eq!(
        s.keys
            .update("missing", KeyUpdate::default())
            .await
            .unwrap(),
        None
    );

    assert!(s.keys.delete(&b.id).await.unwrap());
    assert!(!s.keys.delete(&b.id).await.unwrap());
    assert_eq!(s.keys.get(&b.id).await.unwrap(), None);
    assert_eq!(s.keys.find_by_hash(&hash("sk-two")).await.unwrap(), None);
    assert_eq!(s.keys.list(0, 10).await.unwrap().len(), 2);
    h.finish().await;
}

async fn key_uniqueness<H: Harness>() {
    let h = H::new().await;
    let s = h.open().await;
    let a = s.keys.create(new_key("sk-a", Some("alias"))).await.unwrap();
    let err = s
        .keys
        .create(new_key("sk-a", Some("other")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(UniqueField::KeyHash)),
        "{err:?}"
    );
    let err = s
        .keys
        .create(new_key("sk-b", Some("alias")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(UniqueField::KeyAlias)),
        "{err:?}"
    );
    // Keys without an alias do not collide.
    s.keys.create(new_key("sk-c", None)).await.unwrap();
    let d = s.keys.create(new_key("sk-d", None)).await.unwrap();
    let steal = KeyUpdate {
        key_alias: Some(Some("alias".into())),
        ..KeyUpdate::default()
    };
    let err = s.keys.update(&d.id, steal).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(UniqueField::KeyAlias)),
        "{err:?}"
    );
    let steal = KeyUpdate {
        key_hash: Some(hash("sk-a")),
        ..KeyUpdate::default()
    };
    let err = s.keys.update(&d.id, steal).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(UniqueField::KeyHash)),
        "{err:?}"
    );
    // A clear key passed by mistake is refused, not stored.
    let clear = NewKey {
        key_hash: "sk-live-1234".into(),
        ..NewKey::default()
    };
    let err = s.keys.create(clear).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    assert_eq!(s.keys.list(0, 10).await.unwrap().len(), 3);
    assert_eq!(
        s.keys
            .get(&a.id)
            .await
            .unwrap()
            .unwrap()
            .key_alias
            .as_deref(),
        Some("alias")
    );
    h.finish().await;
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name::<super::SqliteDb>().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name::<super::PgDb>().await;
                }
            )*
        }
    };
}

conformance!(
    reserve_settle_arithmetic,
    no_partial_reservation,
    concurrent_reservations_never_overshoot,
    two_gateways_never_overshoot,
    opposite_scope_orders_never_deadlock,
    settle_is_idempotent,
    reconcile_counts_a_dead_gateways_reservations,
    abandoned_reservation_is_released,
    periods_reset_on_schedule,
    ledger_queries,
    key_crud,
    key_uniqueness,
    killed_gateway_is_reconciled,
    killed_gateway_without_ledger_rows_is_reconciled,
    file_metadata,
    response_state,
    model_state,
);

fn stored_file(id: &str, owner: Option<&str>, purpose: &str) -> store::StoredFile {
    store::StoredFile {
        id: id.to_owned(),
        owner: owner.map(str::to_owned),
        filename: format!("{id}.jsonl"),
        bytes: 3_000_000_000,
        purpose: purpose.to_owned(),
        created_at: T0,
        object_path: format!("prefix/{id}"),
    }
}

fn page(
    owner: Option<&str>,
    purpose: Option<&str>,
    after: Option<&str>,
    order: store::FileOrder,
    limit: u32,
) -> store::FileQuery {
    store::FileQuery {
        owner: owner.map(str::to_owned),
        purpose: purpose.map(str::to_owned),
        after: after.map(str::to_owned),
        order,
        limit,
    }
}

/// What every [`store::FileStore`] must do: round trip, filter by owner and purpose,
/// page by id in both orders from a cursor (a deleted file's id included), delete.
async fn check_file_store(files: &dyn store::FileStore) {
    use store::FileOrder::{Asc, Desc};
    let ids = |v: Vec<store::StoredFile>| v.into_iter().map(|f| f.id).collect::<Vec<_>>();
    for (id, owner, purpose) in [
        ("file-01", Some("k1"), "batch"),
        ("file-02", None, "batch"),
        ("file-03", Some("k1"), "assistants"),
        ("file-04", Some("k2"), "batch"),
        ("file-05", Some("k1"), "batch"),
    ] {
        files
            .insert(&stored_file(id, owner, purpose))
            .await
            .unwrap();
    }
    assert_eq!(
        files.get("file-03").await.unwrap(),
        Some(stored_file("file-03", Some("k1"), "assistants"))
    );
    assert_eq!(files.get("file-02").await.unwrap().unwrap().owner, None);
    assert_eq!(files.get("file-99").await.unwrap(), None);

    let all = files
        .list(&page(None, None, None, Desc, 100))
        .await
        .unwrap();
    assert_eq!(
        ids(all),
        ["file-05", "file-04", "file-03", "file-02", "file-01"]
    );
    let k1 = files
        .list(&page(Some("k1"), None, None, Asc, 100))
        .await
        .unwrap();
    assert_eq!(ids(k1), ["file-01", "file-03", "file-05"]);
    let k1_batch = page(Some("k1"), Some("batch"), None, Desc, 100);
    assert_eq!(
        ids(files.list(&k1_batch).await.unwrap()),
        ["file-05", "file-01"]
    );
    let first = files.list(&page(None, None, None, Asc, 2)).await.unwrap();
    assert_eq!(ids(first), ["file-01", "file-02"]);
    let next = files
        .list(&page(None, None, Some("file-02"), Asc, 2))
        .await
        .unwrap();
    assert_eq!(ids(next), ["file-03", "file-04"]);
    let back = files
        .list(&page(None, None, Some("file-04"), Desc, 10))
        .await
        .unwrap();
    assert_eq!(ids(back), ["file-03", "file-02", "file-01"]);

    assert!(files.delete("file-03").await.unwrap());
    assert!(!files.delete("file-03").await.unwrap());
    assert_eq!(files.get("file-03").await.unwrap(), None);
    // A deleted file's id is still a cursor.
    let after_gone = files
        .list(&page(Some("k1"), None, Some("file-03"), Asc, 10))
        .await
        .unwrap();
    assert_eq!(ids(after_gone), ["file-05"]);
}

async fn file_metadata<H: Harness>() {
    let h = H::new().await;
    let s = h.open().await;
    check_file_store(s.files.as_ref()).await;
    h.finish().await;
}

#[tokio::test]
async fn memory_file_metadata() {
    check_file_store(&store::MemoryFileStore::default()).await;
}

fn stored_response(id: &str, owner: &str, text: &str) -> store::StoredResponse {
    store::StoredResponse {
        id: id.to_owned(),
        owner: owner.to_owned(),
        created_at: T0,
        response: format!(r#"{{"id":"{id}","output":"{text}"}}"#),
        input_items: format!(r#"[{{"type":"message","content":"{text}"}}]"#),
    }
}

/// What every [`store::ResponseStore`] must do: round trip, only for its owner (another
/// owner reads and deletes nothing), a repeated id refused, delete.
async fn check_response_store(responses: &dyn store::ResponseStore) {
    let a = stored_response("resp_a", "key:k1", "é ünïcode \\n");
    let b = stored_response("resp_b", "master", "two");
    responses.put(&a).await.unwrap();
    responses.put(&b).await.unwrap();
    assert_eq!(
        responses.get("resp_a", "key:k1").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(responses.get("resp_a", "key:k2").await.unwrap(), None);
    assert_eq!(responses.get("resp_a", "master").await.unwrap(), None);
    assert_eq!(responses.get("resp_b", "master").await.unwrap(), Some(b));
    assert_eq!(responses.get("resp_zz", "master").await.unwrap(), None);
    assert!(responses.put(&a).await.is_err(), "an id is never reused");
    assert!(!responses.delete("resp_a", "master").await.unwrap());
    assert_eq!(responses.get("resp_a", "key:k1").await.unwrap(), Some(a));
    assert!(responses.delete("resp_a", "key:k1").await.unwrap());
    assert!(!responses.delete("resp_a", "key:k1").await.unwrap());
    assert_eq!(responses.get("resp_a", "key:k1").await.unwrap(), None);
}

async fn response_state<H: Harness>() {
    let h = H::new().await;
    let s = h.open().await;
    check_response_store(s.responses.as_ref()).await;
    // What one handle stored, the next one (a restart) reads.
    drop(s);
    let again = h.open().await;
    let kept = stored_response("resp_kept", "master", "kept");
    again.responses.put(&kept).await.unwrap();
    drop(again);
    let third = h.open().await;
    assert_eq!(
        third.responses.get("resp_kept", "master").await.unwrap(),
        Some(kept)
    );
    drop(third);
    h.finish().await;
}

#[tokio::test]
async fn memory_response_state() {
    check_response_store(&store::MemoryResponseStore::default()).await;
}

#[tokio::test]
async fn memory_response_state_forgets_the_oldest_beyond_its_limit() {
    let one = stored_response("resp_1", "master", "first").size();
    let memory = store::MemoryResponseStore::with_limit(one * 2);
    let responses: &dyn store::ResponseStore = &memory;
    for id in ["resp_1", "resp_2", "resp_3"] {
        responses
            .put(&stored_response(id, "master", "first"))
            .await
            .unwrap();
    }
    assert_eq!(responses.get("resp_1", "master").await.unwrap(), None);
    assert!(responses.get("resp_2", "master").await.unwrap().is_some());
    assert!(responses.get("resp_3", "master").await.unwrap().is_some());
}

/// SIGKILLs a real gateway process holding reservations: what it settled stays, what it
/// had in flight is counted in full by the next start's reconcile.
async fn killed_gateway_is_reconciled<H: Harness>() {
    killed_gateway_is_reconciled_with::<H>(true).await;
}

/// As [`killed_gateway_is_reconciled`], the killed gateway settling without ledger rows
/// (`disable_spend_logs`): its two settled requests count at their cost, not again at
/// their reservation (SQLite reads its marks), and have no row.
async fn killed_gateway_without_ledger_rows_is_reconciled<H: Harness>() {
    killed_gateway_is_reconciled_with::<H>(false).await;
}

async fn killed_gateway_is_reconciled_with<H: Harness>(with_rows: bool) {
    let h = H::new().await;
    kill_crash_child(h.url(), &[(!with_rows).then_some("no-ledger")]).await;
    let s = h.open().await;
    reconcile_until(&s, 3).await;
    let k = s.spend.spent("key:crash").await.unwrap();
    assert_eq!((k.spent_usd, k.reserved_usd), (2.0 * 1.5 + 3.0 * 2.0, 0.0));
    let rows = s.spend.ledger(&LedgerFilter::default()).await.unwrap();
    let mut statuses: Vec<_> = rows.iter().map(|r| (r.status, r.cost_usd)).collect();
    statuses.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let settled: &[(u16, f64)] = if with_rows {
        &[(200, 1.5), (200, 1.5)]
    } else {
        &[]
    };
    let mut want = vec![(0, 2.0), (0, 2.0), (0, 2.0)];
    want.extend_from_slice(settled);
    assert_eq!(statuses, want);
    h.finish().await;
}

/// SIGKILLs a gateway process whose write interval is an hour, its two settled
/// requests not committed yet (past the default interval): the next start counts all
/// five reservations in full, never less than billed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_killed_gateway_with_a_long_write_interval_counts_every_reservation() {
    for no_ledger in [None, Some("no-ledger")] {
        let h = SqliteDb::new().await;
        kill_crash_child(h.url(), &[Some("interval=3600"), no_ledger]).await;
        let s = h.open().await;
        assert_eq!(s.spend.reconcile().await.unwrap(), 5, "{no_ledger:?}");
        let k = s.spend.spent("key:crash").await.unwrap();
        assert_eq!((k.spent_usd, k.reserved_usd), (5.0 * 2.0, 0.0));
        let rows = s.spend.ledger(&LedgerFilter::default()).await.unwrap();
        let statuses: Vec<_> = rows.iter().map(|r| (r.status, r.cost_usd)).collect();
        assert_eq!(statuses, [(0, 2.0); 5], "{no_ledger:?}");
    }
}

/// Runs `liter-llm-store-crash-child` on `url` with `args`, waits for it to say it is
/// ready, and SIGKILLs it.
async fn kill_crash_child(url: String, args: &[Option<&'static str>]) {
    let args: Vec<&'static str> = args.iter().flatten().copied().collect();
    let child = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_liter-llm-store-crash-child"))
            .arg(url)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let ready = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("CRASH-CHILD-READY"));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        ready
    });
    assert!(child.await.unwrap(), "the child gateway never got ready");
}

/// A long write interval (`general.spend_write_interval_secs`, LiteLLM's
/// `proxy_batch_write_at`): spend is exact in memory at once, while the database file
/// (read by a connection of its own) gets nothing until a flush, until
/// [`store::MAX_WAITING_ROWS`] settled rows wait, or until the handle closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_long_write_interval_commits_on_flush_full_queue_and_close() {
    let h = SqliteDb::new().await;
    // (ledger rows, the global scope's committed spend in nanodollars)
    let on_disk = || -> (i64, i64) {
        let db = rusqlite::Connection::open(h.path()).unwrap();
        let rows = db
            .query_row("SELECT COUNT(*) FROM spend_ledger", [], |r| r.get(0))
            .unwrap();
        let spent = db
            .query_row(
                "SELECT COALESCE(SUM(spent_nanos), 0) FROM budget_scopes WHERE scope = 'global'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        (rows, spent)
    };
    let g = || vec![scope("global", 1e6)];
    let s = h.open().await;
    s.spend.set_write_interval(Duration::from_secs(3600));
    let id = s.spend.reserve(reservation("a", g(), 1.0)).await.unwrap();
    let e = entry("a", None, "m", 0.25, T0);
    assert_eq!(s.spend.settle(id, e).await.unwrap(), Settlement::Applied);
    let k = s.spend.spent("global").await.unwrap();
    assert_eq!((k.spent_usd, k.reserved_usd), (0.25, 0.0));
    // Nothing reaches the file, past the default interval and a few writer turns
    // (there is no signal for a commit that does not happen: look for a while).
    let until = Instant::now() + store::DEFAULT_WRITE_INTERVAL + Duration::from_millis(500);
    while Instant::now() < until {
        assert_eq!(on_disk(), (0, 0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.spend.flush().await.unwrap();
    assert_eq!(on_disk(), (1, 250_000_000));

    // A full queue commits at once: one row short of it, nothing new is on disk; the
    // last one makes the writer commit them all.
    let full = store::MAX_WAITING_ROWS;
    for i in 0..full {
        let name = format!("q{i}");
        let id = s
            .spend
            .reserve(reservation(&name, g(), 0.01))
            .await
            .unwrap();
        if i + 1 == full {
            assert_eq!(on_disk().0, 1, "committed before the queue was full");
        }
        let e = entry(&name, None, "m", 0.001, T0);
        assert_eq!(s.spend.settle(id, e).await.unwrap(), Settlement::Applied);
    }
    let want = 1 + i64::try_from(full).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while on_disk().0 < want {
        assert!(
            Instant::now() < deadline,
            "a full queue was never committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let spent = 250_000_000 + 1_000_000 * i64::try_from(full).unwrap();
    assert_eq!(on_disk(), (want, spent));

    // Closing the handle commits what waits.
    let id = s.spend.reserve(reservation("z", g(), 1.0)).await.unwrap();
    let e = entry("z", None, "m", 0.5, T0);
    assert_eq!(s.spend.settle(id, e).await.unwrap(), Settlement::Applied);
    assert_eq!(on_disk(), (want, spent));
    drop(s);
    assert_eq!(on_disk(), (want + 1, spent + 500_000_000));
    let s = h.open().await;
    assert_eq!(s.spend.reconcile().await.unwrap(), 0);
}

/// Only hashes reach the disk: the secret is nowhere in the database files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_holds_no_clear_key() {
    let h = SqliteDb::new().await;
    let s = h.open().await;
    let secret = "sk-liter-9f8e7d6c5b4a39281706f5e4d3c2b1a0";
    let key = s.keys.create(new_key(secret, Some("svc"))).await.unwrap();
    let id = s
        .spend
        .reserve(reservation(
            "r",
            vec![BudgetScope::key(&key.id, 5.0, None)],
            1.0,
        ))
        .await
        .unwrap();
    let mut e = entry("r", None, "m", 0.5, T0);
    e.key_id = Some(key.id.clone());
    s.spend.settle(id, e).await.unwrap();
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal", ".lock"] {
        let mut p = h.path().into_os_string();
        p.push(suffix);
        if let Ok(b) = std::fs::read(&p) {
            bytes.extend(b);
        }
    }
    // And the reservation journal beside it.
    let mut journal = h.path().into_os_string();
    journal.push(".journal");
    let mut segments = 0;
    for f in std::fs::read_dir(&journal).unwrap() {
        bytes.extend(std::fs::read(f.unwrap().path()).unwrap());
        segments += 1;
    }
    assert!(segments > 0, "sanity: the journal was read");
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(key.key_hash.as_bytes()),
        "sanity: the hash is on disk"
    );
    assert!(
        !contains(secret.as_bytes()),
        "the clear key was written to the database"
    );
    assert!(
        !contains(&secret.as_bytes()[3..]),
        "part of the clear key was written"
    );
    drop(s);
    // Reopening an existing file runs no migration twice and sees the data.
    let s = h.open().await;
    assert_eq!(
        s.keys
            .find_by_hash(&hash(secret))
            .await
            .unwrap()
            .unwrap()
            .id,
        key.id
    );
    assert!(matches!(
        store::open(":memory:").await,
        Err(StoreError::Config(_))
    ));
}

/// SQLite applies queued writes in queue order, each against the counters the ones
/// before it left (the writer runs a whole queue as one batch): a settlement frees room
/// for the reservations queued after it, a reservation that does not fit is refused
/// without touching any scope, and the later ones that fit are still admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_batch_applies_in_queue_order() {
    let h = SqliteDb::new().await;
    let s = h.open().await;
    let team = || scope("team", 1.0);
    let a = s
        .spend
        .reserve(reservation("a", vec![team()], 0.5))
        .await
        .unwrap();
    // Polled (and so queued) in this order, all before the writer answers any.
    let settle = s.spend.settle(a, entry("a", None, "m", 0.1, T0));
    let reserves = futures_util::future::join_all([
        s.spend.reserve(reservation("b", vec![team()], 0.6)),
        s.spend
            .reserve(reservation("c", vec![scope("other", 10.0), team()], 0.5)),
        s.spend.reserve(reservation("d", vec![team()], 0.3)),
        s.spend.reserve(reservation("e", vec![team()], 0.1)),
    ]);
    let (settled, reserved) = futures_util::future::join(settle, reserves).await;
    assert_eq!(settled.unwrap(), Settlement::Applied);
    let mut reserved = reserved.into_iter();
    assert!(reserved.next().unwrap().is_ok());
    let (name, left) = over_budget(reserved.next().unwrap().unwrap_err());
    assert_eq!(name, "team");
    assert!((left - 0.3).abs() < 1e-9, "{left}");
    assert!(reserved.next().unwrap().is_ok());
    assert_eq!(over_budget(reserved.next().unwrap().unwrap_err()).1, 0.0);
    let t = s.spend.spent("team").await.unwrap();
    assert_eq!((t.spent_usd, t.reserved_usd), (0.1, 0.9));
    let other = s.spend.spent("other").await.unwrap();
    assert_eq!(other.limit_usd, None, "a refused reservation wrote a scope");
}

/// A database written by the previous version (schema 1: ledger keyed apart from its
/// reservation, reservations in a table) upgrades in place: its ledger rows stay, a
/// reservation a crashed gateway left in the table is counted in full once, and new
/// ids never collide with old ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_upgrades_a_version_1_database() {
    use sqlx::ConnectOptions;
    let h = SqliteDb::new().await;
    std::fs::create_dir_all(h.path().parent().unwrap()).unwrap();
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(h.path())
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(include_str!("../migrations/sqlite/0001_init.sql"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "CREATE TABLE store_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
         INSERT INTO store_migrations VALUES (1, {T0});
         INSERT INTO budget_scopes (scope, limit_nanos, spent_nanos, reserved_nanos)
             VALUES ('key:old', 10000000000, 1500000000, 2000000000);
         INSERT INTO spend_ledger (reservation_id, request_id, key_id, key_alias, model,
             deployment, prompt_tokens, completion_tokens, cached_tokens, cost_nanos, status,
             started_at, ended_at)
             VALUES (7, 'done', 'old', NULL, 'm', 'm', 10, 5, 0, 1500000000, 200, {T0}, {T0});
         INSERT INTO reservations (id, request_id, owner, amount_nanos, scopes, created_at)
             VALUES (8, 'cut', 42, 2000000000, '[\"key:old\"]', {T0});"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);

    let s = h.open().await;
    assert_eq!(s.spend.reconcile().await.unwrap(), 1);
    let k = s.spend.spent("key:old").await.unwrap();
    assert_eq!((k.spent_usd, k.reserved_usd), (3.5, 0.0));
    let rows = s.spend.ledger(&LedgerFilter::default()).await.unwrap();
    let mut seen: Vec<_> = rows
        .iter()
        .map(|r| (r.request_id.as_str(), r.status, r.cost_usd))
        .collect();
    seen.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(seen, [("cut", 0, 2.0), ("done", 200, 1.5)]);
    let id = s
        .spend
        .reserve(reservation("new", vec![scope("key:old", 10.0)], 1.0))
        .await
        .unwrap();
    assert!(id.0 > 8, "{id:?}");
    assert_eq!(
        s.spend
            .settle(id, entry("new", Some("old"), "m", 0.5, T0))
            .await
            .unwrap(),
        Settlement::Applied
    );
    assert_eq!(
        s.spend
            .ledger(&LedgerFilter::default())
            .await
            .unwrap()
            .len(),
        3
    );
}

/// Settlements reach the database file on their own (the writer commits at least every
/// second while there is work), not only when someone asks for a flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_commits_settlements_in_the_background() {
    use sqlx::ConnectOptions;
    let h = SqliteDb::new().await;
    let s = h.open().await;
    let id = s
        .spend
        .reserve(reservation("bg", vec![scope("global", 10.0)], 1.0))
        .await
        .unwrap();
    s.spend
        .settle(id, entry("bg", None, "m", 0.25, T0))
        .await
        .unwrap();
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(h.path())
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT l.cost_nanos, s.spent_nanos FROM spend_ledger l, budget_scopes s
             WHERE l.request_id = 'bg' AND s.scope = 'global'",
        )
        .fetch_optional(&mut conn)
        .await
        .unwrap();
        if let Some(r) = row {
            assert_eq!(r, (250_000_000, 250_000_000));
            break;
        }
        assert!(Instant::now() < deadline, "never committed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Many settlements in one commit (written in multi-row chunks plus a remainder) all
/// reach the ledger, each once, with their cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_a_large_batch_exactly() {
    let h = SqliteDb::new().await;
    let s = h.open().await;
    let mut ids = Vec::new();
    for i in 0..75 {
        let r = reservation(&format!("b{i}"), vec![scope("global", 1000.0)], 1.0);
        ids.push(s.spend.reserve(r).await.unwrap());
    }
    for (i, id) in ids.iter().enumerate() {
        let e = entry(&format!("b{i}"), None, "m", 0.001 * (i + 1) as f64, T0);
        assert_eq!(s.spend.settle(*id, e).await.unwrap(), Settlement::Applied);
    }
    let rows = s.spend.ledger(&LedgerFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 75);
    let mut names: Vec<_> = rows.iter().map(|r| r.request_id.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 75);
    let total = s.spend.total(&LedgerFilter::default()).await.unwrap();
    assert!((total - 0.001 * 75.0 * 76.0 / 2.0).abs() < 1e-9, "{total}");
    drop(s);
    // Nothing is counted again at the next start.
    let s = h.open().await;
    assert_eq!(s.spend.reconcile().await.unwrap(), 0);
    assert!((s.spend.spent("global").await.unwrap().spent_usd - 2.85).abs() < 1e-9);
}

fn stored_model(id: &str, name: &str, at: i64) -> store::StoredModel {
    store::StoredModel {
        id: id.to_owned(),
        model_name: name.to_owned(),
        body: format!(r#"{{"model_name":"{name}","litellm_params":{{"model":"mock/echo"}}}}"#),
        created_at: at,
        updated_at: at,
    }
}

/// What every [`store::ModelStore`] must do: list oldest first, replace by id (the
/// creation time kept as given), delete once.
async fn check_model_store(models: &dyn store::ModelStore) {
    assert!(models.list_models().await.unwrap().is_empty());
    let a = stored_model("m-a", "alpha", T0 + 2);
    let b = stored_model("m-b", "béta", T0 + 1);
    models.put_model(&a).await.unwrap();
    models.put_model(&b).await.unwrap();
    assert_eq!(models.list_models().await.unwrap(), [b.clone(), a.clone()]);
    let a2 = store::StoredModel {
        model_name: "alpha2".into(),
        body: "{}".into(),
        updated_at: T0 + 9,
        ..a.clone()
    };
    models.put_model(&a2).await.unwrap();
    assert_eq!(models.list_models().await.unwrap(), [b.clone(), a2]);
    assert!(models.delete_model("m-a").await.unwrap());
    assert!(!models.delete_model("m-a").await.unwrap());
    assert_eq!(models.list_models().await.unwrap(), [b]);
}

async fn model_state<H: Harness>() {
    let h = H::new().await;
    let s = h.open().await;
    check_model_store(s.models.as_ref()).await;
    // What one handle stored, the next one (a restart) reads.
    drop(s);
    let again = h.open().await;
    assert_eq!(again.models.list_models().await.unwrap().len(), 1);
    drop(again);
    h.finish().await;
}

#[tokio::test]
async fn memory_model_state() {
    check_model_store(&store::MemoryModelStore::default()).await;
}

/// Without ledger rows (`disable_spend_logs`, PostgreSQL): settling and reconciling
/// keep the scopes exactly as with rows, a settle still happens once (the reservation
/// row is the guard), a dead gateway's reservations are still counted in full (with
/// their status-0 rows), and no settle writes a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_without_ledger_rows_keeps_scopes_exact() {
    let h = PgDb::new().await;
    let g = || vec![scope("global", 100.0), scope("key:k", 10.0)];
    let s = h.open().await;
    s.spend.set_ledger_rows(false).unwrap();
    let id = s.spend.reserve(reservation("r1", g(), 2.0)).await.unwrap();
    let e = entry("r1", Some("k"), "m", 1.0, T0);
    assert_eq!(
        s.spend.settle(id, e.clone()).await.unwrap(),
        Settlement::Applied
    );
    assert_eq!(
        s.spend.settle(id, e).await.unwrap(),
        Settlement::AlreadySettled
    );
    let id = s.spend.reserve(reservation("r2", g(), 2.0)).await.unwrap();
    let (a, b) = tokio::join!(
        s.spend.settle(id, entry("r2", Some("k"), "m", 1.5, T0)),
        s.spend.settle(id, entry("r2", Some("k"), "m", 1.5, T0)),
    );
    let mut outcomes = vec![a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        outcomes,
        vec![Settlement::AlreadySettled, Settlement::Applied]
    );
    // An id never reserved changes nothing and writes nothing.
    let ghost = ReservationId(1_000_000);
    assert_eq!(
        s.spend
            .settle(ghost, entry("r3", None, "m", 4.0, T0))
            .await
            .unwrap(),
        Settlement::AlreadySettled
    );
    let k = s.spend.spent("key:k").await.unwrap();
    assert_eq!((k.spent_usd, k.reserved_usd), (2.5, 0.0));

    // A gateway dies with three reservations in flight: counted in full, each with its
    // status-0 row (the record of the crash), and no other row.
    let crashed = h.open().await;
    crashed.spend.set_ledger_rows(false).unwrap();
    for i in 0..3 {
        crashed
            .spend
            .reserve(reservation(&format!("lost{i}"), g(), 2.0))
            .await
            .unwrap();
    }
    drop(crashed);
    reconcile_until(&s, 3).await;
    let k = s.spend.spent("key:k").await.unwrap();
    assert_eq!((k.spent_usd, k.reserved_usd), (8.5, 0.0));
    assert_eq!(s.spend.spent("global").await.unwrap().spent_usd, 8.5);
    let rows = s.spend.ledger(&LedgerFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows
        .iter()
        .all(|r| r.status == 0 && r.request_id.starts_with("lost")));

    // Rows again from the next settle on.
    s.spend.set_ledger_rows(true).unwrap();
    let id = s.spend.reserve(reservation("r4", g(), 1.0)).await.unwrap();
    s.spend
        .settle(id, entry("r4", Some("k"), "m", 0.5, T0))
        .await
        .unwrap();
    let rows = s.spend.ledger(&LedgerFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows.iter().filter(|r| r.request_id == "r4").count(), 1);
    drop(s);
    h.finish().await;
}

/// SQLite without ledger rows: a settlement commits a mark of its reservation in the
/// row's place; start-up reads the marks (a settled reservation is not counted again,
/// one in flight is counted in full); a mark goes once its journal segment is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_without_ledger_rows_keeps_marks_while_their_segment_lives() {
    let h = SqliteDb::new().await;
    let count = |table: &str| -> i64 {
        let db = rusqlite::Connection::open(h.path()).unwrap();
        db.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    let g = || vec![scope("key:k", 1e6)];
    let s = h.open().await;
    s.spend.set_ledger_rows(false).unwrap();
    let id = s.spend.reserve(reservation("r1", g(), 2.0)).await.unwrap();
    for want in [Settlement::Applied, Settlement::AlreadySettled] {
        let e = entry("r1", Some("k"), "m", 1.0, T0);
        assert_eq!(s.spend.settle(id, e).await.unwrap(), want);
    }
    let ghost = ReservationId(1_000_000);
    let e = entry("r3", None, "m", 4.0, T0);
    assert_eq!(
        s.spend.settle(ghost, e).await.unwrap(),
        Settlement::AlreadySettled
    );
    let in_flight = s.spend.reserve(reservation("r2", g(), 2.0)).await.unwrap();
    s.spend.flush().await.unwrap();
    assert_eq!((count("settled_marks"), count("spend_ledger")), (1, 0));
    // The handle goes with r2 in flight (in its journal): the next start counts r2 in
    // full and r1, marked, at its cost only.
    drop(s);
    let s = h.open().await;
    s.spend.set_ledger_rows(false).unwrap();
    assert_eq!(s.spend.reconcile().await.unwrap(), 1);
    let k = s.spend.spent("key:k").await.unwrap();
    assert_eq!((k.spent_usd, k.reserved_usd), (3.0, 0.0));

    // Enough reservations, with long request ids, to fill a few 4 MiB journal segments.
    let pad = "x".repeat(4000);
    let mut last = in_flight;
    for i in 0..3000 {
        let id = s
            .spend
            .reserve(reservation(&format!("p{i}-{pad}"), g(), 0.001))
            .await
            .unwrap();
        assert!(id.0 > last.0, "ids are never handed out twice");
        last = id;
        let e = entry("p", Some("k"), "m", 0.001, T0);
        assert_eq!(s.spend.settle(id, e).await.unwrap(), Settlement::Applied);
    }
    // A commit writes the marks and then deletes the finished segments; the next one
    // that writes a mark deletes the marks of those segments.
    s.spend.flush().await.unwrap();
    let id = s.spend.reserve(reservation("q", g(), 1.0)).await.unwrap();
    s.spend
        .settle(id, entry("q", Some("k"), "m", 1.0, T0))
        .await
        .unwrap();
    s.spend.flush().await.unwrap();
    let marks = count("settled_marks");
    assert!(marks > 0 && marks < 2000, "{marks}");
    assert_eq!(
        count("spend_ledger"),
        1,
        "r2's row (status 0) from start-up"
    );
    let k = s.spend.spent("key:k").await.unwrap();
    assert!((k.spent_usd - 7.0).abs() < 1e-9, "{k:?}");
    drop(s);
    // And a start after all that counts nothing again.
    let s = h.open().await;
    assert_eq!(s.spend.reconcile().await.unwrap(), 0);
    let k = s.spend.spent("key:k").await.unwrap();
    assert!((k.spent_usd - 7.0).abs() < 1e-9, "{k:?}");
}
