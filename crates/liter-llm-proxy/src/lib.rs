//! liter-llm-proxy: the gateway as a library.
//!
//! [`App::build`] owns everything a running gateway needs (config, key registry,
//! routes, upstream client); nothing is global, so a test can run several gateways in
//! one process. [`server::serve`] runs an `App` on a listener until shutdown.
//!
//! A request passes, outermost first (see `server/stack.rs`): catch-panic, request id
//! and request log, CORS, body limit, authentication, then the handler, which parses
//! the request head, resolves the route (404/403), and dispatches to the provider.

pub mod admin;
pub mod auth;
pub mod budget;
pub mod config;
pub mod error;
pub mod limits;
pub mod routing;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod upstream;

pub use server::{serve, App};
