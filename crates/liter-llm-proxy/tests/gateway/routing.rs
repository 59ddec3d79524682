//! Pools, strategies, retries, fallbacks, cooldown and health, end to end against the
//! mock upstream's fault injection. Deployments are told apart by their upstream model
//! id (`dep-a`, `dep-b`, ...), which the mock records and faults can target.

use std::collections::HashMap;
use std::time::Duration;

use mock_upstream::{Fault, MockUpstream};
use serde_json::{json, Value};

use crate::support::*;

/// `[[models]]` entry on the mock with upstream id `id`, plus extra lines.
pub(crate) fn dep(mock: &MockUpstream, name: &str, id: &str, extra: &str) -> String {
    format!(
        "[[models]]\nname = \"{name}\"\nprovider_model = \"openai/{id}\"\napi_key = \"k\"\nbase_url = \"{}\"\n{extra}\n",
        mock.base_url()
    )
}

pub(crate) fn header(master: &str, extra: &str) -> String {
    format!("[general]\nmaster_key = \"{master}\"\nmax_retries = 1\n{extra}\n")
}

/// Upstream model ids of the recorded requests, in order.
pub(crate) fn served_ids(mock: &MockUpstream) -> Vec<String> {
    mock.requests()
        .iter()
        .filter_map(|r| r.body.as_ref()?.get("model")?.as_str().map(str::to_string))
        .collect()
}

pub(crate) fn counts(ids: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for id in ids {
        *m.entry(id.clone()).or_default() += 1;
    }
    m
}

pub(crate) async fn two_deployments(
    extra_general: &str,
    a: &str,
    b: &str,
    tail: &str,
) -> (MockUpstream, Gateway) {
    let mock = MockUpstream::start().await.unwrap();
    let cfg = format!(
        "{}{}{}{}",
        header(MASTER, extra_general),
        dep(&mock, "pool", "dep-a", a),
        dep(&mock, "pool", "dep-b", b),
        tail
    );
    let gw = Gateway::start(&cfg).await;
    (mock, gw)
}

#[tokio::test]
async fn a_failing_deployment_is_retried_on_another() {
    let (mock, gw) = two_deployments("", "order = 1", "order = 2", "").await;
    mock.push_fault(Fault::status(500).for_model("dep-a").forever());
    let resp = gw.chat(MASTER, hello("pool")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-liter-llm-deployment"], "openai/dep-b");
    assert_eq!(served_ids(&mock), ["dep-a", "dep-b"]);
}

#[tokio::test]
async fn a_refused_connection_moves_on() {
    let mock = MockUpstream::start().await.unwrap();
    // bound for the whole test but not listening: connections are refused
    let (_reserved, port) = refusing_port();
    let cfg = format!(
        "{}[[models]]\nname = \"pool\"\nprovider_model = \"openai/dead\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\norder = 1\n{}",
        header(MASTER, ""),
        dep(&mock, "pool", "dep-b", "order = 2")
    );
    let gw = Gateway::start(&cfg).await;
    let resp = gw.chat(MASTER, hello("pool")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-liter-llm-deployment"], "openai/dep-b");
}

#[tokio::test]
async fn a_hanging_deployment_times_out_and_the_next_answers() {
    let (mock, gw) = two_deployments("", "order = 1\ntimeout_secs = 1", "order = 2", "").await;
    mock.push_fault(Fault::hang().for_model("dep-a"));
    let start = std::time::Instant::now();
    let resp = gw.chat(MASTER, hello("pool")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-liter-llm-deployment"], "openai/dep-b");
    let waited = start.elapsed();
    // Real time: at least the timeout, and far less than the 600 s request deadline
    // (the upper bound is generous for a busy machine).
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(30),
        "{waited:?}"
    );
}

#[tokio::test]
async fn client_errors_are_never_retried() {
    let (mock, gw) = two_deployments("", "order = 1", "order = 2", "").await;
    mock.push_fault(Fault::status(400).for_model("dep-a"));
    expect_error(gw.chat(MASTER, hello("pool")).await, 400).await;
    assert_eq!(served_ids(&mock), ["dep-a"]);
}

#[tokio::test]
async fn fallback_chain_and_which_model_answered() {
    let mock = MockUpstream::start().await.unwrap();
    let cfg = format!(
        "{}{}{}{}",
        header(MASTER, ""),
        dep(
            &mock,
            "primary",
            "p1",
            "fallbacks = [\"secondary\", \"tertiary\"]"
        ),
        dep(&mock, "secondary", "s1", ""),
        dep(&mock, "tertiary", "t1", "")
    );
    let gw = Gateway::start(&cfg).await;
    mock.push_fault(Fault::status(503).for_model("p1").forever());
    mock.push_fault(Fault::status(500).for_model("s1").forever());
    let resp = gw.chat(MASTER, hello("primary")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-liter-llm-model"], "tertiary");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["model"], "t1",
        "the model field names the model that answered"
    );
    // 1 try + 1 retry on each failing pool, then the third answers
    assert_eq!(served_ids(&mock), ["p1", "p1", "s1", "s1", "t1"]);
}

#[tokio::test]
async fn exhausted_fallbacks_give_the_last_error() {
    let mock = MockUpstream::start().await.unwrap();
    let cfg = format!(
        "{}{}{}",
        header(MASTER, ""),
        dep(&mock, "primary", "p1", "fallbacks = [\"secondary\"]"),
        dep(&mock, "secondary", "s1", "")
    );
    let gw = Gateway::start(&cfg).await;
    mock.push_fault(Fault::status(503).forever());
    let resp = gw.chat(MASTER, hello("primary")).await;
    assert_eq!(resp.headers()["x-liter-llm-model"], "secondary");
    expect_error(resp, 502).await;
}

#[tokio::test]
async fn context_window_fallback_moves_to_the_larger_model() {
    let mock = MockUpstream::start().await.unwrap();
    let cfg = format!(
        "{}{}{}{}",
        header(MASTER, ""),
        dep(
            &mock,
            "small",
            "small-1",
            "context_window_fallbacks = [\"large\"]\nfallbacks = [\"other\"]"
        ),
        dep(&mock, "large", "large-1", ""),
        dep(&mock, "other", "other-1", "")
    );
    let gw = Gateway::start(&cfg).await;
    mock.push_fault(
        Fault::status(400)
            .with_body(json!({"error": {"message": "too long", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}))
            .for_model("small-1"),
    );
    let resp = gw.chat(MASTER, hello("small")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-liter-llm-model"], "large");
    assert_eq!(served_ids(&mock), ["small-1", "large-1"]);
}

#[tokio::test]
async fn weights_spread_traffic_with_a_fixed_seed() {
    let (mock, gw) = two_deployments("", "weight = 3", "weight = 1", "[router]\nseed = 42\n").await;
    for _ in 0..400 {
        assert_eq!(gw.chat(MASTER, hello("pool")).await.status(), 200);
    }
    let c = counts(&served_ids(&mock));
    let a = c["dep-a"] as f64 / 400.0;
    assert!(
        (0.68..0.82).contains(&a),
        "dep-a got {a} of the traffic, expected about 0.75"
    );
}

#[tokio::test]
async fn priority_tiers_and_cooldown_with_half_open_recovery() {
    let (mock, gw) = two_deployments(
        "",
        "order = 1",
        "order = 2",
        "[cooldown]\nduration_secs = 30\nallowed_fails = 1\n",
    )
    .await;
    for _ in 0..5 {
        gw.chat(MASTER, hello("pool")).await;
    }
    assert_eq!(
        counts(&served_ids(&mock))["dep-a"],
        5,
        "tier 1 takes everything"
    );

    mock.clear_requests();
    mock.push_fault(Fault::status(503).for_model("dep-a"));
    assert_eq!(gw.chat(MASTER, hello("pool")).await.status(), 200);
    for _ in 0..4 {
        gw.chat(MASTER, hello("pool")).await;
    }
    assert_eq!(
        served_ids(&mock),
        ["dep-a", "dep-b", "dep-b", "dep-b", "dep-b", "dep-b"],
        "dep-a cools down"
    );
    let ready: Value = gw.get_json("/health/readiness", MASTER).await;
    assert_eq!(ready["deployments"][0]["cooling_down"], true);

    // after the cooldown one probe goes to dep-a; it fails, so dep-a cools down again
    skip_time(Duration::from_secs(31)).await;
    mock.clear_requests();
    mock.push_fault(Fault::status(500).for_model("dep-a"));
    gw.chat(MASTER, hello("pool")).await;
    gw.chat(MASTER, hello("pool")).await;
    assert_eq!(served_ids(&mock), ["dep-a", "dep-b", "dep-b"]);

    // the next probe succeeds and dep-a is fully back
    skip_time(Duration::from_secs(31)).await;
    mock.clear_requests();
    for _ in 0..3 {
        gw.chat(MASTER, hello("pool")).await;
    }
    assert_eq!(served_ids(&mock), ["dep-a", "dep-a", "dep-a"]);
}

#[tokio::test]
async fn retry_after_cools_a_deployment_for_that_long_and_64_seconds_at_most() {
    let (mock, gw) = two_deployments(
        "",
        "order = 1",
        "order = 2",
        "[cooldown]\nduration_secs = 5\nallowed_fails = 10\n",
    )
    .await;
    // A huge Retry-After (120 s) is cut to 64 s.
    mock.push_fault(Fault::status(429).retry_after(120).for_model("dep-a"));
    let start = tokio::time::Instant::now();
    assert_eq!(gw.chat(MASTER, hello("pool")).await.status(), 200);
    skip_time(Duration::from_secs(60)).await;
    mock.clear_requests();
    gw.chat(MASTER, hello("pool")).await;
    assert_eq!(served_ids(&mock), ["dep-b"], "still cooling at ~60 s");
    let ready = gw.get_json("/health/readiness", MASTER).await;
    assert_eq!(ready["deployments"][0]["cooling_down"], true, "{ready}");
    assert!(start.elapsed() < Duration::from_secs(64));
    skip_time(Duration::from_secs(5)).await;
    mock.clear_requests();
    gw.chat(MASTER, hello("pool")).await;
    assert_eq!(served_ids(&mock), ["dep-a"], "available again after 64 s");
}

#[tokio::test]
async fn every_deployment_cooling_is_503_with_retry_after() {
    let mock = MockUpstream::start().await.unwrap();
    let cfg = format!(
        "{}{}[cooldown]\nduration_secs = 30\n",
        header(MASTER, "").replace("max_retries = 1", "max_retries = 0"),
        dep(&mock, "solo", "solo-1", "")
    );
    let gw = Gateway::start(&cfg).await;
    mock.push_fault(Fault::status(500));
    expect_error(gw.chat(MASTER, hello("solo")).await, 502).await;
    let resp = gw.chat(MASTER, hello("solo")).await;
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry));
    let err = expect_error(resp, 503).await;
    assert_eq!(err["error"]["code"], "no_deployment_available");
}

#[tokio::test]
async fn a_deployment_rpm_is_never_exceeded() {
    let mock = MockUpstream::start().await.unwrap();
    let cfg = format!(
        "{}{}",
        header(MASTER, ""),
        dep(&mock, "limited", "lim-1", "rpm = 3")
    );
    let gw = Gateway::start(&cfg).await;
    let mut statuses = Vec::new();
    let handles: Vec<_> = (0..10)
        .map(|_| {
            tokio::spawn(
                gw.post("/v1/chat/completions", Some(MASTER), &hello("limited"))
                    .send(),
            )
        })
        .collect();
    for h in handles {
        let resp = h.await.unwrap().unwrap();
        if resp.status() == 429 {
            assert!(resp.headers().get("retry-after").is_some());
        }
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 7);
    assert_eq!(mock.requests().len(), 3);
}

#[tokio::test]
async fn latency_based_moves_traffic_to_the_fast_deployment() {
    let (mock, gw) = two_deployments(
        "",
        "",
        "",
        "[router]\nstrategy = \"latency-based\"\nlatency_exploration = 0.0\nseed = 1\n",
    )
    .await;
    mock.push_fault(Fault::delay_ms(300).for_model("dep-a").forever());
    for _ in 0..20 {
        gw.chat(MASTER, hello("pool")).await;
    }
    let c = counts(&served_ids(&mock));
    assert_eq!(c["dep-a"], 1, "measured once, then avoided: {c:?}");
    assert_eq!(c["dep-b"], 19);
}

#[tokio::test]
async fn least_busy_avoids_the_deployment_with_a_request_in_flight() {
    let (mock, gw) = two_deployments("", "", "", "[router]\nstrategy = \"least-busy\"\n").await;
    // The first request is held at the mock until released: it is in flight for sure
    // while the second one is routed.
    mock.push_fault(Fault::hold());
    let first = tokio::spawn(
        gw.post("/v1/chat/completions", Some(MASTER), &hello("pool"))
            .send(),
    );
    wait_for_requests(&mock, 1).await;
    let second = gw.chat(MASTER, hello("pool")).await;
    assert_eq!(second.status(), 200);
    assert!(!first.is_finished(), "the first request is still held");
    mock.release(1);
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
    let ids = served_ids(&mock);
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn cost_and_usage_based_strategies() {
    let (mock, gw) = two_deployments(
        "",
        "input_cost_per_token = 0.00001\noutput_cost_per_token = 0.00003",
        "input_cost_per_token = 0.000001\noutput_cost_per_token = 0.000002",
        "[router]\nstrategy = \"cost-based\"\n",
    )
    .await;
    for _ in 0..5 {
        gw.chat(MASTER, hello("pool")).await;
    }
    assert_eq!(counts(&served_ids(&mock))["dep-b"], 5);

    let (mock, gw) = two_deployments(
        "",
        "rpm = 10",
        "rpm = 1000",
        "[router]\nstrategy = \"usage-based\"\n",
    )
    .await;
    for _ in 0..20 {
        gw.chat(MASTER, hello("pool")).await;
    }
    let c = counts(&served_ids(&mock));
    assert!(c.get("dep-a").copied().unwrap_or(0) <= 1, "{c:?}");
}

#[tokio::test]
async fn streams_are_retried_before_the_first_byte() {
    let (mock, gw) = two_deployments("", "order = 1", "order = 2", "").await;
    mock.push_fault(Fault::status(503).for_model("dep-a"));
    let resp = gw
        .chat(MASTER, json!({"model": "pool", "stream": true, "messages": [{"role": "user", "content": "x y"}]}))
        .await;
    assert_eq!(resp.status(), 200);
    let events = sse_data(&resp.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(served_ids(&mock), ["dep-a", "dep-b"]);
}

#[tokio::test]
async fn a_stream_with_no_first_chunk_in_time_moves_on() {
    let (mock, gw) =
        two_deployments("", "order = 1\nstream_timeout_secs = 1", "order = 2", "").await;
    mock.push_fault(Fault::stall_stream(0).for_model("dep-a"));
    let resp = gw
        .chat(MASTER, json!({"model": "pool", "stream": true, "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-liter-llm-deployment"], "openai/dep-b");
    assert!(resp.text().await.unwrap().ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn health_probes_mark_and_clear_a_deployment() {
    let (mock, gw) = two_deployments(
        "",
        "",
        "",
        "[health]\ninterval_secs = 1\n[router]\nseed = 3\n",
    )
    .await;
    mock.push_fault(Fault::status(500).for_model("dep-a").forever());
    // the first probe round runs at start
    let ready = readiness_until(&gw, |r| {
        r["deployments"][0]["healthy"] == false && r["deployments"][1]["healthy"] == true
    })
    .await;
    assert_eq!(ready["deployments"][0]["healthy"], false, "{ready}");
    assert_eq!(ready["deployments"][1]["healthy"], true, "{ready}");
    mock.clear_requests();
    for _ in 0..6 {
        assert_eq!(gw.chat(MASTER, hello("pool")).await.status(), 200);
    }
    assert_eq!(
        counts(&client_ids(&mock)).get("dep-b"),
        Some(&6),
        "the unhealthy one is skipped"
    );

    mock.clear_faults();
    let ready = readiness_until(&gw, |r| r["deployments"][0]["healthy"] == true).await;
    assert_eq!(ready["deployments"][0]["healthy"], true, "{ready}");
}

/// Upstream model ids of the recorded requests that are not health probes (a probe
/// asks "ping" with `max_tokens: 1`).
fn client_ids(mock: &MockUpstream) -> Vec<String> {
    mock.requests()
        .iter()
        .filter_map(|r| r.body.as_ref())
        .filter(|b| b["messages"][0]["content"] != "ping")
        .filter_map(|b| b["model"].as_str().map(str::to_string))
        .collect()
}

/// Polls the readiness report (bounded) until `done` holds, and returns the last one;
/// the caller asserts on it.
pub(crate) async fn readiness_until(gw: &Gateway, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ready = gw.get_json("/health/readiness", MASTER).await;
        if done(&ready) || std::time::Instant::now() > deadline {
            return ready;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn model_group_alias_points_to_a_pool() {
    let (mock, gw) = two_deployments(
        "",
        "",
        "",
        "[router]\nmodel_group_alias = { \"gpt-4\" = \"pool\" }\n",
    )
    .await;
    let resp = gw.chat(MASTER, hello("gpt-4")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-liter-llm-model"], "pool");
    assert_eq!(gw.model_ids(MASTER).await, ["pool", "gpt-4"]);
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn past_the_deadline_nothing_more_is_tried_or_blamed() {
    let mock = MockUpstream::start().await.unwrap();
    let cfg = format!(
        "[server]\nrequest_timeout_secs = 1\n{}{}{}{}[cooldown]\nduration_secs = 60\n",
        header(MASTER, "").replace("max_retries = 1", "max_retries = 3"),
        dep(&mock, "pool", "dep-a", "order = 1\nfallbacks = [\"other\"]"),
        dep(&mock, "pool", "dep-b", "order = 2"),
        dep(&mock, "other", "other-1", "")
    );
    let gw = Gateway::start(&cfg).await;
    mock.push_fault(Fault::hang().for_model("dep-a"));
    let resp = gw.chat(MASTER, hello("pool")).await;
    assert_eq!(resp.headers()["x-liter-llm-deployment"], "openai/dep-a");
    expect_error(resp, 504).await;
    assert_eq!(
        served_ids(&mock),
        ["dep-a"],
        "nothing is sent after the deadline"
    );
    let ready = gw.get_json("/health/readiness", MASTER).await;
    assert_eq!(ready["deployments"][1]["cooling_down"], false, "{ready}");
    assert_eq!(ready["deployments"][2]["cooling_down"], false, "{ready}");
}

#[tokio::test]
async fn cost_based_uses_the_pricing_table() {
    // gpt-4o-mini is far cheaper than gpt-4o in the embedded table.
    let mock = MockUpstream::start().await.unwrap();
    let cfg = format!(
        "{}{}{}[router]\nstrategy = \"cost-based\"\n",
        header(MASTER, ""),
        dep(&mock, "pool", "gpt-4o", ""),
        dep(&mock, "pool", "gpt-4o-mini", "")
    );
    let gw = Gateway::start(&cfg).await;
    for _ in 0..4 {
        gw.chat(MASTER, hello("pool")).await;
    }
    assert_eq!(counts(&served_ids(&mock))["gpt-4o-mini"], 4);
}

#[tokio::test]
async fn a_provider_model_probe_sends_that_model_to_each_deployment_of_the_provider() {
    // The spec's `probe_model = "openai/gpt-4o-mini"`: the probe is that model, sent
    // on each openai/ deployment's own credentials and base URL; a failing probe marks
    // those deployments unhealthy.
    let (mock, gw) = two_deployments(
        "",
        "",
        "",
        "[[models]]\nname = \"local\"\nprovider_model = \"mock/echo\"\n[health]\ninterval_secs = 3600\nprobe_model = \"openai/probe-cheap\"\n",
    )
    .await;
    mock.push_fault(Fault::status(500).for_model("probe-cheap").forever());
    let ready = readiness_until(&gw, |r| {
        let all = r["deployments"].as_array().unwrap();
        all.iter().filter(|d| d["healthy"] == false).count() == 2
    })
    .await;
    assert_eq!(ready["deployments"][0]["healthy"], false, "{ready}");
    assert_eq!(ready["deployments"][1]["healthy"], false, "{ready}");
    assert_eq!(
        ready["deployments"][2]["healthy"], true,
        "mock/ is not probed: {ready}"
    );
    assert_eq!(served_ids(&mock), ["probe-cheap", "probe-cheap"]);
}
