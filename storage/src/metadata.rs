//! Metric metadata (type, help, unit) as clients send it with their
//! samples: remote write 1.0 `metadata`, remote write 2.0 per-series
//! metadata, OTLP metric descriptions. Served by `/api/v1/metadata`.
//!
//! Held in memory and saved to `metadata.json` when the database closes;
//! after a crash it comes back as clients resend it (Prometheus sends
//! metadata every minute).

use std::collections::BTreeMap;
use std::path::Path;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};

/// Most distinct metadata entries kept per metric name.
const MAX_PER_METRIC: usize = 10;

/// One metadata entry, in Prometheus' API spelling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricMetadata {
    /// `counter`, `gauge`, `histogram`, `gaugehistogram`, `summary`,
    /// `info`, `stateset` or `unknown`.
    #[serde(rename = "type")]
    pub metric_type: String,
    /// The help text.
    pub help: String,
    /// The unit, often empty.
    pub unit: String,
}

/// Metadata by metric name.
#[derive(Debug, Default)]
pub struct MetadataStore {
    by_metric: RwLock<BTreeMap<String, Vec<MetricMetadata>>>,
}

impl MetadataStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `md` for `metric`; the newest entry comes first and at most
    /// ten distinct entries are kept per name.
    pub fn record(&self, metric: &str, md: MetricMetadata) {
        if metric.is_empty() {
            return;
        }
        {
            let map = self.by_metric.read();
            if map.get(metric).and_then(|v| v.first()) == Some(&md) {
                return;
            }
        }
        let mut map = self.by_metric.write();
        let list = map.entry(metric.to_string()).or_default();
        list.retain(|m| *m != md);
        list.insert(0, md);
        list.truncate(MAX_PER_METRIC);
    }

    /// Entries for `metric` (all metrics when `None`): at most `limit`
    /// metrics and `limit_per_metric` entries each (0 = no limit).
    pub fn query(
        &self,
        metric: Option<&str>,
        limit: usize,
        limit_per_metric: usize,
    ) -> BTreeMap<String, Vec<MetricMetadata>> {
        let map = self.by_metric.read();
        let take = |v: &Vec<MetricMetadata>| -> Vec<MetricMetadata> {
            let n = if limit_per_metric == 0 {
                v.len()
            } else {
                limit_per_metric
            };
            v.iter().take(n).cloned().collect()
        };
        match metric {
            Some(m) => map.get(m).map(|v| (m.to_string(), take(v))).into_iter().collect(),
            None => {
                let n = if limit == 0 { map.len() } else { limit };
                map.iter().take(n).map(|(k, v)| (k.clone(), take(v))).collect()
            }
        }
    }

    /// Writes the store to `path` (atomically, via a temporary file).
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec(&*self.by_metric.read())
            .map_err(|e| StorageError::io("encode", path, std::io::Error::other(e)))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json).map_err(|e| StorageError::io("write", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| StorageError::io("rename", path, e))
    }

    /// Loads a store saved by [`Self::save`]; a missing file is an empty
    /// store, an unreadable one is skipped with a warning (metadata is
    /// resent by clients, so it is never worth refusing to start).
    pub fn load(path: &Path) -> Self {
        let store = Self::new();
        match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(map) => *store.by_metric.write() = map,
                Err(e) => tracing::warn!("ignoring unreadable metadata file {}: {e}", path.display()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot read metadata file {}: {e}", path.display()),
        }
        store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(t: &str, help: &str) -> MetricMetadata {
        MetricMetadata {
            metric_type: t.into(),
            help: help.into(),
            unit: String::new(),
        }
    }

    #[test]
    fn newest_first_without_duplicates_and_survives_a_save() {
        let s = MetadataStore::new();
        s.record("up", md("gauge", "old"));
        s.record("up", md("gauge", "new"));
        s.record("up", md("gauge", "new"));
        s.record("x_total", md("counter", "x"));
        let q = s.query(Some("up"), 0, 0);
        assert_eq!(q["up"], vec![md("gauge", "new"), md("gauge", "old")]);
        assert_eq!(s.query(None, 1, 1).len(), 1);
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("metadata.json");
        s.save(&p).expect("save");
        assert_eq!(MetadataStore::load(&p).query(None, 0, 0), s.query(None, 0, 0));
        assert!(
            MetadataStore::load(&dir.path().join("none.json"))
                .query(None, 0, 0)
                .is_empty()
        );
    }
}
