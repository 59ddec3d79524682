//! [`ResponseStore`] once for both SQL backends, over the pool and write discipline
//! each already gives the key store ([`KeyTable`]). The statements are the same for
//! both (`$N` placeholders). The `responses` table: migration sqlite/0005,
//! postgres/0004.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::responses::StoredResponse;
use super::sql_keys::KeyTable;
use super::types::StoreError;
use super::ResponseStore;

#[async_trait]
impl<T> ResponseStore for T
where
    T: KeyTable,
    for<'c> &'c mut <T::Db as Database>::Connection: Executor<'c, Database = T::Db>,
    for<'q> <T::Db as Database>::Arguments<'q>: IntoArguments<'q, T::Db>,
    usize: ColumnIndex<<T::Db as Database>::Row>,
    for<'q> String: Encode<'q, T::Db> + Decode<'q, T::Db> + Type<T::Db>,
    for<'q> &'q str: Encode<'q, T::Db> + Type<T::Db>,
    for<'q> i64: Encode<'q, T::Db> + Decode<'q, T::Db> + Type<T::Db>,
{
    async fn put(&self, r: &StoredResponse) -> Result<(), StoreError> {
        let _writer = self.writer().await;
        sqlx::query(
            "INSERT INTO responses (id, owner, created_at, response, input_items)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(r.id.as_str())
        .bind(r.owner.as_str())
        .bind(r.created_at)
        .bind(r.response.as_str())
        .bind(r.input_items.as_str())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn get(&self, id: &str, owner: &str) -> Result<Option<StoredResponse>, StoreError> {
        let row = sqlx::query(
            "SELECT id, owner, created_at, response, input_items FROM responses
             WHERE id = $1 AND owner = $2",
        )
        .bind(id)
        .bind(owner)
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        Ok(Some(StoredResponse {
            id: r.try_get(0)?,
            owner: r.try_get(1)?,
            created_at: r.try_get(2)?,
            response: r.try_get(3)?,
            input_items: r.try_get(4)?,
        }))
    }

    async fn delete(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let _writer = self.writer().await;
        let done = sqlx::query("DELETE FROM responses WHERE id = $1 AND owner = $2")
            .bind(id)
            .bind(owner)
            .execute(self.pool())
            .await?;
        Ok(T::rows_affected(&done) > 0)
    }
}
