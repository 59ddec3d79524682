//! Helpers shared by the integration tests: a fresh HTTP client per test, request shortcuts and an
//! SSE splitter.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::TokioExecutor;
use mock_upstream::MockUpstream;
use serde_json::Value;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A client with its own connection pool, so no test reuses another's connections.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request to `mock` at `path` (relative to the host, e.g. `/v1/models`). The returned
/// future does not borrow `mock`.
pub fn send(
    mock: &MockUpstream,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> ResponseFuture {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", mock.addr()));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let bytes = match body {
        Some(json) => {
            builder = builder.header("content-type", "application/json");
            Bytes::from(serde_json::to_vec(json).unwrap())
        }
        None => Bytes::new(),
    };
    client().request(builder.body(Full::new(bytes)).unwrap())
}

/// Sends a raw body (not necessarily JSON) with `POST`.
pub async fn post_raw(mock: &MockUpstream, path: &str, body: &'static str) -> (StatusCode, Value) {
    let request = Request::post(format!("http://{}{path}", mock.addr()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let response = client().request(request).await.unwrap();
    let status = response.status();
    (status, json_body(response).await)
}

/// `POST path` with a JSON body; answers status, headers and the JSON reply.
pub async fn post_json(
    mock: &MockUpstream,
    path: &str,
    body: &Value,
) -> (StatusCode, HeaderMap, Value) {
    let response = send(mock, Method::POST, path, &[], Some(body))
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, json_body(response).await)
}

/// `method path` without a body; answers status and the JSON reply.
pub async fn call(mock: &MockUpstream, method: Method, path: &str) -> (StatusCode, Value) {
    let response = send(mock, method, path, &[], None).await.unwrap();
    let status = response.status();
    (status, json_body(response).await)
}

pub async fn json_body(response: Response<Incoming>) -> Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|err| panic!("not JSON ({err}): {}", String::from_utf8_lossy(&bytes)))
}

/// The data frames of a body up to its end or its first error.
pub async fn read_until_error(response: Response<Incoming>) -> (Vec<u8>, Option<hyper::Error>) {
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            Err(err) => return (bytes, Some(err)),
        }
    }
    (bytes, None)
}

/// The payloads of the `data:` events of an SSE body, in order.
pub fn sse_data(bytes: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(bytes).unwrap();
    text.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {event:?}"))
                .to_owned()
        })
        .collect()
}

/// A chat request for `model` with one user message.
pub fn chat(model: &str, text: &str) -> Value {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": text}]
    })
}
