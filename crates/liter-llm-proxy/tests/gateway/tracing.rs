//! `general.enable_tracing`: spans exported over OTLP/HTTP to a real receiver (an axum
//! server on port 0 decoding the protobuf `ExportTraceServiceRequest`).

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::HeaderMap;
use mock_upstream::{Fault, MockUpstream};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

use crate::support::*;

/// What the receiver got: each export's headers and spans (with the service name).
#[derive(Default)]
struct Received {
    headers: Vec<HeaderMap>,
    spans: Vec<(String, Span)>,
}

async fn receiver() -> (String, Arc<Mutex<Received>>) {
    let got = Arc::new(Mutex::new(Received::default()));
    let state = got.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                let req = ExportTraceServiceRequest::decode(body).unwrap();
                let mut s = state.lock().unwrap();
                s.headers.push(headers);
                for rs in req.resource_spans {
                    let service = otlp_service(rs.resource.as_ref());
                    for ss in rs.scope_spans {
                        for span in ss.spans {
                            s.spans.push((service.clone(), span));
                        }
                    }
                }
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Any> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
}

fn text<'a>(span: &'a Span, key: &str) -> &'a str {
    match attr(span, key) {
        Some(Any::StringValue(s)) => s,
        other => panic!("{key} is {other:?} on {}", span.name),
    }
}

fn int(span: &Span, key: &str) -> i64 {
    match attr(span, key) {
        Some(Any::IntValue(n)) => *n,
        other => panic!("{key} is {other:?} on {}", span.name),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn config(mock: &MockUpstream, extra: &str) -> String {
    format!(
        r#"
[general]
master_key = "{MASTER}"
max_retries = 1
enable_cost_tracking = true
enable_tracing = true
{extra}

[[models]]
name = "gpt-4o"
provider_model = "openai/gpt-4o"
api_key = "{UPSTREAM_KEY}"
base_url = "{base}"
"#,
        base = mock.base_url()
    )
}

async fn start(mock: &MockUpstream, extra: &str, endpoint: &str) -> Gateway {
    let endpoint = endpoint.to_owned();
    Gateway::start_with_env(&config(mock, extra), move |v| match v {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
        "OTEL_EXPORTER_OTLP_HEADERS" => Some("x-collector-token=otlp-secret-123".into()),
        "OTEL_SERVICE_NAME" => Some("gw-under-test".into()),
        _ => None,
    })
    .await
}

/// Sends every ended span and waits for the receiver to have them.
async fn flush(gw: &Gateway) {
    let tracing = gw.app.tracing.clone().unwrap();
    tokio::task::spawn_blocking(move || tracing.flush())
        .await
        .unwrap();
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_and_its_attempts_are_spans_in_the_clients_trace() {
    let (url, got) = receiver().await;
    let mock = MockUpstream::start().await.unwrap();
    let gw = start(&mock, "", &url).await;
    mock.push_fault(Fault::status(500));
    let body = json!({"model": "gpt-4o", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9,
        "messages": [{"role": "user", "content": "hello gateway"}]});
    let resp = gw
        .post("/v1/chat/completions", Some(MASTER), &body)
        .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    // The request span ends when the request log writes its line, just after the
    // client has its answer: wait (bounded) for it, then flush.
    wait_for_spans(&gw, &got, 3).await;
    let got = got.lock().unwrap();
    assert_eq!(got.spans.len(), 3, "{:?}", got.spans);
    assert_eq!(got.headers[0]["x-collector-token"], "otlp-secret-123");
    assert_eq!(got.headers[0]["content-type"], "application/x-protobuf");
    let server: Vec<&Span> = got
        .spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.kind == 2)
        .collect();
    let clients: Vec<&Span> = got
        .spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.kind == 3)
        .collect();
    assert_eq!((server.len(), clients.len()), (1, 2));
    assert!(got
        .spans
        .iter()
        .all(|(service, _)| service == "gw-under-test"));
    let req = server[0];
    assert_eq!(req.name, "chat gpt-4o");
    assert_eq!(hex(&req.trace_id), TRACE_ID);
    assert_eq!(hex(&req.parent_span_id), CLIENT_SPAN);
    assert_eq!(text(req, "gen_ai.operation.name"), "chat");
    assert_eq!(text(req, "gen_ai.request.model"), "gpt-4o");
    assert_eq!(int(req, "gen_ai.request.max_tokens"), 7);
    assert_eq!(
        attr(req, "gen_ai.request.temperature"),
        Some(&Any::DoubleValue(0.5))
    );
    assert_eq!(
        attr(req, "gen_ai.request.top_p"),
        Some(&Any::DoubleValue(0.9))
    );
    let usage = &answer["usage"];
    assert_eq!(
        int(req, "gen_ai.usage.input_tokens"),
        usage["prompt_tokens"].as_i64().unwrap()
    );
    assert_eq!(
        int(req, "gen_ai.usage.output_tokens"),
        usage["completion_tokens"].as_i64().unwrap()
    );
    assert!(matches!(attr(req, "gen_ai.usage.cost"), Some(Any::DoubleValue(c)) if *c > 0.0));
    assert_eq!(
        text(req, "gen_ai.response.id"),
        answer["id"].as_str().unwrap()
    );
    assert_eq!(
        text(req, "gen_ai.response.model"),
        answer["model"].as_str().unwrap()
    );
    assert_eq!(int(req, "http.response.status_code"), 200);
    // Two attempts, children of the request span: a 500, then the answer.
    let mut statuses: Vec<i64> = clients
        .iter()
        .map(|s| int(s, "http.response.status_code"))
        .collect();
    statuses.sort();
    assert_eq!(statuses, [200, 502]);
    for c in &clients {
        assert_eq!(c.trace_id, req.trace_id);
        assert_eq!(c.parent_span_id, req.span_id);
        assert_eq!(text(c, "gen_ai.provider.name"), "openai");
        assert_eq!(text(c, "gen_ai.system"), "openai");
        assert_eq!(text(c, "gen_ai.request.model"), "gpt-4o");
        assert_eq!(text(c, "server.address"), "127.0.0.1");
    }
    let failed = clients
        .iter()
        .find(|c| int(c, "http.response.status_code") == 502)
        .unwrap();
    assert_eq!(text(failed, "error.type"), "bad_gateway");
    // Each attempt told the provider its own span.
    let sent: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| r.header("traceparent").unwrap().to_string())
        .collect();
    let mut expected: Vec<String> = clients
        .iter()
        .map(|c| format!("00-{TRACE_ID}-{}-01", hex(&c.span_id)))
        .collect();
    expected.sort();
    let mut sent_sorted = sent.clone();
    sent_sorted.sort();
    assert_eq!(sent_sorted, expected);
    // Content is off by default; no secret of the gateway is in a span.
    let dump = format!("{:?}", got.spans);
    for secret in ["hello gateway", MASTER, UPSTREAM_KEY] {
        assert!(!dump.contains(secret), "{secret} exported");
    }
    assert!(attr(req, "gen_ai.input.messages").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_is_exported_only_when_enabled() {
    let (url, got) = receiver().await;
    let mock = MockUpstream::start().await.unwrap();
    let gw = start(&mock, "trace_content = true", &url).await;
    assert_eq!(gw.chat(MASTER, hello("gpt-4o")).await.status(), 200);
    wait_for_spans(&gw, &got, 2).await;
    let got = got.lock().unwrap();
    let req = got
        .spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.kind == 2)
        .unwrap();
    assert!(text(req, "gen_ai.input.messages").contains("hello gateway"));
    assert!(text(req, "gen_ai.output.messages").contains("assistant"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_costs_only_counted_dropped_spans() {
    let (_socket, port) = refusing_port();
    let mock = MockUpstream::start().await.unwrap();
    let gw = start(&mock, "", &format!("http://127.0.0.1:{port}")).await;
    for _ in 0..3 {
        assert_eq!(gw.chat(MASTER, hello("gpt-4o")).await.status(), 200);
    }
    // 3 request spans and 3 attempt spans, each lost with its failed export.
    let want = "liter_llm_trace_spans_dropped_total 6";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut text = String::new();
    while std::time::Instant::now() < deadline {
        flush(&gw).await;
        text = gw
            .get("/metrics", Some(MASTER))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.lines().any(|l| l == want) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(text.lines().any(|l| l == want), "{text}");
    assert!(text
        .lines()
        .any(|l| l == "liter_llm_trace_spans_exported_total 0"));
}

/// Flushes until the receiver has `n` spans (bounded: 10 s).
async fn wait_for_spans(gw: &Gateway, got: &Arc<Mutex<Received>>, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        flush(gw).await;
        if got.lock().unwrap().spans.len() >= n || std::time::Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Flushes until the receiver has `n` server spans (bounded), and returns them.
async fn server_spans(gw: &Gateway, got: &Arc<Mutex<Received>>, n: usize) -> Vec<Span> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        flush(gw).await;
        let spans: Vec<Span> = got
            .lock()
            .unwrap()
            .spans
            .iter()
            .filter(|(_, s)| s.kind == 2)
            .map(|(_, s)| s.clone())
            .collect();
        if spans.len() >= n || std::time::Instant::now() > deadline {
            return spans;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn reasons(span: &Span) -> Vec<String> {
    match attr(span, "gen_ai.response.finish_reasons") {
        Some(Any::ArrayValue(a)) => a
            .values
            .iter()
            .filter_map(|v| match v.value.as_ref()? {
                Any::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        other => panic!("no finish reasons: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_gives_its_span_the_response_id_model_finish_reasons_and_usage() {
    let (url, got) = receiver().await;
    let mock = MockUpstream::start().await.unwrap();
    let extra = format!(
        r#"
[[models]]
name = "claude"
provider_model = "anthropic/claude-sonnet-4-20250514"
api_key = "{UPSTREAM_KEY}"
base_url = "http://{addr}"
"#,
        addr = mock.addr()
    );
    // `[[models]]` after the config's own: appended at the end.
    let gw = {
        let endpoint = url.clone();
        Gateway::start_with_env(&(config(&mock, "") + &extra), move |v| match v {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
            _ => None,
        })
        .await
    };
    // An OpenAI stream relayed, an Anthropic stream translated to OpenAI's chunks, and
    // an Anthropic stream relayed as it came (the Messages front door).
    let mut ids = Vec::new();
    for model in ["gpt-4o", "claude"] {
        let body = json!({"model": model, "stream": true,
            "messages": [{"role": "user", "content": "stream please"}]});
        let resp = gw
            .post("/v1/chat/completions", Some(MASTER), &body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let sse = resp.text().await.unwrap();
        let first = sse.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        let chunk: serde_json::Value = serde_json::from_str(first).unwrap();
        ids.push(chunk["id"].as_str().unwrap().to_owned());
    }
    let body = json!({"model": "claude", "stream": true, "max_tokens": 20,
        "messages": [{"role": "user", "content": "stream please"}]});
    let resp = gw
        .post("/v1/messages", Some(MASTER), &body)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let sse = resp.text().await.unwrap();
    let start = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .find(|e| e["type"] == "message_start")
        .unwrap();
    ids.push(start["message"]["id"].as_str().unwrap().to_owned());

    let spans = server_spans(&gw, &got, 3).await;
    assert_eq!(spans.len(), 3, "{spans:?}");
    // Each request's span, found by the id its client saw.
    let by_id = |id: &str| {
        spans
            .iter()
            .find(|s| text(s, "gen_ai.response.id") == id)
            .unwrap_or_else(|| panic!("no span with response id {id}: {spans:?}"))
    };
    for id in &ids {
        let span = by_id(id);
        assert!(!text(span, "gen_ai.response.model").is_empty());
        assert!(int(span, "gen_ai.usage.output_tokens") > 0, "{span:?}");
    }
    assert_eq!(reasons(by_id(&ids[0])), ["stop"]);
    assert_eq!(reasons(by_id(&ids[1])), ["stop"]);
    // As the client's protocol says it.
    assert_eq!(reasons(by_id(&ids[2])), ["end_turn"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_the_client_did_not_sample_is_carried_on_but_not_recorded() {
    let (url, got) = receiver().await;
    let mock = MockUpstream::start().await.unwrap();
    let gw = start(&mock, "", &url).await;
    let resp = gw
        .post("/v1/chat/completions", Some(MASTER), &hello("gpt-4o"))
        .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-00"))
        .header("tracestate", "vendor=opaque")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The provider still sees the client's trace, unsampled, and its tracestate.
    let sent = mock.requests();
    let parent = sent[0].header("traceparent").unwrap().to_string();
    assert!(parent.starts_with(&format!("00-{TRACE_ID}-")), "{parent}");
    assert!(parent.ends_with("-00"), "{parent}");
    assert!(!parent.contains(CLIENT_SPAN), "{parent}");
    assert_eq!(sent[0].header("tracestate").unwrap(), "vendor=opaque");
    // A request after it, sampled: its spans are the only ones exported.
    assert_eq!(gw.chat(MASTER, hello("gpt-4o")).await.status(), 200);
    wait_for_spans(&gw, &got, 2).await;
    let got = got.lock().unwrap();
    assert_eq!(got.spans.len(), 2, "{:?}", got.spans);
    assert!(got.spans.iter().all(|(_, s)| hex(&s.trace_id) != TRACE_ID));
    let second = mock.requests()[1]
        .header("traceparent")
        .unwrap()
        .to_string();
    assert!(second.ends_with("-01"), "{second}");
}
