//! The model admin API (`/model/new`, `/model/update`, `PATCH /model/{id}/update`,
//! `/model/delete`, `/model/info`, `/model_group/info`): changes served at once under
//! traffic with no failed request, the file's models protected, what each key sees,
//! partial updates, and wildcard models added at runtime.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::reload::{chat, start_file};
use crate::support::{client, MASTER, VKEY};

fn config(extra: &str) -> String {
    format!(
        "[general]\nmaster_key = \"{MASTER}\"\n\n[[keys]]\nkey = \"{VKEY}\"\nmodels = [\"alpha\"]\n\n[[models]]\nname = \"alpha\"\nprovider_model = \"mock/echo\"\nrpm = 1000\n{extra}"
    )
}

async fn post(url: &str, path: &str, key: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{url}{path}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(url: &str, path: &str, key: &str) -> (u16, Value) {
    let r = client()
        .get(format!("{url}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Requests to each model in turn until `stop`; returns (ok, failed) where a 404 on
/// a model not yet added or already deleted counts as neither.
fn traffic(
    url: String,
    models: &'static [&'static str],
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Vec<u16>)> {
    tokio::spawn(async move {
        let (mut ok, mut failed) = (0, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            for m in models {
                match chat(&url, MASTER, m).await.status().as_u16() {
                    200 => ok += 1,
                    404 if *m != "alpha" => {}
                    other => failed.push(other),
                }
            }
        }
        (ok, failed)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_added_updated_and_deleted_under_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    std::fs::write(&file, config("")).unwrap();
    let gw = start_file(&file).await;
    let url = gw.url.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(url.clone(), &["alpha", "added"], stop.clone());

    let (status, made) = post(
        &url,
        "/model/new",
        MASTER,
        json!({"model_name": "added", "litellm_params": {"model": "mock/echo", "rpm": 100}}),
    )
    .await;
    assert_eq!(status, 200, "{made}");
    let id = made["model_id"].as_str().unwrap().to_string();
    assert_eq!(made["model_info"]["id"], id.as_str());
    assert_eq!(made["model_info"]["db_model"], true);
    assert_eq!(chat(&url, MASTER, "added").await.status(), 200);

    let (_, info) = get(&url, "/model/info", MASTER).await;
    let rows = info["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{info}");
    assert_eq!(rows[0]["model_name"], "alpha");
    assert_eq!(rows[0]["model_info"]["db_model"], false);
    assert_eq!(rows[1]["model_info"]["db_model"], true);
    assert_eq!(rows[1]["litellm_params"]["rpm"], 100);
    assert!(
        rows[1]["model_info"]["created_at"]
            .as_str()
            .unwrap()
            .ends_with('Z'),
        "{info}"
    );
    assert!(rows[0]["model_info"].get("created_at").is_none(), "{info}");

    let (status, changed) = post(
        &url,
        "/model/update",
        MASTER,
        json!({"model_info": {"id": id}, "litellm_params": {"rpm": 700}}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["litellm_params"]["rpm"], 700);
    assert_eq!(changed["litellm_params"]["model"], "mock/echo");
    assert_eq!(chat(&url, MASTER, "added").await.status(), 200);

    // A reload of the file keeps the stored models.
    gw.live.reload().await.unwrap();
    assert_eq!(chat(&url, MASTER, "added").await.status(), 200);

    let (status, gone) = post(&url, "/model/delete", MASTER, json!({"id": id})).await;
    assert_eq!(status, 200, "{gone}");
    assert_eq!(chat(&url, MASTER, "added").await.status(), 404);
    let (status, _) = post(&url, "/model/delete", MASTER, json!({"id": id})).await;
    assert_eq!(status, 404);

    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = load.await.unwrap();
    assert!(ok > 0);
    assert!(failed.is_empty(), "failed requests: {failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_files_models_are_protected_and_bad_models_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    // The file gives its model an id of its own (LiteLLM's model_info.id).
    std::fs::write(&file, config("id = \"file-alpha\"\n")).unwrap();
    let gw = start_file(&file).await;
    let url = gw.url.clone();
    let (_, info) = get(&url, "/model/info", MASTER).await;
    let file_id = info["data"][0]["model_info"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(file_id, "file-alpha");

    // The file's id: refused for a new model, for an update, for a delete.
    let (status, err) = post(
        &url,
        "/model/new",
        MASTER,
        json!({"model_name": "alpha", "litellm_params": {"model": "mock/echo"}, "model_info": {"id": file_id}}),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["code"], "model_in_config_file");
    let (status, _) = post(
        &url,
        "/model/update",
        MASTER,
        json!({"model_info": {"id": file_id}, "litellm_params": {"rpm": 1}}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = post(&url, "/model/delete", MASTER, json!({"id": file_id})).await;
    assert_eq!(status, 400);

    // A model the config cannot take: its problem, and nothing changes.
    let (status, err) = post(
        &url,
        "/model/new",
        MASTER,
        json!({"model_name": "x", "litellm_params": {"model": "mock/echo", "no_such_param": 1}}),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no_such_param"),
        "{err}"
    );
    let (status, err) = post(
        &url,
        "/model/new",
        MASTER,
        json!({"model_name": "x", "litellm_params": {"model": "mock/echo", "rpm": -3}}),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = post(
        &url,
        "/model/new",
        MASTER,
        json!({"litellm_params": {"model": "mock/echo"}}),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    let (_, info) = get(&url, "/model/info", MASTER).await;
    assert_eq!(info["data"].as_array().unwrap().len(), 1, "{info}");

    // Writes are the master key's.
    let (status, _) = post(
        &url,
        "/model/new",
        VKEY,
        json!({"model_name": "y", "litellm_params": {"model": "mock/echo"}}),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_info_shows_a_virtual_key_its_models_only_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    let secret = "sk-upstream-never-shown-42";
    let extra = format!(
        "\n[[models]]\nname = \"beta\"\nprovider_model = \"openai/gpt-4o-mini\"\napi_key = \"{secret}\"\nbase_url = \"http://127.0.0.1:9/v1\"\n"
    );
    std::fs::write(&file, config(&extra)).unwrap();
    let gw = start_file(&file).await;
    let url = gw.url.clone();
    let (status, made) = post(
        &url,
        "/model/new",
        MASTER,
        json!({"model_name": "gamma", "litellm_params": {"model": "openai/gpt-4o", "api_key": "sk-stored-secret-43", "api_base": "http://127.0.0.1:9/v1"}}),
    )
    .await;
    assert_eq!(status, 200, "{made}");

    for path in ["/model/info", "/v1/model/info"] {
        let r = client()
            .get(format!("{url}{path}"))
            .bearer_auth(MASTER)
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        assert!(
            !text.contains(secret) && !text.contains("sk-stored-secret-43"),
            "{text}"
        );
        let all: Value = serde_json::from_str(&text).unwrap();
        let names: Vec<&str> = all["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["model_name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["alpha", "beta", "gamma"]);

        let (status, own) = get(&url, path, VKEY).await;
        assert_eq!(status, 200);
        let names: Vec<&str> = own["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["model_name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["alpha"]);
    }
    let id = made["model_id"].as_str().unwrap();
    let (_, one) = get(&url, &format!("/model/info?litellm_model_id={id}"), MASTER).await;
    assert_eq!(one["data"].as_array().unwrap().len(), 1);
    assert_eq!(one["data"][0]["model_name"], "gamma");

    let (status, groups) = get(&url, "/model_group/info", MASTER).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = groups["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["model_group"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta", "gamma"]);
    assert_eq!(groups["data"][0]["rpm"], 1000);
    assert_eq!(groups["data"][1]["providers"], json!(["openai"]));
    let (_, own) = get(&url, "/model_group/info", VKEY).await;
    assert_eq!(own["data"].as_array().unwrap().len(), 1);

    let anonymous = client()
        .get(format!("{url}/model/info"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// Three gateways sharing PostgreSQL (a schema of this test's own) and Redis (a
/// namespace of its own): a model added on one is served by another, and deleted on
/// that one, is gone from the first, without a reload; a key blocked or deleted on one
/// is refused by the other two within a second (the key cache's expiry is ten).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_reach_every_gateway_sharing_redis() {
    let db = crate::governance::Db::postgres().await;
    let tag = format!("{:016x}", rand::random::<u64>());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    let general = format!(
        "[general]\ndatabase_url = \"{}\"\nredis_url = \"redis://127.0.0.1:6379\"\nredis_namespace = \"t-{tag}\"\n",
        db.url()
    );
    std::fs::write(&file, config("").replacen("[general]\n", &general, 1)).unwrap();
    let a = start_file(&file).await;
    let b = start_file(&file).await;
    let c = start_file(&file).await;
    crate::shared_limits::listening(&format!("t-{tag}:changes"), 3).await;

    // Whether `url` answers `want` to `key` for `model` within a few seconds, less than
    // the key cache's expiry (the other gateway's announcement is followed in the
    // background).
    async fn answers(url: &str, key: &str, model: &str, want: u16) -> bool {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
        assert!(std::time::Duration::from_secs(3) < liter_llm_proxy::auth::RUNTIME_KEY_TTL);
        loop {
            if chat(url, key, model).await.status().as_u16() == want {
                return true;
            }
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    // The bound: every other gateway follows a key change within a second of
    // the admin call (the key cache alone would take up to RUNTIME_KEY_TTL).
    async fn followed(urls: &[&str], key: &str, want: u16, change: &str) {
        let since = tokio::time::Instant::now();
        for url in urls {
            assert!(
                answers(url, key, "alpha", want).await,
                "{url} never followed the key's {change}"
            );
        }
        assert!(
            since.elapsed() < std::time::Duration::from_secs(1),
            "the key's {change} took {:?} to reach every gateway",
            since.elapsed()
        );
    }
    assert_eq!(chat(&b.url, MASTER, "beta").await.status(), 404);
    let (status, added) = post(
        &a.url,
        "/model/new",
        MASTER,
        json!({"model_name": "beta", "litellm_params": {"model": "mock/echo"}}),
    )
    .await;
    assert_eq!(status, 200, "{added}");
    assert!(
        answers(&b.url, MASTER, "beta", 200).await,
        "b never served beta"
    );
    let id = added["model_info"]["id"].as_str().unwrap().to_owned();
    let (status, body) = post(&b.url, "/model/delete", MASTER, json!({"id": id})).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        answers(&a.url, MASTER, "beta", 404).await,
        "a still serves beta"
    );

    // A wildcard model added on A is served by B.
    let (status, added) = post(
        &a.url,
        "/model/new",
        MASTER,
        json!({"model_name": "gamma-*", "litellm_params": {"model": "mock/*"}}),
    )
    .await;
    assert_eq!(status, 200, "{added}");
    assert!(
        answers(&b.url, MASTER, "gamma-echo", 200).await,
        "b never served gamma-*"
    );

    // A key made on A, used (and so cached) on B and C, then blocked and deleted on A.
    let (status, made) = post(
        &a.url,
        "/key/generate",
        MASTER,
        json!({"models": ["alpha"]}),
    )
    .await;
    assert_eq!(status, 200, "{made}");
    let key = made["key"].as_str().unwrap().to_owned();
    assert_eq!(chat(&b.url, &key, "alpha").await.status(), 200);
    assert_eq!(chat(&c.url, &key, "alpha").await.status(), 200);
    let (status, body) = post(
        &a.url,
        "/key/update",
        MASTER,
        json!({"key": key, "blocked": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    followed(&[&b.url, &c.url], &key, 401, "block").await;
    let (status, body) = post(
        &a.url,
        "/key/update",
        MASTER,
        json!({"key": key, "blocked": false}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    followed(&[&b.url, &c.url], &key, 200, "unblock").await;
    let (status, body) = post(&a.url, "/key/delete", MASTER, json!({"keys": [key]})).await;
    assert_eq!(status, 200, "{body}");
    followed(&[&b.url, &c.url], &key, 401, "deletion").await;
    drop((a, b, c));
}

async fn patch(url: &str, id: &str, body: Value) -> (u16, Value) {
    let r = client()
        .patch(format!("{url}/model/{id}/update"))
        .bearer_auth(MASTER)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// LiteLLM's `PATCH /model/{id}/update`: only the fields given change, and a key not
/// given (or given as `null`) is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_changes_only_the_given_fields() {
    let mock = mock_upstream::MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    std::fs::write(&file, config("id = \"file-alpha\"\n")).unwrap();
    let gw = start_file(&file).await;
    let url = gw.url.clone();
    let (status, made) = post(
        &url,
        "/model/new",
        MASTER,
        json!({"model_name": "up", "litellm_params": {"model": "openai/up-model", "api_key": "sk-kept-secret", "api_base": mock.base_url(), "rpm": 100, "tpm": 5000}, "model_info": {"max_input_tokens": 9000}}),
    )
    .await;
    assert_eq!(status, 200, "{made}");
    let id = made["model_id"].as_str().unwrap().to_string();

    let (status, changed) = patch(
        &url,
        &id,
        json!({"litellm_params": {"rpm": 7, "api_key": null}, "model_info": {"max_output_tokens": 100}}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["litellm_params"]["rpm"], 7);
    assert_eq!(changed["litellm_params"]["tpm"], 5000);
    assert_eq!(changed["litellm_params"]["model"], "openai/up-model");
    assert_eq!(changed["model_info"]["max_input_tokens"], 9000);
    assert_eq!(changed["model_info"]["max_output_tokens"], 100);
    // The key was kept: the upstream still receives it.
    assert_eq!(chat(&url, MASTER, "up").await.status(), 200);
    let auth = mock.requests()[0]
        .header("authorization")
        .unwrap()
        .to_string();
    assert_eq!(auth, "Bearer sk-kept-secret");

    // A new name: served under it, no longer under the old.
    let (status, renamed) = patch(&url, &id, json!({"model_name": "up2"})).await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["litellm_params"]["rpm"], 7);
    assert_eq!(chat(&url, MASTER, "up2").await.status(), 200);
    assert_eq!(chat(&url, MASTER, "up").await.status(), 404);

    // A bad change is refused and nothing changes; unknown and file ids are refused.
    let (status, err) = patch(&url, &id, json!({"litellm_params": {"rpm": -1}})).await;
    assert_eq!(status, 400, "{err}");
    let (status, _) = patch(&url, "no-such-id", json!({"litellm_params": {"rpm": 1}})).await;
    assert_eq!(status, 404);
    let (status, err) = patch(&url, "file-alpha", json!({"litellm_params": {"rpm": 1}})).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["code"], "model_in_config_file");
    let (status, _) = patch(&url, &id, json!({"id": "other"})).await;
    assert_eq!(status, 400);
    let (_, info) = get(&url, &format!("/model/info?litellm_model_id={id}"), MASTER).await;
    assert_eq!(info["data"][0]["litellm_params"]["rpm"], 7, "{info}");
    assert_eq!(info["data"][0]["model_name"], "up2");
    // `model_info` as /model/info shows it (its id, nulls included) goes back
    // through /model/update unchanged.
    let shown = info["data"][0]["model_info"].clone();
    assert!(shown["base_model"].is_null(), "{shown}");
    let (status, back) = post(&url, "/model/update", MASTER, json!({"model_info": shown})).await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["model_info"]["max_output_tokens"], 100);
    // Writes are the master key's.
    let r = client()
        .patch(format!("{url}/model/{id}/update"))
        .bearer_auth(VKEY)
        .json(&json!({"model_name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// Wildcard models added at runtime (a prefix pattern, and a provider wildcard) are
/// served as the file's are, and again after a restart on the same database (spread
/// to another gateway: `admin_changes_reach_every_gateway_sharing_redis`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_models_added_at_runtime_survive_a_restart() {
    let mock = mock_upstream::MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    let db = crate::governance::Db::postgres().await;
    let general = format!("[general]\ndatabase_url = \"{}\"\n", db.url());
    std::fs::write(&file, config("").replacen("[general]\n", &general, 1)).unwrap();
    let gw = start_file(&file).await;
    let url = gw.url.clone();
    for (name, model, base) in [
        ("team-*", "openai/*", mock.base_url()),
        (
            "anthropic/*",
            "anthropic/*",
            format!("http://{}", mock.addr()),
        ),
    ] {
        let (status, made) = post(
            &url,
            "/model/new",
            MASTER,
            json!({"model_name": name, "litellm_params": {"model": model, "api_key": "k", "api_base": base}}),
        )
        .await;
        assert_eq!(status, 200, "{made}");
        assert_eq!(made["model_name"], name);
    }
    for name in ["team-x", "anthropic/claude-3-5-haiku"] {
        assert_eq!(chat(&url, MASTER, name).await.status(), 200, "{name}");
    }
    assert_eq!(chat(&url, MASTER, "teamx").await.status(), 404);
    let sent: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| {
            r.body.as_ref().unwrap()["model"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(sent, ["x", "claude-3-5-haiku"]);
    drop(gw);

    let gw = start_file(&file).await;
    gw.live.load_stored().await.unwrap();
    assert_eq!(chat(&gw.url, MASTER, "team-y").await.status(), 200);
    assert_eq!(
        chat(&gw.url, MASTER, "anthropic/claude-x").await.status(),
        200
    );
}
