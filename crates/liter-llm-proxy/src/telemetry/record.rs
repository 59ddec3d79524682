//! What a request's observers learn on its way: the usage the provider reported (a
//! [`UsageTap`] the dispatcher tells), read by the request log when the response ends
//! to count tokens and cost in `/metrics`. Made only when metrics are on; the handler
//! puts it in the response's extensions.

use std::sync::{Arc, Mutex};

use liter_llm::types::Usage;

use crate::metrics::DeploymentMetrics;
use crate::pricing::Prices;
use crate::upstream::UsageTap;

/// One API request's observations. Cheap to share.
#[derive(Debug, Default)]
pub struct Record {
    /// The usage reported, and its cost when the dispatcher priced it.
    usage: Mutex<Option<(Usage, Option<f64>)>>,
    /// Prices for an answer the dispatcher did not price (a stream), when cost
    /// tracking is on.
    prices: Option<Arc<Prices>>,
}

impl Record {
    pub fn new(prices: Option<Arc<Prices>>) -> Arc<Record> {
        Arc::new(Record {
            usage: Mutex::new(None),
            prices,
        })
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
}
