//! `[[aliases]]` and provider variables: `provider/model` names sent directly, and
//! only through an explicit `[[aliases]]` entry.

use mock_upstream::MockUpstream;
use serde_json::json;

use crate::support::*;

fn config(mock: &MockUpstream, extra: &str) -> String {
    format!(
        r#"
[general]
master_key = "{MASTER}"
max_retries = 0

[[models]]
name = "configured"
provider_model = "openai/configured-id"
base_url = "{base}"

[[aliases]]
pattern = "anthropic/*"
api_key = "{UPSTREAM_KEY}"
base_url = "http://{addr}"

[[aliases]]
pattern = "openai/gpt-4*"
api_key = "sk-openai-alias"
base_url = "{base}"

[[keys]]
key = "{VKEY}"
models = ["anthropic/claude-allowed"]
{extra}
"#,
        base = mock.base_url(),
        addr = mock.addr()
    )
}

#[tokio::test]
async fn matching_names_use_the_alias_credentials() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&config(&mock, "")).await;
    let resp = gw
        .chat(MASTER, hello("anthropic/claude-sonnet-4-20250514"))
        .await;
    assert_eq!(resp.status(), 200);
    let req = &mock.requests()[0];
    assert_eq!(req.path, "/v1/messages");
    assert_eq!(req.header("x-api-key"), Some(UPSTREAM_KEY));
    assert_eq!(
        req.body.as_ref().unwrap()["model"],
        "claude-sonnet-4-20250514"
    );

    mock.clear_requests();
    assert_eq!(
        gw.chat(MASTER, hello("openai/gpt-4o-mini")).await.status(),
        200
    );
    let req = &mock.requests()[0];
    assert_eq!(req.header("authorization"), Some("Bearer sk-openai-alias"));
    assert_eq!(req.body.as_ref().unwrap()["model"], "gpt-4o-mini");
}

#[tokio::test]
async fn names_no_alias_covers_are_404() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&config(&mock, "")).await;
    for name in ["openai/o1", "groq/llama3-70b-8192", "nope/x", "anthropic"] {
        expect_error(gw.chat(MASTER, hello(name)).await, 404).await;
    }
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn an_alias_without_api_key_uses_the_provider_key_variable() {
    let mock = MockUpstream::start().await.unwrap();
    let base = mock.base_url();
    let gw = Gateway::start_with_env(
        &config(&mock, "[[aliases]]\npattern = \"groq/*\"\n"),
        move |v| match v {
            "GROQ_API_KEY" => Some("gsk-from-env".into()),
            "GROQ_API_BASE" => Some(base.clone()),
            _ => None,
        },
    )
    .await;
    assert_eq!(
        gw.chat(MASTER, hello("groq/llama3-70b-8192"))
            .await
            .status(),
        200
    );
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some("Bearer gsk-from-env")
    );
    let ids = gw.model_ids(MASTER).await;
    assert_eq!(
        ids,
        ["configured", "anthropic/*", "openai/gpt-4*", "groq/*"]
    );
    assert!(gw.app.config.unexposed_providers.is_empty());
}

#[tokio::test]
async fn a_provider_key_variable_alone_exposes_nothing() {
    let mock = MockUpstream::start().await.unwrap();
    let base = mock.base_url();
    let gw = Gateway::start_with_env(&config(&mock, ""), move |v| match v {
        "GROQ_API_KEY" => Some("gsk-from-env".into()),
        "GROQ_API_BASE" => Some(base.clone()),
        "OPENAI_API_KEY" => Some("sk-from-env".into()),
        _ => None,
    })
    .await;
    expect_error(gw.chat(MASTER, hello("groq/llama3-70b-8192")).await, 404).await;
    // openai/gpt-4* is declared, so openai is exposed (by that pattern only).
    expect_error(gw.chat(MASTER, hello("openai/o1")).await, 404).await;
    assert!(mock.requests().is_empty());
    assert_eq!(
        gw.model_ids(MASTER).await,
        ["configured", "anthropic/*", "openai/gpt-4*"]
    );
    assert_eq!(gw.app.config.unexposed_providers, ["groq"]);
}

#[tokio::test]
async fn key_allowlists_apply_to_direct_names() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&config(&mock, "")).await;
    assert_eq!(
        gw.chat(VKEY, hello("anthropic/claude-allowed"))
            .await
            .status(),
        200
    );
    expect_error(gw.chat(VKEY, hello("anthropic/claude-other")).await, 403).await;
    expect_error(gw.chat(VKEY, hello("configured")).await, 403).await;
    assert!(gw.model_ids(VKEY).await.is_empty());
}

#[tokio::test]
async fn configured_models_win_over_aliases() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&format!(
        "{}[[models]]\nname = \"openai/gpt-4-special\"\nprovider_model = \"openai/special-id\"\nbase_url = \"{}\"\n",
        config(&mock, ""),
        mock.base_url()
    ))
    .await;
    let resp = gw
        .chat(MASTER, json!({"model": "openai/gpt-4-special", "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(resp.status(), 200);
    let req = &mock.requests()[0];
    assert_eq!(req.body.as_ref().unwrap()["model"], "special-id");
    assert!(
        req.header("authorization").is_none(),
        "the model's own (absent) key, not the alias's"
    );
}

#[test]
fn alias_config_errors() {
    let err = liter_llm_proxy::config::load_str(
        "[[aliases]]\npattern = \"*/gpt\"\n[[aliases]]\npattern = \"custom/*\"\n",
        "t.toml",
        &Default::default(),
        |_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("aliases[0].pattern: pattern \"*/gpt\" must start with a provider prefix"),
        "{err}"
    );
    assert!(
        err.contains("aliases[1].base_url: provider \"custom\" needs base_url"),
        "{err}"
    );
}

#[tokio::test]
async fn made_up_names_keep_a_bounded_number_of_pools() {
    use liter_llm_proxy::routing::direct::DIRECT_POOLS;
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&config(&mock, "")).await;
    for i in 0..DIRECT_POOLS + 100 {
        let resp = gw
            .chat(MASTER, hello(&format!("openai/gpt-4-made-up-{i}")))
            .await;
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(gw.app.routes.direct_pools(), DIRECT_POOLS);
    // A forgotten name is made again on its next use.
    assert_eq!(
        gw.chat(MASTER, hello("openai/gpt-4-made-up-0"))
            .await
            .status(),
        200
    );
    assert_eq!(gw.app.routes.direct_pools(), DIRECT_POOLS);
}
