//! Fuzz harnesses: one function per parser that reads outside input. Each takes any
//! bytes and must neither panic nor hang; where a parser has a simpler reference (the
//! usage finder against serde), the harness also checks they agree.
//!
//! The same functions serve the AFL++ binary (`src/bin/fuzz.rs`, coverage-guided, see
//! `fuzz/run.sh`) and the replay of the stored corpora (`tests/replay.rs`, an ordinary
//! test run by CI).

use bytes::Bytes;
use liter_llm::providers::adapter::{AdapterConfig, ProviderSettings, Secret, StreamMeta};
use liter_llm::providers::bedrock::eventstream;
use liter_llm::providers::sse::SseDecoder;
use liter_llm::providers::SharedAdapter;
use liter_llm::Provider;

/// Every target, by name.
pub const TARGETS: &[&str] = &[
    "config",
    "head",
    "usage",
    "sse",
    "eventstream",
    "streams",
    "answers",
    "errors",
];

/// The harness of a target.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    Some(match name {
        "config" => config,
        "head" => head,
        "usage" => usage,
        "sse" => sse,
        "eventstream" => event_stream,
        "streams" => streams,
        "answers" => answers,
        "errors" => errors,
        _ => return None,
    })
}

/// The config loader: `${VAR}` interpolation (variables whose name has an even length
/// are set), TOML parsing, validation.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |var: &str| {
        var.len()
            .is_multiple_of(2)
            .then(|| format!("value-of-{var}"))
    };
    let overrides = liter_llm_proxy::config::Overrides::default();
    if let Err(e) = liter_llm_proxy::config::load_str(text, "fuzz.toml", &overrides, env) {
        // Rendering the error (line and column lookup) must not panic either.
        let _ = e.to_string();
    }
}

/// The request head parser, and the model rewrite it enables: the rewritten body
/// parses again, with the new model and the same flags.
pub fn head(data: &[u8]) {
    let Ok(head) = liter_llm_proxy::request::parse_head(data) else {
        return;
    };
    let body = Bytes::copy_from_slice(data);
    let rewritten = liter_llm_proxy::request::with_model(&body, &head, "rewritten/model");
    let again = liter_llm_proxy::request::parse_head(&rewritten)
        .unwrap_or_else(|e| panic!("a rewritten body no longer parses: {e}"));
    assert_eq!(again.model, "rewritten/model");
    assert_eq!(
        (again.stream, again.include_usage),
        (head.stream, head.include_usage)
    );
}

/// The usage finder agrees with serde on the top-level `usage` of a JSON object (a
/// missing `total_tokens` reads as 0, as in the finder's type).
pub fn usage(data: &[u8]) {
    let fast = liter_llm_proxy::upstream::usage::reported(data);
    let reference = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .filter(serde_json::Value::is_object);
    if let (Some(found), Some(value)) = (&fast, &reference) {
        if let Some(total) = value["usage"]["total_tokens"].as_u64() {
            assert_eq!(
                found.total_tokens, total,
                "usage finder disagrees with serde"
            );
        }
    }
}

/// Splits `data` into chunks whose sizes come from its first byte, so the fuzzer also
/// explores how a stream is cut.
fn chunks(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let size = data.first().map_or(1, |b| usize::from(b % 17) + 1);
    data.get(1..).unwrap_or_default().chunks(size)
}

/// The SSE decoder, fed in arbitrary pieces.
pub fn sse(data: &[u8]) {
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    for piece in chunks(data) {
        if decoder.feed(piece, &mut events).is_err() {
            return; // an event over the limit ends the stream
        }
    }
}

/// Bedrock's binary event-stream decoder, fed in arbitrary pieces.
pub fn event_stream(data: &[u8]) {
    let mut decoder = eventstream::Decoder::new();
    let mut messages = Vec::new();
    for piece in chunks(data) {
        if decoder.feed(piece, &mut messages).is_err() {
            return;
        }
    }
    let _ = decoder.has_partial();
}

/// One adapter per translated wire protocol, with fixed settings.
fn adapters() -> Vec<SharedAdapter> {
    let settings = ProviderSettings {
        aws_access_key_id: Some(Secret("AKIDFUZZ".into())),
        aws_secret_access_key: Some(Secret("fuzz-secret".into())),
        aws_region_name: Some("us-east-1".into()),
        ..Default::default()
    };
    [
        ("anthropic", "claude-fuzz"),
        ("gemini", "gemini-fuzz"),
        ("cohere", "command-fuzz"),
        ("bedrock", "anthropic.claude-fuzz"),
    ]
    .into_iter()
    .filter_map(|(prefix, model)| {
        let provider = Provider::from_prefix(prefix)?;
        let cfg = AdapterConfig {
            base_url: "http://127.0.0.1:9".into(),
            model_id: model.into(),
            api_key: Some(Secret("sk-fuzz".into())),
            settings: settings.clone(),
        };
        provider.adapter(&cfg)?.ok()
    })
    .collect()
}

/// Every adapter's stream translator, fed in arbitrary pieces and finished.
pub fn streams(data: &[u8]) {
    for adapter in adapters() {
        let mut translator = adapter.stream(StreamMeta {
            id: "chatcmpl-fuzz".into(),
            model: "fuzz".into(),
            created: 0,
            include_usage: true,
            max_event_bytes: 1 << 20,
        });
        for piece in chunks(data) {
            let _ = translator.feed(piece);
        }
        let _ = translator.finish();
        let _ = translator.usage();
    }
}

/// Every adapter's answer parsers.
pub fn answers(data: &[u8]) {
    for adapter in adapters() {
        let _ = adapter.parse_chat(data, "fuzz", 0);
        let _ = adapter.parse_embeddings(data, "fuzz");
    }
}

/// Every adapter's error parser, and the pass-through one, for a status from the first
/// byte.
pub fn errors(data: &[u8]) {
    let status = 400 + u16::from(data.first().copied().unwrap_or(0)) % 200;
    let body = data.get(1..).unwrap_or_default();
    let headers = http::HeaderMap::new();
    for adapter in adapters() {
        let _ = adapter.parse_error(status, &headers, body);
    }
    let status = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    let _ = liter_llm_proxy::upstream::openai::upstream_error(status, None, body, "fuzz");
}
