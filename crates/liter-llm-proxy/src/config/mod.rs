//! Configuration: discovery, `${VAR}` interpolation, parsing into the file structs,
//! and validation into the runtime [`Config`] the gateway runs on.
//!
//! Every problem is reported with the file, the key path, line and column, and never
//! with an expanded secret.
//!
//! Modules, each depending only on those listed after it:
//! - `litellm`: LiteLLM's `config.yaml`, mapped onto the file structs and then
//!   loaded as `load` does;
//! - `load`: finding and reading the file, turning problems into located messages;
//! - `source`: reading the running config again (reload, stored models);
//! - `view`: what `check-config` shows of the file, secrets masked;
//! - `validate`: the orchestrator, calling one validator per section;
//! - `section::*`: the section validators (`server`, `general`, `models` with
//!   `settings` and `network`, `aliases`, `keys`, `governance`, `files`, `cache`,
//!   `logging`, `routing`, `health`), each returning its part of the runtime config;
//! - `overrides`: the command-line values, applied as data;
//! - `file`: the TOML structs; `interpolate`: `${VAR}`;
//! - `problems`: the shared vocabulary (key paths, the problem list), a leaf.

mod file;
pub mod interpolate;
pub mod litellm;
mod load;
mod overrides;
mod problems;
mod section;
mod source;
mod validate;
mod view;

pub use file::*;
pub use load::{
    discover, inspect_file, inspect_str, load_file, load_str, ConfigError, Issue, CONFIG_FILE_NAME,
};
pub use overrides::{MasterKeySource, Overrides};
pub use section::aliases::{glob_match, CredentialAlias};
pub use section::cache::{
    CacheBackend, CacheSpec, DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRY_BYTES, DEFAULT_TIMEOUT,
};
pub use section::files::FilesSpec;
pub use section::general::TracingSpec;
pub use section::governance::{default_database, Governance, KeyLimits, RateLimits};
pub use section::health::{CooldownSpec, HealthSpec, ProbeTarget};
pub use section::keys::KeySpec;
pub use section::logging::{SinkFormat, SinkKind, SinkSpec};
pub use section::models::{catch_all_providers, Deployment, Mode, CATCH_ALL};
pub use section::network::{resolve_network, NetworkCredentials, NetworkError, UrlSource};
pub use section::redis::RedisSpec;
pub use section::routing::{tag_problem, PoolSpec, Routing, MAX_TAGS, MAX_TAG_BYTES};
pub use section::server::{CorsOrigins, Limits};
pub use source::{stored_entry, Reading, Source, StoredEntry};
pub use validate::Config;
pub use view::{Inspection, MASK};
