//! Master key, virtual keys and their model allowlists.

use crate::support::*;

#[tokio::test]
async fn missing_or_wrong_key_is_401() {
    let (mock, gw) = setup("").await;
    let resp = gw
        .post("/v1/chat/completions", None, &hello("gpt-4o"))
        .send()
        .await
        .unwrap();
    let err = expect_error(resp, 401).await;
    assert_eq!(err["error"]["code"], "invalid_api_key");
    let resp = gw.chat("sk-wrong", hello("gpt-4o")).await;
    expect_error(resp, 401).await;
    // a prefix of the right key is still wrong
    let resp = gw.chat(&MASTER[..MASTER.len() - 1], hello("gpt-4o")).await;
    expect_error(resp, 401).await;
    let resp = gw.get("/v1/models", None).send().await.unwrap();
    expect_error(resp, 401).await;
    assert!(mock.requests().is_empty(), "nothing may reach the upstream");
}

#[tokio::test]
async fn virtual_key_allowlist() {
    let (mock, gw) = setup("").await;
    assert_eq!(gw.chat(VKEY, hello("gpt-4o")).await.status(), 200);
    let resp = gw.chat(VKEY, hello("other")).await;
    let err = expect_error(resp, 403).await;
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(msg.contains("other"), "names the model: {msg}");
    assert!(!msg.contains(VKEY), "never the key: {msg}");
    assert_eq!(err["error"]["param"], "model");
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn unknown_model_is_404_for_everyone() {
    let (_mock, gw) = setup("").await;
    for key in [MASTER, VKEY] {
        let err = expect_error(gw.chat(key, hello("no-such-model")).await, 404).await;
        assert_eq!(err["error"]["code"], "model_not_found");
        assert!(err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-model"));
    }
}

#[tokio::test]
async fn model_list_is_filtered_by_the_key() {
    let (_mock, gw) = setup("").await;
    assert_eq!(gw.model_ids(VKEY).await, ["gpt-4o"]);
    let resp = gw.get("/v1/models/other", Some(VKEY)).send().await.unwrap();
    expect_error(resp, 403).await;
}

#[tokio::test]
async fn key_with_empty_allowlist_may_use_every_model() {
    let (_mock, gw) = setup("[[keys]]\nkey = \"vk-all\"\n").await;
    assert_eq!(gw.chat("vk-all", hello("other")).await.status(), 200);
    assert_eq!(gw.chat("vk-all", hello("gpt-4o")).await.status(), 200);
}

#[tokio::test]
async fn many_keys_still_resolve() {
    let mut extra = String::new();
    for i in 0..2000 {
        extra.push_str(&format!(
            "[[keys]]\nkey = \"vk-bulk-{i:05}\"\nmodels = [\"other\"]\n"
        ));
    }
    let (_mock, gw) = setup(&extra).await;
    assert_eq!(gw.chat("vk-bulk-01999", hello("other")).await.status(), 200);
    expect_error(gw.chat("vk-bulk-01999", hello("gpt-4o")).await, 403).await;
    expect_error(gw.chat("vk-bulk-02000", hello("other")).await, 401).await;
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let (_mock, gw) = setup("").await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("authorization", format!("bearer {MASTER}"))
        .json(&hello("gpt-4o"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("authorization", format!("Basic {MASTER}"))
        .json(&hello("gpt-4o"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 401).await;
}
