//! `n` > 1 on a translated deployment with `fan_out_n`: the request goes upstream n
//! times without `n` (concurrently, within the attempt's time limit), and the n answers
//! are merged into one (choices indexed 0..n-1, usage and so cost summed). The first
//! failure fails the attempt, as one request's would. Streams are not fanned out (the
//! adapter refuses them). Uses the dispatcher's helpers and `liter_llm`'s merge.

use bytes::Bytes;
use liter_llm::providers::fanout;
use liter_llm::types::ChatCompletion;
use tokio::time::Instant;

use super::dispatch::{dropped_header, refusal, whole_answer, Answer, Failure, DROPPED_PARAMS};
use super::protocol::Job;
use super::target::Target;
use super::{read_body, Upstream};
use crate::config::Deployment;
use crate::error::GatewayError;
use crate::request::Endpoint;

/// `n` and the body without it, when `job` is to be fanned out on `d`.
pub(super) fn split(d: &Deployment, job: &Job<'_>) -> Option<(u64, Bytes)> {
    if !d.settings.fan_out_n || job.endpoint != Endpoint::Chat || job.head.stream {
        return None;
    }
    fanout::split(job.body)
}

/// The n answers of one fanned-out attempt, merged.
pub(super) async fn answer(
    upstream: &Upstream,
    d: &Deployment,
    target: &Target,
    job: &Job<'_>,
    token: Option<&str>,
    (n, body): (u64, Bytes),
    start: Instant,
) -> Result<Answer, Failure> {
    let sub = Job {
        body: &body,
        head: job.head,
        endpoint: job.endpoint,
        deadline: job.deadline,
        tap: job.tap,
        prices: job.prices,
        trace: job.trace,
        native: job.native,
        prompt_tokens: job.prompt_tokens,
    };
    let deadline = (start + target.timeout).min(job.deadline);
    let sub = &sub;
    let one = || async move {
        let mut out = target.protocol.request(sub, &d.model_id, token)?;
        let dropped = std::mem::take(&mut out.dropped);
        let resp = upstream.send_once(&target.name, out, deadline).await?;
        let (parts, incoming) = resp.into_parts();
        if !parts.status.is_success() {
            return Err(refusal(target, &parts, incoming, deadline).await);
        }
        let limit = target.limits.max_response_bytes;
        let bytes = read_body(incoming, &target.name, deadline, limit).await?;
        let bytes = target.protocol.answer(bytes, sub)?;
        let c: ChatCompletion = serde_json::from_slice(&bytes)
            .map_err(|e| GatewayError::Internal(format!("cannot read an answer: {e}")))?;
        Ok::<_, Failure>((c, dropped))
    };
    let results = futures_util::future::join_all((0..n).map(|_| one())).await;
    let mut answers = Vec::with_capacity(results.len());
    let mut dropped = Vec::new();
    for r in results {
        let (c, d) = r?;
        answers.push(c);
        dropped = d;
    }
    let merged = fanout::merge(answers)
        .ok_or_else(|| GatewayError::Internal("a fan-out without answers".into()))?;
    let bytes = serde_json::to_vec(&merged)
        .map_err(|e| GatewayError::Internal(format!("cannot encode the answer: {e}")))?;
    let mut answer = whole_answer(d, job, Bytes::from(bytes), start.elapsed(), None, None)?;
    if let Some(v) = dropped_header(dropped) {
        answer.response.headers_mut().insert(DROPPED_PARAMS, v);
    }
    for (name, value) in target.protocol.answer_headers(job) {
        answer.response.headers_mut().insert(name, value);
    }
    Ok(answer)
}
