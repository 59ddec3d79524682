//! Routing state shared by gateways on the machine's real Redis (127.0.0.1:6379, or
//! `LITER_LLM_TEST_REDIS_URL`), each test in a namespace of its own: a deployment's
//! own rpm/tpm exact across instances, health probe results followed by every
//! gateway, and least-busy and usage-based routing on the shared counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mock_upstream::{Fault, MockUpstream};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::routing::{counts, dep, served_ids};
use crate::shared_limits::{redis_url, tally, unavailable_count};
use crate::support::*;

fn namespace() -> String {
    format!("test-{:016x}", rand::random::<u64>())
}

/// A `[general]` section on the real Redis in namespace `ns`, with `extra` lines
/// (a timeout generous enough for a debug build on a busy machine).
fn general(ns: &str, extra: &str) -> String {
    format!(
        "[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\nredis_url = \"{}\"\nredis_timeout_ms = 5000\nredis_namespace = \"{ns}\"\n{extra}\n",
        redis_url()
    )
}

async fn start_n(toml: &str, n: usize) -> Vec<Gateway> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Gateway::start(toml).await);
    }
    out
}

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]})
}

/// Sends `n` requests for `model` round-robin over `gws`, one after the other;
/// (answered, refused with 429).
async fn round_robin(gws: &[Gateway], model: &str, n: usize) -> (usize, usize) {
    tally(gws, n, |gw| gw.chat(MASTER, hello(model))).await
}

#[tokio::test]
async fn three_gateways_share_a_deployments_rpm_exactly() {
    let mock = MockUpstream::start().await.unwrap();
    let toml = format!(
        "{}{}",
        general(&namespace(), ""),
        dep(&mock, "limited", "lim-1", "rpm = 60")
    );
    let gws = start_n(&toml, 3).await;
    assert_eq!(round_robin(&gws, "limited", 200).await, (60, 140));
    assert_eq!(mock.requests().len(), 60);
    assert_eq!(unavailable_count(&gws[2]).await, 0);
}

#[tokio::test]
async fn three_gateways_share_a_deployments_tpm_exactly() {
    let mock = MockUpstream::start().await.unwrap();
    // Held upstream while every decision is made, so no settlement frees tokens early.
    mock.push_fault(Fault::delay_ms(2_000).forever());
    // The routing estimate of a request: a token per four bytes of its body, plus one.
    let estimate = serde_json::to_vec(&hello("limited")).unwrap().len() as u64 / 4 + 1;
    let fits = 20;
    let toml = format!(
        "{}{}",
        general(&namespace(), ""),
        dep(
            &mock,
            "limited",
            "lim-1",
            &format!("tpm = {}", fits * estimate + estimate / 2)
        )
    );
    let gws = Arc::new(start_n(&toml, 3).await);
    let mut tasks = JoinSet::new();
    for i in 0..200 {
        let gws = gws.clone();
        tasks.spawn(async move {
            gws[i % 3]
                .chat(MASTER, hello("limited"))
                .await
                .status()
                .as_u16()
        });
    }
    let (mut ok, mut limited) = (0, 0);
    while let Some(status) = tasks.join_next().await {
        match status.unwrap() {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, limited), (fits, 200 - fits));
    assert_eq!(mock.requests().len() as u64, fits);
}

/// The other deployment of the pool takes the requests a full one's shared window
/// refuses, on every gateway.
#[tokio::test]
async fn a_deployment_full_on_the_shared_window_passes_its_requests_on() {
    let mock = MockUpstream::start().await.unwrap();
    let toml = format!(
        "{}{}{}",
        general(&namespace(), ""),
        dep(&mock, "pool", "dep-a", "rpm = 3\norder = 1"),
        dep(&mock, "pool", "dep-b", "order = 2"),
    );
    let gws = start_n(&toml, 2).await;
    assert_eq!(round_robin(&gws, "pool", 8).await, (8, 0));
    let c = counts(&served_ids(&mock));
    assert_eq!((c["dep-a"], c["dep-b"]), (3, 5), "{c:?}");
}

#[tokio::test]
async fn an_unreachable_redis_follows_the_failure_policy_for_deployment_limits() {
    let mock = MockUpstream::start().await.unwrap();
    let (_socket, port) = refusing_port();
    let cfg = |policy: &str| {
        format!(
            "[general]\nmaster_key = \"{MASTER}\"\nmax_retries = 0\nredis_url = \"redis://127.0.0.1:{port}\"\nredis_failure = \"{policy}\"\n{}",
            dep(&mock, "limited", "lim-1", "rpm = 3")
        )
    };
    // fail_open: each instance counts alone.
    let gws = start_n(&cfg("fail_open"), 2).await;
    for gw in &gws {
        assert_eq!(
            round_robin(std::slice::from_ref(gw), "limited", 5).await,
            (3, 2)
        );
    }
    assert!(unavailable_count(&gws[0]).await >= 5);
    // fail_closed: 503, and the port never shows.
    let gw = Gateway::start(&cfg("fail_closed")).await;
    let before = mock.requests().len();
    for _ in 0..3 {
        let body = expect_error(gw.chat(MASTER, hello("limited")).await, 503).await;
        assert_eq!(body["error"]["code"], "store_unavailable");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains("shared routing counts"), "{msg}");
        assert!(!msg.contains(&port.to_string()), "{msg}");
    }
    assert_eq!(mock.requests().len(), before);
}

/// A deployment that no shared count applies to (no rpm/tpm, a strategy that ranks
/// locally) is routed without Redis: a dead Redis changes nothing for it.
#[tokio::test]
async fn unlimited_deployments_never_ask_redis() {
    let mock = MockUpstream::start().await.unwrap();
    let (_socket, port) = refusing_port();
    let toml = format!(
        "[general]\nmaster_key = \"{MASTER}\"\nredis_url = \"redis://127.0.0.1:{port}\"\nredis_failure = \"fail_closed\"\n{}",
        dep(&mock, "free", "free-1", "")
    );
    let gw = Gateway::start(&toml).await;
    for _ in 0..3 {
        assert_eq!(gw.chat(MASTER, hello("free")).await.status(), 200);
    }
    assert_eq!(unavailable_count(&gw).await, 0);
}

/// Whether the deployment `id` of `gw` is healthy.
fn healthy(gw: &Gateway, id: &str) -> bool {
    gw.app
        .routes
        .deployments()
        .find(|d| d.deployment.provider_model == format!("openai/{id}"))
        .unwrap()
        .is_healthy()
}

/// Waits until `check` holds, for at most `limit`; how long it took.
async fn within(limit: Duration, what: &str, check: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

/// Upstream model ids of the requests the clients sent (not the health probes').
fn served_clients(mock: &MockUpstream) -> Vec<String> {
    mock.requests()
        .iter()
        .filter_map(|r| {
            let body = r.body.as_ref()?;
            (body["messages"][0]["content"] == "hello there")
                .then(|| body["model"].as_str().map(str::to_string))?
        })
        .collect()
}

/// A deployment one gateway's health probe finds down is skipped by another gateway
/// (which probes nothing) within a second, and taken back when the probe finds it up.
#[tokio::test]
async fn a_health_probe_on_one_gateway_is_followed_by_the_others() {
    let mock = MockUpstream::start().await.unwrap();
    let ns = namespace();
    let models = format!(
        "{}{}",
        dep(&mock, "pool", "dep-a", "order = 1"),
        dep(&mock, "pool", "dep-b", "order = 2"),
    );
    let prober = Gateway::start(&format!(
        "{}{models}[health]\ninterval_secs = 1\n",
        general(&ns, "")
    ))
    .await;
    let other = Gateway::start(&format!("{}{models}", general(&ns, ""))).await;
    crate::shared_limits::listening(&format!("{ns}:changes"), 2).await;
    assert_eq!(other.chat(MASTER, hello("pool")).await.status(), 200);
    assert_eq!(served_clients(&mock), ["dep-a"]);

    mock.push_fault(Fault::status(503).for_model("dep-a").forever());
    within(Duration::from_secs(5), "the probe finds dep-a down", || {
        !healthy(&prober, "dep-a")
    })
    .await;
    let took = within(Duration::from_secs(1), "the other gateway follows", || {
        !healthy(&other, "dep-a")
    })
    .await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    let ready: Value = other.get_json("/health/readiness", MASTER).await;
    assert_eq!(ready["deployments"][0]["healthy"], false, "{ready}");
    mock.clear_requests();
    for _ in 0..3 {
        assert_eq!(other.chat(MASTER, hello("pool")).await.status(), 200);
    }
    assert_eq!(served_clients(&mock), ["dep-b", "dep-b", "dep-b"]);

    mock.clear_faults();
    within(Duration::from_secs(5), "the probe finds dep-a up", || {
        healthy(&prober, "dep-a")
    })
    .await;
    within(Duration::from_secs(1), "the other gateway follows", || {
        healthy(&other, "dep-a")
    })
    .await;
    mock.clear_requests();
    assert_eq!(other.chat(MASTER, hello("pool")).await.status(), 200);
    assert_eq!(served_clients(&mock), ["dep-a"]);
}

/// Least-busy counts the requests in flight on every gateway: a request held on one
/// deployment through the first gateway sends the second gateway's to the other.
#[tokio::test]
async fn least_busy_counts_the_requests_in_flight_on_every_gateway() {
    let mock = MockUpstream::start().await.unwrap();
    let toml = format!(
        "{}{}{}[router]\nstrategy = \"least-busy\"\n",
        general(&namespace(), ""),
        dep(&mock, "pool", "dep-a", ""),
        dep(&mock, "pool", "dep-b", ""),
    );
    let gws = start_n(&toml, 2).await;
    mock.push_fault(Fault::hold());
    let held = tokio::spawn(
        gws[0]
            .post("/v1/chat/completions", Some(MASTER), &hello("pool"))
            .send(),
    );
    wait_for_requests(&mock, 1).await;
    let busy = served_ids(&mock)[0].clone();
    for _ in 0..6 {
        assert_eq!(gws[1].chat(MASTER, hello("pool")).await.status(), 200);
    }
    let ids = served_ids(&mock);
    assert!(
        ids[1..].iter().all(|id| *id != busy),
        "the busy deployment {busy} was chosen: {ids:?}"
    );
    mock.release(1);
    assert_eq!(held.await.unwrap().unwrap().status(), 200);
    // Once it ends, it counts no more: the second gateway uses both again.
    gws[0].app.governor.settled().await;
    mock.clear_requests();
    for _ in 0..12 {
        assert_eq!(gws[1].chat(MASTER, hello("pool")).await.status(), 200);
    }
    let c = counts(&served_ids(&mock));
    assert!(c.get(&busy).copied().unwrap_or(0) > 0, "{c:?}");
}

/// Usage-based routing ranks by the minute's usage on every gateway: what one gateway
/// sent to a deployment steers another's requests to the deployment with more room.
#[tokio::test]
async fn usage_based_ranks_by_the_usage_of_every_gateway() {
    let mock = MockUpstream::start().await.unwrap();
    let ns = namespace();
    let a = dep(&mock, "only-a", "dep-a", "id = \"shared-a\"\nrpm = 10");
    let first = Gateway::start(&format!("{}{a}", general(&ns, ""))).await;
    for _ in 0..5 {
        assert_eq!(first.chat(MASTER, hello("only-a")).await.status(), 200);
    }
    let second = Gateway::start(&format!(
        "{}{}{}[router]\nstrategy = \"usage-based\"\n",
        general(&ns, ""),
        dep(&mock, "pool", "dep-a", "id = \"shared-a\"\nrpm = 10"),
        dep(&mock, "pool", "dep-b", "id = \"shared-b\"\nrpm = 10"),
    ))
    .await;
    mock.clear_requests();
    // dep-a is half used on the first gateway: the second sends dep-b five before it
    // is as used.
    for _ in 0..5 {
        assert_eq!(second.chat(MASTER, hello("pool")).await.status(), 200);
    }
    assert_eq!(served_ids(&mock), ["dep-b"; 5]);
}
