//! Bedrock's runtime format: Converse whole and as binary event-stream frames, InvokeModel
//! embeddings, SigV4 verification, AWS error shapes, faults targeting the model in the path.

use http::{Method, StatusCode};
use liter_llm::providers::adapter::{
    Adapter, AdapterConfig, Call, Operation, ProviderSettings, Secret,
};
use liter_llm::providers::bedrock::eventstream::{Decoder, Message};
use liter_llm::providers::bedrock::BedrockAdapter;
use mock_upstream::{Fault, MockOptions, MockUpstream};
use serde_json::{json, Value};

use crate::support::{client, json_body, read_until_error, send};

const MODEL: &str = "amazon.nova-lite-v1:0";
const CONVERSE: &str = "/model/amazon.nova-lite-v1%3A0/converse";
const STREAM: &str = "/model/amazon.nova-lite-v1%3A0/converse-stream";

fn converse(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": [{"text": text}]}],
           "system": [{"text": "be brief"}]})
}

fn frames(bytes: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    Decoder::new().feed(bytes, &mut out).unwrap();
    out
}

fn event_types(messages: &[Message]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m.header(":event-type").unwrap_or(""))
        .collect()
}

async fn post(
    mock: &MockUpstream,
    path: &str,
    body: &Value,
) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let response = send(mock, Method::POST, path, &[], Some(body))
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let (bytes, _) = read_until_error(response).await;
    (status, headers, bytes)
}

#[tokio::test]
async fn converse_echoes_with_word_usage() {
    let mock = MockUpstream::start().await.unwrap();
    let (status, _, bytes) = post(&mock, CONVERSE, &converse("hello there")).await;
    assert_eq!(status, StatusCode::OK);
    let reply: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        reply["output"]["message"]["content"],
        json!([{"text": "echo: hello there"}])
    );
    assert_eq!(reply["stopReason"], "end_turn");
    assert_eq!(
        reply["usage"],
        json!({"inputTokens": 4, "outputTokens": 3, "totalTokens": 7})
    );
    assert_eq!(mock.served().prompt_tokens, 4);

    let mut cut = converse("a b c d");
    cut["inferenceConfig"] = json!({"maxTokens": 2});
    let (_, _, bytes) = post(&mock, CONVERSE, &cut).await;
    let reply: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(reply["output"]["message"]["content"][0]["text"], "echo: a");
    assert_eq!(reply["stopReason"], "max_tokens");
}

#[tokio::test]
async fn converse_stream_sends_real_frames() {
    let mock = MockUpstream::start().await.unwrap();
    let (status, headers, bytes) = post(&mock, STREAM, &converse("one two")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-type"],
        "application/vnd.amazon.eventstream"
    );
    let messages = frames(&bytes);
    assert_eq!(
        event_types(&messages),
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    assert!(messages
        .iter()
        .all(|m| m.header(":message-type") == Some("event")));
    let text: String = messages
        .iter()
        .filter_map(|m| serde_json::from_slice::<Value>(&m.payload).ok())
        .filter_map(|p| {
            p.pointer("/delta/text")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "echo: one two");
    let meta: Value = serde_json::from_slice(&messages[6].payload).unwrap();
    assert_eq!(meta["usage"]["outputTokens"], 3);
}

#[tokio::test]
async fn tool_use_whole_and_streamed() {
    let mock = MockUpstream::start().await.unwrap();
    let mut body = converse("please call tool");
    body["toolConfig"] =
        json!({"tools": [{"toolSpec": {"name": "lookup", "inputSchema": {"json": {}}}}]});
    let (_, _, bytes) = post(&mock, CONVERSE, &body).await;
    let reply: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(reply["stopReason"], "tool_use");
    assert_eq!(
        reply["output"]["message"]["content"][0]["toolUse"]["name"],
        "lookup"
    );
    let (_, _, bytes) = post(&mock, STREAM, &body).await;
    let messages = frames(&bytes);
    let start: Value = serde_json::from_slice(&messages[1].payload).unwrap();
    assert_eq!(start["start"]["toolUse"]["name"], "lookup");
    let input: String = messages
        .iter()
        .filter_map(|m| serde_json::from_slice::<Value>(&m.payload).ok())
        .filter_map(|p| {
            p.pointer("/delta/toolUse/input")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    assert_eq!(input, "{}");
}

#[tokio::test]
async fn embeddings_titan_and_cohere() {
    let mock = MockUpstream::start().await.unwrap();
    let (status, _, bytes) = post(
        &mock,
        "/model/amazon.titan-embed-text-v2%3A0/invoke",
        &json!({"inputText": "a b", "dimensions": 4}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let reply: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(reply["embedding"].as_array().unwrap().len(), 4);
    assert_eq!(reply["inputTextTokenCount"], 2);
    let (_, _, bytes) = post(
        &mock,
        "/model/cohere.embed-english-v3/invoke",
        &json!({"texts": ["x", "y"], "input_type": "search_document"}),
    )
    .await;
    let reply: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(reply["embeddings"].as_array().unwrap().len(), 2);
    let (status, headers, _) = post(
        &mock,
        "/model/cohere.embed-english-v3/invoke",
        &json!({"texts": ["x"]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(headers["x-amzn-errortype"]
        .to_str()
        .unwrap()
        .starts_with("ValidationException"));
}

#[tokio::test]
async fn status_faults_use_aws_error_shapes_and_target_the_path_model() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::status(429).retry_after(4).for_model(MODEL));
    mock.push_fault(Fault::status(503).for_model("other-model"));
    let (status, headers, bytes) = post(&mock, CONVERSE, &converse("hi")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "4");
    assert!(headers["x-amzn-errortype"]
        .to_str()
        .unwrap()
        .starts_with("ThrottlingException:"));
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(body["message"].as_str().unwrap().contains("429"));
    // The 503 is for another model: this one is served.
    assert_eq!(
        post(&mock, CONVERSE, &converse("hi")).await.0,
        StatusCode::OK
    );

    mock.push_fault(Fault::cut_stream(2));
    let response = send(&mock, Method::POST, STREAM, &[], Some(&converse("a b c")))
        .await
        .unwrap();
    let (bytes, error) = read_until_error(response).await;
    assert!(error.is_some());
    assert_eq!(
        event_types(&frames(&bytes)),
        ["messageStart", "contentBlockDelta"]
    );
}

fn adapter(secret: &str, base_url: String) -> BedrockAdapter {
    BedrockAdapter::new(&AdapterConfig {
        base_url,
        model_id: MODEL.into(),
        api_key: None,
        settings: ProviderSettings {
            aws_access_key_id: Some(Secret("AKIDTEST".into())),
            aws_secret_access_key: Some(Secret(secret.into())),
            aws_region_name: Some("us-east-1".into()),
            ..ProviderSettings::default()
        },
    })
    .unwrap()
}

/// Sends what the adapter builds, the way the gateway's dispatcher would.
async fn via_adapter(mock: &MockUpstream, secret: &str) -> (StatusCode, Value) {
    let a = adapter(secret, format!("http://{}", mock.addr()));
    let body =
        serde_json::to_vec(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
            .unwrap();
    let out = a
        .build(Call {
            op: Operation::Chat,
            body: &body,
            token: None,
            now: 1_700_000_000,
        })
        .unwrap();
    let mut request = http::Request::builder().method(Method::POST).uri(out.uri);
    for (name, value) in out.headers {
        request = request.header(name, value);
    }
    let response = client()
        .request(request.body(http_body_util::Full::new(out.body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    (status, json_body(response).await)
}

#[tokio::test]
async fn require_api_key_verifies_the_sigv4_signature() {
    let mock = MockUpstream::start_with(MockOptions {
        require_api_key: Some("the-secret".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let (status, reply) = via_adapter(&mock, "the-secret").await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["output"]["message"]["content"][0]["text"], "echo: hi");
    let (status, reply) = via_adapter(&mock, "wrong-secret").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(reply["message"].as_str().unwrap().contains("signature"));
    // Unsigned requests are refused too.
    let (status, _, _) = post(&mock, CONVERSE, &converse("hi")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
