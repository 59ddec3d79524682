//! The Responses API's conversation state (`POST /v1/responses` with `store`): what
//! crosses the [`super::ResponseStore`] trait, and the in-memory store used when the
//! gateway has no database.
//!
//! A stored response is owned by the key that made it: every read and delete names
//! the owner, and a response of another owner reads as absent. Each row holds the
//! whole conversation that led to the response (its input items, those of the
//! responses it continued included), so a response stands alone: deleting one never
//! breaks a later one.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use super::clock::UnixMillis;
use super::types::StoreError;
use super::ResponseStore;

/// One stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// `resp_...`, unguessable.
    pub id: String,
    /// Who may read it: the budget scope name of the key that made it (`key:<id>`),
    /// or `master`.
    pub owner: String,
    pub created_at: UnixMillis,
    /// The `response` object as the client got it (JSON).
    pub response: String,
    /// The conversation's input items up to this response (a JSON array).
    pub input_items: String,
}

impl StoredResponse {
    /// Bytes it takes (its two JSON texts).
    pub fn size(&self) -> usize {
        self.response.len() + self.input_items.len()
    }
}

/// The most the in-memory store holds, in bytes of JSON: the oldest responses are
/// forgotten first beyond it.
pub const MEMORY_LIMIT_BYTES: usize = 64 * 1024 * 1024;

/// Responses in process memory, bounded by a byte budget (oldest evicted first).
#[derive(Debug)]
pub struct MemoryResponseStore {
    limit: usize,
    inner: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    by_id: BTreeMap<String, StoredResponse>,
    /// Ids in insertion order, for eviction.
    order: VecDeque<String>,
    bytes: usize,
}

impl Default for MemoryResponseStore {
    fn default() -> Self {
        Self::with_limit(MEMORY_LIMIT_BYTES)
    }
}

impl MemoryResponseStore {
    /// A store holding at most `limit` bytes of responses.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            limit,
            inner: Mutex::new(Memory::default()),
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ResponseStore for MemoryResponseStore {
    async fn put(&self, r: &StoredResponse) -> Result<(), StoreError> {
        let mut m = self.memory();
        if m.by_id.contains_key(&r.id) {
            return Err(StoreError::InvalidInput(format!(
                "a response with id {} exists",
                r.id
            )));
        }
        m.bytes += r.size();
        m.order.push_back(r.id.clone());
        m.by_id.insert(r.id.clone(), r.clone());
        while m.bytes > self.limit {
            let Some(oldest) = m.order.pop_front() else {
                break;
            };
            if let Some(gone) = m.by_id.remove(&oldest) {
                m.bytes -= gone.size();
            }
        }
        Ok(())
    }

    async fn get(&self, id: &str, owner: &str) -> Result<Option<StoredResponse>, StoreError> {
        Ok(self
            .memory()
            .by_id
            .get(id)
            .filter(|r| r.owner == owner)
            .cloned())
    }

    async fn delete(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let mut m = self.memory();
        if m.by_id.get(id).is_none_or(|r| r.owner != owner) {
            return Ok(false);
        }
        if let Some(gone) = m.by_id.remove(id) {
            m.bytes -= gone.size();
        }
        m.order.retain(|i| i != id);
        Ok(true)
    }
}
