//! The two load shapes: a closed loop that saturates the target, and an open loop that sends at a
//! fixed rate and measures each latency from the request's intended send time (so a stall in the
//! target is charged to every request it delayed, not hidden: no coordinated omission).

use std::{
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail};
use tokio::{sync::mpsc, task::JoinSet};

use crate::{
    conn::{Pool, Target},
    procmon::{Block, Monitor, ProcStats, Watch},
    stats::{nanos, Stats},
};

/// Timing of a run: `warmup` of load that is not counted, then `duration` that is (both per
/// target in the open loop).
#[derive(Clone, Copy)]
pub struct Phases {
    pub warmup: Duration,
    pub duration: Duration,
}

pub struct Outcome {
    pub stats: Stats,
    pub window: Duration,
    pub proc: Option<ProcStats>,
}

/// Closed loop over one or more targets, taken in turn (see [`Schedule`]): during a target's
/// blocks, `connections` workers, each with its own keep-alive connection, send the next request
/// as soon as the previous response has been read. Returns one outcome per target.
pub async fn saturate(
    targets: Vec<(Arc<Target>, Option<Watch>)>,
    connections: usize,
    phases: Phases,
    round: Duration,
) -> anyhow::Result<Vec<Outcome>> {
    if targets.is_empty() {
        bail!("no target");
    }
    let schedule = Arc::new(Schedule::new(targets.len(), phases, round)?);
    let watches = targets.iter().map(|(_, w)| *w).collect::<Vec<_>>();
    let monitor = watches
        .iter()
        .any(Option::is_some)
        .then(|| Monitor::spawn(watches, schedule.blocks()));
    let mut workers = Vec::new();
    for (i, (target, _)) in targets.iter().enumerate() {
        let handles: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(worker(target.clone(), schedule.blocks_of(i))))
            .collect();
        workers.push(handles);
    }
    let mut all = Vec::new();
    for handles in workers {
        let mut stats = Stats::new()?;
        for h in handles {
            stats.add(&h.await??)?;
        }
        all.push(stats);
    }
    // Only now: joining blocks the thread, and the workers share it.
    let procs = join_monitor(monitor, all.len())?;
    let window = schedule.window();
    Ok(all
        .into_iter()
        .zip(procs)
        .map(|(stats, proc)| Outcome {
            stats,
            window,
            proc,
        })
        .collect())
}

fn join_monitor(monitor: Option<Monitor>, n: usize) -> anyhow::Result<Vec<Option<ProcStats>>> {
    match monitor {
        Some(m) => m.join(),
        None => Ok(vec![None; n]),
    }
}

/// One closed-loop connection, active during `blocks` (start, end, measured).
async fn worker(
    target: Arc<Target>,
    blocks: Vec<(Instant, Instant, bool)>,
) -> anyhow::Result<Stats> {
    let mut stats = Stats::new()?;
    let mut conn = None;
    for (start, end, measured) in blocks {
        tokio::time::sleep_until(start.into()).await;
        while Instant::now() < end {
            let mut sender = match conn.take() {
                Some(s) => s,
                None => match target.connect().await {
                    Ok(s) => s,
                    Err(e) => {
                        if measured {
                            stats.error(format_args!("{e:#}"));
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            match target.exchange(&mut sender).await {
                Ok(x) => {
                    if measured && x.done <= end {
                        stats.outcome(x.status, x.first_byte - x.sent, x.done - x.sent);
                    }
                    conn = Some(sender);
                }
                Err(e) if measured => stats.error(format_args!("{e:#}")),
                Err(_) => {}
            }
        }
    }
    Ok(stats)
}

/// When each target gets load.
///
/// Warm-up first: one block of `warmup` per target, in order. Then the measured window, in
/// blocks of `round` that go to the targets in turn (A B C A B C ...), so that whatever else
/// happens on the machine meanwhile falls on every target alike. Each target gets
/// `blocks_per_target` blocks.
struct Schedule {
    targets: usize,
    first: Instant,
    warmup: Duration,
    start: Instant,
    round: Duration,
    blocks_per_target: u32,
}

impl Schedule {
    fn new(targets: usize, phases: Phases, round: Duration) -> anyhow::Result<Self> {
        if phases.duration.is_zero() {
            bail!("--duration-secs must be positive");
        }
        let round = if round.is_zero() || round > phases.duration {
            phases.duration
        } else {
            round
        };
        let blocks_per_target = (phases.duration.as_secs_f64() / round.as_secs_f64())
            .round()
            .max(1.0);
        let warmup_blocks = u32::try_from(targets)?;
        // Leave a moment for the pacer thread to start before the first slot.
        let first = Instant::now() + Duration::from_millis(20);
        Ok(Self {
            targets,
            first,
            warmup: phases.warmup,
            start: first + phases.warmup * warmup_blocks,
            round,
            blocks_per_target: blocks_per_target as u32,
        })
    }

    fn end(&self) -> Instant {
        self.start + self.round * self.blocks_per_target * self.targets as u32
    }

    /// Measured time per target.
    fn window(&self) -> Duration {
        self.round * self.blocks_per_target
    }

    /// The target a request intended for `t` goes to, and whether it is measured.
    fn at(&self, t: Instant) -> (usize, bool) {
        let block = |since: Duration, len: Duration| {
            (since.as_nanos() / len.as_nanos().max(1)) as usize % self.targets
        };
        if t < self.start {
            (block(t - self.first, self.warmup), false)
        } else {
            (block(t - self.start, self.round), true)
        }
    }

    /// Target `i`'s blocks as (start, end, measured): its warm-up block, then its measured ones.
    fn blocks_of(&self, i: usize) -> Vec<(Instant, Instant, bool)> {
        let mut out = Vec::new();
        if !self.warmup.is_zero() {
            let start = self.first + self.warmup * i as u32;
            out.push((start, start + self.warmup, false));
        }
        let measured = self.blocks().into_iter().filter(|b| b.target == i);
        out.extend(measured.map(|b| (b.start, b.end, true)));
        out
    }

    fn blocks(&self) -> Vec<Block> {
        (0..self.blocks_per_target * self.targets as u32)
            .map(|i| {
                let start = self.start + self.round * i;
                Block {
                    target: i as usize % self.targets,
                    start,
                    end: start + self.round,
                }
            })
            .collect()
    }
}

/// Open loop at `rps` requests per second over one or more targets, taken in turn (see
/// [`Schedule`]). Latency (to the first body byte and to the end) is measured from the time the
/// schedule says the request should have been sent. Returns one outcome per target.
pub async fn open_loop(
    targets: Vec<(Arc<Target>, Option<Watch>)>,
    rps: f64,
    phases: Phases,
    round: Duration,
) -> anyhow::Result<Vec<Outcome>> {
    if !rps.is_finite() || rps <= 0.0 {
        bail!("--rps must be positive");
    }
    if targets.is_empty() {
        bail!("no target");
    }
    let schedule = Arc::new(Schedule::new(targets.len(), phases, round)?);
    let watches = targets.iter().map(|(_, w)| *w).collect::<Vec<_>>();
    let monitor = watches
        .iter()
        .any(Option::is_some)
        .then(|| Monitor::spawn(watches, schedule.blocks()));
    let pools: Vec<_> = targets
        .into_iter()
        .map(|(t, _)| Arc::new(Pool::new(t)))
        .collect();
    let stats: Vec<_> = (0..pools.len())
        .map(|_| Stats::new().map(|s| Arc::new(Mutex::new(s))))
        .collect::<anyhow::Result<_>>()?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let (first, end) = (schedule.first, schedule.end());
    let pacer = thread::spawn(move || pace(first, end, rps, &tx));
    let mut tasks = JoinSet::new();
    while let Some(intended) = rx.recv().await {
        let (i, measured) = schedule.at(intended);
        let (Some(pool), Some(stats)) = (pools.get(i).cloned(), stats.get(i).cloned()) else {
            continue;
        };
        tasks.spawn(async move {
            let result = pool.exchange().await;
            if !measured {
                return;
            }
            let Ok(mut stats) = stats.lock() else { return };
            match result {
                Ok(x) => {
                    stats.lag.saturating_record(nanos(x.sent - intended));
                    stats.outcome(x.status, x.first_byte - intended, x.done - intended);
                }
                Err(e) => stats.error(format_args!("{e:#}")),
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    pacer.join().map_err(|_| anyhow!("pacer thread panicked"))?;
    let procs = join_monitor(monitor, stats.len())?;

    let mut outcomes = Vec::new();
    for (stats, proc) in stats.iter().zip(procs) {
        let mut total = Stats::new()?;
        total.add(&*stats.lock().map_err(|_| anyhow!("stats lock poisoned"))?)?;
        outcomes.push(Outcome {
            stats: total,
            window: schedule.window(),
            proc,
        });
    }
    Ok(outcomes)
}

/// Emits the intended send time of every request from `first` until `end`, on a plain thread
/// because tokio's timer has a 1 ms granularity. The thread sleeps (it does not spin: spinning
/// would steal the shared core from the mock), so a send leaves a few tens of microseconds after
/// its slot; that offset is the same on every path and cancels out of the "added" numbers. If
/// the thread falls behind it catches up at once: the intended times never move.
fn pace(first: Instant, end: Instant, rps: f64, tx: &mpsc::UnboundedSender<Instant>) {
    for i in 0u64.. {
        let slot = first + Duration::from_secs_f64(i as f64 / rps);
        if slot >= end {
            break;
        }
        let now = Instant::now();
        if slot > now {
            thread::sleep(slot - now);
        }
        if tx.send(slot).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http::{Response, StatusCode};
    use http_body_util::{BodyExt, Full};
    use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request};
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    use super::*;
    use crate::vary::Counter;

    /// A server that answers 200, or 401 without `Authorization`.
    async fn server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(http1::Builder::new().serve_connection(
                    TokioIo::new(stream),
                    service_fn(|req: Request<Incoming>| async move {
                        let mut resp = Response::new(Full::new(Bytes::from_static(b"{}")));
                        if !req.headers().contains_key("authorization") {
                            *resp.status_mut() = StatusCode::UNAUTHORIZED;
                        }
                        Ok::<_, Infallible>(resp)
                    }),
                ));
            }
        });
        format!("http://{addr}/v1/chat/completions")
    }

    const ZERO: Duration = Duration::ZERO;

    fn one(outcomes: anyhow::Result<Vec<Outcome>>) -> Outcome {
        outcomes.unwrap().pop().unwrap()
    }

    fn phases(secs: f64) -> Phases {
        Phases {
            warmup: Duration::from_millis(100),
            duration: Duration::from_secs_f64(secs),
        }
    }

    fn target(url: &str, auth: bool) -> Arc<Target> {
        let headers = if auth {
            vec!["Authorization: Bearer k".to_owned()]
        } else {
            vec![]
        };
        let body = Some(Bytes::from_static(b"{}"));
        Arc::new(Target::new(url, &headers, body, Duration::from_secs(5)).unwrap())
    }

    #[tokio::test]
    async fn saturate_counts_responses_and_watches_a_process() {
        let url = server().await;
        let watch = Watch {
            pid: std::process::id(),
            clk_tck: 100,
            core: Some(0),
        };
        let out = one(saturate(
            vec![(target(&url, true), Some(watch))],
            4,
            phases(0.3),
            ZERO,
        )
        .await);
        assert!(out.stats.requests > 10, "{}", out.stats.requests);
        assert_eq!(out.stats.errors, 0);
        let proc = out.proc.unwrap();
        assert!(proc.rss_max_kb > 0 && proc.other_on_core.is_some());
    }

    #[tokio::test]
    async fn open_loop_sends_at_the_rate_and_counts_non_2xx_as_errors() {
        let url = server().await;
        let out = one(open_loop(vec![(target(&url, true), None)], 200.0, phases(0.5), ZERO).await);
        // 200/s over 0.5 s; a slot on the window's edge may fall either side.
        assert!(
            (99..=101).contains(&out.stats.requests),
            "{}",
            out.stats.requests
        );
        assert_eq!(out.stats.errors, 0);

        let out =
            one(open_loop(vec![(target(&url, false), None)], 200.0, phases(0.25), ZERO).await);
        assert_eq!(out.stats.requests, 0);
        assert!(
            (49..=51).contains(&out.stats.errors),
            "{}",
            out.stats.errors
        );
        assert_eq!(
            out.stats.first_error.as_deref(),
            Some("HTTP 401 Unauthorized")
        );
    }

    #[tokio::test]
    async fn open_loop_takes_targets_in_turn_and_watches_each() {
        let (a, b) = (server().await, server().await);
        let me = Some(Watch {
            pid: std::process::id(),
            clk_tck: 100,
            core: None,
        });
        let targets = vec![(target(&a, true), me), (target(&b, false), None)];
        let round = Duration::from_millis(100);
        let out = open_loop(targets, 200.0, phases(0.4), round).await.unwrap();
        assert_eq!(out.len(), 2);
        // 4 blocks of 100 ms each, 20 requests per block.
        assert!(
            (79..=81).contains(&out[0].stats.requests),
            "{}",
            out[0].stats.requests
        );
        assert_eq!(out[0].stats.errors, 0);
        assert_eq!(out[0].window, Duration::from_millis(400));
        assert!(out[0].proc.is_some() && out[1].proc.is_none());
        assert!(
            (79..=81).contains(&out[1].stats.errors),
            "{}",
            out[1].stats.errors
        );
    }

    #[tokio::test]
    async fn saturate_takes_targets_in_turn() {
        let (a, b) = (server().await, server().await);
        let targets = vec![(target(&a, true), None), (target(&b, false), None)];
        let out = saturate(targets, 2, phases(0.2), Duration::from_millis(50))
            .await
            .unwrap();
        assert!(out[0].stats.requests > 10 && out[0].stats.errors == 0);
        assert!(out[1].stats.requests == 0 && out[1].stats.errors > 10);
        assert_eq!(out[1].window, Duration::from_millis(200));
    }

    /// A server that answers 200 and keeps every request body it was sent.
    async fn recording_server() -> (String, Arc<Mutex<Vec<Bytes>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let seen = seen.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        seen.lock().unwrap().push(body);
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        (format!("http://{addr}/v1/chat/completions"), bodies)
    }

    #[tokio::test]
    async fn fresh_bodies_reach_the_target_all_different() {
        let (url, bodies) = recording_server().await;
        let template = Bytes::from_static(br#"{"messages":[{"content":"hi %V"}]}"#);
        let target = Target::new(&url, &[], Some(template), Duration::from_secs(5))
            .unwrap()
            .vary("%V", Counter::new(None))
            .unwrap();
        let out = one(saturate(vec![(Arc::new(target), None)], 4, phases(0.2), ZERO).await);
        assert_eq!(out.stats.errors, 0);
        let bodies = bodies.lock().unwrap();
        assert!(bodies.len() > 10, "{}", bodies.len());
        let distinct: std::collections::HashSet<_> = bodies.iter().collect();
        assert_eq!(distinct.len(), bodies.len(), "a body was sent twice");
        assert!(bodies.iter().all(|b| !b.windows(2).any(|w| w == b"%V")));
    }

    #[test]
    fn schedule_warms_each_target_then_alternates() {
        let phases = Phases {
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(3),
        };
        let s = Schedule::new(2, phases, Duration::from_secs(1)).unwrap();
        let at = |secs: f64| s.at(s.first + Duration::from_secs_f64(secs));
        assert_eq!(at(0.5), (0, false));
        assert_eq!(at(2.5), (1, false));
        assert_eq!(at(4.5), (0, true));
        assert_eq!(at(5.5), (1, true));
        assert_eq!(at(6.5), (0, true));
        assert_eq!(s.end() - s.first, Duration::from_secs(10));
        assert_eq!(s.window(), Duration::from_secs(3));
        assert_eq!(s.blocks().len(), 6);
        let of_1 = s.blocks_of(1);
        assert_eq!(of_1.len(), 4);
        assert_eq!(of_1[0].0 - s.first, Duration::from_secs(2));
        assert!(!of_1[0].2 && of_1[1].2);
        assert_eq!(of_1[1].0 - s.first, Duration::from_secs(5));
    }
}
