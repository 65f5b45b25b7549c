//! Where block files live: any `object_store` backend, with fsync on the
//! local file system so that a flushed block survives a power cut before
//! the write-ahead log that held its samples is deleted.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{Result, StorageError};

/// The object store holding blocks, plus the local root when it is a
/// directory (for fsync and disk-usage accounting).
#[derive(Clone)]
pub struct BlockStore {
    store: Arc<dyn ObjectStore>,
    local_root: Option<PathBuf>,
}

impl std::fmt::Debug for BlockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlockStore({})", self.store)
    }
}

impl BlockStore {
    /// Blocks under `root` on the local file system.
    pub fn local(root: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&root).map_err(|e| StorageError::io("create dir", &root, e))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&root)?;
        Ok(BlockStore {
            store: Arc::new(store),
            local_root: Some(root),
        })
    }

    /// Blocks in any object store (S3-compatible, in-memory for tests, ...).
    pub fn remote(store: Arc<dyn ObjectStore>) -> Self {
        BlockStore {
            store,
            local_root: None,
        }
    }

    /// The underlying store.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Writes an object and makes it durable before returning.
    pub async fn put_durable(&self, path: &ObjectPath, data: Bytes) -> Result<()> {
        self.store.put(path, PutPayload::from(data)).await?;
        if let Some(root) = &self.local_root {
            let file = root.join(path.as_ref());
            let f = std::fs::File::open(&file).map_err(|e| StorageError::io("open", &file, e))?;
            f.sync_all().map_err(|e| StorageError::io("fsync", &file, e))?;
            if let Some(dir) = file.parent() {
                crate::wal::sync_dir(dir)?;
                if let Some(parent) = dir.parent() {
                    crate::wal::sync_dir(parent)?;
                }
            }
        }
        Ok(())
    }

    /// Moves a fsynced local file into the store as `path`, durably. On the
    /// local file system this is a rename (no copy, no memory); elsewhere
    /// the file is uploaded.
    pub async fn put_file_durable(&self, path: &ObjectPath, file: &std::path::Path) -> Result<()> {
        if let Some(root) = &self.local_root {
            let target = root.join(path.as_ref());
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir).map_err(|e| StorageError::io("create dir", dir, e))?;
            }
            std::fs::rename(file, &target).map_err(|e| StorageError::io("rename", file, e))?;
            if let Some(dir) = target.parent() {
                crate::wal::sync_dir(dir)?;
                if let Some(parent) = dir.parent() {
                    crate::wal::sync_dir(parent)?;
                }
            }
            return Ok(());
        }
        // Remote stores: a plain upload. (Multipart streaming comes with the
        // S3 backend; blocks are bounded by their time partition.)
        let data = std::fs::read(file).map_err(|e| StorageError::io("read", file, e))?;
        self.store.put(path, PutPayload::from(Bytes::from(data))).await?;
        std::fs::remove_file(file).map_err(|e| StorageError::io("remove", file, e))?;
        Ok(())
    }

    /// Reads a whole object.
    pub async fn get(&self, path: &ObjectPath) -> Result<Bytes> {
        Ok(self.store.get(path).await?.bytes().await?)
    }

    /// Lists object paths with their sizes under a prefix.
    pub async fn list(&self, prefix: &ObjectPath) -> Result<Vec<(ObjectPath, u64)>> {
        let metas: Vec<_> = self.store.list(Some(prefix)).try_collect().await?;
        Ok(metas.into_iter().map(|m| (m.location, m.size)).collect())
    }

    /// Removes the (now empty) local directory of a deleted block; object
    /// stores have no directories, so elsewhere this does nothing.
    pub fn remove_local_dir(&self, prefix: &ObjectPath) {
        if let Some(root) = &self.local_root {
            let dir = root.join(prefix.as_ref());
            if let Err(e) = std::fs::remove_dir(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove block directory");
            }
        }
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, path: &ObjectPath) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Reads one Parquet file from a [`BlockStore`] by byte ranges, so only the
/// pages a query needs are fetched (which matters once blocks live in S3).
#[derive(Clone)]
pub struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    size: u64,
}

impl ObjectReader {
    /// A reader for the object at `path`, whose size is known from the
    /// block meta (saving a HEAD request).
    pub fn new(store: &BlockStore, path: ObjectPath, size: u64) -> Self {
        ObjectReader {
            store: store.store.clone(),
            path,
            size,
        }
    }
}

fn parquet_err(e: object_store::Error) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::External(Box::new(e))
}

impl parquet::arrow::async_reader::AsyncFileReader for ObjectReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<Bytes>> {
        Box::pin(async move { self.store.get_range(&self.path, range).await.map_err(parquet_err) })
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        Box::pin(async move { self.store.get_ranges(&self.path, &ranges).await.map_err(parquet_err) })
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a parquet::arrow::arrow_reader::ArrowReaderOptions>,
    ) -> futures::future::BoxFuture<'a, parquet::errors::Result<Arc<parquet::file::metadata::ParquetMetaData>>> {
        Box::pin(async move {
            let size = self.size;
            let meta = parquet::file::metadata::ParquetMetaDataReader::new()
                .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Optional)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(meta))
        })
    }
}
