//! Immutable blocks: one time partition's samples as Parquet files in the
//! object store, with a persisted label index.
//!
//! A block is the directory `blocks/<id>/` holding `samples.parquet`,
//! `index.parquet`, `postings.parquet` and, written last, `meta.json`. A
//! block without `meta.json` is incomplete and is removed at start-up.
//! See `storage/FORMAT.md`.

mod reader;
mod store;
mod writer;

pub use reader::{Block, SeriesChunk};
pub use store::BlockStore;
pub use writer::{BlockWriter, EncodedBlock, WriteOptions};

use serde::{Deserialize, Serialize};

/// Version of the block layout written in every `meta.json`. Version 2
/// stores timestamps as delta-of-delta and integer values as deltas within
/// each series; version 1 (absolute values) is still read.
pub const BLOCK_FORMAT_VERSION: u32 = 2;

/// The oldest block layout this build reads.
pub const OLDEST_READABLE_VERSION: u32 = 1;

/// File names inside a block directory.
pub const SAMPLES_FILE: &str = "samples.parquet";
/// See [`SAMPLES_FILE`].
pub const INDEX_FILE: &str = "index.parquet";
/// See [`SAMPLES_FILE`].
pub const POSTINGS_FILE: &str = "postings.parquet";
/// See [`SAMPLES_FILE`].
pub const META_FILE: &str = "meta.json";

/// What `meta.json` records about a block.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BlockMeta {
    /// Layout version ([`BLOCK_FORMAT_VERSION`]).
    pub version: u32,
    /// The block id; ids sort by creation time, so a later block wins when
    /// two blocks hold different values at the same timestamp.
    pub id: String,
    /// Smallest sample timestamp (ms).
    pub min_t: i64,
    /// Largest sample timestamp (ms).
    pub max_t: i64,
    /// Start of the time partition the block belongs to (ms, inclusive).
    pub partition_start: i64,
    /// End of the time partition (ms, exclusive).
    pub partition_end: i64,
    /// Number of series.
    pub num_series: u64,
    /// Number of samples.
    pub num_samples: u64,
    /// 0 for a block cut from the head, n+1 for a merge of level-n blocks.
    pub level: u32,
    /// Blocks this one was compacted from; any still present are removed
    /// at start-up, since this block holds all their samples.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Sizes of the data files, by name.
    pub files: std::collections::BTreeMap<String, u64>,
}

impl BlockMeta {
    /// Total bytes of the block's files (meta.json excluded).
    pub fn bytes(&self) -> u64 {
        self.files.values().sum()
    }

    /// True when the block may hold samples in `[start, end]`.
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.min_t <= end && self.max_t >= start
    }
}

/// A new block id: creation time in nanoseconds, hex, strictly increasing
/// within the process.
pub fn new_block_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return format!("{next:016x}"),
            Err(p) => prev = p,
        }
    }
}

#[cfg(test)]
mod tests;
