//! The files API (`/v1/files`) below the HTTP edge: file objects in OpenAI's shapes,
//! their bytes in the `[files]` object store (OpenDAL) and their metadata in a
//! [`FileStore`] (the gateway's database, or memory for the `memory` backend).
//!
//! Every operation takes the caller's key id (`None` for the master key): a virtual key
//! sees only its own files, and another key's file is "not found", never "forbidden",
//! so ids cannot be probed. The master key sees every file.
//!
//! Uses `store`, `objstore`, `config` and `error`; the server's handlers call it.

mod upload;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use opendal::Operator;
use serde::Serialize;

use crate::config::FilesSpec;
use crate::error::GatewayError;
use crate::objstore::{self, ObjStoreError};
use crate::store::{FileOrder, FileQuery, FileStore, StoreError, StoredFile};

pub use upload::{Finished, Upload};

/// OpenAI's upload purposes; anything else is a 400 naming `purpose`.
pub const PURPOSES: &[&str] = &[
    "assistants",
    "batch",
    "fine-tune",
    "vision",
    "user_data",
    "evals",
];

/// The longest filename kept, in characters (a longer one is cut).
pub const MAX_FILENAME_CHARS: usize = 255;

/// OpenAI's default and largest page of `GET /v1/files`.
pub const MAX_LIST_LIMIT: u32 = 10_000;

/// How much an upload's writer and a download's reader hold at once: S3's smallest
/// multipart part, and a multiple of GCS's 256 KiB upload granule.
const CHUNK_BYTES: usize = 5 * 1024 * 1024;

/// The files API of one gateway.
pub struct Files {
    op: Operator,
    backend: String,
    prefix: String,
    store: Arc<dyn FileStore>,
    max_file_bytes: u64,
    /// Uploads begun and not yet finished or cleaned up.
    in_flight: Arc<AtomicUsize>,
}

/// Why a files operation failed; each becomes an OpenAI-shaped error.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// No such file, or not the caller's (404 either way).
    #[error("No such File object: {0}")]
    NotFound(String),
    /// The file is over `max_file_bytes` (413).
    #[error("the file is larger than the limit of {limit} bytes ([files] max_file_bytes)")]
    TooLarge { limit: u64 },
    /// A parameter is wrong (400).
    #[error("{message}")]
    Invalid {
        message: String,
        param: &'static str,
    },
    /// The object store failed or could not be reached (503). Names the backend and
    /// OpenDAL's error kind, never a `backend_config` value.
    #[error("the files backend {backend:?} failed ({kind}); try again later")]
    Backend { backend: String, kind: String },
    /// The metadata store failed (503).
    #[error("the files metadata store failed: {0}")]
    Store(#[from] StoreError),
}

impl From<FilesError> for GatewayError {
    fn from(e: FilesError) -> Self {
        match e {
            FilesError::NotFound(_) => GatewayError::NotFound(e.to_string()),
            FilesError::TooLarge { limit } => GatewayError::PayloadTooLarge {
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            },
            FilesError::Invalid { message, param } => GatewayError::BadRequest {
                message,
                param: Some(param),
                code: None,
            },
            FilesError::Backend { .. } | FilesError::Store(_) => {
                GatewayError::StoreUnavailable(e.to_string())
            }
        }
    }
}

/// A file as OpenAI shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FileObject {
    pub id: String,
    pub object: &'static str,
    pub bytes: u64,
    /// Unix seconds.
    pub created_at: i64,
    pub filename: String,
    pub purpose: String,
    pub status: &'static str,
    pub expires_at: Option<i64>,
    pub status_details: Option<String>,
}

impl From<&StoredFile> for FileObject {
    fn from(f: &StoredFile) -> Self {
        FileObject {
            id: f.id.clone(),
            object: "file",
            bytes: f.bytes,
            created_at: f.created_at.div_euclid(1000),
            filename: f.filename.clone(),
            purpose: f.purpose.clone(),
            status: "processed",
            expires_at: None,
            status_details: None,
        }
    }
}

/// A page of `GET /v1/files`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FileList {
    pub object: &'static str,
    pub data: Vec<FileObject>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub has_more: bool,
}

/// What `GET /v1/files` asks for, validated.
#[derive(Debug, Clone)]
pub struct ListRequest {
    pub purpose: Option<String>,
    /// 1..=[`MAX_LIST_LIMIT`].
    pub limit: u32,
    pub order: FileOrder,
    pub after: Option<String>,
}

/// A file's bytes, streamed from the backend.
pub struct Content {
    pub file: StoredFile,
    pub body: Box<dyn Stream<Item = std::io::Result<Bytes>> + Send + Unpin>,
}

impl Files {
    /// The files API over the backend of `spec`, with metadata in `store`.
    pub fn new(spec: &FilesSpec, store: Arc<dyn FileStore>) -> Result<Files, ObjStoreError> {
        Ok(Files {
            op: objstore::operator(&spec.backend, &spec.backend_config, spec.timeout)?,
            backend: spec.backend.clone(),
            prefix: spec.prefix.clone(),
            store,
            max_file_bytes: spec.max_file_bytes,
            in_flight: Arc::default(),
        })
    }

    /// The largest file an upload may carry.
    pub fn max_file_bytes(&self) -> u64 {
        self.max_file_bytes
    }

    /// Uploads begun and not yet finished or cleaned up (tests wait on it).
    pub fn uploads_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn backend_error(&self, e: &opendal::Error) -> FilesError {
        backend_error(&self.backend, e)
    }

    /// The caller's file `id` (`owner`: the caller's key id, `None` for the master key).
    async fn find(&self, owner: Option<&str>, id: &str) -> Result<StoredFile, FilesError> {
        let file = self.store.get(id).await?;
        match file {
            Some(f) if owner.is_none() || f.owner.as_deref() == owner => Ok(f),
            _ => Err(FilesError::NotFound(id.to_owned())),
        }
    }

    pub async fn get(&self, owner: Option<&str>, id: &str) -> Result<FileObject, FilesError> {
        self.find(owner, id).await.map(|f| FileObject::from(&f))
    }

    pub async fn list(
        &self,
        owner: Option<&str>,
        req: ListRequest,
    ) -> Result<FileList, FilesError> {
        let query = FileQuery {
            owner: owner.map(str::to_owned),
            purpose: req.purpose,
            after: req.after,
            order: req.order,
            limit: req.limit.saturating_add(1),
        };
        let mut files = self.store.list(&query).await?;
        let has_more = files.len() > req.limit as usize;
        files.truncate(req.limit as usize);
        let data: Vec<FileObject> = files.iter().map(FileObject::from).collect();
        Ok(FileList {
            object: "list",
            first_id: data.first().map(|f| f.id.clone()),
            last_id: data.last().map(|f| f.id.clone()),
            data,
            has_more,
        })
    }

    /// The file's bytes, read from the backend as the client takes them.
    pub async fn content(&self, owner: Option<&str>, id: &str) -> Result<Content, FilesError> {
        let file = self.find(owner, id).await?;
        let reader = self
            .op
            .reader_with(&file.object_path)
            .chunk(CHUNK_BYTES)
            .await
            .map_err(|e| self.backend_error(&e))?;
        let stream = reader
            .into_bytes_stream(..)
            .await
            .map_err(|e| self.backend_error(&e))?;
        Ok(Content {
            file,
            body: Box::new(stream),
        })
    }

    /// Removes the object, then the metadata (a file whose object could not be
    /// removed stays listed, so the delete can be retried).
    pub async fn delete(&self, owner: Option<&str>, id: &str) -> Result<(), FilesError> {
        let file = self.find(owner, id).await?;
        self.op
            .delete(&file.object_path)
            .await
            .map_err(|e| self.backend_error(&e))?;
        if !self.store.delete(id).await? {
            // Deleted by a concurrent request: same outcome for this one.
            tracing::debug!(file = id, "file already deleted");
        }
        Ok(())
    }
}

fn backend_error(backend: &str, e: &opendal::Error) -> FilesError {
    tracing::warn!(backend, kind = %e.kind(), "files backend operation failed");
    FilesError::Backend {
        backend: backend.to_owned(),
        kind: e.kind().to_string(),
    }
}

/// A new file id: `file-`, the creation time in milliseconds as 12 hex digits (so ids
/// sort by creation time), and 96 random bits as 24 hex digits.
pub fn new_id(now_ms: i64) -> String {
    let random: [u8; 12] = rand::random();
    let mut id = format!("file-{:012x}", now_ms.max(0));
    for b in random {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// Whether `purpose` is one of OpenAI's upload purposes, as a 400 otherwise.
pub fn check_purpose(purpose: &str) -> Result<(), FilesError> {
    if PURPOSES.contains(&purpose) {
        return Ok(());
    }
    Err(FilesError::Invalid {
        message: format!(
            "'{}' is not one of {} - 'purpose'",
            crate::logtext::capped(purpose).escape_debug(),
            PURPOSES.join(", ")
        ),
        param: "purpose",
    })
}

/// The part's filename as kept: control characters dropped, cut at
/// [`MAX_FILENAME_CHARS`]; `"file"` when nothing is left.
pub fn clean_filename(name: Option<&str>) -> String {
    let kept: String = name
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FILENAME_CHARS)
        .collect();
    if kept.trim().is_empty() {
        "file".to_owned()
    } else {
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_are_unguessable() {
        let a = new_id(1_700_000_000_000);
        let b = new_id(1_700_000_000_001);
        assert!(a < b);
        assert_eq!(a.len(), "file-".len() + 12 + 24);
        assert_ne!(new_id(5), new_id(5));
    }

    #[test]
    fn purposes_and_filenames() {
        assert!(check_purpose("batch").is_ok());
        let e = check_purpose("nope").unwrap_err().to_string();
        assert!(e.contains("'nope'") && e.contains("fine-tune"), "{e}");
        assert_eq!(clean_filename(Some("a\nb\u{1b}[31m.txt")), "ab[31m.txt");
        assert_eq!(clean_filename(None), "file");
        assert_eq!(
            clean_filename(Some(&"x".repeat(400))).len(),
            MAX_FILENAME_CHARS
        );
    }
}
