//! One upload: the file's bytes go to the backend through an OpenDAL writer as they
//! arrive, never held whole; the metadata row is written only once the object is
//! complete. Whatever ends an upload early (the size limit, a bad part, a client that
//! goes away, a body timeout, a failing backend) leaves nothing behind: the writer is
//! aborted and the object deleted, awaited on an error the handler sees, and spawned
//! from `Drop` when the handler itself is dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use opendal::{Operator, Writer};

use super::{backend_error, FileObject, Files, FilesError, CHUNK_BYTES};
use crate::store::{FileStore, StoredFile};

/// An upload in progress. Call [`Upload::finish`] or [`Upload::abort`]; dropped
/// without either, it cleans up in a spawned task.
pub struct Upload {
    id: String,
    path: String,
    op: Operator,
    backend: String,
    store: Arc<dyn FileStore>,
    writer: Option<Writer>,
    bytes: u64,
    limit: u64,
    /// Released (decremented) once the upload is finished or cleaned up.
    in_flight: Option<InFlight>,
}

/// One count in [`Files::uploads_in_flight`], given back on drop.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the caller knows of the file once its bytes are in.
pub struct Finished<'a> {
    /// The uploading key's id; `None`: the master key.
    pub owner: Option<&'a str>,
    pub filename: String,
    pub purpose: String,
    pub created_at: i64,
}

impl Files {
    /// Opens the writer of a new file's object.
    pub async fn begin_upload(&self, now_ms: i64) -> Result<Upload, FilesError> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let in_flight = InFlight(self.in_flight.clone());
        let id = super::new_id(now_ms);
        let path = format!("{}{id}", self.prefix);
        let writer = self
            .op
            .writer_with(&path)
            .chunk(CHUNK_BYTES)
            .await
            .map_err(|e| self.backend_error(&e))?;
        Ok(Upload {
            id,
            path,
            op: self.op.clone(),
            backend: self.backend.clone(),
            store: self.store.clone(),
            writer: Some(writer),
            bytes: 0,
            limit: self.max_file_bytes,
            in_flight: Some(in_flight),
        })
    }
}

impl Upload {
    /// The new file's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Appends a chunk; [`FilesError::TooLarge`] once the file is over the limit.
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), FilesError> {
        self.bytes = self.bytes.saturating_add(chunk.len() as u64);
        if self.bytes > self.limit {
            return Err(FilesError::TooLarge { limit: self.limit });
        }
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        writer
            .write(chunk)
            .await
            .map_err(|e| backend_error(&self.backend, &e))
    }

    /// Gives up: the partial object is removed before this returns.
    pub async fn abort(mut self) {
        let (op, path, writer) = (self.op.clone(), self.path.clone(), self.writer.take());
        let _in_flight = self.in_flight.take();
        clean_up(op, path, writer).await;
    }

    /// Completes the object and records the file. Runs to the end in its own task, so
    /// a client that goes away now cannot leave an object without a row or a row
    /// without an object; on failure the object is removed.
    pub async fn finish(mut self, meta: Finished<'_>) -> Result<FileObject, FilesError> {
        let file = StoredFile {
            id: self.id.clone(),
            owner: meta.owner.map(str::to_owned),
            filename: meta.filename,
            bytes: self.bytes,
            purpose: meta.purpose,
            created_at: meta.created_at,
            object_path: self.path.clone(),
        };
        let (op, store, backend) = (self.op.clone(), self.store.clone(), self.backend.clone());
        let writer = self.writer.take();
        let in_flight = self.in_flight.take();
        let task = tokio::spawn(async move {
            let _in_flight = in_flight;
            let done = commit(writer, &store, &file, &backend).await;
            if done.is_err() {
                clean_up(op, file.object_path.clone(), None).await;
            }
            done.map(|()| FileObject::from(&file))
        });
        match task.await {
            Ok(done) => done,
            Err(_) => Err(FilesError::Backend {
                backend: self.backend.clone(),
                kind: "the upload task stopped".into(),
            }),
        }
    }
}

async fn commit(
    writer: Option<Writer>,
    store: &Arc<dyn FileStore>,
    file: &StoredFile,
    backend: &str,
) -> Result<(), FilesError> {
    if let Some(mut w) = writer {
        w.close().await.map_err(|e| backend_error(backend, &e))?;
    }
    store.insert(file).await?;
    Ok(())
}

/// Aborts the writer (where the backend can) and deletes the object (which also
/// covers backends that cannot abort, such as `fs`).
async fn clean_up(op: Operator, path: String, writer: Option<Writer>) {
    if let Some(mut w) = writer {
        let _ = w.abort().await;
    }
    if let Err(e) = op.delete(&path).await {
        tracing::warn!(object = %path, kind = %e.kind(), "could not remove the object of a failed upload");
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        let Some(in_flight) = self.in_flight.take() else {
            return;
        };
        let (op, path, writer) = (self.op.clone(), self.path.clone(), self.writer.take());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _in_flight = in_flight;
                clean_up(op, path, writer).await;
            });
        }
    }
}
