//! Routing counts shared by every gateway on one Redis (`general.redis_url`): the
//! deployments' own rpm/tpm windows, and for least-busy and usage-based routing the
//! in-flight and per-minute counts the choice is ranked by.
//!
//! Routing only sees this trait; the governance stage's Redis limiter implements it
//! (one atomic script per decision: rank, admit, count in flight), and the App hands
//! it to the [`super::Registry`] ([`super::Registry::share`]). Without it, or for a
//! pool whose strategy and deployments need no shared count, routing asks nothing
//! of anyone.
//!
//! Also the announcements of breaker and health changes that the gateways sharing a
//! Redis exchange (`reload::sync` carries them): what a change here tells the others
//! ([`Announcement`]), and how an announcement from another is followed
//! ([`Registry::follow`]).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::Instant;

use super::{Ask, DeploymentState, Registry, RouteError};
use crate::config::Strategy;

/// How the shared counts order the candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    /// In the order given (the strategy chose locally).
    First,
    /// Fewest requests in flight on every gateway first (least-busy); the admitted
    /// request is counted in flight until its [`Hold`] drops.
    LeastBusy,
    /// Most headroom left under rpm/tpm first (usage-based).
    Usage,
}

/// What the shared counts decided.
pub enum Decision {
    /// The candidate at `index` is admitted; `hold` settles its tokens and ends its
    /// in-flight count when dropped.
    Admitted { index: usize, hold: Arc<dyn Hold> },
    /// No candidate fits: per candidate, when it may fit again (`None`: never, for a
    /// request this large).
    Full(Vec<Option<Duration>>),
    /// The counts could not be read (Redis down, slow, or skipped by its breaker).
    Unavailable,
}

/// A request admitted by the shared counts, until it ends.
pub trait Hold: Send + Sync + std::fmt::Debug {
    /// Replace the `estimate` of tokens by the tokens really used.
    fn settle(&self, estimate: u64, actual: u64);
}

/// Counts kept where every gateway sees them.
pub trait SharedRoutes: Send + Sync {
    /// Choose among `cands` by `ranking` and admit the choice against its rpm/tpm, for
    /// a request of about `tokens` tokens that ends within `lasts`, in one decision.
    fn decide<'a>(
        &'a self,
        cands: &'a [&'a DeploymentState],
        ranking: Ranking,
        tokens: u64,
        lasts: Duration,
    ) -> BoxFuture<'a, Decision>;

    /// Whether an undecided request is refused (`general.redis_failure =
    /// "fail_closed"`) rather than routed on this gateway's own counts.
    fn fails_closed(&self) -> bool;
}

/// Whether `d` needs a shared decision under a strategy that ranks locally: it has an
/// rpm or tpm of its own.
pub fn limited(d: &DeploymentState) -> bool {
    d.deployment.rpm.is_some() || d.deployment.tpm.is_some()
}

/// The [`SharedRoutes`] a [`super::Registry`] uses, printed by name only.
pub(super) struct Shared(pub(super) Arc<dyn SharedRoutes>);

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedRoutes")
    }
}

/// The `Retry-After` of a request too large for every deployment's tpm.
const FULL_FOR: Duration = Duration::from_secs(60);

impl Registry {
    /// Route with `shared`'s counts from now on (once; the App sets it when Redis
    /// coordinates the gateways).
    pub fn share(&self, shared: Arc<dyn SharedRoutes>) {
        let _ = self.shared.set(Shared(shared));
    }

    /// [`Registry::take`] on the shared counts. Least-busy pools, and usage-based pools
    /// with a limit, send every candidate, and the shared counts rank them; other
    /// strategies choose here and ask only when the choice has an rpm or tpm. A
    /// deployment the shared window refused is skipped here until it may fit again.
    /// When the counts cannot decide, `fail_closed` refuses the request and
    /// `fail_open` routes it on this process's counts.
    pub(super) async fn pick_shared(
        &self,
        shared: &dyn SharedRoutes,
        ask: &Ask<'_>,
    ) -> Result<Picked, RouteError> {
        let (pool, tokens) = (ask.pool, ask.tokens);
        let ranking = match pool.spec.strategy {
            Strategy::LeastBusy => Ranking::LeastBusy,
            // With no limit anywhere in the pool, every deployment has full headroom.
            Strategy::UsageBased if pool.deployments.iter().any(|d| limited(d)) => Ranking::Usage,
            _ => Ranking::First,
        };
        // Deployments this request alone is too large for.
        let mut never: Vec<usize> = Vec::new();
        for _ in 0..pool.deployments.len() + 4 {
            let now = Instant::now();
            let cands = self.candidates(ask, now, |i, d| {
                if never.contains(&i) {
                    return Err(FULL_FOR);
                }
                d.shared_room(now).map(|()| true)
            })?;
            let sent = if ranking == Ranking::First {
                let (i, d) = self.choose(pool, &cands, now);
                if !d.breaker().admit(now) {
                    continue;
                }
                if !limited(d) {
                    return Ok((i, d.clone(), None));
                }
                vec![(i, d)]
            } else {
                cands
            };
            let refs: Vec<&DeploymentState> = sent.iter().map(|(_, d)| d.as_ref()).collect();
            let decision = shared
                .decide(&refs, ranking, tokens, self.request_timeout)
                .await;
            let release = || {
                if ranking == Ranking::First {
                    sent[0].1.breaker().release_probe();
                }
            };
            match decision {
                Decision::Admitted { index, hold } => {
                    let Some(&(i, d)) = sent.get(index) else {
                        release();
                        continue;
                    };
                    if ranking != Ranking::First && !d.breaker().admit(Instant::now()) {
                        continue;
                    }
                    return Ok((i, d.clone(), Some(hold)));
                }
                Decision::Full(waits) => {
                    release();
                    let now = Instant::now();
                    for (&(i, d), wait) in sent.iter().zip(waits) {
                        match wait {
                            Some(w) => d.mark_full(now + w),
                            None => never.push(i),
                        }
                    }
                }
                Decision::Unavailable => {
                    release();
                    if shared.fails_closed() {
                        return Err(RouteError::SharedUnavailable);
                    }
                    return self.pick(ask);
                }
            }
        }
        Err(RouteError::Busy(pool.spec.name.clone()))
    }
}

/// A change of a deployment's breaker or health worth telling the other gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announcement<'a> {
    /// The deployment with this id started a cooldown of this length.
    Cooled(&'a str, Duration),
    /// Its half-open probe succeeded: it is back.
    Recovered(&'a str),
    /// A health probe found it healthy (`true`) or unhealthy (`false`).
    Health(&'a str, bool),
}

/// A chosen deployment: its index in the pool, its state, and the shared counts' hold
/// of the request when they admitted it.
pub type Picked = (usize, Arc<DeploymentState>, Option<Arc<dyn Hold>>);

/// See [`Registry::on_cooldown`].
pub type CooldownAnnouncer = Box<dyn Fn(Announcement<'_>) + Send + Sync>;

/// A [`CooldownAnnouncer`], printed by name only.
pub(super) struct Announcer(CooldownAnnouncer);

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Announcer")
    }
}

/// The longest cooldown taken from another gateway (a bound on what a message can
/// ask for).
const MAX_SHARED_COOLDOWN: Duration = Duration::from_secs(3600);
/// How much longer than the gateway that started it another gateway keeps a cooldown:
/// time for that gateway's half-open probe, whose success it then hears of, so one
/// gateway probes, not all. A gateway that hears nothing (the prober is gone, or saw
/// no traffic) probes itself once this has passed too.
pub const PROBE_GRACE: Duration = Duration::from_secs(5);

impl Registry {
    /// Tell `announce` of every cooldown a failure starts here, every recovery a
    /// half-open probe sees, and every change a health probe finds.
    pub fn on_cooldown(&self, announce: CooldownAnnouncer) {
        let _ = self.announcer.set(Announcer(announce));
    }

    pub(crate) fn announce(&self, what: Announcement<'_>) {
        if let Some(a) = self.announcer.get() {
            (a.0)(what);
        }
    }

    /// Take in another gateway's announcement: cool the deployment with that id for
    /// the cooldown's length and [`PROBE_GRACE`], close its breaker once that
    /// gateway's probe succeeded, or mark it as that gateway's health probe found it
    /// (until a probe here finds otherwise). False when no deployment here has the id.
    pub fn follow(&self, what: Announcement<'_>) -> bool {
        let now = Instant::now();
        let (Announcement::Cooled(id, _)
        | Announcement::Recovered(id)
        | Announcement::Health(id, _)) = what;
        let mut found = false;
        for d in self.deployments().filter(|d| d.deployment.id == id) {
            match what {
                Announcement::Cooled(_, length) => {
                    d.breaker()
                        .cool_until(now + length.min(MAX_SHARED_COOLDOWN) + PROBE_GRACE);
                }
                Announcement::Recovered(_) => {
                    d.breaker().success(now);
                }
                Announcement::Health(_, healthy) => {
                    d.set_health(
                        (!healthy).then(|| "a health probe of another gateway failed".to_owned()),
                    );
                }
            }
            found = true;
        }
        found
    }
}
