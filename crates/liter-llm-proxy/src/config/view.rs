//! What `check-config` shows of the file: the file as parsed, with the command-line
//! overrides applied and every secret masked. Built beside the runtime [`Config`],
//! which never holds the parsed file.

use super::file::{BackendValue, FileConfig};
use super::overrides::{MasterKeySource, Overrides};
use super::problems::given;
use super::validate::Config;

/// What a masked secret is shown as.
pub const MASK: &str = "********";

/// A validated config and what `check-config` prints of its file.
#[derive(Debug)]
pub struct Inspection {
    pub config: Config,
    /// The file as parsed, with `--host`, `--port` and the master key in force
    /// applied, and `master_key`, every `api_key`, the `aws_*` keys, every
    /// `[[keys]] key`, the password of `database_url`, the secret values of the
    /// `[files]` and `[cache]` `backend_config` (`objstore::is_secret_key`) and every
    /// `[[logging]]` header value replaced by [`MASK`] (an empty value stays empty).
    /// Holds no secret.
    pub masked: FileConfig,
    /// Where the master key in force came from (`None`: no master key).
    pub master_key_source: Option<MasterKeySource>,
}

fn mask(s: &mut Option<String>) {
    if let Some(v) = s {
        if !v.is_empty() {
            *v = MASK.to_string();
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:********@host/db`; a URL
/// without a password and a file path are shown as they are.
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    let Some((user, _)) = userinfo.split_once(':') else {
        return url.to_string();
    };
    format!("{scheme}://{user}:{MASK}{}", &rest[userinfo.len()..])
}

/// [`mask_password`], and a userinfo without `:` masked whole (`redis://secret@host`:
/// some clients read a lone userinfo as the password).
fn mask_userinfo(url: &str) -> String {
    let masked = mask_password(url);
    if masked != url {
        return masked;
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return masked;
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once('@') {
        Some((userinfo, _)) => format!("{scheme}://{MASK}{}", &rest[userinfo.len()..]),
        None => masked,
    }
}

/// The `backend_config` values whose keys name secrets (`objstore::is_secret_key`)
/// replaced by [`MASK`].
fn mask_backend_config(config: &mut std::collections::BTreeMap<String, BackendValue>) {
    for (k, v) in config.iter_mut() {
        if crate::objstore::is_secret_key(k) {
            *v = BackendValue::Text(MASK.to_string());
        }
    }
}

pub(crate) fn inspect(file: FileConfig, config: Config, overrides: &Overrides) -> Inspection {
    let master_key_source = overrides
        .master_key(given(&file.general.master_key))
        .map(|(_, from)| from);
    let mut masked = file;
    masked.server.host = config.host.clone();
    masked.server.port = config.port;
    if config.master_key.is_some() {
        masked.general.master_key = Some(MASK.to_string());
    }
    masked.general.database_url = masked.general.database_url.as_deref().map(mask_password);
    masked.general.redis_url = masked.general.redis_url.as_deref().map(mask_userinfo);
    for m in &mut masked.models {
        mask(&mut m.api_key);
        mask(&mut m.aws_access_key_id);
        mask(&mut m.aws_secret_access_key);
        mask(&mut m.aws_session_token);
    }
    for a in &mut masked.aliases {
        mask(&mut a.api_key);
    }
    for k in &mut masked.keys {
        k.key = MASK.to_string();
    }
    if let Some(files) = &mut masked.files {
        mask_backend_config(&mut files.backend_config);
    }
    if let Some(cache) = &mut masked.cache {
        mask_backend_config(&mut cache.backend_config);
    }
    // Webhook headers carry tokens (`Authorization`, `DD-API-KEY`, ...): all masked.
    for sink in &mut masked.logging {
        for value in sink.headers.values_mut() {
            if !value.is_empty() {
                *value = MASK.to_string();
            }
        }
    }
    Inspection {
        config,
        masked,
        master_key_source,
    }
}

#[cfg(test)]
mod tests {
    use super::mask_password;

    #[test]
    fn database_passwords_are_masked() {
        assert_eq!(
            mask_password("postgres://app:s3cr%40t@db.internal:5432/llm"),
            "postgres://app:********@db.internal:5432/llm"
        );
        assert_eq!(
            mask_password("postgres://app@db/llm"),
            "postgres://app@db/llm"
        );
        assert_eq!(mask_password("data/liter-llm.db"), "data/liter-llm.db");
        assert_eq!(
            super::mask_userinfo("rediss://:pw@r.internal:6380/0"),
            "rediss://:********@r.internal:6380/0"
        );
        assert_eq!(
            super::mask_userinfo("redis://pw@r.internal"),
            "redis://********@r.internal"
        );
        assert_eq!(super::mask_userinfo("redis://r:6379"), "redis://r:6379");
    }
}
