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
    let spend: Value = client
        .get(format!("{}/global/spend", gw.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
async fn check_books(
    client: &reqwest::Client,
    gw: &Proc,
    mock: &MockUpstream,
    reservable: f64,
    seed: u64,
) -> f64 {
    let spend: Value = client
        .get(format!("{}/global/spend", gw.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
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
        check_books(&client, &gw, &mock, sent as f64 * small, seed).await;
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
    check_books(&client, &gw, &mock, reservable, seed).await;
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
    let recorded = check_books(&client, &gw, &mock, reservable, seed).await;
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
