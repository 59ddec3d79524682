//! [`KeyStore`] on SQLite: the `api_keys` table. Writes take the same in-process writer
//! mutex and `BEGIN IMMEDIATE` as the spend store (see `sqlite.rs`); reads never block.

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::Row;

use super::logic::{self, KeyColumns};
use super::sqlite::SqliteStore;
use super::types::{KeyUpdate, NewKey, StoreError, StoredKey};
use super::KeyStore;

const KEY_COLUMNS: &str = "id, key_hash, key_alias, models, max_budget, rpm_limit, tpm_limit, \
     budget_duration, expires_at, metadata, created_at, blocked";

fn read_key(r: &SqliteRow) -> Result<StoredKey, StoreError> {
    KeyColumns {
        id: r.try_get(0)?,
        key_hash: r.try_get(1)?,
        key_alias: r.try_get(2)?,
        models: r.try_get(3)?,
        max_budget: r.try_get(4)?,
        rpm_limit: r.try_get(5)?,
        tpm_limit: r.try_get(6)?,
        budget_duration: r.try_get(7)?,
        expires_at: r.try_get(8)?,
        metadata: r.try_get(9)?,
        created_at: r.try_get(10)?,
        blocked: r.try_get(11)?,
    }
    .into_key()
}

async fn fetch_key(
    conn: &mut SqliteConnection,
    column: &str,
    value: &str,
) -> Result<Option<StoredKey>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE {column} = ?"
    ))
    .bind(value)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(read_key).transpose()
}

impl SqliteStore {
    async fn lookup(&self, column: &str, value: &str) -> Result<Option<StoredKey>, StoreError> {
        let mut conn = self.0.pool.acquire().await?;
        fetch_key(&mut conn, column, value).await
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn create(&self, key: NewKey) -> Result<StoredKey, StoreError> {
        let now = self.0.clock.now_ms();
        let key = logic::new_key(key, now);
        let c = KeyColumns::from_key(&key)?;
        let _writer = self.0.write.lock().await;
        sqlx::query(&format!(
            "INSERT INTO api_keys ({KEY_COLUMNS}, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&c.id)
        .bind(&c.key_hash)
        .bind(&c.key_alias)
        .bind(&c.models)
        .bind(c.max_budget)
        .bind(c.rpm_limit)
        .bind(c.tpm_limit)
        .bind(&c.budget_duration)
        .bind(c.expires_at)
        .bind(&c.metadata)
        .bind(c.created_at)
        .bind(c.blocked)
        .bind(now)
        .execute(&self.0.pool)
        .await
        .map_err(logic::key_write_error)?;
        c.into_key()
    }

    async fn find_by_hash(&self, key_hash: &str) -> Result<Option<StoredKey>, StoreError> {
        match logic::key_hash(key_hash) {
            Ok(hash) => self.lookup("key_hash", &hash).await,
            Err(_) => Ok(None),
        }
    }

    async fn get(&self, id: &str) -> Result<Option<StoredKey>, StoreError> {
        self.lookup("id", id).await
    }

    async fn list(&self, offset: u64, limit: u64) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id LIMIT ? OFFSET ?"
        ))
        .bind(logic::tokens_col(limit))
        .bind(logic::tokens_col(offset))
        .fetch_all(&self.0.pool)
        .await?;
        rows.iter().map(read_key).collect()
    }

    async fn update(&self, id: &str, update: KeyUpdate) -> Result<Option<StoredKey>, StoreError> {
        let _writer = self.0.write.lock().await;
        let mut tx = self.0.pool.begin_with("BEGIN IMMEDIATE").await?;
        let Some(key) = fetch_key(&mut tx, "id", id).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let c = KeyColumns::from_key(&logic::apply_update(key, update))?;
        sqlx::query(
            "UPDATE api_keys SET key_hash = ?, key_alias = ?, models = ?, max_budget = ?,
                 rpm_limit = ?, tpm_limit = ?, budget_duration = ?, expires_at = ?,
                 metadata = ?, blocked = ?, updated_at = ?
             WHERE id = ?",
        )
        .bind(&c.key_hash)
        .bind(&c.key_alias)
        .bind(&c.models)
        .bind(c.max_budget)
        .bind(c.rpm_limit)
        .bind(c.tpm_limit)
        .bind(&c.budget_duration)
        .bind(c.expires_at)
        .bind(&c.metadata)
        .bind(c.blocked)
        .bind(self.0.clock.now_ms())
        .bind(&c.id)
        .execute(&mut *tx)
        .await
        .map_err(logic::key_write_error)?;
        tx.commit().await?;
        c.into_key().map(Some)
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let _writer = self.0.write.lock().await;
        let done = sqlx::query("DELETE FROM api_keys WHERE id = ?")
            .bind(id)
            .execute(&self.0.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
