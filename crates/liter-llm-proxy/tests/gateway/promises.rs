//! Documented promises checked end to end: budgets fail closed when the store goes
//! away, a stream the client leaves is settled at its reservation, a key changed on one
//! gateway is seen by another within `RUNTIME_KEY_TTL`, readiness while draining,
//! per-deployment `tpm`, `model_strategy`, `[cooldown] window_secs` and `pricing_file`.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use liter_llm_proxy::store::LedgerFilter;
use mock_upstream::{Fault, MockUpstream};
use serde_json::{json, Value};
use sqlx::Connection;

use crate::governance::{ask, gateway, spend_store, Db, PG_URL};
use crate::routing::{counts, dep, header, served_ids, two_deployments};
use crate::support::*;

/// Polls `check` (bounded) until it holds; the caller asserts on what it returns.
async fn eventually<T>(mut check: impl AsyncFnMut() -> (bool, T)) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (done, value) = check().await;
        if done || Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn budgets_fail_closed_with_503_when_the_store_goes_away() {
    let mock = MockUpstream::start().await.unwrap();
    let db = Db::postgres().await;
    let gw = gateway(&mock, &db, "[budget]\nglobal_limit = 10.0\n").await;
    assert_eq!(gw.chat(MASTER, ask(10)).await.status(), 200);
    gw.app.governor.settled().await;

    // The database goes away under the running gateway: its schema is dropped.
    let mut conn = sqlx::PgConnection::connect(PG_URL).await.unwrap();
    let schema = db.pg_schema().unwrap();
    sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut conn)
        .await
        .unwrap();

    let err = expect_error(gw.chat(MASTER, ask(10)).await, 503).await;
    assert_eq!(err["error"]["code"], "store_unavailable", "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(!message.contains("postgres://"), "{message}");
    assert_eq!(mock.requests().len(), 1, "nothing more went upstream");
}

#[tokio::test]
async fn a_stream_the_client_leaves_is_settled_at_its_whole_reservation() {
    let mock = MockUpstream::start().await.unwrap();
    let db = Db::sqlite();
    let gw = gateway(&mock, &db, "[budget]\nglobal_limit = 10.0\n").await;
    // The upstream sends one event and holds the rest (and so its usage chunk).
    mock.push_fault(Fault::hold_stream(1));
    let mut body = ask(20);
    body["stream"] = json!(true);
    let resp = gw.chat(MASTER, body).await;
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    drop(stream);

    // No usage was seen: the whole reservation (20 output tokens at $0.001, input
    // free) is what the ledger records.
    let store = spend_store(&gw);
    let rows = eventually(async || {
        let rows = store.ledger(&LedgerFilter::default()).await.unwrap();
        (!rows.is_empty(), rows)
    })
    .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!((rows[0].cost_usd - 0.02).abs() < 1e-12, "{rows:?}");
    let global = store.spent("global").await.unwrap();
    assert!((global.spent_usd - 0.02).abs() < 1e-12, "{global:?}");
    assert_eq!(global.reserved_usd, 0.0);
    mock.release(1);
}

#[tokio::test]
async fn a_key_blocked_on_one_gateway_is_refused_by_another_within_the_ttl() {
    let mock = MockUpstream::start().await.unwrap();
    let db = Db::postgres().await;
    let a = gateway(&mock, &db, "").await;
    let b = gateway(&mock, &db, "").await;
    let made: Value = a
        .post(
            "/key/generate",
            Some(MASTER),
            &json!({"models": ["priced"]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = made["key"].as_str().unwrap().to_owned();
    assert_eq!(b.chat(&key, ask(5)).await.status(), 200, "B reads the key");

    let blocked = a
        .post(
            "/key/update",
            Some(MASTER),
            &json!({"key": made["token"], "blocked": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(blocked.status(), 200);
    let changed = Instant::now();
    assert_eq!(a.chat(&key, ask(5)).await.status(), 401, "A at once");

    let status = eventually(async || {
        let status = b.chat(&key, ask(5)).await.status().as_u16();
        (status == 401, status)
    })
    .await;
    let took = changed.elapsed();
    assert_eq!(
        status, 401,
        "B still accepts the blocked key after {took:?}"
    );
    let ttl = liter_llm_proxy::auth::RUNTIME_KEY_TTL;
    assert!(
        took <= ttl + Duration::from_secs(2),
        "B saw the change after {took:?}, the documented bound is {ttl:?}"
    );
}

#[tokio::test]
async fn readiness_is_503_while_the_gateway_drains() {
    // The drain closes the gateway's listener and idle connections, so the readiness
    // answer is read through a second listener serving the same App.
    let (mock, mut gw) = setup("").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let probe_url = format!("http://{}/health/readiness", listener.local_addr().unwrap());
    let probe_server = tokio::spawn(liter_llm_proxy::serve(
        gw.app.clone(),
        listener,
        std::future::pending(),
    ));
    let ready = client().get(&probe_url).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    // A request in flight keeps the drain going.
    mock.push_fault(Fault::hold());
    let in_flight = tokio::spawn(
        gw.post("/v1/chat/completions", Some(MASTER), &hello("gpt-4o"))
            .send(),
    );
    wait_for_requests(&mock, 1).await;
    let stopped = gw.begin_shutdown();
    let (status, body) = eventually(async || {
        let resp = client().get(&probe_url).send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        (status == 503, (status, body))
    })
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "draining");
    assert!(
        !stopped.is_finished(),
        "the drain waits for the held request"
    );

    mock.release(1);
    assert_eq!(in_flight.await.unwrap().unwrap().status(), 200);
    stopped.await.unwrap().unwrap();
    probe_server.abort();
}

/// A streamed request whose body is about 80 tokens by the router's estimate (one per
/// 4 bytes); streams keep their estimate, so the minute's count does not shrink.
fn sized_stream(model: &str) -> Value {
    json!({"model": model, "stream": true,
        "messages": [{"role": "user", "content": "x".repeat(280)}]})
}

#[tokio::test]
async fn a_deployment_tpm_sends_the_overflow_elsewhere_then_answers_429() {
    let mock = MockUpstream::start().await.unwrap();
    let cfg = format!(
        "{}{}{}{}",
        header(MASTER, ""),
        dep(&mock, "pool", "dep-a", "order = 1\ntpm = 100"),
        dep(&mock, "pool", "dep-b", "order = 2"),
        dep(&mock, "solo", "solo-1", "tpm = 100"),
    );
    let gw = Gateway::start(&cfg).await;
    let mut deployments = Vec::new();
    for _ in 0..2 {
        let resp = gw.chat(MASTER, sized_stream("pool")).await;
        assert_eq!(resp.status(), 200);
        deployments.push(resp.headers()["x-liter-llm-deployment"].clone());
        resp.bytes().await.unwrap();
    }
    assert_eq!(
        deployments,
        ["openai/dep-a", "openai/dep-b"],
        "the first fits dep-a's minute, the second would take it over 100 tokens"
    );

    // A pool with no other deployment: the gateway's own 429 until the minute ends.
    let first = gw.chat(MASTER, sized_stream("solo")).await;
    assert_eq!(first.status(), 200);
    first.bytes().await.unwrap();
    let resp = gw.chat(MASTER, sized_stream("solo")).await;
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let err = expect_error(resp, 429).await;
    assert_eq!(err["error"]["code"], "rate_limit_exceeded");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("rpm/tpm limit"), "{message}");
    assert_eq!(served_ids(&mock), ["dep-a", "dep-b", "solo-1"]);
}

#[tokio::test]
async fn model_strategy_gives_one_pool_its_own_strategy() {
    let mock = MockUpstream::start().await.unwrap();
    let prices = |input: &str, output: &str| {
        format!("input_cost_per_token = {input}\noutput_cost_per_token = {output}")
    };
    let cfg = format!(
        "{}{}{}{}{}[router]\nseed = 7\nmodel_strategy = {{ \"cheap\" = \"cost-based\" }}\n",
        header(MASTER, ""),
        dep(&mock, "cheap", "c-dear", &prices("0.00001", "0.00003")),
        dep(&mock, "cheap", "c-low", &prices("0.000001", "0.000002")),
        dep(&mock, "shuffled", "s-dear", &prices("0.00001", "0.00003")),
        dep(&mock, "shuffled", "s-low", &prices("0.000001", "0.000002")),
    );
    let gw = Gateway::start(&cfg).await;
    for model in ["cheap", "shuffled"] {
        for _ in 0..20 {
            assert_eq!(gw.chat(MASTER, hello(model)).await.status(), 200);
        }
    }
    let c = counts(&served_ids(&mock));
    assert_eq!(c.get("c-low"), Some(&20), "cost-based for its pool: {c:?}");
    assert_eq!(c.get("c-dear"), None, "{c:?}");
    // The other pool keeps the default strategy (simple-shuffle): both are used.
    assert!(c.contains_key("s-low") && c.contains_key("s-dear"), "{c:?}");
}

#[tokio::test]
async fn cooldown_window_secs_decides_which_failures_add_up() {
    let (mock, gw) = two_deployments(
        "",
        "order = 1",
        "order = 2",
        "[cooldown]\nduration_secs = 30\nallowed_fails = 2\nwindow_secs = 5\n",
    )
    .await;
    let cooling = async |gw: &Gateway| {
        let ready = gw.get_json("/health/readiness", MASTER).await;
        ready["deployments"][0]["cooling_down"] == true
    };
    // Two failures of dep-a more than window_secs apart: each starts a new count.
    for _ in 0..2 {
        mock.push_fault(Fault::status(500).for_model("dep-a"));
        assert_eq!(gw.chat(MASTER, hello("pool")).await.status(), 200);
        assert!(!cooling(&gw).await);
        skip_time(Duration::from_secs(6)).await;
    }
    mock.clear_requests();
    assert_eq!(gw.chat(MASTER, hello("pool")).await.status(), 200);
    assert_eq!(served_ids(&mock), ["dep-a"], "dep-a is still in rotation");

    // Two within the window open the breaker.
    mock.push_fault(Fault::status(500).for_model("dep-a").times(2));
    for _ in 0..2 {
        assert_eq!(gw.chat(MASTER, hello("pool")).await.status(), 200);
    }
    assert!(cooling(&gw).await);
    mock.clear_requests();
    assert_eq!(gw.chat(MASTER, hello("pool")).await.status(), 200);
    assert_eq!(served_ids(&mock), ["dep-b"], "dep-a cools down");
}

#[tokio::test]
async fn pricing_file_prices_a_model_through_the_config() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prices.json");
    // LiteLLM's model_prices_and_context_window.json format: $2 / $8 per million.
    std::fs::write(
        &file,
        r#"{"house-model": {"litellm_provider": "openai", "mode": "chat",
            "input_cost_per_token": 0.000002, "output_cost_per_token": 0.000008}}"#,
    )
    .unwrap();
    let gw = Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\nenable_cost_tracking = true\npricing_file = \"{}\"\n[[models]]\nname = \"house\"\nprovider_model = \"openai/house-model\"\nbase_url = \"{}\"\n",
        file.display(),
        mock.base_url()
    ))
    .await;
    let resp = gw.chat(MASTER, hello("house")).await;
    assert_eq!(resp.status(), 200);
    let cost: f64 = resp.headers()["x-liter-llm-response-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let (prompt, completion) = (
        body["usage"]["prompt_tokens"].as_f64().unwrap(),
        body["usage"]["completion_tokens"].as_f64().unwrap(),
    );
    let expected = prompt * 0.000002 + completion * 0.000008;
    assert!(expected > 0.0);
    assert!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");
}
