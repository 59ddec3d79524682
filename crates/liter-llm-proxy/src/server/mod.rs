//! The HTTP edge: the stack (`stack.rs`, which lists every stage in order), the
//! handlers, CORS, and [`serve`]. The top of the crate: it may use every module below,
//! and none uses it.

mod cors;
pub(crate) mod handlers;
pub mod stack;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::app::App;

/// Serve `app` on `listener` until `shutdown` resolves; then stop accepting and wait
/// for in-flight requests and streams to finish.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = stack::router(app.clone());
    let probes = crate::routing::health::spawn(
        app.routes.clone(),
        app.upstream.clone(),
        app.config.routing.health.clone(),
    );
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let draining = app.clone();
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            draining.draining.store(true, Ordering::Relaxed);
            tracing::info!("shutting down: draining in-flight requests");
        })
        .await;
    if let Some(p) = probes {
        p.abort();
    }
    // Every request has ended: make the spend of the last ones durable before exit.
    app.governor.settled().await;
    result
}
