//! Stored models kept the same on every gateway that shares a database and a Redis
//! (`general.redis_url`): a gateway whose model admin API changed them announces it
//! on the channel `{namespace}:models`; every other one, subscribed, reads the store
//! again and serves what it holds ([`Live::sync_stored`]). After (re)subscribing, a
//! gateway reads the store once, so a change announced while it was not listening is
//! not missed. A Redis that is down delays the spread (until it is back), never a
//! request: announcing runs in the background, bounded by the Redis timeout.
//!
//! Part of `reload`; talks to Redis only.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use secrecy::ExposeSecret;
use tokio::task::JoinHandle;

use super::{Live, ReloadError};
use crate::config::RedisSpec;

/// How long a broken subscription waits before it tries again.
const RETRY: Duration = Duration::from_secs(1);

/// The announcing and following of stored-model changes of one gateway.
pub struct ModelSync {
    client: redis::Client,
    channel: String,
    /// This gateway's mark in its announcements, so it skips its own.
    me: String,
    timeout: Duration,
}

impl ModelSync {
    /// `None` when the URL cannot be used (the rate limiter reports that at start-up).
    pub fn new(spec: &RedisSpec) -> Option<Arc<ModelSync>> {
        let client = redis::Client::open(spec.url.expose_secret()).ok()?;
        Some(Arc::new(ModelSync {
            client,
            channel: format!("{}:models", spec.namespace),
            me: format!("{:016x}", rand::random::<u64>()),
            timeout: spec.timeout,
        }))
    }

    /// Tells the other gateways that the stored models changed.
    pub fn announce(self: &Arc<Self>) {
        let sync = self.clone();
        tokio::spawn(async move {
            let publish = async {
                let mut c = sync.client.get_multiplexed_async_connection().await?;
                redis::cmd("PUBLISH")
                    .arg(&sync.channel)
                    .arg(&sync.me)
                    .query_async::<i64>(&mut c)
                    .await
            };
            match tokio::time::timeout(sync.timeout, publish).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e.category(), "could not tell the other gateways that the stored models changed; they see it at their next reload"),
                Err(_) => tracing::warn!("Redis took too long to take the news that the stored models changed; the other gateways see it at their next reload"),
            }
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
                        if !sync(&live).await {
                            return;
                        }
                        let mut messages = pubsub.on_message();
                        while let Some(msg) = messages.next().await {
                            let from: String = msg.get_payload().unwrap_or_default();
                            if from != self.me && !sync(&live).await {
                                return;
                            }
                        }
                        tracing::debug!("the subscription to stored-model changes broke");
                    }
                    Err(e) => {
                        tracing::debug!(error = %e.category(), "cannot subscribe to stored-model changes")
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

/// Serves what the store holds now; false once `live` is gone or shutting down.
async fn sync(live: &Weak<Live>) -> bool {
    let Some(live) = live.upgrade() else {
        return false;
    };
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
        Err(e) => {
            tracing::error!(
                "stored models changed on another gateway, but are not served here: {e}"
            );
            true
        }
    }
}
