//! Cohere's Chat v2 and Embed v2 wire format, checked with liter-llm's own adapter: what it
//! builds is what the mock accepts, and what the mock answers is what it reads.

use http::{Method, StatusCode};
use liter_llm::providers::adapter::{
    Adapter, AdapterConfig, Call, Operation, Secret, StreamMeta, StreamOut,
};
use liter_llm::providers::cohere::CohereAdapter;
use mock_upstream::{Fault, MockOptions, MockUpstream};
use serde_json::{json, Value};

use crate::support::{json_body, read_until_error, send};

const KEY: &str = "co-good";

async fn mock() -> MockUpstream {
    MockUpstream::start_with(MockOptions {
        require_api_key: Some(KEY.into()),
        ..MockOptions::default()
    })
    .await
    .unwrap()
}

fn adapter(mock: &MockUpstream) -> CohereAdapter {
    CohereAdapter::new(&AdapterConfig {
        base_url: format!("http://{}", mock.addr()),
        model_id: "command-a-03-2025".into(),
        api_key: Some(Secret(KEY.into())),
        settings: Default::default(),
    })
    .unwrap()
}

/// Sends what the adapter builds for `body`, the way the gateway's dispatcher would.
async fn via_adapter(mock: &MockUpstream, op: Operation, body: &Value) -> (StatusCode, Vec<u8>) {
    let body = serde_json::to_vec(body).unwrap();
    let built = adapter(mock)
        .build(Call {
            op,
            body: &body,
            token: None,
            now: 0,
        })
        .unwrap();
    let mut request = http::Request::post(built.uri.to_string());
    for (name, value) in &built.headers {
        request = request.header(name, value);
    }
    let request = request
        .body(http_body_util::Full::new(built.body.clone()))
        .unwrap();
    let response = crate::support::client().request(request).await.unwrap();
    let status = response.status();
    let (bytes, error) = read_until_error(response).await;
    assert!(error.is_none());
    (status, bytes)
}

fn stream_out(mock: &MockUpstream, bytes: &[u8]) -> Vec<StreamOut> {
    let mut t = adapter(mock).stream(StreamMeta {
        id: "chatcmpl-x".into(),
        model: "command".into(),
        created: 1,
        include_usage: true,
        max_event_bytes: liter_llm::providers::sse::DEFAULT_MAX_EVENT_BYTES,
    });
    let mut out = Vec::new();
    for piece in bytes.chunks(5) {
        out.extend(t.feed(piece));
    }
    out.extend(t.finish());
    out
}

#[tokio::test]
async fn chat_round_trip_whole_and_streamed() {
    let mock = mock().await;
    let a = adapter(&mock);
    let body = json!({"model": "command", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hello cohere"}]}]});
    let (status, bytes) = via_adapter(&mock, Operation::Chat, &body).await;
    assert_eq!(status, StatusCode::OK);
    let c = a.parse_chat(&bytes, "command", 1).unwrap();
    assert_eq!(
        c.choices[0].message.content.as_deref(),
        Some("echo: hello cohere")
    );
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
    let u = c.usage.unwrap();
    assert_eq!((u.prompt_tokens, u.completion_tokens), (4, 3));

    // Cut by max_tokens.
    let mut cut = body.clone();
    cut["max_tokens"] = json!(2);
    let (_, bytes) = via_adapter(&mock, Operation::Chat, &cut).await;
    let c = a.parse_chat(&bytes, "command", 1).unwrap();
    assert_eq!(c.choices[0].message.content.as_deref(), Some("echo: hello"));
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("length"));

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (status, bytes) = via_adapter(&mock, Operation::ChatStream, &streamed).await;
    assert_eq!(status, StatusCode::OK);
    let out = stream_out(&mock, &bytes);
    let mut text = String::new();
    for o in &out {
        if let StreamOut::Chunk(c) = o {
            if let Some(choice) = c.choices.first() {
                text.push_str(choice.delta.content.as_deref().unwrap_or(""));
            }
        }
    }
    assert_eq!(text, "echo: hello cohere");
    assert!(matches!(out.last(), Some(StreamOut::Done)));
}

#[tokio::test]
async fn tool_calls_whole_and_streamed() {
    let mock = mock().await;
    let a = adapter(&mock);
    let body = json!({"model": "command", "tools": [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object"}}}],
        "messages": [{"role": "user", "content": "please call tool"}]});
    let (_, bytes) = via_adapter(&mock, Operation::Chat, &body).await;
    let c = a.parse_chat(&bytes, "command", 1).unwrap();
    let calls = c.choices[0].message.tool_calls.as_ref().unwrap();
    assert_eq!(calls[0].function.name, "get_weather");
    assert_eq!(calls[0].function.arguments, r#"{"city":"Paris"}"#);
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (_, bytes) = via_adapter(&mock, Operation::ChatStream, &streamed).await;
    let mut args = String::new();
    let mut finish = None;
    for o in stream_out(&mock, &bytes) {
        if let StreamOut::Chunk(c) = o {
            for choice in &c.choices {
                for call in choice.delta.tool_calls.iter().flatten() {
                    args.push_str(
                        call.function
                            .as_ref()
                            .and_then(|f| f.arguments.as_deref())
                            .unwrap_or(""),
                    );
                }
                if choice.finish_reason.is_some() {
                    finish = choice.finish_reason.clone();
                }
            }
        }
    }
    assert_eq!(args, r#"{"city":"Paris"}"#);
    assert_eq!(finish.as_deref(), Some("tool_calls"));
}

#[tokio::test]
async fn embed_round_trip() {
    let mock = mock().await;
    let body = json!({"model": "embed", "input": ["one two", "three"], "dimensions": 4});
    let (status, bytes) = via_adapter(&mock, Operation::Embeddings, &body).await;
    assert_eq!(status, StatusCode::OK);
    let e = adapter(&mock).parse_embeddings(&bytes, "embed").unwrap();
    assert_eq!(e.data.len(), 2);
    assert_eq!(e.data[0].embedding.as_array().unwrap().len(), 4);
    assert_eq!(e.usage.prompt_tokens, 3);
    let sent = mock.requests()[0].body.clone().unwrap();
    assert_eq!(sent["input_type"], "search_document");
}

#[tokio::test]
async fn validation_auth_and_faults_use_cohere_shapes() {
    let mock = mock().await;
    let auth = format!("Bearer {KEY}");
    let headers = [("authorization", auth.as_str())];
    let response = send(
        &mock,
        Method::POST,
        "/v2/embed",
        &headers,
        Some(&json!({"model": "e", "texts": ["x"]})),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(json_body(response).await["message"]
        .as_str()
        .unwrap()
        .contains("input_type"));
    let response = send(
        &mock,
        Method::POST,
        "/v2/chat",
        &[],
        Some(&json!({"model": "c", "messages": []})),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_body(response).await["message"], "invalid api token");
    mock.push_fault(Fault::status(429).retry_after(2));
    let response = send(
        &mock,
        Method::POST,
        "/v2/chat",
        &headers,
        Some(&json!({"model": "c", "messages": []})),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "2");
    assert!(json_body(response).await["message"]
        .as_str()
        .unwrap()
        .contains("limit"));
}
