//! The Cohere adapter against fixtures written from Cohere's API reference
//! (`tests/fixtures/cohere/`): OpenAI requests and the Chat v2 / Embed v2 bodies they must
//! become, Cohere answers and what they must become, streaming transcripts and their
//! chunks, error bodies and the errors they must become.
//!
//! Expected files are compared as JSON values. After a deliberate change, regenerate
//! them with `LITER_LLM_BLESS=1 cargo test -p liter-llm --test cohere` and review the
//! diff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use http::Uri;
use liter_llm::providers::adapter::{
    Adapter, AdapterConfig, Call, Operation, ProviderSettings, Secret, StreamMeta, StreamOut,
};
use liter_llm::providers::cohere::CohereAdapter;
use proptest::prelude::*;
use serde_json::{json, Value};

const MODEL_ID: &str = "command-a-03-2025";
const CREATED: u64 = 1_700_000_000;

const FIXTURES: &str = "cohere";

fn read(name: &str) -> Vec<u8> {
    common::read(FIXTURES, name)
}

fn snapshot(name: &str, actual: &Value) {
    common::snapshot(FIXTURES, name, actual)
}

fn adapter(drop_params: bool) -> CohereAdapter {
    CohereAdapter::new(&AdapterConfig {
        base_url: "https://api.cohere.com/".into(),
        model_id: MODEL_ID.into(),
        api_key: Some(Secret("co-secret".into())),
        settings: ProviderSettings {
            drop_params,
            ..ProviderSettings::default()
        },
    })
    .unwrap()
}

fn call(op: Operation, body: &[u8]) -> Call<'_> {
    Call {
        op,
        body,
        token: None,
        now: 0,
    }
}

#[test]
fn requests_match_their_fixtures() {
    let a = adapter(false);
    for name in ["request_basic", "request_tools"] {
        let body = read(&format!("{name}.openai.json"));
        let op = if name == "request_basic" {
            Operation::ChatStream
        } else {
            Operation::Chat
        };
        let built = a.build(call(op, &body)).unwrap();
        assert_eq!(
            built.uri,
            Uri::from_static("https://api.cohere.com/v2/chat")
        );
        assert!(built.dropped.is_empty());
        let headers: Vec<(String, String)> = built
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        assert!(headers.contains(&("authorization".into(), "Bearer co-secret".into())));
        assert!(built
            .headers
            .iter()
            .any(|(n, v)| n == "authorization" && v.is_sensitive()));
        let sent: Value = serde_json::from_slice(&built.body).unwrap();
        snapshot(&format!("{name}.cohere.json"), &sent);
    }
}

#[test]
fn drop_params_decides_between_400_and_dropping() {
    let body = serde_json::to_vec(&json!({"model": "m", "logit_bias": {"1": 2},
        "messages": [{"role": "user", "content": "x"}]}))
    .unwrap();
    let e = adapter(false)
        .build(call(Operation::Chat, &body))
        .unwrap_err();
    assert_eq!(
        (e.status, e.error.param.as_deref()),
        (400, Some("logit_bias"))
    );
    let built = adapter(true).build(call(Operation::Chat, &body)).unwrap();
    assert_eq!(built.dropped, ["logit_bias"]);
    let sent: Value = serde_json::from_slice(&built.body).unwrap();
    assert!(sent.get("logit_bias").is_none());
}

#[test]
fn responses_match_their_fixtures() {
    let a = adapter(false);
    for name in ["response_text", "response_tool_call", "response_max_tokens"] {
        let c = a
            .parse_chat(&read(&format!("{name}.json")), "my-command", CREATED)
            .unwrap();
        snapshot(
            &format!("{name}.openai.json"),
            &serde_json::to_value(c).unwrap(),
        );
    }
}

#[test]
fn embeddings_match_their_fixtures() {
    let a = adapter(false);
    let built = a
        .build(call(
            Operation::Embeddings,
            &read("embed_request.openai.json"),
        ))
        .unwrap();
    assert_eq!(
        built.uri,
        Uri::from_static("https://api.cohere.com/v2/embed")
    );
    let sent: Value = serde_json::from_slice(&built.body).unwrap();
    snapshot("embed_request.cohere.json", &sent);
    let out = a
        .parse_embeddings(&read("embed_response.json"), "embed")
        .unwrap();
    snapshot(
        "embed_response.openai.json",
        &serde_json::to_value(&out).unwrap(),
    );

    // The OpenAI SDK's default `base64` becomes little-endian f32 bytes.
    let mut encoded = out.clone();
    liter_llm::providers::embeddings::encode_base64(&mut encoded);
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.data[0].embedding.as_str().unwrap())
        .unwrap();
    let floats: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(floats, [0.016296387f32, -0.008354187, -0.04699707]);
}

fn outputs(out: Vec<StreamOut>) -> Vec<Value> {
    out.into_iter()
        .map(|o| match o {
            StreamOut::Chunk(c) => serde_json::to_value(c).unwrap(),
            StreamOut::Error(e) => json!({"error": {"status": e.status, "body": e.body()}}),
            StreamOut::Done => json!("[DONE]"),
        })
        .collect()
}

fn translate(pieces: &[&[u8]], include_usage: bool) -> Vec<Value> {
    let mut t = adapter(false).stream(StreamMeta {
        id: "chatcmpl-cohere-1".into(),
        model: "my-command".into(),
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

const TRANSCRIPTS: [&str; 3] = ["stream_text", "stream_tool_call", "stream_error"];

#[test]
fn streams_match_their_fixtures() {
    for name in TRANSCRIPTS {
        let chunks = translate(&[&read(&format!("{name}.sse"))], true);
        snapshot(&format!("{name}.chunks.json"), &Value::Array(chunks));
    }
}

/// The streamed tool calls reassemble into the calls the transcript made.
#[test]
fn streamed_tool_calls_reassemble() {
    let chunks = translate(&[&read("stream_tool_call.sse")], false);
    let mut plan = String::new();
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for chunk in &chunks {
        let delta = &chunk["choices"][0]["delta"];
        plan.push_str(delta["reasoning_content"].as_str().unwrap_or(""));
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
    assert_eq!(plan, "I will search the weather.");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].0, "get_weather_vdr9cvj619fk");
    assert_eq!(calls[1].1, "get_weather");
    let args: Value = serde_json::from_str(&calls[1].2).unwrap();
    assert_eq!(args, json!({"location": "São Paulo 東京"}));
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "tool_calls"
    );
    assert_eq!(chunks.last().unwrap(), "[DONE]");
}

#[test]
fn truncated_streams_and_bad_events_are_errors() {
    let text = read("stream_text.sse");
    let cut = &text[..text.len() / 2];
    let out = translate(&[cut], false);
    assert_eq!(out.last().unwrap()["error"]["status"], 502);
    assert_eq!(
        out.last().unwrap()["error"]["body"]["error"]["code"],
        "stream_truncated"
    );
    let out = translate(&[b"event: message-start\ndata: {nope\n\n"], false);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["error"]["status"], 502);
}

#[test]
fn errors_match_their_fixture() {
    let a = adapter(false);
    let mut all = serde_json::Map::new();
    for (file, status) in [
        ("error_400_invalid_request.json", 400),
        ("error_400_too_many_tokens.json", 400),
        ("error_400_blocked.json", 400),
        ("error_401.json", 401),
        ("error_402.json", 402),
        ("error_403.json", 403),
        ("error_404.json", 404),
        ("error_422.json", 422),
        ("error_429.json", 429),
        ("error_498.json", 498),
        ("error_499.json", 499),
        ("error_500.json", 500),
        ("error_503.json", 503),
        ("error_504.json", 504),
    ] {
        let mut headers = http::HeaderMap::new();
        if status == 429 {
            headers.insert("retry-after", http::HeaderValue::from_static("30"));
        }
        let e = a.parse_error(status, &headers, &read(file));
        all.insert(
            file.into(),
            json!({
                "status": e.status,
                "retry_after_secs": e.retry_after.map(|d| d.as_secs()),
                "body": e.body(),
            }),
        );
    }
    snapshot("errors.expected.json", &Value::Object(all));
    // A body that is not Cohere's JSON is quoted.
    let e = a.parse_error(502, &http::HeaderMap::new(), b"<html>bad gateway</html>");
    assert_eq!((e.status, e.error.kind.as_str()), (502, "api_error"));
    assert!(e.error.message.contains("<html>bad gateway</html>"));
}

proptest! {
    /// The chunks do not depend on how the body is split into reads: cuts may fall
    /// inside `\r\n`, inside a multi-byte character, or make empty reads.
    #[test]
    fn same_chunks_however_the_bytes_are_split(
        which in 0..TRANSCRIPTS.len(),
        crlf in any::<bool>(),
        include_usage in any::<bool>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        let mut bytes = read(&format!("{}.sse", TRANSCRIPTS[which]));
        if crlf {
            bytes = String::from_utf8(bytes).unwrap().replace('\n', "\r\n").into_bytes();
        }
        let whole = translate(&[&bytes], include_usage);
        let pieces = common::split_at_cuts(&bytes, &cuts);
        let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(translate(&refs, include_usage), whole);
    }
}

#[test]
fn byte_at_a_time_and_crlf() {
    for name in TRANSCRIPTS {
        let bytes = read(&format!("{name}.sse"));
        let pieces: Vec<&[u8]> = bytes.chunks(1).collect();
        let whole = translate(&[&bytes], true);
        assert_eq!(translate(&pieces, true), whole, "{name}");
        let crlf = String::from_utf8(bytes.clone())
            .unwrap()
            .replace('\n', "\r\n");
        assert_eq!(translate(&[crlf.as_bytes()], true), whole, "{name}");
    }
}
