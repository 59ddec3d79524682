//! Prices: the embedded table, merged with `general.pricing_file`, with per-model
//! `input_cost_per_token` / `output_cost_per_token` overrides. Loaded once by
//! `App::build` when cost tracking or budgets need them; read by the dispatcher (the
//! cost header) and by governance (reservations and settlement).
//!
//! A leaf of the crate: it reads the validated config and nothing else.

use std::collections::HashSet;
use std::sync::Mutex;

use liter_llm::pricing::{ModelPrice, PriceTable, PricingError};
use liter_llm::types::Usage;

use crate::config::Config;

/// The price table the gateway runs with.
#[derive(Debug)]
pub struct Prices {
    table: PriceTable,
    /// Models without a price, each logged once.
    unpriced: Mutex<HashSet<String>>,
}

/// `general.pricing_file` could not be read.
#[derive(Debug, thiserror::Error)]
#[error("general.pricing_file: {0}")]
pub struct PricingFileError(#[from] PricingError);

impl Prices {
    /// The prices for `config`, or `None` when nothing needs them (no cost tracking,
    /// no store, no pricing file). `with_store`: the gateway keeps a spend ledger.
    pub fn load(config: &Config, with_store: bool) -> Result<Option<Prices>, PricingFileError> {
        let wants =
            config.enable_cost_tracking || with_store || config.governance.pricing_file.is_some();
        if !wants {
            return Ok(None);
        }
        let mut table = match &config.governance.pricing_file {
            Some(path) => {
                let path = match &config.source {
                    Some(src) if path.is_relative() => {
                        src.parent().map_or_else(|| path.clone(), |d| d.join(path))
                    }
                    _ => path.clone(),
                };
                let table = PriceTable::with_file(&path)?;
                for skipped in table.skipped() {
                    tracing::warn!(entry = %skipped, "pricing_file entry skipped (no input and output price, or no provider)");
                }
                table
            }
            None => PriceTable::embedded().clone(),
        };
        for d in &config.models {
            if d.input_cost_per_token.is_none() && d.output_cost_per_token.is_none() {
                continue;
            }
            let mut price = table
                .get(&d.provider_model)
                .cloned()
                .unwrap_or_else(config_price);
            if let Some(p) = d.input_cost_per_token {
                price.input_cost_per_token = p;
            }
            if let Some(p) = d.output_cost_per_token {
                price.output_cost_per_token = p;
            }
            table.insert(&d.provider_model, price);
        }
        Ok(Some(Prices {
            table,
            unpriced: Mutex::default(),
        }))
    }

    /// The price of `usage` on `provider_model`; an unknown model costs 0 and is logged
    /// once.
    pub fn cost(&self, provider_model: &str, usage: &Usage) -> f64 {
        self.table.cost(provider_model, usage).unwrap_or_else(|| {
            let mut seen = self.unpriced.lock().unwrap_or_else(|p| p.into_inner());
            if seen.insert(provider_model.to_owned()) {
                tracing::warn!(deployment = %provider_model, "no price for this model: its requests are counted at cost 0");
            }
            0.0
        })
    }

    /// The model's price entry, if it has one.
    pub fn get(&self, provider_model: &str) -> Option<&ModelPrice> {
        self.table.get(provider_model)
    }
}

/// A price made from the config's per-token fields alone.
fn config_price() -> ModelPrice {
    ModelPrice {
        input_cost_per_token: 0.0,
        output_cost_per_token: 0.0,
        cache_read_input_token_cost: None,
        cache_creation_input_token_cost: None,
        max_input_tokens: None,
        max_output_tokens: None,
        source: Some("liter-llm-proxy.toml".into()),
        updated: None,
    }
}
