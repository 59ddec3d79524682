//! [`ModelStore`] once for both SQL backends, over the pool and write discipline each
//! already gives the key store ([`KeyTable`]). The `models` table: migration
//! sqlite/0007, postgres/0006.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::models::StoredModel;
use super::sql_keys::KeyTable;
use super::types::StoreError;
use super::ModelStore;

#[async_trait]
impl<T> ModelStore for T
where
    T: KeyTable,
    for<'c> &'c mut <T::Db as Database>::Connection: Executor<'c, Database = T::Db>,
    for<'q> <T::Db as Database>::Arguments<'q>: IntoArguments<'q, T::Db>,
    usize: ColumnIndex<<T::Db as Database>::Row>,
    for<'q> String: Encode<'q, T::Db> + Decode<'q, T::Db> + Type<T::Db>,
    for<'q> &'q str: Encode<'q, T::Db> + Type<T::Db>,
    for<'q> i64: Encode<'q, T::Db> + Decode<'q, T::Db> + Type<T::Db>,
{
    async fn list_models(&self) -> Result<Vec<StoredModel>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, model_name, body, created_at, updated_at FROM models
             ORDER BY created_at, id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredModel {
                    id: r.try_get(0)?,
                    model_name: r.try_get(1)?,
                    body: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                    updated_at: r.try_get(4)?,
                })
            })
            .collect()
    }

    async fn put_model(&self, m: &StoredModel) -> Result<(), StoreError> {
        let _writer = self.writer().await;
        sqlx::query(
            "INSERT INTO models (id, model_name, body, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET model_name = $2, body = $3, updated_at = $5",
        )
        .bind(m.id.as_str())
        .bind(m.model_name.as_str())
        .bind(m.body.as_str())
        .bind(m.created_at)
        .bind(m.updated_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn delete_model(&self, id: &str) -> Result<bool, StoreError> {
        let _writer = self.writer().await;
        let done = sqlx::query("DELETE FROM models WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(T::rows_affected(&done) > 0)
    }
}
