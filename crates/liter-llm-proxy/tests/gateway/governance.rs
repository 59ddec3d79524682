//! Governance end to end: per-key and global rate limits, budgets (hard and soft),
//! spend recorded in the ledger, on SQLite and on the machine's PostgreSQL.

use std::sync::Arc;

use liter_llm_proxy::store::{self, LedgerFilter};
use mock_upstream::{Fault, MockUpstream};
use serde_json::{json, Value};
use sqlx::Connection;

use crate::support::*;

pub(crate) const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh SQLite file, or a fresh schema on the local PostgreSQL.
pub(crate) enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Db {
    pub(crate) fn sqlite() -> Db {
        Db::Sqlite(tempfile::tempdir().unwrap())
    }

    pub(crate) async fn postgres() -> Db {
        let base = std::env::var("LITER_LLM_TEST_PG_URL").unwrap_or_else(|_| PG_URL.into());
        let mut conn = sqlx::PgConnection::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {base}: {e}"));
        let schema = format!("gw_test_{:016x}", rand::random::<u64>());
        sqlx::raw_sql(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        Db::Postgres(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
    }

    /// The PostgreSQL schema this database lives in.
    pub(crate) fn pg_schema(&self) -> Option<&str> {
        match self {
            Db::Sqlite(_) => None,
            Db::Postgres(url) => url.rsplit("search_path%3D").next(),
        }
    }

    pub(crate) fn url(&self) -> String {
        match self {
            Db::Sqlite(dir) => dir.path().join("spend.db").display().to_string(),
            Db::Postgres(url) => url.clone(),
        }
    }
}

/// A gateway whose model "priced" costs $0.001 per output token (input free).
pub(crate) async fn gateway(mock: &MockUpstream, db: &Db, extra: &str) -> Gateway {
    gateway_with(mock, db, "", extra).await
}

/// [`gateway`] with `general` added to its `[general]` section.
pub(crate) async fn gateway_with(
    mock: &MockUpstream,
    db: &Db,
    general: &str,
    extra: &str,
) -> Gateway {
    Gateway::start(&format!(
        r#"
[general]
master_key = "{MASTER}"
max_retries = 0
enable_cost_tracking = true
database_url = "{url}"
{general}

[[models]]
name = "priced"
provider_model = "openai/house-model"
base_url = "{base}"
input_cost_per_token = 0.0
output_cost_per_token = 0.001
{extra}
"#,
        url = db.url().replace('\\', "\\\\"),
        base = mock.base_url(),
    ))
    .await
}

pub(crate) fn spend_store(gw: &Gateway) -> Arc<dyn store::SpendStore> {
    gw.app.governor.stores.clone().unwrap().spend
}

pub(crate) fn ask(max_tokens: u64) -> Value {
    json!({"model": "priced", "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "hello there"}]})
}

#[tokio::test]
async fn key_rpm_answers_429_with_openai_rate_limit_headers() {
    let mock = MockUpstream::start().await.unwrap();
    let db = Db::sqlite();
    let gw = gateway(
        &mock,
        &db,
        &format!("[[keys]]\nkey = \"{VKEY}\"\nrpm = 2\ntpm = 100000\n"),
    )
    .await;
    let first = gw.chat(VKEY, ask(10)).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-limit-requests"], "2");
    assert_eq!(first.headers()["x-ratelimit-remaining-requests"], "1");
    assert_eq!(first.headers()["x-ratelimit-limit-tokens"], "100000");
    assert_eq!(gw.chat(VKEY, ask(10)).await.status(), 200);
    let third = gw.chat(VKEY, ask(10)).await;
    assert_eq!(third.status(), 429);
    let retry: u64 = third.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // Seconds until the oldest request leaves the minute, rounded up.
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(third.headers()["x-ratelimit-remaining-requests"], "0");
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(
        mock.requests().len(),
        2,
        "the refused request never went upstream"
    );
    // The master key is not limited by the key's rpm.
    assert_eq!(gw.chat(MASTER, ask(10)).await.status(), 200);
}

#[tokio::test]
async fn tpm_counts_prompt_and_max_tokens_and_global_limits_apply_to_every_key() {
    let mock = MockUpstream::start().await.unwrap();
    let db = Db::sqlite();
    let gw = gateway(
        &mock,
        &db,
        &format!("[[keys]]\nkey = \"{VKEY}\"\ntpm = 500\n[rate_limit]\nrpm = 3\n"),
    )
    .await;
    // Alone over the key's tpm: refused, and retrying cannot help.
    let resp = gw.chat(VKEY, ask(1000)).await;
    assert_eq!(resp.status(), 429);
    let msg = resp.json::<Value>().await.unwrap()["error"]["message"].clone();
    assert!(msg.as_str().unwrap().contains("alone"), "{msg}");
    // Settled against the real usage, so small requests keep fitting.
    for _ in 0..2 {
        assert_eq!(gw.chat(VKEY, ask(200)).await.status(), 200);
        gw.app.governor.settled().await;
    }
    // The gateway-wide rpm counts the master key too (2 admitted + this one).
    assert_eq!(gw.chat(MASTER, ask(1)).await.status(), 200);
    let resp = gw.chat(MASTER, ask(1)).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
}

/// 200 concurrent requests, spread over `gateways` gateways on `db`, against a key
/// budget that fits 50 reservations: together they never pass it, and the ledger holds
/// exactly what the provider billed.
async fn concurrent_budget(db: Db, gateways: usize) {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::delay_ms(300).forever());
    // Each request reserves at most 10 output tokens at $0.001: $0.01; 50 fit in $0.50.
    let keys = format!("[[keys]]\nkey = \"{VKEY}\"\nbudget_limit = 0.5\n");
    let mut gws = Vec::new();
    for _ in 0..gateways {
        gws.push(Arc::new(gateway(&mock, &db, &keys).await));
    }
    let mut tasks = Vec::new();
    for i in 0..200 {
        let gw = gws[i % gateways].clone();
        tasks.push(tokio::spawn(async move {
            gw.chat(VKEY, ask(10)).await.status().as_u16()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            402 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    for gw in &gws {
        gw.app.governor.settled().await;
    }
    let gw = &gws[0];
    let stores = spend_store(gw);
    let spent = stores.total(&LedgerFilter::default()).await.unwrap();
    let billed = mock.served().completion_tokens as f64 * 0.001;
    assert!(ok >= 50, "every request that fit was admitted: {ok}");
    assert!(spent <= 0.5 + 1e-9, "spent {spent} over the $0.50 budget");
    assert!(
        (spent - billed).abs() < 1e-9,
        "recorded {spent}, billed {billed}"
    );
    let rows = stores.ledger(&LedgerFilter::default()).await.unwrap();
    // A ledger row per admitted request (a 402 never reached the provider).
    assert_eq!(rows.len(), ok);
    assert!(rows
        .iter()
        .all(|r| r.key_id.as_deref().is_some_and(|k| k.starts_with("cfg-"))));
    // Over budget now for the next request's reservation only if the rest is < $0.01.
    let next = gw.chat(VKEY, ask(10)).await.status().as_u16();
    assert_eq!(next == 402, spent > 0.49 + 1e-9);
}

#[tokio::test]
async fn two_hundred_concurrent_requests_never_overspend_sqlite() {
    concurrent_budget(Db::sqlite(), 1).await;
}

#[tokio::test]
async fn two_hundred_concurrent_requests_never_overspend_postgres() {
    concurrent_budget(Db::postgres().await, 1).await;
}

/// The same with three gateways on one PostgreSQL database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_on_one_postgres_never_overspend_a_budget() {
    concurrent_budget(Db::postgres().await, 3).await;
}

#[tokio::test]
async fn spend_survives_a_restart_and_the_budget_still_holds() {
    let mock = MockUpstream::start().await.unwrap();
    let db = Db::sqlite();
    let keys = format!("[[keys]]\nkey = \"{VKEY}\"\nbudget_limit = 0.02\n");
    {
        let gw = gateway(&mock, &db, &keys).await;
        assert_eq!(gw.chat(VKEY, ask(10)).await.status(), 200);
        assert_eq!(gw.chat(VKEY, ask(10)).await.status(), 200);
        gw.app.governor.settled().await;
    }
    let gw = gateway(&mock, &db, &keys).await;
    let spent = spend_store(&gw)
        .total(&LedgerFilter::default())
        .await
        .unwrap();
    assert!(spent > 0.0);
    // Two echo answers spent part of $0.02; a reservation of $0.02 no longer fits.
    let resp = gw.chat(VKEY, ask(20)).await;
    assert_eq!(resp.status(), 402);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "budget_exceeded");
    assert!(!body.to_string().contains(VKEY));
}

#[tokio::test]
async fn soft_budget_lets_requests_through_with_a_warning() {
    let mock = MockUpstream::start().await.unwrap();
    let db = Db::sqlite();
    let gw = gateway(
        &mock,
        &db,
        "[budget]\nglobal_limit = 0.005\nenforcement = \"soft\"\n",
    )
    .await;
    let resp = gw.chat(MASTER, ask(10)).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["x-liter-llm-budget-warning"]
        .to_str()
        .unwrap()
        .contains("global"));
    let hard = gateway(&mock, &Db::sqlite(), "[budget]\nglobal_limit = 0.005\n").await;
    assert_eq!(hard.chat(MASTER, ask(10)).await.status(), 402);
}

#[tokio::test]
async fn streams_are_settled_with_their_usage_which_the_client_does_not_see_unless_asked() {
    let mock = MockUpstream::start().await.unwrap();
    let db = Db::sqlite();
    let gw = gateway(&mock, &db, "").await;
    let mut body = ask(50);
    body["stream"] = json!(true);
    let resp = gw.chat(MASTER, body).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(!text.contains("\"usage\":{"), "usage chunk hidden: {text}");
    // The gateway asked upstream for the usage chunk.
    let sent = mock.requests()[0].body.clone().unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    gw.app.governor.settled().await;
    let rows = spend_store(&gw)
        .ledger(&LedgerFilter::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let served = mock.served();
    assert_eq!(rows[0].completion_tokens, served.completion_tokens);
    assert!((rows[0].cost_usd - served.completion_tokens as f64 * 0.001).abs() < 1e-12);
    assert_eq!(rows[0].status, 200);
    assert_eq!(rows[0].deployment, "openai/house-model");

    // Asked for: the client gets it.
    let mut body = ask(50);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let text = gw.chat(MASTER, body).await.text().await.unwrap();
    assert!(text.contains("\"usage\":{"), "{text}");
}

#[tokio::test]
async fn an_expired_key_is_refused() {
    let mock = MockUpstream::start().await.unwrap();
    let db = Db::sqlite();
    let gw = gateway(
        &mock,
        &db,
        &format!("[[keys]]\nkey = \"{VKEY}\"\nexpires_at = \"2020-01-01\"\n"),
    )
    .await;
    let resp = gw.chat(VKEY, ask(10)).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("expired"));
}

#[tokio::test]
async fn no_clear_key_reaches_the_database() {
    let mock = MockUpstream::start().await.unwrap();
    let db = Db::sqlite();
    let gw = gateway(
        &mock,
        &db,
        &format!("[[keys]]\nkey = \"{VKEY}\"\nbudget_limit = 1.0\n"),
    )
    .await;
    assert_eq!(gw.chat(VKEY, ask(10)).await.status(), 200);
    gw.app.governor.settled().await;
    drop(gw);
    let Db::Sqlite(dir) = &db else { unreachable!() };
    let files = files_under(dir.path());
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "log")),
        "sanity: the journal is among the files read"
    );
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            memchr_find(&bytes, VKEY.as_bytes()).is_none(),
            "{} holds the key",
            path.display()
        );
    }
    let _ = store::day_string(0);
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn model_limits_cap_one_provider_model() {
    let mock = MockUpstream::start().await.unwrap();
    let db = Db::sqlite();
    let gw = gateway(
        &mock,
        &db,
        &format!(
            "[[models]]\nname = \"free\"\nprovider_model = \"openai/free-model\"\nbase_url = \"{}\"\n\
             [budget.model_limits]\n\"openai/house-model\" = 0.015\n",
            mock.base_url()
        ),
    )
    .await;
    // $0.01 reserved fits once in $0.015, and then no more (spend + $0.01 > limit).
    assert_eq!(gw.chat(MASTER, ask(10)).await.status(), 200);
    gw.app.governor.settled().await;
    let spent = spend_store(&gw)
        .spent("model:openai/house-model")
        .await
        .unwrap();
    assert!(spent.spent_usd > 0.0);
    let resp = gw.chat(MASTER, ask(15)).await;
    assert_eq!(resp.status(), 402);
    assert!(resp.text().await.unwrap().contains("openai/house-model"));
    // Another model is not limited by it.
    let mut free = ask(10);
    free["model"] = json!("free");
    assert_eq!(gw.chat(MASTER, free).await.status(), 200);
}

#[tokio::test]
async fn tpm_holds_under_concurrency() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::delay_ms(500).forever());
    let db = Db::sqlite();
    // Each request counts its prompt (about 15 tokens) plus max_tokens 200: 4 fit in 1000.
    let gw = Arc::new(
        gateway(
            &mock,
            &db,
            &format!("[[keys]]\nkey = \"{VKEY}\"\ntpm = 1000\n"),
        )
        .await,
    );
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            gw.chat(VKEY, ask(200)).await.status().as_u16()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok, 4, "exactly the requests whose tokens fit were admitted");
    assert_eq!(mock.requests().len(), 4);
}

/// An `[[models]]` entry the price table does not know.
fn unpriced_model(mock: &MockUpstream) -> String {
    format!(
        "[[models]]\nname = \"unpriced\"\nprovider_model = \"openai/o1-pro-lookalike\"\nbase_url = \"{}\"\n",
        mock.base_url()
    )
}

fn ask_unpriced() -> Value {
    json!({"model": "unpriced", "max_tokens": 10,
        "messages": [{"role": "user", "content": "hello there"}]})
}

#[tokio::test]
async fn a_budget_is_not_bypassed_through_a_model_without_a_price() {
    let mock = MockUpstream::start().await.unwrap();
    let db = Db::sqlite();
    let keys = format!("[[keys]]\nkey = \"{VKEY}\"\nbudget_limit = 0.01\n");
    let gw = gateway(&mock, &db, &format!("{}{keys}", unpriced_model(&mock))).await;
    let refused = gw.chat(VKEY, ask_unpriced()).await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_priced", "{body}");
    assert_eq!(body["error"]["param"], "model");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("openai/o1-pro-lookalike"), "{message}");
    assert!(message.contains("pricing_file"), "{message}");
    assert!(mock.requests().is_empty(), "nothing went upstream");
    // Without a budget on the request (the master key, no gateway budget), the model
    // is served, at cost 0.
    assert_eq!(gw.chat(MASTER, ask_unpriced()).await.status(), 200);
}

#[tokio::test]
async fn a_default_price_prices_unknown_models_and_the_budget_holds() {
    let mock = MockUpstream::start().await.unwrap();
    let db = Db::sqlite();
    let extra = format!(
        "{}[[keys]]\nkey = \"{VKEY}\"\nbudget_limit = 0.05\n[budget]\ndefault_output_cost_per_token = 0.001\n",
        unpriced_model(&mock)
    );
    let gw = gateway(&mock, &db, &extra).await;
    let mut served = 0;
    for _ in 0..20 {
        match gw.chat(VKEY, ask_unpriced()).await.status().as_u16() {
            200 => served += 1,
            402 => break,
            other => panic!("unexpected status {other}"),
        }
    }
    // Each answer reserves max_tokens (10) at $0.001 and costs its real output: the
    // budget trips before 20 requests, and spend never passes it.
    assert!((1..20).contains(&served), "served {served}");
    gw.app.governor.settled().await;
    let spent = spend_store(&gw)
        .total(&LedgerFilter::default())
        .await
        .unwrap();
    assert!(spent > 0.0 && spent <= 0.05 + 1e-9, "spent {spent}");
}

#[tokio::test]
async fn token_limits_hold_on_a_model_without_a_price() {
    let mock = MockUpstream::start().await.unwrap();
    let db = Db::sqlite();
    let extra = format!(
        "{}[[keys]]\nkey = \"{VKEY}\"\ntpm = 40\n",
        unpriced_model(&mock)
    );
    let gw = gateway(&mock, &db, &extra).await;
    assert_eq!(gw.chat(VKEY, ask_unpriced()).await.status(), 200);
    let mut limited = false;
    for _ in 0..10 {
        if gw.chat(VKEY, ask_unpriced()).await.status() == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "tpm applies whatever the price");
}
