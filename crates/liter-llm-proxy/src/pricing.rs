//! Prices: the embedded table, merged with `general.pricing_file`, with per-model
//! `input_cost_per_token` / `output_cost_per_token` overrides, and `base_model`
//! (a deployment priced as another model). Loaded once by
//! `App::build` when cost tracking, budgets or a store need them; read by the
//! dispatcher (the cost header) and by governance (reservations and settlement).
//!
//! The embedded table is parsed at start-up when every request will be priced
//! (`Config::meters_all`), or when the config's own prices are merged into it.
//! Otherwise (a store that serves the admin API, whose runtime keys are metered) it is
//! parsed by the first request that needs a price: a gateway that never prices one
//! never holds the table.
//!
//! A leaf of the crate: it reads the validated config and nothing else.

use std::collections::HashSet;
use std::sync::Mutex;

use liter_llm::pricing::{ModelPrice, PriceTable, PricingError};
use liter_llm::types::Usage;

use crate::config::Config;
use crate::logtext::Clean;

/// How many unpriced models are remembered (each is logged once).
const UNPRICED_LOGGED: usize = 1024;

/// The price table the gateway runs with.
#[derive(Debug)]
pub struct Prices {
    /// The embedded table itself (`None`: parsed when first read) unless a file or
    /// per-model prices change it (a copy only then).
    table: Option<PriceTable>,
    /// `[budget] default_*_cost_per_token`: the price of a model the table does not
    /// know.
    default: Option<ModelPrice>,
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
                Some(table)
            }
            None => None,
        };
        for d in &config.models {
            let own = d.input_cost_per_token.is_some() || d.output_cost_per_token.is_some();
            if !own && d.base_model.is_none() {
                continue;
            }
            // `base_model`: the deployment is priced as that model (an Azure
            // deployment's name says nothing of its model); its own prices still win.
            let lookup = table.as_ref().unwrap_or_else(|| PriceTable::embedded());
            let base = match &d.base_model {
                Some(b) => lookup.get(b).cloned(),
                None => lookup.get(&d.provider_model).cloned(),
            };
            if let (None, Some(b)) = (&base, &d.base_model) {
                tracing::warn!(deployment = %Clean(&d.provider_model), base_model = %Clean(b), "base_model has no price in the table or pricing_file");
            }
            if base.is_none() && !own {
                continue;
            }
            let mut price = base.unwrap_or_else(config_price);
            if let Some(p) = d.input_cost_per_token {
                price.input_cost_per_token = p;
            }
            if let Some(p) = d.output_cost_per_token {
                price.output_cost_per_token = p;
            }
            table
                .get_or_insert_with(|| PriceTable::embedded().clone())
                .insert(&d.provider_model, price);
        }
        let default = config
            .governance
            .default_price
            .map(|(input, output)| ModelPrice {
                input_cost_per_token: input,
                output_cost_per_token: output,
                ..config_price()
            });
        if table.is_none() && config.meters_all() {
            // Every request will be priced: parse the table now, not in the first one.
            PriceTable::embedded();
        }
        Ok(Some(Prices {
            table,
            default,
            unpriced: Mutex::default(),
        }))
    }

    /// Whether `provider_model` has a price (its own, or the configured default).
    pub fn is_priced(&self, provider_model: &str) -> bool {
        self.default.is_some() || self.table().get(provider_model).is_some()
    }

    /// The price of `usage` on `provider_model`; a model without a price costs the
    /// default price, or 0 (logged once).
    pub fn cost(&self, provider_model: &str, usage: &Usage) -> f64 {
        if let Some(cost) = self.table().cost(provider_model, usage) {
            return cost;
        }
        if let Some(default) = &self.default {
            return default.cost(usage);
        }
        let mut seen = self.unpriced.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: made-up direct names must not grow the set without end.
        if seen.len() < UNPRICED_LOGGED && seen.insert(provider_model.to_owned()) {
            tracing::warn!(deployment = %Clean(provider_model), "no price for this model: its requests are counted at cost 0");
        }
        0.0
    }

    /// The configured deployments whose model has no price (neither in the table, nor
    /// in `general.pricing_file`, nor on the entry itself, and no `[budget]` default),
    /// by `provider_model`: what `check-config` warns about. The built-in mock is free.
    pub fn unpriced_deployments(config: &Config) -> Result<Vec<String>, PricingFileError> {
        let Some(prices) = Prices::load(config, true)? else {
            return Ok(Vec::new());
        };
        let mut out: Vec<String> = config
            .models
            .iter()
            .filter(|d| d.provider != liter_llm::providers::Provider::Mock)
            .filter(|d| !prices.is_priced(&d.provider_model))
            .map(|d| d.provider_model.clone())
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The model's price entry, if it has one.
    pub fn get(&self, provider_model: &str) -> Option<&ModelPrice> {
        self.table().get(provider_model)
    }

    fn table(&self) -> &PriceTable {
        self.table
            .as_ref()
            .unwrap_or_else(|| PriceTable::embedded())
    }
}

/// A price made from the config's per-token fields alone.
fn config_price() -> ModelPrice {
    ModelPrice {
        input_cost_per_token: 0.0,
        output_cost_per_token: 0.0,
        cache_read_input_token_cost: None,
        cache_creation_input_token_cost: None,
        input_cost_per_audio_token: None,
        output_cost_per_audio_token: None,
        max_input_tokens: None,
        max_output_tokens: None,
        source: Some("liter-llm-proxy.toml".into()),
        updated: None,
    }
}
