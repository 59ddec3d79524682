//! Integration tests: the mock over loopback, driven by a real HTTP client (hyper-util's).
//!
//! One test binary with a module per area, so the suite links once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod anthropic;
mod azure;
mod bedrock;
mod binary;
mod chat;
mod cohere;
mod control;
mod embeddings;
mod faults;
mod google;
mod stream;
mod support;
