//! The native Anthropic provider through the gateway: OpenAI in, Messages API out.

use futures_util::StreamExt;
use mock_upstream::{Fault, MockUpstream};
use serde_json::{json, Value};

use crate::support::*;

async fn claude_gateway(mock: &MockUpstream, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\n[[models]]\nname = \"claude\"\nprovider_model = \"anthropic/claude-sonnet-4-20250514\"\napi_key = \"{UPSTREAM_KEY}\"\nbase_url = \"http://{}\"\n{extra}",
        mock.addr()
    ))
    .await
}

#[tokio::test]
async fn chat_is_translated_both_ways() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = claude_gateway(&mock, "").await;
    let resp = gw
        .chat(
            MASTER,
            json!({"model": "claude", "max_tokens": 100, "temperature": 0.5, "stop": "END",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "hello claude"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let out: Value = resp.json().await.unwrap();
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["model"], "claude");
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "echo: hello claude"
    );
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert!(out["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    let req = &mock.requests()[0];
    assert_eq!(req.path, "/v1/messages");
    assert_eq!(req.header("x-api-key"), Some(UPSTREAM_KEY));
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    assert!(req.header("authorization").is_none());
    let sent = req.body.as_ref().unwrap();
    assert_eq!(sent["model"], "claude-sonnet-4-20250514");
    assert_eq!(sent["system"], "be brief");
    assert_eq!(sent["max_tokens"], 100);
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    assert_eq!(sent["messages"][0]["role"], "user");
}

#[tokio::test]
async fn stream_is_translated_with_usage() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = claude_gateway(&mock, "").await;
    let resp = gw
        .chat(
            MASTER,
            json!({"model": "claude", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "one two three"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let mut text = String::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "echo: one two three");
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    let usage = &chunks.last().unwrap()["usage"];
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0, "{usage}");
}

#[tokio::test]
async fn tool_calls_come_back_in_openai_shape() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = claude_gateway(&mock, "").await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let out: Value = gw
        .chat(
            MASTER,
            json!({"model": "claude", "tools": tools, "tool_choice": "auto",
            "messages": [{"role": "user", "content": "please call tool"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    let call = &out["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let sent = mock.requests()[0].body.clone().unwrap();
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert_eq!(sent["tools"][0]["input_schema"]["type"], "object");
    assert_eq!(sent["tool_choice"]["type"], "auto");
}

#[tokio::test]
async fn provider_errors_map_to_openai_errors() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = claude_gateway(&mock, "").await;
    mock.push_fault(Fault::status(529));
    let err = expect_error(gw.chat(MASTER, hello("claude")).await, 503).await;
    assert_eq!(err["error"]["code"], "overloaded");
    mock.push_fault(Fault::status(429).retry_after(9));
    let resp = gw.chat(MASTER, hello("claude")).await;
    assert_eq!(resp.headers()["retry-after"], "9");
    expect_error(resp, 429).await;
    mock.push_fault(Fault::status(400).with_body(json!({"type": "error", "error": {
        "type": "invalid_request_error", "message": "prompt is too long: 210000 tokens > 200000 maximum"}})));
    let err = expect_error(gw.chat(MASTER, hello("claude")).await, 400).await;
    assert_eq!(err["error"]["code"], "context_length_exceeded");
    let err = expect_error(
        gw.chat(
            MASTER,
            json!({"model": "claude", "n": 2, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await,
        400,
    )
    .await;
    assert!(
        err["error"]["message"].as_str().unwrap().contains('n'),
        "{err}"
    );
    let resp = gw
        .post(
            "/v1/embeddings",
            Some(MASTER),
            &json!({"model": "claude", "input": "x"}),
        )
        .send()
        .await
        .unwrap();
    expect_error(resp, 400).await;
}

#[tokio::test]
async fn a_wrong_anthropic_key_is_401() {
    let mock = MockUpstream::start_with(mock_upstream::MockOptions {
        require_api_key: Some("the-real-key".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let gw = claude_gateway(&mock, "").await;
    let err = expect_error(gw.chat(MASTER, hello("claude")).await, 401).await;
    assert!(!err.to_string().contains(UPSTREAM_KEY));
}

#[tokio::test]
async fn an_overloaded_anthropic_deployment_falls_back() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = claude_gateway(
        &mock,
        &format!(
            "fallbacks = [\"gpt\"]\n[[models]]\nname = \"gpt\"\nprovider_model = \"openai/gpt-4o-mini\"\nbase_url = \"{}\"\n",
            mock.base_url()
        ),
    )
    .await;
    mock.push_fault(
        Fault::status(529)
            .for_model("claude-sonnet-4-20250514")
            .forever(),
    );
    let resp = gw.chat(MASTER, hello("claude")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-liter-llm-model"], "gpt");
}

#[tokio::test]
async fn models_list_names_the_provider() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = claude_gateway(&mock, "").await;
    let list = gw.get_json("/v1/models", MASTER).await;
    assert_eq!(list["data"][0]["owned_by"], "anthropic");
}

#[tokio::test]
async fn unsupported_parameters_are_400_or_dropped_with_a_warning_header() {
    let mock = MockUpstream::start().await.unwrap();
    let body = json!({"model": "claude", "seed": 7, "logprobs": null,
        "messages": [{"role": "user", "content": "hi"}]});

    let gw = claude_gateway(&mock, "").await;
    let resp = gw.chat(MASTER, body.clone()).await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["param"], "seed");
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert!(mock.requests().is_empty(), "nothing may reach the provider");

    let gw = claude_gateway(&mock, "drop_params = true\n").await;
    let resp = gw.chat(MASTER, body.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-liter-llm-dropped-params"]
            .to_str()
            .unwrap(),
        "seed"
    );
    let sent = mock.requests()[0].body.clone().unwrap();
    assert!(sent.get("seed").is_none() && sent.get("logprobs").is_none());

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let resp = gw.chat(MASTER, streamed).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-liter-llm-dropped-params"], "seed");
}
