//! The real `liter-llm` binary at shutdown, against clients that hold connections open
//! without sending a whole request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{cmd, Proc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MASTER: &str = "sk-cli-master-shutdown";

/// Header and request timeouts far longer than the test's bound, so that only the
/// shutdown itself can close the half-sent request (the drain limit would be 35 s).
const CONFIG: &str = r#"
[server]
host = "127.0.0.1"
port = 0
header_timeout_secs = 120
request_timeout_secs = 30

[general]
master_key = "${TEST_MASTER}"

[[models]]
name = "echo"
provider_model = "mock/echo"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_a_half_sent_request_and_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, CONFIG).unwrap();
    let mut c = cmd(dir.path());
    c.args(["api", "--config"])
        .arg(&file)
        .env("TEST_MASTER", MASTER);
    let mut gw = Proc::spawn(c);
    let addr = gw.url.trim_start_matches("http://").to_string();

    let mut half = TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthoriz")
        .await
        .unwrap();
    // A request on a later connection: once it is answered, the gateway has accepted
    // the half-sent one (connections are accepted in order).
    let health = reqwest::Client::new()
        .get(format!("{}/health", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let start = Instant::now();
    gw.signal("-TERM");
    let status = loop {
        if let Some(status) = gw.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM:\n{}",
            gw.output.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (_, logs) = gw.wait();
    assert!(status.success(), "exit status {status}:\n{logs}");
    assert!(logs.contains("stopped"), "{logs}");
    // and the half-sent request's connection was closed without an answer
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), half.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
}
