//! Where entries live: [`Memory`], an in-process moka cache (LRU eviction, per-entry
//! expiry, a byte weigher), and [`Remote`], any OpenDAL backend through
//! `objstore::operator`, one object per entry under `liter-llm-cache/`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opendal::{ErrorKind, Operator};

use super::entry::Entry;
use crate::store::UnixMillis;

/// The in-process tier. An entry weighs its size, and at least `max_bytes /
/// max_entries`, so both limits hold at once.
pub struct Memory {
    cache: moka::sync::Cache<[u8; 32], Arc<Entry>>,
}

/// moka's expiry of an entry: its own lifetime (the clock that decides whether an
/// entry may answer is the cache's; this one frees the memory).
struct Lifetime;

impl moka::Expiry<[u8; 32], Arc<Entry>> for Lifetime {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        e: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let ms = e.expires_ms?.saturating_sub(e.created_ms);
        Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
    }
}

impl Memory {
    pub fn new(max_entries: u64, max_bytes: u64) -> Memory {
        let floor = max_bytes.div_ceil(max_entries.max(1));
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .weigher(move |_k: &[u8; 32], e: &Arc<Entry>| {
                u32::try_from(e.weight().max(floor)).unwrap_or(u32::MAX)
            })
            .expire_after(Lifetime)
            .build();
        Memory { cache }
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<Arc<Entry>> {
        self.cache.get(key)
    }

    pub fn put(&self, key: [u8; 32], entry: Arc<Entry>) {
        self.cache.insert(key, entry);
    }

    pub fn remove(&self, key: &[u8; 32]) {
        self.cache.invalidate(key);
    }
}

/// An OpenDAL backend.
pub struct Remote {
    op: Operator,
    timeout: Duration,
}

/// Why a backend operation failed (OpenDAL's error kind, or the time limit): never a
/// `backend_config` value.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{0}")]
    Backend(ErrorKind),
    #[error("no answer within {} ms", .0.as_millis())]
    TimedOut(Duration),
}

impl Remote {
    pub fn new(op: Operator, timeout: Duration) -> Remote {
        Remote { op, timeout }
    }

    fn path(hex: &str) -> String {
        format!("liter-llm-cache/{hex}")
    }

    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = opendal::Result<T>>,
    ) -> Result<T, RemoteError> {
        match tokio::time::timeout(self.timeout, f).await {
            Err(_) => Err(RemoteError::TimedOut(self.timeout)),
            Ok(r) => r.map_err(|e| RemoteError::Backend(e.kind())),
        }
    }

    /// The entry under `hex`; `Ok(None)` when there is none (or the object is not one
    /// of ours).
    pub async fn get(&self, hex: &str) -> Result<Option<Entry>, RemoteError> {
        match self.bounded(self.op.read(&Self::path(hex))).await {
            Ok(buf) => Ok(Entry::decode(buf.to_bytes())),
            Err(RemoteError::Backend(ErrorKind::NotFound)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn put(&self, hex: &str, entry: &Entry) -> Result<(), RemoteError> {
        self.bounded(self.op.write(&Self::path(hex), entry.encode()))
            .await
            .map(|_| ())
    }

    pub async fn remove(&self, hex: &str) -> Result<(), RemoteError> {
        self.bounded(self.op.delete(&Self::path(hex))).await
    }
}

/// Milliseconds of `d`, for entry times.
pub fn millis(d: Duration) -> UnixMillis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn entry(bytes: usize) -> Arc<Entry> {
        Arc::new(Entry {
            created_ms: 0,
            expires_ms: None,
            body: Bytes::from(vec![b'x'; bytes]),
        })
    }

    fn key(i: u32) -> [u8; 32] {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&i.to_be_bytes());
        k
    }

    #[test]
    fn the_memory_tier_holds_both_its_entry_and_its_byte_limit_evicting_the_oldest() {
        // Big answers: the bytes limit decides (10 x 2 KB in 10 KB).
        let m = Memory::new(100, 10_000);
        for i in 0..10 {
            m.put(key(i), entry(2_000));
        }
        m.cache.run_pending_tasks();
        assert!(m.cache.weighted_size() <= 10_000);
        assert!(m.cache.entry_count() <= 4, "{}", m.cache.entry_count());
        // Small answers: the entry limit decides (each counts for 10_000 / 100).
        let m = Memory::new(100, 10_000);
        for i in 0..300 {
            m.put(key(i), entry(10));
        }
        m.cache.run_pending_tasks();
        assert!(m.cache.entry_count() <= 100, "{}", m.cache.entry_count());
        assert!(m.cache.entry_count() >= 50, "{}", m.cache.entry_count());
        assert!(m.get(&key(299)).is_some(), "the newest is kept");
        assert!(m.get(&key(0)).is_none(), "the oldest is evicted");
    }
}
