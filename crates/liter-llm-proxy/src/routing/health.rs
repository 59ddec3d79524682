//! Health probes (`[health]`): every `interval_secs`, a small real request to each
//! deployment (one token of chat, or, for a deployment whose `mode` is `embedding`,
//! the embedding of one word); one that fails is marked unhealthy, and the router
//! skips it until a later probe passes. With Redis, every change is announced to the
//! other gateways, which mark the deployment the same until a probe of their own finds
//! otherwise. `probe_model`, when set, is either a
//! `[[models]]` name (only that pool's deployments are probed) or a `provider/model`
//! (every deployment of that provider is probed, sending that model: a cheap model on
//! the same credentials and base URL stands for the provider's health).

use std::sync::Arc;

use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Announcement, DeploymentState, Registry};
use crate::config::{HealthSpec, Mode, ProbeTarget};
use crate::logtext::Clean;
use crate::request::{parse_head, Endpoint};
use crate::upstream::{self, Job, Target, Upstream};

/// Start the probe loop, if `[health]` asks for one.
pub fn spawn(
    routes: Arc<Registry>,
    upstream: Arc<Upstream>,
    spec: Option<HealthSpec>,
) -> Option<JoinHandle<()>> {
    let spec = spec?;
    let probes = probes(&routes, &spec.probe);
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(spec.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let round = probes.iter().map(|(d, p)| probe(&routes, &upstream, d, p));
            futures_util::future::join_all(round).await;
        }
    }))
}

/// What one probe sends: to the deployment's own target and model, or, for a
/// `provider/model` probe, to a target made for that model on the deployment's
/// credentials and base URL.
enum ProbeWith {
    Own,
    Model { target: Target, model_id: String },
}

/// The deployments `probe` names, each with what its probe sends. The in-process mock
/// is always up and never probed.
fn probes(routes: &Registry, probe: &ProbeTarget) -> Vec<(Arc<DeploymentState>, ProbeWith)> {
    let remote = routes.deployments().filter(|d| d.target.is_some());
    match probe {
        ProbeTarget::All => remote.map(|d| (d.clone(), ProbeWith::Own)).collect(),
        ProbeTarget::Pool(name) => remote
            .filter(|d| &d.deployment.name == name)
            .map(|d| (d.clone(), ProbeWith::Own))
            .collect(),
        ProbeTarget::Model { provider, model_id } => remote
            .filter(|d| d.deployment.provider == *provider)
            .filter_map(|d| {
                let mut probed = d.deployment.clone();
                probed.model_id = model_id.clone();
                let target = match Target::for_deployment(&probed, &routes.limits) {
                    Ok(Some(t)) => t,
                    Ok(None) => return None,
                    Err(e) => {
                        tracing::warn!(error = %e, "health probe not possible for this deployment");
                        return None;
                    }
                };
                let with = ProbeWith::Model {
                    target,
                    model_id: model_id.clone(),
                };
                Some((d.clone(), with))
            })
            .collect(),
    }
}

async fn probe(routes: &Registry, upstream: &Upstream, d: &Arc<DeploymentState>, with: &ProbeWith) {
    let (target, model_id) = match (with, &d.target) {
        (ProbeWith::Model { target, model_id }, _) => (target, model_id),
        (ProbeWith::Own, Some(target)) => (target, &d.deployment.model_id),
        (ProbeWith::Own, None) => return,
    };
    // The call the deployment's mode names: an embedding model is probed with an
    // embeddings request (a chat request would fail on it).
    let (endpoint, body) = match d.deployment.mode {
        Mode::Embedding => (
            Endpoint::Embeddings,
            serde_json::json!({"model": model_id, "input": "ping"}),
        ),
        Mode::Chat | Mode::Completion => (
            Endpoint::Chat,
            serde_json::json!({
                "model": model_id,
                "messages": [{"role": "user", "content": "ping"}],
                "max_tokens": 1,
            }),
        ),
    };
    let body = Bytes::from(body.to_string());
    let Ok(head) = parse_head(&body) else { return };
    let deadline = Instant::now() + target.timeout;
    let job = Job {
        body: &body,
        head: &head,
        endpoint,
        deadline,
        tap: None,
        prices: None,
        trace: None,
        native: None,
        prompt_tokens: None,
    };
    // The probe is written in the deployment's own wire format.
    let token = match &target.token {
        Some(cache) => cache.get(upstream, &target.name, deadline).await.ok(),
        None => None,
    };
    let Ok(out) = target.protocol.request(&job, model_id, token.as_deref()) else {
        return;
    };
    let outcome = match upstream.send_once(&target.name, out, deadline).await {
        Ok(resp) => {
            let status = resp.status();
            let (_, incoming) = resp.into_parts();
            let limit = target.limits.max_response_bytes;
            match upstream::read_body(incoming, &target.name, deadline, limit).await {
                Ok(_) if status.is_success() => Ok(()),
                Ok(_) => Err(format!("probe answered with status {}", status.as_u16())),
                Err(e) => Err(e.to_string()),
            }
        }
        Err(e) => Err(e.to_string()),
    };
    let healthy = outcome.is_ok();
    let was = d.set_health(outcome.as_ref().err().cloned());
    if was != healthy {
        routes.announce(Announcement::Health(&d.deployment.id, healthy));
    }
    match &outcome {
        Ok(()) if !was => {
            tracing::info!(model = %d.deployment.name, deployment = %d.deployment.provider_model, "deployment healthy again")
        }
        Err(e) if was => {
            tracing::warn!(model = %d.deployment.name, deployment = %d.deployment.provider_model, error = %Clean(e), "deployment unhealthy")
        }
        _ => {}
    }
}
