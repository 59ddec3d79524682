//! Documented behaviour of the binary, end to end: the shutdown drain's time limit and
//! its exit code, `--log-format json` and `LITER_LLM_LOG_FORMAT`, and the request line
//! of a stream the client left (`stream_completed=false`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{cmd, Proc};
use futures_util::StreamExt;
use mock_upstream::{Fault, MockUpstream};
use serde_json::{json, Value};

const MASTER: &str = "sk-promises-master-4e2a";

fn config(mock: &MockUpstream, server: &str) -> String {
    format!(
        "[server]\nhost = \"127.0.0.1\"\nport = 0\n{server}\n[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\n[[models]]\nname = \"m\"\nprovider_model = \"openai/house-model\"\nbase_url = \"{}\"\n",
        mock.base_url()
    )
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let file = dir.path().join("liter-llm-proxy.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// A request whose body never finishes. Its head asks `Expect: 100-continue`, so the
/// gateway's `100 Continue` tells that the request is in its handler, reading the body;
/// then one byte of body goes out every 200 ms (well inside the body's idle timeout)
/// for as long as the connection lives.
fn endless_upload(url: &str) -> std::thread::JoinHandle<()> {
    use std::io::Read;
    let addr = url.strip_prefix("http://").unwrap().to_string();
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {MASTER}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\nexpect: 100-continue\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "closed before 100 Continue");
        seen.extend_from_slice(&buf[..n]);
    }
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.starts_with("HTTP/1.1 100 Continue"), "{seen}");
    std::thread::spawn(move || {
        let _ = conn.write_all(b"{");
        while conn.write_all(b" ").is_ok() {
            std::thread::sleep(Duration::from_millis(200));
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_stops_at_its_time_limit_with_exit_code_1() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The drain limit is request_timeout_secs + 5 s = 6 s.
    let file = write_config(&dir, &config(&mock, "request_timeout_secs = 1"));
    let mut c = cmd(dir.path());
    c.args(["api", "--config"]).arg(&file);
    let gw = Proc::spawn(c);
    let url = gw.url.clone();
    let uploader = tokio::task::spawn_blocking(move || endless_upload(&url))
        .await
        .unwrap();

    gw.signal("-TERM");
    let signalled = Instant::now();
    let (status, logs) = tokio::task::spawn_blocking(move || gw.wait())
        .await
        .unwrap();
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(
        logs.contains("stopped by the drain time limit before every in-flight request finished"),
        "{logs}"
    );
    assert!(
        took >= Duration::from_secs(6) && took < Duration::from_secs(30),
        "stopped {took:?} after the signal"
    );
    uploader.join().unwrap();
}

/// Runs the gateway with these extra arguments and environment, sends one whole
/// request and one stream that the client leaves after its first chunk, stops it with
/// SIGTERM and returns its output and the two request ids.
async fn run_and_log(args: &[&str], env: &[(&str, &str)]) -> (String, String, String) {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(&dir, &config(&mock, ""));
    let mut c = cmd(dir.path());
    c.env_remove("LITER_LLM_LOG_FORMAT")
        .args(["api", "--config"])
        .arg(&file)
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let gw = Proc::spawn(c);
    let client = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", gw.url);
    let whole = client
        .post(&url)
        .bearer_auth(MASTER)
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    let whole_id = whole.headers()["x-request-id"].to_str().unwrap().to_owned();
    whole.bytes().await.unwrap();

    // The upstream holds the rest of the stream; the client reads one chunk and leaves.
    mock.push_fault(Fault::hold_stream(1));
    let streamed = client
        .post(&url)
        .bearer_auth(MASTER)
        .json(&json!({"model": "m", "stream": true,
            "messages": [{"role": "user", "content": "a b c"}]}))
        .send()
        .await
        .unwrap();
    let stream_id = streamed.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut body = streamed.bytes_stream();
    assert!(body.next().await.unwrap().unwrap().starts_with(b"data: "));
    drop(body);
    // Its line is written when the gateway notices; the drain waits for it anyway.
    let gw = tokio::task::spawn_blocking(move || {
        gw.wait_for_output(&stream_id);
        (gw, stream_id)
    })
    .await
    .unwrap();
    let (gw, stream_id) = gw;
    gw.signal("-TERM");
    let (status, logs) = tokio::task::spawn_blocking(move || gw.wait())
        .await
        .unwrap();
    assert!(status.success(), "{logs}");
    mock.release(1);
    (logs, whole_id, stream_id)
}

/// The JSON request line of `id`, every line of `logs` being JSON.
fn json_line(logs: &str, id: &str) -> Value {
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| !l.starts_with("liter-llm listening"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    lines
        .into_iter()
        .find(|l| l["request_id"] == id)
        .unwrap_or_else(|| panic!("no line for {id}:\n{logs}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_from_the_flag_or_the_variable() {
    for (args, env) in [
        (&["--log-format", "json"][..], &[][..]),
        (&[][..], &[("LITER_LLM_LOG_FORMAT", "json")][..]),
    ] {
        let (logs, whole, stream) = run_and_log(args, env).await;
        let line = json_line(&logs, &whole);
        assert_eq!(line["message"], "request", "{line}");
        assert_eq!(line["status"], 200, "{line}");
        assert_eq!(line["model"], "m", "{line}");
        assert!(line["latency_ms"].is_number(), "{line}");
        let line = json_line(&logs, &stream);
        assert_eq!(line["stream_completed"], false, "{line}");
        assert!(!logs.contains(MASTER));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flag_wins_over_the_variable_and_text_logs_mark_a_left_stream() {
    let (logs, whole, stream) = run_and_log(
        &["--log-format", "text"],
        &[("LITER_LLM_LOG_FORMAT", "json")],
    )
    .await;
    let line = logs.lines().find(|l| l.contains(&whole)).unwrap();
    assert!(serde_json::from_str::<Value>(line).is_err(), "{line}");
    assert!(line.contains("status=200"), "{line}");
    let line = logs.lines().find(|l| l.contains(&stream)).unwrap();
    assert!(line.contains("stream_completed=false"), "{line}");
}

#[test]
fn a_bad_log_format_variable_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = cmd(dir.path())
        .arg("api")
        .env("LITER_LLM_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("xml"), "{err}");
}
