//! Chat completions, embeddings and models on the pass-through path.

use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn chat_is_forwarded_with_the_provider_model_id() {
    let (mock, gw) = setup("").await;
    let body = json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hello gateway"}],
        "temperature": 0.2,
        "some_future_param": {"nested": [1, 2, 3]},
        "logit_bias": {"50256": -100}
    });
    let resp = gw.chat(MASTER, body.clone()).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-request-id").is_some());
    let out: Value = resp.json().await.unwrap();
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "echo: hello gateway"
    );
    assert_eq!(out["usage"]["total_tokens"], 5);

    let seen = mock.requests();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {UPSTREAM_KEY}").as_str())
    );
    let sent = req.body.clone().unwrap();
    assert_eq!(
        sent["model"], "gpt-4o-2024-08-06",
        "the upstream must get the provider's id"
    );
    // every other field arrives exactly as the client wrote it
    let mut expected = body;
    expected["model"] = json!("gpt-4o-2024-08-06");
    assert_eq!(sent, expected);
}

#[tokio::test]
async fn routes_work_without_the_v1_prefix() {
    let (_mock, gw) = setup("").await;
    let resp = gw
        .post("/chat/completions", Some(MASTER), &hello("gpt-4o"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = gw
        .post(
            "/embeddings",
            Some(MASTER),
            &json!({"model": "gpt-4o", "input": "x"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let list: Value = gw
        .get("/models", Some(MASTER))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["object"], "list");
    let one = gw.get("/models/gpt-4o", Some(MASTER)).send().await.unwrap();
    assert_eq!(one.status(), 200);
}

#[tokio::test]
async fn embeddings_pass_through() {
    let (mock, gw) = setup("").await;
    let resp = gw
        .post(
            "/v1/embeddings",
            Some(MASTER),
            &json!({"model": "other", "input": ["a b", "c"], "dimensions": 4, "user": "u1"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let out: Value = resp.json().await.unwrap();
    assert_eq!(out["object"], "list");
    assert_eq!(out["data"].as_array().unwrap().len(), 2);
    assert_eq!(out["data"][0]["embedding"].as_array().unwrap().len(), 4);
    let sent = mock.requests()[0].body.clone().unwrap();
    assert_eq!(mock.requests()[0].path, "/v1/embeddings");
    assert_eq!(sent["model"], "other-model");
    assert_eq!(sent["user"], "u1");
}

#[tokio::test]
async fn models_list_and_get() {
    let (_mock, gw) = setup("").await;
    assert_eq!(gw.model_ids(MASTER).await, ["gpt-4o", "other"]);
    let list = gw.get_json("/v1/models", MASTER).await;
    assert_eq!(list["data"][0]["object"], "model");
    assert_eq!(list["data"][0]["owned_by"], "openai");
    assert!(list["data"][0]["created"].as_u64().unwrap() > 0);

    let one = gw.get_json("/v1/models/other", MASTER).await;
    assert_eq!(one["id"], "other");
    let missing = gw
        .get("/v1/models/nope", Some(MASTER))
        .send()
        .await
        .unwrap();
    let err = expect_error(missing, 404).await;
    assert_eq!(err["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn model_names_with_slashes_work_everywhere() {
    let mock = mock_upstream::MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"groq/llama3-70b-8192\"\nprovider_model = \"groq/llama3-70b-8192\"\nbase_url = \"{}\"\n",
        mock.base_url()
    ))
    .await;
    let one = gw
        .get("/v1/models/groq/llama3-70b-8192", Some(MASTER))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let resp = gw.chat(MASTER, hello("groq/llama3-70b-8192")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        mock.requests()[0].body.as_ref().unwrap()["model"],
        "llama3-70b-8192"
    );
}

#[tokio::test]
async fn mock_provider_answers_without_network() {
    let gw = echo_gateway("echo", "").await;
    let out: Value = gw.chat(MASTER, hello("echo")).await.json().await.unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], "hello gateway");
    let out: Value = gw
        .chat(MASTER, json!({"model":"echo","mock_response":"fixed","messages":[{"role":"user","content":"x"}]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], "fixed");
    let emb: Value = gw
        .post(
            "/v1/embeddings",
            Some(MASTER),
            &json!({"model":"echo","input":"hi"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(emb["data"][0]["embedding"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn mock_provider_simulated_latency() {
    let gw = echo_gateway("slow", "mock_latency_ms = 300\n").await;
    let start = std::time::Instant::now();
    let resp = gw.chat(MASTER, hello("slow")).await;
    assert_eq!(resp.status(), 200);
    assert!(start.elapsed() >= std::time::Duration::from_millis(300));
}

#[tokio::test]
async fn request_timeout_bounds_the_mock_provider_too() {
    let gw = Gateway::start(&format!(
        "[server]\nrequest_timeout_secs = 1\n[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"slow\"\nprovider_model = \"mock/echo\"\nmock_latency_ms = 60000\n"
    ))
    .await;
    // Real time: cut at the 1 s deadline, long before the 60 s latency.
    let start = std::time::Instant::now();
    expect_error(gw.chat(MASTER, hello("slow")).await, 504).await;
    let waited = start.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(1) && waited < std::time::Duration::from_secs(30),
        "{waited:?}"
    );
}
