//! The storage crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in storage, with enough context to act on.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file-system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("open", "fsync", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The block object store failed.
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// Parquet encoding or decoding failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Arrow array handling failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// A block on disk is not what its metadata promises.
    #[error("corrupt block {block}: {reason}")]
    CorruptBlock {
        /// The block id.
        block: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A label matcher could not be built.
    #[error("bad matcher: {0}")]
    BadMatcher(String),
    /// The write-ahead log cannot accept writes (a previous write or fsync
    /// failed); the node must be restarted once the disk is healthy.
    #[error("write-ahead log unavailable: {0}")]
    WalUnavailable(String),
    /// Too much data waits to be flushed; the client should retry later.
    #[error("storage overloaded: {0}")]
    Overloaded(String),
    /// A background task failed (panicked or was cancelled); a bug to report.
    #[error("internal error: {0}")]
    Internal(String),
    /// A source of data (a peer site) did not answer and a complete
    /// answer was required; the message names it.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A read would go past a configured limit; the message names it.
    #[error("{0}")]
    LimitExceeded(String),
    /// The database is shutting down and accepts no more writes.
    #[error("storage is shutting down")]
    ShuttingDown,
}

impl StorageError {
    /// Wraps an I/O error with the operation and path that failed.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Result alias for storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
