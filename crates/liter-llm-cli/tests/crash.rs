//! Spend survives SIGKILL: a gateway killed during a burst of streams, restarted on the
//! same SQLite file, has recorded at least what the provider billed for every finished
//! request, and at most that plus the reservations of the requests cut off.

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
