//! The real binary's logs against hostile input: a client-sent model name with a
//! newline and ANSI escapes must not forge a log line (text format). And the log
//! settings a config file gives (LiteLLM's `set_verbose` and `json_logs`), under the
//! flags, and a reload that changes them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{cmd, Proc};
use mock_upstream::MockUpstream;
use serde_json::{json, Value};

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

/// A LiteLLM file with these `litellm_settings` (its one model is never called).
fn litellm_file(dir: &Path, settings: &str) -> std::path::PathBuf {
    let file = dir.join("config.yaml");
    std::fs::write(
        &file,
        format!(
            "model_list:\n  - model_name: gpt-4o\n    litellm_params: {{model: openai/gpt-4o, api_key: k, api_base: \"http://127.0.0.1:9/v1\"}}\nlitellm_settings:\n{settings}general_settings:\n  master_key: {MASTER}\n"
        ),
    )
    .unwrap();
    file
}

/// Starts the gateway on `file` with `flags`, stops it, and returns its output.
fn run(file: &Path, flags: &[&str], env: Option<(&str, &str)>) -> String {
    let mut c = cmd(file.parent().unwrap());
    c.args(["api", "-c"])
        .arg(file)
        .args(["--host", "127.0.0.1", "-p", "0"]);
    c.args(flags);
    if let Some((k, v)) = env {
        c.env(k, v);
    }
    let gw = Proc::spawn(c); // waits for "listening on http://"
    gw.signal("-TERM");
    let (status, logs) = gw.wait();
    assert!(status.success(), "{logs}");
    assert!(!logs.contains(MASTER), "{logs}");
    logs
}

/// Every line is a JSON object with a level and a message.
fn all_json(logs: &str) -> bool {
    logs.lines().all(|l| {
        serde_json::from_str::<Value>(l)
            .is_ok_and(|v| v["level"].is_string() && v["message"].is_string())
    })
}

/// `set_verbose: true` gives debug lines and `json_logs: true` JSON lines, as
/// `--debug` and `--log-format json` do, from the first line on (the file's own
/// "loaded" line included); `--log-format` (or LITER_LLM_LOG_FORMAT) wins over the
/// file; `false` is the default.
#[test]
fn set_verbose_and_json_logs_set_the_log_level_and_format() {
    let dir = tempfile::tempdir().unwrap();
    let file = litellm_file(dir.path(), "  set_verbose: true\n  json_logs: true\n");
    let logs = run(&file, &[], None);
    assert!(all_json(&logs), "{logs}");
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|v| v["level"] == "DEBUG" && v["message"] == "config loaded"),
        "{logs}"
    );
    assert!(
        lines
            .iter()
            .any(|v| v["message"] == "config file loaded (LiteLLM format)"),
        "{logs}"
    );

    for (flags, env) in [
        (&["--log-format", "text"][..], None),
        (&[][..], Some(("LITER_LLM_LOG_FORMAT", "text"))),
    ] {
        let logs = run(&file, flags, env);
        assert!(
            !logs.lines().any(|l| l.starts_with('{')),
            "{flags:?} {env:?}: {logs}"
        );
        assert!(logs.contains("config loaded"), "still verbose: {logs}");
    }

    let file = litellm_file(dir.path(), "  set_verbose: false\n  json_logs: false\n");
    let logs = run(&file, &[], None);
    assert!(!logs.lines().any(|l| l.starts_with('{')), "{logs}");
    assert!(
        logs.contains("config file loaded (LiteLLM format)"),
        "{logs}"
    );
    assert!(!logs.contains("config loaded"), "{logs}");
    let logs = run(&file, &["--debug", "--log-format", "json"], None);
    assert!(all_json(&logs) && logs.contains("config loaded"), "{logs}");
}

/// A reload that changes `set_verbose` or `json_logs` is refused by name (logging is
/// set up once, at start-up); the running config stays.
#[test]
fn a_reload_that_changes_the_log_settings_needs_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = litellm_file(dir.path(), "  json_logs: false\n");
    let mut c = cmd(dir.path());
    c.args(["api", "-c"])
        .arg(&file)
        .args(["--host", "127.0.0.1", "-p", "0"]);
    let gw = Proc::spawn(c);
    litellm_file(dir.path(), "  json_logs: true\n");
    gw.signal("-HUP");
    gw.wait_for_output("config reload refused");
    let logs = gw.output.lock().unwrap().clone();
    let refused = logs
        .lines()
        .find(|l| l.contains("config reload refused"))
        .unwrap();
    assert!(
        refused.contains("general.log_format and general.debug"),
        "{refused}"
    );
    assert!(!refused.starts_with('{'), "still text: {refused}");
    gw.signal("-TERM");
    let (status, _) = gw.wait();
    assert!(status.success());
}
