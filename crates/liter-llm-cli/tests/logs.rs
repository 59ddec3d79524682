//! The real binary's logs against hostile input: a client-sent model name with a
//! newline and ANSI escapes must not forge a log line (text format).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{cmd, Proc};
use mock_upstream::MockUpstream;
use serde_json::json;

const MASTER: &str = "sk-logs-master-5b1e";

#[tokio::test]
async fn client_text_cannot_forge_log_lines() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("liter-llm-proxy.toml");
    let config = format!(
        r#"
[server]
host = "127.0.0.1"
port = 0

[general]
master_key = "{MASTER}"
max_retries = 0
enable_cost_tracking = true

[[aliases]]
pattern = "openai/*"
api_key = "sk-alias-upstream"
base_url = "{}"
"#,
        mock.base_url()
    );
    std::fs::write(&file, config).unwrap();
    let mut c = cmd(dir.path());
    c.arg("api").arg("--log-format").arg("text");
    let gw = Proc::spawn(c);
    let client = reqwest::Client::new();
    let forged = "FORGED 2026-01-01T00:00:00Z INFO request status=200";
    for model in [
        format!("openai/x\n{forged}"),
        format!("openai/y\r\n{forged}\u{1b}[31m"),
        format!("openai/z{}", "w".repeat(5000)),
        "openai/plain-unpriced-model".to_string(),
    ] {
        let resp = client
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(MASTER)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().as_u16() < 500, "{}", resp.status());
    }
    gw.signal("-TERM");
    let (status, logs) = tokio::task::spawn_blocking(move || gw.wait())
        .await
        .unwrap();
    assert!(status.success(), "exit {status:?}\n{logs}");
    // Read to the end (the last line is the shutdown's), so every line is checked.
    assert!(
        logs.lines().last().is_some_and(|l| l.contains("stopped")),
        "{logs}"
    );
    assert!(
        logs.contains("plain-unpriced-model"),
        "the ordinary name is logged: {logs}"
    );
    for line in logs.lines() {
        assert!(!line.starts_with("FORGED"), "forged line: {line}");
        assert!(!line.contains('\u{1b}'), "raw escape in: {line:?}");
        assert!(line.len() < 4000, "an outside value is not capped: {line}");
    }
}
