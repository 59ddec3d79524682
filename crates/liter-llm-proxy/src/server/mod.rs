//! The HTTP edge: the stack (`stack.rs`, which lists every stage in order), the
//! handlers, CORS, and [`serve`] with its accept loop (here) and connections
//! (`conn.rs`, `body.rs`). The top of the crate: it may use every module below, and
//! none uses it.

mod body;
mod conn;
mod cors;
pub(crate) mod files;
pub(crate) mod front;
pub(crate) mod handlers;
pub(crate) mod openapi;
pub(crate) mod responses;
pub mod routes;
pub mod stack;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustc_hash::FxHashMap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::app::App;
use crate::reload::{Live, LiveHandle};

/// The router of an App as [`Live`] serves it: [`stack::router`], with the handle the
/// routes that change the running config (the model admin API) use.
pub fn live_router(app: Arc<App>, live: std::sync::Weak<Live>) -> axum::Router {
    stack::router(app).layer(axum::Extension(LiveHandle(live)))
}

/// `app` as a [`Live`] gateway (`source`: the file it came from, for reloads).
pub fn live(app: Arc<App>, source: Option<crate::config::Source>) -> Arc<Live> {
    Live::new(app, source, live_router)
}

/// Serve `app` on `listener` until `shutdown` resolves (see [`serve_live`]); it cannot
/// be reloaded from a file.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_live(live(app, None), listener, shutdown).await
}

/// Serve `live` on `listener` until `shutdown` resolves; then stop accepting, close the
/// connections that have not sent a whole request, and wait for in-flight requests and
/// streams to finish. Each request is served by the App current when it arrived.
///
/// At most `server.max_connections` connections are open at once: the next one is
/// accepted only when one closes, so the excess waits in the listen queue.
pub async fn serve_live(
    live: Arc<Live>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Connection limits need a restart (`reload::changes`), so the first App's hold.
    let limits = live.app().config.limits;
    let shared = Arc::new(conn::Shared::new(live.clone(), limits));
    live.start_probes();
    live.start_sync();
    let slot_count = limits
        .max_connections
        .min(Semaphore::MAX_PERMITS)
        .min(u32::MAX as usize);
    let slots = Arc::new(Semaphore::new(slot_count));
    let open = Arc::new(Open::default());
    tokio::pin!(shutdown);
    loop {
        let (tcp, slot) = tokio::select! {
            next = accept(&listener, &slots) => next,
            () = &mut shutdown => break,
        };
        let (member, stop) = open.join();
        let shared = shared.clone();
        tokio::spawn(async move {
            conn::serve(tcp, shared, stop).await;
            drop((member, slot));
        });
    }
    live.close().await;
    tracing::info!("shutting down: draining in-flight requests");
    drop(listener);
    open.stop_all();
    // Every connection holds a slot until it ends.
    let _all = slots.acquire_many(slot_count as u32).await;
    // Every request has ended: make the spend of the last ones durable before exit
    // (the settlements of earlier Apps are the last one's too: `Governor::carry`).
    live.app().governor.settled().await;
    Ok(())
}

/// The next connection, once a slot is free, with `TCP_NODELAY` set.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> (TcpStream, OwnedSemaphorePermit) {
    let Ok(slot) = slots.clone().acquire_owned().await else {
        // Only a closed semaphore fails, and this one is never closed.
        return std::future::pending().await;
    };
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                let _ = tcp.set_nodelay(true);
                return (tcp, slot);
            }
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                // Out of file descriptors or memory: wait instead of spinning.
                tracing::error!("accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// An error of one incoming connection (gone before it was accepted), not of the
/// listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// The open connections' shutdown signals. One per connection, so that a connection
/// checks its own with an atomic load when it wakes (a shared `watch` or `Notify`
/// would take a shared lock on every wake of every connection).
#[derive(Default)]
struct Open {
    senders: Mutex<(u64, FxHashMap<u64, oneshot::Sender<()>>)>,
}

/// A connection's place in [`Open`], given up when it ends.
struct Member {
    open: Arc<Open>,
    id: u64,
}

impl Open {
    fn join(self: &Arc<Self>) -> (Member, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let mut senders = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        let id = senders.0;
        senders.0 += 1;
        senders.1.insert(id, tx);
        let open = self.clone();
        (Member { open, id }, rx)
    }

    fn stop_all(&self) {
        let mut senders = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, tx) in senders.1.drain() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let mut senders = self
            .open
            .senders
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        senders.1.remove(&self.id);
    }
}
