//! Spend survives SIGKILL: a gateway killed during a burst of streams, restarted on the
//! same SQLite file, has recorded at least what the provider billed for every finished
//! request, and at most that plus the reservations of the requests cut off. A gateway
//! killed at random points of a burst on a budgeted key, several times, never records
//! less than the provider billed and never lets the provider bill past the budget.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{cmd, Proc};
use futures_util::StreamExt;
use mock_upstream::{Fault, MockUpstream};
use serde_json::{json, Value};

const MASTER: &str = "sk-crash-master-5d1e";
/// $0.001 per output token; requests allow 20 output tokens: $0.02 reserved each.
const PRICE: f64 = 0.001;
const MAX_TOKENS: u64 = 20;

fn config(mock: &MockUpstream, db: &std::path::Path) -> String {
    format!(
        r#"
[server]
host = "127.0.0.1"
port = 0

[general]
master_key = "{MASTER}"
max_retries = 0
enable_cost_tracking = true
database_url = "{db}"

[budget]
global_limit = 100.0

[[models]]
name = "m"
provider_model = "openai/house-model"
base_url = "{base}"
input_cost_per_token = 0.0
output_cost_per_token = {PRICE}
"#,
        db = db.display(),
        base = mock.base_url(),
    )
}

fn ask(stream: bool) -> Value {
    json!({"model": "m", "max_tokens": MAX_TOKENS, "stream": stream,
        "messages": [{"role": "user", "content": "tell me three words"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_streams_never_loses_billed_spend() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("spend.db");
    let file = dir.path().join("liter-llm-proxy.toml");
    std::fs::write(&file, config(&mock, &db)).unwrap();
    let gw = Proc::spawn({
        let mut c = cmd(dir.path());
        c.args(["api", "--config", file.to_str().unwrap()]);
        c
    });
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let chat = |stream: bool| {
        client
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(MASTER)
            .json(&ask(stream))
            .send()
    };

    // Finished requests, streamed and not: these the provider billed.
    for i in 0..10 {
        let resp = chat(i % 2 == 0).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    let billed = mock.served().completion_tokens as f64 * PRICE;
    assert!(billed > 0.0);

    // A burst of streams that stall after their first chunks, then SIGKILL.
    mock.push_fault(Fault::stall_stream(2).forever());
    let mut open = Vec::new();
    for _ in 0..8 {
        let resp = chat(true).await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.bytes_stream();
        let first = body.next().await.unwrap().unwrap();
        assert!(first.starts_with(b"data: "));
        open.push(body);
    }
    gw.signal("-KILL");
    let (status, _) = gw.wait();
    assert!(!status.success());
    drop(open);
    mock.clear_faults();

    // Restart on the same file: reconcile counts the cut-off reservations in full.
    let gw = Proc::spawn({
        let mut c = cmd(dir.path());
        c.args(["api", "--config", file.to_str().unwrap()]);
        c
    });
    let spend = common::get_json(&format!("{}/global/spend", gw.url), MASTER).await;
    let recorded = spend["spend"].as_f64().unwrap();
    let cut_off = 8.0 * MAX_TOKENS as f64 * PRICE;
    assert!(
        recorded + 1e-9 >= billed,
        "recorded {recorded} < billed {billed}"
    );
    // Finished requests whose settlement the kill interrupted count in full too.
    assert!(
        recorded <= billed + cut_off + 10.0 * MAX_TOKENS as f64 * PRICE + 1e-9,
        "recorded {recorded}, billed {billed}"
    );
    assert!(
        recorded >= billed + cut_off - 1e-9,
        "the cut-off streams count in full: {recorded}"
    );
}

/// A gateway stopped with SIGTERM writes every settlement before it exits: after a
/// restart the recorded spend is exactly what the provider billed, one row a request,
/// none counted at its reservation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_writes_every_settlement_before_exit() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("spend.db");
    let file = dir.path().join("liter-llm-proxy.toml");
    std::fs::write(&file, config(&mock, &db)).unwrap();
    let start = || {
        Proc::spawn({
            let mut c = cmd(dir.path());
            c.args(["api", "--config", file.to_str().unwrap()]);
            c
        })
    };
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let gw = start();
    for i in 0..12 {
        let resp = client
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(MASTER)
            .json(&ask(i % 3 == 0))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    let billed = mock.served().completion_tokens as f64 * PRICE;
    gw.signal("-TERM");
    let (status, _) = gw.wait();
    assert!(status.success(), "{status:?}");

    let gw = start();
    let get = |path: &'static str| {
        client
            .get(format!("{}{path}", gw.url))
            .bearer_auth(MASTER)
            .send()
    };
    let spend: Value = get("/global/spend").await.unwrap().json().await.unwrap();
    let recorded = spend["spend"].as_f64().unwrap();
    assert!(
        (recorded - billed).abs() < 1e-9,
        "recorded {recorded}, billed {billed}"
    );
    let logs: Value = get("/spend/logs").await.unwrap().json().await.unwrap();
    let rows = logs.as_array().unwrap();
    assert_eq!(rows.len(), 12);
    assert!(rows.iter().all(|r| r["status"] == 200), "{rows:?}");
}

/// The budgeted key. Its budget is more than the runs can reserve (at most
/// WORKERS * PER_WORKER reservations of MAX_TOKENS * PRICE a run), so every run's burst
/// is served and written; the last phase then uses it up with larger requests.
const KEY: &str = "vk-crash-budget-0042";
const BUDGET: f64 = 4.0;
const RUNS: usize = 4;
const WORKERS: usize = 8;
const PER_WORKER: usize = 5;
/// The last phase's requests: 99 words echoed as 100 output tokens, $0.10 each.
const BIG_TOKENS: u64 = 100;

fn budget_config(mock: &MockUpstream, db: &std::path::Path) -> String {
    format!(
        "{}\n[[keys]]\nkey = \"{KEY}\"\nmodels = [\"m\"]\nbudget_limit = {BUDGET}\n",
        config(mock, db)
    )
}

/// A small xorshift generator: the kill points vary from run to run, and the seed is
/// printed with any failure so it can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What the ledger holds after start-up's reconcile, checked against what the provider
/// billed (its reported usage, priced) and the most the gateway could have reserved
/// (`reservable`: every request sent at its reservation).
async fn check_books(gw: &Proc, mock: &MockUpstream, reservable: f64, seed: u64) -> f64 {
    let spend = common::get_json(&format!("{}/global/spend", gw.url), MASTER).await;
    let recorded = spend["spend"].as_f64().unwrap();
    let billed = mock.served().completion_tokens as f64 * PRICE;
    assert!(
        recorded + 1e-9 >= billed,
        "seed {seed}: recorded {recorded} < billed {billed}"
    );
    assert!(
        recorded <= reservable + 1e-9,
        "seed {seed}: recorded {recorded} > {reservable}, the most that was reserved"
    );
    assert!(
        billed <= BUDGET + 1e-9,
        "seed {seed}: the provider billed {billed}, over the budget {BUDGET}"
    );
    recorded
}

/// SIGKILL at random points of a burst of concurrent requests (streamed and whole) on a
/// key with a budget, several times, while settlements are being written; after every
/// restart the recorded spend covers what the provider billed, and the budget still
/// holds: the provider never billed past it, and the key is refused (402) once it is
/// used up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_of_a_burst_keeps_spend_and_budget() {
    let seed = seed_now() | 1;
    let mut rng = Rng(seed);
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("liter-llm-proxy.toml");
    std::fs::write(&file, budget_config(&mock, &dir.path().join("spend.db"))).unwrap();
    let start = || {
        let mut c = cmd(dir.path());
        c.args(["api", "--config", file.to_str().unwrap()]);
        Proc::spawn(c)
    };
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let small = MAX_TOKENS as f64 * PRICE;
    let mut sent = 0;
    for _ in 0..RUNS {
        let gw = start();
        check_books(&gw, &mock, sent as f64 * small, seed).await;
        let kill_after = 1 + rng.below((WORKERS * PER_WORKER / 2) as u64) as usize;
        let done = burst_until(&client, &gw.url, kill_after).await;
        gw.signal("-KILL");
        let (status, _) = tokio::task::spawn_blocking(move || gw.wait())
            .await
            .unwrap();
        assert!(!status.success());
        assert_eq!(done, kill_after, "seed {seed}: the burst was served");
        sent += WORKERS * PER_WORKER;
    }

    // After the last restart: the books hold, and the key is used up to its budget.
    let gw = start();
    let mut reservable = sent as f64 * small;
    check_books(&gw, &mock, reservable, seed).await;
    let big_text = vec!["word"; BIG_TOKENS as usize - 1].join(" ");
    let big = json!({"model": "m", "max_tokens": BIG_TOKENS,
        "messages": [{"role": "user", "content": big_text}]});
    let mut refused = false;
    for _ in 0..100 {
        reservable += BIG_TOKENS as f64 * PRICE;
        let resp = client
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(KEY)
            .json(&big)
            .send()
            .await
            .unwrap();
        if resp.status() == 402 {
            refused = true;
            break;
        }
        assert_eq!(resp.status(), 200, "seed {seed}");
        resp.bytes().await.unwrap();
    }
    assert!(refused, "seed {seed}: the budget never refused a request");
    let recorded = check_books(&gw, &mock, reservable, seed).await;
    assert!(
        recorded > BUDGET - BIG_TOKENS as f64 * PRICE - 1e-9,
        "seed {seed}: refused while only {recorded} of {BUDGET} was spent"
    );
}

/// Runs WORKERS concurrent request loops on the budgeted key (streamed and whole) and
/// returns once `n` answers were read whole: the others are still in flight, and the
/// kill lands among them. At most WORKERS * PER_WORKER requests are ever sent.
async fn burst_until(client: &reqwest::Client, url: &str, n: usize) -> usize {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    for w in 0..WORKERS {
        let (client, url, tx) = (client.clone(), url.to_string(), tx.clone());
        tokio::spawn(async move {
            for i in 0..PER_WORKER {
                let sent = client
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(KEY)
                    .json(&ask((w + i) % 2 == 0))
                    .send()
                    .await;
                let Ok(resp) = sent else { return };
                if resp.status() != 200 || resp.bytes().await.is_err() {
                    return;
                }
                let _ = tx.send(());
            }
        });
    }
    drop(tx);
    let mut done = 0;
    while done < n && rx.recv().await.is_some() {
        done += 1;
    }
    done
}

/// The shared PostgreSQL of the machine (or `LITER_LLM_TEST_PG_URL`), in a fresh schema.
async fn pg_schema_url() -> String {
    use sqlx::Connection;
    let base = std::env::var("LITER_LLM_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {base}: {e}"));
    let schema = format!("crash_{:016x}", std::process::id() as u64 ^ seed_now());
    sqlx::raw_sql(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

fn seed_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The rate-limited key the three gateways share through Redis.
const SHARED_KEY: &str = "vk-crash-shared-0007";

/// A stream read to its end: `(request id, completion tokens)` when the client saw
/// the usage chunk and `[DONE]`.
async fn finish_stream<B: AsRef<[u8]>>(
    id: String,
    mut body: impl futures_util::Stream<Item = reqwest::Result<B>> + Unpin,
    mut text: String,
) -> Option<(String, u64)> {
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(chunk.ok()?.as_ref()));
    }
    if !text.ends_with("data: [DONE]\n\n") {
        return None;
    }
    let tokens = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find_map(|v| v["usage"]["completion_tokens"].as_u64())?;
    Some((id, tokens))
}

/// Three gateways (real binaries) on one PostgreSQL schema and one Redis namespace,
/// streams running on all three, one killed with SIGKILL mid-stream: every stream a
/// client saw finish has its spend in the ledger, at what the provider billed for it
/// (or, for one the killed gateway had not written yet, at its whole reservation), and
/// the streams the kill cut off count at their reservations once a gateway starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_of_three_gateways_keeps_every_finished_streams_spend() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("liter-llm-proxy.toml");
    let url = pg_schema_url().await;
    let namespace = format!("crash-{:x}", seed_now());
    // The crash tests' gateway, on PostgreSQL, with its limits shared through Redis.
    let shared = config(&mock, std::path::Path::new(&url)).replacen(
        "max_retries = 0\n",
        &format!(
            "max_retries = 0\nredis_url = \"redis://127.0.0.1:6379\"\nredis_namespace = \"{namespace}\"\n"
        ),
        1,
    );
    std::fs::write(
        &file,
        format!("{shared}\n[[keys]]\nkey = \"{SHARED_KEY}\"\nrpm = 100000\n"),
    )
    .unwrap();
    let start = || {
        let mut c = cmd(dir.path());
        c.args(["api", "--config", file.to_str().unwrap()]);
        Proc::spawn(c)
    };
    let mut gws: Vec<Option<Proc>> = (0..3).map(|_| Some(start())).collect();
    let urls: Vec<String> = gws
        .iter()
        .map(|g| g.as_ref().unwrap().url.clone())
        .collect();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let stream = |url: String| {
        let client = client.clone();
        async move {
            let mut body = ask(true);
            body["stream_options"] = json!({"include_usage": true});
            let resp = client
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(SHARED_KEY)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
            (id, resp.bytes_stream())
        }
    };

    // Streams finished on every gateway before the kill.
    let mut finished: Vec<(String, u64, usize)> = Vec::new();
    for i in 0..9 {
        let (id, body) = stream(urls[i % 3].clone()).await;
        let (id, tokens) = finish_stream(id, body, String::new()).await.unwrap();
        finished.push((id, tokens, i % 3));
    }

    // Three streams held mid-way on each gateway; gateway 1 is killed under them.
    mock.push_fault(Fault::hold_stream(2).forever());
    let mut open = Vec::new();
    for i in 0..9 {
        let (id, mut body) = stream(urls[i % 3].clone()).await;
        let first = body.next().await.unwrap().unwrap();
        assert!(first.starts_with(b"data: "));
        open.push((
            id,
            body,
            String::from_utf8_lossy(&first).into_owned(),
            i % 3,
        ));
    }
    let killed = gws[1].take().unwrap();
    killed.signal("-KILL");
    let (status, _) = tokio::task::spawn_blocking(move || killed.wait())
        .await
        .unwrap();
    assert!(!status.success());
    mock.release(9);

    // The held streams of the two live gateways go on to the end; the killed one's
    // are cut off.
    let mut cut_off = Vec::new();
    for (id, body, text, gw) in open {
        match finish_stream(id.clone(), body, text).await {
            Some((id, tokens)) => {
                assert_ne!(gw, 1, "a stream of the killed gateway finished");
                finished.push((id, tokens, gw));
            }
            None => {
                assert_eq!(gw, 1, "a stream of a live gateway was cut off");
                cut_off.push(id);
            }
        }
    }
    assert_eq!(finished.len(), 15);
    assert_eq!(cut_off.len(), 3);
    mock.clear_faults();

    // A gateway started on the same database takes the dead one's reservations.
    gws[1] = Some(start());
    // The live gateways write a stream's settlement right after its end: wait (bounded)
    // until every request has its row.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let rows = loop {
        let logs = common::get_json(&format!("{}/spend/logs?limit=10000", urls[0]), MASTER).await;
        let rows = logs.as_array().unwrap().clone();
        if rows.len() >= finished.len() + cut_off.len() || std::time::Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let row_of = |id: &str| {
        let mine: Vec<&Value> = rows.iter().filter(|r| r["request_id"] == id).collect();
        assert_eq!(mine.len(), 1, "request {id}: {mine:?}");
        mine[0].clone()
    };
    let reserved = MAX_TOKENS as f64 * PRICE;
    for (id, tokens, gw) in &finished {
        let row = row_of(id);
        let billed = *tokens as f64 * PRICE;
        let spend = row["spend"].as_f64().unwrap();
        if *gw == 1 && row["status"] == 0 {
            // Finished, but its settlement had not been written when the kill came.
            assert!((spend - reserved).abs() < 1e-9, "{row}");
        } else {
            assert_eq!(row["status"], 200, "{row}");
            assert!((spend - billed).abs() < 1e-9, "{row}: billed {billed}");
        }
    }
    for id in &cut_off {
        let row = row_of(id);
        assert_eq!(row["status"], 0, "{row}");
        assert!(
            (row["spend"].as_f64().unwrap() - reserved).abs() < 1e-9,
            "{row}"
        );
    }
    assert_eq!(rows.len(), finished.len() + cut_off.len(), "{rows:?}");
    drop(gws);
}
