//! The Anthropic Messages API (`POST /v1/messages`): answers whole and streamed, tool use,
//! validation, `x-api-key` auth, faults in Anthropic's error shape, and a round trip through
//! liter-llm's Anthropic adapter (so the mock and the adapter are checked against each other).

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use liter_llm::providers::anthropic::{
    build_request, parse_error, parse_response, AnthropicOptions, StreamOut, StreamTranslator,
};
use liter_llm::types::ChatCompletionRequest;
use mock_upstream::{Fault, MockOptions, MockUpstream};
use serde_json::{json, Value};

use crate::support::{json_body, read_until_error, send};

const PATH: &str = "/v1/messages";
const VERSION: (&str, &str) = ("anthropic-version", "2023-06-01");

fn messages(text: &str) -> Value {
    json!({
        "model": "claude-test",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": text}]
    })
}

/// `POST /v1/messages` with `anthropic-version` and `extra` headers.
async fn post(
    mock: &MockUpstream,
    body: &Value,
    extra: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, Value) {
    let mut headers = vec![VERSION];
    headers.extend_from_slice(extra);
    let response = send(mock, Method::POST, PATH, &headers, Some(body))
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, json_body(response).await)
}

/// The `(event, data)` pairs of an Anthropic SSE body; asserts each data's `type` is its name.
fn events(bytes: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(bytes).unwrap();
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) = e.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap().to_string();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect()
}

async fn stream(mock: &MockUpstream, body: &Value) -> Vec<(String, Value)> {
    let response = send(mock, Method::POST, PATH, &[VERSION], Some(body))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let (bytes, error) = read_until_error(response).await;
    assert!(error.is_none(), "{error:?}");
    events(&bytes)
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

#[tokio::test]
async fn echoes_the_last_user_text_with_word_usage() {
    let mock = MockUpstream::start().await.unwrap();
    let body = json!({
        "model": "claude-test",
        "max_tokens": 100,
        "system": "be brief",
        "messages": [
            {"role": "user", "content": "hello there"},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": [
                {"type": "text", "text": "how are "},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                {"type": "text", "text": "you"}
            ]}
        ]
    });
    let (status, headers, reply) = post(&mock, &body, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert!(reply["id"].as_str().unwrap().starts_with("msg_mock_"));
    assert_eq!(reply["type"], "message");
    assert_eq!(reply["role"], "assistant");
    assert_eq!(reply["model"], "claude-test");
    assert_eq!(
        reply["content"],
        json!([{"type": "text", "text": "echo: how are you"}])
    );
    assert_eq!(reply["stop_reason"], "end_turn");
    assert_eq!(reply["stop_sequence"], Value::Null);
    // Input: 2 (system) + 2 + 1 + 3 words; output: "echo:", "how", "are", "you".
    assert_eq!(reply["usage"]["input_tokens"], 8);
    assert_eq!(reply["usage"]["output_tokens"], 4);
    let served = mock.served();
    assert_eq!(
        (
            served.requests,
            served.prompt_tokens,
            served.completion_tokens
        ),
        (1, 8, 4)
    );
}

#[tokio::test]
async fn max_tokens_cuts_the_reply() {
    let mock = MockUpstream::start().await.unwrap();
    let mut body = messages("one two three");
    body["max_tokens"] = json!(2);
    let (_, _, reply) = post(&mock, &body, &[]).await;
    assert_eq!(reply["content"][0]["text"], "echo: one");
    assert_eq!(reply["stop_reason"], "max_tokens");
    assert_eq!(reply["usage"]["output_tokens"], 2);
}

#[tokio::test]
async fn tool_use_when_asked_to_call_a_tool() {
    let mock = MockUpstream::start().await.unwrap();
    let mut body = messages("please call tool now");
    body["tools"] = json!([
        {"name": "get_weather", "input_schema": {"type": "object"}},
        {"name": "other", "input_schema": {"type": "object"}}
    ]);
    let (_, _, reply) = post(&mock, &body, &[]).await;
    assert_eq!(reply["stop_reason"], "tool_use");
    let block = &reply["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({}));
    assert!(block["id"].as_str().unwrap().starts_with("toolu_mock_"));

    // Without tools, or without the phrase, it echoes.
    body["messages"][0]["content"] = json!("just talk");
    let (_, _, reply) = post(&mock, &body, &[]).await;
    assert_eq!(reply["content"][0]["type"], "text");
    let (_, _, reply) = post(&mock, &messages("call tool"), &[]).await;
    assert_eq!(reply["content"][0]["text"], "echo: call tool");
}

#[tokio::test]
async fn validation_errors_have_anthropics_shape() {
    let mock = MockUpstream::start().await.unwrap();
    let response = send(&mock, Method::POST, PATH, &[], Some(&messages("hi")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let reply = json_body(response).await;
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["error"]["type"], "invalid_request_error");
    assert!(reply["error"]["message"]
        .as_str()
        .unwrap()
        .contains("anthropic-version"));

    for (field, message) in [
        ("max_tokens", "max_tokens: Field required"),
        ("model", "model: Field required"),
        ("messages", "messages: Field required"),
    ] {
        let mut body = messages("hi");
        body.as_object_mut().unwrap().remove(field);
        let (status, _, reply) = post(&mock, &body, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(reply["error"]["message"], message);
    }
    assert_eq!(mock.served().requests, 0);
}

#[tokio::test]
async fn require_api_key_wants_x_api_key_or_a_bearer_key() {
    let opts = MockOptions {
        require_api_key: Some("sk-ant-good".into()),
        ..MockOptions::default()
    };
    let mock = MockUpstream::start_with(opts).await.unwrap();
    for extra in [
        vec![],
        vec![("x-api-key", "sk-ant-bad")],
        vec![("authorization", "Bearer sk-ant-bad")],
        vec![("authorization", "sk-ant-good")],
    ] {
        let (status, _, reply) = post(&mock, &messages("hi"), &extra).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            reply,
            json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
        );
    }
    let (status, _, _) = post(&mock, &messages("hi"), &[("x-api-key", "sk-ant-good")]).await;
    assert_eq!(status, StatusCode::OK);
    // What the official Python SDK sends for an API key.
    let bearer = [("authorization", "Bearer sk-ant-good")];
    let (status, _, _) = post(&mock, &messages("hi"), &bearer).await;
    assert_eq!(status, StatusCode::OK);
    // The OpenAI routes still want a Bearer key.
    let response = send(
        &mock,
        Method::POST,
        "/v1/chat/completions",
        &[("x-api-key", "sk-ant-good")],
        Some(&crate::support::chat("m", "hi")),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(json_body(response).await["error"]["code"] == "invalid_api_key");
}

#[tokio::test]
async fn streams_the_real_event_sequence() {
    let mock = MockUpstream::start().await.unwrap();
    let mut body = messages("how  are you");
    body["stream"] = json!(true);
    let events = stream(&mock, &body).await;
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &events[0].1["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_mock_"));
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(start["usage"]["input_tokens"], 3);
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = events[3..7]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(text, "echo: how  are you");
    assert_eq!(
        events[8].1,
        json!({"type": "message_delta",
               "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": 4}})
    );
    assert_eq!(mock.served().completion_tokens, 4);
}

#[tokio::test]
async fn streams_a_tool_call() {
    let mock = MockUpstream::start().await.unwrap();
    let mut body = messages("call tool please");
    body["stream"] = json!(true);
    body["tools"] = json!([{"name": "lookup", "input_schema": {"type": "object"}}]);
    let events = stream(&mock, &body).await;
    assert_eq!(events[1].1["content_block"]["type"], "tool_use");
    assert_eq!(events[1].1["content_block"]["name"], "lookup");
    let json: String = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap()
        })
        .collect();
    assert_eq!(json, "{}");
    let delta = events.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn status_faults_use_anthropics_error_shape() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::status(529));
    mock.push_fault(Fault::status(429).retry_after(3));
    mock.push_fault(Fault::status(500).with_body(json!({"custom": true})));

    let (status, _, reply) = post(&mock, &messages("hi"), &[]).await;
    assert_eq!(status.as_u16(), 529);
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["error"]["type"], "overloaded_error");
    assert!(reply["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Overloaded"));

    let (status, headers, reply) = post(&mock, &messages("hi"), &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "3");
    assert_eq!(reply["error"]["type"], "rate_limit_error");

    let (status, _, reply) = post(&mock, &messages("hi"), &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply, json!({"custom": true}));

    assert_eq!(post(&mock, &messages("hi"), &[]).await.0, StatusCode::OK);
    assert_eq!(mock.served().requests, 1);
    assert_eq!(mock.requests().len(), 4);
}

#[tokio::test]
async fn delay_hang_and_drop() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::delay_ms(50));
    let started = Instant::now();
    assert_eq!(post(&mock, &messages("hi"), &[]).await.0, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(50));

    mock.push_fault(Fault::hang());
    let request = send(&mock, Method::POST, PATH, &[VERSION], Some(&messages("hi")));
    assert!(tokio::time::timeout(Duration::from_millis(100), request)
        .await
        .is_err());

    mock.push_fault(Fault::drop_connection());
    let outcome = send(&mock, Method::POST, PATH, &[VERSION], Some(&messages("hi"))).await;
    assert!(outcome.is_err());
    assert_eq!(post(&mock, &messages("hi"), &[]).await.0, StatusCode::OK);
}

#[tokio::test]
async fn cut_and_stalled_streams() {
    let mock = MockUpstream::start().await.unwrap();
    let mut body = messages("one two three");
    body["stream"] = json!(true);

    mock.push_fault(Fault::cut_stream(3));
    let response = send(&mock, Method::POST, PATH, &[VERSION], Some(&body))
        .await
        .unwrap();
    let (bytes, error) = read_until_error(response).await;
    assert_eq!(
        names(&events(&bytes)),
        ["message_start", "content_block_start", "ping"]
    );
    assert!(error.is_some(), "the cut stream ended cleanly");
    assert_eq!(mock.served().requests, 0);

    mock.push_fault(Fault::stall_stream(2));
    let response = send(&mock, Method::POST, PATH, &[VERSION], Some(&body))
        .await
        .unwrap();
    let mut body_stream = response.into_body();
    let mut seen = Vec::new();
    let read = async {
        use http_body_util::BodyExt;
        while let Some(Ok(frame)) = body_stream.frame().await {
            if let Ok(data) = frame.into_data() {
                seen.extend_from_slice(&data);
            }
        }
    };
    assert!(tokio::time::timeout(Duration::from_millis(150), read)
        .await
        .is_err());
    assert_eq!(
        names(&events(&seen)),
        ["message_start", "content_block_start"]
    );
}

/// Sends what liter-llm's adapter builds, the way the gateway's dispatcher would.
async fn via_adapter(
    mock: &MockUpstream,
    req: &ChatCompletionRequest,
) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let built = build_request(req, "claude-test", &AnthropicOptions::default()).unwrap();
    let mut request = http::Request::post(format!("http://{}{}", mock.addr(), built.path))
        .header("x-api-key", "sk-ant-good");
    for (name, value) in &built.headers {
        request = request.header(name, value);
    }
    let request = request
        .body(http_body_util::Full::new(built.body.clone()))
        .unwrap();
    let response = crate::support::client().request(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let (bytes, error) = read_until_error(response).await;
    assert!(error.is_none());
    (status, headers, bytes)
}

fn openai(body: Value) -> ChatCompletionRequest {
    serde_json::from_value(body).unwrap()
}

#[tokio::test]
async fn round_trip_through_the_adapter() {
    let opts = MockOptions {
        require_api_key: Some("sk-ant-good".into()),
        ..MockOptions::default()
    };
    let mock = MockUpstream::start_with(opts).await.unwrap();

    // Whole answer.
    let req = openai(json!({"model": "claude", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there"}]}));
    let (status, _, bytes) = via_adapter(&mock, &req).await;
    assert_eq!(status, StatusCode::OK);
    let completion = parse_response(&bytes, "claude", 1).unwrap();
    let choice = &completion.choices[0];
    assert_eq!(choice.message.content.as_deref(), Some("echo: hello there"));
    assert_eq!(choice.finish_reason.as_deref(), Some("stop"));
    let usage = completion.usage.unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (4, 3));

    // A tool call.
    let req = openai(json!({"model": "claude", "tool_choice": "auto",
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        "messages": [{"role": "user", "content": "call tool"}]}));
    let (_, _, bytes) = via_adapter(&mock, &req).await;
    let completion = parse_response(&bytes, "claude", 1).unwrap();
    let message = &completion.choices[0].message;
    let calls = message.tool_calls.as_ref().unwrap();
    assert_eq!(calls[0].function.name, "lookup");
    assert_eq!(calls[0].function.arguments, "{}");
    assert_eq!(
        completion.choices[0].finish_reason.as_deref(),
        Some("tool_calls")
    );

    // A stream, fed to the translator in awkward pieces.
    let req = openai(json!({"model": "claude", "stream": true,
        "messages": [{"role": "user", "content": "naïve café 東京"}]}));
    let (status, _, bytes) = via_adapter(&mock, &req).await;
    assert_eq!(status, StatusCode::OK);
    let mut translator = StreamTranslator::new("chatcmpl-x".into(), "claude".into(), 1, true);
    let mut out = Vec::new();
    for piece in bytes.chunks(7) {
        out.extend(translator.feed(piece));
    }
    out.extend(translator.finish());
    let mut text = String::new();
    let mut done = false;
    for o in &out {
        match o {
            StreamOut::Chunk(c) => {
                if let Some(choice) = c.choices.first() {
                    text.push_str(choice.delta.content.as_deref().unwrap_or(""));
                }
            }
            StreamOut::Done => done = true,
            StreamOut::Error(e) => panic!("{e}"),
        }
    }
    assert!(done);
    assert_eq!(text, "echo: naïve café 東京");
    let usage = translator.usage().unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (3, 4));

    // A fault, read by the adapter's error parser.
    mock.push_fault(Fault::status(529));
    let (status, headers, bytes) = via_adapter(&mock, &req).await;
    let error = parse_error(status.as_u16(), &headers, &bytes);
    assert_eq!(error.status, 503);
    assert_eq!(error.error.kind, "overloaded_error");
}
