//! Pools made on first use for `provider/model` names sent directly (names an
//! `[[aliases]]` pattern covers), kept in a bounded cache: any key holder can send
//! made-up names, so the cache holds at most [`DIRECT_POOLS`] of them and forgets the
//! least recently used first. A forgotten pool is made again on its next use (its
//! breaker and latency history start afresh).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Pool;

/// How many direct-name pools are kept.
pub const DIRECT_POOLS: usize = 1024;

#[derive(Debug, Default)]
struct Inner {
    /// Pool and the tick of its last use.
    pools: HashMap<String, (Arc<Pool>, u64)>,
    tick: u64,
}

/// The bounded cache of direct-name pools.
#[derive(Debug)]
pub struct DirectPools {
    inner: Mutex<Inner>,
    capacity: usize,
}

impl DirectPools {
    pub fn new(capacity: usize) -> Self {
        DirectPools {
            inner: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    /// The pool for `name`, made by `make` when it is not cached (`None`: no pool).
    pub fn get_or_make(
        &self,
        name: &str,
        make: impl FnOnce() -> Option<Arc<Pool>>,
    ) -> Option<Arc<Pool>> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.tick += 1;
        let tick = inner.tick;
        if let Some((pool, used)) = inner.pools.get_mut(name) {
            *used = tick;
            return Some(pool.clone());
        }
        let pool = make()?;
        if inner.pools.len() >= self.capacity {
            // Least recently used out: a scan, paid only when a new name arrives at a
            // full cache.
            let oldest = inner
                .pools
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(name, _)| name.clone());
            if let Some(oldest) = oldest {
                inner.pools.remove(&oldest);
            }
        }
        inner.pools.insert(name.to_string(), (pool.clone(), tick));
        Some(pool)
    }

    /// How many pools are cached.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pools
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::PoolSpec;

    fn pool(name: &str) -> Option<Arc<Pool>> {
        Some(Arc::new(Pool {
            spec: PoolSpec {
                name: name.into(),
                strategy: Default::default(),
                fallbacks: Vec::new(),
                context_window_fallbacks: Vec::new(),
                max_retries: None,
            },
            deployments: Vec::new(),
            has_default: false,
        }))
    }

    #[test]
    fn holds_at_most_its_capacity_and_forgets_the_least_recently_used() {
        let cache = DirectPools::new(3);
        for name in ["a", "b", "c"] {
            cache.get_or_make(name, || pool(name)).unwrap();
        }
        // "a" used again: "b" is now the oldest.
        cache.get_or_make("a", || panic!("cached")).unwrap();
        cache.get_or_make("d", || pool("d")).unwrap();
        assert_eq!(cache.len(), 3);
        let mut made = false;
        cache.get_or_make("b", || {
            made = true;
            pool("b")
        });
        assert!(made, "b was forgotten, so it is made again");
        cache
            .get_or_make("a", || panic!("a stays: used recently"))
            .unwrap();
        for i in 0..10_000 {
            let name = format!("x{i}");
            cache.get_or_make(&name, || pool(&name));
        }
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn a_name_without_a_pool_is_not_cached() {
        let cache = DirectPools::new(2);
        assert!(cache.get_or_make("nope", || None).is_none());
        assert!(cache.is_empty());
    }
}
