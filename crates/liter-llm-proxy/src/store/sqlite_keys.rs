//! [`KeyStore`](super::KeyStore) on SQLite: the `api_keys` statements and the write
//! discipline (which `sql_files.rs` shares); the store itself is `sql_keys.rs`. Writes
//! take the same in-process writer mutex and `BEGIN IMMEDIATE` as the spend store (see
//! `sqlite.rs`); reads never block.

use async_trait::async_trait;
use sqlx::sqlite::{Sqlite, SqliteQueryResult};
use sqlx::{Pool, Transaction};
use tokio::sync::MutexGuard;

use super::clock::UnixMillis;
use super::sql_keys::{KeySql, KeyTable};
use super::sqlite::SqliteStore;
use super::types::StoreError;

macro_rules! select {
    ($($rest:literal)?) => {
        concat!(
            "SELECT id, key_hash, key_alias, models, max_budget, rpm_limit, tpm_limit, \
             budget_duration, expires_at, metadata, created_at, blocked, tags FROM api_keys",
            $($rest)?
        )
    };
}

#[async_trait]
impl KeyTable for SqliteStore {
    type Db = Sqlite;
    type Writer<'a> = MutexGuard<'a, ()>;

    const SQL: KeySql = KeySql {
        insert: "INSERT INTO api_keys (id, key_hash, key_alias, models, max_budget, rpm_limit,
                 tpm_limit, budget_duration, expires_at, metadata, created_at, blocked, tags, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        update: "UPDATE api_keys SET key_hash = ?2, key_alias = ?3, models = ?4,
                 max_budget = ?5, rpm_limit = ?6, tpm_limit = ?7, budget_duration = ?8,
                 expires_at = ?9, metadata = ?10, blocked = ?12, tags = ?13, updated_at = ?14
             WHERE id = ?1",
        by_id: select!(" WHERE id = ?"),
        // The writer mutex and BEGIN IMMEDIATE already serialise the update.
        by_id_for_update: select!(" WHERE id = ?"),
        by_hash: select!(" WHERE key_hash = ?"),
        page: select!(" ORDER BY created_at, id LIMIT ? OFFSET ?"),
        delete: "DELETE FROM api_keys WHERE id = ?",
    };

    fn pool(&self) -> &Pool<Sqlite> {
        &self.0.pool
    }

    fn now_ms(&self) -> UnixMillis {
        self.0.clock.now_ms()
    }

    async fn writer(&self) -> MutexGuard<'_, ()> {
        self.0.write.lock().await
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.0.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
}
