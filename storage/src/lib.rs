//! Sightline storage: the data model (labels, series, samples), the
//! write-ahead log, the in-memory head, immutable Parquet blocks in an
//! object store, compaction and retention.
//!
//! This is the lowest layer: it depends on no other Sightline crate.
//! Writers call [`Db::append`]; readers use the [`SeriesReader`] trait.

#![warn(missing_docs)]

pub mod batch;
pub mod block;
pub mod chunk;
mod db;
pub mod duration;
pub mod error;
pub mod head;
pub mod intern;
pub mod labels;
pub mod logs;
pub mod matcher;
pub mod memory;
pub mod metadata;
pub mod postings;
pub mod read;
pub mod sample;
pub mod stats;
pub mod wal;

pub use batch::{WireLabelsDecoder, WriteBatch, series_key};
pub use db::{AppendReport, Db, DbOptions, Rejection, now_ms};
pub use duration::parse_duration;
pub use error::{Result, StorageError};
pub use labels::{Label, LabelError, LabelLimits, Labels};
pub use matcher::{MatchOp, Matcher};
pub use memory::MemorySeries;
pub use metadata::{MetadataStore, MetricMetadata};
pub use read::{SeriesData, SeriesReader};
pub use sample::{STALE_NAN_BITS, Sample};
