//! Model ids in upstream URLs: whatever model id a client sends (`/`, `?`, `#`, `%`,
//! `..`, unicode, control characters), every adapter either refuses it (exactly the ids
//! `check_model_id` refuses) or builds a URL with the configured scheme, host and path
//! prefix, the id as one segment that decodes back to itself, no `.`/`..` segment, and
//! only the query the operation needs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::Uri;
use liter_llm::providers::adapter::{
    Adapter, AdapterConfig, Call, Operation, ProviderSettings, Secret,
};
use liter_llm::providers::anthropic::{AnthropicAdapter, AnthropicOptions};
use liter_llm::providers::azure;
use liter_llm::providers::bedrock::BedrockAdapter;
use liter_llm::providers::cohere::CohereAdapter;
use liter_llm::providers::gemini::{GeminiAdapter, VertexAdapter};
use liter_llm::providers::url::check_model_id;
use proptest::prelude::*;

const CHAT: &[u8] = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
const EMBED: &[u8] = br#"{"model":"m","input":"hi"}"#;

fn cfg(base_url: &str, model_id: &str) -> AdapterConfig {
    AdapterConfig {
        base_url: base_url.into(),
        model_id: model_id.into(),
        api_key: Some(Secret("key-0123456789".into())),
        settings: ProviderSettings {
            vertex_project: Some("proj".into()),
            aws_access_key_id: Some(Secret("AKIDEXAMPLE".into())),
            aws_secret_access_key: Some(Secret("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into())),
            aws_region_name: Some("us-east-1".into()),
            ..ProviderSettings::default()
        },
    }
}

fn uri(adapter: &dyn Adapter, op: Operation) -> Uri {
    let body = if op == Operation::Embeddings {
        EMBED
    } else {
        CHAT
    };
    adapter
        .build(Call {
            op,
            body,
            token: Some("tok"),
            now: 1_700_000_000,
        })
        .unwrap()
        .uri
}

/// `s` percent-decoded (the segment as a server reads it).
fn decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Checks `uri` against the configured origin and `prefix`: the rest of the path is the
/// encoded model id and then `suffix` (`:method` or `/action`), and the query is
/// `query`.
fn check(uri: &Uri, origin: &str, prefix: &str, model_id: &str, suffix: &str, query: Option<&str>) {
    assert_eq!(
        format!(
            "{}://{}",
            uri.scheme_str().unwrap(),
            uri.authority().unwrap()
        ),
        origin,
        "{uri}"
    );
    let path = uri.path();
    for seg in path.split('/') {
        assert!(seg != ".." && seg != ".", "dot segment in {uri}");
    }
    let rest = path
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{uri} is not under {prefix}"));
    let segment = rest
        .strip_suffix(suffix)
        .unwrap_or_else(|| panic!("{uri} does not end with {suffix}"));
    assert!(
        !segment.contains('/'),
        "the id is more than one segment in {uri}"
    );
    assert!(
        !segment.contains(':'),
        "a raw ':' in the id's segment of {uri}"
    );
    assert_eq!(decode(segment), model_id.as_bytes(), "{uri}");
    assert_eq!(uri.query(), query, "{uri}");
}

/// Model ids worth trying: anything, and the hostile shapes the issue names.
fn model_ids() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9./?#%:@ \u{e9}\u{1f30d}\\\\-]{0,24}",
        "(\\.\\./|\\./|%2e%2e/|/){0,4}[a-z?#=.]{0,8}",
        "claude[a-z0-9./?#%:@-]{0,12}",
        "[a-z]{0,4}[\n\r\t\u{0}\u{1b}\u{85}][a-z]{0,4}",
        Just("..".to_string()),
        Just(".".to_string()),
        Just("../../../../canary".to_string()),
        Just("x?y=1".to_string()),
        Just("x#y".to_string()),
        Just("m".repeat(300)),
    ]
}

/// `Ok` exactly for the ids `check_model_id` accepts.
fn built<T>(id: &str, adapter: Result<T, String>) -> Option<T> {
    match adapter {
        Ok(a) => {
            assert!(check_model_id(id).is_ok(), "{id:?} was accepted");
            Some(a)
        }
        Err(e) => {
            assert!(check_model_id(id).is_err(), "{id:?} was refused: {e}");
            None
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn gemini_urls_stay_under_the_model_path(id in model_ids()) {
        let base = "https://gemini.example:8443/proxy";
        if let Some(a) = built(&id, GeminiAdapter::new(&cfg(base, &id))) {
            let origin = "https://gemini.example:8443";
            let prefix = "/proxy/v1beta/models/";
            check(&uri(&a, Operation::Chat), origin, prefix, &id, ":generateContent", None);
            check(
                &uri(&a, Operation::ChatStream),
                origin,
                prefix,
                &id,
                ":streamGenerateContent",
                Some("alt=sse"),
            );
            check(&uri(&a, Operation::Embeddings), origin, prefix, &id, ":batchEmbedContents", None);
        }
    }

    #[test]
    fn vertex_urls_stay_under_the_model_path(id in model_ids()) {
        let base = "https://us-central1-aiplatform.googleapis.com";
        if let Some(a) = built(&id, VertexAdapter::new(&cfg(base, &id))) {
            let publisher = if id.starts_with("claude") { "anthropic" } else { "google" };
            let prefix =
                format!("/v1/projects/proj/locations/us-central1/publishers/{publisher}/models/");
            let (chat, stream, query) = if publisher == "anthropic" {
                (":rawPredict", ":streamRawPredict", None)
            } else {
                (":generateContent", ":streamGenerateContent", Some("alt=sse"))
            };
            check(&uri(&a, Operation::Chat), base, &prefix, &id, chat, None);
            check(&uri(&a, Operation::ChatStream), base, &prefix, &id, stream, query);
            if publisher == "google" {
                check(&uri(&a, Operation::Embeddings), base, &prefix, &id, ":predict", None);
            }
        }
    }

    #[test]
    fn bedrock_urls_stay_under_the_model_path(id in model_ids()) {
        let base = "https://bedrock-runtime.us-east-1.amazonaws.com";
        if let Some(a) = built(&id, BedrockAdapter::new(&cfg(base, &id))) {
            check(&uri(&a, Operation::Chat), base, "/model/", &id, "/converse", None);
            check(&uri(&a, Operation::ChatStream), base, "/model/", &id, "/converse-stream", None);
        }
    }

    #[test]
    fn azure_urls_stay_under_the_deployment_path(id in model_ids()) {
        let base = "https://res.openai.azure.com";
        let urls = built(&id, azure::urls(base, &id, None).map_err(|e| e.to_string()));
        if let Some(urls) = urls {
            let prefix = "/openai/deployments/";
            let query = Some("api-version=2024-10-21");
            let chat: Uri = urls.chat.parse().unwrap();
            check(&chat, base, prefix, &id, "/chat/completions", query);
            let embeddings: Uri = urls.embeddings.parse().unwrap();
            check(&embeddings, base, prefix, &id, "/embeddings", query);
        }
        // The v1 API has the name in the body: its URLs are fixed.
        if let Ok(v1) = azure::urls(base, &id, Some("v1")) {
            assert_eq!(v1.chat, format!("{base}/openai/v1/chat/completions"));
        }
    }

    /// Anthropic and Cohere carry the model in the body: the URL never changes.
    #[test]
    fn anthropic_and_cohere_urls_never_carry_the_id(id in model_ids()) {
        let a = AnthropicAdapter::new(
            &cfg("https://api.anthropic.com", &id),
            AnthropicOptions::default(),
        )
        .unwrap();
        prop_assert_eq!(uri(&a, Operation::ChatStream), "https://api.anthropic.com/v1/messages");
        let c = CohereAdapter::new(&cfg("https://api.cohere.com", &id)).unwrap();
        prop_assert_eq!(uri(&c, Operation::Chat), "https://api.cohere.com/v2/chat");
    }
}
