//! PostgreSQL going away and coming back under a gateway: requests that need no write
//! go on, the spend of requests no budget applies to is buffered in memory (bounded)
//! and written when the database answers again, budgeted requests and requests past
//! the bound get 503, and no request waits past the store timeout.
//!
//! The database is the machine's PostgreSQL, reached through a TCP relay in the test
//! that can be cut (its port then refuses connections, as a stopped server's does, and
//! every open connection is closed) and restored on the same port.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use liter_llm_proxy::store::LedgerFilter;
use mock_upstream::MockUpstream;
use serde_json::Value;
use sqlx::Connection;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use crate::governance::{ask, gateway_with, spend_store, Db};
use crate::support::*;

/// A TCP relay to PostgreSQL that can be cut and restored.
struct Relay {
    port: u16,
    target: String,
    accept: Mutex<Option<JoinHandle<()>>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// While cut: the port, bound and not listening, so connections are refused.
    placeholder: Mutex<Option<TcpSocket>>,
}

fn socket_on(port: u16) -> TcpSocket {
    let s = TcpSocket::new_v4().unwrap();
    s.set_reuseaddr(true).unwrap();
    s.bind(format!("127.0.0.1:{port}").parse().unwrap())
        .unwrap();
    s
}

impl Relay {
    fn start(target: &str) -> Relay {
        let s = socket_on(0);
        let relay = Relay {
            port: s.local_addr().unwrap().port(),
            target: target.to_owned(),
            accept: Mutex::new(None),
            conns: Arc::default(),
            placeholder: Mutex::new(None),
        };
        relay.listen(s);
        relay
    }

    fn listen(&self, socket: TcpSocket) {
        let listener = socket.listen(128).unwrap();
        let target = self.target.clone();
        let conns = self.conns.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                conns.lock().unwrap().push(conn);
            }
        });
        *self.accept.lock().unwrap() = Some(task);
    }

    /// The database "stops": open connections close, new ones are refused.
    fn cut(&self) {
        if let Some(t) = self.accept.lock().unwrap().take() {
            t.abort();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
        // The aborted accept task drops its listener at its next poll; until then a
        // placeholder cannot bind, so wait for the port to be free.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let s = TcpSocket::new_v4().unwrap();
            s.set_reuseaddr(true).unwrap();
            if s.bind(format!("127.0.0.1:{}", self.port).parse().unwrap())
                .is_ok()
            {
                *self.placeholder.lock().unwrap() = Some(s);
                return;
            }
            assert!(Instant::now() < deadline, "the relay's port stays taken");
            std::thread::yield_now();
        }
    }

    /// The database is back on the same port.
    fn restore(&self) {
        drop(self.placeholder.lock().unwrap().take());
        self.listen(socket_on(self.port));
    }
}

/// `url` with its `host:port` replaced by the relay's.
fn through(url: &str, relay: &Relay) -> String {
    url.replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", relay.port), 1)
}

const BKEY: &str = "vk-budgeted-key-0002";

/// The longest any request may take while the database is down: the connection
/// timeout (10 s) and some slack for a loaded machine.
const BOUND: Duration = Duration::from_secs(20);

async fn timed(gw: &Gateway, key: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let started = Instant::now();
    let resp = gw.chat(key, ask(10)).await;
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let body = resp.json().await.unwrap_or(Value::Null);
    assert!(
        started.elapsed() < BOUND,
        "a request took {:?} with the database down",
        started.elapsed()
    );
    (status, headers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_buffers_unbudgeted_spend_and_writes_it_once_when_back() {
    let mock = MockUpstream::start().await.unwrap();
    let db = Db::postgres().await;
    let direct = db.url();
    let target = direct
        .split('@')
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_owned();
    assert_eq!(
        target, "127.0.0.1:5432",
        "the relay expects the local server"
    );
    let relay = Relay::start(&target);
    let via = Db::Postgres(through(&direct, &relay));
    let gw = buffered_gateway(&mock, &via).await;

    let mut ids = Vec::new();
    let (status, headers, _) = timed(&gw, VKEY).await;
    assert_eq!(status, 200);
    ids.push(headers["x-request-id"].to_str().unwrap().to_owned());
    gw.app.governor.settled().await;

    relay.cut();
    // Requests that write nothing go on.
    for path in ["/health", "/v1/models"] {
        let resp = gw.get(path, Some(VKEY)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    // A budget cannot hold without the store: 503 with Retry-After, OpenAI-shaped.
    let (status, headers, body) = timed(&gw, BKEY).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable");
    assert!(headers.contains_key("retry-after"));
    // A key with no budget is served; its spend waits in memory (3 records at most).
    for _ in 0..3 {
        let (status, headers, body) = timed(&gw, VKEY).await;
        assert_eq!(status, 200, "{body}");
        ids.push(headers["x-request-id"].to_str().unwrap().to_owned());
    }
    gw.app.governor.settled().await;
    let metrics = gw.scrape().await;
    assert!(metrics.contains("liter_llm_spend_buffered 3"), "{metrics}");
    // Past the bound: 503 rather than spend that could not be kept.
    let (status, headers, body) = timed(&gw, VKEY).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["type"], "api_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("buffer"));
    assert_eq!(headers["retry-after"], "1");
    assert!(!body.to_string().contains(VKEY));
    let billed_tokens = mock.served().completion_tokens;

    relay.restore();
    tokio::time::timeout(Duration::from_secs(30), gw.app.governor.drained())
        .await
        .expect("the buffered spend is written once the database is back");

    // Every served request's spend is in the ledger exactly once, in the order served,
    // and it is what the provider billed.
    let mut conn = sqlx::PgConnection::connect(&direct).await.unwrap();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT request_id, cost_nanos FROM spend_ledger ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let written: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(written, ids.iter().map(String::as_str).collect::<Vec<_>>());
    let spent = spend_store(&gw)
        .total(&LedgerFilter::default())
        .await
        .unwrap();
    let billed = billed_tokens as f64 * 0.001;
    assert!(
        (spent - billed).abs() < 1e-9,
        "recorded {spent}, billed {billed}"
    );
    // The gateway-wide scope counts it too, and the budgeted key is served again.
    let global_spent: i64 =
        sqlx::query_scalar("SELECT spent_nanos FROM budget_scopes WHERE scope = 'global'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!((global_spent as f64 / 1e9 - billed).abs() < 1e-9);
    // Budgets are back once the gateway has its database connection again (checked
    // every second): wait for it, bounded.
    let deadline = Instant::now() + BOUND;
    while timed(&gw, BKEY).await.0 != 200 {
        assert!(Instant::now() < deadline, "the budgeted key stays refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(timed(&gw, VKEY).await.0, 200);
}

/// A gateway on `db` whose spend buffer holds 3 records, with `VKEY` (no budget) and
/// `BKEY` (a budget).
async fn buffered_gateway(mock: &MockUpstream, db: &Db) -> Gateway {
    gateway_with(
        mock,
        db,
        "spend_buffer_records = 3",
        &format!("[[keys]]\nkey = \"{VKEY}\"\n\n[[keys]]\nkey = \"{BKEY}\"\nbudget_limit = 10.0\n"),
    )
    .await
}

/// A request admitted (and reserved) before the database went away, ending while it is
/// away: its settlement waits in the buffer and is written, once, when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_due_while_postgres_is_down_is_written_when_it_returns() {
    let mock = MockUpstream::start().await.unwrap();
    let db = Db::postgres().await;
    let direct = db.url();
    let relay = Relay::start("127.0.0.1:5432");
    let gw = Arc::new(buffered_gateway(&mock, &Db::Postgres(through(&direct, &relay))).await);
    mock.push_fault(mock_upstream::Fault::hold());
    let held = tokio::spawn({
        let gw = gw.clone();
        async move { timed(&gw, BKEY).await }
    });
    wait_for_requests(&mock, 1).await;
    relay.cut();
    mock.release(1);
    let (status, headers, body) = held.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let id = headers["x-request-id"].to_str().unwrap().to_owned();
    // The settlement fails (after the connection timeout) and joins the buffer.
    let deadline = Instant::now() + BOUND;
    while !gw.scrape().await.contains("liter_llm_spend_buffered 1") {
        assert!(
            Instant::now() < deadline,
            "the settlement was never buffered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.restore();
    tokio::time::timeout(Duration::from_secs(30), gw.app.governor.drained())
        .await
        .expect("the buffered settlement is written once the database is back");
    let mut conn = sqlx::PgConnection::connect(&direct).await.unwrap();
    let rows: Vec<(String, i64, i32)> =
        sqlx::query_as("SELECT request_id, cost_nanos, status FROM spend_ledger")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let billed = (mock.served().completion_tokens as f64 * 0.001 * 1e9).round() as i64;
    assert_eq!(rows, vec![(id, billed, 200)]);
    let reserved: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reservations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(reserved, 0, "the reservation was settled, not left behind");
}
