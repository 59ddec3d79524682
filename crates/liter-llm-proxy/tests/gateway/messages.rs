//! Anthropic's Messages API at the front door (`/v1/messages`): forwarded as it came
//! to an Anthropic-format deployment, translated for an OpenAI-format one (whole,
//! streamed, tools, system, images), errors in Anthropic's shape, the ledger; the
//! thinking controls in [`controls`].

mod controls;

use futures_util::StreamExt;
use liter_llm_proxy::store::LedgerFilter;
use mock_upstream::{Fault, MockUpstream};
use serde_json::{json, Value};

use crate::governance::{gateway as priced_gateway, spend_store, Db};
use crate::support::*;

/// A gateway with "claude" on the mock's Anthropic API and "gpt" on its OpenAI API.
async fn both(mock: &MockUpstream, extra: &str) -> Gateway {
    pool(mock, "", extra).await
}

/// [`both`], with "gpt" as the fallback of "claude-sonnet-4-5".
async fn with_fallback(mock: &MockUpstream) -> Gateway {
    pool(mock, "fallbacks = [\"gpt\"]", "").await
}

/// [`both`], with `claude_extra` in the Anthropic model's entry.
async fn pool(mock: &MockUpstream, claude_extra: &str, extra: &str) -> Gateway {
    Gateway::start(&format!(
        r#"
[general]
master_key = "{MASTER}"
max_retries = 0
[[models]]
name = "claude-sonnet-4-5"
provider_model = "anthropic/claude-sonnet-4-20250514"
api_key = "{UPSTREAM_KEY}"
base_url = "http://{addr}"
{claude_extra}
[[models]]
name = "gpt"
provider_model = "openai/gpt-4o-2024-08-06"
api_key = "{UPSTREAM_KEY}"
base_url = "{base}"
{extra}
"#,
        addr = mock.addr(),
        base = mock.base_url(),
    ))
    .await
}

/// `POST /v1/messages` with `x-api-key` and the Anthropic headers.
async fn messages(gw: &Gateway, key: Option<&str>, body: &str) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}/v1/messages", gw.url))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .body(body.to_string());
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    req.send().await.unwrap()
}

/// The events of an Anthropic stream: (event name, data).
async fn events(resp: reqwest::Response) -> Vec<(String, Value)> {
    let mut text = String::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (name.to_string(), serde_json::from_str(data).unwrap())
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

/// An Anthropic error body of `kind`, with the given status.
async fn expect_anthropic_error(resp: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn an_anthropic_deployment_gets_the_clients_bytes_with_the_model_rewritten() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = both(&mock, "").await;
    // Fields the translation would drop or change: cache_control, thinking blocks in the
    // history, an Anthropic-only top-level field, key order and spacing.
    let body = r#"{"max_tokens": 64,"messages":[{"role":"user","content":[{"type":"text","text":"first","cache_control":{"type":"ephemeral"}}]},{"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"sig"},{"type":"text","text":"ok"}]},{"role":"user","content":"hello claude"}],"model":"claude-sonnet-4-5","context_management":{"edits":[]},"system":[{"type":"text","text":"be brief","cache_control":{"type":"ephemeral"}}]}"#;
    let resp = client()
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", MASTER)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "context-management-2025-06-27")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-liter-llm-deployment"],
        "anthropic/claude-sonnet-4-20250514"
    );
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["content"][0]["text"], "echo: hello claude");
    assert_eq!(answer["model"], "claude-sonnet-4-20250514");
    let req = &mock.requests()[0];
    assert_eq!(req.path, "/v1/messages");
    assert_eq!(req.header("x-api-key"), Some(UPSTREAM_KEY));
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        req.header("anthropic-beta"),
        Some("context-management-2025-06-27")
    );
    assert!(req.header("authorization").is_none());
    let mut expected: Value = serde_json::from_str(body).unwrap();
    expected["model"] = json!("claude-sonnet-4-20250514");
    assert_eq!(req.body.as_ref().unwrap(), &expected);
}

#[tokio::test]
async fn an_anthropic_stream_is_relayed_as_it_comes_and_metered() {
    let mock = MockUpstream::start().await.unwrap();
    let db = Db::sqlite();
    let gw = priced_gateway(
        &mock,
        &db,
        &format!(
            "[[models]]\nname = \"claude\"\nprovider_model = \"anthropic/claude-x\"\napi_key = \"{UPSTREAM_KEY}\"\nbase_url = \"http://{}\"\ninput_cost_per_token = 0.0\noutput_cost_per_token = 0.001\n[[keys]]\nkey = \"{VKEY}\"\nbudget_limit = 10.0\n",
            mock.addr()
        ),
    )
    .await;
    let body = json!({"model": "claude", "max_tokens": 50, "stream": true,
        "messages": [{"role": "user", "content": "one two three"}]});
    let resp = messages(&gw, Some(VKEY), &body.to_string()).await;
    assert_eq!(resp.status(), 200);
    let ev = events(resp).await;
    assert_eq!(
        names(&ev),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(
        ev[0].1["message"]["id"]
            .as_str()
            .map(|s| s.starts_with("msg_mock_")),
        Some(true)
    );
    gw.app.governor.settled().await;
    let rows = spend_store(&gw)
        .ledger(&LedgerFilter::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].model, "claude");
    // "echo: one two three" is four output tokens; the input the mock counted.
    assert_eq!(rows[0].completion_tokens, 4);
    assert_eq!(rows[0].prompt_tokens, 3);
}

#[tokio::test]
async fn an_openai_deployment_answers_in_anthropic_format() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = both(&mock, "").await;
    let body = json!({"model": "gpt", "max_tokens": 100, "stop_sequences": ["END"],
        "system": "be brief", "metadata": {"user_id": "u-1"},
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "describe this"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}]});
    let resp = messages(&gw, Some(MASTER), &body.to_string()).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["role"], "assistant");
    assert_eq!(
        answer["content"],
        json!([{"type": "text", "text": "echo: describe this"}])
    );
    assert_eq!(answer["stop_reason"], "end_turn");
    assert_eq!(answer["usage"]["output_tokens"], 3);
    assert_eq!(answer["usage"]["input_tokens"], 4);
    assert!(answer["id"].as_str().unwrap().starts_with("msg_"));

    let sent = mock.requests()[0].body.clone().unwrap();
    assert_eq!(mock.requests()[0].path, "/v1/chat/completions");
    assert_eq!(sent["model"], "gpt-4o-2024-08-06");
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );
    assert_eq!(
        sent["messages"][1]["content"][1]["image_url"]["url"],
        "data:image/png;base64,iVBORw0KGgo="
    );
    assert_eq!(
        sent["messages"][1]["content"][2]["image_url"]["url"],
        "https://example.com/a.png"
    );
    assert_eq!(sent["stop"], json!(["END"]));
    assert_eq!(sent["user"], "u-1");
    assert_eq!(sent["max_tokens"], 100);
}

#[tokio::test]
async fn an_openai_stream_becomes_anthropic_events() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = both(&mock, "").await;
    let body = json!({"model": "gpt", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "one two three"}]});
    let resp = messages(&gw, Some(MASTER), &body.to_string()).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let ev = events(resp).await;
    let n = names(&ev);
    assert_eq!(&n[..3], ["message_start", "ping", "content_block_start"]);
    assert_eq!(
        &n[n.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let text: String = ev
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "echo: one two three");
    let delta = &ev[n.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 4);
    assert_eq!(delta["usage"]["input_tokens"], 3);
}

#[tokio::test]
async fn a_tool_round_trip_on_an_openai_deployment() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = both(&mock, "").await;
    let tools = json!([{"name": "get_weather", "description": "the weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let first = json!({"model": "gpt", "max_tokens": 100, "tools": tools,
        "tool_choice": {"type": "auto"},
        "messages": [{"role": "user", "content": "please call tool"}]});
    let resp = messages(&gw, Some(MASTER), &first.to_string()).await;
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["stop_reason"], "tool_use", "{answer}");
    let call = &answer["content"][0];
    assert_eq!(call["type"], "tool_use");
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["input"], json!({}));
    let sent = mock.requests()[0].body.clone().unwrap();
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent["tools"][0]["function"]["parameters"]["type"], "object");
    assert_eq!(sent["tool_choice"], "auto");

    // The result goes back as a tool_result; the model echoes it.
    let second = json!({"model": "gpt", "max_tokens": 100, "tools": tools,
        "messages": [
            {"role": "user", "content": "please call tool"},
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"],
                "content": "sunny"}]}]});
    let resp = messages(&gw, Some(MASTER), &second.to_string()).await;
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["content"][0]["text"], "echo: sunny", "{answer}");
    assert_eq!(answer["stop_reason"], "end_turn");
    let sent = mock.requests()[1].body.clone().unwrap();
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], call["id"]);
    assert_eq!(
        sent["messages"][2],
        json!({"role": "tool", "tool_call_id": call["id"], "content": "sunny"})
    );

    // Streamed, the call is a tool_use block with its input as JSON deltas.
    let mut streamed = first.clone();
    streamed["stream"] = json!(true);
    let ev = events(messages(&gw, Some(MASTER), &streamed.to_string()).await).await;
    let start = ev.iter().find(|(n, _)| n == "content_block_start").unwrap();
    assert_eq!(start.1["content_block"]["type"], "tool_use");
    assert_eq!(start.1["content_block"]["name"], "get_weather");
    let json_deltas: String = ev
        .iter()
        .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
        .collect();
    assert_eq!(json_deltas, "{}");
    let delta = ev.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn the_gateways_errors_are_in_anthropic_shape() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = both(
        &mock,
        &format!("[[keys]]\nkey = \"{VKEY}\"\nrpm = 1\nmodels = [\"gpt\"]\n"),
    )
    .await;
    let hello = |model: &str| {
        json!({"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
            .to_string()
    };
    let body = expect_anthropic_error(
        messages(&gw, None, &hello("gpt")).await,
        401,
        "authentication_error",
    )
    .await;
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("x-api-key"));
    expect_anthropic_error(
        messages(&gw, Some("wrong-key"), &hello("gpt")).await,
        401,
        "authentication_error",
    )
    .await;
    // Authorization: Bearer works as well as x-api-key.
    let bearer = client()
        .post(format!("{}/v1/messages", gw.url))
        .bearer_auth(MASTER)
        .body(hello("gpt"))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    expect_anthropic_error(
        messages(&gw, Some(MASTER), &hello("nope")).await,
        404,
        "not_found_error",
    )
    .await;
    expect_anthropic_error(
        messages(&gw, Some(VKEY), &hello("claude-sonnet-4-5")).await,
        403,
        "permission_error",
    )
    .await;
    let no_max = json!({"model": "gpt", "messages": []}).to_string();
    let body = expect_anthropic_error(
        messages(&gw, Some(MASTER), &no_max).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_tokens"));
    // rpm = 1: the second request of the minute is refused.
    assert_eq!(messages(&gw, Some(VKEY), &hello("gpt")).await.status(), 200);
    let limited = messages(&gw, Some(VKEY), &hello("gpt")).await;
    assert!(limited.headers().contains_key("retry-after"));
    expect_anthropic_error(limited, 429, "rate_limit_error").await;
    // An upstream 500 (no retries): a 502 api_error.
    mock.push_fault(Fault::status(500));
    expect_anthropic_error(
        messages(&gw, Some(MASTER), &hello("gpt")).await,
        502,
        "api_error",
    )
    .await;
    // An Anthropic upstream's own overload keeps its type.
    mock.push_fault(Fault::status(529));
    expect_anthropic_error(
        messages(&gw, Some(MASTER), &hello("claude-sonnet-4-5")).await,
        503,
        "overloaded_error",
    )
    .await;
}

#[tokio::test]
async fn a_budget_refusal_is_a_billing_error_and_requests_are_ledgered() {
    let mock = MockUpstream::start().await.unwrap();
    let db = Db::sqlite();
    let gw = priced_gateway(
        &mock,
        &db,
        &format!("[[keys]]\nkey = \"{VKEY}\"\nbudget_limit = 0.05\n"),
    )
    .await;
    let ask = |max: u64| {
        json!({"model": "priced", "max_tokens": max, "messages": [{"role": "user", "content": "hello there"}]})
            .to_string()
    };
    let resp = messages(&gw, Some(VKEY), &ask(10)).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-liter-llm-response-cost"));
    // A reservation of 100 output tokens ($0.10) does not fit a $0.05 budget.
    let body = expect_anthropic_error(
        messages(&gw, Some(VKEY), &ask(100)).await,
        402,
        "billing_error",
    )
    .await;
    assert!(!body.to_string().contains(VKEY));
    gw.app.governor.settled().await;
    let rows = spend_store(&gw)
        .ledger(&LedgerFilter::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].model, "priced");
    assert_eq!(rows[0].completion_tokens, 3);
    assert!(rows[0]
        .key_id
        .as_deref()
        .is_some_and(|k| k.starts_with("cfg-")));
}

#[tokio::test]
async fn count_tokens_is_the_gateways_estimate() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = both(&mock, "").await;
    let count = |body: Value| {
        client()
            .post(format!("{}/v1/messages/count_tokens", gw.url))
            .header("x-api-key", MASTER)
            .json(&body)
            .send()
    };
    let short = count(json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hello world"}]}))
        .await
        .unwrap();
    assert_eq!(short.status(), 200);
    let short: Value = short.json().await.unwrap();
    // 3 primer tokens, 4 for the message, 2 for "hello world" (o200k_base).
    assert_eq!(short["input_tokens"], 9);
    let long: Value = count(
        json!({"model": "gpt", "system": "you are a careful assistant",
        "messages": [{"role": "user", "content": "hello world"}]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(long["input_tokens"].as_u64().unwrap() > 9, "{long}");
    assert!(mock.requests().is_empty(), "nothing goes upstream");
    let missing = count(json!({"model": "nope", "messages": []}))
        .await
        .unwrap();
    expect_anthropic_error(missing, 404, "not_found_error").await;
}

/// A request only Anthropic can take as it is: an image from Anthropic's Files API.
const FILE_IMAGE: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"file_011CNha8iCJcU1wXNR6q4V8w"}},{"type":"text","text":"what is it"}]}]}"#;

async fn post_messages(gw: &Gateway, body: &str) -> reqwest::Response {
    client()
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", MASTER)
        .header("anthropic-version", "2023-06-01")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_pool_of_anthropic_deployments_gets_requests_the_translation_could_not_carry() {
    let mock = MockUpstream::start().await.unwrap();
    // Every deployment of the model speaks Anthropic's wire and it has no fallback: the
    // request is not translated at all, so what only Anthropic reads goes through.
    let gw = both(&mock, "").await;
    let resp = post_messages(&gw, FILE_IMAGE).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["content"][0]["text"], "echo: what is it");
    let sent = mock.requests()[0].body.clone().unwrap();
    assert_eq!(sent["messages"][0]["content"][0]["source"]["type"], "file");

    // With a fallback on OpenAI's wire the canonical request is needed, and it cannot
    // say a Files API image: 400 before anything is sent.
    let mock = MockUpstream::start().await.unwrap();
    let gw = with_fallback(&mock).await;
    let error = expect_anthropic_error(
        post_messages(&gw, FILE_IMAGE).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("source"),
        "{error}"
    );
    assert!(mock.requests().is_empty());
}
