//! Counters and gauges of log storage, rendered by the binary's `/metrics`.

use std::sync::Arc;

use crate::stats::{Counter, Gauge, StorageStats};

/// Every metric log storage keeps about itself.
#[derive(Debug, Default)]
pub struct LogStats {
    /// Entries stored.
    pub entries_stored: Counter,
    /// Bytes of lines and metadata stored.
    pub bytes_stored: Counter,
    /// Entries dropped as already stored (retries).
    pub entries_duplicate: Counter,
    /// Entries refused by validation or limits.
    pub entries_rejected: Counter,
    /// Entries in the head.
    pub head_entries: Gauge,
    /// Bytes of lines in the head.
    pub head_bytes: Gauge,
    /// Head cuts to blocks.
    pub head_flushes: Counter,
    /// Block merges.
    pub compactions: Counter,
    /// Blocks deleted by retention.
    pub retention_deletions: Counter,
    /// Blocks open.
    pub blocks: Gauge,
    /// Bytes of block files.
    pub block_bytes: Gauge,
    /// The logs WAL's own figures (fsync latency, bytes, corruptions).
    pub wal: Arc<StorageStats>,
}
