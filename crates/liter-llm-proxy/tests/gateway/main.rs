//! End-to-end tests: the real gateway in-process on port 0, in front of the in-repo
//! mock upstream, driven over loopback HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod aliases;
mod anthropic;
mod auth;
mod bedrock;
mod chat;
mod cost;
mod errors;
mod providers;
mod routing;
mod server;
mod stream;
mod support;
