//! Azure OpenAI through the gateway: the client's bytes forwarded to deployment URLs with
//! `api-version` and the key in `api-key`, content-filter annotations and errors intact.

use futures_util::StreamExt;
use mock_upstream::{Fault, MockOptions, MockUpstream};
use serde_json::{json, Value};

use crate::support::*;

const DEFAULT_VERSION: &str = "2024-10-21";

/// A mock that wants `api-key: UPSTREAM_KEY` on Azure paths.
async fn azure_mock() -> MockUpstream {
    MockUpstream::start_with(MockOptions {
        require_api_key: Some(UPSTREAM_KEY.into()),
        ..MockOptions::default()
    })
    .await
    .unwrap()
}

fn model_entry(mock: &MockUpstream, name: &str, deployment: &str, extra: &str) -> String {
    format!(
        "[[models]]\nname = \"{name}\"\nprovider_model = \"azure/{deployment}\"\napi_key = \"{UPSTREAM_KEY}\"\nbase_url = \"http://{}\"\n{extra}\n",
        mock.addr()
    )
}

async fn azure_gateway(models: &str) -> Gateway {
    Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 1\n{models}"
    ))
    .await
}

async fn body_text(resp: reqwest::Response) -> String {
    let mut text = String::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    text
}

#[tokio::test]
async fn chat_goes_to_the_deployment_url_with_api_key() {
    let mock = azure_mock().await;
    let gw = azure_gateway(&model_entry(&mock, "gpt", "gpt4o-prod", "")).await;
    let resp = gw
        .chat(
            MASTER,
            json!({"model": "gpt", "temperature": 0.2, "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hello azure"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let out: Value = resp.json().await.unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], "echo: hello azure");

    let req = &mock.requests()[0];
    assert_eq!(
        req.path,
        format!("/openai/deployments/gpt4o-prod/chat/completions?api-version={DEFAULT_VERSION}")
    );
    assert_eq!(req.header("api-key"), Some(UPSTREAM_KEY));
    assert!(req.header("authorization").is_none());
    let sent = req.body.as_ref().unwrap();
    assert_eq!(sent["temperature"], 0.2);
    assert_eq!(sent["messages"][0]["content"], "be brief");
}

#[tokio::test]
async fn api_version_from_config_env_and_the_v1_api() {
    let mock = azure_mock().await;
    let models = [
        model_entry(
            &mock,
            "pinned",
            "dep-a",
            "api_version = \"2025-04-01-preview\"",
        ),
        model_entry(&mock, "v1", "dep-b", "api_version = \"v1\""),
    ]
    .concat();
    let gw = azure_gateway(&models).await;
    assert_eq!(gw.chat(MASTER, hello("pinned")).await.status(), 200);
    assert_eq!(gw.chat(MASTER, hello("v1")).await.status(), 200);
    let reqs = mock.requests();
    assert_eq!(
        reqs[0].path,
        "/openai/deployments/dep-a/chat/completions?api-version=2025-04-01-preview"
    );
    assert_eq!(reqs[1].path, "/openai/v1/chat/completions");
    assert_eq!(reqs[1].body.as_ref().unwrap()["model"], "dep-b");

    // Endpoint, key and version from the environment (LiteLLM's and the SDK's names).
    let mock = azure_mock().await;
    let addr = format!("http://{}", mock.addr());
    let env = move |name: &str| match name {
        "AZURE_OPENAI_ENDPOINT" => Some(addr.clone()),
        "AZURE_OPENAI_API_KEY" => Some(UPSTREAM_KEY.to_string()),
        "AZURE_API_VERSION" => Some("2024-06-01".to_string()),
        _ => None,
    };
    let gw = Gateway::start_with_env(
        &format!("[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"env\"\nprovider_model = \"azure/dep-env\"\n"),
        env,
    )
    .await;
    assert_eq!(gw.chat(MASTER, hello("env")).await.status(), 200);
    assert_eq!(
        mock.requests()[0].path,
        "/openai/deployments/dep-env/chat/completions?api-version=2024-06-01"
    );
}

#[tokio::test]
async fn azure_needs_a_base_url() {
    let err = liter_llm_proxy::config::load_str(
        &format!("[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"x\"\nprovider_model = \"azure/dep\"\napi_key = \"k\"\n"),
        "test.toml",
        &liter_llm_proxy::config::Overrides::default(),
        |_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("base_url"), "{err}");
    // api_version belongs to azure only.
    let err = liter_llm_proxy::config::load_str(
        &format!("[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"x\"\nprovider_model = \"openai/gpt-4o\"\napi_key = \"k\"\napi_version = \"2024-10-21\"\n"),
        "test.toml",
        &liter_llm_proxy::config::Overrides::default(),
        |_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("api_version"), "{err}");
}

#[tokio::test]
async fn stream_passes_through_with_usage() {
    let mock = azure_mock().await;
    let gw = azure_gateway(&model_entry(&mock, "gpt", "gpt4o-prod", "")).await;
    let resp = gw
        .chat(
            MASTER,
            json!({"model": "gpt", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "one two three"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let events = sse_data(&body_text(resp).await);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "echo: one two three");
    assert!(
        chunks.last().unwrap()["usage"]["total_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(mock.requests()[0]
        .path
        .contains("/chat/completions?api-version="));
}

#[tokio::test]
async fn embeddings_go_to_the_deployment() {
    let mock = azure_mock().await;
    let gw = azure_gateway(&model_entry(&mock, "embed", "ada-prod", "")).await;
    for format in ["float", "base64"] {
        let resp = gw
            .post(
                "/v1/embeddings",
                Some(MASTER),
                &json!({"model": "embed", "input": ["a b", "c"], "encoding_format": format}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let out: Value = resp.json().await.unwrap();
        assert_eq!(out["data"].as_array().unwrap().len(), 2);
        let first = &out["data"][0]["embedding"];
        assert!(if format == "base64" {
            first.is_string()
        } else {
            first.is_array()
        });
        assert!(out["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    }
    let req = &mock.requests()[0];
    assert_eq!(
        req.path,
        format!("/openai/deployments/ada-prod/embeddings?api-version={DEFAULT_VERSION}")
    );
    assert_eq!(req.header("api-key"), Some(UPSTREAM_KEY));
}

#[tokio::test]
async fn content_filter_answers_reach_the_client_intact() {
    let mock = azure_mock().await;
    let gw = azure_gateway(&model_entry(&mock, "gpt", "gpt4o-prod", "")).await;
    let out: Value = gw
        .chat(
            MASTER,
            json!({"model": "gpt", "messages": [{"role": "user", "content": "trigger the content filter"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(
        out["choices"][0]["content_filter_results"]["violence"],
        json!({"filtered": true, "severity": "high"})
    );
    assert_eq!(
        out["prompt_filter_results"][0]["content_filter_results"]["hate"]["filtered"],
        false
    );
}

#[tokio::test]
async fn content_filter_400_is_kept_and_not_retried() {
    let mock = azure_mock().await;
    // Two deployments in one pool and a retry allowed: a 400 must still not be retried.
    let models = [
        model_entry(&mock, "gpt", "dep-one", ""),
        model_entry(&mock, "gpt", "dep-two", ""),
    ]
    .concat();
    let gw = azure_gateway(&models).await;
    let filtered = json!({"error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
        "type": null, "param": "prompt", "code": "content_filter", "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
            "hate": {"filtered": false, "severity": "safe"},
            "jailbreak": {"filtered": true, "detected": true},
            "violence": {"filtered": false, "severity": "safe"}}}}});
    mock.push_fault(Fault::status(400).with_body(filtered).times(2));
    let err = expect_error(gw.chat(MASTER, hello("gpt")).await, 400).await;
    assert_eq!(err["error"]["code"], "content_filter");
    assert_eq!(err["error"]["param"], "prompt");
    assert_eq!(
        err["error"]["innererror"]["code"],
        "ResponsibleAIPolicyViolation"
    );
    assert_eq!(
        err["error"]["innererror"]["content_filter_result"]["jailbreak"]["detected"],
        true
    );
    assert_eq!(
        mock.requests().len(),
        1,
        "a content-filter 400 is not retried"
    );
}

#[tokio::test]
async fn rate_limits_keep_retry_after_and_fall_back() {
    let mock = azure_mock().await;
    let models = [
        model_entry(&mock, "gpt", "dep-one", "fallbacks = [\"backup\"]"),
        model_entry(&mock, "backup", "dep-backup", ""),
    ]
    .concat();
    let gw = Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\n{models}"
    ))
    .await;
    // A 429 on the first deployment falls back to the backup.
    mock.push_fault(Fault::status(429).for_model("dep-one"));
    let resp = gw.chat(MASTER, hello("gpt")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-liter-llm-model"], "backup");
    let last = mock.requests().pop().unwrap();
    assert!(
        last.path.starts_with("/openai/deployments/dep-backup/"),
        "{}",
        last.path
    );

    // With nowhere else to go, the 429 and its Retry-After reach the client.
    let gw = azure_gateway(&model_entry(&mock, "solo", "dep-solo", "")).await;
    mock.push_fault(
        Fault::status(429)
            .retry_after(7)
            .for_model("dep-solo")
            .times(2),
    );
    let resp = gw.chat(MASTER, hello("solo")).await;
    assert_eq!(resp.headers()["retry-after"], "7");
    expect_error(resp, 429).await;
}

#[tokio::test]
async fn client_errors_keep_their_status_and_code() {
    let mock = azure_mock().await;
    let gw = azure_gateway(&model_entry(&mock, "gpt", "dep-one", "")).await;
    // Context too long: Azure's OpenAI-shaped 400 keeps its code.
    mock.push_fault(Fault::status(400).with_body(json!({"error": {
        "message": "This model's maximum context length is 128000 tokens.", "type": "invalid_request_error",
        "param": "messages", "code": "context_length_exceeded"}})));
    let err = expect_error(gw.chat(MASTER, hello("gpt")).await, 400).await;
    assert_eq!(err["error"]["code"], "context_length_exceeded");
    // A wrong key is the client's 401.
    let bad = Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"gpt\"\nprovider_model = \"azure/dep\"\napi_key = \"wrong\"\nbase_url = \"http://{}\"\n",
        mock.addr()
    ))
    .await;
    let err = expect_error(bad.chat(MASTER, hello("gpt")).await, 401).await;
    assert_eq!(err["error"]["code"], "401");
}
