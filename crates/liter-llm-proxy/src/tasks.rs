//! Background work a gateway waits for: [`Pending`] counts the tasks it spawned while
//! they run, so tests and shutdown can wait until every one started so far has ended
//! (the meter's settlements, the cache's backend writes). A leaf: imports nothing of
//! ours.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::Notify;

/// Tasks still running.
#[derive(Debug, Default)]
pub struct Pending {
    count: AtomicUsize,
    idle: Notify,
}

impl Pending {
    /// Runs `work` on `rt`, counted until it ends.
    pub fn spawn(self: &Arc<Self>, rt: &Handle, work: impl Future<Output = ()> + Send + 'static) {
        self.count.fetch_add(1, Ordering::AcqRel);
        let pending = self.clone();
        rt.spawn(async move {
            work.await;
            if pending.count.fetch_sub(1, Ordering::AcqRel) == 1 {
                pending.idle.notify_waiters();
            }
        });
    }

    /// Waits until every task spawned so far has ended.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}
