//! liter-llm: the canonical, OpenAI-shaped request and response types, the table of
//! providers and their translation modules, and the built-in `mock/` provider.
//!
//! This crate does no network I/O (the pricing table can read a price file): adapters
//! build requests and parse responses; the gateway
//! (`liter-llm-proxy`) owns HTTP, timeouts and retries.

pub mod pricing;
pub mod providers;
pub mod types;

pub use providers::{Provider, ProviderModel};
