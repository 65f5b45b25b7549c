//! The log data model: streams (a tenant and a label set) and their
//! entries (a nanosecond timestamp, a line, structured metadata).

use std::fmt;
use std::sync::Arc;

use crate::labels::Labels;

/// The tenant used when a request names none (Loki's single-tenant id).
pub const DEFAULT_TENANT: &str = "fake";

/// One log line as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Nanoseconds since the Unix epoch.
    pub ts: i64,
    /// The line, as sent.
    pub line: String,
    /// Structured metadata (Loki) or attributes (OTLP): name/value pairs,
    /// sorted by name.
    pub metadata: Vec<(String, String)>,
}

impl LogEntry {
    /// An entry without structured metadata.
    pub fn new(ts: i64, line: impl Into<String>) -> Self {
        LogEntry {
            ts,
            line: line.into(),
            metadata: Vec::new(),
        }
    }

    /// Bytes this entry accounts for in limits and statistics: the line
    /// plus metadata names and values.
    pub fn size(&self) -> usize {
        self.line.len() + self.metadata.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
    }
}

/// A stream's identity: whose it is and its labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    /// The tenant (Loki's `X-Scope-OrgID`).
    pub tenant: String,
    /// The stream labels.
    pub labels: Labels,
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.labels)
    }
}

/// A stream with some of its entries, sorted by timestamp: what writers
/// hand in and readers get back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStream {
    /// Tenant and labels.
    pub key: Arc<StreamKey>,
    /// Entries in timestamp order (equal timestamps in arrival order).
    pub entries: Vec<LogEntry>,
}

/// Stream label pairs as received, not yet validated.
pub type RawLabels = Vec<(String, String)>;

/// One write request: streams of one tenant.
#[derive(Debug, Clone, Default)]
pub struct LogPush {
    /// The tenant every stream belongs to.
    pub tenant: String,
    /// Streams with the label pairs as received (validated on write) and
    /// their entries in any order.
    pub streams: Vec<(RawLabels, Vec<LogEntry>)>,
}
