//! The edge under hostile clients: connections that send nothing, half a head, a body
//! that stalls or announces more than the limit, idle keep-alive connections, more
//! connections than `max_connections`, and bodies that are not UTF-8. Raw cases use
//! real sockets; the time limits are real (1 or 2 s), each checked against a generous
//! bound so a failure shows as a clear assertion, not a hang.

use std::time::{Duration, Instant};

use bytes::Bytes;
use mock_upstream::{Fault, MockUpstream};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// How long a test waits for something that should happen within a few seconds.
const BOUND: Duration = Duration::from_secs(10);

async fn gateway(server: &str) -> (MockUpstream, Gateway) {
    setup(&format!("[server]\n{server}")).await
}

async fn connect(gw: &Gateway) -> TcpStream {
    TcpStream::connect(gw.url.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Read until the gateway closes the connection (EOF or reset); what it sent and how
/// long that took. Panics if it is still open after `BOUND`.
async fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(BOUND, stream.read(&mut buf)).await {
            Err(_) => panic!("the connection was still open after {BOUND:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, start.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// The connection closed no earlier than `low` and before `high`.
fn assert_within(took: Duration, low: Duration, high: Duration) {
    assert!(took >= low, "closed too early: {took:?}");
    assert!(took < high, "closed too late: {took:?}");
}

/// One HTTP/1.1 response read off a raw stream: status and body.
async fn read_response(stream: &mut TcpStream) -> (u16, Vec<u8>) {
    let read = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before a response: {got:?}");
            got.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8(got[..end].to_vec()).unwrap();
        let status: u16 = head[9..12].parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while got.len() < end + length {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed in the middle of a response");
            got.extend_from_slice(&buf[..n]);
        }
        (status, got[end..end + length].to_vec())
    };
    tokio::time::timeout(BOUND, read)
        .await
        .unwrap_or_else(|_| panic!("no response within {BOUND:?}"))
}

fn error_code(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap();
    assert!(
        v["error"]["message"].is_string(),
        "not an OpenAI error: {v}"
    );
    v["error"]["code"].clone()
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_header_timeout() {
    let (_mock, gw) = gateway("header_timeout_secs = 1").await;
    let mut conn = connect(&gw).await;
    let (got, took) = read_until_closed(&mut conn).await;
    assert!(got.is_empty());
    assert_within(took, Duration::from_millis(900), Duration::from_secs(4));
}

#[tokio::test]
async fn half_a_request_head_is_closed_after_header_timeout() {
    let (_mock, gw) = gateway("header_timeout_secs = 1").await;
    let mut conn = connect(&gw).await;
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: gateway\r\nX-Half: ")
        .await
        .unwrap();
    let (got, took) = read_until_closed(&mut conn).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert_within(took, Duration::from_millis(900), Duration::from_secs(4));
}

#[tokio::test]
async fn a_head_whose_first_byte_comes_alone_is_answered() {
    // a lone "P" may still begin HTTP/2's preface: the connection is then told apart by
    // reading its first bytes, and served as any other
    let (_mock, gw) = gateway("header_timeout_secs = 5").await;
    let mut conn = connect(&gw).await;
    conn.write_all(b"P").await.unwrap();
    // nothing tells the test that the gateway has looked at the lone byte; a moment
    // makes it likely (the request must be answered either way)
    tokio::time::sleep(Duration::from_millis(100)).await;
    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
    let rest = format!(
        "OST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {MASTER}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(rest.as_bytes()).await.unwrap();
    let (status, got) = read_response(&mut conn).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&got));
    // and the connection is kept alive for the next request
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut conn).await.0, 200);
}

#[tokio::test]
async fn a_body_that_stops_gets_408_after_body_timeout() {
    let (mock, gw) = gateway("body_timeout_secs = 1\nheader_timeout_secs = 5").await;
    let mut conn = connect(&gw).await;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {MASTER}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"model\":\"gpt-4o\","
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let start = Instant::now();
    let (status, body) = read_response(&mut conn).await;
    let took = start.elapsed();
    assert_eq!(status, 408, "{}", String::from_utf8_lossy(&body));
    assert_eq!(error_code(&body), "request_timeout");
    assert!(took >= Duration::from_millis(900), "too early: {took:?}");
    assert!(took < Duration::from_secs(4), "too late: {took:?}");
    // the rest of the body can never come: the connection is closed
    read_until_closed(&mut conn).await;
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn an_http2_body_that_never_ends_gets_408() {
    use futures_util::StreamExt;
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let (mock, gw) = gateway("body_timeout_secs = 1").await;
    let io = TokioIo::new(connect(&gw).await);
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    // one frame, then nothing, and the stream is never ended
    let first = Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b"{\"model\":")));
    let frames = futures_util::stream::iter([first]).chain(futures_util::stream::pending());
    let req = hyper::Request::post(format!("{}/v1/chat/completions", gw.url))
        .header("authorization", format!("Bearer {MASTER}"))
        .header("content-type", "application/json")
        .body(StreamBody::new(frames))
        .unwrap();
    let start = Instant::now();
    let resp = tokio::time::timeout(BOUND, send.send_request(req))
        .await
        .expect("no answer to a stalled HTTP/2 body")
        .unwrap();
    let took = start.elapsed();
    assert_eq!(resp.status(), 408);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(error_code(&body), "request_timeout");
    assert!(took >= Duration::from_millis(900), "too early: {took:?}");
    assert!(took < Duration::from_secs(4), "too late: {took:?}");
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_keepalive_timeout() {
    // keep-alive (2 s) is longer than the header timeout (1 s): the idle wait between
    // requests is governed by the former
    let (_mock, gw) = gateway("header_timeout_secs = 1\nkeepalive_timeout_secs = 2").await;
    let mut conn = connect(&gw).await;
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await
        .unwrap();
    let (status, _) = read_response(&mut conn).await;
    assert_eq!(status, 200);
    let (got, took) = read_until_closed(&mut conn).await;
    assert!(got.is_empty());
    assert_within(took, Duration::from_millis(1800), Duration::from_secs(5));
}

#[tokio::test]
async fn connections_past_max_connections_wait_until_one_closes() {
    let (_mock, gw) = gateway("max_connections = 2\nheader_timeout_secs = 30").await;
    let first = connect(&gw).await;
    let _second = connect(&gw).await;
    let url = format!("{}/health", gw.url);
    let mut third = tokio::spawn(async move { client().get(url).send().await });
    assert!(
        tokio::time::timeout(Duration::from_secs(1), &mut third)
            .await
            .is_err(),
        "a third connection was served while two were open"
    );
    drop(first);
    let resp = tokio::time::timeout(BOUND, third)
        .await
        .expect("the waiting connection was not served once a slot was free")
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_content_length_over_the_limit_is_413_before_any_body() {
    let (mock, gw) = gateway("body_limit_bytes = 1000").await;
    let mut conn = connect(&gw).await;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {MASTER}\r\n\
         Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let start = Instant::now();
    let (status, body) = read_response(&mut conn).await;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    assert_eq!(error_code(&body), "request_too_large");
    // not the body timeout (30 s by default): at once
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn a_body_that_is_not_utf8_is_400_and_never_forwarded() {
    let (mock, gw) = setup("").await;
    let cases: [(&str, &[u8]); 3] = [
        (
            "/v1/chat/completions",
            b"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"caf\xe9\"}]}",
        ),
        (
            "/v1/embeddings",
            b"{\"model\":\"gpt-4o\",\"input\":\"\xff\xfe\"}",
        ),
        ("/key/generate", b"{\"key_alias\":\"team \xc3\x28\"}"),
    ];
    for (path, body) in cases {
        let resp = client()
            .post(format!("{}{path}", gw.url))
            .bearer_auth(MASTER)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let err = expect_error(resp, 400).await;
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains("not valid UTF-8"), "{path}: {message}");
    }
    assert!(mock.requests().is_empty(), "{:?}", mock.requests());
}

#[tokio::test]
async fn requests_and_streams_longer_than_the_idle_limits_are_not_cut() {
    // every connection limit is 1 s; the answers take longer, which only the request's
    // own limit (3 s) bounds
    let (mock, gw) = gateway(
        "header_timeout_secs = 1\nkeepalive_timeout_secs = 1\nbody_timeout_secs = 1\n\
         request_timeout_secs = 3",
    )
    .await;
    mock.push_fault(Fault::delay_ms(1600));
    let resp = gw.chat(MASTER, hello("gpt-4o")).await;
    assert_eq!(resp.status(), 200);
    // a stream that sends one chunk and then stalls until the request's deadline
    mock.push_fault(Fault::stall_stream(1));
    let start = Instant::now();
    let resp = gw
        .chat(
            MASTER,
            json!({"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"a b c"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("the stream was cut");
    assert!(start.elapsed() >= Duration::from_millis(2500));
    let last = sse_data(&text).pop().unwrap();
    assert!(last.contains("timeout"), "{text}");
}

#[tokio::test]
async fn half_a_head_after_a_kept_alive_request_is_closed_after_header_timeout() {
    // once the next head has begun, it has header_timeout (1 s), not keep-alive (5 s)
    let (_mock, gw) = gateway("header_timeout_secs = 1\nkeepalive_timeout_secs = 5").await;
    let mut conn = connect(&gw).await;
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut conn).await.0, 200);
    conn.write_all(b"GET /health HTTP/1.1\r\nHo").await.unwrap();
    let (got, took) = read_until_closed(&mut conn).await;
    assert!(got.is_empty());
    assert_within(took, Duration::from_millis(900), Duration::from_secs(4));
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_keepalive_timeout() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let (_mock, gw) = gateway("header_timeout_secs = 1\nkeepalive_timeout_secs = 2").await;
    let io = TokioIo::new(connect(&gw).await);
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(format!("{}/health", gw.url))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    drop(resp);
    let start = Instant::now();
    tokio::time::timeout(BOUND, conn)
        .await
        .expect("the idle HTTP/2 connection was still open")
        .unwrap()
        .ok();
    let took = start.elapsed();
    assert_within(took, Duration::from_millis(1800), Duration::from_secs(5));
}
