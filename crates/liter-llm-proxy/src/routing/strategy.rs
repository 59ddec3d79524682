//! Choosing one deployment among the candidates of a pool, per strategy.
//!
//! Candidates arrive already filtered (available, healthy, with room) and limited
//! to the best priority tier; a strategy only ranks them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rand::{Rng, RngCore};
use tokio::time::Instant;

use super::deployment::DeploymentState;
use crate::config::Strategy;

/// Pick an index into `cands` (never empty).
pub fn choose(
    strategy: Strategy,
    cands: &[&Arc<DeploymentState>],
    rng: &mut dyn RngCore,
    exploration: f64,
    now: Instant,
) -> usize {
    if cands.len() == 1 {
        return 0;
    }
    match strategy {
        Strategy::SimpleShuffle => weighted(cands, rng),
        Strategy::LeastBusy => lowest(cands, rng, |d| {
            f64::from(d.in_flight.load(Ordering::Relaxed))
        }),
        Strategy::LatencyBased => {
            // Unmeasured deployments go first, so each gets measured once.
            if let Some(i) = cands
                .iter()
                .position(|d| d.latency_us.load(Ordering::Relaxed) == 0)
            {
                return i;
            }
            if rng.random_bool(exploration.clamp(0.0, 1.0)) {
                return rng.random_range(0..cands.len());
            }
            lowest(cands, rng, |d| d.latency_us.load(Ordering::Relaxed) as f64)
        }
        Strategy::UsageBased => lowest(cands, rng, |d| -d.headroom(now)),
        Strategy::CostBased => lowest(cands, rng, |d| {
            // The deployment's own prices, else the embedded pricing table's; a
            // deployment with neither goes last.
            let dep = &d.deployment;
            let table = liter_llm::pricing::PriceTable::embedded().get(&dep.provider_model);
            let input = dep
                .input_cost_per_token
                .or(table.map(|p| p.input_cost_per_token));
            let output = dep
                .output_cost_per_token
                .or(table.map(|p| p.output_cost_per_token));
            match (input, output) {
                (None, None) => f64::INFINITY,
                (i, o) => i.unwrap_or(0.0) + o.unwrap_or(0.0),
            }
        }),
    }
}

/// Weighted random choice by `weight`.
fn weighted(cands: &[&Arc<DeploymentState>], rng: &mut dyn RngCore) -> usize {
    let total: f64 = cands.iter().map(|d| d.deployment.weight).sum();
    let mut x = rng.random_range(0.0..total);
    for (i, d) in cands.iter().enumerate() {
        x -= d.deployment.weight;
        if x < 0.0 {
            return i;
        }
    }
    cands.len() - 1
}

/// The candidate with the lowest score; ties broken at random.
fn lowest(
    cands: &[&Arc<DeploymentState>],
    rng: &mut dyn RngCore,
    score: impl Fn(&DeploymentState) -> f64,
) -> usize {
    let scores: Vec<f64> = cands.iter().map(|d| score(d)).collect();
    let best = scores.iter().copied().fold(f64::INFINITY, f64::min);
    let ties: Vec<usize> = (0..cands.len()).filter(|&i| scores[i] <= best).collect();
    match ties.len() {
        0 => rng.random_range(0..cands.len()),
        1 => ties[0],
        n => ties[rng.random_range(0..n)],
    }
}
