//! The real `liter-llm` binary reloading its config: on SIGHUP, and with `--watch`
//! when the file changes; a bad file is refused with the start-up's error and the
//! running config stays.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{cmd, Proc};

const MASTER: &str = "sk-cli-master-reload";

fn config(models: &[&str]) -> String {
    let mut out = format!(
        "[server]\nhost = \"127.0.0.1\"\nport = 0\n\n[general]\nmaster_key = \"{MASTER}\"\n"
    );
    for m in models {
        out.push_str(&format!(
            "\n[[models]]\nname = \"{m}\"\nprovider_model = \"mock/echo\"\n"
        ));
    }
    out
}

async fn status(url: &str, model: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(&serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Blocks (bounded) until `needle` has appeared `n` times in the output.
fn wait_for_count(gw: &Proc, needle: &str, n: usize) {
    for _ in 0..2000 {
        if gw.output.lock().unwrap().matches(needle).count() >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!(
        "{needle:?} not seen {n} times in:\n{}",
        gw.output.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_a_bad_file_keeps_the_running_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    std::fs::write(&file, config(&["alpha"])).unwrap();
    let mut c = cmd(dir.path());
    c.args(["api", "--config"]).arg(&file);
    let gw = Proc::spawn(c);
    assert_eq!(status(&gw.url, "alpha").await, 200);

    std::fs::write(&file, config(&["beta"])).unwrap();
    gw.signal("-HUP");
    wait_for_count(&gw, "config reloaded", 1);
    assert_eq!(status(&gw.url, "beta").await, 200);
    assert_eq!(status(&gw.url, "alpha").await, 404);
    let logs = gw.output.lock().unwrap().clone();
    assert!(logs.contains("models added: beta"), "{logs}");
    assert!(logs.contains("models removed: alpha"), "{logs}");
    assert!(!logs.contains(MASTER), "{logs}");

    let bad = format!(
        "{}\n[[models]]\nname = \"x\"\nprovider_model = \"nosuch/x\"\n",
        config(&["beta"])
    );
    std::fs::write(&file, &bad).unwrap();
    gw.signal("-HUP");
    wait_for_count(&gw, "config reload refused", 1);
    // The error start-up gives for the same file.
    let check = cmd(dir.path())
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!check.status.success());
    let startup = String::from_utf8_lossy(&check.stderr);
    let problem = startup.lines().nth(1).unwrap().trim().to_string();
    assert!(problem.contains("unknown provider \"nosuch\""), "{startup}");
    let logs = gw.output.lock().unwrap().clone();
    assert!(logs.contains(&problem), "{problem}\nnot in:\n{logs}");
    assert_eq!(status(&gw.url, "beta").await, 200);

    gw.signal("-TERM");
    let (exit, _) = gw.wait();
    assert!(exit.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reloads_when_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    std::fs::write(&file, config(&["alpha"])).unwrap();
    let mut c = cmd(dir.path());
    c.args(["api", "--watch", "--config"]).arg(&file);
    let gw = Proc::spawn(c);
    assert_eq!(status(&gw.url, "gamma").await, 404);

    std::fs::write(&file, config(&["alpha", "gamma"])).unwrap();
    wait_for_count(&gw, "config reloaded", 1);
    assert_eq!(status(&gw.url, "gamma").await, 200);
    assert_eq!(status(&gw.url, "alpha").await, 200);
    let logs = gw.output.lock().unwrap().clone();
    assert!(logs.contains("the config file changed"), "{logs}");

    gw.signal("-TERM");
    let (exit, _) = gw.wait();
    assert!(exit.success());
}
