//! Streamed chat completions: the SSE chunk sequence with and without the usage chunk.

use http::{Method, StatusCode};
use mock_upstream::MockUpstream;
use serde_json::{json, Value};

use crate::support::{chat, post_json, read_until_error, send, sse_data};

/// Streams `body` and returns the parsed chunks (without the final `[DONE]`, which is asserted).
async fn stream(mock: &MockUpstream, body: &Value) -> Vec<Value> {
    let response = send(mock, Method::POST, "/v1/chat/completions", &[], Some(body))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert!(response.headers().get("content-length").is_none());
    let (bytes, error) = read_until_error(response).await;
    assert!(error.is_none(), "{error:?}");
    let mut events = sse_data(&bytes);
    assert_eq!(events.pop().as_deref(), Some("[DONE]"));
    events
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

fn content_of(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

#[tokio::test]
async fn chunk_sequence_without_usage() {
    let mock = MockUpstream::start().await.unwrap();
    let mut body = chat("m", "how  are you");
    body["stream"] = json!(true);
    let chunks = stream(&mock, &body).await;

    // role chunk + one per word ("echo:", "how", "are", "you") + finish chunk
    assert_eq!(chunks.len(), 6);
    let id = &chunks[0]["id"];
    assert!(id.as_str().unwrap().starts_with("chatcmpl-mock-"));
    for chunk in &chunks {
        assert_eq!(&chunk["id"], id);
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "m");
        assert!(chunk.get("usage").is_none(), "{chunk}");
    }
    assert_eq!(
        chunks[0]["choices"],
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""},
                "logprobs": null, "finish_reason": null}])
    );
    let pieces: Vec<&str> = chunks[1..5]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(pieces, ["echo: ", "how  ", "are ", "you"]);
    assert_eq!(
        chunks[5]["choices"],
        json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"}])
    );

    // Reassembled content equals the non-streamed answer.
    body["stream"] = json!(false);
    let (_, _, whole) = post_json(&mock, "/v1/chat/completions", &body).await;
    assert_eq!(
        content_of(&chunks),
        whole["choices"][0]["message"]["content"]
    );
}

#[tokio::test]
async fn usage_chunk_when_requested() {
    let mock = MockUpstream::start().await.unwrap();
    let mut body = chat("m", "a b");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let chunks = stream(&mock, &body).await;

    // role + 3 words + finish + usage
    assert_eq!(chunks.len(), 6);
    for chunk in &chunks[..5] {
        assert_eq!(chunk["usage"], Value::Null, "{chunk}");
        assert!(chunk.get("usage").is_some());
    }
    let last = &chunks[5];
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5})
    );
    assert_eq!(content_of(&chunks), "echo: a b");
    assert_eq!(mock.served().completion_tokens, 3);
}

#[tokio::test]
async fn streamed_truncation_ends_with_length() {
    let mock = MockUpstream::start().await.unwrap();
    let mut body = chat("m", "one two three");
    body["stream"] = json!(true);
    body["max_tokens"] = json!(2);
    let chunks = stream(&mock, &body).await;
    assert_eq!(content_of(&chunks), "echo: one");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_streams_and_cuts() {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let mock = MockUpstream::start().await.unwrap();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let mut body = chat("m", "a b c");
    body["stream"] = json!(true);
    let request = || {
        http::Request::post(format!("{}/chat/completions", mock.base_url()))
            .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())))
            .unwrap()
    };

    let response = client.request(request()).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    let (bytes, error) = read_until_error(response).await;
    assert!(error.is_none());
    assert_eq!(sse_data(&bytes).last().map(String::as_str), Some("[DONE]"));

    mock.push_fault(mock_upstream::Fault::cut_stream(3));
    let response = client.request(request()).await.unwrap();
    let (bytes, error) = read_until_error(response).await;
    assert_eq!(sse_data(&bytes).len(), 3);
    assert!(error.is_some());

    mock.push_fault(mock_upstream::Fault::drop_connection());
    assert!(client.request(request()).await.is_err());
}
