//! The routing counts ([`crate::routing::shared`]) in the rate limiter's Redis, on its
//! connection, timeout, breaker and failure policy: one [`super::ROUTE`] script per decision
//! ranks the candidates (by the requests in flight on every gateway, or by the headroom
//! left in their windows), admits the first that fits its own rpm/tpm window (the same
//! sliding windows as the keys', `admit.lua`) and counts it in flight. Tokens are
//! settled as the keys' are; the in-flight entry is removed when the request ends,
//! and lapses after `[server] request_timeout_secs` (no request outlives it) if its
//! gateway dies first.
//!
//! Keys, in the limiter's namespace: `{<namespace>}:rl:dep:<deployment id>` (the
//! window's hash), the same with `:z` (its sorted set) and `:busy` (the in-flight set).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::Value;

use super::{int, RedisLimiter, Ticket, SLOT_US, WINDOW_US};
use crate::config::RedisFailure;
use crate::routing::shared::{Decision, Hold, Ranking, SharedRoutes};
use crate::routing::DeploymentState;

impl SharedRoutes for RedisLimiter {
    fn decide<'a>(
        &'a self,
        cands: &'a [&'a DeploymentState],
        ranking: Ranking,
        tokens: u64,
        lasts: Duration,
    ) -> BoxFuture<'a, Decision> {
        Box::pin(self.route(cands, ranking, tokens, lasts))
    }

    fn fails_closed(&self) -> bool {
        self.failure() == RedisFailure::FailClosed
    }
}

/// What the routing script answered.
enum Reply {
    /// The candidate (0-based) and the bucket that holds it (empty: no window).
    Admitted(usize, String),
    /// Per candidate, its retry after.
    Full(Vec<Option<Duration>>),
}

fn decode(v: &Value) -> Option<Reply> {
    let Value::Array(items) = v else {
        return None;
    };
    match int(items.first()?)? {
        1 => {
            let index = usize::try_from(int(items.get(1)?)?).ok()?.checked_sub(1)?;
            let bucket = match items.get(2)? {
                Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
                other => int(other)?.to_string(),
            };
            Some(Reply::Admitted(index, bucket))
        }
        // -1: never, for a request this large.
        0 => Some(Reply::Full(
            items[1..]
                .iter()
                .map(|w| int(w).map(|us| u64::try_from(us).ok().map(Duration::from_micros)))
                .collect::<Option<Vec<_>>>()?,
        )),
        _ => None,
    }
}

impl RedisLimiter {
    async fn route(
        &self,
        cands: &[&DeploymentState],
        ranking: Ranking,
        tokens: u64,
        lasts: Duration,
    ) -> Decision {
        let inner = &self.0;
        let id = format!("{:016x}", rand::random::<u64>());
        let word = match ranking {
            Ranking::First => "first",
            Ranking::LeastBusy => "busy",
            Ranking::Usage => "usage",
        };
        let mut keys = Vec::with_capacity(cands.len() * 3);
        let mut args = Vec::with_capacity(7 + cands.len() * 3);
        args.extend([
            tokens.to_string(),
            WINDOW_US.to_string(),
            SLOT_US.to_string(),
            String::new(),
            word.to_owned(),
            id.clone(),
            rand::random_range(0..cands.len().max(1)).to_string(),
        ]);
        for d in cands {
            let hash = format!("{}dep:{}", inner.prefix, d.deployment.id);
            let (set, busy) = (format!("{hash}:z"), format!("{hash}:busy"));
            keys.extend([hash, set, busy]);
            let dep = &d.deployment;
            args.push(dep.rpm.map(|r| r.to_string()).unwrap_or_default());
            args.push(dep.tpm.map(|t| t.to_string()).unwrap_or_default());
            args.push(lasts.as_micros().max(1).to_string());
        }
        let reply = match inner.run(&inner.route, &keys, &args, decode).await {
            Ok(r) => r,
            Err(_) => return Decision::Unavailable,
        };
        match reply {
            Reply::Full(waits) if waits.len() == cands.len() => Decision::Full(waits),
            Reply::Admitted(index, bucket) if index < cands.len() => {
                let d = cands[index];
                let hash = &keys[index * 3];
                let hold = RouteHold {
                    ticket: Ticket {
                        limiter: self.clone(),
                        hashes: d
                            .deployment
                            .tpm
                            .map(|_| vec![hash.clone()])
                            .unwrap_or_default(),
                        bucket,
                    },
                    busy: (ranking == Ranking::LeastBusy)
                        .then(|| (keys[index * 3 + 2].clone(), id)),
                };
                Decision::Admitted {
                    index,
                    hold: Arc::new(hold),
                }
            }
            _ => Decision::Unavailable,
        }
    }
}

/// A request the routing script admitted: its tokens to settle, and its entry in a
/// deployment's in-flight set (least-busy), removed when the request ends.
#[derive(Debug)]
struct RouteHold {
    ticket: Ticket,
    /// The in-flight set and this request's member of it.
    busy: Option<(String, String)>,
}

impl Hold for RouteHold {
    fn settle(&self, estimate: u64, actual: u64) {
        super::Settle::settle(&self.ticket, estimate, actual);
    }
}

impl Drop for RouteHold {
    fn drop(&mut self) {
        let Some((key, member)) = self.busy.take() else {
            return;
        };
        // While Redis is down the entry lapses on its own.
        self.ticket.limiter.0.background(move |inner| async move {
            let mut conn = inner.connection().await?;
            redis::cmd("ZREM")
                .arg(&key)
                .arg(&member)
                .query_async::<i64>(&mut conn)
                .await
                .map(drop)
        });
    }
}
