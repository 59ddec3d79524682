//! The OpenAI-compatible family: prefix selects the provider, keys come from the
//! provider's own variable when the model sets none.

use liter_llm::providers::openai_compat::PROVIDERS;
use mock_upstream::MockUpstream;

use crate::support::*;

#[tokio::test]
async fn every_compatible_provider_reaches_its_upstream_with_its_key_variable() {
    let mock = MockUpstream::start().await.unwrap();
    let mut toml = format!("[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\n");
    for p in PROVIDERS {
        toml.push_str(&format!(
            "[[models]]\nname = \"m-{0}\"\nprovider_model = \"{0}/model-of-{0}\"\nbase_url = \"{1}\"\n",
            p.name,
            mock.base_url()
        ));
    }
    // each provider's first key variable holds a distinct key
    let env = |var: &str| -> Option<String> {
        PROVIDERS
            .iter()
            .find(|p| p.key_env.first() == Some(&var))
            .map(|p| format!("key-for-{}", p.name))
    };
    let gw = Gateway::start_with_env(&toml, env).await;
    for p in PROVIDERS {
        mock.clear_requests();
        let resp = gw.chat(MASTER, hello(&format!("m-{}", p.name))).await;
        assert_eq!(resp.status(), 200, "{}", p.name);
        let req = &mock.requests()[0];
        assert_eq!(
            req.body.as_ref().unwrap()["model"],
            format!("model-of-{}", p.name)
        );
        let expected = p
            .key_env
            .first()
            .map(|_| format!("Bearer key-for-{}", p.name));
        assert_eq!(
            req.header("authorization").map(str::to_string),
            expected,
            "{}",
            p.name
        );
    }
}

#[tokio::test]
async fn api_key_in_config_wins_over_the_variable() {
    let mock = MockUpstream::start().await.unwrap();
    let toml = format!(
        "[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"g\"\nprovider_model = \"groq/llama3-70b-8192\"\napi_key = \"from-config\"\nbase_url = \"{}\"\n",
        mock.base_url()
    );
    let gw =
        Gateway::start_with_env(&toml, |v| (v == "GROQ_API_KEY").then(|| "from-env".into())).await;
    assert_eq!(gw.chat(MASTER, hello("g")).await.status(), 200);
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some("Bearer from-config")
    );
}

#[tokio::test]
async fn base_url_variable_overrides_the_default() {
    let mock = MockUpstream::start().await.unwrap();
    let toml = format!("[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"o\"\nprovider_model = \"openai/gpt-4o\"\n");
    let base = mock.base_url();
    let gw = Gateway::start_with_env(&toml, move |v| match v {
        "OPENAI_BASE_URL" => Some(base.clone()),
        "OPENAI_API_KEY" => Some("sk-env".into()),
        _ => None,
    })
    .await;
    assert_eq!(gw.chat(MASTER, hello("o")).await.status(), 200);
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some("Bearer sk-env")
    );
}

#[tokio::test]
async fn upstream_rejecting_the_provider_key_is_passed_on() {
    let mock = MockUpstream::start_with(mock_upstream::MockOptions {
        require_api_key: Some("the-right-one".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let gw = Gateway::start(&base_config(&mock, "")).await;
    let err = expect_error(gw.chat(MASTER, hello("gpt-4o")).await, 401).await;
    assert_eq!(err["error"]["code"], "invalid_api_key");
}
