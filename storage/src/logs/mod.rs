//! Log storage: streams of lines with a WAL (acknowledged means durable,
//! as for metrics), an in-memory head, and immutable blocks of Parquet
//! columns with a tantivy full-text index, compacted and expired whole.
//!
//! Layout under the logs directory: `wal/` (segments in the metrics WAL's
//! framing, record type 16), `blocks/<id>/` (see [`block`]), `staging/`.

pub mod block;
mod granule_terms;
pub mod head;
pub mod index;
pub mod model;
pub mod rare_terms;
pub mod select;
mod stats;
pub mod walrec;

#[cfg(test)]
mod test_rng;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::error::{Result, StorageError};
use crate::labels::{Labels, is_valid_label_name};
use crate::wal::{self, Wal, WalAck, WalOptions};

pub use block::{BlockDirs, LogBlock, LogBlockMeta};
pub use head::LogHead;
pub use model::{DEFAULT_TENANT, LogEntry, LogPush, LogStream, RawLabels, StreamKey};
pub use select::{LogReader, LogSelect};
pub use stats::LogStats;

/// Limits on what a push may carry (Loki's names in parentheses).
#[derive(Debug, Clone)]
pub struct LogLimits {
    /// Longest line accepted, bytes (`max_line_size`).
    pub max_line_bytes: usize,
    /// Labels per stream (`max_label_names_per_series`).
    pub max_labels_per_stream: usize,
    /// Longest label name (`max_label_name_length`).
    pub max_label_name_bytes: usize,
    /// Longest label value (`max_label_value_length`).
    pub max_label_value_bytes: usize,
    /// Streams one tenant may have in the head (`max_global_streams_per_user`).
    pub max_streams_per_tenant: usize,
    /// Entries older than this are refused (`reject_old_samples_max_age`).
    pub max_age: Duration,
    /// Entries this far ahead of the clock are refused (`creation_grace_period`).
    pub future_tolerance: Duration,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_line_bytes: 256 << 10,
            max_labels_per_stream: 15,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 2048,
            max_streams_per_tenant: 10_000,
            max_age: Duration::from_secs(7 * 24 * 3600),
            future_tolerance: Duration::from_secs(600),
        }
    }
}

/// Log storage settings; [`LogDbOptions::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct LogDbOptions {
    /// Root of the log storage (`wal/`, `blocks/`, `staging/` below it).
    pub dir: PathBuf,
    /// Blocks whose newest entry is older than this are deleted.
    pub retention: Duration,
    /// fsync the WAL before acknowledging pushes.
    pub wal_fsync: bool,
    /// WAL segment size.
    pub wal_segment_bytes: u64,
    /// The head is cut into a block once it holds this many bytes of lines...
    pub head_max_bytes: u64,
    /// ... or once it is this old.
    pub head_max_age: Duration,
    /// zstd level of the blocks cut from the head (written while
    /// ingesting, so fast).
    pub zstd_level: i32,
    /// zstd level of merged blocks: written once in the background and
    /// kept for the whole retention, so stronger.
    pub compaction_zstd_level: i32,
    /// Blocks smaller than this (bytes of lines) are merged...
    pub compaction_max_block_bytes: u64,
    /// ... this many at a time.
    pub compaction_fan_in: usize,
    /// What a push may carry.
    pub limits: LogLimits,
}

impl LogDbOptions {
    /// Defaults: 15 days retention, fsync on, head cut at 64 MiB or 15
    /// minutes, blocks under 256 MiB merged four at a time; zstd level 1
    /// for cut blocks and 6 for merged ones.
    ///
    /// Level 1 is both faster and smaller than 3 on the bench corpus's
    /// 1024-row pages (294 MB of lines: 62.0 against 64.9 MB of data, 14
    /// against 16 CPU s/GB to cut). Merged blocks, written once in the
    /// background and kept for the retention, take 6 (59.6 MB). A site
    /// short of CPU rather than disk can cut at 128 MiB and merge only
    /// smaller blocks (`compaction_max_block_bytes` 128 MiB): each line is
    /// then written once, at about half the CPU per byte, for ~6 % more
    /// disk and twice the head memory (`benches/README.md`, logs).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LogDbOptions {
            dir: dir.into(),
            retention: Duration::from_secs(15 * 24 * 3600),
            wal_fsync: true,
            wal_segment_bytes: 128 << 20,
            head_max_bytes: 64 << 20,
            head_max_age: Duration::from_secs(15 * 60),
            zstd_level: 1,
            compaction_zstd_level: 6,
            compaction_max_block_bytes: 256 << 20,
            compaction_fan_in: 4,
            limits: LogLimits::default(),
        }
    }
}

/// What happened to a push.
#[derive(Debug, Default, Clone)]
pub struct LogPushReport {
    /// Entries stored.
    pub stored: u64,
    /// Bytes of lines and metadata stored.
    pub stored_bytes: u64,
    /// Entries already stored (retries), not stored again.
    pub duplicates: u64,
    /// Entries refused.
    pub rejected: u64,
    /// Why the first refused entry was refused, in words for the client.
    pub first_rejection: Option<String>,
}

impl LogPushReport {
    fn reject(&mut self, n: u64, why: impl FnOnce() -> String) {
        self.rejected += n;
        if self.first_rejection.is_none() {
            self.first_rejection = Some(why());
        }
    }
}

/// The log database: one handle for writers and readers.
pub struct LogDb {
    opts: LogDbOptions,
    dirs: BlockDirs,
    wal: Wal,
    head: Mutex<LogHead>,
    flushing: RwLock<Vec<Arc<LogHead>>>,
    blocks: RwLock<Vec<Arc<LogBlock>>>,
    /// Frozen heads whose blocks are not written yet, with the WAL segment
    /// their records end before; held by whoever cuts.
    maintenance: Mutex<Vec<(Arc<LogHead>, Option<u64>)>>,
    compaction: Mutex<()>,
    stats: Arc<LogStats>,
    closed: AtomicBool,
    cut_wanted: tokio::sync::Notify,
    tail: tokio::sync::broadcast::Sender<TailBatch>,
}

/// The entries one push stored, per stream, as live tails receive them.
pub type TailBatch = Arc<Vec<LogStream>>;

/// A stored push waiting for its WAL acknowledgement, with its copy for
/// live tails.
type PendingPush = (WalAck, Option<TailBatch>);

impl LogDb {
    /// Opens (or creates) the log storage: loads blocks, replays the WAL
    /// into the head, starts the WAL writer.
    pub fn open(opts: LogDbOptions) -> Result<Self> {
        let dirs = BlockDirs {
            blocks: opts.dir.join("blocks"),
            staging: opts.dir.join("staging"),
        };
        let wal_dir = opts.dir.join("wal");
        for d in [&dirs.blocks, &dirs.staging, &wal_dir] {
            fs::create_dir_all(d).map_err(|e| StorageError::io("create dir", d, e))?;
        }
        if let Ok(rd) = fs::read_dir(&dirs.staging) {
            for e in rd.flatten() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        let stats = Arc::new(LogStats::default());
        let blocks = load_blocks(&dirs.blocks)?;
        // Segments below every block's boundary are already in blocks.
        let covered = blocks.iter().map(|b| b.meta().wal_segment_end).max().unwrap_or(0);
        for n in wal::list_segments(&wal_dir)? {
            if n < covered {
                let p = wal_dir.join(format!("{n:010}.wal"));
                fs::remove_file(&p).map_err(|e| StorageError::io("remove", &p, e))?;
            }
        }
        let mut head = LogHead::default();
        let report = wal::replay_raw(&wal_dir, |kind, payload| {
            if kind != walrec::TYPE_LOG_PUSH {
                return false;
            }
            let Some(streams) = walrec::decode_push(payload) else {
                return false;
            };
            for (key, entries) in streams {
                let key = head.key(&key).unwrap_or_else(|| Arc::new(key));
                head.insert_all(&key, entries);
            }
            true
        })?;
        stats.wal.wal_corruptions.add(report.corruptions);
        let next_segment = report.last_segment.map_or(1, |n| n + 1).max(covered);
        let wal = Wal::start(
            WalOptions {
                dir: wal_dir,
                segment_bytes: opts.wal_segment_bytes,
                fsync: opts.wal_fsync,
            },
            next_segment,
            stats.wal.clone(),
        )?;
        tracing::info!(
            blocks = blocks.len(),
            head_entries = head.entries(),
            wal_records = report.records,
            "log storage opened"
        );
        let db = LogDb {
            opts,
            dirs,
            wal,
            head: Mutex::new(head),
            flushing: RwLock::new(Vec::new()),
            blocks: RwLock::new(blocks),
            maintenance: Mutex::new(Vec::new()),
            compaction: Mutex::new(()),
            stats,
            closed: AtomicBool::new(false),
            cut_wanted: tokio::sync::Notify::new(),
            tail: tokio::sync::broadcast::channel(1024).0,
        };
        db.refresh_gauges();
        Ok(db)
    }

    /// The counters and gauges of log storage.
    pub fn stats(&self) -> &Arc<LogStats> {
        &self.stats
    }

    /// The limits pushes are checked against.
    pub fn limits(&self) -> &LogLimits {
        &self.opts.limits
    }

    /// Validates and stores a push; answers once the stored entries are
    /// durable. Valid streams and entries are kept even when others are
    /// refused (the report says what and why).
    pub async fn push(&self, push: LogPush) -> Result<LogPushReport> {
        let (report, ack) = self.push_sync(push)?;
        if let Some((ack, tail)) = ack {
            ack.wait().await?;
            self.publish(tail);
        }
        Ok(report)
    }

    /// Live entries for tailing: every push's stored entries once they are
    /// durable. A receiver that falls behind loses the oldest batches
    /// (`RecvError::Lagged` says how many).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<TailBatch> {
        self.tail.subscribe()
    }

    fn publish(&self, batch: Option<TailBatch>) {
        if let Some(b) = batch {
            let _ = self.tail.send(b);
        }
    }

    /// [`LogDb::push`] for callers off the async runtime.
    pub fn push_blocking(&self, push: LogPush) -> Result<LogPushReport> {
        let (report, ack) = self.push_sync(push)?;
        if let Some((ack, tail)) = ack {
            ack.wait_blocking()?;
            self.publish(tail);
        }
        Ok(report)
    }

    /// Validates and stores; the WAL acknowledgement to wait for and the
    /// copy for live tails (when anyone tails) come back when anything
    /// was stored.
    fn push_sync(&self, push: LogPush) -> Result<(LogPushReport, Option<PendingPush>)> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StorageError::ShuttingDown);
        }
        let limits = &self.opts.limits;
        let mut report = LogPushReport::default();
        let now = now_ns();
        let min_ts = now.saturating_sub(duration_ns(limits.max_age));
        let max_ts = now.saturating_add(duration_ns(limits.future_tolerance));
        // Validate outside the lock.
        let mut checked: Vec<(StreamKey, Vec<LogEntry>)> = Vec::with_capacity(push.streams.len());
        for (pairs, entries) in push.streams {
            let labels = match validate_stream_labels(&pairs, limits) {
                Ok(l) => l,
                Err(why) => {
                    report.reject(entries.len() as u64, || why);
                    continue;
                }
            };
            let key = StreamKey {
                tenant: push.tenant.clone(),
                labels,
            };
            let mut ok = Vec::with_capacity(entries.len());
            for mut e in entries {
                if e.line.len() > limits.max_line_bytes {
                    let (len, max) = (e.line.len(), limits.max_line_bytes);
                    report.reject(1, || {
                        format!("max entry size '{max}' bytes exceeded for stream '{key}' while adding an entry with length '{len}' bytes")
                    });
                } else if e.ts < min_ts {
                    report.reject(1, || {
                        format!(
                            "entry for stream '{key}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
                            rfc3339_ns(e.ts),
                            rfc3339_ns(min_ts)
                        )
                    });
                } else if e.ts > max_ts {
                    report.reject(1, || {
                        format!(
                            "entry for stream '{key}' has timestamp too new: {}, newest acceptable timestamp is: {}",
                            rfc3339_ns(e.ts),
                            rfc3339_ns(max_ts)
                        )
                    });
                } else {
                    e.metadata.sort();
                    e.metadata.dedup_by(|a, b| a.0 == b.0);
                    ok.push(e);
                }
            }
            if ok.is_empty() {
                continue;
            }
            // Same timestamp and line twice in one request: keep one.
            ok.sort_by_key(|e| e.ts);
            let before = ok.len();
            dedup_equal_time_lines(&mut ok);
            report.duplicates += (before - ok.len()) as u64;
            checked.push((key, ok));
        }
        if checked.is_empty() {
            self.count(&report);
            return Ok((report, None));
        }
        let mut head = self.head.lock();
        // Backpressure: the head may grow to twice its cut size while a
        // cut is being written; beyond that writers are asked to retry.
        let in_flight: u64 = self.flushing.read().iter().map(|h| h.bytes()).sum();
        if head.bytes() + in_flight >= self.opts.head_max_bytes.saturating_mul(3) {
            drop(head);
            self.cut_wanted.notify_one();
            return Err(StorageError::Overloaded(format!(
                "{} bytes of log lines wait to be written to blocks; retry shortly",
                in_flight
            )));
        }
        let mut accepted: Vec<(Arc<StreamKey>, Vec<LogEntry>)> = Vec::with_capacity(checked.len());
        let mut new_streams = 0usize;
        for (key, entries) in checked {
            let shared = match head.key(&key) {
                Some(k) => k,
                None => {
                    if head.tenant_streams(&key.tenant) + new_streams >= limits.max_streams_per_tenant {
                        let max = limits.max_streams_per_tenant;
                        report.reject(entries.len() as u64, || {
                            format!(
                                "stream '{key}' refused: tenant '{}' already has {max} active streams (limit max_streams_per_tenant); reduce label cardinality",
                                key.tenant
                            )
                        });
                        continue;
                    }
                    new_streams += 1;
                    Arc::new(key)
                }
            };
            let mut fresh = entries;
            let before = fresh.len();
            head.retain_new(&shared, &mut fresh);
            report.duplicates += (before - fresh.len()) as u64;
            accepted.push((shared, fresh));
        }
        let mut record = Vec::new();
        let refs: Vec<(&StreamKey, Vec<&LogEntry>)> = accepted
            .iter()
            .filter(|(_, e)| !e.is_empty())
            .map(|(k, e)| (k.as_ref(), e.iter().collect()))
            .collect();
        if refs.is_empty() {
            drop(head);
            self.count(&report);
            return Ok((report, None));
        }
        walrec::encode_push(&mut record, &refs);
        drop(refs);
        // Copies for live tails, only when someone tails.
        let tail: Option<TailBatch> = (self.tail.receiver_count() > 0).then(|| {
            Arc::new(
                accepted
                    .iter()
                    .filter(|(_, e)| !e.is_empty())
                    .map(|(k, e)| LogStream {
                        key: k.clone(),
                        entries: e.clone(),
                    })
                    .collect(),
            )
        });
        for (key, entries) in accepted {
            let done = head.insert_all(&key, entries);
            report.stored += done.stored;
            report.stored_bytes += done.bytes;
            report.duplicates += done.duplicates;
        }
        // Queued under the head lock: WAL order is head order.
        let ack = self.wal.write(record);
        self.stats.head_entries.set(head.entries());
        self.stats.head_bytes.set(head.bytes());
        let full = head.bytes() >= self.opts.head_max_bytes;
        drop(head);
        if full {
            self.cut_wanted.notify_one();
        }
        self.count(&report);
        Ok((report, Some((ack, tail))))
    }

    fn count(&self, report: &LogPushReport) {
        self.stats.entries_stored.add(report.stored);
        self.stats.bytes_stored.add(report.stored_bytes);
        self.stats.entries_duplicate.add(report.duplicates);
        self.stats.entries_rejected.add(report.rejected);
    }

    /// Every entry `q` selects, stream by stream (a stream may appear once
    /// per source: head, heads being flushed, each block; entries of each
    /// part in time order). Blocking: call off the async runtime.
    ///
    /// Sources are read newest first — head, heads being written, blocks —
    /// the order entries move in, so an entry moving during the read is
    /// seen twice (and merged), never missed.
    pub fn select(&self, q: &LogSelect) -> Result<Vec<LogStream>> {
        let mut out = Vec::new();
        let scanned = AtomicU64::new(0);
        self.head.lock().select(q, &mut out);
        let flushing: Vec<Arc<LogHead>> = self.flushing.read().clone();
        for h in &flushing {
            h.select(q, &mut out);
        }
        let blocks: Vec<Arc<LogBlock>> = self.blocks.read().clone();
        // A line-filtered read is bound by searching the index and
        // decompressing the candidate pages: its blocks are read on every
        // core, each thread taking the next block not yet taken, with up to
        // two threads per core so that the last blocks of a read are not
        // left to one core (three equal blocks on two cores take 1.5
        // blocks' time, not 2). A read without line filters is bound by
        // building every entry it returns; reading blocks at once would
        // only hold more of them in memory at a time.
        let threads = if q.contains.is_empty() {
            1
        } else {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get() * 2)
                .min(blocks.len())
        };
        if threads <= 1 {
            for b in &blocks {
                b.select(q, &mut out, &scanned)?;
            }
        } else {
            let next = AtomicUsize::new(0);
            // Per thread: (block number, what it read) for each block taken.
            type Taken = Vec<(usize, Vec<LogStream>)>;
            let parts: Vec<Result<Taken>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|_| {
                        let (blocks, scanned, next) = (&blocks, &scanned, &next);
                        s.spawn(move || {
                            let mut parts = Vec::new();
                            loop {
                                let i = next.fetch_add(1, Ordering::Relaxed);
                                let Some(b) = blocks.get(i) else { break };
                                let mut part = Vec::new();
                                b.select(q, &mut part, scanned)?;
                                parts.push((i, part));
                            }
                            Ok(parts)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                    .collect()
            });
            // In block order, whichever thread read them, so that equal
            // timestamps come out the same way every time.
            let mut by_block = Vec::with_capacity(blocks.len());
            for part in parts {
                by_block.extend(part?);
            }
            by_block.sort_by_key(|(i, _)| *i);
            for (_, part) in by_block {
                out.extend(part);
            }
        }
        Ok(merge_streams(out))
    }

    /// Keys of the streams `q` selects that have entries in its range.
    /// (Read newest first, as [`LogDb::select`].)
    pub fn stream_keys(&self, q: &LogSelect) -> Vec<Arc<StreamKey>> {
        let mut out = Vec::new();
        self.head.lock().stream_keys(q, &mut out);
        for h in self.flushing.read().iter() {
            h.stream_keys(q, &mut out);
        }
        for b in self.blocks.read().iter() {
            b.stream_keys(q, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }

    /// Resolves when a push found the head full (so maintenance can cut it
    /// without waiting for its next tick).
    pub async fn cut_requested(&self) {
        self.cut_wanted.notified().await;
    }

    /// Cuts the head into a block when it is big or old enough and deletes
    /// blocks past retention. Blocking. (Merging small blocks is
    /// [`LogDb::compact`], run on its own so cuts never wait for it.)
    pub fn maintain(&self) -> Result<()> {
        let due = {
            let h = self.head.lock();
            !h.is_empty() && (h.bytes() >= self.opts.head_max_bytes || h.created().elapsed() >= self.opts.head_max_age)
        };
        if due {
            self.cut_head()?;
        }
        self.apply_retention();
        Ok(())
    }

    /// Writes the whole head to a block (shutdown, tests). Blocking.
    pub fn flush(&self) -> Result<()> {
        self.cut_head()
    }

    /// Refuses further pushes and flushes the head. Blocking.
    pub fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        self.cut_head()
    }

    /// Freezes the head and writes every frozen head into a block, oldest
    /// first. WAL segments are deleted only once no frozen head is left
    /// unwritten: a failed block write (a full disk, say) keeps its head
    /// readable and its WAL segments on disk, and the next cut retries it.
    fn cut_head(&self) -> Result<()> {
        let mut pending = self.maintenance.lock();
        {
            let mut head = self.head.lock();
            if !head.is_empty() {
                let frozen = Arc::new(std::mem::take(&mut *head));
                self.flushing.write().push(frozen.clone());
                // Queued under the head lock: every record of `frozen` lies
                // in a segment below the one this starts.
                let rotated = self.wal.rotate(Vec::new());
                drop(head);
                let segment = rotated
                    .blocking_recv()
                    .map_err(|_| "wal writer stopped".to_string())
                    .and_then(|r| r);
                match segment {
                    Ok(n) => pending.push((frozen, Some(n))),
                    Err(e) => {
                        // No boundary known: its segments must stay.
                        pending.push((frozen, None));
                        return Err(StorageError::WalUnavailable(e));
                    }
                }
            }
        }
        while let Some((frozen, segment)) = pending.first().cloned() {
            let Some(segment) = segment else {
                return Err(StorageError::WalUnavailable(
                    "a cut head has no WAL boundary; restart to replay it".into(),
                ));
            };
            let block = block::write_block(
                &self.dirs,
                frozen.sorted_streams(),
                self.opts.zstd_level,
                segment,
                Vec::new(),
            )?;
            {
                let mut blocks = self.blocks.write();
                blocks.push(Arc::new(block));
                self.flushing.write().retain(|h| !Arc::ptr_eq(h, &frozen));
            }
            pending.remove(0);
            if pending.is_empty() {
                self.wal.remove_segments_before(segment)?;
            }
            self.stats.head_flushes.inc();
        }
        self.refresh_gauges();
        Ok(())
    }

    fn apply_retention(&self) {
        let cutoff = now_ns().saturating_sub(duration_ns(self.opts.retention));
        let mut blocks = self.blocks.write();
        let before = blocks.len();
        blocks.retain(|b| {
            if b.meta().max_t < cutoff {
                tracing::info!(block = %b.meta().id, "logs: deleting block past retention");
                b.mark_deleted();
                false
            } else {
                true
            }
        });
        let removed = before - blocks.len();
        drop(blocks);
        if removed > 0 {
            self.stats.retention_deletions.add(removed as u64);
            self.refresh_gauges();
        }
    }

    /// Merges the oldest small blocks, `compaction_fan_in` at a time.
    /// Blocking.
    pub fn compact(&self) -> Result<()> {
        let _c = self.compaction.lock();
        let mut small: Vec<Arc<LogBlock>> = self
            .blocks
            .read()
            .iter()
            .filter(|b| b.meta().raw_bytes < self.opts.compaction_max_block_bytes)
            .cloned()
            .collect();
        if small.len() < self.opts.compaction_fan_in.max(2) {
            return Ok(());
        }
        small.sort_by_key(|b| (b.meta().min_t, b.meta().id.clone()));
        small.truncate(self.opts.compaction_fan_in.max(2));
        let mut all = Vec::new();
        for b in &small {
            all.extend(b.read_all()?);
        }
        let merged = merge_streams(all);
        let sources: Vec<String> = small.iter().map(|b| b.meta().id.clone()).collect();
        let wal_end = small.iter().map(|b| b.meta().wal_segment_end).max().unwrap_or(0);
        let block = block::write_block(
            &self.dirs,
            merged.iter().map(|s| (&s.key, s.entries.as_slice())),
            self.opts.compaction_zstd_level,
            wal_end,
            sources.clone(),
        )?;
        {
            let mut blocks = self.blocks.write();
            blocks.retain(|b| !sources.contains(&b.meta().id));
            blocks.push(Arc::new(block));
        }
        for b in &small {
            b.mark_deleted();
        }
        self.stats.compactions.inc();
        self.refresh_gauges();
        Ok(())
    }

    fn refresh_gauges(&self) {
        let blocks = self.blocks.read();
        self.stats.blocks.set(blocks.len() as u64);
        self.stats.block_bytes.set(blocks.iter().map(|b| b.disk_bytes()).sum());
        drop(blocks);
        self.stats.wal.wal_bytes.set(self.wal.disk_bytes());
        let h = self.head.lock();
        self.stats.head_entries.set(h.entries());
        self.stats.head_bytes.set(h.bytes());
    }

    /// Metadata of every block, oldest first (for `/metrics` and tests).
    pub fn block_metas(&self) -> Vec<LogBlockMeta> {
        let mut v: Vec<_> = self.blocks.read().iter().map(|b| b.meta().clone()).collect();
        v.sort_by_key(|m| (m.min_t, m.id.clone()));
        v
    }
}

impl LogReader for LogDb {
    fn select(&self, q: &LogSelect) -> Result<Vec<LogStream>> {
        LogDb::select(self, q)
    }
    fn stream_keys(&self, q: &LogSelect) -> Vec<Arc<StreamKey>> {
        LogDb::stream_keys(self, q)
    }
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<TailBatch>> {
        Some(LogDb::subscribe(self))
    }
}

/// Merges parts of the same stream (from different sources) into one, in
/// time order, keeping one entry per timestamp and line; streams sorted by
/// key.
pub fn merge_streams(parts: Vec<LogStream>) -> Vec<LogStream> {
    let mut by_key: std::collections::BTreeMap<Arc<StreamKey>, Vec<Vec<LogEntry>>> = Default::default();
    for p in parts {
        by_key.entry(p.key).or_default().push(p.entries);
    }
    by_key
        .into_iter()
        .map(|(key, mut lists)| {
            let entries = if lists.len() == 1 {
                lists.pop().unwrap_or_default()
            } else {
                let mut all: Vec<LogEntry> = lists.into_iter().flatten().collect();
                all.sort_by_key(|e| e.ts);
                dedup_equal_time_lines(&mut all);
                all
            };
            LogStream { key, entries }
        })
        .collect()
}

/// Removes entries whose timestamp and line equal an earlier entry's;
/// `entries` must be sorted by time.
fn dedup_equal_time_lines(entries: &mut Vec<LogEntry>) {
    let mut seen: Vec<usize> = Vec::new();
    let mut keep = vec![true; entries.len()];
    let mut i = 0;
    while i < entries.len() {
        let mut j = i + 1;
        while j < entries.len() && entries[j].ts == entries[i].ts {
            j += 1;
        }
        if j - i > 1 {
            seen.clear();
            for k in i..j {
                if seen.iter().any(|&s| entries[s].line == entries[k].line) {
                    keep[k] = false;
                } else {
                    seen.push(k);
                }
            }
        }
        i = j;
    }
    let mut it = keep.iter();
    entries.retain(|_| *it.next().unwrap_or(&true));
}

fn load_blocks(dir: &std::path::Path) -> Result<Vec<Arc<LogBlock>>> {
    let mut metas = Vec::new();
    for e in fs::read_dir(dir)
        .map_err(|e| StorageError::io("read dir", dir, e))?
        .flatten()
    {
        let path = e.path();
        if !path.is_dir() {
            continue;
        }
        if !path.join("meta.json").exists() {
            tracing::warn!(block = %path.display(), "logs: removing incomplete block (no meta.json)");
            let _ = fs::remove_dir_all(&path);
            continue;
        }
        match LogBlock::open(&path) {
            Ok(b) => metas.push(b),
            Err(e) => tracing::error!(block = %path.display(), error = %e, "logs: cannot open block; ignoring it"),
        }
    }
    let replaced: BTreeSet<String> = metas.iter().flat_map(|b| b.meta().sources.iter().cloned()).collect();
    let mut out = Vec::new();
    for b in metas {
        if replaced.contains(&b.meta().id) {
            tracing::info!(block = %b.meta().id, "logs: removing block already merged into another");
            b.mark_deleted();
            continue;
        }
        out.push(Arc::new(b));
    }
    out.sort_by(|a, b| a.meta().id.cmp(&b.meta().id));
    Ok(out)
}

/// Checks stream labels as Loki does and builds the label set.
fn validate_stream_labels(pairs: &[(String, String)], limits: &LogLimits) -> std::result::Result<Labels, String> {
    if pairs.is_empty() {
        return Err("error at least one label pair is required per stream".into());
    }
    if pairs.len() > limits.max_labels_per_stream {
        return Err(format!(
            "stream has {} labels, more than the limit of {} (max_labels_per_stream)",
            pairs.len(),
            limits.max_labels_per_stream
        ));
    }
    let mut names: Vec<&str> = Vec::with_capacity(pairs.len());
    for (n, v) in pairs {
        if !is_valid_label_name(n) {
            return Err(format!(
                "invalid label name {n:?}: names must match [a-zA-Z_][a-zA-Z0-9_]*"
            ));
        }
        if n.len() > limits.max_label_name_bytes {
            return Err(format!(
                "label name {n:?} is longer than {} bytes",
                limits.max_label_name_bytes
            ));
        }
        if v.len() > limits.max_label_value_bytes {
            return Err(format!(
                "value of label {n:?} is {} bytes, longer than the limit of {}",
                v.len(),
                limits.max_label_value_bytes
            ));
        }
        if names.contains(&n.as_str()) {
            return Err(format!("duplicate label name {n:?}"));
        }
        names.push(n);
    }
    let labels = Labels::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    if labels.is_empty() {
        return Err("error at least one label pair is required per stream (all values are empty)".into());
    }
    Ok(labels)
}

/// Nanoseconds since the Unix epoch now.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// RFC 3339 text of a nanosecond timestamp (UTC), for messages.
pub fn rfc3339_ns(ts: i64) -> String {
    let secs = ts.div_euclid(1_000_000_000);
    let nanos = ts.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}
