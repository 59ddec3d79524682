//! Health probes (`[health]`): every `interval_secs`, a small real request (one
//! token) to each deployment; one that fails is marked unhealthy, and the router
//! skips it until a later probe passes. `probe_model`, when set, limits probing to
//! that model's deployments.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::execute::{prepare, Job};
use super::DeploymentState;
use crate::server::body::parse_head;
use crate::server::App;
use crate::upstream::{self, Endpoint};

/// Start the probe loop, if `[health]` asks for one.
pub fn spawn(app: Arc<App>) -> Option<JoinHandle<()>> {
    let spec = app.config.routing.health.clone()?;
    let only = match &spec.probe {
        crate::config::ProbeTarget::Pool(m) => app.routes.pool(m).map(|p| p.spec.name.clone()),
        // `provider/model` targets: no restriction yet (every deployment is probed).
        _ => None,
    };
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(spec.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let probes = app
                .routes
                .deployments()
                .filter(|d| only.as_ref().is_none_or(|name| &d.deployment.name == name))
                .map(|d| probe(&app, d));
            futures_util::future::join_all(probes).await;
        }
    }))
}

async fn probe(app: &App, d: &Arc<DeploymentState>) {
    let Some(target) = &d.target else {
        return; // the in-process mock is always up
    };
    let body = serde_json::json!({
        "model": d.deployment.model_id,
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
    });
    let body = Bytes::from(body.to_string());
    let Ok(head) = parse_head(&body) else { return };
    let deadline = Instant::now() + target.timeout;
    let job = Job {
        body: &body,
        head: &head,
        endpoint: Endpoint::Chat,
        deadline,
        meter: None,
    };
    // The probe is written in the deployment's own wire format.
    let token = match &target.token {
        Some(cache) => cache.get(&app.upstream, &target.name, deadline).await.ok(),
        None => None,
    };
    let Ok(out) = prepare(target, d, &job, token.as_deref()) else {
        return;
    };
    let outcome = match app.upstream.send_once(target, out, deadline).await {
        Ok(resp) => {
            let status = resp.status();
            let (_, incoming) = resp.into_parts();
            match upstream::read_body(incoming, &target.name, deadline).await {
                Ok(_) if status.is_success() => Ok(()),
                Ok(_) => Err(format!("probe answered with status {}", status.as_u16())),
                Err(e) => Err(e.to_string()),
            }
        }
        Err(e) => Err(e.to_string()),
    };
    let was = d.healthy.swap(outcome.is_ok(), Ordering::Relaxed);
    match &outcome {
        Ok(()) if !was => {
            tracing::info!(model = %d.deployment.name, deployment = %d.deployment.provider_model, "deployment healthy again")
        }
        Err(e) if was => {
            tracing::warn!(model = %d.deployment.name, deployment = %d.deployment.provider_model, error = %e, "deployment unhealthy")
        }
        _ => {}
    }
    *d.health_error.lock().unwrap_or_else(|p| p.into_inner()) = outcome.err();
}
