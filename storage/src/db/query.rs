//! Reading: merge the head and the blocks into one view per series.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::Db;
use crate::block::Block;
use crate::error::{Result, StorageError};
use crate::head::Head;
use crate::labels::Labels;
use crate::matcher::Matcher;
use crate::read::{SeriesData, SeriesReader};
use crate::sample::Sample;

/// Merges sample runs of one series given oldest source first: the result
/// is sorted by time and, where sources disagree at a timestamp, the newest
/// source's value wins.
pub(crate) fn merge_sources(mut sources: Vec<Vec<Sample>>) -> Vec<Sample> {
    sources.retain(|s| !s.is_empty());
    match sources.len() {
        0 => Vec::new(),
        1 => sources.pop().unwrap_or_default(),
        _ => {
            // Usual case: time-partitioned blocks and a newer head do not
            // overlap, so the runs only need putting in order.
            let mut order: Vec<usize> = (0..sources.len()).collect();
            order.sort_by_key(|&i| sources[i][0].t);
            let disjoint = order
                .windows(2)
                .all(|w| sources[w[0]].last().map_or(i64::MIN, |s| s.t) < sources[w[1]][0].t);
            if disjoint {
                let mut out = Vec::with_capacity(sources.iter().map(Vec::len).sum());
                for i in order {
                    out.append(&mut sources[i]);
                }
                return out;
            }
            let mut all: Vec<(i64, usize, f64)> = Vec::with_capacity(sources.iter().map(Vec::len).sum());
            for (rank, src) in sources.iter().enumerate() {
                all.extend(src.iter().map(|s| (s.t, rank, s.v)));
            }
            all.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            all.dedup_by_key(|x| x.0);
            all.into_iter().map(|(t, _, v)| Sample::new(t, v)).collect()
        }
    }
}

impl Db {
    fn snapshot(&self) -> (Vec<Arc<Block>>, Vec<Arc<Head>>) {
        let blocks = self.inner.blocks.read().clone();
        let heads = self.inner.heads.read();
        let mut hs = heads.flushing.clone();
        hs.push(heads.active.clone());
        (blocks, hs)
    }

    /// Samples of matching series, as rows; used by `select` and compaction tests.
    pub async fn select_samples(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<(Arc<Labels>, Vec<Sample>)>> {
        let (blocks, heads) = self.snapshot();
        // Keyed by the interned label set's address: every source shares
        // one `Arc` per series, so no label comparison per chunk.
        let mut by_series: HashMap<usize, (Arc<Labels>, Vec<Vec<Sample>>)> = HashMap::new();
        let mut add = |labels: Arc<Labels>, samples: Vec<Sample>| {
            by_series
                .entry(Arc::as_ptr(&labels) as usize)
                .or_insert_with(|| (labels, Vec::new()))
                .1
                .push(samples);
        };
        // Blocks are decoded in parallel (one task each, so every core
        // decodes), then merged in block order, which decides which source
        // wins on equal timestamps.
        let mut tasks = Vec::new();
        for b in blocks.iter().filter(|b| b.meta.overlaps(start, end)) {
            let (b, matchers) = (b.clone(), matchers.to_vec());
            tasks.push(tokio::spawn(async move {
                let ids = b.select_ids(&matchers, start, end).await?;
                b.read_series(&ids, start, end).await
            }));
        }
        for t in tasks {
            let chunks = t
                .await
                .map_err(|e| StorageError::Internal(format!("block read task failed: {e}")))??;
            for chunk in chunks {
                add(chunk.labels, chunk.samples);
            }
        }
        {
            let reg = self.inner.registry.read();
            for r in reg.postings().select(matchers) {
                let Some(labels) = reg.labels(r) else {
                    continue;
                };
                for h in &heads {
                    let mut buf = Vec::new();
                    h.read(r, start, end, &mut buf);
                    if !buf.is_empty() {
                        add(labels.clone(), buf);
                    }
                }
            }
        }
        let mut grouped: Vec<(Arc<Labels>, Vec<Vec<Sample>>)> = by_series.into_values().collect();
        grouped.sort_by(|a, b| a.0.cmp(&b.0));
        // Should a series ever not be interned, its sources still meet here.
        let mut out: Vec<(Arc<Labels>, Vec<Sample>)> = Vec::with_capacity(grouped.len());
        let mut pending: Option<(Arc<Labels>, Vec<Vec<Sample>>)> = None;
        for (labels, sources) in grouped {
            match pending.as_mut() {
                Some((l, s)) if **l == *labels => s.extend(sources),
                _ => {
                    if let Some((l, s)) = pending.replace((labels, sources)) {
                        out.push((l, merge_sources(s)));
                    }
                }
            }
        }
        if let Some((l, s)) = pending {
            out.push((l, merge_sources(s)));
        }
        out.retain(|(_, s)| !s.is_empty());
        Ok(out)
    }

    async fn matching_series(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<BTreeSet<Arc<Labels>>> {
        let (blocks, heads) = self.snapshot();
        let mut out = BTreeSet::new();
        for b in &blocks {
            for id in b.select_ids(matchers, start, end).await? {
                if let Some(s) = b.series(id) {
                    out.insert(s.labels.clone());
                }
            }
        }
        let reg = self.inner.registry.read();
        for r in reg.postings().select(matchers) {
            if heads.iter().any(|h| h.has_samples_in(r, start, end))
                && let Some(l) = reg.labels(r)
            {
                out.insert(l.clone());
            }
        }
        Ok(out)
    }
}

impl SeriesReader for Db {
    async fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<SeriesData>> {
        Ok(self
            .select_samples(matchers, start, end)
            .await?
            .into_iter()
            .map(|(labels, samples)| SeriesData {
                labels,
                timestamps: samples.iter().map(|s| s.t).collect(),
                values: samples.iter().map(|s| s.v).collect(),
            })
            .collect())
    }

    async fn series(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Arc<Labels>>> {
        Ok(self.matching_series(matchers, start, end).await?.into_iter().collect())
    }

    async fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>> {
        let mut names: BTreeSet<String> = BTreeSet::new();
        for l in self.matching_series(matchers, start, end).await? {
            for label in l.iter() {
                if !names.contains(label.name) {
                    names.insert(label.name.to_string());
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    async fn label_values(&self, name: &str, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>> {
        let mut values = BTreeSet::new();
        for l in self.matching_series(matchers, start, end).await? {
            if let Some(v) = l.get(name)
                && !values.contains(v)
            {
                values.insert(v.to_string());
            }
        }
        Ok(values.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_source_wins_on_equal_timestamps() {
        let old = vec![Sample::new(1, 1.0), Sample::new(2, 2.0)];
        let new = vec![Sample::new(2, 20.0), Sample::new(3, 3.0)];
        assert_eq!(
            merge_sources(vec![old, new]),
            vec![Sample::new(1, 1.0), Sample::new(2, 20.0), Sample::new(3, 3.0)]
        );
    }
}
