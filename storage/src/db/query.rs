//! Reading: merge the head and the blocks into one view per series.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
            let mut all: Vec<(usize, Sample)> = Vec::with_capacity(sources.iter().map(Vec::len).sum());
            for (rank, src) in sources.iter().enumerate() {
                all.extend(src.iter().map(|s| (rank, *s)));
            }
            all.sort_by(|a, b| a.1.t.cmp(&b.1.t).then(b.0.cmp(&a.0)));
            all.dedup_by_key(|x| x.1.t);
            all.into_iter().map(|(_, s)| s).collect()
        }
    }
}

/// Where one series of a batched read is stored.
#[derive(Default)]
struct BatchSources {
    /// (index into the read's block list, series id in that block).
    blocks: Vec<(usize, u32)>,
    /// The series' reference in the head registry, when a head has samples.
    head: Option<crate::head::SeriesRef>,
    /// Samples expected, to size batches.
    estimate: usize,
}

/// Samples a head is assumed to hold per series when sizing batches (a
/// head covers minutes, not hours).
const HEAD_SAMPLES_ESTIMATE: usize = 64;

fn series_data(labels: Arc<Labels>, samples: &[Sample]) -> SeriesData {
    SeriesData {
        labels,
        timestamps: samples.iter().map(|s| s.t).collect(),
        values: samples.iter().map(|s| s.v).collect(),
        start_timestamps: if samples.iter().any(|s| s.st != 0) {
            samples.iter().map(|s| s.st).collect()
        } else {
            Vec::new()
        },
    }
}

/// Reads the samples of one batch of series from the blocks (a task per
/// block, decoding only the pages holding the batch's rows) and the heads
/// (a task of their own), and merges each series' sources.
async fn read_batch(
    blocks: &[Arc<Block>],
    heads: &[Arc<Head>],
    series: Vec<(Arc<Labels>, BatchSources)>,
    start: i64,
    end: i64,
) -> Result<Vec<(Arc<Labels>, Vec<Sample>)>> {
    let mut ids: Vec<Vec<u32>> = vec![Vec::new(); blocks.len()];
    for (_, s) in &series {
        for (bi, id) in &s.blocks {
            ids[*bi].push(*id);
        }
    }
    let head_task = {
        let heads = heads.to_vec();
        let refs: Vec<Option<crate::head::SeriesRef>> = series.iter().map(|(_, s)| s.head).collect();
        tokio::spawn(async move {
            refs.into_iter()
                .map(|r| {
                    let Some(r) = r else { return Vec::new() };
                    heads
                        .iter()
                        .map(|h| {
                            let mut buf = Vec::new();
                            h.read(r, start, end, &mut buf);
                            buf
                        })
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        })
    };
    let mut tasks = Vec::new();
    for (bi, mut block_ids) in ids.into_iter().enumerate() {
        if block_ids.is_empty() {
            continue;
        }
        block_ids.sort_unstable();
        let b = blocks[bi].clone();
        tasks.push(tokio::spawn(async move { b.read_series(&block_ids, start, end).await }));
    }
    // Sources per series, oldest block first (block order decides which
    // source wins on equal timestamps), heads last.
    let mut by_series: HashMap<Arc<Labels>, Vec<Vec<Sample>>> = HashMap::with_capacity(series.len());
    for t in tasks {
        let chunks = t
            .await
            .map_err(|e| StorageError::Internal(format!("block read task failed: {e}")))??;
        for chunk in chunks {
            by_series.entry(chunk.labels).or_default().push(chunk.samples);
        }
    }
    let head_samples = head_task
        .await
        .map_err(|e| StorageError::Internal(format!("head read task failed: {e}")))?;
    let mut out = Vec::with_capacity(series.len());
    for ((labels, _), from_heads) in series.into_iter().zip(head_samples) {
        let mut sources = by_series.remove(&labels).unwrap_or_default();
        sources.extend(from_heads);
        let samples = merge_sources(sources);
        if !samples.is_empty() {
            out.push((labels, samples));
        }
    }
    Ok(out)
}

impl Db {
    fn snapshot(&self) -> (Vec<Arc<Block>>, Vec<Arc<Head>>) {
        let blocks = self.inner.blocks.read().clone();
        let heads = self.inner.heads.read();
        let mut hs = heads.flushing.clone();
        hs.push(heads.active.clone());
        (blocks, hs)
    }

    /// Samples of matching series, as rows, sorted by labels.
    pub async fn select_samples(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<(Arc<Labels>, Vec<Sample>)>> {
        let (blocks, heads, series) = self.plan_read(matchers, start, end).await?;
        read_batch(&blocks, &heads, series, start, end).await
    }

    /// Every matching series with where it is stored, in label order,
    /// from the indexes alone (no samples read).
    async fn plan_read(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<(Vec<Arc<Block>>, Vec<Arc<Head>>, Vec<(Arc<Labels>, BatchSources)>)> {
        let (blocks, heads) = self.snapshot();
        let blocks: Vec<Arc<Block>> = blocks.into_iter().filter(|b| b.meta.overlaps(start, end)).collect();
        let mut plan: BTreeMap<Arc<Labels>, BatchSources> = BTreeMap::new();
        for (bi, b) in blocks.iter().enumerate() {
            for id in b.select_ids(matchers, start, end).await? {
                if let Some(s) = b.series(id) {
                    let e = plan.entry(s.labels.clone()).or_default();
                    e.blocks.push((bi, id));
                    e.estimate += s.row_count as usize;
                }
            }
        }
        {
            let reg = self.inner.registry.read();
            for r in reg.postings().select(matchers) {
                if heads.iter().any(|h| h.has_samples_in(r, start, end))
                    && let Some(labels) = reg.labels(r)
                {
                    let e = plan.entry(labels.clone()).or_default();
                    e.head = Some(r);
                    e.estimate += HEAD_SAMPLES_ESTIMATE;
                }
            }
        }
        Ok((blocks, heads, plan.into_iter().collect()))
    }

    async fn matching_series(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Arc<Labels>>> {
        let (_, _, series) = self.plan_read(matchers, start, end).await?;
        Ok(series.into_iter().map(|(labels, _)| labels).collect())
    }
}

impl SeriesReader for Db {
    async fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<SeriesData>> {
        Ok(self
            .select_samples(matchers, start, end)
            .await?
            .into_iter()
            .map(|(labels, samples)| series_data(labels, &samples))
            .collect())
    }

    async fn select_batches(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        batch_samples: usize,
        out: tokio::sync::mpsc::Sender<Vec<SeriesData>>,
    ) -> Result<()> {
        // The matching series are listed from the indexes first, then each
        // batch is read and sent.
        let (blocks, heads, series) = self.plan_read(matchers, start, end).await?;
        let mut pending: Vec<(Arc<Labels>, BatchSources)> = Vec::new();
        let mut pending_samples = 0usize;
        let mut entries = series.into_iter().peekable();
        while let Some((labels, sources)) = entries.next() {
            pending_samples += sources.estimate;
            pending.push((labels, sources));
            if pending_samples < batch_samples.max(1) && entries.peek().is_some() {
                continue;
            }
            pending_samples = 0;
            let batch: Vec<SeriesData> = read_batch(&blocks, &heads, std::mem::take(&mut pending), start, end)
                .await?
                .into_iter()
                .map(|(labels, samples)| series_data(labels, &samples))
                .collect();
            if !batch.is_empty() && out.send(batch).await.is_err() {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn series(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Arc<Labels>>> {
        self.matching_series(matchers, start, end).await
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
