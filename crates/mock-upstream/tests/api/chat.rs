//! Non-streaming chat completions, models, and request validation.

use http::{Method, StatusCode};
use mock_upstream::MockUpstream;
use serde_json::{json, Value};

use crate::support::{call, chat, post_json, post_raw};

#[tokio::test]
async fn echoes_last_user_message_with_word_usage() {
    let mock = MockUpstream::start().await.unwrap();
    let body = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello there"},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": "how are you"}
        ]
    });
    let (status, headers, reply) = post_json(&mock, "/v1/chat/completions", &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert!(reply["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
    assert_eq!(reply["object"], "chat.completion");
    assert!(reply["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(reply["model"], "gpt-4o-mini");
    assert_eq!(reply["system_fingerprint"], "fp_mock");
    assert_eq!(
        reply["choices"],
        json!([{
            "index": 0,
            "message": {"role": "assistant", "content": "echo: how are you", "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }])
    );
    // Prompt: 2 + 2 + 1 + 3 words; completion: "echo:", "how", "are", "you".
    assert_eq!(
        reply["usage"],
        json!({"prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12})
    );
}

#[tokio::test]
async fn content_parts_and_path_without_v1() {
    let mock = MockUpstream::start().await.unwrap();
    let body = json!({
        "model": "m",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "look at "},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "text", "text": "this"}
        ]}]
    });
    let (status, _, reply) = post_json(&mock, "/chat/completions", &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "echo: look at this"
    );
    assert_eq!(reply["usage"]["prompt_tokens"], 3);
}

#[tokio::test]
async fn ids_differ_and_prompt_is_at_least_one_token() {
    let mock = MockUpstream::start().await.unwrap();
    let (_, _, a) = post_json(&mock, "/v1/chat/completions", &chat("m", "")).await;
    let (_, _, b) = post_json(&mock, "/v1/chat/completions", &chat("m", "")).await;
    assert_ne!(a["id"], b["id"]);
    assert_eq!(a["choices"][0]["message"]["content"], "echo: ");
    assert_eq!(a["usage"]["prompt_tokens"], 1);
    assert_eq!(a["usage"]["completion_tokens"], 1);
}

#[tokio::test]
async fn max_tokens_truncates_with_finish_reason_length() {
    let mock = MockUpstream::start().await.unwrap();
    for key in ["max_tokens", "max_completion_tokens"] {
        let mut body = chat("m", "one two three four");
        body[key] = json!(3);
        let (_, _, reply) = post_json(&mock, "/v1/chat/completions", &body).await;
        let choice = &reply["choices"][0];
        assert_eq!(choice["message"]["content"], "echo: one two", "{key}");
        assert_eq!(choice["finish_reason"], "length", "{key}");
        assert_eq!(reply["usage"]["completion_tokens"], 3, "{key}");
    }
    // A limit at or above the reply length changes nothing.
    let mut body = chat("m", "one two");
    body["max_tokens"] = json!(3);
    let (_, _, reply) = post_json(&mock, "/v1/chat/completions", &body).await;
    assert_eq!(reply["choices"][0]["message"]["content"], "echo: one two");
    assert_eq!(reply["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn invalid_json_and_missing_model_are_400() {
    let mock = MockUpstream::start().await.unwrap();
    let (status, reply) = post_raw(&mock, "/v1/chat/completions", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reply["error"]["type"], "invalid_request_error");
    assert!(reply["error"]["message"].as_str().unwrap().contains("JSON"));
    assert_eq!(reply["error"]["param"], Value::Null);

    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let (status, _, reply) = post_json(&mock, "/v1/chat/completions", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reply["error"]["type"], "invalid_request_error");
    assert!(reply["error"]["message"]
        .as_str()
        .unwrap()
        .contains("model"));

    let (status, _, reply) = post_json(&mock, "/v1/embeddings", &json!({"input": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reply["error"]["type"], "invalid_request_error");

    // Nothing here was a successful answer.
    assert_eq!(mock.served(), Default::default());
}

#[tokio::test]
async fn anthropics_controls_are_unrecognized_arguments() {
    let mock = MockUpstream::start().await.unwrap();
    for field in ["thinking", "output_config", "context_management"] {
        let mut body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
        body[field] = json!({"type": "adaptive"});
        for path in [
            "/v1/chat/completions",
            "/openai/deployments/d/chat/completions?api-version=2024-10-21",
        ] {
            let (status, _, reply) = post_json(&mock, path, &body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {field}");
            assert_eq!(
                reply,
                json!({"error": {
                    "message": format!("Unrecognized request argument supplied: {field}"),
                    "type": "invalid_request_error", "param": field, "code": null}}),
                "{path}"
            );
        }
    }
    // OpenAI's own reasoning control is known.
    let body = json!({"model": "o3", "reasoning_effort": "high",
        "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, _) = post_json(&mock, "/v1/chat/completions", &body).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn models_list_retrieve_and_unknown_route() {
    let mock = MockUpstream::start().await.unwrap();
    let (status, reply) = call(&mock, Method::GET, "/v1/models").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        reply,
        json!({"object": "list", "data": [
            {"id": "mock-model", "object": "model", "created": 0, "owned_by": "mock"}
        ]})
    );
    let (status, reply) = call(&mock, Method::GET, "/v1/models/gpt-4o").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["id"], "gpt-4o");

    let (status, reply) = call(&mock, Method::GET, "/v1/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(reply["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn calls_the_first_tool_when_the_last_user_turn_asks_even_with_a_system_turn_after_it() {
    let mock = MockUpstream::start().await.unwrap();
    let tools = json!([{"type": "function", "function": {"name": "Bash", "parameters": {"type": "object"}}}]);
    for trailing in [
        json!([]),
        json!([{"role": "system", "content": "a reminder"}]),
    ] {
        let mut messages = vec![json!({"role": "user", "content": "please call tool now"})];
        messages.extend(trailing.as_array().unwrap().iter().cloned());
        let body = json!({"model": "m", "tools": tools, "messages": messages});
        let (status, _, reply) = post_json(&mock, "/v1/chat/completions", &body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(reply["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            reply["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "Bash"
        );
    }
}
