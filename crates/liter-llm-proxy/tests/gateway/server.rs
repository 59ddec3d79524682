//! [server] settings, health, request ids and graceful shutdown.

use std::time::Duration;

use mock_upstream::Fault;
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn health_routes_are_public() {
    let (_mock, gw) = setup("").await;
    for path in [
        "/health",
        "/health/liveness",
        "/health/liveliness",
        "/health/readiness",
    ] {
        let resp = gw.get(path, None).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let v: Value = resp.json().await.unwrap();
        assert!(v["status"].is_string());
    }
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let mock = mock_upstream::MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&format!(
        "[server]\nbody_limit_bytes = 1024\n{}",
        base_config(&mock, "")
    ))
    .await;
    let big =
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x".repeat(2000)}]});
    let err = expect_error(gw.chat(MASTER, big).await, 413).await;
    assert!(err["error"]["message"].as_str().unwrap().contains("1024"));
    // chunked upload without content-length is limited too
    let chunks =
        futures_util::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b' '; 300])));
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    expect_error(resp, 413).await;
    // under the limit still works
    assert_eq!(gw.chat(MASTER, hello("gpt-4o")).await.status(), 200);
    assert!(mock.requests().len() == 1);
}

#[tokio::test]
async fn request_timeout_is_504() {
    let mock = mock_upstream::MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&format!(
        "[server]\nrequest_timeout_secs = 1\n{}",
        base_config(&mock, "")
    ))
    .await;
    mock.push_fault(Fault::hang());
    // Real time: the upper bound is generous for a busy machine.
    let start = std::time::Instant::now();
    let err = expect_error(gw.chat(MASTER, hello("gpt-4o")).await, 504).await;
    assert_eq!(err["error"]["type"], "timeout_error");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(30),
        "{waited:?}"
    );
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let mock = mock_upstream::MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&format!(
        "[server]\ncors_origins = [\"https://app.example.com\"]\n{}",
        base_config(&mock, "")
    ))
    .await;
    let preflight = |origin: &'static str| {
        client()
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/v1/chat/completions", gw.url),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let ok = preflight("https://app.example.com").await.unwrap();
    assert!(ok.status().is_success(), "preflight needs no key");
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let bad = preflight("https://evil.example.com").await.unwrap();
    assert!(bad.headers().get("access-control-allow-origin").is_none());
    let resp = gw
        .post("/v1/chat/completions", Some(MASTER), &hello("gpt-4o"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
}

#[tokio::test]
async fn cors_star_allows_any_origin() {
    let (_mock, gw) = setup("").await;
    let resp = client()
        .request(reqwest::Method::OPTIONS, format!("{}/v1/models", gw.url))
        .header("origin", "https://anything.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn request_id_is_returned_and_kept() {
    let (_mock, gw) = setup("").await;
    let resp = gw.chat(MASTER, hello("gpt-4o")).await;
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(id.starts_with("req_") && id.len() > 20);
    let resp = gw
        .post("/v1/chat/completions", Some(MASTER), &hello("gpt-4o"))
        .header("x-request-id", "client-chosen-id-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "client-chosen-id-1");
    // errors carry one too
    let resp = gw.chat("wrong", hello("gpt-4o")).await;
    assert!(resp.headers().get("x-request-id").is_some());
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_streams() {
    let (mock, mut gw) = setup("").await;
    // a slow plain request and a slow stream are in flight when shutdown begins
    mock.push_fault(Fault::delay_ms(300).times(2));
    let plain = tokio::spawn(
        gw.post("/v1/chat/completions", Some(MASTER), &hello("gpt-4o"))
            .send(),
    );
    let streamed = tokio::spawn(
        gw.post(
            "/v1/chat/completions",
            Some(MASTER),
            &json!({"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"a b c"}]}),
        )
        .send(),
    );
    // wait until both reached the upstream
    wait_for_requests(&mock, 2).await;
    let url = gw.url.clone();
    let stopped = gw.begin_shutdown();
    let plain = plain.await.unwrap().unwrap();
    assert_eq!(plain.status(), 200);
    let streamed = streamed.await.unwrap().unwrap();
    let events = sse_data(&streamed.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    stopped.await.unwrap().unwrap();
    // and it no longer accepts connections
    assert!(client().get(format!("{url}/health")).send().await.is_err());
}
