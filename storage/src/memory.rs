//! A [`SeriesReader`] over series held in memory: for tests, rule unit
//! tests and anything that evaluates queries over a small, fixed data set.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::Result;
use crate::labels::Labels;
use crate::matcher::Matcher;
use crate::read::{SeriesData, SeriesReader};

/// One series' samples: timestamps, values and start timestamps (0 =
/// unknown), sorted by timestamp.
type Columns = (Vec<i64>, Vec<f64>, Vec<i64>);

/// Series in memory, each with samples sorted by time.
#[derive(Debug, Default, Clone)]
pub struct MemorySeries {
    series: BTreeMap<Arc<Labels>, Columns>,
}

impl MemorySeries {
    /// No series.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds samples to the series `labels`; a sample at a timestamp that
    /// already has one replaces it.
    pub fn add(&mut self, labels: Labels, samples: impl IntoIterator<Item = (i64, f64)>) {
        self.add_with_start(labels, samples.into_iter().map(|(t, v)| (t, v, 0)));
    }

    /// Adds samples `(timestamp, value, start timestamp)` to the series
    /// `labels` (start timestamp 0 = unknown); a sample at a timestamp
    /// that already has one replaces it.
    pub fn add_with_start(&mut self, labels: Labels, samples: impl IntoIterator<Item = (i64, f64, i64)>) {
        let (ts, vs, sts) = self.series.entry(Arc::new(labels)).or_default();
        let mut all: BTreeMap<i64, (f64, i64)> = ts
            .iter()
            .zip(vs.iter())
            .zip(sts.iter())
            .map(|((t, v), st)| (*t, (*v, *st)))
            .collect();
        all.extend(samples.into_iter().map(|(t, v, st)| (t, (v, st))));
        *ts = all.keys().copied().collect();
        *vs = all.values().map(|x| x.0).collect();
        *sts = all.values().map(|x| x.1).collect();
    }

    /// Sets the start timestamps of samples of `labels` already added:
    /// `(timestamp, start timestamp)`; timestamps without a sample are
    /// ignored.
    pub fn set_start_timestamps(&mut self, labels: &Labels, starts: impl IntoIterator<Item = (i64, i64)>) {
        let Some((ts, _, sts)) = self.series.get_mut(labels) else {
            return;
        };
        for (t, st) in starts {
            if let Ok(i) = ts.binary_search(&t) {
                sts[i] = st;
            }
        }
    }

    /// Drops every series.
    pub fn clear(&mut self) {
        self.series.clear();
    }

    fn matching<'a>(&'a self, matchers: &'a [Matcher]) -> impl Iterator<Item = (&'a Arc<Labels>, &'a Columns)> + 'a {
        self.series
            .iter()
            .filter(move |(l, _)| matchers.iter().all(|m| m.matches(l.get(&m.name).unwrap_or(""))))
    }
}

impl MemorySeries {
    fn select_now(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<SeriesData> {
        self.matching(matchers)
            .filter_map(|(l, (ts, vs, sts))| {
                let lo = ts.partition_point(|t| *t < start);
                let hi = ts.partition_point(|t| *t <= end);
                let starts = &sts[lo..hi];
                (lo < hi).then(|| SeriesData {
                    labels: l.clone(),
                    timestamps: ts[lo..hi].to_vec(),
                    values: vs[lo..hi].to_vec(),
                    start_timestamps: if starts.iter().any(|st| *st != 0) {
                        starts.to_vec()
                    } else {
                        Vec::new()
                    },
                })
            })
            .collect()
    }

    fn series_now(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<Arc<Labels>> {
        self.matching(matchers)
            .filter(|(_, (ts, _, _))| ts.iter().any(|t| *t >= start && *t <= end))
            .map(|(l, _)| l.clone())
            .collect()
    }

    fn label_names_now(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<String> {
        let mut names: Vec<String> = self
            .series_now(matchers, start, end)
            .iter()
            .flat_map(|l| l.iter().map(|l| l.name.to_string()).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    fn label_values_now(&self, name: &str, matchers: &[Matcher], start: i64, end: i64) -> Vec<String> {
        let mut values: Vec<String> = self
            .series_now(matchers, start, end)
            .iter()
            .filter_map(|l| l.get(name).map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        values
    }
}

impl SeriesReader for MemorySeries {
    async fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<SeriesData>> {
        Ok(self.select_now(matchers, start, end))
    }

    async fn series(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Arc<Labels>>> {
        Ok(self.series_now(matchers, start, end))
    }

    async fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>> {
        Ok(self.label_names_now(matchers, start, end))
    }

    async fn label_values(&self, name: &str, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>> {
        Ok(self.label_values_now(name, matchers, start, end))
    }
}

/// In-memory series that may be written while queries read them (rule
/// unit tests append rule output between evaluations).
impl SeriesReader for parking_lot::RwLock<MemorySeries> {
    async fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<SeriesData>> {
        Ok(self.read().select_now(matchers, start, end))
    }

    async fn series(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Arc<Labels>>> {
        Ok(self.read().series_now(matchers, start, end))
    }

    async fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>> {
        Ok(self.read().label_names_now(matchers, start, end))
    }

    async fn label_values(&self, name: &str, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>> {
        Ok(self.read().label_values_now(name, matchers, start, end))
    }
}
