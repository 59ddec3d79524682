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
//! - `reload`: the running App behind an `ArcSwap`, rebuilt and swapped on a reload;
//! - `app`: the [`App`] and its construction;
//! - `front`: the front doors of other client protocols (Anthropic's Messages),
//!   decoded into the canonical request and encoded back;
//! - `telemetry`: request ids, the request log line and the record for the sinks;
//! - `logsink`: the request log sinks (`[[logging]]`: JSON-lines file, webhook);
//! - `files`: the files API below the edge (objects, metadata, ownership);
//! - `auth`: who is calling;
//! - `governance`: key expiry, rate limits, token estimate, budgets, the meter;
//! - `cache`: the response cache (keys, entries, memory and OpenDAL backends);
//! - `routing`: choosing deployments, retries, fallbacks, cooldowns, health probes;
//! - `upstream`: the dispatcher and the wire protocols;
//! - `apidoc`: the route table's entries and the OpenAPI document built from them;
//! - `request`, `pricing`, `store`, `config`, `objstore`, `tasks`, `error`: the
//!   request head, prices, the database stores, the validated config (which checks a
//!   `[cache]` backend by building its operator), the object stores (OpenDAL), counted
//!   background tasks, the one error type;
//! - `search`: substring searches of the hot paths, built once.

pub mod admin;
pub mod apidoc;
pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod error;
pub mod files;
pub mod front;
pub mod governance;
pub mod logsink;
pub mod logtext;
pub mod metrics;
pub mod objstore;
pub mod otel;
pub mod pricing;
pub mod reload;
pub mod request;
pub mod routing;
pub mod search;
pub mod server;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod upstream;

pub use app::App;
pub use server::serve;
