//! Wildcard models (`[[models]]` whose `name` has a `*`): the names they match reach
//! the provider their `provider_model` writes, each `*` filled in; configured names and
//! `[[aliases]]` come first; the config refuses what would open more than the file says.

use liter_llm_proxy::config::{load_str, Overrides};
use mock_upstream::MockUpstream;

use crate::routing::{dep, header, served_ids};
use crate::support::*;

fn refused(toml: &str) -> String {
    match load_str(toml, "test.toml", &Overrides::default(), |_| None) {
        Ok(_) => panic!("expected a refusal of:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn patterns_fill_in_the_clients_name() {
    let mock = MockUpstream::start().await.unwrap();
    let cfg = format!(
        "{}{}{}{}{}",
        header(MASTER, ""),
        dep(&mock, "exact", "exact-id", ""),
        dep(&mock, "fo::*:static::*", "fo-*-static-*", ""),
        dep(&mock, "claude-*", "fixed-claude", ""),
        dep(&mock, "*", "*", ""),
    );
    let gw = Gateway::start(&cfg).await;
    for name in [
        "exact",
        "fo::hi:static::there",
        "claude-3-opus",
        "anything-else",
    ] {
        let resp = gw.chat(MASTER, hello(name)).await;
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(resp.headers()["x-liter-llm-model"], name);
    }
    assert_eq!(
        served_ids(&mock),
        [
            "exact-id",
            "fo-hi-static-there",
            "fixed-claude",
            "anything-else"
        ]
    );
}

#[tokio::test]
async fn without_a_catch_all_other_names_stay_unknown() {
    let mock = MockUpstream::start().await.unwrap();
    let cfg = format!(
        "{}{}",
        header(MASTER, ""),
        dep(
            &mock,
            "gpt-3.5-turbo*",
            "gpt-3.5-turbo*",
            "fallbacks = [\"backup\"]"
        ) + &dep(&mock, "backup", "backup-id", ""),
    );
    let gw = Gateway::start(&cfg).await;
    expect_error(gw.chat(MASTER, hello("gpt-4")).await, 404).await;
    let resp = gw.chat(MASTER, hello("gpt-3.5-turbo-0125")).await;
    assert_eq!(
        resp.headers()["x-liter-llm-deployment"],
        "openai/gpt-3.5-turbo-0125"
    );
    // A pattern's fallbacks are its names' fallbacks.
    mock.push_fault(
        mock_upstream::Fault::status(500)
            .for_model("gpt-3.5-turbo-16k")
            .forever(),
    );
    let resp = gw.chat(MASTER, hello("gpt-3.5-turbo-16k")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-liter-llm-model"], "backup");
}

#[test]
fn the_config_refuses_what_would_open_more_than_it_says() {
    let base = "[[models]]\nname = \"{name}\"\nprovider_model = \"{model}\"\napi_key = \"k\"\n";
    let entry = |name: &str, model: &str| base.replace("{name}", name).replace("{model}", model);
    // The catch-all opens each provider with that provider's own key only.
    let e = refused(&entry("*", "*"));
    assert!(
        e.contains("models[0].api_key: api_key on the catch-all"),
        "{e}"
    );
    let e = refused(&entry("team-*", "*"));
    assert!(e.contains("its name must be \"*\""), "{e}");
    let e = refused(&entry("*", "*/gpt-4o"));
    assert!(e.contains("a wildcard model must name its provider"), "{e}");
    let e = refused(&entry("gpt-4o", "openai/*"));
    assert!(e.contains("needs a wildcard name"), "{e}");
    let e = refused(&entry("a*", "openai/*-*"));
    assert!(e.contains("give as many, or none"), "{e}");
    let e = refused(&(entry("a*", "openai/a*") + "input_cost_per_token = 0.1\n"));
    assert!(
        e.contains("not supported yet: input_cost_per_token on a wildcard model"),
        "{e}"
    );
    // A pattern is not a name others may refer to.
    let e = refused(&format!(
        "{}[[keys]]\nkey = \"vk-1\"\nmodels = [\"a*\"]\n",
        entry("a*", "openai/a*")
    ));
    assert!(e.contains("keys[0].models[0]"), "{e}");
}
