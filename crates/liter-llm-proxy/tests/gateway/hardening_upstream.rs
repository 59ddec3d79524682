//! Hostile clients and upstreams against the upstream side (docs/security.md,
//! "Upstreams"): model ids that try to steer upstream URLs, upstreams that echo the
//! gateway's credentials, send an event that never ends, or a huge answer.

use std::time::Duration;

use futures_util::StreamExt;
use liter_llm_proxy::config::{load_str, Overrides};
use liter_llm_proxy::App;
use mock_upstream::{Fault, MockUpstream};
use serde_json::{json, Value};

use crate::support::*;

/// The whole body of a streamed answer, within `bound`.
async fn stream_text(resp: reqwest::Response, bound: Duration) -> String {
    assert_eq!(resp.status(), 200);
    let read = async {
        let mut text = String::new();
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        text
    };
    tokio::time::timeout(bound, read)
        .await
        .expect("the stream did not end in time")
}

fn streamed(model: &str) -> Value {
    json!({"model": model, "stream": true,
        "messages": [{"role": "user", "content": "hello gateway"}]})
}

// ---- Model ids in upstream URLs --------------------------------------------------

fn alias_config(mock: &MockUpstream) -> String {
    format!(
        "[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\n\
         [[aliases]]\npattern = \"gemini/*\"\napi_key = \"{UPSTREAM_KEY}\"\nbase_url = \"http://{addr}\"\n",
        addr = mock.addr()
    )
}

#[tokio::test]
async fn client_model_ids_cannot_leave_the_model_path() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&alias_config(&mock)).await;
    // Refused before anything is sent: dot segments, control characters, long names.
    for model in [
        "gemini/../../../../canary".to_string(),
        "gemini/..".to_string(),
        "gemini/x/./y".to_string(),
        "openai/../../x".to_string(),
        "gemini/a\nb".to_string(),
        "gemini/x\u{1b}[31m".to_string(),
        format!("gemini/{}", "m".repeat(300)),
        format!("no-such-model-{}", "m".repeat(300)),
    ] {
        let err = expect_error(gw.chat(MASTER, hello(&model)).await, 400).await;
        assert_eq!(err["error"]["param"], "model", "{model:?}: {err}");
        assert_eq!(err["error"]["code"], "invalid_model", "{model:?}: {err}");
    }
    assert!(mock.requests().is_empty(), "{:?}", mock.requests());

    // Anything else is one encoded segment: no query, no fragment, no new segment.
    for (model, path) in [
        ("gemini/x?y=1", "/v1beta/models/x%3Fy%3D1:generateContent"),
        ("gemini/x#y", "/v1beta/models/x%23y:generateContent"),
        (
            "gemini/a/b%2F..",
            "/v1beta/models/a%2Fb%252F..:generateContent",
        ),
        (
            "gemini/m:streamGenerateContent",
            "/v1beta/models/m%3AstreamGenerateContent:generateContent",
        ),
    ] {
        mock.clear_requests();
        let resp = gw.chat(MASTER, hello(model)).await;
        let reqs = mock.requests();
        assert_eq!(reqs.len(), 1, "{model}: {} {reqs:?}", resp.status());
        assert_eq!(reqs[0].path, path, "{model}");
    }
}

#[tokio::test]
async fn configured_model_ids_are_checked_at_start() {
    let base = "base_url = \"http://127.0.0.1:9\"";
    let key = format!("api_key = \"{UPSTREAM_KEY}\"");
    let aws = "aws_access_key_id = \"AKIDTEST\"\naws_secret_access_key = \"secret-0123456789\"\naws_region_name = \"us-west-2\"";
    for (id, settings) in [
        ("gemini/../x", key.as_str()),
        ("azure/..", key.as_str()),
        ("bedrock/a/../../b", aws),
        ("vertex_ai/x\ny", &format!("{key}\nvertex_project = \"p\"")),
    ] {
        let toml = format!(
            "[general]\nmaster_key = \"{MASTER}\"\n[[models]]\nname = \"m\"\nprovider_model = {id:?}\n{base}\n{settings}\n"
        );
        let cfg = load_str(&toml, "test.toml", &Overrides::default(), |_| None)
            .unwrap_or_else(|e| panic!("{id:?}: {e}"));
        let err = App::build(cfg).await.err().expect(id).to_string();
        assert!(err.contains("model id"), "{id:?}: {err}");
        assert!(err.contains("\"m\""), "{id:?}: {err}");
    }
}

// ---- An event that never ends ------------------------------------------------------

#[tokio::test]
async fn an_event_that_never_ends_ends_the_stream_at_the_limit() {
    let mock = MockUpstream::start().await.unwrap();
    // A request timeout far beyond the test's bound: only the event limit can end it.
    let limits = "[server]\nmax_event_bytes = 65536\nrequest_timeout_secs = 300\n";
    let gw = Gateway::start(&format!(
        "{limits}{}[[models]]\nname = \"claude\"\nprovider_model = \"anthropic/claude-sonnet-4-20250514\"\napi_key = \"{UPSTREAM_KEY}\"\nbase_url = \"http://{}\"\n",
        base_config(&mock, ""),
        mock.addr()
    ))
    .await;
    // Pass-through and translated: `data: ` and then 16 KiB chunks, never a blank line.
    for model in ["gpt-4o", "claude"] {
        mock.push_fault(Fault::endless_event(16 * 1024));
        let resp = gw.post("/v1/chat/completions", Some(MASTER), &streamed(model));
        let text = stream_text(resp.send().await.unwrap(), Duration::from_secs(20)).await;
        let events = sse_data(&text);
        assert_eq!(events.len(), 1, "{model}: {text}");
        let err: Value = serde_json::from_str(&events[0]).unwrap();
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains("max_event_bytes"), "{model}: {err}");
        assert!(message.contains("65536"), "{model}: {err}");
    }
}

// ---- A huge answer -------------------------------------------------------------------

#[tokio::test]
async fn a_huge_answer_is_a_502_naming_the_limit() {
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&format!(
        "[server]\nmax_response_bytes = 1048576\n{}",
        base_config(&mock, "")
    ))
    .await;
    let big = json!({"pad": "a".repeat(2 << 20)});
    for fault in [
        // Chunked, success and error answers; and one that announces its length.
        Fault::huge_answer(200, 8 << 20),
        Fault::huge_answer(500, 8 << 20),
        Fault::huge_answer(400, 8 << 20),
        Fault::status(200).with_body(big),
    ] {
        mock.push_fault(fault.clone());
        let err = expect_error(gw.chat(MASTER, hello("gpt-4o")).await, 502).await;
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains("max_response_bytes"), "{fault:?}: {err}");
        assert!(message.contains("1048576"), "{fault:?}: {err}");
    }
    // Within the limit, answers pass as before.
    mock.push_fault(Fault::huge_answer(200, 1000));
    let resp = gw.chat(MASTER, hello("gpt-4o")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().len(), 1000);
}
