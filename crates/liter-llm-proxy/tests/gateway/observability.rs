//! Observability: the overhead headers, `GET /metrics` after known traffic (exact
//! values), its access setting.

use mock_upstream::{Fault, MockUpstream};
use serde_json::json;

use crate::support::*;

fn config(mock: &MockUpstream, extra: &str) -> String {
    format!(
        r#"
[general]
master_key = "{MASTER}"
max_retries = 1
{extra}

[[models]]
name = "gpt-4o"
provider_model = "openai/gpt-4o"
api_key = "{UPSTREAM_KEY}"
base_url = "{base}"

[[keys]]
key = "{VKEY}"
description = "limited"
models = ["gpt-4o"]
rpm = 1
"#,
        base = mock.base_url()
    )
}

/// Scrapes until `line` appears (a stream's request is counted when the server drops
/// its body, just after the client read its end), bounded; returns the text.
async fn scrape_until(gw: &Gateway, line: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = gw.scrape().await;
        if text.lines().any(|l| l == line) || std::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn has(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "missing line {line}\nin:\n{text}"
    );
}

fn overhead(resp: &reqwest::Response) -> f64 {
    let ours = resp.headers()["x-liter-llm-overhead-duration-ms"]
        .to_str()
        .unwrap();
    let litellm = resp.headers()["x-litellm-overhead-duration-ms"]
        .to_str()
        .unwrap();
    assert_eq!(ours, litellm);
    ours.parse().unwrap()
}

#[tokio::test]
async fn every_response_carries_the_overhead_without_the_upstream_time() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&config(&mock, "")).await;
    mock.push_fault(Fault::delay_ms(400));
    let started = std::time::Instant::now();
    let resp = gw.chat(MASTER, hello("gpt-4o")).await;
    let took = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(resp.status(), 200);
    let ms = overhead(&resp);
    assert!(took >= 400.0, "the mock's delay did not apply: {took}");
    assert!(ms >= 0.0 && ms < took - 350.0, "overhead {ms} of {took} ms");
    // Refusals and routes with no upstream carry it too.
    for resp in [
        gw.get("/health", None).send().await.unwrap(),
        gw.get("/v1/models", None).send().await.unwrap(),
        gw.chat(MASTER, hello("no-such-model")).await,
    ] {
        assert!(overhead(&resp) >= 0.0);
    }
}

#[tokio::test]
async fn metrics_count_known_traffic_exactly() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&config(&mock, "enable_cost_tracking = true")).await;
    // Two plain successes and a stream.
    for _ in 0..2 {
        assert_eq!(gw.chat(MASTER, hello("gpt-4o")).await.status(), 200);
    }
    let mut stream = hello("gpt-4o");
    stream["stream"] = json!(true);
    let resp = gw.chat(MASTER, stream).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("[DONE]"));
    // A 500 retried into a success, then two 503s: a 502 after its retry.
    mock.push_fault(Fault::status(500));
    assert_eq!(gw.chat(MASTER, hello("gpt-4o")).await.status(), 200);
    mock.push_fault(Fault::status(503).times(2));
    expect_error(gw.chat(MASTER, hello("gpt-4o")).await, 502).await;
    // The virtual key: one request, then its rpm refuses the next.
    assert_eq!(gw.chat(VKEY, hello("gpt-4o")).await.status(), 200);
    expect_error(gw.chat(VKEY, hello("gpt-4o")).await, 429).await;

    let ok = r#"liter_llm_requests_total{model="gpt-4o",deployment="openai/gpt-4o",provider="openai",key="master",route="/v1/chat/completions",status="2xx"} 4"#;
    let text = scrape_until(&gw, ok).await;
    has(&text, ok);
    let labels = r#"model="gpt-4o",deployment="openai/gpt-4o",provider="openai""#;
    for line in [
        format!(r#"liter_llm_requests_total{{{labels},key="master",route="/v1/chat/completions",status="5xx"}} 1"#),
        format!(r#"liter_llm_requests_total{{{labels},key="limited",route="/v1/chat/completions",status="2xx"}} 1"#),
        r#"liter_llm_requests_total{model="",deployment="",provider="",key="limited",route="/v1/chat/completions",status="4xx"} 1"#.to_string(),
        r#"liter_llm_rejections_total{kind="rate_limit",scope="key"} 1"#.to_string(),
        format!("liter_llm_retries_total{{{labels}}} 2"),
        // 2 + 1 + 2 + 2 + 1 attempts; one stream.
        format!("liter_llm_upstream_duration_seconds_count{{{labels}}} 8"),
        format!("liter_llm_time_to_first_token_seconds_count{{{labels}}} 1"),
        r#"liter_llm_request_duration_seconds_count{route="/v1/chat/completions",model="gpt-4o"} 6"#.to_string(),
        format!("liter_llm_deployment_in_flight{{{labels}}} 0"),
        format!("liter_llm_deployment_healthy{{{labels}}} 1"),
        format!("liter_llm_cooldowns_total{{{labels}}} 0"),
    ] {
        has(&text, &line);
    }
    // Tokens: what the mock reported for its successful answers (stream included).
    let served = mock.served();
    has(
        &text,
        &format!(
            "liter_llm_tokens_total{{{labels},type=\"input\"}} {}",
            served.prompt_tokens
        ),
    );
    has(
        &text,
        &format!(
            "liter_llm_tokens_total{{{labels},type=\"output\"}} {}",
            served.completion_tokens
        ),
    );
    // gpt-4o is priced: $2.50 in, $10 out per million tokens.
    let cost = served.prompt_tokens as f64 * 2.5e-6 + served.completion_tokens as f64 * 1e-5;
    let line = text
        .lines()
        .find(|l| l.starts_with("liter_llm_cost_usd_total{"))
        .unwrap();
    let counted: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((counted - cost).abs() < 1e-9, "{line} vs {cost}");
    // No key, no prompt.
    for secret in [MASTER, VKEY, UPSTREAM_KEY, "hello gateway"] {
        assert!(!text.contains(secret), "{secret} in /metrics");
    }
}

#[tokio::test]
async fn metrics_count_cooldowns_fallbacks_and_bucket_client_names() {
    let mock = MockUpstream::start().await.unwrap();
    let base = mock.base_url();
    let gw = Gateway::start_with_env(
        &format!(
            r#"
[general]
master_key = "{MASTER}"
max_retries = 1

[cooldown]
duration_secs = 60

[[models]]
name = "flaky"
provider_model = "openai/flaky-a"
api_key = "k"
base_url = "{base}"
order = 1

[[models]]
name = "flaky"
provider_model = "openai/flaky-b"
api_key = "k"
base_url = "{base}"
order = 2

[[models]]
name = "primary"
provider_model = "openai/primary"
api_key = "k"
base_url = "{base}"
fallbacks = ["flaky"]

[[aliases]]
pattern = "openai/*"
api_key = "k"
base_url = "{base}"
"#
        ),
        |_| None,
    )
    .await;
    mock.push_fault(Fault::status(503).for_model("flaky-a"));
    assert_eq!(gw.chat(MASTER, hello("flaky")).await.status(), 200);
    mock.push_fault(Fault::status(400).for_model("primary"));
    // A 400 is the answer: no fallback.
    expect_error(gw.chat(MASTER, hello("primary")).await, 400).await;
    mock.push_fault(Fault::status(500).for_model("primary").times(2));
    assert_eq!(gw.chat(MASTER, hello("primary")).await.status(), 200);
    // A client-sent provider/model name.
    assert_eq!(
        gw.chat(MASTER, hello("openai/made-up-by-client"))
            .await
            .status(),
        200
    );
    let text = gw.scrape().await;
    for line in [
        r#"liter_llm_cooldowns_total{model="flaky",deployment="openai/flaky-a",provider="openai"} 1"#,
        r#"liter_llm_deployment_healthy{model="flaky",deployment="openai/flaky-a",provider="openai"} 0"#,
        r#"liter_llm_deployment_healthy{model="flaky",deployment="openai/flaky-b",provider="openai"} 1"#,
        r#"liter_llm_retries_total{model="flaky",deployment="openai/flaky-b",provider="openai"} 1"#,
        r#"liter_llm_fallbacks_total{model="primary",to="flaky"} 1"#,
        r#"liter_llm_requests_total{model="other",deployment="other",provider="openai",key="master",route="/v1/chat/completions",status="2xx"} 1"#,
    ] {
        has(&text, line);
    }
    assert!(!text.contains("made-up-by-client"));
}

#[tokio::test]
async fn metrics_are_master_only_by_default_public_or_off_by_setting() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&config(&mock, "")).await;
    expect_error(gw.get("/metrics", None).send().await.unwrap(), 401).await;
    expect_error(gw.get("/metrics", Some(VKEY)).send().await.unwrap(), 403).await;
    let resp = gw.get("/metrics", Some(MASTER)).send().await.unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let open = gw
        .get("/metrics", Some(MASTER))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(open.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(open.text().await.unwrap().ends_with("# EOF\n"));

    let public = Gateway::start(&config(&mock, r#"metrics = "public""#)).await;
    let resp = public.get("/metrics", None).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("liter_llm_cache_lookups_total{result=\"hit\"} 0"));

    let off = Gateway::start(&config(&mock, r#"metrics = "off""#)).await;
    expect_error(off.get("/metrics", Some(MASTER)).send().await.unwrap(), 404).await;
    assert!(off.app.metrics.is_none());
}

/// docs/grafana-dashboard.json is valid JSON, and every metric its queries name is one
/// the gateway exports (a histogram's `_bucket`, a counter's `_total`, as scraped).
#[tokio::test]
async fn the_grafana_dashboard_names_only_exported_metrics() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/grafana-dashboard.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut names = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find("liter_llm_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                names.push(name);
            }
        }
    }
    assert!(names.len() >= 12, "{names:?}");
    // Traffic that makes every family show at least one series.
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&config(&mock, "enable_cost_tracking = true")).await;
    let mut stream = hello("gpt-4o");
    stream["stream"] = json!(true);
    assert!(gw
        .chat(MASTER, stream)
        .await
        .text()
        .await
        .unwrap()
        .contains("[DONE]"));
    assert_eq!(gw.chat(VKEY, hello("gpt-4o")).await.status(), 200);
    expect_error(gw.chat(VKEY, hello("gpt-4o")).await, 429).await;
    // A fallback needs a second model: counted through the registry's own call.
    let metrics = gw.app.metrics.as_ref().unwrap();
    let label = liter_llm_proxy::metrics::Metrics::label("gpt-4o");
    metrics.fell_back(&label, &label);
    let text = scrape_until(
        &gw,
        r#"liter_llm_time_to_first_token_seconds_count{model="gpt-4o",deployment="openai/gpt-4o",provider="openai"} 1"#,
    )
    .await;
    let exported: std::collections::HashSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for name in &names {
        let known = exported.contains(name.as_str()) || text.contains(&format!("# TYPE {name} "));
        assert!(
            known,
            "the dashboard names {name}, which /metrics does not export"
        );
    }
}

/// The spend store's write path in `/metrics`: every settled row written, none left
/// queued, and the writes timed (SQLite: batches; PostgreSQL: one per settlement).
async fn spend_writes_are_measured(db: crate::governance::Db) {
    let mock = MockUpstream::start().await.unwrap();
    let gw = crate::governance::gateway(&mock, &db, "").await;
    for _ in 0..3 {
        let resp = gw.chat(MASTER, crate::governance::ask(5)).await;
        assert_eq!(resp.status(), 200);
    }
    gw.app.governor.settled().await;
    crate::governance::spend_store(&gw).flush().await.unwrap();
    let text = gw.scrape().await;
    has(&text, "liter_llm_spend_queue_depth 0");
    let writes: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("liter_llm_spend_write_duration_seconds_count "))
        .unwrap_or_else(|| panic!("no write histogram in:\n{text}"))
        .parse()
        .unwrap();
    match db {
        crate::governance::Db::Sqlite(_) => assert!((1..=3).contains(&writes), "{writes}"),
        crate::governance::Db::Postgres(_) => assert_eq!(writes, 3),
    }
}

#[tokio::test]
async fn sqlite_spend_writes_are_measured() {
    spend_writes_are_measured(crate::governance::Db::sqlite()).await;
}

#[tokio::test]
async fn postgres_spend_writes_are_measured() {
    spend_writes_are_measured(crate::governance::Db::postgres().await).await;
}
