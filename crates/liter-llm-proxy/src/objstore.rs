//! Object stores behind `[cache]` and `[files]`: an OpenDAL operator from a backend
//! name (`memory` or any OpenDAL scheme: `redis`, `fs`, `s3`, `azblob`, `gcs`, ...) and
//! its `backend_config`, passed to OpenDAL unchanged. Building an operator never
//! touches the network, so a backend that is down does not stop the gateway from
//! starting; each caller decides what a failing operation costs a request.

use std::collections::BTreeMap;
use std::time::Duration;

use opendal::layers::TimeoutLayer;
use opendal::Operator;

/// The `backend_config` keys whose values are secrets: masked wherever the config is
/// printed (`check-config`) and never put in an error message.
pub const SECRET_KEYS: &[&str] = &[
    "password",
    "secret_access_key",
    "session_token",
    "account_key",
    "sas_token",
    "connection_string",
    "credential",
    "credential_path",
    "service_account",
    "token",
    "access_token",
    "key",
];

/// Whether `key` of a `backend_config` holds a secret: any key containing `secret` or
/// `password`, and any whose first or last `_`-separated word is one of
/// [`SECRET_KEYS`] (`account_key` is a secret; `access_key_id` is not).
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    if key.contains("secret") || key.contains("password") {
        return true;
    }
    SECRET_KEYS
        .iter()
        .any(|s| key == *s || key.ends_with(&format!("_{s}")) || key.starts_with(&format!("{s}_")))
}

/// Why an operator could not be built. Names the backend and OpenDAL's reason; never
/// a `backend_config` value.
#[derive(Debug, thiserror::Error)]
#[error("backend {backend:?}: {reason}")]
pub struct ObjStoreError {
    pub backend: String,
    pub reason: String,
}

/// The operator for `backend` with `config` passed through unchanged, every operation
/// bounded by `timeout` (an I/O step that stalls for `timeout` fails too).
pub fn operator(
    backend: &str,
    config: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<Operator, ObjStoreError> {
    install_crypto_provider();
    let op = Operator::via_iter(backend, config.iter().map(|(k, v)| (k.clone(), v.clone())))
        .map_err(|e| ObjStoreError {
            backend: backend.to_owned(),
            reason: e.kind().to_string(),
        })?;
    Ok(op.layer(
        TimeoutLayer::new()
            .with_timeout(timeout)
            .with_io_timeout(timeout),
    ))
}

/// OpenDAL's (and the trace exporter's) HTTP client, reqwest with rustls, needs a process-wide rustls provider;
/// the gateway's upstream client already uses ring, so install that one.
pub fn install_crypto_provider() {
    // An error means one is installed already: fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_recognised_and_ids_are_not() {
        for k in [
            "password",
            "secret_access_key",
            "account_key",
            "sas_token",
            "connection_string",
            "credential",
            "session_token",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "bucket",
            "region",
            "endpoint",
            "access_key_id",
            "account_name",
            "container",
            "root",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[tokio::test]
    async fn memory_and_fs_operators_round_trip_and_unknown_schemes_are_named() {
        let op = operator("memory", &BTreeMap::new(), Duration::from_secs(1)).unwrap();
        op.write("a/b", "hi").await.unwrap();
        assert_eq!(op.read("a/b").await.unwrap().to_vec(), b"hi");

        let dir = tempfile::tempdir().unwrap();
        let cfg = BTreeMap::from([("root".to_string(), dir.path().display().to_string())]);
        let op = operator("fs", &cfg, Duration::from_secs(1)).unwrap();
        op.write("x", "y").await.unwrap();
        assert!(dir.path().join("x").exists());

        let err = operator("no-such-scheme", &BTreeMap::new(), Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no-such-scheme"), "{err}");
    }
}
