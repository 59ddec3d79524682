//! [`FileStore`] once for both SQL backends, over the pool and write discipline each
//! already gives the key store ([`KeyTable`]: `sqlite_keys.rs`, `postgres_keys.rs`).
//! A backend supplies its statements ([`FileSql`]: placeholders and casts).
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

/// One backend's statements on `files`. Every SELECT reads `id, owner, filename,
/// bytes, purpose, created_at, object_path` in that order.
#[derive(Debug, Clone, Copy)]
pub(super) struct FileSql {
    /// Binds those 7 columns, in that order.
    pub insert: &'static str,
    /// The file whose `id` is the one parameter.
    pub by_id: &'static str,
    /// Deletes the file whose `id` is the one parameter.
    pub delete: &'static str,
    /// A page by ascending id; parameters: owner, purpose, after (each NULL for "any"),
    /// limit.
    pub page_asc: &'static str,
    /// The same by descending id.
    pub page_desc: &'static str,
}

/// A key store's database, which also keeps file metadata.
pub(super) trait FileTable: KeyTable {
    const FILE_SQL: FileSql;
}

#[async_trait]
impl<T> FileStore for T
where
    T: FileTable,
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
        sqlx::query(T::FILE_SQL.insert)
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
        let row = sqlx::query(T::FILE_SQL.by_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(read_file).transpose()
    }

    async fn list(&self, q: &FileQuery) -> Result<Vec<StoredFile>, StoreError> {
        let sql = match q.order {
            FileOrder::Asc => T::FILE_SQL.page_asc,
            FileOrder::Desc => T::FILE_SQL.page_desc,
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
        let done = sqlx::query(T::FILE_SQL.delete)
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
