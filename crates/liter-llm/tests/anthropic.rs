//! The Anthropic adapter against fixtures written from Anthropic's API reference
//! (`tests/fixtures/anthropic/`): OpenAI requests and the Anthropic bodies they must
//! become, Anthropic answers and the completions they must become, streaming
//! transcripts and their chunks, error bodies and the errors they must become.
//!
//! Expected files are compared as JSON values. After a deliberate change, regenerate
//! them with `LITER_LLM_BLESS=1 cargo test -p liter-llm --test anthropic` and review
//! the diff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use liter_llm::providers::anthropic::{
    build_request, parse_error, parse_response, AnthropicOptions, StreamOut, StreamTranslator,
};
use liter_llm::types::{ChatCompletionRequest, Message};
use proptest::prelude::*;
use serde_json::{json, Value};

const MODEL_ID: &str = "claude-sonnet-4-5-20250929";
const CREATED: u64 = 1_700_000_000;

const FIXTURES: &str = "anthropic";

fn read(name: &str) -> Vec<u8> {
    common::read(FIXTURES, name)
}

fn read_json(name: &str) -> Value {
    common::read_json(FIXTURES, name)
}

fn snapshot(name: &str, actual: &Value) {
    common::snapshot(FIXTURES, name, actual)
}

fn request(name: &str) -> ChatCompletionRequest {
    serde_json::from_value(read_json(name)).unwrap()
}

/// Fixtures set OpenAI-only parameters, so they are built with `drop_params` on.
fn body_of(req: &ChatCompletionRequest) -> Value {
    let opts = AnthropicOptions {
        drop_params: true,
        ..AnthropicOptions::default()
    };
    let built = build_request(req, MODEL_ID, &opts).unwrap();
    serde_json::from_slice(&built.body).unwrap()
}

#[test]
fn unsupported_parameters_are_400_unless_drop_params() {
    let req = request("request_basic.openai.json");
    let err = build_request(&req, MODEL_ID, &AnthropicOptions::default()).unwrap_err();
    assert_eq!(err.status(), 400);
    let err = liter_llm::types::ProviderError::from(err);
    assert_eq!(err.error.param.as_deref(), Some("frequency_penalty"));
    assert!(
        err.error.message.contains("drop_params"),
        "{}",
        err.error.message
    );

    let opts = AnthropicOptions {
        drop_params: true,
        ..AnthropicOptions::default()
    };
    let built = build_request(&req, MODEL_ID, &opts).unwrap();
    assert_eq!(
        built.dropped,
        ["frequency_penalty", "metadata", "presence_penalty", "seed"]
    );

    // `null` means "not set": nothing to drop, nothing to refuse.
    let mut v: Value = serde_json::from_slice(&read("request_tools.openai.json")).unwrap();
    v["seed"] = Value::Null;
    let req: ChatCompletionRequest = serde_json::from_value(v).unwrap();
    let built = build_request(&req, MODEL_ID, &AnthropicOptions::default()).unwrap();
    assert!(built.dropped.is_empty());
}

#[test]
fn requests_match_their_fixtures() {
    for name in ["request_basic", "request_tools", "request_thinking"] {
        let req = request(&format!("{name}.openai.json"));
        snapshot(&format!("{name}.anthropic.json"), &body_of(&req));
    }
}

#[test]
fn the_stream_flag_follows_the_request() {
    let opts = AnthropicOptions {
        drop_params: true,
        ..AnthropicOptions::default()
    };
    let streamed = build_request(&request("request_tools.openai.json"), MODEL_ID, &opts).unwrap();
    assert!(streamed.stream);
    let whole = build_request(&request("request_basic.openai.json"), MODEL_ID, &opts).unwrap();
    assert!(!whole.stream);
}

#[test]
fn responses_match_their_fixtures() {
    for name in [
        "response_text",
        "response_tool_use",
        "response_thinking",
        "response_refusal",
    ] {
        let completion =
            parse_response(&read(&format!("{name}.json")), "claude-sonnet", CREATED).unwrap();
        snapshot(
            &format!("{name}.openai.json"),
            &serde_json::to_value(&completion).unwrap(),
        );
    }
}

/// A parsed answer sent back as the next request's history becomes the same blocks.
#[test]
fn assistant_answers_round_trip() {
    for (name, expected) in [
        ("response_tool_use.json", [1usize, 2]),
        ("response_thinking.json", [0, 1]),
    ] {
        let original = read_json(name);
        let completion = parse_response(&read(name), "claude-sonnet", CREATED).unwrap();
        let message: Message =
            serde_json::from_value(serde_json::to_value(&completion.choices[0].message).unwrap())
                .unwrap();
        let req = ChatCompletionRequest {
            messages: vec![
                serde_json::from_value(json!({"role": "user", "content": "go"})).unwrap(),
                message,
            ],
            ..request("request_basic.openai.json")
        };
        let sent = body_of(&req)["messages"][1]["content"].clone();
        for i in expected {
            let block = original["content"][i].clone();
            assert!(
                sent.as_array().unwrap().contains(&block),
                "{name}: {block} not in {sent}"
            );
        }
    }
}

/// Everything a translator emits, as JSON: chunks, `{"status","error"}`, `"[DONE]"`.
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
    let mut t = StreamTranslator::new(
        "chatcmpl-anthropic-1".into(),
        "claude-sonnet".into(),
        CREATED,
        include_usage,
    );
    let mut out = Vec::new();
    for piece in pieces {
        out.extend(t.feed(piece));
    }
    out.extend(t.finish());
    outputs(out)
}

const TRANSCRIPTS: [&str; 3] = ["stream_tool_use", "stream_thinking", "stream_error"];

#[test]
fn streams_match_their_fixtures() {
    for name in TRANSCRIPTS {
        let chunks = translate(&[&read(&format!("{name}.sse"))], true);
        snapshot(&format!("{name}.chunks.json"), &Value::Array(chunks));
    }
}

/// The streamed tool calls and text reassemble into what the transcript meant.
#[test]
fn streamed_tool_calls_reassemble() {
    let chunks = translate(&[&read("stream_tool_use.sse")], false);
    let mut text = String::new();
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for chunk in &chunks {
        assert!(chunk.get("usage").is_none() || chunk == "[DONE]", "{chunk}");
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
    assert_eq!(
        text,
        "Okay, let's check the weather for São Paulo 🌦️ and 東京:"
    );
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    assert_eq!(calls[0].1, "get_weather");
    let args: Value = serde_json::from_str(&calls[0].2).unwrap();
    assert_eq!(
        args,
        json!({"location": "São Paulo, BR", "unit": "celsius"})
    );
    let args: Value = serde_json::from_str(&calls[1].2).unwrap();
    assert_eq!(args, json!({"location": "東京"}));
    let finish = &chunks[chunks.len() - 2]["choices"][0]["finish_reason"];
    assert_eq!(finish, "tool_calls");
    assert_eq!(chunks.last().unwrap(), "[DONE]");
}

#[test]
fn crlf_transcripts_give_the_same_chunks() {
    for name in TRANSCRIPTS {
        let lf = read(&format!("{name}.sse"));
        let crlf = String::from_utf8(lf.clone()).unwrap().replace('\n', "\r\n");
        assert_eq!(translate(&[&lf], true), translate(&[crlf.as_bytes()], true));
    }
}

#[test]
fn errors_match_their_fixture() {
    let mut all = serde_json::Map::new();
    for (file, status) in [
        ("error_400_invalid_request.json", 400),
        ("error_400_prompt_too_long.json", 400),
        ("error_401.json", 401),
        ("error_403.json", 403),
        ("error_404.json", 404),
        ("error_413.json", 413),
        ("error_429.json", 429),
        ("error_500.json", 500),
        ("error_529.json", 529),
    ] {
        let mut headers = http::HeaderMap::new();
        if status == 429 {
            headers.insert("retry-after", http::HeaderValue::from_static("30"));
        }
        let e = parse_error(status, &headers, &read(file));
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
fn byte_at_a_time() {
    for name in TRANSCRIPTS {
        let bytes = read(&format!("{name}.sse"));
        let pieces: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(
            translate(&pieces, true),
            translate(&[&bytes], true),
            "{name}"
        );
    }
}

#[test]
fn blessing_golden_files_is_refused_under_ci() {
    assert_eq!(common::blessing(None, false), Ok(false));
    assert_eq!(common::blessing(None, true), Ok(true));
    assert_eq!(common::blessing(Some("false"), true), Ok(true));
    assert_eq!(common::blessing(Some("true"), false), Ok(false));
    assert!(common::blessing(Some("true"), true).is_err());
    assert!(common::blessing(Some("1"), true).is_err());
}
