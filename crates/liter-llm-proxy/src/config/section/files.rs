//! `[files]`: the object store behind `/v1/files` (`backend`, `prefix`,
//! `backend_config`) and the extensions `max_file_bytes` and `timeout_secs`.
//!
//! The backend is checked by building its OpenDAL operator (which never touches the
//! network): an unknown scheme or a `backend_config` the scheme rejects is a load
//! error at `files.backend`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::config::file::FilesSection;
use crate::config::problems::{path, positive, Problems};
use crate::objstore;

/// `[files]`, validated.
#[derive(Clone)]
pub struct FilesSpec {
    /// `memory` or an OpenDAL scheme.
    pub backend: String,
    /// Where the objects go under the backend's root; empty, or ending in `/`.
    pub prefix: String,
    /// Passed to OpenDAL unchanged (integers and booleans as text). May hold secrets
    /// (see `objstore::is_secret_key`): `Debug` masks them.
    pub backend_config: BTreeMap<String, String>,
    /// The largest file an upload may carry, in bytes.
    pub max_file_bytes: u64,
    /// The longest one backend operation (or one I/O step of one) may take.
    pub timeout: Duration,
}

impl FilesSpec {
    /// The objects live in this process only (`backend = "memory"`): their metadata
    /// then does too, so a restart never lists files whose bytes are gone.
    pub fn is_volatile(&self) -> bool {
        self.backend == "memory"
    }
}

impl fmt::Debug for FilesSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config: BTreeMap<&str, &str> = self
            .backend_config
            .iter()
            .map(|(k, v)| {
                let shown = if objstore::is_secret_key(k) {
                    crate::config::MASK
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("FilesSpec")
            .field("backend", &self.backend)
            .field("prefix", &self.prefix)
            .field("backend_config", &config)
            .field("max_file_bytes", &self.max_file_bytes)
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub(crate) fn check(s: &FilesSection, problems: &mut Problems) -> FilesSpec {
    positive(
        problems,
        path(&["files", "max_file_bytes"]),
        "max_file_bytes",
        s.max_file_bytes > 0,
    );
    positive(
        problems,
        path(&["files", "timeout_secs"]),
        "timeout_secs",
        s.timeout_secs > 0,
    );
    let backend = s.backend.trim().to_ascii_lowercase();
    let backend_config: BTreeMap<String, String> = s
        .backend_config
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    let timeout = Duration::from_secs(s.timeout_secs.max(1));
    if backend.is_empty() {
        problems.push((path(&["files", "backend"]), "backend is empty".into()));
    } else if let Err(e) = objstore::operator(&backend, &backend_config, timeout) {
        problems.push((path(&["files", "backend"]), backend_problem(&backend, &e)));
    }
    let mut prefix = s.prefix.trim_start_matches('/').to_owned();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    FilesSpec {
        backend,
        prefix,
        backend_config,
        max_file_bytes: s.max_file_bytes,
        timeout,
    }
}

/// Why the backend cannot be built, in words (never a `backend_config` value).
fn backend_problem(backend: &str, e: &objstore::ObjStoreError) -> String {
    if e.reason == opendal::ErrorKind::Unsupported.to_string() {
        format!(
            "unknown backend {backend:?}: use \"memory\" or an OpenDAL scheme this build includes (fs, s3, azblob, gcs, redis, ...)"
        )
    } else {
        format!(
            "backend {backend:?} rejects its backend_config ({}): a required key may be missing (fs needs root, s3 needs bucket, azblob needs container)",
            e.reason
        )
    }
}
