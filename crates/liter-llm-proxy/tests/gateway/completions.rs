//! Legacy completions at the front door (`/v1/completions`): forwarded as they came to
//! an OpenAI-format deployment, served through chat for an Anthropic-format one and the
//! in-process mock, whole and streamed.

use mock_upstream::MockUpstream;
use serde_json::{json, Value};

use crate::support::*;

/// "claude" on the mock's Anthropic API, "gpt" on its OpenAI API, "echo" in-process.
async fn gateway(mock: &MockUpstream) -> Gateway {
    Gateway::start(&format!(
        r#"
[general]
master_key = "{MASTER}"
max_retries = 0
[[models]]
name = "claude"
provider_model = "anthropic/claude-sonnet-4-20250514"
api_key = "{UPSTREAM_KEY}"
base_url = "http://{addr}"
[[models]]
name = "gpt"
provider_model = "openai/gpt-3.5-turbo-instruct"
api_key = "{UPSTREAM_KEY}"
base_url = "{base}"
[[models]]
name = "echo"
provider_model = "mock/echo"
"#,
        addr = mock.addr(),
        base = mock.base_url(),
    ))
    .await
}

async fn complete(gw: &Gateway, body: Value) -> reqwest::Response {
    gw.post("/v1/completions", Some(MASTER), &body)
        .send()
        .await
        .unwrap()
}

/// The JSON chunks of an OpenAI-style stream, checking it ends with `[DONE]`.
fn chunks(text: &str) -> Vec<Value> {
    let data = sse_data(text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn an_openai_deployment_gets_the_request_as_it_came() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = gateway(&mock).await;
    let body = r#"{"prompt": ["first one", "second"],  "model":"gpt","max_tokens":3,"suffix":"!","echo":false}"#;
    let resp = client()
        .post(format!("{}/v1/completions", gw.url))
        .bearer_auth(MASTER)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["object"], "text_completion");
    assert_eq!(answer["choices"][0]["text"], "echo: first one");
    assert_eq!(answer["choices"][1]["text"], "echo: second");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["usage"]["completion_tokens"], 5);
    let sent = &mock.requests()[0];
    assert_eq!(sent.path, "/v1/completions");
    assert_eq!(
        sent.header("authorization"),
        Some(&*format!("Bearer {UPSTREAM_KEY}"))
    );
    let mut expected: Value = serde_json::from_str(body).unwrap();
    expected["model"] = json!("gpt-3.5-turbo-instruct");
    assert_eq!(sent.body.as_ref().unwrap(), &expected);

    // Streamed: relayed as it comes.
    let text = complete(
        &gw,
        json!({"model": "gpt", "prompt": "a b c", "stream": true,
            "stream_options": {"include_usage": true}}),
    )
    .await
    .text()
    .await
    .unwrap();
    let chunks = chunks(&text);
    let said: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0).and_then(|c| c["text"].as_str()))
        .collect();
    assert_eq!(said, "echo: a b c");
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 4);
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
}

#[tokio::test]
async fn other_deployments_answer_through_chat() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = gateway(&mock).await;
    for model in ["claude", "echo"] {
        let resp = complete(
            &gw,
            json!({"model": model, "prompt": "hello there", "temperature": 0.2}),
        )
        .await;
        assert_eq!(resp.status(), 200, "{model}");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["object"], "text_completion");
        assert!(answer["id"].as_str().unwrap().starts_with("cmpl-"));
        assert!(
            answer["choices"][0]["text"]
                .as_str()
                .unwrap()
                .contains("hello there"),
            "{answer}"
        );
        assert_eq!(answer["choices"][0]["index"], 0);
        assert!(answer["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    }
    let sent = mock.requests()[0].body.clone().unwrap();
    assert_eq!(mock.requests()[0].path, "/v1/messages");
    assert_eq!(sent["max_tokens"], 16, "OpenAI's default for completions");
    assert!(sent["messages"][0].to_string().contains("hello there"));

    let text = complete(
        &gw,
        json!({"model": "claude", "prompt": "one two", "stream": true}),
    )
    .await
    .text()
    .await
    .unwrap();
    let chunks = chunks(&text);
    let said: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0).and_then(|c| c["text"].as_str()))
        .collect();
    assert_eq!(said, "echo: one two");
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "not asked for"
    );

    // Several prompts need a deployment that takes the request as it is.
    let several = complete(&gw, json!({"model": "claude", "prompt": ["a", "b"]})).await;
    let body = expect_error(several, 400).await;
    assert_eq!(body["error"]["param"], "prompt");
    let missing = complete(&gw, json!({"model": "echo"})).await;
    expect_error(missing, 400).await;
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn an_azure_deployment_gets_the_request_at_its_completions_url() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\n[[models]]\nname = \"instruct\"\nprovider_model = \"azure/instruct-prod\"\napi_key = \"{UPSTREAM_KEY}\"\nbase_url = \"http://{}\"\n",
        mock.addr()
    ))
    .await;
    let resp = complete(&gw, json!({"model": "instruct", "prompt": "hi azure"})).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["choices"][0]["text"], "echo: hi azure");
    let sent = &mock.requests()[0];
    assert!(
        sent.path
            .starts_with("/openai/deployments/instruct-prod/completions?api-version="),
        "{}",
        sent.path
    );
    assert_eq!(sent.header("api-key"), Some(UPSTREAM_KEY));
}
