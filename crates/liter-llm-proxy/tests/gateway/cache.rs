//! The response cache end to end: every backend (memory, Redis, fs, S3 through moto,
//! Azure Blob through Azurite), expiry on an injected clock, the per-request controls,
//! streams stored and replayed, key scopes, the ledger's zero-cost hit rows on SQLite
//! and PostgreSQL, a Redis that dies and comes back under traffic, two gateways
//! sharing one Redis, and the spec's own examples.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use liter_llm_proxy::config::{load_str, Overrides};
use liter_llm_proxy::store::{Clock, LedgerFilter, ManualClock, SystemClock};
use liter_llm_proxy::App;
use mock_upstream::{Fault, MockUpstream};
use serde_json::{json, Value};

use crate::governance::{gateway as governed, spend_store, Db};
use crate::objstores::ObjServer;
use crate::support::*;

/// The spec's in-memory example, as written.
const SPEC_MEMORY: &str = "[cache]\nmax_entries = 4096\nttl_seconds = 900\nbackend = \"memory\"\n";

/// A second virtual key for "gpt-4o".
const VKEY2: &str = "vk-second-key-0002";

fn status_of(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-liter-llm-cache")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn key_of(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-litellm-cache-key")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Sends `body` as written (key order and whitespace kept).
async fn send_raw(gw: &Gateway, key: &str, path: &str, body: &str) -> reqwest::Response {
    client()
        .post(format!("{}{path}", gw.url))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// (cache status, cache key, JSON body) of a chat request.
async fn ask(gw: &Gateway, key: &str, body: Value) -> (String, String, Value) {
    let resp = gw.chat(key, body).await;
    assert_eq!(resp.status(), 200);
    let (status, k) = (status_of(&resp), key_of(&resp));
    (status, k, resp.json().await.unwrap())
}

async fn settled(gw: &Gateway) {
    gw.app.cache.as_ref().unwrap().settled().await;
}

fn question(text: &str) -> Value {
    json!({"model": "gpt-4o", "temperature": 0,
        "messages": [{"role": "user", "content": text}]})
}

/// `[cache]` on an OpenDAL backend with `config` lines for its backend_config.
fn opendal(backend: &str, config: &str) -> String {
    format!("[cache]\nttl_seconds = 60\nbackend = \"{backend}\"\ntimeout_ms = 5000\n[cache.backend_config]\n{config}")
}

/// Miss, then a hit for the same request written another way (key order, whitespace,
/// `user`, another key under the global scope), with no second upstream call; the
/// same for embeddings.
async fn miss_then_hit(extra: &str) {
    let (mock, gw) = setup(extra).await;
    let first = gw.chat(MASTER, question("cache me")).await;
    assert_eq!(first.status(), 200);
    assert_eq!(status_of(&first), "miss");
    let key = key_of(&first);
    assert_eq!(key.len(), 64);
    let answer: Value = first.json().await.unwrap();
    settled(&gw).await;

    let rewritten = r#"{ "messages" : [ { "content" : "cache me", "role" : "user" } ],
        "user": "someone", "temperature": 0, "model": "gpt-4o" }"#;
    let second = send_raw(&gw, VKEY, "/v1/chat/completions", rewritten).await;
    assert_eq!(second.status(), 200);
    assert_eq!(status_of(&second), "hit");
    assert_eq!(key_of(&second), key);
    assert_eq!(second.headers()["x-liter-llm-deployment"], "cache");
    assert_eq!(second.json::<Value>().await.unwrap(), answer);
    assert_eq!(mock.requests().len(), 1, "the hit made no upstream call");

    let other = gw.chat(MASTER, question("something else")).await;
    assert_eq!(status_of(&other), "miss");
    assert_eq!(mock.requests().len(), 2);

    let emb = json!({"model": "gpt-4o", "input": ["a", "b"]});
    let e1 = gw
        .post("/v1/embeddings", Some(MASTER), &emb)
        .send()
        .await
        .unwrap();
    assert_eq!((e1.status().as_u16(), status_of(&e1)), (200, "miss".into()));
    let v1: Value = e1.json().await.unwrap();
    settled(&gw).await;
    let e2 = gw
        .post("/v1/embeddings", Some(MASTER), &emb)
        .send()
        .await
        .unwrap();
    assert_eq!((e2.status().as_u16(), status_of(&e2)), (200, "hit".into()));
    assert_eq!(e2.json::<Value>().await.unwrap(), v1);
    assert_eq!(mock.requests().len(), 3);
}

#[tokio::test]
async fn memory_backend_the_spec_example_misses_then_hits() {
    miss_then_hit(SPEC_MEMORY).await;
}

/// `/metrics` counts lookups by result, and backend failures.
#[tokio::test]
async fn lookups_and_backend_failures_are_counted_in_metrics() {
    let (_mock, gw) = setup(SPEC_MEMORY).await;
    assert_eq!(ask(&gw, MASTER, question("counted")).await.0, "miss");
    assert_eq!(ask(&gw, MASTER, question("counted")).await.0, "hit");
    assert_eq!(ask(&gw, MASTER, question("counted")).await.0, "hit");
    let text = gw.scrape().await;
    for line in [
        "liter_llm_cache_lookups_total{result=\"hit\"} 2",
        "liter_llm_cache_lookups_total{result=\"miss\"} 1",
        "liter_llm_cache_lookups_total{result=\"error\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }

    // A backend that refuses every connection: each failure is counted.
    let (_socket, port) = refusing_port();
    let extra = format!("[cache]\nbackend = \"redis\"\ntimeout_ms = 200\n[cache.backend_config]\nendpoint = \"redis://127.0.0.1:{port}\"\n");
    let (_mock, gw) = setup(&extra).await;
    assert_eq!(ask(&gw, MASTER, question("down")).await.0, "bypass");
    settled(&gw).await;
    let text = gw.scrape().await;
    let errors: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("liter_llm_cache_lookups_total{result=\"error\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(errors >= 1, "{text}");
}

/// A Redis key prefix of its own for one test, deleted when dropped.
struct RedisRoot(String);

impl RedisRoot {
    fn new() -> RedisRoot {
        RedisRoot(format!("liter-llm-test-{:016x}", rand::random::<u64>()))
    }

    fn config(&self, port: u16) -> String {
        format!(
            "endpoint = \"redis://127.0.0.1:{port}\"\nroot = \"/{}/\"\n",
            self.0
        )
    }
}

impl Drop for RedisRoot {
    fn drop(&mut self) {
        let keys = Command::new("redis-cli")
            .args(["--scan", "--pattern", &format!("*{}*", self.0)])
            .output();
        if let Ok(out) = keys {
            for k in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = Command::new("redis-cli").args(["del", k]).output();
            }
        }
    }
}

#[tokio::test]
async fn redis_backend_misses_then_hits() {
    let root = RedisRoot::new();
    miss_then_hit(&opendal("redis", &root.config(6379))).await;
}

/// Two gateways on one Redis cache: an answer one cached is a hit on the other, which
/// makes no upstream call.
#[tokio::test]
async fn an_answer_cached_by_one_gateway_is_a_hit_on_another() {
    let root = RedisRoot::new();
    let mock = MockUpstream::start().await.unwrap();
    let toml = base_config(&mock, &opendal("redis", &root.config(6379)));
    let (one, two) = (Gateway::start(&toml).await, Gateway::start(&toml).await);
    let (status, key, answer) = ask(&one, MASTER, question("shared between gateways")).await;
    assert_eq!(status, "miss");
    settled(&one).await;
    let (status, again, from_two) = ask(&two, MASTER, question("shared between gateways")).await;
    assert_eq!((status.as_str(), again), ("hit", key));
    assert_eq!(from_two, answer);
    assert_eq!(
        mock.requests().len(),
        1,
        "the second gateway made no upstream call"
    );
}

#[tokio::test]
async fn fs_backend_misses_then_hits() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!("root = \"{}\"\n", dir.path().display());
    miss_then_hit(&opendal("fs", &cfg)).await;
    assert!(!files_under(dir.path()).is_empty(), "entries are files");
}

#[tokio::test]
async fn s3_backend_misses_then_hits() {
    let s3 = ObjServer::s3("cache");
    miss_then_hit(&opendal("s3", &s3.s3_config("cache"))).await;
}

#[tokio::test]
async fn azblob_backend_misses_then_hits() {
    let az = ObjServer::azurite("cache");
    miss_then_hit(&opendal("azblob", &az.azblob_config("cache"))).await;
}

/// A gateway on `extra` whose cache reads time from the returned clock.
async fn clocked(mock: &MockUpstream, extra: &str) -> (Gateway, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(SystemClock.now_ms()));
    let cfg = load_str(
        &base_config(mock, extra),
        "test.toml",
        &Overrides::default(),
        |_| None,
    )
    .unwrap();
    let app = App::build_with_clock(cfg, clock.clone()).await.unwrap();
    (Gateway::start_app(app).await, clock)
}

/// `ttl_seconds` holds by the entry's stored expiry; the body's `ttl` shortens one
/// entry's life and `s-maxage` refuses entries older than it.
async fn entries_expire(extra: &str) {
    let mock = MockUpstream::start().await.unwrap();
    let (gw, clock) = clocked(&mock, extra).await;
    let q = question("expiring");
    assert_eq!(ask(&gw, MASTER, q.clone()).await.0, "miss");
    settled(&gw).await;
    clock.advance(59_000);
    assert_eq!(ask(&gw, MASTER, q.clone()).await.0, "hit");
    clock.advance(1_000);
    assert_eq!(ask(&gw, MASTER, q.clone()).await.0, "miss", "60 s: expired");
    assert_eq!(mock.requests().len(), 2);
    settled(&gw).await;

    let mut short = question("short-lived");
    short["cache"] = json!({"ttl": 5});
    assert_eq!(ask(&gw, MASTER, short.clone()).await.0, "miss");
    settled(&gw).await;
    clock.advance(4_000);
    assert_eq!(ask(&gw, MASTER, question("short-lived")).await.0, "hit");
    clock.advance(1_000);
    assert_eq!(ask(&gw, MASTER, question("short-lived")).await.0, "miss");
    settled(&gw).await;

    clock.advance(3_000);
    let mut fresh_only = question("short-lived");
    fresh_only["cache"] = json!({"s-maxage": 2});
    assert_eq!(
        ask(&gw, MASTER, fresh_only.clone()).await.0,
        "miss",
        "3 s old"
    );
    settled(&gw).await;
    assert_eq!(
        ask(&gw, MASTER, fresh_only).await.0,
        "hit",
        "stored just now"
    );
    assert_eq!(mock.requests().len(), 5);
}

#[tokio::test]
async fn memory_entries_expire_on_the_injected_clock() {
    entries_expire("[cache]\nmax_entries = 64\nttl_seconds = 60\n").await;
}

#[tokio::test]
async fn fs_entries_expire_by_their_stored_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!("root = \"{}\"\n", dir.path().display());
    entries_expire(&opendal("fs", &cfg)).await;
}

#[tokio::test]
async fn cache_control_and_the_body_field_bypass_and_never_reach_the_upstream() {
    let (mock, gw) = setup(SPEC_MEMORY).await;
    let q = question("controls");
    assert_eq!(ask(&gw, MASTER, q.clone()).await.0, "miss");
    for directive in ["no-cache", "no-store", "max-age=0, no-cache"] {
        let resp = gw
            .post("/v1/chat/completions", Some(MASTER), &q)
            .header("cache-control", directive)
            .send()
            .await
            .unwrap();
        assert_eq!(
            (resp.status().as_u16(), status_of(&resp)),
            (200, "bypass".into())
        );
    }
    assert_eq!(mock.requests().len(), 4);
    assert_eq!(ask(&gw, MASTER, q).await.0, "hit");

    // no-store: not looked up, not stored.
    let mut not_stored = question("not stored");
    not_stored["cache"] = json!({"no-store": true});
    assert_eq!(ask(&gw, MASTER, not_stored).await.0, "bypass");
    let sent = mock.requests().last().unwrap().body.clone().unwrap();
    assert!(
        sent.get("cache").is_none(),
        "the cache field went upstream: {sent}"
    );
    assert_eq!(sent["messages"][0]["content"], "not stored");
    assert_eq!(ask(&gw, MASTER, question("not stored")).await.0, "miss");
    // no-cache: not looked up, stored.
    let mut refreshed = question("refreshed");
    refreshed["cache"] = json!({"no-cache": true});
    assert_eq!(ask(&gw, MASTER, refreshed).await.0, "bypass");
    assert_eq!(ask(&gw, MASTER, question("refreshed")).await.0, "hit");
    assert_eq!(mock.requests().len(), 7);

    let mut bad = question("bad");
    bad["cache"] = json!({"no-cache": "yes"});
    let body = expect_error(gw.chat(MASTER, bad).await, 400).await;
    assert_eq!(body["error"]["param"], "cache");
    assert_eq!(mock.requests().len(), 7);
}

/// The SSE data payloads of a response.
async fn events_of(resp: reqwest::Response) -> Vec<String> {
    assert_eq!(resp.status(), 200);
    sse_data(&resp.text().await.unwrap())
}

/// The content a stream's chunks carry, joined.
fn streamed_text(events: &[String]) -> String {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn a_completed_stream_answers_later_streamed_and_whole_requests() {
    let (mock, gw) = setup(SPEC_MEMORY).await;
    let mut streamed = question("stream me please");
    streamed["stream"] = json!(true);
    let first = gw.chat(MASTER, streamed.clone()).await;
    assert_eq!(status_of(&first), "miss");
    let events = events_of(first).await;
    let text = streamed_text(&events);
    assert!(!text.is_empty());
    assert!(
        !events.iter().any(|e| e.contains("\"usage\":{")),
        "usage hidden"
    );

    let (status, _, whole) = ask(&gw, MASTER, question("stream me please")).await;
    assert_eq!(status, "hit");
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["choices"][0]["message"]["content"], text.as_str());
    assert_eq!(whole["choices"][0]["finish_reason"], "stop");
    assert!(
        whole["usage"]["total_tokens"].as_u64().unwrap() > 0,
        "{whole}"
    );

    streamed["stream_options"] = json!({"include_usage": true});
    let again = gw.chat(MASTER, streamed).await;
    assert_eq!(status_of(&again), "hit");
    assert_eq!(again.headers()["content-type"], "text/event-stream");
    let replay = events_of(again).await;
    assert_eq!(replay.last().unwrap(), "[DONE]");
    assert_eq!(streamed_text(&replay), text);
    let usage: Value = serde_json::from_str(&replay[replay.len() - 2]).unwrap();
    assert_eq!(usage["usage"], whole["usage"]);
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn a_stream_cut_mid_way_stores_nothing() {
    let (mock, gw) = setup(SPEC_MEMORY).await;
    let mut streamed = question("cut me off");
    streamed["stream"] = json!(true);
    mock.push_fault(Fault::cut_stream(2));
    let cut = events_of(gw.chat(MASTER, streamed.clone()).await).await;
    assert!(cut.last().unwrap().contains("error"), "{cut:?}");
    let again = gw.chat(MASTER, streamed).await;
    assert_eq!(status_of(&again), "miss");
    assert_eq!(events_of(again).await.last().unwrap(), "[DONE]");
    let whole = gw.chat(MASTER, question("cut me off")).await;
    assert_eq!(status_of(&whole), "hit", "the complete stream was stored");
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn errors_are_never_stored() {
    let (mock, gw) = setup(SPEC_MEMORY).await;
    mock.push_fault(Fault::status(400));
    let resp = gw.chat(MASTER, question("refused")).await;
    assert_eq!(
        (resp.status().as_u16(), status_of(&resp)),
        (400, "miss".into())
    );
    assert_eq!(ask(&gw, MASTER, question("refused")).await.0, "miss");
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn key_scope_keeps_each_keys_entries_apart() {
    let extra = format!(
        "[[keys]]\nkey = \"{VKEY2}\"\nmodels = [\"gpt-4o\"]\n{SPEC_MEMORY}scope = \"key\"\n"
    );
    let (mock, gw) = setup(&extra).await;
    let q = question("private");
    let (s1, k1, _) = ask(&gw, VKEY, q.clone()).await;
    assert_eq!(s1, "miss");
    assert_eq!(ask(&gw, VKEY, q.clone()).await.0, "hit");
    let (s2, k2, _) = ask(&gw, VKEY2, q.clone()).await;
    assert_eq!(s2, "miss", "another key does not see the first key's entry");
    assert_ne!(k1, k2);
    assert_eq!(
        ask(&gw, MASTER, q.clone()).await.0,
        "miss",
        "the master key is global"
    );
    assert_eq!(ask(&gw, MASTER, q).await.0, "hit");
    assert_eq!(mock.requests().len(), 3);
}

/// A hit is a ledger row with cost 0 marked `cache_hit`, counts for rpm, and shows in
/// `/spend/logs`.
async fn hits_cost_nothing(db: Db) {
    let mock = MockUpstream::start().await.unwrap();
    let extra = format!("[[keys]]\nkey = \"{VKEY}\"\nrpm = 2\n{SPEC_MEMORY}");
    let gw = governed(&mock, &db, &extra).await;
    let q = json!({"model": "priced", "max_tokens": 10,
        "messages": [{"role": "user", "content": "hello there"}]});
    let first = gw.chat(VKEY, q.clone()).await;
    assert_eq!(
        (first.status().as_u16(), status_of(&first)),
        (200, "miss".into())
    );
    assert!(first.headers().contains_key("x-liter-llm-response-cost"));
    let hit = gw.chat(VKEY, q.clone()).await;
    assert_eq!(
        (hit.status().as_u16(), status_of(&hit)),
        (200, "hit".into())
    );
    assert_eq!(hit.headers()["x-ratelimit-remaining-requests"], "0");
    assert!(!hit.headers().contains_key("x-liter-llm-response-cost"));
    let third = gw.chat(VKEY, q).await;
    assert_eq!(third.status(), 429, "a hit counts for rpm");
    assert_eq!(mock.requests().len(), 1);
    gw.app.governor.settled().await;
    let rows = spend_store(&gw)
        .ledger(&LedgerFilter::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (hits, misses): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.cache_hit);
    assert_eq!((hits.len(), misses.len()), (1, 1));
    assert_eq!((hits[0].cost_usd, hits[0].status), (0.0, 200));
    assert_eq!(hits[0].prompt_tokens + hits[0].completion_tokens, 0);
    assert!(misses[0].cost_usd > 0.0);
    let logs = gw.get_json("/spend/logs", MASTER).await;
    let flags: Vec<bool> = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cache_hit"].as_bool().unwrap())
        .collect();
    assert_eq!(flags.iter().filter(|f| **f).count(), 1, "{logs}");
}

#[tokio::test]
async fn a_hit_costs_nothing_in_the_ledger_sqlite() {
    hits_cost_nothing(Db::sqlite()).await;
}

#[tokio::test]
async fn a_hit_costs_nothing_in_the_ledger_postgres() {
    hits_cost_nothing(Db::postgres().await).await;
}

/// A redis-server of this test's own on `port`, killed when dropped.
struct OwnRedis(Child);

impl OwnRedis {
    async fn start(port: u16) -> OwnRedis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        OwnRedis(child)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_redis_that_stops_and_comes_back_fails_no_request() {
    let port = free_port();
    let redis = OwnRedis::start(port).await;
    let cfg = format!("endpoint = \"redis://127.0.0.1:{port}\"\n");
    let extra = format!("[cache]\nttl_seconds = 60\nbackend = \"redis\"\ntimeout_ms = 300\n[cache.backend_config]\n{cfg}");
    let (mock, gw) = setup(&extra).await;
    assert_eq!(ask(&gw, MASTER, question("before")).await.0, "miss");
    settled(&gw).await;
    assert_eq!(ask(&gw, MASTER, question("before")).await.0, "hit");

    drop(redis);
    for i in 0..10 {
        let started = Instant::now();
        let (status, _, body) = ask(&gw, MASTER, question(&format!("during {i}"))).await;
        assert!(status == "bypass" || status == "miss", "{status}");
        assert!(body["choices"][0]["message"]["content"].is_string());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    settled(&gw).await;
    let ready = gw.get_json("/health/readiness", MASTER).await;
    assert!(ready["cache_errors"].as_u64().unwrap() > 0, "{ready}");

    let _redis = OwnRedis::start(port).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let q = question("after");
        let (status, _, _) = ask(&gw, MASTER, q.clone()).await;
        settled(&gw).await;
        if status != "bypass" && ask(&gw, MASTER, q).await.0 == "hit" {
            break;
        }
        assert!(Instant::now() < deadline, "caching never resumed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(mock.requests().len() >= 12);
}

#[tokio::test]
async fn two_gateways_sharing_redis_see_each_others_entries() {
    let root = RedisRoot::new();
    let extra = opendal("redis", &root.config(6379));
    let mock = MockUpstream::start().await.unwrap();
    let one = Gateway::start(&base_config(&mock, &extra)).await;
    let two = Gateway::start(&base_config(&mock, &extra)).await;
    let (s1, k1, a1) = ask(&one, MASTER, question("shared")).await;
    assert_eq!(s1, "miss");
    settled(&one).await;
    let (s2, k2, a2) = ask(&two, MASTER, question("shared")).await;
    assert_eq!((s2.as_str(), k2), ("hit", k1));
    assert_eq!(a1, a2);
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn the_spec_redis_example_serves_with_its_host_unreachable() {
    let spec = "[cache]\nmax_entries = 10_000\nttl_seconds = 3600\nbackend = \"redis\"\n\n[cache.backend_config]\nendpoint = \"redis://cache.internal:6379\"\n";
    let (mock, gw) = setup(spec).await;
    let started = Instant::now();
    for i in 0..5 {
        let (status, _, _) = ask(&gw, MASTER, question(&format!("q{i}"))).await;
        assert!(status == "bypass" || status == "miss", "{status}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Its in-process tier (max_entries) still answers repeats.
    assert_eq!(ask(&gw, MASTER, question("q0")).await.0, "hit");
    assert_eq!(mock.requests().len(), 5);
}

#[tokio::test]
async fn a_backend_that_never_answers_costs_a_request_at_most_the_timeout() {
    // Accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let extra = format!("[cache]\nbackend = \"redis\"\ntimeout_ms = 200\n[cache.backend_config]\nendpoint = \"redis://127.0.0.1:{port}\"\n");
    let (mock, gw) = setup(&extra).await;
    for i in 0..3 {
        let started = Instant::now();
        let (status, _, _) = ask(&gw, MASTER, question(&format!("silent {i}"))).await;
        assert_eq!(status, "bypass");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
    }
    settled(&gw).await;
    assert!(gw.app.cache.as_ref().unwrap().errors() >= 1);
    assert_eq!(mock.requests().len(), 3);
    held.abort();
}
