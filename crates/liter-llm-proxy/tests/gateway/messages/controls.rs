//! Anthropic's thinking controls at the Messages door, on deployments that do not
//! speak Anthropic's wire: what each upstream receives in its own terms (the mock's
//! OpenAI API refuses `thinking`, `output_config` and `context_management`, as OpenAI's
//! own does), and what the client is told.

use mock_upstream::{Fault, MockUpstream};
use serde_json::{json, Value};

use super::{both, events, expect_anthropic_error, messages, names, with_fallback};
use crate::support::*;

/// Claude Code's controls for a model whose name is not Claude's.
fn claude_code_controls(body: &mut Value) {
    body["thinking"] = json!({"type": "adaptive"});
    body["output_config"] = json!({"effort": "max"});
    body["context_management"] =
        json!({"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]});
}

fn hello(model: &str) -> Value {
    json!({"model": model, "max_tokens": 64,
        "messages": [{"role": "user", "content": "hello there"}]})
}

/// The one request the mock received, as JSON.
fn only_body(mock: &MockUpstream) -> Value {
    let seen = mock.requests();
    assert_eq!(
        seen.len(),
        1,
        "{:?}",
        seen.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    seen[0].body.clone().unwrap()
}

fn assert_no_anthropic_fields(body: &Value) {
    for field in ["thinking", "output_config", "context_management"] {
        assert!(
            body.get(field).is_none(),
            "{field} reached the upstream: {body}"
        );
    }
}

#[tokio::test]
async fn thinking_reaches_an_openai_upstream_as_reasoning_effort() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = both(&mock, "").await;

    // An explicit budget: the smallest level that holds it (8192 for "medium").
    let mut body = hello("gpt");
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 5000});
    let resp = messages(&gw, Some(MASTER), &body.to_string()).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-liter-llm-dropped-params").is_none());
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["content"][0]["text"], "echo: hello there");
    let sent = only_body(&mock);
    assert_eq!(sent["reasoning_effort"], "medium");
    assert_no_anthropic_fields(&sent);

    // Claude Code's adaptive thinking with an effort, streamed: the effort arrives,
    // context editing is left out and named.
    mock.clear_requests();
    let mut body = hello("gpt");
    claude_code_controls(&mut body);
    body["stream"] = json!(true);
    let resp = messages(&gw, Some(MASTER), &body.to_string()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-liter-llm-dropped-params"],
        "context_management"
    );
    let ev = events(resp).await;
    assert_eq!(names(&ev).last(), Some(&"message_stop"), "{ev:?}");
    let sent = only_body(&mock);
    assert_eq!(sent["reasoning_effort"], "high");
    assert_no_anthropic_fields(&sent);

    // Disabled thinking asks for nothing; a structured output is a json_schema.
    mock.clear_requests();
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}},
        "required": ["city"], "additionalProperties": false});
    let mut body = hello("gpt");
    body["thinking"] = json!({"type": "disabled"});
    body["output_config"] = json!({"format": {"type": "json_schema", "schema": schema}});
    let resp = messages(&gw, Some(MASTER), &body.to_string()).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    let text: Value = serde_json::from_str(answer["content"][0]["text"].as_str().unwrap()).unwrap();
    assert!(text["city"].is_string(), "{answer}");
    let sent = only_body(&mock);
    assert!(sent.get("reasoning_effort").is_none(), "{sent}");
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}})
    );
    assert_no_anthropic_fields(&sent);
}

#[tokio::test]
async fn an_anthropic_deployment_still_gets_the_controls_as_they_came() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = both(&mock, "").await;
    let mut body = hello("claude-sonnet-4-5");
    claude_code_controls(&mut body);
    let resp = messages(&gw, Some(MASTER), &body.to_string()).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-liter-llm-dropped-params").is_none());
    let sent = only_body(&mock);
    assert_eq!(sent["thinking"], body["thinking"]);
    assert_eq!(sent["output_config"], body["output_config"]);
    assert_eq!(sent["context_management"], body["context_management"]);
}

#[tokio::test]
async fn a_bad_control_is_an_anthropic_400_naming_it() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = both(&mock, "").await;
    for (control, value, needle) in [
        ("thinking", json!({"budget_tokens": 2048}), "thinking.type"),
        (
            "thinking",
            json!({"type": "enabled", "budget_tokens": "lots"}),
            "thinking.budget_tokens",
        ),
        ("thinking", json!({"type": "always"}), "thinking.type"),
        (
            "output_config",
            json!({"effort": "extreme"}),
            "output_config.effort",
        ),
    ] {
        let mut body = hello("gpt");
        body[control] = value;
        let resp = messages(&gw, Some(MASTER), &body.to_string()).await;
        let error = expect_anthropic_error(resp, 400, "invalid_request_error").await;
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message} / {needle}");
    }
    assert!(mock.requests().is_empty());
}

/// A Bedrock model entry (the mock checks no signature).
fn bedrock(mock: &MockUpstream, name: &str, model_id: &str) -> String {
    format!(
        "[[models]]\nname = \"{name}\"\nprovider_model = \"bedrock/{model_id}\"\naws_access_key_id = \"AKIDTEST\"\naws_secret_access_key = \"secret\"\naws_region_name = \"us-west-2\"\nbase_url = \"http://{}\"",
        mock.addr()
    )
}

#[tokio::test]
async fn gemini_cohere_and_bedrock_get_their_own_thinking_fields() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&format!(
        r#"
[general]
master_key = "{MASTER}"
max_retries = 0
[[models]]
name = "gem"
provider_model = "gemini/gemini-2.5-flash"
api_key = "{UPSTREAM_KEY}"
base_url = "http://{addr}"
[[models]]
name = "command"
provider_model = "cohere/command-a-reasoning-08-2025"
api_key = "{UPSTREAM_KEY}"
base_url = "http://{addr}"
{bedrock_claude}
{nova}
drop_params = true
"#,
        addr = mock.addr(),
        bedrock_claude = bedrock(
            &mock,
            "bedrock-claude",
            "anthropic.claude-3-7-sonnet-20250219-v1:0"
        ),
        nova = bedrock(&mock, "nova", "us.amazon.nova-lite-v1:0"),
    ))
    .await;
    let mut body = hello("gem");
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 2000});
    let resp = messages(&gw, Some(MASTER), &body.to_string()).await;
    assert_eq!(resp.status(), 200);
    let sent = only_body(&mock);
    assert_eq!(
        sent["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 2048})
    );
    assert_no_anthropic_fields(&sent);
    assert!(sent.get("reasoning_effort").is_none());

    // Cohere: its own `thinking`, with the level's budget.
    mock.clear_requests();
    let mut body = hello("command");
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 5000});
    let resp = messages(&gw, Some(MASTER), &body.to_string()).await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    let sent = only_body(&mock);
    assert_eq!(
        sent["thinking"],
        json!({"type": "enabled", "token_budget": 8192})
    );
    assert!(sent.get("reasoning_effort").is_none());

    // Claude Code's controls: the effort becomes Claude's reasoning_config on Bedrock;
    // context editing is left out and named (no drop_params needed).
    mock.clear_requests();
    let mut body = hello("bedrock-claude");
    claude_code_controls(&mut body);
    let resp = messages(&gw, Some(MASTER), &body.to_string()).await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    assert_eq!(
        resp.headers()["x-liter-llm-dropped-params"],
        "context_management"
    );
    let sent = only_body(&mock);
    assert_eq!(
        sent["additionalModelRequestFields"]["reasoning_config"],
        json!({"type": "enabled", "budget_tokens": 24576})
    );
    assert_no_anthropic_fields(&sent);

    // A model that cannot think, with drop_params: the adapter's dropped parameter and
    // the door's are named together.
    mock.clear_requests();
    let mut body = hello("nova");
    claude_code_controls(&mut body);
    let resp = messages(&gw, Some(MASTER), &body.to_string()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-liter-llm-dropped-params"],
        "reasoning_effort, context_management"
    );
    let sent = only_body(&mock);
    assert!(sent.get("additionalModelRequestFields").is_none(), "{sent}");
    assert_no_anthropic_fields(&sent);
}

#[tokio::test]
async fn a_fallback_from_anthropic_gets_the_translation() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = with_fallback(&mock).await;
    let mut body = hello("claude-sonnet-4-5");
    claude_code_controls(&mut body);
    // Anthropic answers: its request carried the controls as they came, nothing dropped.
    let resp = messages(&gw, Some(MASTER), &body.to_string()).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-liter-llm-dropped-params").is_none());
    // Anthropic fails: the fallback on OpenAI's wire gets the translation.
    mock.clear_requests();
    mock.push_fault(Fault::status(500).for_model("claude-sonnet-4-20250514"));
    let resp = messages(&gw, Some(MASTER), &body.to_string()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-liter-llm-dropped-params"],
        "context_management"
    );
    let seen = mock.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body.as_ref().unwrap()["thinking"], body["thinking"]);
    let sent = seen[1].body.clone().unwrap();
    assert_eq!(sent["reasoning_effort"], "high");
    assert_no_anthropic_fields(&sent);
}
