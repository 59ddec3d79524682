//! Azure OpenAI paths: deployment URLs with `api-version`, the v1 API, `api-key`, Azure's error
//! shape, and filtered completions.

use http::{Method, StatusCode};
use mock_upstream::{Fault, MockOptions, MockUpstream};
use serde_json::{json, Value};

use crate::support::{json_body, send};

const CHAT: &str = "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21";
const EMBED: &str = "/openai/deployments/embed-prod/embeddings?api-version=2024-10-21";

async fn post(
    mock: &MockUpstream,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (StatusCode, http::HeaderMap, Value) {
    let response = send(mock, Method::POST, path, headers, Some(body))
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, json_body(response).await)
}

fn chat(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn deployment_urls_answer_as_openai_for_the_deployment() {
    let mock = MockUpstream::start().await.unwrap();
    let (status, _, reply) = post(&mock, CHAT, &[], &chat("hello azure")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["model"], "gpt4o-prod");
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "echo: hello azure"
    );
    let (status, _, reply) = post(&mock, EMBED, &[], &json!({"input": ["a", "b"]})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["data"].as_array().unwrap().len(), 2);
    assert_eq!(reply["model"], "embed-prod");
    // The v1 API takes the deployment from the body.
    let mut body = chat("v one");
    body["model"] = json!("dep-v1");
    let (status, _, reply) = post(&mock, "/openai/v1/chat/completions", &[], &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["model"], "dep-v1");
}

#[tokio::test]
async fn api_version_is_required_on_deployment_urls() {
    let mock = MockUpstream::start().await.unwrap();
    let path = "/openai/deployments/gpt4o-prod/chat/completions";
    let (status, _, reply) = post(&mock, path, &[], &chat("hi")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply,
        json!({"error": {"code": "404", "message": "Resource not found"}})
    );
}

#[tokio::test]
async fn require_api_key_wants_the_api_key_header() {
    let opts = MockOptions {
        require_api_key: Some("az-good".into()),
        ..MockOptions::default()
    };
    let mock = MockUpstream::start_with(opts).await.unwrap();
    for headers in [
        vec![],
        vec![("api-key", "az-bad")],
        vec![("authorization", "Bearer az-good")],
    ] {
        let (status, _, reply) = post(&mock, CHAT, &headers, &chat("hi")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply["error"]["code"], "401");
    }
    let (status, _, _) = post(&mock, CHAT, &[("api-key", "az-good")], &chat("hi")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn filtered_completions_carry_the_annotations() {
    let mock = MockUpstream::start().await.unwrap();
    let (status, _, reply) = post(
        &mock,
        CHAT,
        &[],
        &chat("please trigger the content filter now"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(reply["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(
        reply["choices"][0]["content_filter_results"]["violence"]["filtered"],
        true
    );
    assert_eq!(reply["prompt_filter_results"][0]["prompt_index"], 0);
}

#[tokio::test]
async fn faults_target_the_deployment_and_use_azures_shape() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::status(429).retry_after(4).for_model("gpt4o-prod"));
    let (status, _, _) = post(&mock, EMBED, &[], &json!({"input": "x"})).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the fault targets another deployment"
    );
    let (status, headers, reply) = post(&mock, CHAT, &[], &chat("hi")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "4");
    assert_eq!(reply["error"]["code"], "429");
    assert!(reply["error"]["message"]
        .as_str()
        .unwrap()
        .contains("retry"));
}
