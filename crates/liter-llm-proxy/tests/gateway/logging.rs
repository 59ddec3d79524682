//! `[[logging]]` sinks end to end: the file sink's records, filters, content and
//! rotation; the webhook sink against a real receiver that fails some batches, and one
//! that never answers (requests still all succeed; the drops are counted).

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;

use super::support::*;

/// Wait (bounded) until `ready` holds.
async fn until(what: &str, mut ready: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn metric(gw: &Gateway, prefix: &str) -> f64 {
    let text = gw.get("/metrics", Some(MASTER)).send().await.unwrap();
    let text = text.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{prefix} not in\n{text}"))
}

#[tokio::test]
async fn a_streams_record_has_the_clients_request_id_and_the_path() {
    // a stream's line outlives the request head it took them from (it keeps copies)
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("all.jsonl");
    let (_mock, gw) = setup(&format!("[[logging]]\ntype = \"file\"\npath = {all:?}\n")).await;
    let resp = client()
        .post(format!("{}/v1/chat/completions?probe=1", gw.url))
        .bearer_auth(MASTER)
        .header("x-request-id", "client-chosen-id-42")
        .json(&serde_json::json!({
            "model": "gpt-4o",
            "stream": true,
            "messages": [{"role": "user", "content": "hi"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "client-chosen-id-42");
    let body = resp.text().await.unwrap();
    assert!(body.contains("data: [DONE]"), "{body}");
    until("the stream's record", || lines(&all).len() == 1).await;
    let record = &lines(&all)[0];
    assert_eq!(record["request_id"], "client-chosen-id-42");
    assert_eq!(record["path"], "/v1/chat/completions");
    assert_eq!(record["status"], 200);
}

#[tokio::test]
async fn the_file_sink_writes_records_filters_and_keeps_content_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (all, failures) = (dir.path().join("all.jsonl"), dir.path().join("fail.jsonl"));
    let (_mock, gw) = setup(&format!(
        "[[logging]]\ntype = \"file\"\npath = {all:?}\n\n\
         [[logging]]\ntype = \"file\"\npath = {failures:?}\non = \"failure\"\ncontent = true\n"
    ))
    .await;
    let ok = gw.chat(MASTER, hello("gpt-4o")).await;
    assert_eq!(ok.status(), 200);
    let ok_id = ok.headers()["x-request-id"].to_str().unwrap().to_owned();
    let refused = gw.chat(VKEY, hello("other")).await;
    assert_eq!(refused.status(), 403);
    let refused_id = refused.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    until("both records", || lines(&all).len() == 2).await;
    until("the failure record", || lines(&failures).len() == 1).await;

    let records = lines(&all);
    let ok = records
        .iter()
        .find(|r| r["request_id"] == ok_id.as_str())
        .unwrap();
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["model"], "gpt-4o");
    assert_eq!(ok["deployment"], "openai/gpt-4o-2024-08-06");
    assert_eq!(ok["provider"], "openai");
    assert_eq!(ok["key_alias"], "master");
    assert!(ok["key_id"].is_null());
    assert!(ok["input_tokens"].as_u64().unwrap() > 0);
    assert!(ok["output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(ok["cache_hit"], false);
    assert_eq!(ok["retries"], 0);
    assert!(ok["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(ok["time"].as_str().unwrap().ends_with('Z'));
    assert!(ok.get("request").is_none() && ok.get("response").is_none());
    let bad = records
        .iter()
        .find(|r| r["request_id"] == refused_id.as_str())
        .unwrap();
    assert_eq!(bad["status"], 403);
    assert_eq!(bad["error_kind"], "model_not_allowed");
    assert!(bad["error_message"].as_str().unwrap().contains("other"));
    assert_eq!(bad["key_alias"], "limited");
    assert!(bad["key_id"].as_str().unwrap().starts_with("cfg-"));

    // The failure sink: only the 403, with its prompt.
    let only = &lines(&failures)[0];
    assert_eq!(only["request_id"], refused_id.as_str());
    assert_eq!(only["request"]["messages"][0]["content"], "hello gateway");
    // No key anywhere.
    for path in [&all, &failures] {
        let text = std::fs::read_to_string(path).unwrap();
        for secret in [MASTER, VKEY, UPSTREAM_KEY] {
            assert!(!text.contains(secret), "{secret} in {}", path.display());
        }
    }
    assert_eq!(
        metric(&gw, "liter_llm_log_records_sent_total{sink=\"file#0\"}").await,
        2.0
    );
}

#[tokio::test]
async fn the_file_sink_keeps_the_answer_with_content_and_rotates_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("requests.jsonl");
    // Every record is larger than max_bytes: each one starts a new file.
    let (_mock, gw) = setup(&format!(
        "[[logging]]\ntype = \"file\"\npath = {path:?}\nmax_bytes = 1\nkeep = 2\ncontent = true\n"
    ))
    .await;
    for _ in 0..5 {
        assert_eq!(gw.chat(MASTER, hello("gpt-4o")).await.status(), 200);
    }
    let rotated = |n: u32| dir.path().join(format!("requests.jsonl.{n}"));
    let sent = "liter_llm_log_records_sent_total{sink=\"file#0\"}";
    for _ in 0..1000 {
        if metric(&gw, sent).await == 5.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(metric(&gw, sent).await, 5.0);
    // Written, rotated (each record alone in its file), flushed.
    until("the last record flushed", || lines(&path).len() == 1).await;
    assert_eq!(lines(&rotated(1)).len(), 1);
    assert_eq!(lines(&rotated(2)).len(), 1);
    assert!(!rotated(3).exists(), "keep = 2");
    let last = &lines(&path)[0];
    assert_eq!(last["request"]["model"], "gpt-4o");
    assert_eq!(last["response"]["object"], "chat.completion");
}

/// A receiver on port 0: fails the first `fail` batches with 500, keeps the others'
/// records (gunzipped).
async fn receiver(fail: usize) -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(Mutex::new(0usize));
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/in",
        post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let (got, calls) = (keep.clone(), calls.clone());
            async move {
                assert_eq!(headers["content-encoding"], "gzip");
                assert_eq!(headers["authorization"], "Bearer sink-token");
                let mut n = calls.lock().unwrap();
                *n += 1;
                if *n <= fail {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                let mut json = String::new();
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_string(&mut json)
                    .unwrap();
                let batch: Vec<Value> = serde_json::from_str(&json).unwrap();
                got.lock().unwrap().extend(batch);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/in", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

fn webhook(url: &str, extra: &str) -> String {
    format!(
        "[[logging]]\ntype = \"webhook\"\nurl = \"{url}\"\nheaders = {{ Authorization = \"Bearer sink-token\" }}\n{extra}"
    )
}

#[tokio::test]
async fn the_webhook_sink_retries_failed_batches_and_loses_nothing_within_the_bound() {
    let (url, got) = receiver(2).await;
    let (_mock, gw) = setup(&webhook(&url, "batch_size = 2\nflush_ms = 20\n")).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let resp = gw.chat(MASTER, hello("gpt-4o")).await;
        assert_eq!(resp.status(), 200);
        ids.push(resp.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    until("five records delivered", || got.lock().unwrap().len() == 5).await;
    let mut delivered: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_owned())
        .collect();
    delivered.sort();
    ids.sort();
    assert_eq!(delivered, ids);
    let sent = "liter_llm_log_records_sent_total{sink=\"webhook#0\"}";
    assert_eq!(metric(&gw, sent).await, 5.0);
    let dropped = "liter_llm_log_records_dropped_total{sink=\"webhook#0\"}";
    assert_eq!(metric(&gw, dropped).await, 0.0);
}

#[tokio::test]
async fn a_webhook_that_never_answers_slows_no_request_and_its_drops_are_counted() {
    // Accepts the connection and the request, never answers.
    let app = axum::Router::new().route("/in", post(std::future::pending::<()>));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/in", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (_mock, gw) = setup(&webhook(
        &url,
        "batch_size = 2\nflush_ms = 10\nmax_queue = 3\ntimeout_secs = 600\n",
    ))
    .await;
    let n = 12;
    for _ in 0..n {
        assert_eq!(gw.chat(MASTER, hello("gpt-4o")).await.status(), 200);
    }
    // At most one batch in the air and a full queue are kept; the rest is dropped.
    let dropped = metric(
        &gw,
        "liter_llm_log_records_dropped_total{sink=\"webhook#0\"}",
    )
    .await;
    assert!(dropped >= f64::from(n - 3 - 2), "{dropped}");
    assert!(dropped <= f64::from(n - 3), "{dropped}");
    assert_eq!(
        metric(&gw, "liter_llm_log_records_sent_total{sink=\"webhook#0\"}").await,
        0.0
    );
}

/// An OTLP/HTTP logs receiver on port 0: each export's headers and its log records
/// (gunzipped and decoded), with the resource's service name.
#[allow(clippy::type_complexity)]
async fn otlp_receiver() -> (
    String,
    Arc<
        Mutex<
            Vec<(
                axum::http::HeaderMap,
                String,
                opentelemetry_proto::tonic::logs::v1::LogRecord,
            )>,
        >,
    >,
) {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use prost::Message;
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/v1/logs",
        post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let got = keep.clone();
            async move {
                let mut raw = Vec::new();
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_end(&mut raw)
                    .unwrap();
                let req = ExportLogsServiceRequest::decode(&raw[..]).unwrap();
                for rl in req.resource_logs {
                    let service = otlp_service(rl.resource.as_ref());
                    for sl in rl.scope_logs {
                        for r in sl.log_records {
                            got.lock()
                                .unwrap()
                                .push((headers.clone(), service.clone(), r));
                        }
                    }
                }
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

fn otlp_attr(
    r: &opentelemetry_proto::tonic::logs::v1::LogRecord,
    key: &str,
) -> Option<opentelemetry_proto::tonic::common::v1::any_value::Value> {
    r.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.clone()?.value)
}

#[tokio::test]
async fn the_otlp_sink_sends_log_records_to_the_collector_the_standard_variables_name() {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    let (base, got) = otlp_receiver().await;
    let mock = mock_upstream::MockUpstream::start().await.unwrap();
    let config = base_config(&mock, "[[logging]]\ntype = \"otlp\"\nflush_ms = 20\n");
    let gw = Gateway::start_with_env(&config, move |v| match v {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(base.clone()),
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS" => Some("x-collector-token=logs%20secret".into()),
        "OTEL_SERVICE_NAME" => Some("gw-logs".into()),
        _ => None,
    })
    .await;
    let ok = gw.chat(MASTER, hello("gpt-4o")).await;
    assert_eq!(ok.status(), 200);
    let ok_id = ok.headers()["x-request-id"].to_str().unwrap().to_owned();
    let refused = gw.chat(VKEY, hello("other")).await;
    assert_eq!(refused.status(), 403);
    until("two log records", || got.lock().unwrap().len() == 2).await;
    let got = got.lock().unwrap().clone();
    for (headers, service, _) in got.iter() {
        assert_eq!(headers["content-type"], "application/x-protobuf");
        assert_eq!(headers["content-encoding"], "gzip");
        assert_eq!(headers["x-collector-token"], "logs secret");
        assert_eq!(service, "gw-logs");
    }
    let by_status = |status: i64| {
        got.iter()
            .map(|(_, _, r)| r)
            .find(|r| otlp_attr(r, "status") == Some(Any::IntValue(status)))
            .unwrap_or_else(|| panic!("no record with status {status}"))
    };
    let ok_rec = by_status(200);
    assert_eq!(ok_rec.severity_text, "INFO");
    assert_eq!(ok_rec.event_name, "liter_llm.request");
    assert!(ok_rec.time_unix_nano > 1_700_000_000_000_000_000);
    assert_eq!(
        otlp_attr(ok_rec, "request_id"),
        Some(Any::StringValue(ok_id))
    );
    assert_eq!(
        otlp_attr(ok_rec, "model"),
        Some(Any::StringValue("gpt-4o".into()))
    );
    assert!(matches!(
        otlp_attr(ok_rec, "output_tokens"),
        Some(Any::IntValue(n)) if n > 0
    ));
    let refused_rec = by_status(403);
    assert_eq!(refused_rec.severity_text, "ERROR");
    assert!(otlp_attr(refused_rec, "error_kind").is_some());
    // No prompt (content is off), no key.
    let dump = format!("{:?}", got.iter().map(|(_, _, r)| r).collect::<Vec<_>>());
    for secret in ["hello gateway", MASTER, VKEY] {
        assert!(!dump.contains(secret), "{secret} sent");
    }
    let sent = "liter_llm_log_records_sent_total{sink=\"otlp#0\"}";
    assert_eq!(metric(&gw, sent).await, 2.0);
}
