//! The trace exporter over TLS: the real binary sends its spans to an `https://` OTLP
//! endpoint (a TLS receiver in this test, with a certificate of the test CA in
//! `fixtures/tls/`) when the CA is trusted (`SSL_CERT_FILE`), and refuses the same
//! receiver when it is not (the span is dropped and counted).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{cmd, Proc};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
const MASTER: &str = "sk-tls-master";

/// A TLS receiver on port 0 that answers every request 200 and counts the trace
/// exports (`POST /v1/traces`) it read whole.
async fn receiver() -> (u16, Arc<AtomicUsize>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = CertificateDer::pem_file_iter(format!("{FIXTURES}/server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(format!("{FIXTURES}/server.key")).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let exports = Arc::new(AtomicUsize::new(0));
    let counted = exports.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, counted) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                // A client that does not trust the CA fails the handshake here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                while let Some(path) = read_request(&mut tls).await {
                    if path == "/v1/traces" {
                        counted.fetch_add(1, Ordering::SeqCst);
                    }
                    let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if tls.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, exports)
}

/// Reads one HTTP/1.1 request (head and `content-length` body); its path.
async fn read_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).await.ok()?;
    head.split_whitespace().nth(1).map(str::to_owned)
}

/// The gateway, tracing to `https://127.0.0.1:{port}`, trusting the test CA or not.
fn gateway(dir: &std::path::Path, port: u16, trust: bool) -> Proc {
    let config = dir.join("gw.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhost = \"127.0.0.1\"\nport = 0\n[general]\nmaster_key = \"{MASTER}\"\n\
             enable_tracing = true\n[[models]]\nname = \"echo\"\nprovider_model = \"mock/echo\"\n"
        ),
    )
    .unwrap();
    let mut c = cmd(dir);
    c.args(["api", "--config"])
        .arg(&config)
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("https://127.0.0.1:{port}"),
        )
        .env_remove("SSL_CERT_DIR");
    if trust {
        c.env("SSL_CERT_FILE", format!("{FIXTURES}/ca.pem"));
    } else {
        // A bundle without the test CA.
        c.env("SSL_CERT_FILE", format!("{FIXTURES}/server.pem"));
    }
    Proc::spawn(c)
}

/// One chat request, then `/metrics` polled until the span is exported or dropped:
/// (exported, dropped).
async fn one_span(gw: &Proc) -> (u64, u64) {
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER)
        .json(
            &serde_json::json!({"model": "echo", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let read = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    for _ in 0..600 {
        let text = client
            .get(format!("{}/metrics", gw.url))
            .bearer_auth(MASTER)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let counts = (
            read(&text, "liter_llm_trace_spans_exported_total "),
            read(&text, "liter_llm_trace_spans_dropped_total "),
        );
        if counts != (0, 0) {
            return counts;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the span was neither exported nor dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_go_to_an_https_collector_whose_certificate_is_trusted_and_never_to_one_that_is_not()
{
    let (port, exports) = receiver().await;
    let dir = tempfile::tempdir().unwrap();

    let trusted = gateway(dir.path(), port, true);
    assert_eq!(one_span(&trusted).await, (1, 0));
    assert_eq!(exports.load(Ordering::SeqCst), 1);
    drop(trusted);

    let untrusted = gateway(dir.path(), port, false);
    assert_eq!(one_span(&untrusted).await, (0, 1));
    assert_eq!(
        exports.load(Ordering::SeqCst),
        1,
        "sent to an untrusted certificate"
    );
}
