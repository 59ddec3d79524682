//! The spec's S3 `[files]` example, as written (bucket my-llm-files in us-west-2, no
//! credentials), run by the real binary: the gateway starts, and an upload fails at
//! once with a 503 in OpenAI's shape. The process's AWS defaults point at a refusing
//! loopback port (`AWS_ENDPOINT_URL`, no instance metadata), so nothing leaves the
//! machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{cmd, Proc};
use serde_json::Value;

const MASTER: &str = "sk-cli-files-master-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spec_s3_example_starts_without_credentials_and_answers_503() {
    // Bound but never listening (kept for the whole test): connections are refused.
    let refusing = tokio::net::TcpSocket::new_v4().unwrap();
    refusing.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = refusing.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("liter-llm-proxy.toml");
    std::fs::write(
        &file,
        format!(
            "[server]\nhost = \"127.0.0.1\"\nport = 0\n\n[general]\nmaster_key = \"{MASTER}\"\n\n\
             # S3-backed file store.\n[files]\nbackend = \"s3\"\nprefix = \"liter-llm-files/\"\n\n\
             [files.backend_config]\nbucket = \"my-llm-files\"\nregion = \"us-west-2\"\n"
        ),
    )
    .unwrap();
    let mut c = cmd(dir.path());
    c.args(["api", "--config"]).arg(&file);
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        c.env_remove(var);
    }
    c.env("HOME", dir.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
    let gw = Proc::spawn(c);

    let body = "--b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
                --b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n\
                Content-Type: application/octet-stream\r\n\r\n{}\r\n--b--\r\n";
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let resp = client
        .post(format!("{}/v1/files", gw.url))
        .bearer_auth(MASTER)
        .header("content-type", "multipart/form-data; boundary=b")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let err: Value = resp.json().await.unwrap();
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"s3\""), "{err}");
    assert_eq!(err["error"]["type"], "api_error");
    // Metadata lives in the default SQLite file beside the config: listing works.
    let list = common::get_json(&format!("{}/v1/files", gw.url), MASTER).await;
    assert_eq!(list["data"], serde_json::json!([]));
    assert!(dir.path().join("liter-llm.db").exists());
    gw.signal("-INT");
    let (status, _) = tokio::task::spawn_blocking(move || gw.wait())
        .await
        .unwrap();
    assert!(status.success());
}
