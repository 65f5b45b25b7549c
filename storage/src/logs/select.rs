//! What a log read asks for, and the checks every source applies the same
//! way (head, blocks being written, blocks on disk).

use crate::matcher::Matcher;

use super::model::StreamKey;

/// A read of log entries.
#[derive(Debug, Clone)]
pub struct LogSelect {
    /// Only this tenant's streams.
    pub tenant: String,
    /// Stream label matchers; all must match (a missing label is "").
    pub matchers: Vec<Matcher>,
    /// First nanosecond included.
    pub start: i64,
    /// First nanosecond excluded.
    pub end: i64,
    /// Every returned line contains each of these, case-sensitively (the
    /// leading `|=` filters of a LogQL query; blocks answer them from
    /// their full-text index).
    pub contains: Vec<String>,
    /// Stop with [`crate::StorageError::LimitExceeded`] once this many
    /// bytes of lines were read (0: no limit).
    pub max_bytes: u64,
    /// The caller needs times, streams and metadata only: entries may come
    /// with empty lines (block reads then skip the line column).
    pub skip_lines: bool,
}

impl LogSelect {
    /// A read of every entry of `tenant`'s streams matching `matchers` in
    /// `[start, end)`.
    pub fn new(tenant: impl Into<String>, matchers: Vec<Matcher>, start: i64, end: i64) -> Self {
        LogSelect {
            tenant: tenant.into(),
            matchers,
            start,
            end,
            contains: Vec::new(),
            max_bytes: 0,
            skip_lines: false,
        }
    }

    /// True when the stream belongs to the tenant and its labels match.
    pub fn matches_stream(&self, key: &StreamKey) -> bool {
        key.tenant == self.tenant
            && self
                .matchers
                .iter()
                .all(|m| m.matches(key.labels.get(&m.name).unwrap_or("")))
    }

    /// True when `line` contains every needle.
    pub fn matches_line(&self, line: &str) -> bool {
        self.contains.iter().all(|n| line.contains(n.as_str()))
    }

    /// True when `[min_t, max_t]` overlaps the range.
    pub fn overlaps(&self, min_t: i64, max_t: i64) -> bool {
        min_t < self.end && max_t >= self.start
    }
}

/// What the query side needs of log storage: the narrow read interface,
/// so a querier can later read blocks from an object store instead.
pub trait LogReader: Send + Sync {
    /// Every entry `q` selects, stream by stream, in time order.
    fn select(&self, q: &LogSelect) -> crate::Result<Vec<super::LogStream>>;
    /// Keys of the streams `q` selects that have entries in its range.
    fn stream_keys(&self, q: &LogSelect) -> Vec<std::sync::Arc<StreamKey>>;
    /// Entries as they are stored, for live tailing; `None` when this
    /// reader has no live source (e.g. blocks in an object store).
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<super::TailBatch>> {
        None
    }
}
