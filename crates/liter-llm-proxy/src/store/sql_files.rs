//! [`FileStore`] once for both SQL backends, over the pool and write discipline each
//! already gives the key store ([`KeyTable`]: `sqlite_keys.rs`, `postgres_keys.rs`).
//! The statements are the same for both (`$N` placeholders, `CAST`).
//!
//! The `files` table (migration 0003) holds one row per file; `file_provider_ids`
//! maps a file to its copy at a provider, per deployment, for the batch and
//! fine-tuning APIs to come (nothing writes it yet; its rows go with their file).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::files::{FileOrder, FileQuery, StoredFile};
use super::sql_keys::KeyTable;
use super::types::StoreError;
use super::FileStore;

macro_rules! select_file {
    ($rest:literal) => {
        concat!(
            "SELECT id, owner, filename, bytes, purpose, created_at, object_path FROM files",
            $rest
        )
    };
}

/// A page by ascending id; parameters: owner, purpose, after (each NULL for "any"),
/// limit. `$N` placeholders and `CAST` read the same in SQLite and PostgreSQL.
const PAGE_ASC: &str = select_file!(
    " WHERE (CAST($1 AS TEXT) IS NULL OR owner = $1)
      AND (CAST($2 AS TEXT) IS NULL OR purpose = $2)
      AND (CAST($3 AS TEXT) IS NULL OR id > $3) ORDER BY id ASC LIMIT $4"
);
/// The same by descending id.
const PAGE_DESC: &str = select_file!(
    " WHERE (CAST($1 AS TEXT) IS NULL OR owner = $1)
      AND (CAST($2 AS TEXT) IS NULL OR purpose = $2)
      AND (CAST($3 AS TEXT) IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
);

#[async_trait]
impl<T> FileStore for T
where
    T: KeyTable,
    for<'c> &'c mut <T::Db as Database>::Connection: Executor<'c, Database = T::Db>,
    for<'q> <T::Db as Database>::Arguments<'q>: IntoArguments<'q, T::Db>,
    usize: ColumnIndex<<T::Db as Database>::Row>,
    for<'q> String: Encode<'q, T::Db> + Decode<'q, T::Db> + Type<T::Db>,
    for<'q> &'q str: Encode<'q, T::Db> + Type<T::Db>,
    for<'q> Option<String>: Encode<'q, T::Db> + Decode<'q, T::Db> + Type<T::Db>,
    for<'q> Option<&'q str>: Encode<'q, T::Db> + Type<T::Db>,
    for<'q> i64: Encode<'q, T::Db> + Decode<'q, T::Db> + Type<T::Db>,
{
    async fn insert(&self, f: &StoredFile) -> Result<(), StoreError> {
        let bytes = i64::try_from(f.bytes)
            .map_err(|_| StoreError::InvalidInput(format!("file size {}", f.bytes)))?;
        let _writer = self.writer().await;
        sqlx::query(
            "INSERT INTO files (id, owner, filename, bytes, purpose, created_at, object_path)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(f.id.as_str())
        .bind(f.owner.as_deref())
        .bind(f.filename.as_str())
        .bind(bytes)
        .bind(f.purpose.as_str())
        .bind(f.created_at)
        .bind(f.object_path.as_str())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<StoredFile>, StoreError> {
        let row = sqlx::query(select_file!(" WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(read_file).transpose()
    }

    async fn list(&self, q: &FileQuery) -> Result<Vec<StoredFile>, StoreError> {
        let sql = match q.order {
            FileOrder::Asc => PAGE_ASC,
            FileOrder::Desc => PAGE_DESC,
        };
        let rows = sqlx::query(sql)
            .bind(q.owner.as_deref())
            .bind(q.purpose.as_deref())
            .bind(q.after.as_deref())
            .bind(i64::from(q.limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(read_file).collect()
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let _writer = self.writer().await;
        let done = sqlx::query("DELETE FROM files WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(T::rows_affected(&done) > 0)
    }
}

fn read_file<R>(r: &R) -> Result<StoredFile, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let bytes: i64 = r.try_get(3)?;
    Ok(StoredFile {
        id: r.try_get(0)?,
        owner: r.try_get(1)?,
        filename: r.try_get(2)?,
        bytes: u64::try_from(bytes)
            .map_err(|_| StoreError::Corrupt(format!("file size {bytes}")))?,
        purpose: r.try_get(4)?,
        created_at: r.try_get(5)?,
        object_path: r.try_get(6)?,
    })
}
