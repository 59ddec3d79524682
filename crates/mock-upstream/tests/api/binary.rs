//! The `mock-upstream` binary: prints its address, serves, honours `--require-api-key`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

/// Kills the child when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: &str, path: &str, auth: Option<&str>) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    let auth = auth
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn binary_prints_address_and_serves() {
    let child = Command::new(env!("CARGO_BIN_EXE_mock-upstream"))
        .args([
            "--port",
            "0",
            "--no-record",
            "--threads",
            "1",
            "--require-api-key",
            "k",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = Running(child);
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim_end()
        .strip_prefix("mock-upstream listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    let ok = get(&addr, "/v1/models", Some("k"));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("\"mock-model\""), "{ok}");
    let denied = get(&addr, "/v1/models", None);
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    let recorded = get(&addr, "/__mock/requests", None);
    assert!(
        recorded.ends_with("[]"),
        "--no-record still recorded: {recorded}"
    );
}
