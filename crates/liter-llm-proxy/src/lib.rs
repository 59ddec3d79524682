//! liter-llm-proxy: the gateway as a library.
//!
//! [`App::build`] owns everything a running gateway needs (config, key registry,
//! routes, upstream client, prices, the governance stage and its store); nothing is
//! global, so a test can run several gateways in one process. [`server::serve`] runs an
//! `App` on a listener until shutdown.
//!
//! Modules, from the HTTP edge down; a module uses only those below it (a test,
//! `tests/architecture.rs`, fails on any import cycle between them):
//! - `server`: the stack (its doc lists every stage of a request in order), handlers;
//! - `admin`: LiteLLM's key and spend admin API;
//! - `app`: the [`App`] and its construction;
//! - `telemetry`: request ids, the request log line and the record for the sinks;
//! - `logsink`: the request log sinks (`[[logging]]`: JSON-lines file, webhook);
//! - `files`: the files API below the edge (objects, metadata, ownership);
//! - `auth`: who is calling;
//! - `governance`: key expiry, rate limits, token estimate, budgets, the meter;
//! - `routing`: choosing deployments, retries, fallbacks, cooldowns, health probes;
//! - `upstream`: the dispatcher and the wire protocols;
//! - `apidoc`: the route table's entries and the OpenAPI document built from them;
//! - `request`, `pricing`, `store`, `objstore`, `config`, `error`: the request head,
//!   prices, the database stores, the object stores (OpenDAL), the validated config,
//!   the one error type.

pub mod admin;
pub mod apidoc;
pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod files;
pub mod governance;
pub mod logsink;
pub mod logtext;
pub mod metrics;
pub mod objstore;
pub mod otel;
pub mod pricing;
pub mod request;
pub mod routing;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod upstream;

pub use app::App;
pub use server::serve;
