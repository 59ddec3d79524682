//! The admin API: runtime keys (hashed at rest, shown once) and spend reports, in
//! LiteLLM's shapes; master key only.

use mock_upstream::MockUpstream;
use serde_json::{json, Value};

use crate::support::*;

async fn gateway(mock: &MockUpstream, dir: &tempfile::TempDir) -> Gateway {
    Gateway::start(&format!(
        r#"
[general]
master_key = "{MASTER}"
max_retries = 0
enable_cost_tracking = true
database_url = "{db}"

[[models]]
name = "priced"
provider_model = "openai/house-model"
base_url = "{base}"
output_cost_per_token = 0.001

[[models]]
name = "other"
provider_model = "openai/other-model"
base_url = "{base}"

[[keys]]
key = "{VKEY}"
description = "file key"
"#,
        db = dir.path().join("admin.db").display(),
        base = mock.base_url(),
    ))
    .await
}

fn ask(model: &str) -> Value {
    json!({"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi there"}]})
}

async fn json_of(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status(), status);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn generated_keys_work_are_limited_and_can_be_updated_and_deleted() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&mock, &dir).await;
    let made = json_of(
        gw.post(
            "/key/generate",
            Some(MASTER),
            &json!({"models": ["priced"], "rpm_limit": 1, "key_alias": "team-a",
                "metadata": {"team": "a"}, "duration": "30d"}),
        )
        .send()
        .await
        .unwrap(),
        200,
    )
    .await;
    let key = made["key"].as_str().unwrap().to_owned();
    let token = made["token"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk-") && key.len() > 40);
    assert_eq!(made["key_alias"], "team-a");
    assert!(made["expires"].as_str().unwrap().ends_with('Z'));

    // It works, within its allowlist and rpm.
    assert_eq!(gw.chat(&key, ask("priced")).await.status(), 200);
    assert_eq!(gw.chat(&key, ask("other")).await.status(), 403);
    let limited = gw.chat(&key, ask("priced")).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["x-ratelimit-limit-requests"], "1");

    // A key reads its own info, not another's; the master key reads any.
    gw.app.governor.settled().await;
    let own = json_of(gw.get("/key/info", Some(&key)).send().await.unwrap(), 200).await;
    assert_eq!(own["key"], token.as_str());
    assert!(own["info"]["spend"].as_f64().unwrap() > 0.0);
    assert!(
        !own.to_string().contains(&key),
        "the clear key is never shown again"
    );
    let other = gw
        .get(&format!("/key/info?key={token}"), Some(VKEY))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);
    let by_master = json_of(
        gw.get(&format!("/key/info?key={token}"), Some(MASTER))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(by_master["info"]["metadata"]["team"], "a");

    // Update: block it; it is refused at once.
    let updated = json_of(
        gw.post(
            "/key/update",
            Some(MASTER),
            &json!({"key": token, "blocked": true, "rpm_limit": null}),
        )
        .send()
        .await
        .unwrap(),
        200,
    )
    .await;
    assert_eq!(updated["blocked"], true);
    assert_eq!(updated["rpm_limit"], Value::Null);
    assert_eq!(gw.chat(&key, ask("priced")).await.status(), 401);

    // List, then delete by alias.
    let list = json_of(gw.get("/key/list", Some(MASTER)).send().await.unwrap(), 200).await;
    assert_eq!(list["keys"], json!([token]));
    assert_eq!(list["total_count"], 1);
    let unknown = gw
        .get("/key/info?key=nope", Some(MASTER))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
    let deleted = json_of(
        gw.post(
            "/key/delete",
            Some(MASTER),
            &json!({"key_aliases": ["team-a"]}),
        )
        .send()
        .await
        .unwrap(),
        200,
    )
    .await;
    assert_eq!(deleted["deleted_keys"], json!([token]));
    assert_eq!(gw.chat(&key, ask("priced")).await.status(), 401);

    // The clear key is nowhere in the database files.
    drop(gw);
    for path in files_under(dir.path()) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
            "{} holds the clear key",
            path.display()
        );
    }
}

#[tokio::test]
async fn runtime_keys_and_spend_survive_a_restart() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = {
        let gw = gateway(&mock, &dir).await;
        let made = json_of(
            gw.post("/key/generate", Some(MASTER), &json!({"max_budget": 1.0}))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        let key = made["key"].as_str().unwrap().to_owned();
        assert_eq!(gw.chat(&key, ask("priced")).await.status(), 200);
        gw.app.governor.settled().await;
        key
    };
    let gw = gateway(&mock, &dir).await;
    assert_eq!(gw.chat(&key, ask("priced")).await.status(), 200);
    gw.app.governor.settled().await;
    let spend = json_of(
        gw.get("/global/spend", Some(MASTER)).send().await.unwrap(),
        200,
    )
    .await;
    let billed = mock.served().completion_tokens as f64 * 0.001;
    assert!(
        (spend["spend"].as_f64().unwrap() - billed).abs() < 1e-9,
        "{spend} vs {billed}"
    );
}

#[tokio::test]
async fn spend_reports_group_by_key_model_and_day() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&mock, &dir).await;
    assert_eq!(gw.chat(VKEY, ask("priced")).await.status(), 200);
    assert_eq!(gw.chat(VKEY, ask("other")).await.status(), 200);
    assert_eq!(gw.chat(MASTER, ask("priced")).await.status(), 200);
    gw.app.governor.settled().await;

    let logs = json_of(
        gw.get("/spend/logs", Some(MASTER)).send().await.unwrap(),
        200,
    )
    .await;
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), 3);
    assert!(logs
        .iter()
        .all(|r| r["request_id"].as_str().is_some_and(|id| !id.is_empty())));
    assert!(!serde_json::to_string(logs).unwrap().contains(VKEY));
    let file_key = logs
        .iter()
        .find_map(|r| r["api_key"].as_str())
        .unwrap()
        .to_owned();
    assert!(file_key.starts_with("cfg-"));

    let mine = json_of(
        gw.get(&format!("/spend/logs?api_key={file_key}"), Some(MASTER))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(mine.as_array().unwrap().len(), 2);
    let models = json_of(
        gw.get("/global/spend/models", Some(MASTER))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let names: Vec<&str> = models
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["model"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["priced", "other"], "most expensive first");
    assert_eq!(models[1]["spend"], 0.0);
    let days = json_of(
        gw.get("/global/spend/report?group_by=day", Some(MASTER))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(days.as_array().unwrap().len(), 1);
    assert_eq!(days[0]["requests"], 3);
    let keys = json_of(
        gw.get("/global/spend/keys", Some(MASTER))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let bad = gw
        .get("/global/spend/report?group_by=week", Some(MASTER))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let future = json_of(
        gw.get("/spend/logs?start_date=2999-01-01", Some(MASTER))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(future, json!([]));
}

#[tokio::test]
async fn every_admin_route_refuses_a_virtual_key_with_403() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&mock, &dir).await;
    for (method, path) in [
        ("POST", "/key/generate"),
        ("POST", "/key/update"),
        ("POST", "/key/delete"),
        ("GET", "/key/list"),
        ("GET", "/spend/logs"),
        ("GET", "/global/spend"),
        ("GET", "/global/spend/keys"),
        ("GET", "/global/spend/models"),
        ("GET", "/global/spend/report"),
    ] {
        let resp = match method {
            "POST" => gw
                .post(path, Some(VKEY), &json!({"key": "x"}))
                .send()
                .await
                .unwrap(),
            _ => gw.get(path, Some(VKEY)).send().await.unwrap(),
        };
        assert_eq!(resp.status(), 403, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"]["message"].as_str().is_some(), "{path}");
        assert_eq!(body["error"]["type"], "permission_error", "{path}");
        let anonymous = match method {
            "POST" => gw.post(path, None, &json!({})).send().await.unwrap(),
            _ => gw.get(path, None).send().await.unwrap(),
        };
        assert_eq!(anonymous.status(), 401, "{path}");
    }
    // Bad input is a 400 naming the field.
    let resp = gw
        .post(
            "/key/generate",
            Some(MASTER),
            &json!({"budget_duration": "fortnight"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["param"],
        "budget_duration"
    );
}

#[tokio::test]
async fn without_a_database_the_admin_api_says_so() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&base_config(&mock, "")).await;
    let resp = gw
        .post("/key/generate", Some(MASTER), &json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.text().await.unwrap().contains("database_url"));
}

#[tokio::test]
async fn a_master_key_gets_the_admin_api_on_the_default_sqlite_file() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("liter-llm-proxy.toml");
    std::fs::write(&file, base_config(&mock, "")).unwrap();
    let cfg = liter_llm_proxy::config::load_file(&file, &Default::default()).unwrap();
    let gw = Gateway::start_config(cfg).await;
    let created = gw
        .post("/key/generate", Some(MASTER), &json!({"max_budget": 5.0}))
        .send()
        .await
        .unwrap();
    let created = json_of(created, 200).await;
    assert!(
        dir.path().join("liter-llm.db").exists(),
        "the default store is the SQLite file beside the config file"
    );
    let key = created["key"].as_str().unwrap().to_string();
    assert_eq!(gw.chat(&key, ask("gpt-4o")).await.status(), 200);
    assert_eq!(gw.chat(MASTER, ask("gpt-4o")).await.status(), 200);
    gw.app.governor.settled().await;
    // The runtime key's request is in the ledger; the master key's is not metered,
    // since nothing but the admin API asked for the store.
    let logs = gw.get_json("/spend/logs", MASTER).await;
    let rows = logs.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{logs}");
    assert_eq!(rows[0]["api_key"], created["token"], "{logs}");
    // Priced from the embedded table, which such a gateway parses only when a metered
    // request first needs it (openai/gpt-4o-2024-08-06 is in it).
    assert!(rows[0]["spend"].as_f64().unwrap() > 0.0, "{logs}");
}

#[tokio::test]
async fn a_second_gateway_on_the_same_default_file_starts_without_the_admin_api() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    std::fs::write(&first, base_config(&mock, "")).unwrap();
    std::fs::write(&second, base_config(&mock, "")).unwrap();
    let load = |f| liter_llm_proxy::config::load_file(f, &Default::default()).unwrap();
    let a = Gateway::start_config(load(&first)).await;
    let b = Gateway::start_config(load(&second)).await;
    let generate = |gw: &Gateway| gw.post("/key/generate", Some(MASTER), &json!({})).send();
    assert_eq!(generate(&a).await.unwrap().status(), 200);
    let refused = generate(&b).await.unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.text().await.unwrap().contains("database_url"));
    // It serves the API all the same.
    assert_eq!(b.chat(MASTER, ask("gpt-4o")).await.status(), 200);
}
