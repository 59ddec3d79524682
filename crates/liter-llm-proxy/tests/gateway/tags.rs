//! Tag routing (LiteLLM's tag-based routing, `[router] enable_tag_filtering`): the
//! request's tags from the `x-litellm-tags` header, the body (`metadata.tags`, `tags`)
//! and its key choose among a pool's deployments; `default` deployments take untagged
//! requests; retries and fallbacks stay among the admitted deployments; tags never
//! reach an upstream. Deployments are told apart by their upstream model id.

use mock_upstream::{Fault, MockUpstream};
use serde_json::{json, Value};

use crate::routing::{dep, header, served_ids};
use crate::support::*;

const FILTERING: &str = "[router]\nenable_tag_filtering = true\n";

/// A gateway on the mock: pool `gpt-4` with deployments `free` (tagged free), `paid`
/// (tagged paid) and `house` (tagged default), pool `plain` with `plain-a` (tagged
/// team-a) and `plain-b` (no tags), and `tail` after them.
async fn tagged_gateway(router: &str, tail: &str) -> (MockUpstream, Gateway) {
    let mock = MockUpstream::start().await.unwrap();
    let cfg = format!(
        "{}{router}{}{}{}{}{}{tail}",
        header(MASTER, ""),
        dep(&mock, "gpt-4", "free", "tags = [\"free\"]"),
        dep(&mock, "gpt-4", "paid", "tags = [\"paid\"]"),
        dep(&mock, "gpt-4", "house", "tags = [\"default\"]"),
        dep(&mock, "plain", "plain-a", "tags = [\"team-a\"]"),
        dep(&mock, "plain", "plain-b", ""),
    );
    (mock, Gateway::start(&cfg).await)
}

async fn with_header(gw: &Gateway, key: &str, model: &str, tags: &str) -> reqwest::Response {
    gw.post("/v1/chat/completions", Some(key), &hello(model))
        .header("x-litellm-tags", tags)
        .send()
        .await
        .unwrap()
}

fn deployment(resp: &reqwest::Response) -> &str {
    resp.headers()["x-liter-llm-deployment"].to_str().unwrap()
}

#[tokio::test]
async fn header_tags_choose_the_deployments_carrying_one() {
    let (mock, gw) = tagged_gateway(FILTERING, "").await;
    for _ in 0..4 {
        let resp = with_header(&gw, MASTER, "gpt-4", "free").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(deployment(&resp), "openai/free");
        let resp = with_header(&gw, MASTER, "gpt-4", " nope , paid").await;
        assert_eq!(deployment(&resp), "openai/paid");
    }
    // Either of two tags: both deployments carrying one take traffic, nothing else.
    for _ in 0..30 {
        assert_eq!(
            with_header(&gw, MASTER, "gpt-4", "free,paid")
                .await
                .status(),
            200
        );
    }
    let ids = served_ids(&mock);
    assert!(ids.iter().all(|id| id == "free" || id == "paid"), "{ids:?}");
    assert!(ids[8..].contains(&"free".to_string()) && ids[8..].contains(&"paid".to_string()));
}

#[tokio::test]
async fn body_tags_route_and_never_reach_the_upstream() {
    let (mock, gw) = tagged_gateway(FILTERING, "").await;
    let mut body = hello("gpt-4");
    body["metadata"] = json!({"tags": ["paid"], "trace": "t-1"});
    let resp = gw.chat(MASTER, body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(deployment(&resp), "openai/paid");
    // LiteLLM's top-level `tags` too, alone in the body's gateway fields.
    let mut body = hello("gpt-4");
    body["tags"] = json!(["free"]);
    body["metadata"] = json!({"tags": []});
    let resp = gw.chat(MASTER, body).await;
    assert_eq!(deployment(&resp), "openai/free");
    let sent: Vec<Value> = mock
        .requests()
        .iter()
        .map(|r| r.body.clone().unwrap())
        .collect();
    assert_eq!(sent[0]["metadata"], json!({"trace": "t-1"}));
    assert_eq!(sent[0]["messages"], hello("gpt-4")["messages"]);
    assert!(sent[1].get("metadata").is_none() && sent[1].get("tags").is_none());
    // Legacy completions go to OpenAI-compatible deployments as the client sent them,
    // but for the tags.
    mock.clear_requests();
    let completion = json!({"model": "gpt-4", "prompt": "hi", "max_tokens": 3,
        "metadata": {"tags": ["free"]}});
    let resp = gw
        .post("/v1/completions", Some(MASTER), &completion)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(deployment(&resp), "openai/free");
    let sent = mock.requests();
    assert!(sent[0].path.ends_with("/completions") && !sent[0].path.ends_with("chat/completions"));
    assert!(sent[0].body.as_ref().unwrap().get("metadata").is_none());
    // A malformed tag list is the client's error.
    let mut body = hello("gpt-4");
    body["metadata"] = json!({"tags": [1]});
    let err = expect_error(gw.chat(MASTER, body).await, 400).await;
    assert_eq!(err["error"]["param"], "tags");
}

#[tokio::test]
async fn untagged_requests_go_to_default_deployments_else_anywhere() {
    let (mock, gw) = tagged_gateway(FILTERING, "").await;
    for _ in 0..6 {
        let resp = gw.chat(MASTER, hello("gpt-4")).await;
        assert_eq!(deployment(&resp), "openai/house");
    }
    // `plain` has no default deployment: untagged requests reach all of its deployments.
    mock.clear_requests();
    for _ in 0..30 {
        assert_eq!(gw.chat(MASTER, hello("plain")).await.status(), 200);
    }
    let ids = served_ids(&mock);
    assert!(ids.contains(&"plain-a".to_string()) && ids.contains(&"plain-b".to_string()));
    // A tag only the team-a deployment carries.
    let resp = with_header(&gw, MASTER, "plain", "team-a").await;
    assert_eq!(deployment(&resp), "openai/plain-a");
}

#[tokio::test]
async fn no_matching_deployment_is_a_400_naming_the_tags() {
    let (mock, gw) = tagged_gateway(FILTERING, "").await;
    let err = expect_error(with_header(&gw, MASTER, "gpt-4", "enterprise").await, 400).await;
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Not allowed to access model due to tags configuration")
            && message.contains("\"gpt-4\"")
            && message.contains("[\"enterprise\"]"),
        "{message}"
    );
    assert_eq!(err["error"]["code"], "no_deployments_with_tag_routing");
    assert_eq!(err["error"]["type"], "invalid_request_error");
    // Anthropic's door answers in its own shape.
    let resp = gw
        .post(
            "/v1/messages",
            Some(MASTER),
            &json!({"model": "gpt-4", "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}]}),
        )
        .header("x-litellm-tags", "enterprise")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("enterprise"));
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn request_tags_are_bounded() {
    let (mock, gw) = tagged_gateway(FILTERING, "").await;
    let many: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
    let err = expect_error(
        with_header(&gw, MASTER, "gpt-4", &many.join(",")).await,
        400,
    )
    .await;
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 32 tags"));
    let long = "x".repeat(65);
    expect_error(with_header(&gw, MASTER, "gpt-4", &long).await, 400).await;
    let mut body = hello("gpt-4");
    body["metadata"] = json!({"tags": ["bell\u{7}"]});
    expect_error(gw.chat(MASTER, body).await, 400).await;
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn a_keys_tags_join_its_requests_tags() {
    let keys = format!(
        "[[keys]]\nkey = \"{VKEY}\"\ntags = [\"paid\"]\n[[keys]]\nkey = \"vk-free-0002\"\ntags = [\"free\"]\n"
    );
    let (_mock, gw) = tagged_gateway(FILTERING, &keys).await;
    let resp = gw.chat(VKEY, hello("gpt-4")).await;
    assert_eq!(deployment(&resp), "openai/paid");
    let resp = gw.chat("vk-free-0002", hello("gpt-4")).await;
    assert_eq!(deployment(&resp), "openai/free");
    // The key's tag stays: a request tag adds deployments, it does not replace the key's.
    for _ in 0..20 {
        let resp = with_header(&gw, VKEY, "gpt-4", "free").await;
        assert!(["openai/paid", "openai/free"].contains(&deployment(&resp)));
    }
    // The key's tags are its /key/info.
    let info = gw.get_json("/key/info", VKEY).await;
    assert_eq!(info["info"]["tags"], json!(["paid"]));
}

#[tokio::test]
async fn runtime_keys_carry_tags_through_generate_update_and_info() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!(
        "database_url = \"{}\"",
        dir.path().join("tags.db").display()
    );
    let mock = MockUpstream::start().await.unwrap();
    let cfg = format!(
        "{}{FILTERING}{}{}",
        header(MASTER, &database),
        dep(&mock, "gpt-4", "free", "tags = [\"free\"]"),
        dep(&mock, "gpt-4", "paid", "tags = [\"paid\"]"),
    );
    let gw = Gateway::start(&cfg).await;
    let made: Value = gw
        .post("/key/generate", Some(MASTER), &json!({"tags": ["paid"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(made["tags"], json!(["paid"]));
    let key = made["key"].as_str().unwrap().to_string();
    assert_eq!(
        deployment(&gw.chat(&key, hello("gpt-4")).await),
        "openai/paid"
    );
    let updated: Value = gw
        .post(
            "/key/update",
            Some(MASTER),
            &json!({"key": key, "tags": ["free"]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated["tags"], json!(["free"]));
    assert_eq!(
        deployment(&gw.chat(&key, hello("gpt-4")).await),
        "openai/free"
    );
    let info = gw.get_json(&format!("/key/info?key={key}"), MASTER).await;
    assert_eq!(info["info"]["tags"], json!(["free"]));
    // `null` clears them.
    let cleared: Value = gw
        .post(
            "/key/update",
            Some(MASTER),
            &json!({"key": key, "tags": null}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["tags"], json!([]));
    // Bounds hold at the admin API too.
    let resp = gw
        .post("/key/generate", Some(MASTER), &json!({"tags": ["a,b"]}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400).await;
}

#[tokio::test]
async fn retries_and_fallbacks_stay_among_admitted_deployments() {
    let mock = MockUpstream::start().await.unwrap();
    let cfg = format!(
        "{}{FILTERING}{}{}{}{}{}",
        header(MASTER, ""),
        dep(
            &mock,
            "main",
            "m-free",
            "tags = [\"free\"]\nfallbacks = [\"backup\"]"
        ),
        dep(&mock, "main", "m-paid", "tags = [\"paid\"]"),
        dep(&mock, "main", "m-paid-2", "tags = [\"paid\"]"),
        dep(&mock, "backup", "b-free", "tags = [\"free\"]"),
        dep(&mock, "backup", "b-paid", "tags = [\"paid\"]"),
    );
    let gw = Gateway::start(&cfg).await;
    mock.push_fault(Fault::status(500).for_model("m-paid").forever());
    mock.push_fault(Fault::status(500).for_model("m-paid-2").forever());
    let resp = with_header(&gw, MASTER, "main", "paid").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(deployment(&resp), "openai/b-paid");
    let ids = served_ids(&mock);
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids[..2].contains(&"m-paid".into()) && ids[..2].contains(&"m-paid-2".into()));
    assert_eq!(ids[2], "b-paid");
    // A tag only the fallback carries: the main pool is passed over.
    let cfg = format!(
        "{}{FILTERING}{}{}",
        header(MASTER, ""),
        dep(
            &mock,
            "solo",
            "s-free",
            "tags = [\"free\"]\nfallbacks = [\"extra\"]"
        ),
        dep(&mock, "extra", "e-gold", "tags = [\"gold\"]"),
    );
    let gw = Gateway::start(&cfg).await;
    assert_eq!(
        deployment(&with_header(&gw, MASTER, "solo", "gold").await),
        "openai/e-gold"
    );
}

#[tokio::test]
async fn with_filtering_off_tags_choose_nothing_and_are_still_not_forwarded() {
    let mock = MockUpstream::start().await.unwrap();
    // Tags in the config take effect only with filtering: without it they are refused.
    let tagged = format!(
        "{}{}",
        header(MASTER, ""),
        dep(&mock, "pool", "dep-a", "tags = [\"x\"]")
    );
    let refused = liter_llm_proxy::config::load_str(
        &tagged,
        "test.toml",
        &liter_llm_proxy::config::Overrides::default(),
        |_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains("models[0].tags") && refused.contains("enable_tag_filtering = true"),
        "{refused}"
    );
    let cfg = format!(
        "{}{}{}",
        header(MASTER, ""),
        dep(&mock, "pool", "dep-a", ""),
        dep(&mock, "pool", "dep-b", ""),
    );
    let gw = Gateway::start(&cfg).await;
    for _ in 0..30 {
        let mut body = hello("pool");
        body["metadata"] = json!({"tags": ["nowhere"]});
        let resp = gw
            .post("/v1/chat/completions", Some(MASTER), &body)
            .header("x-litellm-tags", "nowhere")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let ids = served_ids(&mock);
    assert!(ids.contains(&"dep-a".to_string()) && ids.contains(&"dep-b".to_string()));
    assert!(mock
        .requests()
        .iter()
        .all(|r| r.body.as_ref().unwrap().get("metadata").is_none()));
}

#[tokio::test]
async fn cached_answers_are_shared_only_by_requests_with_the_same_tags() {
    let cache = "[cache]\nmax_entries = 100\n";
    let (mock, gw) = tagged_gateway(FILTERING, cache).await;
    let ask = |tags: &'static str| {
        let gw = &gw;
        async move {
            let mut body = hello("gpt-4");
            body["metadata"] = json!({ "tags": [tags] });
            gw.chat(MASTER, body).await
        }
    };
    let first = ask("free").await;
    assert_eq!(first.headers()["x-liter-llm-cache"], "miss");
    assert_eq!(deployment(&first), "openai/free");
    let other = ask("paid").await;
    assert_eq!(
        other.headers()["x-liter-llm-cache"],
        "miss",
        "another tier's answer"
    );
    assert_eq!(deployment(&other), "openai/paid");
    let again = ask("free").await;
    assert_eq!(again.headers()["x-liter-llm-cache"], "hit");
    assert_eq!(served_ids(&mock), ["free", "paid"]);
}
