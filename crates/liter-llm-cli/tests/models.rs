//! The real `liter-llm` binary keeps the model admin API's models in its SQLite file:
//! a model added before a restart is served after it, still marked as stored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{cmd, Proc};
use serde_json::{json, Value};

const MASTER: &str = "sk-cli-master-models";

async fn chat(url: &str, model: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn start(dir: &std::path::Path, file: &std::path::Path) -> Proc {
    let mut c = cmd(dir);
    c.args(["api", "--config"]).arg(file);
    Proc::spawn(c)
}

fn stop(gw: Proc) {
    gw.signal("-TERM");
    let (exit, logs) = gw.wait();
    assert!(exit.success(), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_model_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    let db = dir.path().join("state.db");
    std::fs::write(
        &file,
        format!(
            "[server]\nhost = \"127.0.0.1\"\nport = 0\n\n[general]\nmaster_key = \"{MASTER}\"\ndatabase_url = \"{}\"\n\n[[models]]\nname = \"alpha\"\nprovider_model = \"mock/echo\"\n",
            db.display()
        ),
    )
    .unwrap();

    let gw = start(dir.path(), &file);
    let made: Value = reqwest::Client::new()
        .post(format!("{}/model/new", gw.url))
        .bearer_auth(MASTER)
        .json(&json!({"model_name": "kept", "litellm_params": {"model": "mock/echo"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = made["model_id"].as_str().unwrap().to_string();
    assert_eq!(chat(&gw.url, "kept").await, 200);
    stop(gw);

    let gw = start(dir.path(), &file);
    assert_eq!(chat(&gw.url, "kept").await, 200);
    let info = common::get_json(&format!("{}/model/info", gw.url), MASTER).await;
    let kept = info["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model_name"] == "kept")
        .unwrap();
    assert_eq!(kept["model_info"]["id"], id.as_str());
    assert_eq!(kept["model_info"]["db_model"], true);
    gw.wait_for_output("stored models applied");
    stop(gw);
}
