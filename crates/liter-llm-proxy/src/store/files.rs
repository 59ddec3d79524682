//! The files API's metadata: what crosses the [`super::FileStore`] trait, and the
//! in-memory store that keeps the metadata of a `memory` backend (volatile objects
//! with durable metadata would list files whose bytes are gone after a restart).
//!
//! File ids sort by creation time (see `files::new_id`), so a list is ordered by id
//! and a page cursor is a file id, which stays a valid cursor after that file is
//! deleted.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;

use super::clock::UnixMillis;
use super::types::StoreError;
use super::FileStore;

/// One stored file's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// `file-...`, unguessable; sorts by creation time.
    pub id: String,
    /// The id of the virtual key that uploaded it; `None`: the master key.
    pub owner: Option<String>,
    pub filename: String,
    pub bytes: u64,
    /// One of OpenAI's purposes (`assistants`, `batch`, ...).
    pub purpose: String,
    pub created_at: UnixMillis,
    /// Where the bytes are, under the backend's root.
    pub object_path: String,
}

/// Which way a list runs, by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOrder {
    Asc,
    Desc,
}

/// A page of files: `limit` of them, in `order`, after the file `after` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileQuery {
    /// Only this key's files; `None`: every owner's (the master key's view).
    pub owner: Option<String>,
    pub purpose: Option<String>,
    pub after: Option<String>,
    pub order: FileOrder,
    pub limit: u32,
}

impl FileQuery {
    /// Whether `f` is in this query's result set (ignoring `after` and `limit`).
    fn matches(&self, f: &StoredFile) -> bool {
        self.owner
            .as_ref()
            .is_none_or(|o| f.owner.as_ref() == Some(o))
            && self.purpose.as_ref().is_none_or(|p| &f.purpose == p)
    }
}

/// File metadata in process memory, for the `memory` backend.
#[derive(Debug, Default)]
pub struct MemoryFileStore {
    files: Mutex<BTreeMap<String, StoredFile>>,
}

impl MemoryFileStore {
    fn files(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, StoredFile>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl FileStore for MemoryFileStore {
    async fn insert(&self, file: &StoredFile) -> Result<(), StoreError> {
        let mut files = self.files();
        if files.contains_key(&file.id) {
            return Err(StoreError::InvalidInput(format!(
                "a file with id {} exists",
                file.id
            )));
        }
        files.insert(file.id.clone(), file.clone());
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<StoredFile>, StoreError> {
        Ok(self.files().get(id).cloned())
    }

    async fn list(&self, q: &FileQuery) -> Result<Vec<StoredFile>, StoreError> {
        let files = self.files();
        let limit = usize::try_from(q.limit).unwrap_or(usize::MAX);
        let page = match (q.order, q.after.as_deref()) {
            (FileOrder::Asc, after) => {
                let from = after.map_or(Bound::Unbounded, Bound::Excluded);
                let range = files.range::<str, _>((from, Bound::Unbounded));
                range
                    .map(|(_, f)| f)
                    .filter(|f| q.matches(f))
                    .take(limit)
                    .cloned()
                    .collect()
            }
            (FileOrder::Desc, after) => {
                let to = after.map_or(Bound::Unbounded, Bound::Excluded);
                let range = files.range::<str, _>((Bound::Unbounded, to));
                range
                    .rev()
                    .map(|(_, f)| f)
                    .filter(|f| q.matches(f))
                    .take(limit)
                    .cloned()
                    .collect()
            }
        };
        Ok(page)
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.files().remove(id).is_some())
    }
}
