//! The model admin API's models: what crosses the [`super::ModelStore`] trait, and the
//! in-memory store used when the gateway has no database (its models are then lost
//! at a restart).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::clock::UnixMillis;
use super::types::StoreError;
use super::ModelStore;

/// One stored model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredModel {
    /// Its deployment id (`model_info.id`).
    pub id: String,
    pub model_name: String,
    /// The model as LiteLLM's API takes it (JSON text: `model_name`,
    /// `litellm_params`, `model_info` without `id`).
    pub body: String,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// Models in process memory, in creation order.
#[derive(Debug, Default)]
pub struct MemoryModelStore {
    by_id: Mutex<BTreeMap<String, StoredModel>>,
}

fn lock(
    m: &Mutex<BTreeMap<String, StoredModel>>,
) -> std::sync::MutexGuard<'_, BTreeMap<String, StoredModel>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[async_trait]
impl ModelStore for MemoryModelStore {
    async fn list_models(&self) -> Result<Vec<StoredModel>, StoreError> {
        let mut all: Vec<StoredModel> = lock(&self.by_id).values().cloned().collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    async fn put_model(&self, model: &StoredModel) -> Result<(), StoreError> {
        lock(&self.by_id).insert(model.id.clone(), model.clone());
        Ok(())
    }

    async fn delete_model(&self, id: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.by_id).remove(id).is_some())
    }
}
