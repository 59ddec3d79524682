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

/// Everything the gateway's own crates log on this thread, captured in-process.
///
/// One global subscriber (installed once, for the whole test binary) writes the events
/// of a thread that asked for a capture to that capture, and drops the others. Global,
/// not a scoped default per test: a callsite first hit on another thread while a
/// scoped default is being set can keep a cached "never" and be lost to it.
mod logs {
    use std::cell::RefCell;
    use std::fmt::{Debug, Write};
    use std::sync::{Arc, Mutex, Once};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    #[derive(Clone, Default)]
    pub struct Captured(Arc<Mutex<String>>);

    impl Captured {
        pub fn text(&self) -> String {
            self.0.lock().unwrap().clone()
        }
    }

    thread_local! {
        static ACTIVE: RefCell<Option<Captured>> = const { RefCell::new(None) };
    }

    /// Ends this thread's capture when dropped.
    pub struct Guard;

    impl Drop for Guard {
        fn drop(&mut self) {
            ACTIVE.with(|a| a.borrow_mut().take());
        }
    }

    struct Capture;

    struct Line<'a>(&'a mut String);

    impl Visit for Line<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn write(level: &str, f: impl FnOnce(&mut Line<'_>)) {
        ACTIVE.with(|a| {
            if let Some(captured) = &*a.borrow() {
                let mut line = level.to_string();
                f(&mut Line(&mut line));
                let mut all = captured.0.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
    }

    impl Subscriber for Capture {
        /// Every level of the gateway's own crates (the request path runs on the test's
        /// thread: the tests use tokio's current-thread runtime).
        fn enabled(&self, m: &Metadata<'_>) -> bool {
            m.target().starts_with("liter_llm")
        }

        fn new_span(&self, span: &Attributes<'_>) -> Id {
            write("SPAN", |line| span.record(line));
            Id::from_u64(1)
        }

        fn record(&self, _: &Id, values: &Record<'_>) {
            write("RECORD", |line| values.record(line));
        }

        fn record_follows_from(&self, _: &Id, _: &Id) {}

        fn event(&self, event: &Event<'_>) {
            write(event.metadata().level().as_str(), |line| event.record(line));
        }

        fn enter(&self, _: &Id) {}

        fn exit(&self, _: &Id) {}
    }

    /// Captures what this thread logs until the guard is dropped.
    pub fn capture() -> (Captured, Guard) {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            tracing::subscriber::set_global_default(Capture)
                .expect("another global subscriber in the gateway tests");
            tracing::callsite::rebuild_interest_cache();
        });
        let captured = Captured::default();
        ACTIVE.with(|a| *a.borrow_mut() = Some(captured.clone()));
        (captured, Guard)
    }
}

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

// ---- The gateway's secrets in upstream text ---------------------------------------

/// The key never appears, and the redaction shows where it was.
fn assert_scrubbed(text: &str, secret: &str) {
    assert!(!text.contains(secret), "the secret leaked: {text}");
    assert!(text.contains("[redacted]"), "no redaction in: {text}");
}

#[tokio::test]
async fn an_echoed_key_reaches_neither_the_client_nor_the_log() {
    let (logs, _guard) = logs::capture();
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&base_config(&mock, "")).await;
    // Pass-through (the OpenAI wire): errors relayed as they are, and a 5xx as a 502.
    for (status, answered) in [(401, 401), (400, 400), (500, 502)] {
        mock.push_fault(Fault::echo_key(status));
        let err = expect_error(gw.chat(MASTER, hello("gpt-4o")).await, answered).await;
        assert_scrubbed(&err.to_string(), UPSTREAM_KEY);
    }
    // An error event in the middle of a stream.
    mock.push_fault(Fault::echo_key_in_stream(1));
    let resp = gw.post("/v1/chat/completions", Some(MASTER), &streamed("gpt-4o"));
    let text = stream_text(resp.send().await.unwrap(), Duration::from_secs(20)).await;
    assert_scrubbed(&text, UPSTREAM_KEY);
    // The echo was real: the mock got the key, and the log saw the errors, scrubbed.
    let sent = format!("Bearer {UPSTREAM_KEY}");
    assert!(mock
        .requests()
        .iter()
        .all(|r| r.header("authorization") == Some(sent.as_str())));
    let log = logs.text();
    assert!(log.contains("Incorrect API key provided"), "{log}");
    assert!(!log.contains(UPSTREAM_KEY), "the key is in the log:\n{log}");
}

#[tokio::test]
async fn an_echoed_key_is_scrubbed_from_translated_errors_too() {
    let (logs, _guard) = logs::capture();
    let mock = MockUpstream::start().await.unwrap();
    let gw = Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\n[[models]]\nname = \"claude\"\nprovider_model = \"anthropic/claude-sonnet-4-20250514\"\napi_key = \"{UPSTREAM_KEY}\"\nbase_url = \"http://{}\"\n",
        mock.addr()
    ))
    .await;
    for status in [401, 400, 500] {
        mock.push_fault(Fault::echo_key(status));
        let resp = gw.chat(MASTER, hello("claude")).await;
        let text = resp.text().await.unwrap();
        assert_scrubbed(&text, UPSTREAM_KEY);
    }
    mock.push_fault(Fault::echo_key_in_stream(2));
    let resp = gw.post("/v1/chat/completions", Some(MASTER), &streamed("claude"));
    let text = stream_text(resp.send().await.unwrap(), Duration::from_secs(20)).await;
    assert_scrubbed(&text, UPSTREAM_KEY);
    // Translated errors are the answer, not logged; nothing else may log the key.
    let log = logs.text();
    assert!(log.contains("status=401"), "{log}");
    assert!(!log.contains(UPSTREAM_KEY), "the key is in the log:\n{log}");
}

#[tokio::test]
async fn aws_secrets_and_vertex_key_material_are_scrubbed() {
    let mock = MockUpstream::start().await.unwrap();
    // Bedrock: the secret key and the session token, echoed in full.
    let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYSCRUBME";
    let token = "FQoGZXIvYXdzEXAMPLESESSIONTOKEN0123";
    let sa = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../liter-llm/tests/fixtures/gemini/TEST-ONLY-service-account.json"
    ))
    .unwrap();
    let mut sa: Value = serde_json::from_str(&sa).unwrap();
    sa["token_uri"] = json!(format!("http://{}/token", mock.addr()));
    let pem = sa["private_key"].as_str().unwrap().to_string();
    let creds = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(creds.path(), sa.to_string()).unwrap();
    let gw = Gateway::start(&format!(
        "[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\n\
         [[models]]\nname = \"nova\"\nprovider_model = \"bedrock/us.amazon.nova-lite-v1:0\"\naws_access_key_id = \"AKIDTEST\"\naws_secret_access_key = \"{secret}\"\naws_session_token = \"{token}\"\naws_region_name = \"us-west-2\"\nbase_url = \"http://{addr}\"\n\
         [[models]]\nname = \"vtx\"\nprovider_model = \"vertex_ai/gemini-2.0-flash\"\nvertex_project = \"proj\"\nvertex_credentials = \"{}\"\nbase_url = \"http://{addr}\"\n",
        creds.path().display(),
        addr = mock.addr()
    ))
    .await;
    mock.push_fault(
        Fault::status(403)
            .with_body(json!({"message": format!("The request signature with {secret} and {token} does not match")})),
    );
    let text = gw.chat(MASTER, hello("nova")).await.text().await.unwrap();
    assert_scrubbed(&text, secret);
    assert!(!text.contains(token), "{text}");

    // Vertex AI: a line of the service account's private key, echoed.
    let line = pem
        .lines()
        .find(|l| l.len() >= 60 && !l.starts_with("-----"))
        .unwrap()
        .to_string();
    mock.push_fault(
        Fault::status(400)
            .for_model("gemini-2.0-flash")
            .with_body(json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                "message": format!("cannot parse key {line}")}})),
    );
    let text = gw.chat(MASTER, hello("vtx")).await.text().await.unwrap();
    assert_scrubbed(&text, &line);
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
