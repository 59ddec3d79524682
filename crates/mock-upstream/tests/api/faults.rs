//! Every fault kind, model scoping, `times`, and recording of faulted requests.

use std::error::Error as _;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use http_body_util::BodyExt;
use mock_upstream::{Fault, FaultKind, MockUpstream};
use serde_json::json;

use crate::support::{chat, post_json, read_until_error, send, sse_data};

async fn chat_status(mock: &MockUpstream, model: &str) -> StatusCode {
    let (status, _, _) = post_json(mock, "/v1/chat/completions", &chat(model, "hi")).await;
    status
}

#[tokio::test]
async fn status_with_retry_after_then_normal() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::status(429).retry_after(2));
    let (status, headers, reply) = post_json(&mock, "/v1/chat/completions", &chat("m", "hi")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "2");
    let error = &reply["error"];
    assert!(
        error["message"].as_str().unwrap().contains("429"),
        "{error}"
    );
    assert!(error["type"].is_string());
    assert!(error.get("param").is_some() && error.get("code").is_some());

    assert_eq!(chat_status(&mock, "m").await, StatusCode::OK);
    assert_eq!(mock.requests().len(), 2);
    assert_eq!(mock.served().requests, 1);
}

#[tokio::test]
async fn status_with_custom_body() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::status(503).with_body(json!({"oops": true})));
    let (status, headers, reply) = post_json(
        &mock,
        "/v1/embeddings",
        &json!({"model": "m", "input": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.get("retry-after").is_none());
    assert_eq!(reply, json!({"oops": true}));
}

#[tokio::test]
async fn delay_then_normal_answer() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::delay_ms(60));
    let started = Instant::now();
    assert_eq!(chat_status(&mock, "m").await, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert_eq!(mock.served().requests, 1);
}

#[tokio::test]
async fn hang_outlasts_the_client_timeout() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::hang());
    let request = send(
        &mock,
        Method::POST,
        "/v1/chat/completions",
        &[],
        Some(&chat("m", "hi")),
    );
    let outcome = tokio::time::timeout(Duration::from_millis(100), request).await;
    assert!(outcome.is_err(), "the hung request was answered");
    // The fault was used once; the mock still answers others.
    assert_eq!(chat_status(&mock, "m").await, StatusCode::OK);
}

#[tokio::test]
async fn hung_request_fails_when_the_mock_stops() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::hang());
    let request = send(
        &mock,
        Method::POST,
        "/v1/chat/completions",
        &[],
        Some(&chat("m", "hi")),
    );
    let stopper = async {
        // Stop once the request reached the mock (bounded wait, asserted after).
        let deadline = Instant::now() + Duration::from_secs(10);
        while mock.requests().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(mock.requests().len(), 1, "the request never arrived");
        mock.shutdown();
    };
    let (outcome, ()) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(5), request),
        stopper
    );
    assert!(outcome.expect("still hanging after shutdown").is_err());
}

#[tokio::test]
async fn cut_stream_sends_n_events_then_a_body_error() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::cut_stream(2));
    let mut body = chat("m", "one two three four");
    body["stream"] = json!(true);
    let response = send(
        &mock,
        Method::POST,
        "/v1/chat/completions",
        &[],
        Some(&body),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (bytes, error) = read_until_error(response).await;
    let events = sse_data(&bytes);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[0].contains("\"role\":\"assistant\""));
    assert!(!events.iter().any(|e| e == "[DONE]"));
    assert!(error.is_some(), "the cut stream ended cleanly");
    // A cut answer is not counted as served; the next stream is whole.
    assert_eq!(mock.served().requests, 0);
    let response = send(
        &mock,
        Method::POST,
        "/v1/chat/completions",
        &[],
        Some(&body),
    )
    .await
    .unwrap();
    let (bytes, error) = read_until_error(response).await;
    assert!(error.is_none());
    assert_eq!(sse_data(&bytes).last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn cut_stream_at_zero_and_skipped_by_non_streaming_requests() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::cut_stream(0));
    assert_eq!(chat_status(&mock, "m").await, StatusCode::OK);
    assert_eq!(
        mock.faults().len(),
        1,
        "a non-streaming request used the cut"
    );

    let mut body = chat("m", "hi");
    body["stream"] = json!(true);
    let response = send(
        &mock,
        Method::POST,
        "/v1/chat/completions",
        &[],
        Some(&body),
    )
    .await
    .unwrap();
    let (bytes, error) = read_until_error(response).await;
    assert!(bytes.is_empty());
    assert!(error.is_some());
    assert!(mock.faults().is_empty());
}

#[tokio::test]
async fn drop_connection_is_a_connection_error() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::drop_connection());
    let outcome = send(
        &mock,
        Method::POST,
        "/v1/chat/completions",
        &[],
        Some(&chat("m", "hi")),
    )
    .await;
    let error = outcome.expect_err("a response arrived");
    let hyper_error = error
        .source()
        .and_then(|e| e.downcast_ref::<hyper::Error>())
        .unwrap_or_else(|| panic!("not a hyper error: {error:?}"));
    assert!(hyper_error.is_incomplete_message(), "{hyper_error:?}");
    assert_eq!(chat_status(&mock, "m").await, StatusCode::OK);
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn model_scoped_faults_and_times() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::status(500).for_model("a").times(2));
    mock.push_fault(Fault::status(502).for_model("b"));

    assert_eq!(chat_status(&mock, "c").await, StatusCode::OK);
    assert_eq!(chat_status(&mock, "b").await, StatusCode::BAD_GATEWAY);
    assert_eq!(chat_status(&mock, "b").await, StatusCode::OK);
    assert_eq!(
        chat_status(&mock, "a").await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(mock.faults()[0].times, Some(1));
    assert_eq!(
        chat_status(&mock, "a").await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(chat_status(&mock, "a").await, StatusCode::OK);
    assert!(mock.faults().is_empty());
    // A model-scoped fault never matches a request without a model.
    mock.push_fault(Fault::status(500).for_model("a"));
    let (status, _) = crate::support::call(&mock, Method::GET, "/v1/models").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn forever_until_cleared_and_fifo_order() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::status(503).forever());
    mock.push_fault(Fault::status(500));
    for _ in 0..3 {
        assert_eq!(
            chat_status(&mock, "m").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert_eq!(
        mock.faults()[0].kind,
        FaultKind::Status {
            status: 503,
            body: None,
            retry_after_secs: None
        }
    );
    mock.clear_faults();
    assert_eq!(chat_status(&mock, "m").await, StatusCode::OK);
}

#[tokio::test]
async fn faulted_requests_are_recorded_with_headers_and_body() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::status(500));
    let body = chat("m", "hi");
    let response = send(
        &mock,
        Method::POST,
        "/v1/chat/completions?api-version=1",
        &[("X-Custom", "yes")],
        Some(&body),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].method, "POST");
    assert_eq!(recorded[0].path, "/v1/chat/completions?api-version=1");
    assert_eq!(recorded[0].header("x-custom"), Some("yes"));
    assert_eq!(recorded[0].header("Content-Type"), Some("application/json"));
    assert!(recorded[0]
        .headers
        .iter()
        .all(|(n, _)| n == &n.to_lowercase()));
    assert_eq!(recorded[0].body.as_ref(), Some(&body));
    mock.clear_requests();
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn hold_answers_only_once_released() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::hold());
    let request = tokio::spawn(send(
        &mock,
        Method::POST,
        "/v1/chat/completions",
        &[],
        Some(&chat("m", "hi")),
    ));
    // Another request is answered meanwhile.
    assert_eq!(chat_status(&mock, "m").await, StatusCode::OK);
    assert!(!request.is_finished(), "the held request was answered");
    mock.release(1);
    let response = tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .expect("still held after the release")
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(mock.served().requests, 2);
}

#[tokio::test]
async fn a_release_before_the_request_is_kept_for_it() {
    let mock = MockUpstream::start().await.unwrap();
    mock.release(1);
    mock.push_fault(Fault::hold());
    let status = tokio::time::timeout(Duration::from_secs(10), chat_status(&mock, "m")).await;
    assert_eq!(status.expect("the early release was lost"), StatusCode::OK);
}

#[tokio::test]
async fn hold_stream_sends_n_events_then_the_rest_once_released() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::hold_stream(1));
    let mut body = chat("m", "one two three");
    body["stream"] = json!(true);
    let response = send(
        &mock,
        Method::POST,
        "/v1/chat/completions",
        &[],
        Some(&body),
    )
    .await
    .unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(sse_data(&first).len(), 1);
    let early = tokio::time::timeout(Duration::from_millis(100), body.frame()).await;
    assert!(early.is_err(), "more came before the release");
    // Over the control API, as other languages do it.
    let (status, _, reply) =
        crate::support::post_json(&mock, "/__mock/release", &json!({"count": 1})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply, json!({"released": 1}));
    let rest = body.collect().await.unwrap().to_bytes();
    let events = sse_data(&rest);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(
        mock.served().requests,
        1,
        "a held stream that ends is served"
    );
}
