//! Rate limits shared by three gateways through the machine's real Redis
//! (127.0.0.1:6379, or `LITER_LLM_TEST_REDIS_URL`), each test in a namespace of its
//! own: exact counts across instances, and what happens while Redis is unreachable,
//! silent, or back again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mock_upstream::{Fault, MockUpstream};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::support::*;

const KEY2: &str = "vk-second-key-0002";

pub(crate) fn redis_url() -> String {
    std::env::var("LITER_LLM_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `general` lines for the real Redis, with a timeout generous enough for a debug
/// build on a busy machine (the exact counts need every decision made by Redis; the
/// tests assert that none was not).
fn shared() -> String {
    format!("redis_url = \"{}\"\nredis_timeout_ms = 5000", redis_url())
}

/// A gateway config on the mock with the Redis settings in `general` and `extra`
/// (keys, `[rate_limit]`) after the model.
fn config(mock: &MockUpstream, general: &str, extra: &str) -> String {
    format!(
        r#"
[general]
master_key = "{MASTER}"
max_retries = 0
redis_namespace = "test-{ns:016x}"
{general}

[[models]]
name = "gpt-4o"
provider_model = "openai/gpt-4o-2024-08-06"
api_key = "{UPSTREAM_KEY}"
base_url = "{base}"
{extra}
"#,
        ns = rand::random::<u64>(),
        base = mock.base_url()
    )
}

async fn three(toml: &str) -> Vec<Gateway> {
    let mut out = Vec::new();
    for _ in 0..3 {
        out.push(Gateway::start(toml).await);
    }
    out
}

fn ask(max_tokens: u64) -> Value {
    json!({"model": "gpt-4o", "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "hello there"}]})
}

/// Sends `n` requests round-robin over `gws` one after the other; (admitted, refused).
async fn round_robin(gws: &[Gateway], key: &str, n: usize) -> (usize, usize) {
    tally(gws, n, |gw| gw.chat(key, ask(10))).await
}

/// Sends `n` requests, made by `send`, round-robin over `gws` one after the other;
/// (answered, refused with 429 and a `Retry-After` within the minute).
pub(crate) async fn tally<'a, F>(
    gws: &'a [Gateway],
    n: usize,
    send: impl Fn(&'a Gateway) -> F,
) -> (usize, usize)
where
    F: std::future::Future<Output = reqwest::Response>,
{
    let (mut ok, mut limited) = (0, 0);
    for i in 0..n {
        let resp = send(&gws[i % gws.len()]).await;
        match resp.status().as_u16() {
            200 => ok += 1,
            429 => {
                let retry: u64 = resp.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=60).contains(&retry), "{retry}");
                let body: Value = resp.json().await.unwrap();
                assert_eq!(body["error"]["type"], "rate_limit_error");
                limited += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    (ok, limited)
}

#[tokio::test]
async fn three_gateways_share_a_keys_rpm_exactly() {
    let mock = MockUpstream::start().await.unwrap();
    let toml = config(
        &mock,
        &shared(),
        &format!("[[keys]]\nkey = \"{VKEY}\"\nrpm = 60\n"),
    );
    let gws = three(&toml).await;
    assert_eq!(round_robin(&gws, VKEY, 200).await, (60, 140));
    assert_eq!(mock.requests().len(), 60);
    assert_eq!(unavailable_count(&gws[1]).await, 0);
}

#[tokio::test]
async fn three_gateways_share_the_gateway_wide_rpm_exactly() {
    let mock = MockUpstream::start().await.unwrap();
    let toml = config(
        &mock,
        &shared(),
        &format!(
            "[[keys]]\nkey = \"{VKEY}\"\n[[keys]]\nkey = \"{KEY2}\"\n[rate_limit]\nrpm = 25\n"
        ),
    );
    let gws = three(&toml).await;
    let (a, _) = round_robin(&gws, VKEY, 20).await;
    let (b, _) = round_robin(&gws, KEY2, 20).await;
    let (c, _) = round_robin(&gws, MASTER, 20).await;
    assert_eq!(
        (a, b, c),
        (20, 5, 0),
        "the gateway-wide limit counts every caller"
    );
    assert_eq!(mock.requests().len(), 25);
}

#[tokio::test]
async fn three_gateways_share_a_keys_tpm_exactly() {
    let mock = MockUpstream::start().await.unwrap();
    // Held upstream while every decision is made, so no settlement frees tokens early.
    mock.push_fault(Fault::delay_ms(2_000).forever());
    let toml = config(
        &mock,
        &shared(),
        &format!(
            "[[keys]]\nkey = \"{VKEY}\"\ntpm = 2000\n[[keys]]\nkey = \"{KEY2}\"\ntpm = 100000\n"
        ),
    );
    let gws = Arc::new(three(&toml).await);
    // The estimate of one request (prompt plus max_tokens), as the headers report it.
    let probe = gws[0].chat(KEY2, ask(200)).await;
    let left: u64 = probe.headers()["x-ratelimit-remaining-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let estimate = 100_000 - left;
    assert!((200..300).contains(&estimate), "{estimate}");
    let mut tasks = JoinSet::new();
    for i in 0..200 {
        let gws = gws.clone();
        tasks.spawn(async move { gws[i % 3].chat(VKEY, ask(200)).await.status().as_u16() });
    }
    let mut ok = 0;
    while let Some(status) = tasks.join_next().await {
        match status.unwrap() {
            200 => ok += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(
        ok,
        2000 / estimate,
        "exactly the requests whose estimates fit"
    );
}

#[tokio::test]
async fn settled_tokens_are_shared_too() {
    let mock = MockUpstream::start().await.unwrap();
    let toml = config(
        &mock,
        &shared(),
        &format!("[[keys]]\nkey = \"{VKEY}\"\ntpm = 1000\n"),
    );
    let gws = three(&toml).await;
    // Each reserves about 210 tokens (4 fit) but uses far fewer once settled.
    let mut ok = 0;
    for i in 0..12 {
        let gw = &gws[i % 3];
        if gw.chat(VKEY, ask(200)).await.status() == 200 {
            ok += 1;
        }
        gw.app.governor.settled().await;
    }
    assert!(
        ok > 4,
        "settlement on one instance frees tokens for all: {ok}"
    );
}

/// `/metrics`' count of decisions Redis could not make.
pub(crate) async fn unavailable_count(gw: &Gateway) -> u64 {
    let text = gw
        .get("/metrics", Some(MASTER))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("liter_llm_redis_limit_unavailable_total "))
        .unwrap_or_else(|| panic!("no counter in {text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_refused_redis_fails_open_to_per_instance_limits() {
    let mock = MockUpstream::start().await.unwrap();
    let (_socket, port) = refusing_port();
    let toml = config(
        &mock,
        &format!("redis_url = \"redis://127.0.0.1:{port}\""),
        &format!("[[keys]]\nkey = \"{VKEY}\"\nrpm = 5\n"),
    );
    let gws = three(&toml).await;
    // Each instance enforces the limit alone.
    for gw in &gws {
        let (ok, limited) = round_robin(std::slice::from_ref(gw), VKEY, 7).await;
        assert_eq!((ok, limited), (5, 2));
    }
    assert!(unavailable_count(&gws[0]).await >= 7);
}

#[tokio::test]
async fn a_refused_redis_fails_closed_with_503_when_configured() {
    let mock = MockUpstream::start().await.unwrap();
    let (_socket, port) = refusing_port();
    let toml = config(
        &mock,
        &format!("redis_url = \"redis://127.0.0.1:{port}\"\nredis_failure = \"fail_closed\""),
        &format!("[[keys]]\nkey = \"{VKEY}\"\nrpm = 5\n"),
    );
    let gw = Gateway::start(&toml).await;
    for _ in 0..5 {
        let body = expect_error(gw.chat(VKEY, ask(10)).await, 503).await;
        assert_eq!(body["error"]["code"], "store_unavailable");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains("shared rate limiter"), "{msg}");
        assert!(!msg.contains(&port.to_string()), "{msg}");
    }
    // A request no limit applies to never asks Redis.
    assert_eq!(gw.chat(MASTER, ask(10)).await.status(), 200);
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn a_silent_redis_never_holds_a_request_past_the_timeout() {
    let mock = MockUpstream::start().await.unwrap();
    // Accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let accept = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let toml = config(
        &mock,
        &format!("redis_url = \"redis://{addr}\"\nredis_timeout_ms = 100"),
        &format!("[[keys]]\nkey = \"{VKEY}\"\nrpm = 4\n"),
    );
    let gw = Gateway::start(&toml).await;
    let mut slowest = Duration::ZERO;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let started = Instant::now();
        statuses.push(gw.chat(VKEY, ask(10)).await.status().as_u16());
        slowest = slowest.max(started.elapsed());
    }
    // Served by the instance's own window (fail_open), never held by Redis.
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
    assert!(slowest < Duration::from_secs(2), "{slowest:?}");
    assert!(gw.app.governor.shared.as_ref().unwrap().is_degraded());
    // After the breaker opened, requests are decided without waiting on Redis.
    assert_eq!(unavailable_count(&gw).await, 6);
    accept.abort();
}

/// A TCP proxy to the real Redis that the test switches off (every connection cut,
/// new ones closed at once) and on again.
struct Switch {
    addr: std::net::SocketAddr,
    on: Arc<AtomicBool>,
    conns: Arc<std::sync::Mutex<JoinSet<()>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Switch {
    async fn start() -> Switch {
        let target = redis_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let on = Arc::new(AtomicBool::new(true));
        let conns = Arc::new(std::sync::Mutex::new(JoinSet::new()));
        let (on2, conns2) = (on.clone(), conns.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !on2.load(Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                conns2.lock().unwrap().spawn(async move {
                    let mut server = TcpStream::connect(&target).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Switch {
            addr,
            on,
            conns,
            task,
        }
    }

    fn set(&self, on: bool) {
        self.on.store(on, Ordering::SeqCst);
        if !on {
            self.conns.lock().unwrap().abort_all();
        }
    }
}

#[tokio::test]
async fn coordination_resumes_when_redis_is_back() {
    let mock = MockUpstream::start().await.unwrap();
    let switch = Switch::start().await;
    let toml = config(
        &mock,
        &format!("redis_url = \"redis://{}\"", switch.addr),
        &format!("[[keys]]\nkey = \"{VKEY}\"\nrpm = 6\n[[keys]]\nkey = \"{KEY2}\"\nrpm = 1000\n"),
    );
    let gws = three(&toml).await;
    // Shared: 3 of the 6.
    assert_eq!(round_robin(&gws, VKEY, 3).await, (3, 0));
    switch.set(false);
    // Away: the first instance counts alone (its own window is empty).
    assert_eq!(round_robin(&gws[..1], VKEY, 7).await, (6, 1));
    assert!(gws[0].app.governor.shared.as_ref().unwrap().is_degraded());
    switch.set(true);
    // Back: each instance's probe (after the breaker's cool-off) closes its breaker.
    let deadline = Instant::now() + Duration::from_secs(10);
    for gw in &gws {
        let shared = gw.app.governor.shared.as_ref().unwrap();
        loop {
            assert_eq!(gw.chat(KEY2, ask(10)).await.status(), 200);
            if !shared.is_degraded() {
                break;
            }
            assert!(Instant::now() < deadline, "coordination did not resume");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The shared count picks up where it was: 3 more, whichever instance.
    assert_eq!(round_robin(&gws, VKEY, 9).await, (3, 6));
    switch.task.abort();
}

#[test]
fn redis_settings_are_validated_and_their_password_never_shown() {
    use liter_llm_proxy::config::{inspect_str, load_str, Overrides};
    use secrecy::ExposeSecret;
    let no_env = |_: &str| None;
    // Settings of a Redis that is not there are refused, not ignored.
    let e = load_str(
        "[general]\nredis_failure = \"fail_closed\"\nredis_timeout_ms = 20\n",
        "t.toml",
        &Overrides::default(),
        no_env,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("general.redis_failure"), "{e}");
    assert!(e.contains("general.redis_timeout_ms"), "{e}");
    // A URL that is not Redis's: the message never echoes it.
    let e = load_str(
        "[general]\nredis_url = \"http://:hunter22@r:6379\"\n",
        "t.toml",
        &Overrides::default(),
        no_env,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("redis:// or rediss://"), "{e}");
    assert!(!e.contains("hunter22"), "{e}");
    // check-config masks the password.
    let i = inspect_str(
        "[general]\nredis_url = \"rediss://:hunter22@r.internal:6380/1\"\n",
        "t.toml",
        &Overrides::default(),
        no_env,
    )
    .unwrap();
    assert_eq!(
        i.masked.general.redis_url.as_deref(),
        Some("rediss://:********@r.internal:6380/1")
    );
    let spec = i.config.governance.redis.unwrap();
    assert_eq!(
        spec.url.expose_secret(),
        "rediss://:hunter22@r.internal:6380/1"
    );
    assert_eq!(spec.timeout, Duration::from_millis(100));
    assert!(!format!("{spec:?}").contains("hunter22"));
    // LiteLLM's variables when the file names no URL.
    let env = |n: &str| match n {
        "REDIS_HOST" => Some("r.internal".to_owned()),
        "REDIS_PORT" => Some("6390".to_owned()),
        _ => None,
    };
    let c = load_str("", "t.toml", &Overrides::default(), env).unwrap();
    let spec = c.governance.redis.unwrap();
    assert_eq!(spec.url.expose_secret(), "redis://r.internal:6390");
    assert_eq!(spec.source, "REDIS_HOST");
}

#[tokio::test]
async fn litellm_router_settings_redis_shares_the_limits() {
    use liter_llm_proxy::config::{litellm, Overrides};
    use secrecy::ExposeSecret;
    let mock = MockUpstream::start().await.unwrap();
    let (host, port) = redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .rsplit_once(':')
        .map(|(h, p)| (h.to_owned(), p.to_owned()))
        .unwrap();
    let src = format!(
        "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      model: openai/gpt-4o\n      api_key: {UPSTREAM_KEY}\n      api_base: {base}\nrouter_settings:\n  redis_host: {host}\n  redis_port: {port}\ngeneral_settings:\n  master_key: {MASTER}\n",
        base = mock.base_url()
    );
    let loaded =
        litellm::load_str(&src, "config.yaml", &Overrides::default(), false, |_| None).unwrap();
    let mut config = loaded.value;
    let spec = config.governance.redis.as_mut().unwrap();
    assert_eq!(spec.url.expose_secret(), format!("redis://{host}:{port}"));
    // Each test in its own namespace; a gateway-wide rpm to share.
    spec.namespace = format!("test-{:016x}", rand::random::<u64>());
    config.governance.global_rate.rpm = Some(4);
    let mut gws = Vec::new();
    for _ in 0..2 {
        gws.push(Gateway::start_config(config.clone()).await);
    }
    let (ok, limited) = round_robin(&gws, MASTER, 6).await;
    assert_eq!((ok, limited), (4, 2));
}

/// Waits until `n` gateways subscribe to the Redis `channel` (`{namespace}:changes`):
/// each subscribes in the background once it serves, and an announcement published
/// before a gateway listens is not for it.
pub(crate) async fn listening(channel: &str, n: usize) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, count): (String, usize) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(&mut c)
            .await
            .unwrap();
        if count >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{count} of {n} gateways subscribed to {channel}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A deployment that cools down on one of three gateways is skipped by the other two
/// once they hear of it (its cooldown is announced with the deployment's id and length),
/// and only that gateway probes it when the cooldown ends: the others keep it cooled a
/// while longer and take it back when they hear the probe succeeded.
#[tokio::test]
async fn a_cooldown_on_one_gateway_is_kept_by_the_others_and_probed_by_one() {
    let mock = MockUpstream::start().await.unwrap();
    let ns = format!("test-{:016x}", rand::random::<u64>());
    let toml = format!(
        "[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 1\nredis_namespace = \"{ns}\"\n{shared}\n{a}{b}[cooldown]\nduration_secs = 1\nallowed_fails = 1\n",
        shared = shared(),
        a = crate::routing::dep(&mock, "pool", "dep-a", "order = 1"),
        b = crate::routing::dep(&mock, "pool", "dep-b", "order = 2"),
    );
    let one = Gateway::start(&toml).await;
    let others = [Gateway::start(&toml).await, Gateway::start(&toml).await];
    listening(&format!("{ns}:changes"), 3).await;
    let hello = || json!({"model": "pool", "messages": [{"role": "user", "content": "hi"}]});
    // Every gateway serves from dep-a while it answers.
    assert_eq!(others[0].chat(MASTER, hello()).await.status(), 200);
    assert_eq!(crate::routing::served_ids(&mock), ["dep-a"]);

    // dep-a fails on the first gateway: it cools down there, the retry goes to dep-b.
    mock.clear_requests();
    mock.push_fault(Fault::status(503).for_model("dep-a"));
    let failed_at = Instant::now();
    assert_eq!(one.chat(MASTER, hello()).await.status(), 200);
    assert_eq!(crate::routing::served_ids(&mock), ["dep-a", "dep-b"]);

    // The other gateways, which saw no failure, skip dep-a too, as soon as the
    // announcement arrives (within a second on an idle machine; a loaded test machine
    // gets three, well inside the cooldown plus `PROBE_GRACE` the others hold it for).
    async fn cooling(others: &[Gateway], want: bool) {
        let deadline = Instant::now() + Duration::from_secs(3);
        for gw in others {
            loop {
                let ready: Value = gw.get_json("/health/readiness", MASTER).await;
                if ready["deployments"][0]["cooling_down"] == want {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "dep-a's cooldown (now {want}) did not reach {}: {ready}",
                    gw.url
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    cooling(&others, true).await;
    mock.clear_requests();
    for gw in &others {
        assert_eq!(gw.chat(MASTER, hello()).await.status(), 200);
        assert_eq!(gw.chat(MASTER, hello()).await.status(), 200);
    }
    assert_eq!(
        crate::routing::served_ids(&mock),
        ["dep-b", "dep-b", "dep-b", "dep-b"]
    );

    // The one-second cooldown is over (waited in real time: the announcements travel
    // through a real Redis). The others still keep dep-a out, for the first gateway's
    // probe...
    let over = failed_at + Duration::from_millis(1300);
    tokio::time::sleep(over.saturating_duration_since(Instant::now())).await;
    assert!(failed_at.elapsed() < liter_llm_proxy::routing::PROBE_GRACE);
    mock.clear_requests();
    for gw in &others {
        assert_eq!(gw.chat(MASTER, hello()).await.status(), 200);
    }
    assert_eq!(
        crate::routing::served_ids(&mock),
        ["dep-b", "dep-b"],
        "only the first gateway probes"
    );
    // ...which succeeds, and the others take dep-a back when they hear so.
    mock.clear_requests();
    assert_eq!(one.chat(MASTER, hello()).await.status(), 200);
    assert_eq!(crate::routing::served_ids(&mock), ["dep-a"], "the probe");
    cooling(&others, false).await;
    mock.clear_requests();
    for gw in &others {
        assert_eq!(gw.chat(MASTER, hello()).await.status(), 200);
    }
    assert_eq!(crate::routing::served_ids(&mock), ["dep-a", "dep-a"]);
}
