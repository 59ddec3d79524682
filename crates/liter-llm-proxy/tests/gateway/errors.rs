//! Every error a client can see is OpenAI-shaped JSON with the right status.

use std::time::Duration;

use mock_upstream::Fault;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn malformed_json_and_missing_model_are_400() {
    let (mock, gw) = setup("").await;
    for (body, needle) in [
        ("{\"model\": \"gpt-4o\", ", "invalid JSON"),
        ("not json", "invalid JSON"),
        ("", "empty"),
        ("[]", "invalid JSON"),
        ("{\"messages\": []}", "'model'"),
        ("{\"model\": 42}", "'model'"),
    ] {
        let resp = client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(MASTER)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let err = expect_error(resp, 400).await;
        assert_eq!(err["error"]["type"], "invalid_request_error");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(needle),
            "{err}"
        );
    }
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn upstream_4xx_passes_through_with_the_provider_message() {
    let (mock, gw) = setup("").await;
    mock.push_fault(
        Fault::status(400).with_body(json!({"error": {
        "message": "This model's maximum context length is 8192 tokens",
        "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})),
    );
    let err = expect_error(gw.chat(MASTER, hello("gpt-4o")).await, 400).await;
    assert_eq!(err["error"]["code"], "context_length_exceeded");
    assert_eq!(err["error"]["param"], "messages");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("maximum context length"));

    // a non-JSON 4xx body still becomes OpenAI's shape
    mock.push_fault(Fault::status(404).with_body(json!("plain text not found")));
    let err = expect_error(gw.chat(MASTER, hello("gpt-4o")).await, 404).await;
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{err}"
    );
}

#[tokio::test]
async fn upstream_429_keeps_retry_after() {
    let (mock, gw) = setup("").await;
    mock.push_fault(Fault::status(429).retry_after(7));
    let resp = gw.chat(MASTER, hello("gpt-4o")).await;
    assert_eq!(resp.headers().get("retry-after").unwrap(), "7");
    let err = expect_error(resp, 429).await;
    assert!(err["error"]["type"].is_string());
}

#[tokio::test]
async fn upstream_5xx_is_502() {
    let (mock, gw) = setup("").await;
    for status in [500, 503] {
        mock.push_fault(Fault::status(status));
        let err = expect_error(gw.chat(MASTER, hello("gpt-4o")).await, 502).await;
        assert_eq!(err["error"]["code"], "upstream_error");
        assert!(err["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&status.to_string()));
    }
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    // bound for the whole test but not listening: connections are refused
    let (_reserved, port) = refusing_port();
    let gw = Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\n[[models]]\nname = \"m\"\nprovider_model = \"openai/x\"\napi_key = \"{UPSTREAM_KEY}\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\n"
    ))
    .await;
    let err = expect_error(gw.chat(MASTER, hello("m")).await, 502).await;
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(msg.contains("could not reach"), "{msg}");
    assert!(!msg.contains(UPSTREAM_KEY));
}

#[tokio::test]
async fn dropped_connection_is_502() {
    let (mock, gw) = setup("").await;
    mock.push_fault(Fault::drop_connection());
    expect_error(gw.chat(MASTER, hello("gpt-4o")).await, 502).await;
}

// Timeouts run in real time: short ones, with generous upper bounds for a busy machine
// (far below the 600 s request deadline they are told apart from).
#[tokio::test]
async fn per_model_timeout_is_504() {
    let mock = mock_upstream::MockUpstream::start().await.unwrap();
    let cfg = base_config(&mock, "").replace(
        "name = \"gpt-4o\"\n",
        "name = \"gpt-4o\"\ntimeout_secs = 1\n",
    );
    let gw = Gateway::start(&cfg).await;
    mock.push_fault(Fault::hang());
    let start = std::time::Instant::now();
    let err = expect_error(gw.chat(MASTER, hello("gpt-4o")).await, 504).await;
    assert_eq!(err["error"]["code"], "timeout");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(30),
        "waited {waited:?}"
    );
}

#[tokio::test]
async fn default_timeout_applies_when_the_model_sets_none() {
    let mock = mock_upstream::MockUpstream::start().await.unwrap();
    let cfg = base_config(&mock, "").replace(
        "max_retries = 0",
        "max_retries = 0\ndefault_timeout_secs = 1",
    );
    let gw = Gateway::start(&cfg).await;
    mock.push_fault(Fault::hang());
    let start = std::time::Instant::now();
    expect_error(gw.chat(MASTER, hello("gpt-4o")).await, 504).await;
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(30),
        "waited {waited:?}"
    );
}

#[tokio::test]
async fn transient_failures_are_retried_up_to_max_retries() {
    let mock = mock_upstream::MockUpstream::start().await.unwrap();
    let gw =
        Gateway::start(&base_config(&mock, "").replace("max_retries = 0", "max_retries = 2")).await;
    mock.push_fault(Fault::status(503).times(2));
    assert_eq!(gw.chat(MASTER, hello("gpt-4o")).await.status(), 200);
    assert_eq!(mock.requests().len(), 3);

    mock.clear_requests();
    mock.push_fault(Fault::status(500).times(3));
    expect_error(gw.chat(MASTER, hello("gpt-4o")).await, 502).await;
    assert_eq!(mock.requests().len(), 3, "1 try + 2 retries");

    // a 4xx other than 429 is never retried
    mock.clear_requests();
    mock.push_fault(Fault::status(400));
    expect_error(gw.chat(MASTER, hello("gpt-4o")).await, 400).await;
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn retry_after_past_the_deadline_returns_the_providers_429() {
    let mock = mock_upstream::MockUpstream::start().await.unwrap();
    let cfg = format!(
        "[server]\nrequest_timeout_secs = 10\n{}",
        base_config(&mock, "").replace("max_retries = 0", "max_retries = 3")
    );
    let gw = Gateway::start(&cfg).await;
    mock.push_fault(Fault::status(429).retry_after(60));
    let resp = gw.chat(MASTER, hello("gpt-4o")).await;
    assert_eq!(resp.headers()["retry-after"], "60");
    expect_error(resp, 429).await;
    assert_eq!(
        mock.requests().len(),
        1,
        "no retry that cannot finish in time"
    );

    // a short Retry-After is honoured and the retry succeeds
    mock.clear_requests();
    mock.push_fault(Fault::status(429).retry_after(1));
    let start = std::time::Instant::now();
    assert_eq!(gw.chat(MASTER, hello("gpt-4o")).await.status(), 200);
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn arbitrary_bytes_never_break_the_gateway() {
    let (_mock, gw) = setup("").await;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pieces: [&[u8]; 10] = [
        b"{",
        b"}",
        b"\"model\"",
        b":",
        b"\"gpt-4o\"",
        b",",
        b"[",
        b"\xff\xfe",
        b"\"stream\":",
        b"null",
    ];
    for _ in 0..200 {
        let mut body = Vec::new();
        for _ in 0..(next() % 12) {
            body.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
        }
        let resp = client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(MASTER)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        assert!(
            status == 200 || status == 400,
            "status {status} for {body:?}"
        );
        if status == 400 {
            expect_error(resp, 400).await;
        }
    }
    // still serving
    assert_eq!(gw.chat(MASTER, hello("gpt-4o")).await.status(), 200);
}

#[tokio::test]
async fn unknown_route_and_method_are_openai_errors() {
    let (_mock, gw) = setup("").await;
    expect_error(
        gw.get("/v1/nothing-here", Some(MASTER))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    let resp = client()
        .delete(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    expect_error(resp, 405).await;
}

#[tokio::test]
async fn an_unknown_route_names_the_path_and_where_the_routes_are_listed() {
    let (_mock, gw) = setup("").await;
    for path in [
        "/v1/nope",
        "/v2/chat/completions",
        "/v1/chat/completions%0Aforged",
    ] {
        let resp = gw.get(path, Some(MASTER)).send().await.unwrap();
        let err = expect_error(resp, 404).await;
        let message = err["error"]["message"].as_str().unwrap();
        // The path as it came, percent-encoding kept: no raw control character.
        assert!(
            message.starts_with(&format!("no route GET {path}:")),
            "{message}"
        );
        assert!(message.contains("/openapi.json"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }
}
