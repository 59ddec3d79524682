//! [`KeyStore`] once for both SQL backends: a backend supplies its statements and its
//! write discipline ([`KeyTable`]: `sqlite_keys.rs`, `postgres_keys.rs`); reading,
//! binding, the read-modify-write of an update and the error mapping are here.
//!
//! Every statement that writes a key binds the same 14 values, in one order: the 13
//! key columns (`id, key_hash, key_alias, models, max_budget, rpm_limit, tpm_limit,
//! budget_duration, expires_at, metadata, created_at, blocked, tags`) and then
//! `updated_at`. An INSERT takes them as they come; an UPDATE names them by number
//! (`?2`, `$2`, …, `WHERE id = ?1`) and leaves `created_at` (the 11th) unused. Every
//! SELECT reads the 13 key columns in that order.

use async_trait::async_trait;
use sqlx::query::Query;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type,
};

use super::clock::UnixMillis;
use super::logic::{self, KeyColumns};
use super::types::{KeyUpdate, NewKey, StoreError, StoredKey};
use super::KeyStore;

/// One backend's statements on `api_keys` (its placeholders, casts and locks).
#[derive(Debug, Clone, Copy)]
pub(super) struct KeySql {
    /// Binds the 14 values (see the module doc).
    pub insert: &'static str,
    /// Binds the same 14 values, by number; `created_at` is not written.
    pub update: &'static str,
    /// The key columns of the key whose `id` is the one parameter.
    pub by_id: &'static str,
    /// The same inside an update's transaction (locking the row where the database
    /// needs that to serialise writers).
    pub by_id_for_update: &'static str,
    /// The key columns of the key whose `key_hash` is the one parameter.
    pub by_hash: &'static str,
    /// Keys in creation order; parameters `limit`, `offset`.
    pub page: &'static str,
    /// Deletes the key whose `id` is the one parameter.
    pub delete: &'static str,
}

/// What a database adds to the shared key store.
#[async_trait]
pub(super) trait KeyTable: Send + Sync {
    type Db: Database;
    /// Held from before a write until it is done.
    type Writer<'a>: Send
    where
        Self: 'a;

    const SQL: KeySql;

    fn pool(&self) -> &Pool<Self::Db>;

    fn now_ms(&self) -> UnixMillis;

    /// Taken before every write (SQLite: the in-process writer mutex).
    async fn writer(&self) -> Self::Writer<'_>;

    /// The transaction of an update's read-modify-write (SQLite: `BEGIN IMMEDIATE`).
    async fn begin_write(&self) -> Result<Transaction<'static, Self::Db>, StoreError>;

    fn rows_affected(done: &<Self::Db as Database>::QueryResult) -> u64;
}

#[async_trait]
impl<T> KeyStore for T
where
    T: KeyTable,
    for<'c> &'c mut <T::Db as Database>::Connection: Executor<'c, Database = T::Db>,
    for<'q> <T::Db as Database>::Arguments<'q>: IntoArguments<'q, T::Db>,
    usize: ColumnIndex<<T::Db as Database>::Row>,
    for<'q> String: Encode<'q, T::Db> + Decode<'q, T::Db> + Type<T::Db>,
    for<'q> &'q str: Encode<'q, T::Db> + Type<T::Db>,
    for<'q> Option<String>: Encode<'q, T::Db> + Type<T::Db>,
    for<'q> f64: Decode<'q, T::Db> + Type<T::Db>,
    for<'q> Option<f64>: Encode<'q, T::Db> + Type<T::Db>,
    for<'q> i64: Encode<'q, T::Db> + Decode<'q, T::Db> + Type<T::Db>,
    for<'q> Option<i64>: Encode<'q, T::Db> + Type<T::Db>,
    for<'q> bool: Encode<'q, T::Db> + Decode<'q, T::Db> + Type<T::Db>,
{
    async fn create(&self, key: NewKey) -> Result<StoredKey, StoreError> {
        let now = self.now_ms();
        let key = logic::new_key(key, now);
        let c = KeyColumns::from_key(&key)?;
        let _writer = self.writer().await;
        bind_key(sqlx::query(T::SQL.insert), &c, now)
            .execute(self.pool())
            .await
            .map_err(logic::key_write_error)?;
        c.into_key()
    }

    async fn find_by_hash(&self, key_hash: &str) -> Result<Option<StoredKey>, StoreError> {
        match logic::key_hash(key_hash) {
            Ok(hash) => fetch_key(self.pool(), T::SQL.by_hash, &hash).await,
            Err(_) => Ok(None),
        }
    }

    async fn get(&self, id: &str) -> Result<Option<StoredKey>, StoreError> {
        fetch_key(self.pool(), T::SQL.by_id, id).await
    }

    async fn list(&self, offset: u64, limit: u64) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(T::SQL.page)
            .bind(logic::tokens_col(limit))
            .bind(logic::tokens_col(offset))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(read_key).collect()
    }

    async fn update(&self, id: &str, update: KeyUpdate) -> Result<Option<StoredKey>, StoreError> {
        let _writer = self.writer().await;
        let mut tx = self.begin_write().await?;
        let Some(key) = fetch_key(&mut *tx, T::SQL.by_id_for_update, id).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let c = KeyColumns::from_key(&logic::apply_update(key, update))?;
        bind_key(sqlx::query(T::SQL.update), &c, self.now_ms())
            .execute(&mut *tx)
            .await
            .map_err(logic::key_write_error)?;
        tx.commit().await?;
        c.into_key().map(Some)
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let _writer = self.writer().await;
        let done = sqlx::query(T::SQL.delete)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(T::rows_affected(&done) > 0)
    }
}

/// The key that `sql` (one parameter, `value`) selects, if any.
async fn fetch_key<'e, E, DB>(
    executor: E,
    sql: &'static str,
    value: &str,
) -> Result<Option<StoredKey>, StoreError>
where
    E: Executor<'e, Database = DB>,
    DB: Database,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    usize: ColumnIndex<DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> f64: Decode<'q, DB> + Type<DB>,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'q> bool: Decode<'q, DB> + Type<DB>,
{
    let row = sqlx::query(sql)
        .bind(value)
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(read_key).transpose()
}

/// Binds the key's 13 columns, then `updated_at` (14 values; see the module doc).
fn bind_key<'q, DB>(
    query: Query<'q, DB, DB::Arguments<'q>>,
    c: &'q KeyColumns,
    updated_at: i64,
) -> Query<'q, DB, DB::Arguments<'q>>
where
    DB: Database,
    String: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
    Option<f64>: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
{
    query
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
        .bind(&c.tags)
        .bind(updated_at)
}

/// A key from a row whose first 13 columns are the key columns, in order.
fn read_key<R>(r: &R) -> Result<StoredKey, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
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
        tags: r.try_get(12)?,
    }
    .into_key()
}
