//! API-key checks, the `/__mock/` control API, recording switches, served totals and shutdown.

use std::time::Duration;

use http::{Method, StatusCode};
use mock_upstream::{Fault, MockOptions, MockUpstream, RecordedRequest, Served};
use serde_json::{json, Value};

use crate::support::{call, chat, json_body, post_json, send};

#[tokio::test]
async fn require_api_key_answers_openai_401() {
    let opts = MockOptions {
        require_api_key: Some("sk-good".into()),
        ..MockOptions::default()
    };
    let mock = MockUpstream::start_with(opts).await.unwrap();
    let body = chat("m", "hi");
    let path = "/v1/chat/completions";
    for headers in [vec![], vec![("authorization", "Bearer sk-bad")]] {
        let response = send(&mock, Method::POST, path, &headers, Some(&body))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            json_body(response).await,
            json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                             "param": null, "code": "invalid_api_key"}})
        );
    }
    let good = [("authorization", "Bearer sk-good")];
    let response = send(&mock, Method::POST, path, &good, Some(&body))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Rejected requests are recorded too; control requests need no key.
    assert_eq!(mock.requests().len(), 3);
    let (status, served) = call(&mock, Method::GET, "/__mock/served").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served["requests"], 1);
}

#[tokio::test]
async fn control_api_round_trip() {
    let mock = MockUpstream::start().await.unwrap();
    let faults = json!({"faults": [
        {"model": "a", "kind": {"type": "status", "status": 429, "retry_after_secs": 7}},
        {"times": null, "model": "b", "kind": {"type": "delay", "ms": 1}}
    ]});
    let (status, _, reply) = post_json(&mock, "/__mock/faults", &faults).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply, json!({"queued": 2}));
    assert_eq!(
        mock.faults()[0],
        Fault::status(429).retry_after(7).for_model("a")
    );
    let (_, listed) = call(&mock, Method::GET, "/__mock/faults").await;
    assert_eq!(listed.as_array().unwrap().len(), 2);

    let (status, headers, _) = post_json(&mock, "/v1/chat/completions", &chat("a", "hi")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "7");
    let (status, _, _) = post_json(&mock, "/v1/chat/completions", &chat("b", "x y")).await;
    assert_eq!(status, StatusCode::OK);

    let (status, recorded) = call(&mock, Method::GET, "/__mock/requests").await;
    assert_eq!(status, StatusCode::OK);
    let recorded: Vec<RecordedRequest> = serde_json::from_value(recorded).unwrap();
    assert_eq!(recorded.len(), 2, "control requests must not be recorded");
    assert_eq!(recorded[0].body.as_ref().unwrap()["model"], "a");
    assert_eq!(recorded[1].path, "/v1/chat/completions");

    let (_, served) = call(&mock, Method::GET, "/__mock/served").await;
    let served: Served = serde_json::from_value(served).unwrap();
    assert_eq!(
        served,
        Served {
            requests: 1,
            prompt_tokens: 2,
            completion_tokens: 3
        }
    );

    let (status, _) = call(&mock, Method::DELETE, "/__mock/requests").await;
    assert_eq!(status, StatusCode::OK);
    assert!(mock.requests().is_empty());
    let (status, _) = call(&mock, Method::DELETE, "/__mock/faults").await;
    assert_eq!(status, StatusCode::OK);
    assert!(mock.faults().is_empty());
}

#[tokio::test]
async fn control_api_rejects_bad_input_and_faults_never_hit_it() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_fault(Fault::drop_connection().forever());
    let bad = [
        json!({"faults": [{"kind": {"type": "explode"}}]}),
        json!({"faults": [{"kind": {"type": "status", "status": 42}}]}),
        json!({"nope": []}),
    ];
    for body in bad {
        let (status, _, reply) = post_json(&mock, "/__mock/faults", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(reply["error"].is_string());
    }
    let (status, reply) = call(&mock, Method::GET, "/__mock/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(reply["error"].is_string());
    assert_eq!(mock.faults().len(), 1);
}

#[tokio::test]
async fn served_totals_add_chat_and_embeddings() {
    let mock = MockUpstream::start().await.unwrap();
    post_json(&mock, "/v1/chat/completions", &chat("m", "one two three")).await; // P 3, C 4
    let mut streamed = chat("m", "x");
    streamed["stream"] = json!(true);
    let response = send(
        &mock,
        Method::POST,
        "/v1/chat/completions",
        &[],
        Some(&streamed),
    )
    .await
    .unwrap();
    crate::support::read_until_error(response).await; // P 1, C 2
    post_json(
        &mock,
        "/v1/embeddings",
        &json!({"model": "e", "input": ["a b", "c"]}),
    )
    .await; // P 3
    call(&mock, Method::GET, "/v1/models").await; // no usage
    assert_eq!(
        mock.served(),
        Served {
            requests: 3,
            prompt_tokens: 7,
            completion_tokens: 6
        }
    );
}

#[tokio::test]
async fn recording_off_records_nothing() {
    let opts = MockOptions {
        record_bodies: false,
        ..MockOptions::new()
    };
    let mock = MockUpstream::start_with(opts).await.unwrap();
    let (status, _, _) = post_json(&mock, "/v1/chat/completions", &chat("m", "hi")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(mock.requests().is_empty());
    assert_eq!(mock.served().requests, 1);
    assert!(mock.base_url().starts_with("http://127.0.0.1:"));
    assert!(mock.base_url().ends_with("/v1"));
    assert_ne!(mock.addr().port(), 0);
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let mock = MockUpstream::start().await.unwrap();
    let addr = mock.addr();
    mock.shutdown();
    let mut refused = false;
    for _ in 0..20 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(refused, "still accepting after shutdown");
}

#[tokio::test]
async fn non_json_bodies_are_recorded_without_body() {
    let mock = MockUpstream::start().await.unwrap();
    let (status, _) = crate::support::post_raw(&mock, "/v1/chat/completions", "plain text").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].body, None::<Value>);
}

#[tokio::test]
async fn the_otlp_collector_endpoint_takes_exports_and_counts_them() {
    let mock = MockUpstream::start().await.unwrap();
    let body = json!({"any": "bytes"});
    for _ in 0..2 {
        let response = send(
            &mock,
            Method::POST,
            "/__mock/otlp/v1/traces",
            &[],
            Some(&body),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    }
    let (status, got) = call(&mock, Method::GET, "/__mock/otlp").await;
    assert_eq!(status, StatusCode::OK);
    let sent = serde_json::to_vec(&body).unwrap().len();
    assert_eq!(got, json!({"exports": 2, "bytes": 2 * sent}));
    // Not a provider request: nothing recorded.
    assert!(mock.requests().is_empty());
}
