//! Changes spread to every gateway that shares a Redis (`general.redis_url`) and a
//! database: a gateway whose admin API changed the stored models or a virtual key, that
//! started a deployment's cooldown, or whose health probe found a deployment down or up,
//! announces it on the channel `{namespace}:changes`; every other one, subscribed, reads
//! the stored models again and serves them ([`Live::sync_stored`]), forgets the keys it
//! cached (so the next request reads them from the database), cools the deployment with
//! that id for as long, or marks it as the probe found it.
//! After (re)subscribing, a gateway does both once, so a model or key change announced
//! while it was not listening is not missed; a cooldown or health change announced then
//! is (announcements are not stored): the gateway learns that deployment's state from
//! its own requests and health probes. A Redis that is down delays the spread (until it is
//! back, or the key cache's own expiry), never a request: announcing runs in the
//! background, bounded by the Redis timeout (at least a second).
//!
//! Part of `reload`; talks to Redis only.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::{Live, ReloadError};
use crate::config::RedisSpec;
use crate::routing::Announcement;

/// How long a broken subscription waits before it tries again; also the least time an
/// announcement or a subscription is given (they run in the background, so a Redis
/// far away gets more than the rate limiter's per-call timeout).
const RETRY: Duration = Duration::from_secs(1);
/// Tries to announce a change before giving up (each within the Redis timeout, at
/// least [`RETRY`]).
const ANNOUNCE_TRIES: usize = 3;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// The stored models (the model admin API).
    Models,
    /// A virtual key was updated, blocked or deleted (the key admin API).
    Keys,
    /// A deployment's breaker or health: a cooldown started, a probe saw it recover,
    /// or a health probe found it up or down.
    Breaker(Announcement<'a>),
}

impl Change<'_> {
    fn word(self) -> &'static str {
        match self {
            Change::Models => "models",
            Change::Keys => "keys",
            Change::Breaker(Announcement::Cooled(..)) => "cooldown",
            Change::Breaker(Announcement::Recovered(_)) => "recovered",
            Change::Breaker(Announcement::Health(..)) => "health",
        }
    }

    /// The message announcing it from `me`: `<word> <me>`, then for a cooldown
    /// `<milliseconds> <deployment id>`, for a recovery `<deployment id>`, for a health
    /// probe's change `up|down <deployment id>`.
    fn message(self, me: &str) -> String {
        match self {
            Change::Breaker(Announcement::Cooled(id, length)) => {
                format!("cooldown {me} {} {id}", length.as_millis())
            }
            Change::Breaker(Announcement::Recovered(id)) => format!("recovered {me} {id}"),
            Change::Breaker(Announcement::Health(id, up)) => {
                format!("health {me} {} {id}", if up { "up" } else { "down" })
            }
            other => format!("{} {me}", other.word()),
        }
    }

    /// A message's change and its sender; `None` for one this version does not know.
    fn read(text: &str) -> Option<(Change<'_>, &str)> {
        let (word, rest) = text.split_once(' ')?;
        let (from, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        let change = match word {
            "models" => Change::Models,
            "keys" => Change::Keys,
            "cooldown" => {
                let (ms, id) = tail.split_once(' ')?;
                let length = Duration::from_millis(ms.parse().ok()?);
                Change::Breaker(Announcement::Cooled(id, length))
            }
            "recovered" if !tail.is_empty() => Change::Breaker(Announcement::Recovered(tail)),
            "health" => {
                let (state, id) = tail.split_once(' ')?;
                let up = match state {
                    "up" => true,
                    "down" => false,
                    _ => return None,
                };
                Change::Breaker(Announcement::Health(id, up))
            }
            _ => return None,
        };
        Some((change, from))
    }
}

/// The announcing and following of one gateway's admin changes.
pub struct Spread {
    client: redis::Client,
    channel: String,
    /// This gateway's mark in its announcements, so it skips its own.
    me: String,
    timeout: Duration,
}

impl Spread {
    /// Announcing and following on `client`, the rate limiter's Redis.
    pub fn new(client: redis::Client, spec: &RedisSpec) -> Arc<Spread> {
        Arc::new(Spread {
            client,
            channel: format!("{}:changes", spec.namespace),
            me: format!("{:016x}", rand::random::<u64>()),
            timeout: spec.timeout,
        })
    }

    /// Tells the other gateways what changed.
    pub fn announce(self: &Arc<Self>, change: Change<'_>) {
        let sync = self.clone();
        let message = change.message(&self.me);
        let word = change.word();
        tokio::spawn(async move {
            let publish = || async {
                let mut c = sync.client.get_multiplexed_async_connection().await?;
                redis::cmd("PUBLISH")
                    .arg(&sync.channel)
                    .arg(&message)
                    .query_async::<i64>(&mut c)
                    .await
            };
            // A change not announced is seen late (or, for a cooldown, not at all): a
            // busy Redis or machine gets a few tries.
            let mut failed = String::new();
            for _ in 0..ANNOUNCE_TRIES {
                failed = match tokio::time::timeout(sync.timeout.max(RETRY), publish()).await {
                    Ok(Ok(_)) => return,
                    Ok(Err(e)) => e.category().to_owned(),
                    Err(_) => "timed out".to_owned(),
                };
            }
            tracing::warn!(error = %failed, "could not tell the other gateways of a change ({word}): they see a model change at their next reload, a key change within the key cache's expiry, and not a cooldown");
        });
    }

    /// Follows the other gateways' announcements for `live` until it is gone or
    /// shutting down.
    pub fn follow(self: Arc<Self>, live: Weak<Live>) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.subscribe().await {
                    Ok(mut pubsub) => {
                        // What changed while this gateway was not listening.
                        if !(apply(&live, Change::Keys).await && apply(&live, Change::Models).await)
                        {
                            return;
                        }
                        let mut messages = pubsub.on_message();
                        while let Some(msg) = messages.next().await {
                            let text: String = msg.get_payload().unwrap_or_default();
                            let Some((change, from)) = Change::read(&text) else {
                                continue;
                            };
                            if from != self.me && !apply(&live, change).await {
                                return;
                            }
                        }
                        tracing::debug!("the subscription to admin changes broke");
                    }
                    Err(e) => {
                        tracing::debug!(error = %e.category(), "cannot subscribe to admin changes")
                    }
                }
                if live.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(RETRY).await;
            }
        })
    }

    async fn subscribe(&self) -> redis::RedisResult<redis::aio::PubSub> {
        let connect = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&self.channel).await?;
            Ok(pubsub)
        };
        tokio::time::timeout(self.timeout.max(RETRY), connect)
            .await
            .unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::Io, "timed out"))))
    }
}

/// Takes in another gateway's change; false once `live` is gone or shutting down.
async fn apply(live: &Weak<Live>, change: Change<'_>) -> bool {
    let Some(live) = live.upgrade() else {
        return false;
    };
    let app = live.app();
    match change {
        Change::Keys => {
            app.keys.forget_runtime();
            return true;
        }
        Change::Breaker(what) => {
            if app.routes.follow(what) {
                tracing::info!(change = ?what, "a deployment's breaker changed on another gateway: following it here");
            }
            return true;
        }
        // Stored models are shared through a database only.
        Change::Models if app.governor.stores.is_none() => return true,
        Change::Models => {}
    }
    match live.sync_stored().await {
        Ok(changes) => {
            if !changes.is_empty() {
                tracing::info!(
                    "stored models changed on another gateway: {}",
                    changes.summary()
                );
            }
            true
        }
        Err(ReloadError::Closed) => false,
        // Not from a file (tests, embedding): the stored models are not served.
        Err(ReloadError::NoFile) => true,
        Err(e) => {
            tracing::error!(
                "stored models changed on another gateway, but are not served here: {e}"
            );
            true
        }
    }
}
