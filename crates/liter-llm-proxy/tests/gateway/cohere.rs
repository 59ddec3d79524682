//! Cohere through the gateway: OpenAI in, Chat v2 and Embed v2 out, against the mock.

use futures_util::StreamExt;
use mock_upstream::{Fault, MockOptions, MockUpstream};
use serde_json::{json, Value};

use crate::support::*;

const MODEL_ID: &str = "command-a-03-2025";

/// A mock that wants `Authorization: Bearer UPSTREAM_KEY`.
async fn cohere_mock() -> MockUpstream {
    MockUpstream::start_with(MockOptions {
        require_api_key: Some(UPSTREAM_KEY.into()),
        ..MockOptions::default()
    })
    .await
    .unwrap()
}

async fn cohere_gateway(mock: &MockUpstream, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\n[[models]]\nname = \"command\"\nprovider_model = \"cohere/{MODEL_ID}\"\napi_key = \"{UPSTREAM_KEY}\"\nbase_url = \"http://{}\"\n{extra}",
        mock.addr()
    ))
    .await
}

async fn chunks_of(resp: reqwest::Response) -> Vec<Value> {
    let mut text = String::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

#[tokio::test]
async fn chat_is_translated_both_ways() {
    let mock = cohere_mock().await;
    let gw = cohere_gateway(&mock, "").await;
    let resp = gw
        .chat(
            MASTER,
            json!({"model": "command", "max_tokens": 100, "temperature": 0.5, "top_p": 0.9,
                "stop": "END", "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": "hello cohere"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let out: Value = resp.json().await.unwrap();
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["model"], "command");
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "echo: hello cohere"
    );
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert_eq!(out["usage"]["prompt_tokens"], 6);
    assert_eq!(out["usage"]["completion_tokens"], 3);
    assert_eq!(out["usage"]["total_tokens"], 9);

    let req = &mock.requests()[0];
    assert_eq!(req.path, "/v2/chat");
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {UPSTREAM_KEY}").as_str())
    );
    let sent = req.body.as_ref().unwrap();
    assert_eq!(sent["model"], MODEL_ID);
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );
    assert_eq!(
        sent["messages"][2],
        json!({"role": "assistant", "content": "hello"})
    );
    assert_eq!(sent["max_tokens"], 100);
    assert_eq!(sent["p"], 0.9);
    assert_eq!(sent["stop_sequences"], json!(["END"]));
}

#[tokio::test]
async fn stream_is_translated_with_usage() {
    let mock = cohere_mock().await;
    let gw = cohere_gateway(&mock, "").await;
    let resp = gw
        .chat(
            MASTER,
            json!({"model": "command", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "one two three"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let chunks = chunks_of(resp).await;
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "echo: one two three");
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 4, "{usage}");
    assert_eq!(usage["prompt_tokens"], 3, "{usage}");
    assert_eq!(mock.requests()[0].body.as_ref().unwrap()["stream"], true);
}

#[tokio::test]
async fn tool_calls_whole_and_streamed() {
    let mock = cohere_mock().await;
    let gw = cohere_gateway(&mock, "").await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let out: Value = gw
        .chat(
            MASTER,
            json!({"model": "command", "tools": tools, "tool_choice": "required",
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
    assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);
    let sent = mock.requests()[0].body.clone().unwrap();
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent["tool_choice"], "REQUIRED");

    // The tool result goes back as a tool message.
    let id = call["id"].as_str().unwrap().to_string();
    let out: Value = gw
        .chat(
            MASTER,
            json!({"model": "command", "tools": tools, "messages": [
                {"role": "user", "content": "please call tool"},
                {"role": "assistant", "content": null, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": id, "content": "sunny"},
                {"role": "user", "content": "thanks"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], "echo: thanks");
    let sent = mock.requests()[1].body.clone().unwrap();
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], id.as_str());
    assert_eq!(
        sent["messages"][2],
        json!({"role": "tool", "tool_call_id": id, "content": "sunny"})
    );

    // Streamed: tool-call deltas with one index, arguments in pieces.
    let resp = gw
        .chat(
            MASTER,
            json!({"model": "command", "stream": true, "tools": tools,
                "messages": [{"role": "user", "content": "please call tool"}]}),
        )
        .await;
    let chunks = chunks_of(resp).await;
    let deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert!(deltas.len() >= 3, "{deltas:?}");
    assert_eq!(deltas[0]["function"]["name"], "get_weather");
    assert!(deltas.iter().all(|d| d["index"] == 0));
    let args: String = deltas
        .iter()
        .filter_map(|d| d["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, r#"{"city":"Paris"}"#);
    let finish = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str());
    assert_eq!(finish, Some("tool_calls"));
}

#[tokio::test]
async fn images_and_json_formats_are_sent_in_cohere_shape() {
    let mock = cohere_mock().await;
    let gw = cohere_gateway(&mock, "").await;
    let resp = gw
        .chat(
            MASTER,
            json!({"model": "command", "response_format": {"type": "json_object"},
                "messages": [{"role": "user", "content": [
                    {"type": "text", "text": "describe"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "high"}}]}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let sent = mock.requests()[0].body.clone().unwrap();
    let parts = &sent["messages"][0]["content"];
    assert_eq!(parts[1]["image_url"]["url"], "https://example.com/a.png");
    assert_eq!(
        parts[2],
        json!({"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "high"}})
    );
    assert_eq!(sent["response_format"], json!({"type": "json_object"}));

    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let resp = gw
        .chat(
            MASTER,
            json!({"model": "command", "response_format": {"type": "json_schema",
                "json_schema": {"name": "x", "schema": schema}},
                "messages": [{"role": "user", "content": "json please"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let sent = mock.requests()[1].body.clone().unwrap();
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_object", "json_schema": schema})
    );
}

#[tokio::test]
async fn provider_errors_map_to_openai_errors() {
    let mock = cohere_mock().await;
    let gw = cohere_gateway(&mock, "").await;
    mock.push_fault(Fault::status(503));
    let err = expect_error(gw.chat(MASTER, hello("command")).await, 503).await;
    assert_eq!(err["error"]["code"], "overloaded");
    mock.push_fault(Fault::status(429).retry_after(9));
    let resp = gw.chat(MASTER, hello("command")).await;
    assert_eq!(resp.headers()["retry-after"], "9");
    let err = expect_error(resp, 429).await;
    assert_eq!(err["error"]["code"], "rate_limit_exceeded");
    mock.push_fault(Fault::status(400).with_body(json!({"id": "x",
        "message": "too many tokens: size limit exceeded by 1511 tokens."})));
    let err = expect_error(gw.chat(MASTER, hello("command")).await, 400).await;
    assert_eq!(err["error"]["code"], "context_length_exceeded");
    mock.push_fault(Fault::status(400).with_body(json!({"id": "x",
        "message": "blocked output: please adjust your prompt and try again"})));
    let err = expect_error(gw.chat(MASTER, hello("command")).await, 400).await;
    assert_eq!(err["error"]["code"], "content_filter");
    mock.push_fault(
        Fault::status(422)
            .with_body(json!({"message": "invalid request: temperature must be between 0 and 1"})),
    );
    let err = expect_error(gw.chat(MASTER, hello("command")).await, 400).await;
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("temperature"));

    // A wrong key is the client's 401, without the key in the message.
    let bad = Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"command\"\nprovider_model = \"cohere/{MODEL_ID}\"\napi_key = \"wrong-key\"\nbase_url = \"http://{}\"\n",
        mock.addr()
    ))
    .await;
    let err = expect_error(bad.chat(MASTER, hello("command")).await, 401).await;
    assert_eq!(err["error"]["code"], "invalid_api_key");
    assert!(!err.to_string().contains("wrong-key"));
}

#[tokio::test]
async fn a_failing_deployment_falls_back() {
    let mock = cohere_mock().await;
    let gw = cohere_gateway(
        &mock,
        &format!(
            "fallbacks = [\"backup\"]\n[[models]]\nname = \"backup\"\nprovider_model = \"cohere/command-r\"\napi_key = \"{UPSTREAM_KEY}\"\nbase_url = \"http://{}\"\n",
            mock.addr()
        ),
    )
    .await;
    for status in [500, 429] {
        mock.push_fault(Fault::status(status).for_model(MODEL_ID));
        let resp = gw.chat(MASTER, hello("command")).await;
        assert_eq!(resp.status(), 200, "after {status}");
        assert_eq!(resp.headers()["x-liter-llm-model"], "backup");
    }
}

#[tokio::test]
async fn embeddings_in_float_and_base64() {
    let mock = cohere_mock().await;
    let gw = Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"embed\"\nprovider_model = \"cohere/embed-v4.0\"\napi_key = \"{UPSTREAM_KEY}\"\nbase_url = \"http://{}\"\n",
        mock.addr()
    ))
    .await;
    let mut outputs = Vec::new();
    for format in ["float", "base64"] {
        let resp = gw
            .post(
                "/v1/embeddings",
                Some(MASTER),
                &json!({"model": "embed", "input": ["one two", "three"], "encoding_format": format,
                    "input_type": "search_query"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let out: Value = resp.json().await.unwrap();
        assert_eq!(out["object"], "list");
        assert_eq!(out["model"], "embed");
        assert_eq!(out["usage"]["prompt_tokens"], 3);
        outputs.push(out);
    }
    let floats: Vec<f32> = outputs[0]["data"][1]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(floats.len(), 8);
    // OpenAI's base64: the same floats as little-endian f32 bytes.
    assert_eq!(
        outputs[1]["data"][1]["embedding"],
        liter_llm::providers::embeddings::f32_base64(&floats)
    );
    let req = &mock.requests()[0];
    assert_eq!(req.path, "/v2/embed");
    let sent = req.body.as_ref().unwrap();
    assert_eq!(sent["texts"], json!(["one two", "three"]));
    assert_eq!(sent["input_type"], "search_query");
    assert_eq!(sent["embedding_types"], json!(["float"]));
    assert!(sent.get("encoding_format").is_none());
}

#[tokio::test]
async fn unsupported_parameters_are_400_or_dropped_with_a_warning_header() {
    let mock = cohere_mock().await;
    let body = json!({"model": "command", "logprobs": true, "metadata": null,
        "messages": [{"role": "user", "content": "hi"}]});
    let gw = cohere_gateway(&mock, "").await;
    let err = expect_error(gw.chat(MASTER, body.clone()).await, 400).await;
    assert_eq!(err["error"]["param"], "logprobs");
    assert!(mock.requests().is_empty(), "nothing may reach the provider");
    let err = expect_error(
        gw.chat(
            MASTER,
            json!({"model": "command", "n": 3, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(err["error"]["param"], "n");

    let gw = cohere_gateway(&mock, "drop_params = true\n").await;
    let resp = gw.chat(MASTER, body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-liter-llm-dropped-params"], "logprobs");
    let sent = mock.requests()[0].body.clone().unwrap();
    assert!(sent.get("logprobs").is_none() && sent.get("metadata").is_none());
}

#[tokio::test]
async fn the_key_and_base_url_can_come_from_the_environment() {
    let mock = cohere_mock().await;
    let addr = format!("http://{}", mock.addr());
    let gw = Gateway::start_with_env(
        &format!("[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"command\"\nprovider_model = \"cohere/{MODEL_ID}\"\n"),
        move |name| match name {
            "CO_API_KEY" => Some(UPSTREAM_KEY.to_string()),
            "COHERE_API_BASE" => Some(addr.clone()),
            _ => None,
        },
    )
    .await;
    assert_eq!(gw.chat(MASTER, hello("command")).await.status(), 200);
    assert_eq!(mock.requests()[0].path, "/v2/chat");
}
