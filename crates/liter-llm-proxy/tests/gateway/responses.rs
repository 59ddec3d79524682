//! OpenAI's Responses API at the front door (`/v1/responses`): translated through chat
//! for an OpenAI-format and an Anthropic-format deployment, whole and streamed, tools,
//! structured output, the stored conversation (`previous_response_id`, retrieve,
//! delete, input items, owners), errors, the size bound and the ledger.

use futures_util::StreamExt;
use liter_llm_proxy::store::LedgerFilter;
use mock_upstream::MockUpstream;
use serde_json::{json, Value};

use crate::governance::{gateway as priced_gateway, spend_store, Db};
use crate::support::*;

/// A gateway with "claude" on the mock's Anthropic API, "gpt" on its OpenAI API and a
/// virtual key that may use both.
async fn both(mock: &MockUpstream, extra: &str) -> Gateway {
    Gateway::start(&format!(
        r#"
[general]
master_key = "{MASTER}"
max_retries = 0
[[models]]
name = "claude"
provider_model = "anthropic/claude-sonnet-4-20250514"
api_key = "{UPSTREAM_KEY}"
base_url = "http://{addr}"
[[models]]
name = "gpt"
provider_model = "openai/gpt-4o-2024-08-06"
api_key = "{UPSTREAM_KEY}"
base_url = "{base}"
[[keys]]
key = "{VKEY}"
{extra}
"#,
        addr = mock.addr(),
        base = mock.base_url(),
    ))
    .await
}

async fn create(gw: &Gateway, key: &str, body: Value) -> reqwest::Response {
    gw.post("/v1/responses", Some(key), &body)
        .send()
        .await
        .unwrap()
}

async fn create_ok(gw: &Gateway, key: &str, body: Value) -> Value {
    let resp = create(gw, key, body).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// The text of a response's message items.
fn output_text(r: &Value) -> String {
    r["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().unwrap().iter())
        .filter_map(|c| c["text"].as_str())
        .collect()
}

/// The events of a Responses stream: (event name, data).
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
            let data: Value =
                serde_json::from_str(e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap())
                    .unwrap();
            assert_eq!(data["type"], name, "{e}");
            (name.to_string(), data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

#[tokio::test]
async fn a_whole_response_on_each_wire() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = both(&mock, "").await;
    for (i, (model, path)) in [("gpt", "/v1/chat/completions"), ("claude", "/v1/messages")]
        .into_iter()
        .enumerate()
    {
        let r = create_ok(
            &gw,
            MASTER,
            json!({"model": model, "instructions": "be brief", "input": "hello there",
                "max_output_tokens": 50, "temperature": 0.5, "metadata": {"run": "1"}}),
        )
        .await;
        assert!(r["id"].as_str().unwrap().starts_with("resp_"), "{r}");
        assert_eq!(r["object"], "response");
        assert_eq!(r["status"], "completed");
        assert!(r["created_at"].as_u64().unwrap() > 1_700_000_000);
        assert_eq!(r["output"][0]["type"], "message");
        assert_eq!(r["output"][0]["role"], "assistant");
        assert_eq!(r["output"][0]["content"][0]["type"], "output_text");
        assert_eq!(output_text(&r), "echo: hello there");
        assert_eq!(r["usage"]["output_tokens"], 3);
        assert_eq!(
            r["usage"]["total_tokens"].as_u64().unwrap(),
            r["usage"]["input_tokens"].as_u64().unwrap() + 3
        );
        assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 0);
        assert_eq!(r["usage"]["output_tokens_details"]["reasoning_tokens"], 0);
        assert_eq!(r["metadata"], json!({"run": "1"}));
        assert_eq!(r["instructions"], "be brief");
        assert_eq!(r["max_output_tokens"], 50);
        assert_eq!(r["store"], true);
        let sent = &mock.requests()[i];
        assert_eq!(sent.path, path);
        let body = sent.body.as_ref().unwrap();
        assert!(
            body.get("metadata").is_none(),
            "metadata stays in the gateway"
        );
        assert_eq!(body["max_tokens"], 50);
        assert!(body.to_string().contains("be brief"), "{body}");
    }
}

#[tokio::test]
async fn a_stream_is_responses_events_in_order() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = both(&mock, "").await;
    for model in ["gpt", "claude"] {
        let resp = create(
            &gw,
            MASTER,
            json!({"model": model, "input": "one two three", "stream": true}),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let ev = events(resp).await;
        let n = names(&ev);
        assert_eq!(
            &n[..4],
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added"
            ],
            "{model}"
        );
        assert_eq!(
            &n[n.len() - 4..],
            [
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        for (i, (_, data)) in ev.iter().enumerate() {
            assert_eq!(data["sequence_number"], i as u64);
        }
        let text: String = ev
            .iter()
            .filter(|(n, _)| n == "response.output_text.delta")
            .map(|(_, d)| d["delta"].as_str().unwrap())
            .collect();
        assert_eq!(text, "echo: one two three");
        let done = &ev[n.len() - 1].1["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(output_text(done), "echo: one two three");
        assert_eq!(done["usage"]["output_tokens"], 4);
        let id = done["id"].as_str().unwrap();
        assert_eq!(ev[0].1["response"]["id"], id);
        assert_eq!(ev[0].1["response"]["status"], "in_progress");
        // Stored before the stream's end reached the client.
        let stored = gw.get_json(&format!("/v1/responses/{id}"), MASTER).await;
        assert_eq!(&stored, done);
    }
}

#[tokio::test]
async fn a_tool_round_trip_with_previous_response_id() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = both(&mock, "").await;
    let tools = json!([{"type": "function", "name": "get_weather", "description": "the weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let first = create_ok(
        &gw,
        MASTER,
        json!({"model": "gpt", "input": "please call tool", "tools": tools, "tool_choice": "auto"}),
    )
    .await;
    let call = first["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap()
        .clone();
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["arguments"], "{}");
    assert!(call["id"].as_str().unwrap().starts_with("fc_"));
    let sent = mock.requests()[0].body.clone().unwrap();
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent["tools"][0]["function"]["parameters"]["type"], "object");
    assert_eq!(sent["tool_choice"], "auto");

    let second = create_ok(
        &gw,
        MASTER,
        json!({"model": "gpt", "tools": tools, "previous_response_id": first["id"],
            "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]}),
    )
    .await;
    assert_eq!(output_text(&second), "echo: sunny");
    assert_eq!(second["previous_response_id"], first["id"]);
    let sent = mock.requests()[1].body.clone().unwrap();
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(
        messages[0],
        json!({"role": "user", "content": "please call tool"})
    );
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["tool_calls"][0]["id"], call["call_id"]);
    assert_eq!(
        messages[2],
        json!({"role": "tool", "tool_call_id": call["call_id"], "content": "sunny"})
    );

    // Streamed, the call comes as function_call_arguments events.
    let ev = events(
        create(
            &gw,
            MASTER,
            json!({"model": "gpt", "input": "please call tool", "tools": tools, "stream": true}),
        )
        .await,
    )
    .await;
    let added = ev
        .iter()
        .find(|(n, d)| n == "response.output_item.added" && d["item"]["type"] == "function_call")
        .unwrap();
    assert_eq!(added.1["item"]["name"], "get_weather");
    let args: String = ev
        .iter()
        .filter(|(n, _)| n == "response.function_call_arguments.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(args, "{}");
    let done = ev
        .iter()
        .find(|(n, _)| n == "response.function_call_arguments.done")
        .unwrap();
    assert_eq!(done.1["arguments"], "{}");
    assert_eq!(done.1["item_id"], added.1["item"]["id"]);
}

#[tokio::test]
async fn text_format_and_reasoning_become_chat_fields() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = both(&mock, "").await;
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let r = create_ok(
        &gw,
        MASTER,
        json!({"model": "gpt", "input": "hi",
            "text": {"format": {"type": "json_schema", "name": "thing", "schema": schema, "strict": true}},
            "reasoning": {"effort": "low"}}),
    )
    .await;
    assert_eq!(r["text"]["format"]["name"], "thing");
    let sent = mock.requests()[0].body.clone().unwrap();
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "thing", "schema": schema, "strict": true}})
    );
    assert_eq!(sent["reasoning_effort"], "low");
    create_ok(
        &gw,
        MASTER,
        json!({"model": "gpt", "input": "hi", "text": {"format": {"type": "json_object"}}}),
    )
    .await;
    let sent = mock.requests()[1].body.clone().unwrap();
    assert_eq!(sent["response_format"], json!({"type": "json_object"}));
}

#[tokio::test]
async fn two_turns_on_an_anthropic_deployment_carry_the_first() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = both(&mock, "").await;
    let first = create_ok(
        &gw,
        VKEY,
        json!({"model": "claude", "input": "my name is Ada", "instructions": "be kind"}),
    )
    .await;
    let second = create_ok(
        &gw,
        VKEY,
        json!({"model": "claude", "input": "what is my name",
            "previous_response_id": first["id"]}),
    )
    .await;
    assert_eq!(output_text(&second), "echo: what is my name");
    let sent = &mock.requests()[1];
    assert_eq!(sent.path, "/v1/messages");
    let body = sent.body.as_ref().unwrap();
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{body}");
    let text = |m: &Value| m["content"].to_string();
    assert!(text(&messages[0]).contains("my name is Ada"));
    assert_eq!(messages[1]["role"], "assistant");
    assert!(text(&messages[1]).contains("echo: my name is Ada"));
    assert!(text(&messages[2]).contains("what is my name"));
    // Instructions are not carried over (as OpenAI does).
    assert!(!body.to_string().contains("be kind"), "{body}");
}

#[tokio::test]
async fn stored_responses_are_their_keys_only() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = both(&mock, "").await;
    let r = create_ok(&gw, VKEY, json!({"model": "gpt", "input": "keep me"})).await;
    let id = r["id"].as_str().unwrap();
    let path = format!("/v1/responses/{id}");
    assert_eq!(gw.get_json(&path, VKEY).await, r);
    // Unprefixed too.
    let again = gw
        .get(&format!("/responses/{id}"), Some(VKEY))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let items = gw.get_json(&format!("{path}/input_items"), VKEY).await;
    assert_eq!(items["object"], "list");
    assert_eq!(items["data"][0]["content"][0]["text"], "keep me");
    assert_eq!(items["has_more"], false);
    assert_eq!(items["first_id"], items["data"][0]["id"]);

    // Another key, even the master key: 404, as for an unknown id.
    let other = gw.get(&path, Some(MASTER)).send().await.unwrap();
    let body = expect_error(other, 404).await;
    assert!(body["error"]["message"].as_str().unwrap().contains(id));
    let continued = create(
        &gw,
        MASTER,
        json!({"model": "gpt", "input": "x", "previous_response_id": id}),
    )
    .await;
    let body = expect_error(continued, 404).await;
    assert_eq!(body["error"]["code"], "previous_response_not_found");
    assert_eq!(body["error"]["param"], "previous_response_id");
    let delete = |key: &'static str| {
        client()
            .delete(format!("{}{path}", gw.url))
            .bearer_auth(key)
            .send()
    };
    expect_error(delete(MASTER).await.unwrap(), 404).await;
    let deleted = delete(VKEY).await.unwrap();
    assert_eq!(deleted.status(), 200);
    let deleted: Value = deleted.json().await.unwrap();
    assert_eq!(
        deleted,
        json!({"id": id, "object": "response", "deleted": true})
    );
    expect_error(gw.get(&path, Some(VKEY)).send().await.unwrap(), 404).await;

    // store: false is answered but not kept.
    let unkept = create_ok(
        &gw,
        VKEY,
        json!({"model": "gpt", "input": "forget me", "store": false}),
    )
    .await;
    assert_eq!(unkept["store"], false);
    let path = format!("/v1/responses/{}", unkept["id"].as_str().unwrap());
    expect_error(gw.get(&path, Some(VKEY)).send().await.unwrap(), 404).await;
}

#[tokio::test]
async fn errors_are_openai_errors() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = both(&mock, "[server]\nbody_limit_bytes = 2000\n").await;
    let no_key = gw
        .post(
            "/v1/responses",
            None,
            &json!({"model": "gpt", "input": "x"}),
        )
        .send()
        .await
        .unwrap();
    expect_error(no_key, 401).await;
    let unknown = create(&gw, MASTER, json!({"model": "nope", "input": "x"})).await;
    assert_eq!(
        expect_error(unknown, 404).await["error"]["code"],
        "model_not_found"
    );
    let body = expect_error(
        create(
            &gw,
            MASTER,
            json!({"model": "gpt", "input": "x", "background": true}),
        )
        .await,
        400,
    )
    .await;
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("background"));
    expect_error(
        create(
            &gw,
            MASTER,
            json!({"model": "gpt", "input": "x", "tools": [{"type": "web_search"}]}),
        )
        .await,
        400,
    )
    .await;
    expect_error(
        create(
            &gw,
            MASTER,
            json!({"model": "gpt", "input": "x", "previous_response_id": "resp_0000"}),
        )
        .await,
        404,
    )
    .await;
    assert!(mock.requests().is_empty(), "nothing went upstream");

    // A conversation over server.body_limit_bytes: a clear 400 before anything is sent.
    let long = "word ".repeat(250);
    let first = create_ok(&gw, MASTER, json!({"model": "gpt", "input": long})).await;
    let over = create(
        &gw,
        MASTER,
        json!({"model": "gpt", "input": long, "previous_response_id": first["id"]}),
    )
    .await;
    let body = expect_error(over, 400).await;
    assert_eq!(body["error"]["code"], "conversation_too_large");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("server.body_limit_bytes"));
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn responses_and_completions_are_ledgered() {
    let mock = MockUpstream::start().await.unwrap();
    let db = Db::sqlite();
    let gw = priced_gateway(
        &mock,
        &db,
        &format!("[[keys]]\nkey = \"{VKEY}\"\nbudget_limit = 10.0\n"),
    )
    .await;
    let r = create_ok(
        &gw,
        VKEY,
        json!({"model": "priced", "input": "hello there"}),
    )
    .await;
    assert_eq!(r["usage"]["output_tokens"], 3);
    let ev = events(
        create(
            &gw,
            VKEY,
            json!({"model": "priced", "input": "one two three", "stream": true}),
        )
        .await,
    )
    .await;
    assert_eq!(ev.last().unwrap().0, "response.completed");
    let whole = gw
        .post(
            "/v1/completions",
            Some(VKEY),
            &json!({"model": "priced", "prompt": "say this"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    assert!(whole.headers().contains_key("x-liter-llm-response-cost"));
    let streamed = gw
        .post(
            "/v1/completions",
            Some(VKEY),
            &json!({"model": "priced", "prompt": "a b", "stream": true}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!streamed.contains("\"usage\""), "not asked for: {streamed}");
    gw.app.governor.settled().await;
    let mut rows = spend_store(&gw)
        .ledger(&LedgerFilter::default())
        .await
        .unwrap();
    rows.reverse();
    let tokens: Vec<u64> = rows.iter().map(|r| r.completion_tokens).collect();
    // "echo: hello there" 3, "echo: one two three" 4, "echo: say this" 3, "echo: a b" 3.
    assert_eq!(tokens, [3, 4, 3, 3]);
    assert!(rows.iter().all(|r| r.model == "priced" && r.cost_usd > 0.0));
    assert_eq!(mock.requests()[2].path, "/v1/completions");
}

#[tokio::test]
async fn a_stream_that_breaks_off_ends_failed_and_is_not_stored() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = both(&mock, "").await;
    mock.push_fault(mock_upstream::Fault::cut_stream(2));
    let ev = events(
        create(
            &gw,
            MASTER,
            json!({"model": "gpt", "input": "one two three four", "stream": true}),
        )
        .await,
    )
    .await;
    let n = names(&ev);
    assert_eq!(n[0], "response.created");
    assert_eq!(&n[n.len() - 2..], ["error", "response.failed"], "{n:?}");
    let failed = &ev[n.len() - 1].1["response"];
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"]["message"].as_str().unwrap().len() > 3);
    let path = format!("/v1/responses/{}", failed["id"].as_str().unwrap());
    expect_error(gw.get(&path, Some(MASTER)).send().await.unwrap(), 404).await;
}
