//! Streaming: SSE relay, include_usage, and clean error events when a stream breaks.

use std::time::Duration;

use futures_util::StreamExt;
use mock_upstream::Fault;
use serde_json::{json, Value};

use crate::support::*;

fn stream_body(model: &str, include_usage: bool) -> Value {
    json!({
        "model": model,
        "stream": true,
        "stream_options": {"include_usage": include_usage},
        "messages": [{"role": "user", "content": "one two three four"}]
    })
}

async fn read_sse(resp: reqwest::Response) -> Vec<String> {
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    sse_data(&resp.text().await.unwrap())
}

#[tokio::test]
async fn stream_is_relayed_with_done_and_usage() {
    let (mock, gw) = setup("").await;
    let events = read_sse(gw.chat(MASTER, stream_body("gpt-4o", true)).await).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "echo: one two three four");
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["prompt_tokens"], 4);
    assert_eq!(usage["completion_tokens"], 5);
    let sent = mock.requests()[0].body.clone().unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert_eq!(sent["model"], "gpt-4o-2024-08-06");
}

#[tokio::test]
async fn stream_without_usage_has_no_usage_chunk() {
    let (_mock, gw) = setup("").await;
    let events = read_sse(gw.chat(MASTER, stream_body("gpt-4o", false)).await).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    for e in &events[..events.len() - 1] {
        let v: Value = serde_json::from_str(e).unwrap();
        assert!(v.get("usage").is_none() || v["usage"].is_null(), "{v}");
    }
}

#[tokio::test]
async fn mock_provider_streams_with_usage() {
    let gw = echo_gateway("echo", "").await;
    let events = read_sse(gw.chat(MASTER, stream_body("echo", true)).await).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 4);
}

#[tokio::test]
async fn a_stream_cut_mid_way_ends_with_an_error_event() {
    let (mock, gw) = setup("").await;
    mock.push_fault(Fault::cut_stream(2));
    let resp = gw.chat(MASTER, stream_body("gpt-4o", true)).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let events = sse_data(&text);
    assert_eq!(events.len(), 3, "two relayed events then the error: {text}");
    let err: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(err["error"]["code"], "upstream_error");
    assert!(err["error"]["message"].as_str().unwrap().contains("gpt-4o"));
    assert!(!text.contains("[DONE]"));
    // every relayed event is whole JSON
    for e in &events[..2] {
        serde_json::from_str::<Value>(e).unwrap();
    }
}

// Timeouts run in real time: short ones, with generous upper bounds.
#[tokio::test]
async fn a_stream_whose_upstream_never_answers_is_504() {
    let mock = mock_upstream::MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&base_config(&mock, "").replace(
        "name = \"gpt-4o\"\n",
        "name = \"gpt-4o\"\ntimeout_secs = 1\n",
    ))
    .await;
    mock.push_fault(Fault::hang());
    let start = std::time::Instant::now();
    let resp = gw.chat(MASTER, stream_body("gpt-4o", false)).await;
    // the hang is before the headers: a plain 504
    expect_error(resp, 504).await;
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn a_stream_that_stalls_mid_way_ends_with_a_timeout_event() {
    let mock = mock_upstream::MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&base_config(&mock, "").replace(
        "name = \"gpt-4o\"\n",
        "name = \"gpt-4o\"\ntimeout_secs = 1\n",
    ))
    .await;
    mock.push_fault(Fault::stall_stream(2));
    let start = std::time::Instant::now();
    let resp = gw.chat(MASTER, stream_body("gpt-4o", false)).await;
    assert_eq!(resp.status(), 200);
    let events = sse_data(&resp.text().await.unwrap());
    assert_eq!(events.len(), 3, "{events:?}");
    let err: Value = serde_json::from_str(&events[2]).unwrap();
    assert_eq!(err["error"]["code"], "timeout");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(30),
        "{waited:?}"
    );
}

#[tokio::test]
async fn upstream_error_before_the_stream_is_a_plain_error() {
    let (mock, gw) = setup("").await;
    mock.push_fault(Fault::status(400));
    let resp = gw.chat(MASTER, stream_body("gpt-4o", false)).await;
    expect_error(resp, 400).await;
}

#[tokio::test]
async fn the_first_event_arrives_before_the_stream_ends() {
    // The gateway must not buffer a stream. The mock sends the first event and then
    // holds the rest until the test releases it, which the test does only once the
    // client has read that first event: a gateway that waited for the end of the
    // stream would never deliver it, and the read below would time out.
    let (mock, gw) = setup("").await;
    mock.push_fault(Fault::hold_stream(1));
    let read_first = async {
        let resp = gw.chat(MASTER, stream_body("gpt-4o", false)).await;
        assert_eq!(resp.status(), 200);
        let mut stream = resp.bytes_stream();
        let mut first = Vec::new();
        while !first.windows(2).any(|w| w == b"\n\n") {
            let chunk = stream.next().await.expect("the stream ended").unwrap();
            first.extend_from_slice(&chunk);
        }
        (stream, first)
    };
    let (mut stream, first) = tokio::time::timeout(Duration::from_secs(10), read_first)
        .await
        .expect("the first event did not arrive while the upstream held the rest back");
    let first = String::from_utf8(first).unwrap();
    assert!(first.starts_with("data: "), "{first}");
    assert!(first.contains("\"role\":\"assistant\""), "{first}");
    assert!(!first.contains("[DONE]"), "{first}");
    mock.release(1);
    let mut rest = Vec::new();
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    let events = sse_data(&String::from_utf8(rest).unwrap());
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
}
