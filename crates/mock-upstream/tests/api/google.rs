//! Google's formats: the Gemini API (`/v1beta/models/{model}:{method}`), Vertex AI
//! (`/v1/projects/…/publishers/{google,anthropic}/models/{model}:{method}`) and the OAuth
//! token endpoint (`/token`): answers whole and streamed, tools, blocked prompts,
//! embeddings, auth, faults in Google's error shape, and round trips through liter-llm's
//! Gemini adapter and service-account code.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use liter_llm::providers::adapter::StreamOut;
use liter_llm::providers::gemini::auth::ServiceAccount;
use liter_llm::providers::gemini::{build_generate, parse_error, parse_response, StreamTranslator};
use liter_llm::types::ChatCompletionRequest;
use mock_upstream::{Fault, MockOptions, MockUpstream};
use serde_json::{json, Value};

use crate::support::{client, json_body, read_until_error, send};

const GEMINI: &str = "/v1beta/models/gemini-test:generateContent";
const STREAM: &str = "/v1beta/models/gemini-test:streamGenerateContent?alt=sse";
const VERTEX: &str = "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-test";

/// The Gemini body liter-llm builds for an OpenAI request.
fn gemini_body(openai: Value) -> Value {
    let req: ChatCompletionRequest = serde_json::from_value(openai).unwrap();
    Value::Object(build_generate(&req, false).unwrap().0)
}

fn user(text: &str) -> Value {
    gemini_body(json!({"model": "m", "messages": [{"role": "user", "content": text}]}))
}

async fn post(mock: &MockUpstream, path: &str, body: &Value) -> (StatusCode, Value) {
    let response = send(mock, Method::POST, path, &[], Some(body))
        .await
        .unwrap();
    let status = response.status();
    (status, json_body(response).await)
}

#[tokio::test]
async fn generate_content_round_trips_through_the_adapter() {
    let mock = MockUpstream::start().await.unwrap();
    let body = gemini_body(json!({"model": "m", "max_tokens": 50, "messages": [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "hello there"}]}));
    let (status, answer) = post(&mock, GEMINI, &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["modelVersion"], "gemini-test");
    assert_eq!(answer["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        answer["usageMetadata"],
        json!({"promptTokenCount": 4, "candidatesTokenCount": 3, "totalTokenCount": 7})
    );
    let c = parse_response(answer.to_string().as_bytes(), "alias", 1).unwrap();
    assert_eq!(
        c.choices[0].message.content.as_deref(),
        Some("echo: hello there")
    );
    assert_eq!(mock.served().prompt_tokens, 4);

    // maxOutputTokens cuts the answer.
    let cut = gemini_body(json!({"model": "m", "max_tokens": 2,
        "messages": [{"role": "user", "content": "a b c"}]}));
    let (_, answer) = post(&mock, GEMINI, &cut).await;
    assert_eq!(answer["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(
        answer["candidates"][0]["content"]["parts"][0]["text"],
        "echo: a"
    );
}

#[tokio::test]
async fn streams_tools_and_blocks() {
    let mock = MockUpstream::start().await.unwrap();
    let response = send(&mock, Method::POST, STREAM, &[], Some(&user("one two")))
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (bytes, err) = read_until_error(response).await;
    assert!(err.is_none());
    assert_eq!(
        String::from_utf8_lossy(&bytes).matches("\r\n\r\n").count(),
        3,
        "one event per word"
    );
    let mut t = StreamTranslator::new("c".into(), "m".into(), 0, false);
    let mut out = t.feed(&bytes);
    out.extend(t.finish());
    let text: String = out
        .iter()
        .filter_map(|o| match o {
            StreamOut::Chunk(c) => c.choices.first().and_then(|c| c.delta.content.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "echo: one two");
    assert!(matches!(out.last(), Some(StreamOut::Done)));

    let tools = gemini_body(json!({"model": "m", "tools": [{"type": "function",
        "function": {"name": "lookup"}}], "messages": [{"role": "user", "content": "call tool"}]}));
    let (_, answer) = post(&mock, GEMINI, &tools).await;
    assert_eq!(
        answer["candidates"][0]["content"]["parts"],
        json!([{"functionCall": {"name": "lookup", "args": {}}}])
    );

    let (status, answer) = post(&mock, GEMINI, &user("block me")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["promptFeedback"]["blockReason"], "SAFETY");
    assert!(answer.get("candidates").is_none());
    let (_, answer) = post(&mock, GEMINI, &user("unsafe answer")).await;
    assert_eq!(answer["candidates"][0]["finishReason"], "SAFETY");
    assert!(answer["candidates"][0].get("content").is_none());
}

#[tokio::test]
async fn validation_and_faults_in_googles_shape() {
    let mock = MockUpstream::start().await.unwrap();
    let (status, err) = post(&mock, GEMINI, &json!({"contents": []})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["status"], "INVALID_ARGUMENT");
    let (status, _) = post(
        &mock,
        GEMINI,
        &json!({"model": "x", "contents": [{"parts": [{"text": "a"}]}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Faults target the model named in the path.
    mock.push_fault(Fault::status(429).for_model("other-model"));
    mock.push_fault(Fault::status(503).for_model("gemini-test"));
    let (status, err) = post(&mock, GEMINI, &user("x")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        err["error"],
        json!({"code": 503, "message": "mock-upstream fault: HTTP 503 Service Unavailable",
            "status": "UNAVAILABLE"})
    );
    let e = parse_error(503, &http::HeaderMap::new(), err.to_string().as_bytes());
    assert_eq!(e.error.code.as_deref(), Some("overloaded"));
    assert_eq!(mock.faults().len(), 1);
}

#[tokio::test]
async fn embeddings_both_apis() {
    let mock = MockUpstream::start().await.unwrap();
    let (status, answer) = post(
        &mock,
        "/v1beta/models/embed-test:batchEmbedContents",
        &json!({"requests": [
            {"model": "models/embed-test", "content": {"parts": [{"text": "a b"}]}, "outputDimensionality": 3},
            {"model": "models/embed-test", "content": {"parts": [{"text": "c"}]}}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer["embeddings"][0]["values"].as_array().unwrap().len(),
        3
    );
    assert_eq!(
        answer["embeddings"][1]["values"].as_array().unwrap().len(),
        8
    );
    let (_, predicted) = post(
        &mock,
        &format!("{VERTEX}:predict"),
        &json!({"instances": [{"content": "a b"}], "parameters": {"outputDimensionality": 3}}),
    )
    .await;
    // The same text gets the same vector from both APIs.
    assert_eq!(
        predicted["predictions"][0]["embeddings"]["values"],
        answer["embeddings"][0]["values"]
    );
    assert_eq!(
        predicted["predictions"][0]["embeddings"]["statistics"]["token_count"],
        2
    );
}

/// `POST /token` with a form body.
async fn token(mock: &MockUpstream, form: String) -> (StatusCode, Value) {
    let request = Request::post(format!("http://{}/token", mock.addr()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .unwrap();
    let response = client().request(request).await.unwrap();
    let status = response.status();
    (status, json_body(response).await)
}

#[tokio::test]
async fn vertex_auth_and_the_token_endpoint() {
    let mock = MockUpstream::start_with(MockOptions {
        require_api_key: Some("gemini-key".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    // The Gemini API checks x-goog-api-key and answers a bad one with API_KEY_INVALID.
    let (status, err) = post(&mock, GEMINI, &user("x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["details"][0]["reason"], "API_KEY_INVALID");
    let ok = send(
        &mock,
        Method::POST,
        GEMINI,
        &[("x-goog-api-key", "gemini-key")],
        Some(&user("x")),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);

    // Vertex wants a token from the token endpoint.
    let path = format!("{VERTEX}:generateContent");
    let (status, err) = post(&mock, &path, &user("x")).await;
    assert_eq!(
        (status, err["error"]["status"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED"))
    );

    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../liter-llm/tests/fixtures/gemini/TEST-ONLY-service-account.json"
    );
    let sa = ServiceAccount::from_file(fixture).unwrap();
    let req = sa.token_request(1_700_000_000).unwrap();
    let (status, answer) = token(&mock, String::from_utf8(req.body.to_vec()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (answer["expires_in"].as_u64(), answer["token_type"].as_str()),
        (Some(3600), Some("Bearer"))
    );
    let bearer = format!("Bearer {}", answer["access_token"].as_str().unwrap());
    let ok = send(
        &mock,
        Method::POST,
        &path,
        &[("authorization", &bearer)],
        Some(&user("x")),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);

    // The lifetime of the tokens issued can be changed.
    mock.set_token_lifetime(30);
    let (_, answer) = token(&mock, String::from_utf8(req.body.to_vec()).unwrap()).await;
    assert_eq!(answer["expires_in"].as_u64(), Some(30));
    mock.set_token_lifetime(3600);

    let (status, err) = token(&mock, "grant_type=password&assertion=x".into()).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // Claude on Vertex: Anthropic's format, model in the path, version in the body.
    let claude =
        "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-test:rawPredict";
    let response = send(
        &mock,
        Method::POST,
        claude,
        &[("authorization", &bearer)],
        Some(
            &json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}]}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let message = json_body(response).await;
    assert_eq!(
        (
            message["model"].as_str(),
            message["content"][0]["text"].as_str()
        ),
        (Some("claude-test"), Some("echo: hi"))
    );
    let response = send(
        &mock,
        Method::POST,
        claude,
        &[("authorization", &bearer)],
        Some(&json!({"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
