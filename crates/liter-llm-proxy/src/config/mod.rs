//! Configuration: discovery, `${VAR}` interpolation, parsing into the file structs,
//! and validation into the runtime [`Config`] the gateway runs on.
//!
//! Every problem is reported with the file, the key path, line and column, and never
//! with an expanded secret.

mod file;
mod governance;
pub mod interpolate;
mod load;
mod routing;
mod settings;
mod validate;

pub use file::*;
pub use governance::{default_database, Governance, KeyLimits, RateLimits};
pub use load::{discover, load_file, load_str, ConfigError, Issue, CONFIG_FILE_NAME};
pub use routing::{glob_match, CooldownSpec, CredentialAlias, HealthSpec, PoolSpec, Routing};
pub use validate::resolve_network;
pub use validate::{Config, CorsOrigins, Deployment, KeySpec, Overrides};
