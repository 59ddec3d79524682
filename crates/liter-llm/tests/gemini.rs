//! The Gemini and Vertex AI adapters against fixtures written from Google's API
//! reference (`tests/fixtures/gemini/`): OpenAI requests and the `generateContent`
//! bodies they must become, answers and the completions they must become, streaming
//! transcripts and their chunks, error bodies and the errors they must become,
//! embeddings both ways, and the service-account token exchange.
//!
//! Expected `*.openai.json`, `*.chunks.json` and `errors.expected.json` files are
//! compared as JSON values; after a deliberate change, regenerate them with
//! `LITER_LLM_BLESS=1 cargo test -p liter-llm --test gemini` and review the diff. The
//! Gemini-side files are hand-written and never blessed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use liter_llm::providers::adapter::{
    Adapter, AdapterConfig, Call, Operation, ProviderSettings, Secret, StreamOut,
};
use liter_llm::providers::gemini::auth::ServiceAccount;
use liter_llm::providers::gemini::{
    build_batch_embed, build_generate, build_predict_embed, parse_batch_embed, parse_error,
    parse_predict_embed, parse_response, GeminiAdapter, StreamTranslator, VertexAdapter,
};
use liter_llm::types::{ChatCompletionRequest, EmbeddingRequest};
use proptest::prelude::*;
use serde_json::{json, Value};

const CREATED: u64 = 1_700_000_000;

const FIXTURES: &str = "gemini";

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

#[test]
fn requests_match_their_fixtures() {
    for name in ["request_basic", "request_tools"] {
        let req = request(&format!("{name}.openai.json"));
        let (body, dropped) = build_generate(&req, false).unwrap();
        assert!(dropped.is_empty());
        // Hand-written from the API reference: compared, never blessed.
        assert_eq!(
            Value::Object(body),
            read_json(&format!("{name}.gemini.json")),
            "{name}"
        );
    }
}

#[test]
fn adapters_build_urls_and_headers() {
    let cfg = AdapterConfig {
        base_url: "https://generativelanguage.googleapis.com/".into(),
        model_id: "gemini-2.5-flash".into(),
        api_key: Some(Secret("AIza-test".into())),
        settings: ProviderSettings::default(),
    };
    let a = GeminiAdapter::new(&cfg).unwrap();
    let body = serde_json::to_vec(&read_json("request_basic.openai.json")).unwrap();
    for (op, url) in [
        (Operation::Chat, "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"),
        (Operation::ChatStream, "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
    ] {
        let out = a.build(Call { op, body: &body, token: None, now: 0 }).unwrap();
        assert_eq!(out.uri, url);
        let key = out.headers.iter().find(|(n, _)| n == "x-goog-api-key").unwrap();
        assert_eq!(key.1, "AIza-test");
        assert!(key.1.is_sensitive());
        assert!(format!("{out:?}").contains("Sensitive") || !format!("{out:?}").contains("AIza-test"));
    }
    let embed = serde_json::to_vec(&read_json("embed_request.openai.json")).unwrap();
    let out = a
        .build(Call {
            op: Operation::Embeddings,
            body: &embed,
            token: None,
            now: 0,
        })
        .unwrap();
    assert_eq!(
        out.uri,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:batchEmbedContents"
    );
}

#[test]
fn responses_match_their_fixtures() {
    for name in ["response_text", "response_tool_call", "response_safety"] {
        let c = parse_response(&read(&format!("{name}.json")), "my-gemini", CREATED).unwrap();
        snapshot(
            &format!("{name}.openai.json"),
            &serde_json::to_value(c).unwrap(),
        );
    }
    let c = parse_response(&read("response_text.json"), "m", CREATED).unwrap();
    let u = c.usage.unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (1200, 32, 1232)
    );
    assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, 1024);
    assert_eq!(c.choices[1].finish_reason.as_deref(), Some("length"));
}

#[test]
fn a_blocked_prompt_is_a_content_filter_400() {
    let e = parse_response(&read("response_blocked.json"), "m", CREATED).unwrap_err();
    assert_eq!(
        (e.status, e.error.code.as_deref()),
        (400, Some("content_filter"))
    );
    assert!(e.error.message.contains("PROHIBITED_CONTENT"));
}

/// A tool call answered, sent back with its result, reaches Gemini as the same
/// functionCall (signature included) and a functionResponse of that name.
#[test]
fn tool_calls_round_trip() {
    let c = parse_response(&read("response_tool_call.json"), "m", CREATED).unwrap();
    let message = serde_json::to_value(&c.choices[0].message).unwrap();
    let calls = message["tool_calls"].clone();
    let req: ChatCompletionRequest = serde_json::from_value(json!({"model": "m", "messages": [
        {"role": "user", "content": "weather?"},
        message,
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny"},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": "{\"time\":\"noon\"}"}]}))
    .unwrap();
    let (body, _) = build_generate(&req, false).unwrap();
    let answer: Value = read_json("response_tool_call.json");
    assert_eq!(
        body["contents"][1]["parts"],
        answer["candidates"][0]["content"]["parts"]
    );
    assert_eq!(
        body["contents"][2]["parts"],
        json!([{"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}},
               {"functionResponse": {"name": "get_time", "response": {"time": "noon"}}}])
    );
}

fn outputs(out: Vec<StreamOut>) -> Vec<Value> {
    out.into_iter()
        .map(|o| match o {
            StreamOut::Chunk(c) => serde_json::to_value(c).unwrap(),
            StreamOut::Error(e) => json!({"error": e.body(), "status": e.status}),
            StreamOut::Done => json!("[DONE]"),
        })
        .collect()
}

fn translate(pieces: &[&[u8]], include_usage: bool) -> Vec<Value> {
    let mut t = StreamTranslator::new(
        "chatcmpl-test".into(),
        "my-gemini".into(),
        CREATED,
        include_usage,
    );
    let mut out = Vec::new();
    for p in pieces {
        out.extend(t.feed(p));
    }
    out.extend(t.finish());
    outputs(out)
}

#[test]
fn streams_match_their_fixtures() {
    for name in ["stream_text", "stream_tool_call", "stream_error"] {
        let bytes = read(&format!("{name}.sse"));
        snapshot(
            &format!("{name}.chunks.json"),
            &Value::from(translate(&[&bytes], true)),
        );
    }
}

#[test]
fn stream_usage_is_reported_for_accounting_without_include_usage() {
    let bytes = read("stream_text.sse");
    let mut t = StreamTranslator::new("c".into(), "m".into(), 0, false);
    let mut out = t.feed(&bytes);
    out.extend(t.finish());
    let chunks = outputs(out);
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    let u = t.usage().unwrap();
    assert_eq!((u.prompt_tokens, u.completion_tokens), (8, 9));
    assert_eq!(
        u.completion_tokens_details.unwrap().reasoning_tokens,
        Some(5)
    );
}

#[test]
fn errors_match_their_fixture() {
    let mut all = serde_json::Map::new();
    for (file, status) in [
        ("error_400_invalid_argument.json", 400),
        ("error_400_api_key_invalid.json", 400),
        ("error_400_token_count.json", 400),
        ("error_401.json", 401),
        ("error_403.json", 403),
        ("error_404.json", 404),
        ("error_429.json", 429),
        ("error_500.json", 500),
        ("error_503.json", 503),
        ("error_504.json", 504),
    ] {
        let e = parse_error(status, &http::HeaderMap::new(), &read(file));
        all.insert(
            file.into(),
            json!({"status": e.status, "body": e.body(),
                "retry_after_secs": e.retry_after.map(|d| d.as_secs_f64())}),
        );
    }
    let all = Value::Object(all);
    snapshot("errors.expected.json", &all);
    // The classes the gateway relies on.
    assert_eq!(all["error_400_api_key_invalid.json"]["status"], 401);
    assert_eq!(
        all["error_400_token_count.json"]["body"]["error"]["code"],
        "context_length_exceeded"
    );
    assert_eq!(all["error_429.json"]["retry_after_secs"], 17.0);
    assert_eq!(all["error_503.json"]["body"]["error"]["code"], "overloaded");
}

#[test]
fn embeddings_both_ways() {
    let req: EmbeddingRequest =
        serde_json::from_value(read_json("embed_request.openai.json")).unwrap();
    assert_eq!(
        build_batch_embed(&req, "gemini-embedding-001").unwrap(),
        read_json("embed_batch.gemini.json")
    );
    assert_eq!(
        build_predict_embed(&req).unwrap(),
        read_json("embed_predict.vertex.json")
    );
    let a = parse_batch_embed(&read("embed_batch_response.json"), "my-embedder").unwrap();
    let b = parse_predict_embed(&read("embed_predict_response.json"), "my-embedder").unwrap();
    assert_eq!(
        serde_json::to_value(&a.data).unwrap(),
        serde_json::to_value(&b.data).unwrap()
    );
    snapshot(
        "embed_response.openai.json",
        &serde_json::to_value(&b).unwrap(),
    );
    assert_eq!(b.usage.prompt_tokens, 15);
    assert_eq!(a.usage.prompt_tokens, 0);
}

fn test_account() -> ServiceAccount {
    ServiceAccount::from_file(
        common::path(FIXTURES, "TEST-ONLY-service-account.json")
            .to_str()
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn the_token_assertion_is_a_signed_jwt() {
    let sa = test_account();
    let req = sa.token_request(CREATED).unwrap();
    assert_eq!(req.uri, "https://oauth2.googleapis.com/token");
    assert_eq!(req.headers[0].1, "application/x-www-form-urlencoded");
    let form = String::from_utf8(req.body.to_vec()).unwrap();
    let assertion = form
        .strip_prefix("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=")
        .unwrap();
    let parts: Vec<&str> = assertion.split('.').collect();
    assert_eq!(parts.len(), 3);
    let decode =
        |s: &str| -> Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap() };
    assert_eq!(
        decode(parts[0]),
        json!({"alg": "RS256", "typ": "JWT", "kid": "0000000000000000000000000000000000000000"})
    );
    assert_eq!(
        decode(parts[1]),
        json!({"iss": "test-only@liter-llm-test-project.iam.gserviceaccount.com",
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "aud": "https://oauth2.googleapis.com/token",
            "iat": CREATED, "exp": CREATED + 3600})
    );
    // The signature verifies with the account's public key, and not over other bytes.
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        sa.public_key_der(),
    );
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let signed = format!("{}.{}", parts[0], parts[1]);
    key.verify(signed.as_bytes(), &signature).unwrap();
    assert!(key.verify(b"something else", &signature).is_err());
}

#[test]
fn vertex_uses_the_exchanged_token() {
    let cfg = AdapterConfig {
        base_url: "https://europe-west4-aiplatform.googleapis.com".into(),
        model_id: "gemini-2.5-pro".into(),
        api_key: None,
        settings: ProviderSettings {
            vertex_location: Some("europe-west4".into()),
            vertex_credentials: Some(
                common::path(FIXTURES, "TEST-ONLY-service-account.json")
                    .to_str()
                    .unwrap()
                    .into(),
            ),
            ..ProviderSettings::default()
        },
    };
    let a = VertexAdapter::new(&cfg).unwrap();
    assert!(a.token_exchange(CREATED).unwrap().is_ok());
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let call = |token| Call {
        op: Operation::Chat,
        body,
        token,
        now: CREATED,
    };
    assert_eq!(a.build(call(None)).unwrap_err().status, 401);
    let out = a.build(call(Some("ya29.abc"))).unwrap();
    // The project comes from the key file when vertex_project is unset.
    assert_eq!(
        out.uri,
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/liter-llm-test-project/locations/europe-west4/publishers/google/models/gemini-2.5-pro:generateContent"
    );
    let auth = out
        .headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .unwrap();
    assert_eq!(auth.1, "Bearer ya29.abc");
    let t = a
        .parse_token(
            200,
            br#"{"access_token":"ya29.new","expires_in":3599,"token_type":"Bearer"}"#,
        )
        .unwrap();
    assert_eq!((t.token.as_str(), t.expires_in_secs), ("ya29.new", 3599));
}

proptest! {
    /// However the bytes are split (inside CRLFs, inside multi-byte characters), and
    /// whether lines end in CRLF or LF, the chunks are the same.
    #[test]
    fn same_chunks_however_the_bytes_are_split(
        which in 0usize..3,
        lf in any::<bool>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        let name = ["stream_text.sse", "stream_tool_call.sse", "stream_error.sse"][which];
        let mut bytes = read(name);
        if lf {
            bytes = String::from_utf8(bytes).unwrap().replace("\r\n", "\n").into_bytes();
        }
        let whole = translate(&[&bytes], true);
        let pieces = common::split_at_cuts(&bytes, &cuts);
        let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(translate(&refs, true), whole);
    }
}

#[test]
fn byte_at_a_time() {
    let bytes = read("stream_text.sse");
    let pieces: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(translate(&pieces, true), translate(&[&bytes], true));
}
