//! The logs head: recent entries in memory, per stream, in timestamp
//! order, until they are cut into a block.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::model::{LogEntry, LogStream, StreamKey};
use super::select::LogSelect;

/// Recent entries of every stream. Not synchronised: [`super::LogDb`]
/// holds it behind a lock.
pub struct LogHead {
    streams: HashMap<Arc<StreamKey>, Vec<LogEntry>>,
    streams_per_tenant: HashMap<String, usize>,
    bytes: u64,
    entries: u64,
    created: Instant,
}

/// What [`LogHead::insert_all`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// Entries stored.
    pub stored: u64,
    /// Their bytes of lines and metadata.
    pub bytes: u64,
    /// Entries the stream already held, not stored again.
    pub duplicates: u64,
}

/// Where `entry` belongs in `held` (sorted by time, equal times in
/// arrival order), or `None` when `held` has an entry with the same time
/// and line.
fn slot(held: &[LogEntry], entry: &LogEntry) -> Option<usize> {
    // Entries mostly arrive in order: the end, without a search.
    let pos = match held.last() {
        Some(last) if last.ts < entry.ts => held.len(),
        _ => held.partition_point(|e| e.ts <= entry.ts),
    };
    let dup = held[..pos]
        .iter()
        .rev()
        .take_while(|e| e.ts == entry.ts)
        .any(|e| e.line == entry.line);
    (!dup).then_some(pos)
}

impl Default for LogHead {
    fn default() -> Self {
        LogHead {
            streams: HashMap::new(),
            streams_per_tenant: HashMap::new(),
            bytes: 0,
            entries: 0,
            created: Instant::now(),
        }
    }
}

impl LogHead {
    /// The shared key of a stream already held, if any.
    pub fn key(&self, key: &StreamKey) -> Option<Arc<StreamKey>> {
        self.streams.get_key_value(key).map(|(k, _)| k.clone())
    }

    /// Streams of `tenant` held.
    pub fn tenant_streams(&self, tenant: &str) -> usize {
        self.streams_per_tenant.get(tenant).copied().unwrap_or(0)
    }

    /// Drops from `entries` those the stream already holds (retries),
    /// looking the stream up once.
    pub fn retain_new(&self, key: &StreamKey, entries: &mut Vec<LogEntry>) {
        if let Some(held) = self.streams.get(key) {
            entries.retain(|e| slot(held, e).is_some());
        }
    }

    /// Inserts `entry` in timestamp order; false (and nothing stored) when
    /// the stream already has an entry with the same timestamp and line
    /// (a retried push), as Loki does.
    pub fn insert(&mut self, key: &Arc<StreamKey>, entry: LogEntry) -> bool {
        self.insert_all(key, vec![entry]).stored == 1
    }

    /// Inserts every entry as [`LogHead::insert`] does, looking the stream
    /// up once (a push carries many entries per stream).
    pub fn insert_all(&mut self, key: &Arc<StreamKey>, entries: Vec<LogEntry>) -> Inserted {
        let mut done = Inserted::default();
        if entries.is_empty() {
            return done;
        }
        let held = match self.streams.get_mut(key) {
            Some(e) => e,
            None => {
                *self.streams_per_tenant.entry(key.tenant.clone()).or_default() += 1;
                self.streams.entry(key.clone()).or_default()
            }
        };
        for entry in entries {
            match slot(held, &entry) {
                Some(pos) => {
                    let size = entry.size() as u64;
                    done.stored += 1;
                    done.bytes += size;
                    held.insert(pos, entry);
                }
                None => done.duplicates += 1,
            }
        }
        self.bytes += done.bytes;
        self.entries += done.stored;
        done
    }

    /// Bytes of lines and metadata held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Entries held.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// When this head started.
    pub fn created(&self) -> Instant {
        self.created
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Every stream, sorted by tenant then labels, with its entries.
    pub fn sorted_streams(&self) -> Vec<(&Arc<StreamKey>, &[LogEntry])> {
        let mut v: Vec<_> = self.streams.iter().map(|(k, e)| (k, e.as_slice())).collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// Adds the entries `q` selects to `out`.
    pub fn select(&self, q: &LogSelect, out: &mut Vec<LogStream>) {
        let mut matcher = q.stream_matcher();
        let lines = q.line_matcher();
        for (key, entries) in &self.streams {
            if !matcher.matches(key) {
                continue;
            }
            let from = entries.partition_point(|e| e.ts < q.start);
            let to = entries.partition_point(|e| e.ts < q.end);
            let picked: Vec<LogEntry> = entries[from..to]
                .iter()
                .filter(|e| lines.matches(&e.line))
                .map(|e| {
                    if q.skip_lines {
                        LogEntry {
                            ts: e.ts,
                            line: String::new(),
                            metadata: e.metadata.clone(),
                        }
                    } else {
                        e.clone()
                    }
                })
                .collect();
            if !picked.is_empty() {
                out.push(LogStream {
                    key: key.clone(),
                    entries: picked,
                });
            }
        }
    }

    /// The keys of streams `q` selects that have an entry in its range.
    pub fn stream_keys(&self, q: &LogSelect, out: &mut Vec<Arc<StreamKey>>) {
        let mut matcher = q.stream_matcher();
        for (key, entries) in &self.streams {
            if matcher.matches(key) && entries.iter().any(|e| e.ts >= q.start && e.ts < q.end) {
                out.push(key.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;

    fn key() -> Arc<StreamKey> {
        Arc::new(StreamKey {
            tenant: "t".into(),
            labels: Labels::from_pairs([("app", "a")]),
        })
    }

    #[test]
    fn entries_stay_in_order_and_retries_are_stored_once() {
        let mut h = LogHead::default();
        let k = key();
        assert!(h.insert(&k, LogEntry::new(20, "b")));
        assert!(h.insert(&k, LogEntry::new(10, "a")));
        assert!(h.insert(&k, LogEntry::new(20, "c")), "same time, other line");
        assert!(!h.insert(&k, LogEntry::new(20, "b")), "a retry");
        assert!(!h.insert(&k, LogEntry::new(10, "a")), "a retry");
        let got: Vec<_> = h.sorted_streams()[0]
            .1
            .iter()
            .map(|e| (e.ts, e.line.as_str()))
            .collect();
        assert_eq!(got, vec![(10, "a"), (20, "b"), (20, "c")]);
        assert_eq!(h.entries(), 3);
        assert_eq!(h.tenant_streams("t"), 1);
    }

    #[test]
    fn a_batch_keeps_only_what_the_stream_lacks_and_lands_in_order() {
        let mut h = LogHead::default();
        let k = key();
        h.insert(&k, LogEntry::new(10, "a"));
        h.insert(&k, LogEntry::new(30, "c"));
        let mut batch = vec![
            LogEntry::new(10, "a"),
            LogEntry::new(20, "b"),
            LogEntry::new(30, "c"),
            LogEntry::new(40, "d"),
        ];
        h.retain_new(&k, &mut batch);
        let kept: Vec<i64> = batch.iter().map(|e| e.ts).collect();
        assert_eq!(kept, vec![20, 40], "the retried entries dropped");
        batch.push(LogEntry::new(40, "d"));
        let done = h.insert_all(&k, batch);
        assert_eq!(
            (done.stored, done.duplicates),
            (2, 1),
            "a repeat within the batch stored once"
        );
        assert_eq!(done.bytes, 2);
        let got: Vec<_> = h.sorted_streams()[0].1.iter().map(|e| e.ts).collect();
        assert_eq!(got, vec![10, 20, 30, 40]);
        assert_eq!((h.entries(), h.bytes()), (4, 4));
        assert_eq!(h.insert_all(&key(), Vec::new()), Inserted::default());
    }
}
