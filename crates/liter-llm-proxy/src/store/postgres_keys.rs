//! [`KeyStore`](super::KeyStore) on PostgreSQL: the `api_keys` statements and the
//! write discipline (which `sql_files.rs` shares); the store itself is `sql_keys.rs`. `models`, `metadata` and `tags` are JSONB,
//! written from and read back as JSON text. An update locks its row (`FOR UPDATE`).

use async_trait::async_trait;
use sqlx::postgres::{PgQueryResult, Postgres};
use sqlx::{Pool, Transaction};

use super::clock::UnixMillis;
use super::postgres::PgStore;
use super::sql_keys::{KeySql, KeyTable};
use super::types::StoreError;

macro_rules! select {
    ($($rest:literal)?) => {
        concat!(
            "SELECT id, key_hash, key_alias, models::TEXT, max_budget, rpm_limit, tpm_limit, \
             budget_duration, expires_at, metadata::TEXT, created_at, blocked, tags::TEXT FROM api_keys",
            $($rest)?
        )
    };
}

#[async_trait]
impl KeyTable for PgStore {
    type Db = Postgres;
    /// Row locks and transactions are enough: nothing is held in process.
    type Writer<'a> = ();

    const SQL: KeySql = KeySql {
        insert: "INSERT INTO api_keys (id, key_hash, key_alias, models, max_budget, rpm_limit,
                 tpm_limit, budget_duration, expires_at, metadata, created_at, blocked, tags, updated_at)
             VALUES ($1, $2, $3, $4::JSONB, $5, $6, $7, $8, $9, $10::JSONB, $11, $12, $13::JSONB, $14)",
        update: "UPDATE api_keys SET key_hash = $2, key_alias = $3, models = $4::JSONB,
                 max_budget = $5, rpm_limit = $6, tpm_limit = $7, budget_duration = $8,
                 expires_at = $9, metadata = $10::JSONB, blocked = $12, tags = $13::JSONB,
                 updated_at = $14
             WHERE id = $1",
        by_id: select!(" WHERE id = $1"),
        by_id_for_update: select!(" WHERE id = $1 FOR UPDATE"),
        by_hash: select!(" WHERE key_hash = $1"),
        page: select!(" ORDER BY created_at, id LIMIT $1 OFFSET $2"),
        delete: "DELETE FROM api_keys WHERE id = $1",
    };

    fn pool(&self) -> &Pool<Postgres> {
        &self.0.pool
    }

    fn now_ms(&self) -> UnixMillis {
        self.0.clock.now_ms()
    }

    async fn writer(&self) {}

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.0.pool.begin().await?)
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
}
