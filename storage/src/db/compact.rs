//! Compaction (merging the blocks of a partition) and retention.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use object_store::path::Path as ObjectPath;

use super::open::remove_files;
use super::query::merge_sources;
use super::{Db, dur_ms, now_ms};
use crate::block::{
    Block, BlockWriter, INDEX_FILE, META_FILE, POSTINGS_FILE, SAMPLES_FILE, WriteOptions, new_block_id,
};
use crate::error::Result;
use crate::labels::Labels;
use crate::sample::Sample;

/// Where one series lives in the blocks being merged: (block index, id).
type Locations = Vec<(usize, u32)>;

/// Samples read from the source blocks per merge step; bounds memory.
const MERGE_BATCH_SAMPLES: u64 = 1_000_000;

impl Db {
    /// Chooses the next set of blocks to merge, if any.
    ///
    /// A partition that can no longer receive samples (its end is older
    /// than the out-of-order window behind the newest sample) is merged
    /// into one block. A partition still being written merges
    /// `compaction_fan_in` blocks of the same level at a time, so that
    /// recent data is not rewritten over and over.
    fn plan_compaction(&self) -> Option<Vec<Arc<Block>>> {
        let blocks = self.inner.blocks.read().clone();
        let max_t = self.inner.max_t.load(Ordering::Relaxed);
        let settled_before = max_t.saturating_sub(dur_ms(self.inner.opts.out_of_order_window));
        let mut by_partition: BTreeMap<i64, Vec<Arc<Block>>> = BTreeMap::new();
        for b in blocks {
            by_partition.entry(b.meta.partition_start).or_default().push(b);
        }
        for (_, group) in by_partition {
            if group.len() < 2 {
                continue;
            }
            if group[0].meta.partition_end <= settled_before {
                return Some(group);
            }
            let mut by_level: BTreeMap<u32, Vec<Arc<Block>>> = BTreeMap::new();
            for b in group {
                by_level.entry(b.meta.level).or_default().push(b);
            }
            let fan_in = self.inner.opts.compaction_fan_in.max(2);
            if let Some((_, set)) = by_level.into_iter().find(|(_, v)| v.len() >= fan_in) {
                return Some(set);
            }
        }
        None
    }

    /// Merges blocks until no plan is left.
    pub async fn compact(&self) -> Result<()> {
        let _compaction = self.inner.compaction_lock.lock().await;
        while let Some(set) = self.plan_compaction() {
            self.merge_blocks(&set).await?;
        }
        Ok(())
    }

    /// Writes one block holding every sample of `sources` (duplicates
    /// collapsed, the newest block winning), then swaps it in and deletes
    /// the sources.
    async fn merge_blocks(&self, sources: &[Arc<Block>]) -> Result<()> {
        let inner = &*self.inner;
        let started = std::time::Instant::now();
        let mut series: BTreeMap<Arc<Labels>, Locations> = BTreeMap::new();
        for (bi, b) in sources.iter().enumerate() {
            for (id, s) in b.all_series().iter().enumerate() {
                series.entry(s.labels.clone()).or_default().push((bi, id as u32));
            }
        }
        let first = &sources[0].meta;
        let id = new_block_id();
        let staging = inner.opts.data_dir.join("staging").join(format!("{id}.{SAMPLES_FILE}"));
        let mut writer = BlockWriter::new_staged(
            WriteOptions {
                zstd_level: inner.opts.zstd_level,
                partition_start: first.partition_start,
                partition_end: first.partition_end,
                level: sources.iter().map(|b| b.meta.level).max().unwrap_or(0) + 1,
            },
            staging.clone(),
        )?;
        let entries: Vec<(Arc<Labels>, Locations)> = series.into_iter().collect();
        let mut i = 0;
        while i < entries.len() {
            // Take series until the batch holds enough samples.
            let mut j = i;
            let mut budget = 0u64;
            while j < entries.len() && (j == i || budget < MERGE_BATCH_SAMPLES) {
                for (bi, id) in &entries[j].1 {
                    budget += sources[*bi].series(*id).map_or(0, |s| u64::from(s.row_count));
                }
                j += 1;
            }
            let mut per_block: Vec<Vec<u32>> = vec![Vec::new(); sources.len()];
            for (_, locs) in &entries[i..j] {
                for (bi, id) in locs {
                    per_block[*bi].push(*id);
                }
            }
            let mut read: BTreeMap<Arc<Labels>, Vec<Vec<Sample>>> = BTreeMap::new();
            for (bi, ids) in per_block.iter_mut().enumerate() {
                ids.sort_unstable();
                for chunk in sources[bi].read_series(ids, i64::MIN, i64::MAX).await? {
                    read.entry(chunk.labels).or_default().push(chunk.samples);
                }
            }
            for (labels, runs) in read {
                writer.add_series(labels, &merge_sources(runs))?;
            }
            i = j;
        }
        let Some(encoded) = writer.finish()? else {
            let _ = std::fs::remove_file(&staging);
            return Ok(());
        };
        let source_ids: Vec<String> = sources.iter().map(|b| b.meta.id.clone()).collect();
        let merged = Arc::new(encoded.persist_and_open(&inner.store, &id, source_ids.clone()).await?);
        let (samples_in, samples_out) = (
            sources.iter().map(|b| b.meta.num_samples).sum::<u64>(),
            merged.meta.num_samples,
        );
        {
            let mut blocks = inner.blocks.write();
            blocks.retain(|b| !source_ids.contains(&b.meta.id));
            blocks.push(merged);
            blocks.sort_by(|a, b| a.meta.id.cmp(&b.meta.id));
        }
        wait_for_readers(sources).await;
        for sid in &source_ids {
            delete_block(&inner.store, sid).await?;
        }
        inner.stats.compactions.inc();
        inner.interner.collect_garbage();
        self.refresh_gauges();
        tracing::info!(
            block = %id,
            sources = source_ids.len(),
            samples_in,
            samples_out,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "blocks compacted"
        );
        Ok(())
    }

    /// Deletes every block whose newest sample is older than the retention.
    pub async fn apply_retention(&self) -> Result<()> {
        let _compaction = self.inner.compaction_lock.lock().await;
        let cutoff = now_ms().saturating_sub(dur_ms(self.inner.opts.retention));
        let expired_blocks: Vec<Arc<Block>> = self
            .inner
            .blocks
            .read()
            .iter()
            .filter(|b| b.meta.max_t < cutoff)
            .cloned()
            .collect();
        if expired_blocks.is_empty() {
            return Ok(());
        }
        let expired: BTreeSet<String> = expired_blocks.iter().map(|b| b.meta.id.clone()).collect();
        self.inner.blocks.write().retain(|b| !expired.contains(&b.meta.id));
        wait_for_readers(&expired_blocks).await;
        drop(expired_blocks);
        for id in &expired {
            delete_block(&self.inner.store, id).await?;
            self.inner.stats.retention_deletions.inc();
            tracing::info!(block = %id, "block deleted by retention");
        }
        self.refresh_gauges();
        Ok(())
    }
}

/// Longest a deletion waits for the queries still reading a block.
const READER_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Waits until no query holds any of `blocks` (beyond the caller's own
/// reference), so that deleting their files cannot cut a running read
/// short — a streamed query reads a block batch by batch, long after it
/// took its snapshot. Gives up after [`READER_WAIT`] (a query's timeout).
async fn wait_for_readers(blocks: &[Arc<Block>]) {
    let deadline = std::time::Instant::now() + READER_WAIT;
    while blocks.iter().any(|b| Arc::strong_count(b) > 1) {
        if std::time::Instant::now() >= deadline {
            tracing::warn!("deleting blocks still held by a query after {READER_WAIT:?}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn delete_block(store: &crate::block::BlockStore, id: &str) -> Result<()> {
    let dir = ObjectPath::from(format!("blocks/{id}"));
    let files: Vec<ObjectPath> = [META_FILE, SAMPLES_FILE, INDEX_FILE, POSTINGS_FILE]
        .iter()
        .map(|f| dir.clone().join(*f))
        .collect();
    remove_files(store, &files).await?;
    store.remove_local_dir(&dir);
    Ok(())
}
