//! The inventory: a lasting memory of what should be reporting. Every
//! interval it asks which targets report (by default the `site`,
//! `cluster` and `instance` of every `up` series), remembers each with the
//! last time it was seen, and writes one series per remembered target,
//! `sightline_inventory{site,cluster,instance}` = last seen (Unix
//! seconds), until the target is retired explicitly or has been silent
//! longer than the retention.
//!
//! Rules compare it with what reports now, so a silent node, cluster or
//! site keeps alerting until it really reports again — unlike the usual
//! `up offset 1h unless up`, which forgets a dark site after an hour and
//! then sends a false "resolved".

use std::collections::BTreeMap;
use std::path::PathBuf;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::am::matcher::{Matcher, all_match};
use crate::rule::{AppendFn, Labels, OutputSample, QueryFn, STALE_NAN};

/// The series name the inventory writes.
pub const METRIC: &str = "sightline_inventory";

/// Settings.
#[derive(Debug, Clone)]
pub struct InventoryOptions {
    /// The series whose presence means "reporting" (a PromQL selector).
    pub source: String,
    /// The labels that identify a target.
    pub labels: Vec<String>,
    /// How often to look (ms).
    pub interval: i64,
    /// Forget targets silent for longer than this (ms).
    pub retention: i64,
}

impl Default for InventoryOptions {
    fn default() -> Self {
        InventoryOptions {
            source: "up".into(),
            labels: vec!["site".into(), "cluster".into(), "instance".into()],
            interval: 15_000,
            retention: 7 * 86_400_000,
        }
    }
}

/// What is known about one target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    /// First seen (ms).
    pub first: i64,
    /// Last seen (ms).
    pub last: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    targets: Vec<(Labels, Seen)>,
}

/// The inventory.
pub struct Inventory {
    opts: InventoryOptions,
    path: Option<PathBuf>,
    targets: Mutex<BTreeMap<Labels, Seen>>,
    /// Retired targets whose series still need a staleness marker.
    retired: Mutex<Vec<Labels>>,
}

fn series_labels(target: &Labels) -> Labels {
    let mut l = target.clone();
    l.insert("__name__".into(), METRIC.into());
    l
}

impl Inventory {
    /// Loads the saved inventory from `path` (if any).
    pub fn new(opts: InventoryOptions, path: Option<PathBuf>) -> Self {
        let targets = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| match serde_json::from_slice::<FileFormat>(&b) {
                Ok(f) => Some(f.targets.into_iter().collect()),
                Err(e) => {
                    tracing::warn!(error = %e, "inventory file unreadable; starting empty");
                    None
                }
            })
            .unwrap_or_default();
        Inventory {
            opts,
            path,
            targets: Mutex::new(targets),
            retired: Mutex::new(Vec::new()),
        }
    }

    /// The settings.
    pub fn options(&self) -> &InventoryOptions {
        &self.opts
    }

    /// The query that finds reporting targets.
    pub fn query(&self) -> String {
        format!("count by ({}) ({})", self.opts.labels.join(", "), self.opts.source)
    }

    /// One round at `ts`: record who reports, forget the long silent,
    /// write the inventory series.
    pub async fn refresh(&self, ts: i64, query: &QueryFn, append: &AppendFn) -> Result<usize, String> {
        let reporting = query(self.query(), ts).await?;
        let out = {
            let mut targets = self.targets.lock();
            for s in reporting {
                // Only targets carrying every identifying label.
                if self
                    .opts
                    .labels
                    .iter()
                    .all(|l| s.labels.get(l).is_some_and(|v| !v.is_empty()))
                {
                    targets
                        .entry(s.labels)
                        .and_modify(|seen| seen.last = seen.last.max(ts))
                        .or_insert(Seen { first: ts, last: ts });
                }
            }
            let mut out = Vec::with_capacity(targets.len());
            let horizon = ts - self.opts.retention;
            targets.retain(|l, seen| {
                if seen.last < horizon {
                    out.push(OutputSample {
                        labels: series_labels(l),
                        t: ts,
                        v: STALE_NAN,
                    });
                    false
                } else {
                    true
                }
            });
            for (l, seen) in targets.iter() {
                out.push(OutputSample {
                    labels: series_labels(l),
                    t: ts,
                    v: (seen.last / 1000) as f64,
                });
            }
            for l in self.retired.lock().drain(..) {
                out.push(OutputSample {
                    labels: series_labels(&l),
                    t: ts,
                    v: STALE_NAN,
                });
            }
            out
        };
        let n = out.len();
        self.save();
        if !out.is_empty() {
            append(out).await?;
        }
        Ok(n)
    }

    /// Forgets the targets matching every matcher; returns how many.
    pub fn retire(&self, matchers: &[Matcher]) -> usize {
        let mut targets = self.targets.lock();
        let gone: Vec<Labels> = targets.keys().filter(|l| all_match(matchers, l)).cloned().collect();
        for l in &gone {
            targets.remove(l);
        }
        drop(targets);
        let n = gone.len();
        self.retired.lock().extend(gone);
        self.save();
        n
    }

    /// Every remembered target.
    pub fn list(&self) -> Vec<(Labels, Seen)> {
        self.targets.lock().iter().map(|(l, s)| (l.clone(), *s)).collect()
    }

    fn save(&self) {
        let Some(path) = &self.path else { return };
        let file = FileFormat {
            version: 1,
            targets: self.list(),
        };
        let result = crate::persist::write_json_atomic(path, &file);
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "cannot save the inventory");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::rule::Sample;

    fn target(site: &str, cluster: &str, instance: &str) -> Labels {
        [("site", site), ("cluster", cluster), ("instance", instance)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn remembers_silent_targets_until_retention_or_retirement() {
        let reporting = Arc::new(Mutex::new(vec![target("fra", "c1", "n1"), target("fra", "c1", "n2")]));
        let written = Arc::new(Mutex::new(Vec::<OutputSample>::new()));
        let r = reporting.clone();
        let query: QueryFn = Arc::new(move |q, _| {
            assert_eq!(q, "count by (site, cluster, instance) (up)");
            let s: Vec<Sample> = r
                .lock()
                .iter()
                .map(|l| Sample {
                    labels: l.clone(),
                    value: 1.0,
                })
                .collect();
            Box::pin(async move { Ok(s) })
        });
        let w = written.clone();
        let append: AppendFn = Arc::new(move |s| {
            w.lock().extend(s);
            Box::pin(async { Ok(()) })
        });
        let dir = tempfile::tempdir().unwrap();
        let opts = InventoryOptions {
            retention: 60_000,
            ..Default::default()
        };
        let inv = Inventory::new(opts.clone(), Some(dir.path().join("inv.json")));
        inv.refresh(1_000_000, &query, &append).await.unwrap();
        // n2 goes silent: still remembered, with its last-seen time.
        reporting.lock().pop();
        written.lock().clear();
        inv.refresh(1_030_000, &query, &append).await.unwrap();
        let w = written.lock().clone();
        assert_eq!(w.len(), 2);
        let n2 = w.iter().find(|s| s.labels["instance"] == "n2").unwrap();
        assert_eq!((n2.v, n2.labels["__name__"].as_str()), (1000.0, METRIC));
        // Survives a restart.
        let again = Inventory::new(opts, Some(dir.path().join("inv.json")));
        assert_eq!(again.list().len(), 2);
        // Past retention: forgotten, with a staleness marker.
        written.lock().clear();
        inv.refresh(1_061_000, &query, &append).await.unwrap();
        let w = written.lock().clone();
        assert!(w.iter().any(|s| s.labels["instance"] == "n2" && s.v.is_nan()));
        assert_eq!(inv.list().len(), 1);
        // Retired explicitly.
        let n = inv.retire(&[Matcher::parse("cluster=c1").unwrap()]);
        assert_eq!(n, 1);
        reporting.lock().clear();
        written.lock().clear();
        inv.refresh(1_070_000, &query, &append).await.unwrap();
        assert!(written.lock().iter().all(|s| s.v.is_nan()));
        assert!(inv.list().is_empty());
    }
}
