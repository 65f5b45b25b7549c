//! Cutting the head into blocks.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Db, dur_ms};
use crate::block::{BlockWriter, EncodedBlock, WriteOptions, new_block_id};
use crate::error::{Result, StorageError};
use crate::head::{Head, SeriesRef};
use crate::labels::Labels;
use crate::wal::encode_series;

/// Series per checkpoint record, to keep records small.
const CHECKPOINT_CHUNK: usize = 10_000;

impl Db {
    /// Swaps in an empty head, writes the old one to blocks (one per time
    /// partition it touches), then deletes the WAL segments it came from.
    /// Until its blocks are loaded the old head stays readable; a head whose
    /// write failed stays in memory (and its WAL on disk) and is retried by
    /// the next call.
    pub async fn flush_head(&self) -> Result<()> {
        let inner = &*self.inner;
        let _flush = inner.flush_lock.lock().await;
        if let Some(rotated) = self.cut_head() {
            let boundary = rotated
                .await
                .map_err(|_| StorageError::WalUnavailable("wal writer stopped".into()))?
                .map_err(StorageError::WalUnavailable)?;
            *inner.wal_boundary.lock() = Some(boundary);
        }
        let pending: Vec<Arc<Head>> = inner.heads.read().flushing.clone();
        for head in pending {
            let encoded = self.encode_head(&head)?;
            let mut opened = Vec::new();
            for block in encoded {
                let id = new_block_id();
                opened.push(Arc::new(block.persist_and_open(&inner.store, &id, Vec::new()).await?));
            }
            {
                let mut blocks = inner.blocks.write();
                blocks.extend(opened);
                blocks.sort_by(|a, b| a.meta.id.cmp(&b.meta.id));
            }
            inner.heads.write().flushing.retain(|h| !Arc::ptr_eq(h, &head));
            inner.stats.head_flushes.inc();
            tracing::info!(samples = head.num_samples(), "head flushed to blocks");
        }
        let boundary = *inner.wal_boundary.lock();
        if let Some(b) = boundary {
            inner.wal.remove_segments_before(b)?;
        }
        self.refresh_gauges();
        Ok(())
    }

    /// Moves the active head to the flushing list and asks the WAL for a new
    /// segment starting with a checkpoint of the live series. `None` when
    /// the head is empty.
    fn cut_head(&self) -> Option<tokio::sync::oneshot::Receiver<Result<u64, String>>> {
        let inner = &*self.inner;
        let _append = inner.append_lock.write();
        let mut heads = inner.heads.write();
        if heads.active.num_samples() == 0 {
            return None;
        }
        // The next head will most likely see the same series: sized for them,
        // its maps never rehash while samples pour in.
        let expected_series = heads.active.num_series();
        let old = std::mem::replace(&mut heads.active, Arc::new(Head::with_capacity(expected_series)));
        heads.flushing.push(old.clone());
        let mut keep = std::collections::BTreeSet::new();
        for h in &heads.flushing {
            keep.extend(h.series_refs());
        }
        drop(heads);
        // Series without samples in any unflushed head are forgotten (their
        // data is in blocks); the rest go into the checkpoint that starts
        // the next WAL segment.
        let mut reg = inner.registry.write();
        reg.retain(&keep);
        let all: Vec<(SeriesRef, Arc<Labels>)> = reg.all().map(|(r, l)| (r, l.clone())).collect();
        drop(reg);
        let mut checkpoint = Vec::new();
        for chunk in all.chunks(CHECKPOINT_CHUNK) {
            let list: Vec<(SeriesRef, &Labels)> = chunk.iter().map(|(r, l)| (*r, &**l)).collect();
            encode_series(&mut checkpoint, &list);
        }
        Some(inner.wal.rotate(checkpoint))
    }

    /// Encodes a head into one block per partition, series in label order.
    fn encode_head(&self, head: &Head) -> Result<Vec<EncodedBlock>> {
        let inner = &*self.inner;
        let mut series: Vec<(Arc<Labels>, SeriesRef)> = {
            let reg = inner.registry.read();
            head.series_refs()
                .into_iter()
                .filter_map(|r| reg.labels(r).map(|l| (l.clone(), r)))
                .collect()
        };
        series.sort();
        let part = dur_ms(inner.opts.partition).max(1);
        let mut writers: BTreeMap<i64, BlockWriter> = BTreeMap::new();
        let mut buf = Vec::new();
        for (labels, r) in series {
            buf.clear();
            head.read(r, i64::MIN, i64::MAX, &mut buf);
            let mut i = 0;
            while i < buf.len() {
                let p = buf[i].t.div_euclid(part) * part;
                let j = i + buf[i..].partition_point(|s| s.t < p.saturating_add(part));
                let w = match writers.entry(p) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => e.insert(BlockWriter::new(WriteOptions {
                        zstd_level: inner.opts.zstd_level,
                        partition_start: p,
                        partition_end: p.saturating_add(part),
                        level: 0,
                    })?),
                };
                w.add_series(labels.clone(), &buf[i..j])?;
                i = j;
            }
        }
        let mut out = Vec::new();
        for (_, w) in writers {
            if let Some(b) = w.finish()? {
                out.push(b);
            }
        }
        Ok(out)
    }
}
