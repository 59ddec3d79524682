//! The Bedrock adapter against fixtures written from AWS's Bedrock Runtime API
//! reference (`tests/fixtures/bedrock/`): OpenAI requests and the Converse bodies they
//! must become (signed), Converse answers and the completions they must become,
//! ConverseStream transcripts (encoded here into binary event-stream frames) and their
//! chunks, error answers and the errors they must become, Titan and Cohere embeddings.
//!
//! Expected files are compared as JSON values. After a deliberate change, regenerate
//! them with `LITER_LLM_BLESS=1 cargo test -p liter-llm --test bedrock` and review
//! the diff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use liter_llm::providers::adapter::{
    Adapter, AdapterConfig, Call, Operation, ProviderSettings, Secret, StreamMeta, StreamOut,
};
use liter_llm::providers::bedrock::eventstream;
use liter_llm::providers::bedrock::BedrockAdapter;
use proptest::prelude::*;
use serde_json::{json, Value};

const CREATED: u64 = 1_700_000_000;
/// 2024-06-20T12:00:00Z.
const NOW: u64 = 1_718_884_800;

const FIXTURES: &str = "bedrock";

fn read(name: &str) -> Vec<u8> {
    common::read(FIXTURES, name)
}

fn read_json(name: &str) -> Value {
    common::read_json(FIXTURES, name)
}

fn snapshot(name: &str, actual: &Value) {
    common::snapshot(FIXTURES, name, actual)
}

fn adapter(model_id: &str, drop_params: bool, token: bool) -> BedrockAdapter {
    BedrockAdapter::new(&AdapterConfig {
        base_url: "https://bedrock-runtime.us-east-1.amazonaws.com".into(),
        model_id: model_id.into(),
        api_key: None,
        settings: ProviderSettings {
            aws_access_key_id: Some(Secret("AKIDEXAMPLE".into())),
            aws_secret_access_key: Some(Secret("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into())),
            aws_session_token: token.then(|| Secret("FQoGZXIvYXdzEXAMPLETOKEN".into())),
            aws_region_name: Some("us-east-1".into()),
            drop_params,
            ..ProviderSettings::default()
        },
    })
    .unwrap()
}

const CLAUDE: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";

/// The whole upstream request as JSON (header values included: they are
/// deterministic at a fixed `now`).
fn built(a: &BedrockAdapter, op: Operation, body: &[u8]) -> Value {
    let req = a
        .build(Call {
            op,
            body,
            token: None,
            now: NOW,
        })
        .unwrap();
    let headers: serde_json::Map<String, Value> = req
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), Value::from(v.to_str().unwrap())))
        .collect();
    json!({
        "uri": req.uri.to_string(),
        "headers": headers,
        "sensitive": req.headers.iter().filter(|(_, v)| v.is_sensitive()).map(|(n, _)| n.to_string()).collect::<Vec<_>>(),
        "body": serde_json::from_slice::<Value>(&req.body).unwrap(),
        "dropped": req.dropped,
    })
}

#[test]
fn requests_match_their_fixtures() {
    let a = adapter(CLAUDE, true, false);
    snapshot(
        "request_basic.converse.json",
        &built(
            &a,
            Operation::ChatStream,
            &read("request_basic.openai.json"),
        ),
    );
    let a = adapter(&format!("us.{CLAUDE}"), false, true);
    snapshot(
        "request_tools.converse.json",
        &built(&a, Operation::Chat, &read("request_tools.openai.json")),
    );
}

#[test]
fn unsupported_parameters_are_400_unless_drop_params() {
    let a = adapter(CLAUDE, false, false);
    let e = a
        .build(Call {
            op: Operation::Chat,
            body: &read("request_basic.openai.json"),
            token: None,
            now: NOW,
        })
        .unwrap_err();
    assert_eq!((e.status, e.error.param.as_deref()), (400, Some("seed")));
    let body =
        br#"{"model":"m","parallel_tool_calls":false,"messages":[{"role":"user","content":"x"}]}"#;
    // Honoured by keeping the first call of the answer: not sent, not refused.
    let sent = a
        .build(Call {
            op: Operation::Chat,
            body,
            token: None,
            now: NOW,
        })
        .unwrap();
    assert!(!String::from_utf8_lossy(&sent.body).contains("parallel_tool_calls"));
    assert!(a.reshape(body).first_tool_call_only);
    for (body, param) in [
        (
            json!({"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}),
            "n",
        ),
        (
            json!({"model":"m","messages":[{"role":"system","content":"x"}]}),
            "messages",
        ),
        (
            json!({"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/tiff;base64,AAAA"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model":"m","messages":[{"role":"tool","content":"r"}]}),
            "messages[0].tool_call_id",
        ),
        (
            json!({"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{x"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            json!({"model":"m","tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"sometimes","messages":[{"role":"user","content":"x"}]}),
            "tool_choice",
        ),
        (
            json!({"model":"m","response_format":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"user","content":"x"}]}),
            "response_format",
        ),
    ] {
        let body = serde_json::to_vec(&body).unwrap();
        let e = a
            .build(Call {
                op: Operation::Chat,
                body: &body,
                token: None,
                now: NOW,
            })
            .unwrap_err();
        assert_eq!(
            (e.status, e.error.param.as_deref()),
            (400, Some(param)),
            "{}",
            e.error.message
        );
    }
    // tool_choice "none" sends no toolConfig.
    let body = br#"{"model":"m","tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none","messages":[{"role":"user","content":"x"}]}"#;
    let b = built(&a, Operation::Chat, body);
    assert!(b["body"].get("toolConfig").is_none());
}

fn response(name: &str) -> Value {
    let a = adapter(CLAUDE, false, false);
    let mut c = serde_json::to_value(
        a.parse_chat(&read(name), "claude-on-bedrock", CREATED)
            .unwrap(),
    )
    .unwrap();
    assert!(c["id"].as_str().unwrap().starts_with("chatcmpl-bedrock-"));
    c["id"] = json!("chatcmpl-bedrock-ID");
    c
}

#[test]
fn responses_match_their_fixtures() {
    for name in [
        "response_text",
        "response_tool_use",
        "response_guardrail",
        "response_max_tokens",
    ] {
        snapshot(
            &format!("{name}.openai.json"),
            &response(&format!("{name}.json")),
        );
    }
    let a = adapter(CLAUDE, false, false);
    for bad in [
        &b"not json"[..],
        b"{}",
        br#"{"output":{"message":{"content":[{"toolUse":{"name":"f"}}]}}}"#,
    ] {
        assert_eq!(a.parse_chat(bad, "m", 0).unwrap_err().status, 502);
    }
}

/// A transcript of events (written as JSON) encoded as event-stream frames.
fn frames(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for e in read_json(name).as_array().unwrap() {
        let payload = e["payload"].to_string();
        if let Some(kind) = e.get("exception").and_then(Value::as_str) {
            out.extend(eventstream::encode(
                &[
                    (":exception-type", kind),
                    (":content-type", "application/json"),
                    (":message-type", "exception"),
                ],
                payload.as_bytes(),
            ));
        } else {
            let kind = e["event"].as_str().unwrap();
            out.extend(eventstream::encode(
                &[
                    (":event-type", kind),
                    (":content-type", "application/json"),
                    (":message-type", "event"),
                ],
                payload.as_bytes(),
            ));
        }
    }
    out
}

fn outputs(out: Vec<StreamOut>) -> Vec<Value> {
    out.into_iter()
        .map(|o| match o {
            StreamOut::Chunk(c) => serde_json::to_value(c).unwrap(),
            StreamOut::Error(e) => json!({"status": e.status, "error": e.body()}),
            StreamOut::Done => json!("[DONE]"),
        })
        .collect()
}

fn translate(pieces: &[&[u8]], include_usage: bool) -> Vec<Value> {
    let mut t = adapter(CLAUDE, false, false).stream(StreamMeta {
        id: "chatcmpl-bedrock-1".into(),
        model: "claude-on-bedrock".into(),
        created: CREATED,
        include_usage,
        max_event_bytes: liter_llm::providers::sse::DEFAULT_MAX_EVENT_BYTES,
    });
    let mut out = Vec::new();
    for piece in pieces {
        out.extend(t.feed(piece));
    }
    out.extend(t.finish());
    outputs(out)
}

const TRANSCRIPTS: [&str; 3] = ["stream_text", "stream_tool_use", "stream_exception"];

#[test]
fn streams_match_their_fixtures() {
    for name in TRANSCRIPTS {
        let chunks = translate(&[&frames(&format!("{name}.events.json"))], true);
        snapshot(&format!("{name}.chunks.json"), &Value::Array(chunks));
    }
}

#[test]
fn streamed_tool_calls_reassemble_and_usage_is_reported() {
    let bytes = frames("stream_tool_use.events.json");
    let chunks = translate(&[&bytes], false);
    let mut text = String::new();
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for chunk in &chunks {
        let delta = &chunk["choices"][0]["delta"];
        text.push_str(delta["content"].as_str().unwrap_or(""));
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let i = call["index"].as_u64().unwrap() as usize;
            if i == calls.len() {
                calls.push((
                    call["id"].as_str().unwrap().into(),
                    call["function"]["name"].as_str().unwrap().into(),
                    String::new(),
                ));
            }
            calls[i]
                .2
                .push_str(call["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(text, "Checking São Paulo.");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].1, "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].2).unwrap(),
        json!({"city": "São Paulo"})
    );
    assert_eq!(calls[1].2, "{}");
    assert_eq!(chunks.last().unwrap(), "[DONE]");

    let mut t = adapter(CLAUDE, false, false).stream(StreamMeta {
        id: "c".into(),
        model: "m".into(),
        created: 0,
        include_usage: false,
        max_event_bytes: liter_llm::providers::sse::DEFAULT_MAX_EVENT_BYTES,
    });
    t.feed(&bytes);
    let u = t.usage().unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (50, 20, 70)
    );
}

#[test]
fn truncated_and_corrupt_streams_are_502() {
    let bytes = frames("stream_text.events.json");
    // Cut before messageStop: an error, no [DONE].
    let cut = translate(&[&bytes[..bytes.len() / 2]], false);
    assert_eq!(cut.last().unwrap()["status"], 502, "{cut:?}");
    let mut bad = bytes.clone();
    bad[20] ^= 0xff;
    let out = translate(&[&bad], false);
    assert_eq!(out.last().unwrap()["status"], 502);
    // Ending right after messageStop (no metadata) still completes.
    let events = read_json("stream_text.events.json");
    let mut short = Vec::new();
    for e in &events.as_array().unwrap()[..5] {
        short.extend(eventstream::encode(
            &[
                (":event-type", e["event"].as_str().unwrap()),
                (":message-type", "event"),
            ],
            e["payload"].to_string().as_bytes(),
        ));
    }
    assert_eq!(translate(&[&short], true).last().unwrap(), "[DONE]");
}

#[test]
fn errors_match_their_fixture() {
    let a = adapter(CLAUDE, false, false);
    let mut all = serde_json::Map::new();
    for case in read_json("errors.json").as_array().unwrap() {
        let mut headers = http::HeaderMap::new();
        if let Some(t) = case.get("errortype").and_then(Value::as_str) {
            headers.insert("x-amzn-errortype", http::HeaderValue::from_str(t).unwrap());
        }
        if let Some(r) = case.get("retry_after").and_then(Value::as_str) {
            headers.insert("retry-after", http::HeaderValue::from_str(r).unwrap());
        }
        let body = match case.get("text").and_then(Value::as_str) {
            Some(t) => t.as_bytes().to_vec(),
            None => serde_json::to_vec(&case["body"]).unwrap(),
        };
        let e = a.parse_error(case["status"].as_u64().unwrap() as u16, &headers, &body);
        all.insert(
            case["name"].as_str().unwrap().into(),
            json!({"status": e.status, "retry_after_secs": e.retry_after.map(|d| d.as_secs()), "body": e.body()}),
        );
    }
    snapshot("errors.expected.json", &Value::Object(all));
}

#[test]
fn embeddings_match_their_fixtures() {
    let titan = adapter("amazon.titan-embed-text-v2:0", false, false);
    let cohere = adapter("cohere.embed-english-v3", false, false);
    let mut all = serde_json::Map::new();
    all.insert(
        "titan_request".into(),
        built(
            &titan,
            Operation::Embeddings,
            &read("embed_titan.openai.json"),
        ),
    );
    all.insert(
        "cohere_request".into(),
        built(
            &cohere,
            Operation::Embeddings,
            &read("embed_cohere.openai.json"),
        ),
    );
    for (name, a, file) in [
        ("titan_response", &titan, "embed_titan.response.json"),
        ("cohere_response", &cohere, "embed_cohere.response.json"),
        (
            "cohere_by_type_response",
            &cohere,
            "embed_cohere_by_type.response.json",
        ),
    ] {
        all.insert(
            name.into(),
            serde_json::to_value(a.parse_embeddings(&read(file), "emb").unwrap()).unwrap(),
        );
    }
    snapshot("embeddings.expected.json", &Value::Object(all));

    let call = |a: &BedrockAdapter, body: Value| {
        let body = serde_json::to_vec(&body).unwrap();
        a.build(Call {
            op: Operation::Embeddings,
            body: &body,
            token: None,
            now: NOW,
        })
    };
    let e = call(&titan, json!({"model": "t", "input": ["a", "b"]})).unwrap_err();
    assert_eq!((e.status, e.error.param.as_deref()), (400, Some("input")));
    let e = call(&titan, json!({"model": "t", "input": [1, 2, 3]})).unwrap_err();
    assert_eq!(e.error.param.as_deref(), Some("input"));
    let e = call(
        &cohere,
        json!({"model": "c", "input": "a", "dimensions": 8}),
    )
    .unwrap_err();
    assert_eq!(e.error.param.as_deref(), Some("dimensions"));
    let chat = adapter(CLAUDE, false, false);
    assert_eq!(
        call(&chat, json!({"model": "x", "input": "a"}))
            .unwrap_err()
            .status,
        400
    );
}

#[test]
fn missing_settings_are_refused() {
    let err = BedrockAdapter::new(&AdapterConfig {
        base_url: "https://bedrock-runtime.us-east-1.amazonaws.com".into(),
        model_id: CLAUDE.into(),
        ..AdapterConfig::default()
    })
    .unwrap_err();
    assert!(err.contains("aws_access_key_id"), "{err}");
}

proptest! {
    /// The chunks do not depend on how the body is split into reads: cuts may fall
    /// inside a prelude, a header, a CRC, a multi-byte character, or make empty reads.
    #[test]
    fn same_chunks_however_the_bytes_are_split(
        which in 0..TRANSCRIPTS.len(),
        include_usage in any::<bool>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        let bytes = frames(&format!("{}.events.json", TRANSCRIPTS[which]));
        let whole = translate(&[&bytes], include_usage);
        let pieces = common::split_at_cuts(&bytes, &cuts);
        let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(translate(&refs, include_usage), whole);
    }
}

#[test]
fn byte_at_a_time() {
    for name in TRANSCRIPTS {
        let bytes = frames(&format!("{name}.events.json"));
        let pieces: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(
            translate(&pieces, true),
            translate(&[&bytes], true),
            "{name}"
        );
    }
}
