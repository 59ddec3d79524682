//! End-to-end tests: the real gateway in-process on port 0, in front of the in-repo
//! mock upstream, driven over loopback HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod aliases;
mod anthropic;
mod auth;
mod azure;
mod bedrock;
mod cache;
mod chat;
mod cohere;
mod completions;
mod cost;
mod deployment_info;
mod errors;
mod files;
mod gemini;
mod governance;
mod hardening_edge;
mod hardening_upstream;
mod litellm;
mod logging;
mod matrix;
mod messages;
mod mistral;
mod models;
mod objstores;
mod observability;
mod openapi;
mod promises;
mod providers;
mod reload;
mod responses;
mod routing;
mod server;
mod shared_limits;
mod shared_routing;
mod store_outage;
mod stream;
mod support;
mod tags;
mod tracing;
mod vertex;
mod wildcards;
