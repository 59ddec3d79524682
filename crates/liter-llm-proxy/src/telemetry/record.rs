//! What a request's observers learn on its way: the usage the provider reported (a
//! [`UsageTap`] the dispatcher tells), read by the request log when the response ends
//! to count tokens and cost in `/metrics`, and the request's span (tracing on), which
//! the request log ends. Made only when metrics or tracing are on; the handler puts it
//! in the response's extensions.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use liter_llm::types::Usage;

use crate::metrics::DeploymentMetrics;
use crate::otel::Trace;
use crate::pricing::Prices;
use crate::request::Head;
use crate::upstream::{StreamFacts, UsageTap};

/// One API request's observations. Cheap to share.
#[derive(Debug)]
pub struct Record {
    /// The usage reported, and its cost when the dispatcher priced it.
    usage: Mutex<Option<(Usage, Option<f64>)>>,
    /// Prices for an answer the dispatcher did not price (a stream), when cost
    /// tracking is on.
    prices: Option<Arc<Prices>>,
    /// The request's span, when tracing is on.
    trace: Option<Trace>,
    /// A streamed answer's id, model and finish reasons (tracing on), for the span.
    facts: Mutex<StreamFacts>,
    /// With a log sink that wants content: the request body and the whole answer.
    content: Option<Mutex<(Bytes, Option<Bytes>)>>,
}

impl Record {
    /// `content`: keep the request body and the answer for the log sinks.
    pub fn new(prices: Option<Arc<Prices>>, trace: Option<Trace>, content: bool) -> Arc<Record> {
        Arc::new(Record {
            usage: Mutex::new(None),
            prices,
            trace,
            facts: Mutex::new(StreamFacts::default()),
            content: content.then(|| Mutex::new((Bytes::new(), None))),
        })
    }

    /// The request body and the whole answer, when kept.
    pub fn content(&self) -> Option<(Bytes, Option<Bytes>)> {
        let c = self.content.as_ref()?;
        Some(c.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    pub fn trace(&self) -> Option<&Trace> {
        self.trace.as_ref()
    }

    /// The request's head is known: name the span and give it the request's
    /// attributes.
    pub fn started(&self, head: &Head, body: &Bytes) {
        if let Some(c) = &self.content {
            c.lock().unwrap_or_else(|p| p.into_inner()).0 = body.clone();
        }
        if let Some(t) = &self.trace {
            t.name(&head.model);
            let s = &head.sampling;
            t.set(|a| {
                crate::otel::request_attributes(
                    a,
                    body,
                    &head.model,
                    (s.max_tokens, s.temperature, s.top_p),
                    t.content(),
                );
            });
        }
    }

    /// The response has ended: the span gets the usage, the cost and the status.
    pub fn end(&self, status: u16, error: Option<&'static str>, deployment: Option<&str>) {
        let Some(t) = &self.trace else { return };
        let facts = std::mem::take(&mut *self.facts.lock().unwrap_or_else(|p| p.into_inner()));
        let usage = deployment.and_then(|d| self.usage(d));
        t.set(|a| {
            crate::otel::stream_attributes(
                a,
                facts.id.as_deref(),
                facts.model.as_deref(),
                &facts.finish_reasons,
            );
            if let Some((u, cost)) = usage {
                let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                a.int("gen_ai.usage.input_tokens", tokens(u.prompt_tokens));
                a.int("gen_ai.usage.output_tokens", tokens(u.completion_tokens));
                if let Some(c) = cost {
                    a.f64("gen_ai.usage.cost", c);
                }
            }
        });
        t.end(status, error);
    }

    /// A tap that tells this record.
    pub fn tap(self: &Arc<Self>) -> RecordTap {
        RecordTap(self.clone())
    }

    /// The usage reported so far, with its cost (priced for `deployment` if the
    /// dispatcher did not).
    pub fn usage(&self, deployment: &str) -> Option<(Usage, Option<f64>)> {
        let (usage, cost) = (*self.usage.lock().unwrap_or_else(|p| p.into_inner()))?;
        let cost = cost.or_else(|| Some(self.prices.as_ref()?.cost(deployment, &usage)));
        Some((usage, cost))
    }

    /// Count the usage in the deployment's series.
    pub fn count(&self, m: &DeploymentMetrics, deployment: &str, priced: Option<f64>) {
        let Some((u, cost)) = self.usage(deployment) else {
            if let Some(c) = priced {
                m.cost.inc_by(c);
            }
            return;
        };
        m.input_tokens.inc_by(u.prompt_tokens);
        m.output_tokens.inc_by(u.completion_tokens);
        m.cached_tokens.inc_by(cached(&u));
        if let Some(c) = priced.or(cost) {
            m.cost.inc_by(c);
        }
    }
}

/// Cached prompt tokens, as OpenAI or Anthropic report them.
pub fn cached(u: &Usage) -> u64 {
    u.prompt_tokens_details
        .map_or(0, |d| d.cached_tokens)
        .max(u.cache_read_input_tokens.unwrap_or(0))
}

/// See [`Record::tap`].
pub struct RecordTap(Arc<Record>);

impl UsageTap for RecordTap {
    fn report(&self, usage: Usage, cost: Option<f64>) {
        *self.0.usage.lock().unwrap_or_else(|p| p.into_inner()) = Some((usage, cost));
    }

    fn boxed(&self) -> Box<dyn UsageTap> {
        Box::new(RecordTap(self.0.clone()))
    }

    fn facts(&self, facts: &StreamFacts) {
        if self.0.trace.is_some() {
            let mut f = self.0.facts.lock().unwrap_or_else(|p| p.into_inner());
            f.merge(facts);
        }
    }

    fn answer(&self, body: &Bytes) {
        if let Some(c) = &self.0.content {
            c.lock().unwrap_or_else(|p| p.into_inner()).1 = Some(body.clone());
        }
    }
}
