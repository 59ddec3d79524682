//! The scripts' edge cases on the machine's real Redis (127.0.0.1:6379, or
//! `LITER_LLM_TEST_REDIS_URL`), each test in a namespace of its own; and the
//! conformance tests every limiter backend passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::config::RateLimits;
use crate::governance::limiter::Local;
use crate::governance::limits::Window;

fn redis_url() -> String {
    std::env::var("LITER_LLM_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn spec(url: &str, namespace: &str) -> RedisSpec {
    RedisSpec {
        url: url.to_owned().into(),
        source: "general.redis_url",
        failure: RedisFailure::FailOpen,
        timeout: Duration::from_secs(2),
        namespace: namespace.to_owned(),
    }
}

fn namespace() -> String {
    format!("test-{:016x}", rand::random::<u64>())
}

fn limiter() -> RedisLimiter {
    RedisLimiter::new(&spec(&redis_url(), &namespace()), Arc::default()).unwrap()
}

fn window(rpm: Option<u32>, tpm: Option<u64>) -> Arc<Window> {
    Arc::new(Window::new(RateLimits { rpm, tpm }))
}

fn key(w: &Arc<Window>) -> Limit<'_> {
    Limit {
        scope: "key",
        name: "key:k1",
        window: w,
    }
}

fn gateway(w: &Arc<Window>) -> Limit<'_> {
    Limit {
        scope: "gateway",
        name: "global",
        window: w,
    }
}

/// A fixed time far from now, in microseconds, so the tests own the clock.
const T0: u64 = 1_000_000_000_000_000;
const S: u64 = 1_000_000;

async fn at(
    l: &RedisLimiter,
    limits: &[Limit<'_>],
    t: u64,
    tokens: u64,
) -> Result<Admission, Refusal> {
    match l.decide(limits, tokens, Some(t)).await {
        Ok(a) => Ok(a),
        Err(Denied::Refused(r)) => Err(r),
        Err(Denied::Unavailable) => panic!("Redis did not decide"),
    }
}

async fn redis_conn() -> MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis is not reachable at 127.0.0.1:6379")
}

#[tokio::test]
async fn the_window_slides_on_the_servers_clock_boundaries_included() {
    let l = limiter();
    let w = window(Some(2), None);
    at(&l, &[key(&w)], T0, 1).await.unwrap();
    at(&l, &[key(&w)], T0 + 30 * S, 1).await.unwrap();
    let r = at(&l, &[key(&w)], T0 + 59 * S, 1).await.unwrap_err();
    assert_eq!((r.scope, r.what), ("key", "requests"));
    assert_eq!(r.retry_after, Some(Duration::from_secs(1)));
    assert_eq!(r.remaining.requests, Some(0));
    // One microsecond before the first request is 60 s old: still in.
    assert!(at(&l, &[key(&w)], T0 + 60 * S - 1, 1).await.is_err());
    // At 60 s it has left; the second is still in.
    let a = at(&l, &[key(&w)], T0 + 60 * S, 1).await.unwrap();
    assert_eq!(a.remaining.unwrap().requests, Some(0));
    assert!(at(&l, &[key(&w)], T0 + 61 * S, 1).await.is_err());
    // A bucket holds the admissions of one slot and leaves with its latest one.
    let w = window(Some(2), None);
    let l = limiter();
    at(&l, &[key(&w)], T0, 1).await.unwrap();
    at(&l, &[key(&w)], T0 + 50_000, 1).await.unwrap();
    let r = at(&l, &[key(&w)], T0 + 60 * S, 1).await.unwrap_err();
    assert_eq!(r.retry_after, Some(Duration::from_micros(50_000)));
    at(&l, &[key(&w)], T0 + 60 * S + 50_000, 1).await.unwrap();
}

#[tokio::test]
async fn tokens_settle_down_and_up_in_their_bucket() {
    let pending = Arc::<Pending>::default();
    let l = RedisLimiter::new(&spec(&redis_url(), &namespace()), pending.clone()).unwrap();
    let w = window(None, Some(100));
    let a = at(&l, &[key(&w)], T0, 80).await.unwrap();
    assert_eq!(a.remaining.unwrap().tokens, Some(20));
    let r = at(&l, &[key(&w)], T0, 30).await.unwrap_err();
    assert_eq!(
        (r.what, r.retry_after),
        ("tokens", Some(Duration::from_secs(60)))
    );
    // Alone over the limit: never.
    assert_eq!(
        at(&l, &[key(&w)], T0, 101).await.unwrap_err().retry_after,
        None
    );
    a.settle(10);
    pending.idle().await;
    let b = at(&l, &[key(&w)], T0 + S, 30).await.unwrap();
    assert_eq!(b.remaining.unwrap().tokens, Some(60));
    // A provider reporting more than the estimate takes more.
    b.settle(50);
    pending.idle().await;
    let r = at(&l, &[key(&w)], T0 + S, 41).await.unwrap_err();
    assert_eq!(r.remaining.tokens, Some(40));
    at(&l, &[key(&w)], T0 + S, 40).await.unwrap();
    // A settlement after its bucket left the window changes nothing.
    let c = at(&l, &[key(&w)], T0 + 200 * S, 1).await.unwrap();
    at(&l, &[key(&w)], T0 + 261 * S, 100).await.unwrap();
    c.settle(0);
    pending.idle().await;
    assert!(at(&l, &[key(&w)], T0 + 261 * S, 1).await.is_err());
}

#[tokio::test]
async fn key_and_gateway_admit_together_or_not_at_all() {
    let l = limiter();
    let k = window(Some(10), None);
    let g = window(Some(1), Some(1_000));
    at(&l, &[key(&k), gateway(&g)], T0, 5).await.unwrap();
    let r = at(&l, &[key(&k), gateway(&g)], T0, 5).await.unwrap_err();
    assert_eq!((r.scope, r.what), ("gateway", "requests"));
    // The refused request took nothing from the key: 8 left after one more.
    let a = at(&l, &[key(&k)], T0, 5).await.unwrap();
    assert_eq!(a.remaining.unwrap().requests, Some(8));
    // The tightest window is reported.
    let k2 = window(Some(3), None);
    let g2 = window(Some(100), None);
    let l = limiter();
    let a = at(&l, &[key(&k2), gateway(&g2)], T0, 1).await.unwrap();
    assert_eq!(a.remaining.unwrap().limits.rpm, Some(3));
}

#[tokio::test]
async fn an_unknown_script_hash_is_answered_by_sending_the_script() {
    let l = limiter();
    let w = window(Some(3), None);
    at(&l, &[key(&w)], T0, 1).await.unwrap();
    let mut conn = redis_conn().await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let a = at(&l, &[key(&w)], T0, 1).await.unwrap();
    assert_eq!(
        a.remaining.unwrap().requests,
        Some(1),
        "the count survived the flush"
    );
    let cached: Vec<i64> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&l.0.admit.sha)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(cached, [1], "EVAL cached the script again");
    assert!(!l.0.eval_only.load(Ordering::Relaxed));
}

#[tokio::test]
async fn a_redis_that_refuses_evalsha_gets_the_script_whole() {
    let user = format!("noevalsha-{:08x}", rand::random::<u32>());
    let mut conn = redis_conn().await;
    let _: () = redis::cmd("ACL")
        .arg(
            &[
                "SETUSER",
                &user,
                "on",
                ">pw",
                "~*",
                "+@all",
                "-evalsha",
                "-evalsha_ro",
            ][..],
        )
        .query_async(&mut conn)
        .await
        .unwrap();
    let url = redis_url().replace("redis://", &format!("redis://{user}:pw@"));
    let l = RedisLimiter::new(&spec(&url, &namespace()), Arc::default()).unwrap();
    let w = window(Some(2), None);
    at(&l, &[key(&w)], T0, 1).await.unwrap();
    assert!(l.0.eval_only.load(Ordering::Relaxed));
    at(&l, &[key(&w)], T0, 1).await.unwrap();
    assert!(at(&l, &[key(&w)], T0, 1).await.is_err());
    let _: i64 = redis::cmd("ACL")
        .arg(&["DELUSER", &user][..])
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn windows_expire_from_redis_when_idle() {
    let l = limiter();
    let w = window(Some(5), Some(500));
    at(&l, &[key(&w)], T0, 7).await.unwrap();
    let mut conn = redis_conn().await;
    let hash = format!("{}key:k1", l.0.prefix);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&hash)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((59_000..=60_100).contains(&ttl), "{ttl}");
    let fields: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(&hash)
        .query_async(&mut conn)
        .await
        .unwrap();
    let bucket = (T0 / SLOT_US).to_string();
    let mut fields = fields;
    fields.sort();
    assert_eq!(
        fields,
        [
            (bucket.clone(), "1".into()),
            (format!("{bucket}:t"), "7".into()),
            ("R".into(), "1".into()),
            ("T".into(), "7".into()),
        ]
    );
}

/// What every backend does the same way (the clock is the real one: no edge here).
async fn conformance(
    l: &impl Limiter,
    settled: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) {
    let k = window(Some(3), Some(1_000));
    let g = window(Some(5), None);
    let both = [key(&k), gateway(&g)];
    let mut held = Vec::new();
    for left in (0..3).rev() {
        let a = l.admit(&both, 300).await.unwrap();
        assert_eq!(a.remaining.unwrap().requests, Some(left));
        held.push(a);
    }
    match l.admit(&both, 1).await {
        Err(Denied::Refused(r)) => {
            assert_eq!((r.scope, r.what), ("key", "requests"));
            assert!(r
                .retry_after
                .is_some_and(|d| d > Duration::ZERO && d <= Duration::from_secs(60)));
        }
        other => panic!("{other:?}"),
    }
    // The gateway counted 3; a key-less request sees 1 left after it.
    let a = l.admit(&[gateway(&g)], 0).await.unwrap();
    assert_eq!(a.remaining.unwrap().requests, Some(1));
    // Tokens: 900 held by the key; settled to 100 in all, 900 more fit.
    let k2 = window(None, Some(1_000));
    let other = [Limit {
        scope: "key",
        name: "key:k2",
        window: &k2,
    }];
    let t = l.admit(&other, 900).await.unwrap();
    assert!(matches!(
        l.admit(&other, 200).await,
        Err(Denied::Refused(_))
    ));
    t.settle(100);
    settled().await;
    assert_eq!(
        l.admit(&other, 900)
            .await
            .unwrap()
            .remaining
            .unwrap()
            .tokens,
        Some(0)
    );
}

#[tokio::test]
async fn both_backends_pass_the_conformance_tests() {
    conformance(&Local, || Box::pin(async {})).await;
    let pending = Arc::<Pending>::default();
    let l = RedisLimiter::new(&spec(&redis_url(), &namespace()), pending.clone()).unwrap();
    conformance(&l, move || {
        let p = pending.clone();
        Box::pin(async move { p.idle().await })
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_redis_is_undecided_within_the_timeout_and_opens_the_breaker() {
    // A listener that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", silent.local_addr().unwrap());
    let accept = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let mut s = spec(&url, &namespace());
    s.timeout = Duration::from_millis(50);
    let l = RedisLimiter::new(&s, Arc::default()).unwrap();
    let counter = Counter::default();
    l.instrument(counter.clone());
    let w = window(Some(1), None);
    for i in 0..super::super::breaker::FAILURES {
        assert!(!l.is_degraded(), "closed before failure {i}");
        let started = std::time::Instant::now();
        assert!(matches!(
            l.admit(&[key(&w)], 0).await,
            Err(Denied::Unavailable)
        ));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(l.is_degraded());
    // Open: decided without Redis at once.
    assert!(matches!(
        l.admit(&[key(&w)], 0).await,
        Err(Denied::Unavailable)
    ));
    assert_eq!(
        counter.get(),
        u64::from(super::super::breaker::FAILURES) + 1
    );
    accept.abort();
}

/// Runs the routing script at `t` over candidates `names` (each with `rpm`, no tpm, in
/// flight entries lasting 10 s), the candidate `first` first among equals.
async fn route_at(
    conn: &mut MultiplexedConnection,
    ns: &str,
    names: &[&str],
    ranking: &str,
    t: u64,
    rpm: &str,
) -> Vec<i64> {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(ROUTE).arg(names.len() * 3);
    for n in names {
        let hash = format!("{{{ns}}}:rl:dep:{n}");
        cmd.arg(&hash)
            .arg(format!("{hash}:z"))
            .arg(format!("{hash}:busy"));
    }
    let id = format!("{:08x}", rand::random::<u32>());
    cmd.arg(1)
        .arg(WINDOW_US)
        .arg(SLOT_US)
        .arg(t)
        .arg(ranking)
        .arg(id)
        .arg(0);
    for _ in names {
        cmd.arg(rpm).arg("").arg(10 * S);
    }
    let reply: Value = cmd.query_async(conn).await.unwrap();
    let Value::Array(items) = reply else {
        panic!("{reply:?}")
    };
    items.iter().map(|v| int(v).unwrap_or(-2)).collect()
}

#[tokio::test]
async fn the_routing_script_ranks_by_the_shared_in_flight_count_and_entries_lapse() {
    let mut conn = redis_conn().await;
    let ns = namespace();
    let mut go = async |names: &[&str], t: u64| {
        route_at(&mut conn, &ns, names, "busy", t, "").await[..2].to_vec()
    };
    // Both idle: the first among equals.
    assert_eq!(go(&["a", "b"], T0).await, [1, 1]);
    // a has one in flight: b; then one each: a again; then b has fewer.
    assert_eq!(go(&["a", "b"], T0 + S).await, [1, 2]);
    assert_eq!(go(&["a", "b"], T0 + 2 * S).await, [1, 1]);
    assert_eq!(go(&["a", "b"], T0 + 3 * S).await, [1, 2]);
    // Two more on a alone: a 4, b 2 in flight.
    go(&["a"], T0 + 4 * S).await;
    go(&["a"], T0 + 5 * S).await;
    assert_eq!(go(&["a", "b"], T0 + 6 * S).await, [1, 2]);
    // Never removed (their gateway died), entries lapse 10 s after they were made: at
    // T0 + 14.5 s a keeps one (made at 5 s) and b one (made at 6 s): equals, so a
    // (without the lapse, b would have fewer).
    assert_eq!(go(&["a", "b"], T0 + 14 * S + S / 2).await, [1, 1]);
}

#[tokio::test]
async fn the_routing_script_admits_the_first_candidate_with_room_or_tells_each_wait() {
    let mut conn = redis_conn().await;
    let ns = namespace();
    let mut go = async |t: u64| route_at(&mut conn, &ns, &["a", "b"], "first", t, "1").await;
    assert_eq!(go(T0).await[..2], [1, 1]);
    // a's one request of the minute is taken: b.
    assert_eq!(go(T0 + S).await[..2], [1, 2]);
    // Both full: each one's wait, until its admission is a minute old.
    assert_eq!(go(T0 + 2 * S).await, [0, 58 * S as i64, 59 * S as i64]);
    // a's window frees first.
    assert_eq!(go(T0 + 60 * S).await[..2], [1, 1]);
}
