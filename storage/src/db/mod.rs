//! The database: write-ahead log, head, blocks and their maintenance,
//! behind one handle that ingest writes to and query reads from.

mod compact;
mod flush;
mod open;
mod query;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::batch::WriteBatch;
use crate::block::{Block, BlockStore};
use crate::error::{Result, StorageError};
use crate::head::{Head, InsertOutcome, SeriesRef, SeriesRegistry};
use crate::intern::LabelInterner;
use crate::labels::{LabelError, LabelLimits, Labels, hash_label_pairs, validate_labels};
use crate::metadata::MetadataStore;
use crate::sample::Sample;
use crate::stats::StorageStats;
use crate::wal::{Wal, WalAck, encode_samples, encode_series};

/// Storage settings; [`DbOptions::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Root directory: `wal/` and `blocks/` live below it.
    pub data_dir: PathBuf,
    /// Blocks whose newest sample is older than this are deleted.
    pub retention: Duration,
    /// Samples up to this much older than the newest sample are accepted.
    pub out_of_order_window: Duration,
    /// Samples more than this far ahead of the wall clock are refused.
    pub future_tolerance: Duration,
    /// fsync the WAL before acknowledging writes.
    pub wal_fsync: bool,
    /// WAL segment size.
    pub wal_segment_bytes: u64,
    /// The head is cut into blocks once it holds this many samples.
    pub head_max_samples: u64,
    /// ... or once it is this old.
    pub head_max_age: Duration,
    /// Length of a block's time partition.
    pub partition: Duration,
    /// zstd level of block files.
    pub zstd_level: i32,
    /// Blocks of one level and partition merged at once.
    pub compaction_fan_in: usize,
    /// Limits on the labels of new series.
    pub label_limits: LabelLimits,
}

impl DbOptions {
    /// Defaults: 15 days retention, 1 h out-of-order window, fsync on,
    /// 2 h partitions, head cut at 4 M samples or 15 minutes.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        DbOptions {
            data_dir: data_dir.into(),
            retention: Duration::from_secs(15 * 24 * 3600),
            out_of_order_window: Duration::from_secs(3600),
            future_tolerance: Duration::from_secs(600),
            wal_fsync: true,
            wal_segment_bytes: 128 << 20,
            head_max_samples: 4_000_000,
            head_max_age: Duration::from_secs(15 * 60),
            partition: Duration::from_secs(2 * 3600),
            zstd_level: 3,
            compaction_fan_in: 4,
            label_limits: LabelLimits::default(),
        }
    }
}

/// Why a sample was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The series' labels break the rules (see [`LabelError`]).
    InvalidLabels(LabelError),
    /// Older than the out-of-order window or the retention allows.
    TooOld {
        /// The sample's timestamp.
        t: i64,
        /// The oldest timestamp accepted now.
        min_valid: i64,
    },
    /// Too far in the future.
    TooNew {
        /// The sample's timestamp.
        t: i64,
        /// The newest timestamp accepted now.
        max_valid: i64,
    },
    /// Another value is stored at the same timestamp.
    Conflict {
        /// The sample's timestamp.
        t: i64,
    },
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::InvalidLabels(e) => write!(f, "invalid series: {e}"),
            Rejection::TooOld { t, min_valid } => write!(
                f,
                "sample timestamp {t} is too old: the oldest accepted now is {min_valid} (out-of-order window or retention)"
            ),
            Rejection::TooNew { t, max_valid } => write!(
                f,
                "sample timestamp {t} is too far in the future: the newest accepted now is {max_valid}"
            ),
            Rejection::Conflict { t } => {
                write!(f, "duplicate sample for timestamp {t} with a different value")
            }
        }
    }
}

/// The outcome of one append.
#[derive(Debug, Default, Clone)]
pub struct AppendReport {
    /// Samples newly stored.
    pub stored: u64,
    /// Samples already stored identically (retries), not stored again.
    pub duplicates: u64,
    /// Samples refused because their series' labels are invalid.
    pub invalid: u64,
    /// Samples refused as too old.
    pub too_old: u64,
    /// Samples refused as too far in the future.
    pub too_new: u64,
    /// Samples refused because another value has their timestamp.
    pub conflicts: u64,
    /// The first refused sample: index of its series in the request and why.
    pub first_rejection: Option<(usize, Rejection)>,
}

impl AppendReport {
    /// All refused samples.
    pub fn rejected(&self) -> u64 {
        self.invalid + self.too_old + self.too_new + self.conflicts
    }
}

#[derive(Debug)]
struct Heads {
    active: Arc<Head>,
    flushing: Vec<Arc<Head>>,
}

/// A series of a write on its way into the head: its index in the request,
/// its reference, and the range of its samples in the kept-samples buffer
/// when some were refused (`None`: all of the request's samples).
type HeadItem = (usize, SeriesRef, Option<(usize, usize)>);

/// Where metric metadata is saved on close.
pub(crate) const METADATA_FILE: &str = "metadata.json";

struct Inner {
    opts: DbOptions,
    registry: RwLock<SeriesRegistry>,
    heads: RwLock<Heads>,
    /// Held shared by every append while its samples go into the head and
    /// its WAL records are queued, and exclusively by a head cut, so that
    /// a cut falls between appends: every sample of the old head is in a
    /// WAL segment before the cut, every sample of the new head after it.
    /// Appends run side by side: the order of their sample records does
    /// not matter (only stored samples are logged, and replay stores them
    /// all), and a series record is queued before its series can be found
    /// by another append (see [`Db::resolve_unknown_series`]).
    append_lock: RwLock<()>,
    /// One head flush at a time.
    flush_lock: tokio::sync::Mutex<()>,
    /// One compaction or retention pass at a time. Separate from flushes:
    /// a long merge must not hold up the flush that frees the head, or a
    /// fast writer meets "storage overloaded".
    compaction_lock: tokio::sync::Mutex<()>,
    wal: Wal,
    /// First WAL segment still needed once every flushing head is written.
    wal_boundary: Mutex<Option<u64>>,
    blocks: RwLock<Vec<Arc<Block>>>,
    store: BlockStore,
    /// One shared copy of each label set across the head and all blocks.
    interner: Arc<LabelInterner>,
    stats: Arc<StorageStats>,
    /// Metric metadata sent by clients.
    metadata: Arc<MetadataStore>,
    max_t: AtomicI64,
    closed: AtomicBool,
}

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

/// Waits for the next tick; false once `shutdown` fires.
async fn next_tick(tick: &mut tokio::time::Interval, shutdown: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tick.tick() => !*shutdown.borrow(),
        _ = shutdown.changed() => false,
    }
}

/// Milliseconds since the Unix epoch by the wall clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn dur_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Db {
    /// The storage self-metrics.
    pub fn stats(&self) -> &Arc<StorageStats> {
        &self.inner.stats
    }

    /// The options the database runs with.
    pub fn options(&self) -> &DbOptions {
        &self.inner.opts
    }

    /// Samples held in memory (active head plus heads being flushed).
    pub fn head_samples(&self) -> u64 {
        let heads = self.inner.heads.read();
        heads.active.num_samples() + heads.flushing.iter().map(|h| h.num_samples()).sum::<u64>()
    }

    /// Stores samples. Returns once every stored sample is in the WAL (and
    /// fsynced when configured): a successful return is an acknowledgement.
    /// Refused samples are counted in the report, not errors; the valid
    /// samples of the same call are kept.
    pub async fn append(&self, batch: &WriteBatch<'_>) -> Result<AppendReport> {
        let (report, mut ack) = self.append_to_head(batch)?;
        if report.duplicates > 0 {
            // A duplicate is a sample another append stored, maybe one still
            // running whose WAL record is not queued yet; acknowledging it
            // promises that sample too. The exclusive lock waits until every
            // append holding it has queued its records, and the sync after
            // them resolves once those are durable (acks come in order).
            drop(self.inner.append_lock.write());
            ack = Some(self.inner.wal.sync());
        }
        if let Some(ack) = ack {
            ack.wait().await?;
        }
        Ok(report)
    }

    /// The head part of [`Db::append`]: resolves series (validating only
    /// new ones), checks times, stores samples in the head and queues the
    /// WAL records, all under the shared append lock. The ack returned is
    /// that of the last record queued; the WAL resolves acks in order.
    fn append_to_head(&self, batch: &WriteBatch<'_>) -> Result<(AppendReport, Option<WalAck>)> {
        let inner = &*self.inner;
        let limit = inner.opts.head_max_samples.saturating_mul(2);
        if self.head_samples() > limit {
            return Err(StorageError::Overloaded(format!(
                "{} samples are waiting to be flushed to blocks (limit {limit})",
                self.head_samples()
            )));
        }
        let n = batch.len();
        let mut report = AppendReport::default();
        let _guard = inner.append_lock.read();
        // Checked under the lock: `close` sets the flag and then waits for
        // the appends holding it, so none can slip in after its flush.
        if inner.closed.load(Ordering::Acquire) {
            return Err(StorageError::ShuttingDown);
        }

        // Known series are found by the key of their wire labels without
        // allocating; the rest by the hash of their labels, and what is
        // still unknown is validated and created.
        let mut refs: Vec<Option<SeriesRef>> = {
            let reg = inner.registry.read();
            (0..n)
                .map(|i| match batch.key(i) {
                    0 => None,
                    key => reg.lookup_key(key),
                })
                .collect()
        };
        let series_ack = if refs.iter().any(Option::is_none) {
            self.resolve_unknown_series(batch, &mut refs, &mut report)
        } else {
            None
        };
        let now = now_ms();
        let max_t = inner.max_t.load(Ordering::Relaxed);
        let min_valid = max_t
            .saturating_sub(dur_ms(inner.opts.out_of_order_window))
            .max(now.saturating_sub(dur_ms(inner.opts.retention)));
        let max_valid = now.saturating_add(dur_ms(inner.opts.future_tolerance));
        let head = inner.heads.read().active.clone();
        let mut wal_samples: Vec<(SeriesRef, Sample)> = Vec::with_capacity(batch.num_samples());
        let mut new_max = max_t;
        // Samples outside the window are refused here, in request order; the
        // rest of a series that had some are kept in `kept`.
        let mut kept: Vec<Sample> = Vec::new();
        let mut sources: Vec<HeadItem> = Vec::with_capacity(n);
        for (i, r) in refs.iter().enumerate() {
            let Some(r) = *r else { continue };
            let samples = batch.samples(i);
            if samples.iter().all(|s| s.t >= min_valid && s.t <= max_valid) {
                sources.push((i, r, None));
                continue;
            }
            let from = kept.len();
            for s in samples {
                let why = if s.t < min_valid {
                    report.too_old += 1;
                    Rejection::TooOld { t: s.t, min_valid }
                } else if s.t > max_valid {
                    report.too_new += 1;
                    Rejection::TooNew { t: s.t, max_valid }
                } else {
                    kept.push(*s);
                    continue;
                };
                report.first_rejection.get_or_insert((i, why));
            }
            sources.push((i, r, Some((from, kept.len()))));
        }
        let items: Vec<(SeriesRef, &[Sample])> = sources
            .iter()
            .map(|&(i, r, range)| (r, range.map_or(batch.samples(i), |(a, b)| &kept[a..b])))
            .collect();
        let mut first_conflict: Option<(usize, i64)> = None;
        head.insert_many(&items, |item, s, outcome| {
            let (i, r, _) = sources[item];
            match outcome {
                InsertOutcome::Stored => {
                    wal_samples.push((r, *s));
                    new_max = new_max.max(s.t);
                }
                InsertOutcome::Duplicate => report.duplicates += 1,
                InsertOutcome::Conflict => {
                    report.conflicts += 1;
                    // Items come shard by shard: keep the first in request order.
                    if first_conflict.is_none_or(|(j, _)| i < j) {
                        first_conflict = Some((i, s.t));
                    }
                }
            }
        });
        if let Some((i, t)) = first_conflict
            && report.first_rejection.as_ref().is_none_or(|(j, _)| i < *j)
        {
            report.first_rejection = Some((i, Rejection::Conflict { t }));
        }
        report.stored = wal_samples.len() as u64;
        inner.stats.samples_appended.add(report.stored);
        inner.stats.samples_duplicate.add(report.duplicates);
        inner.stats.samples_too_old.add(report.too_old);
        inner.stats.samples_too_new.add(report.too_new);
        inner.stats.samples_conflicting.add(report.conflicts);
        inner.max_t.fetch_max(new_max, Ordering::Relaxed);

        let mut record = Vec::with_capacity(wal_samples.len() * 12);
        encode_samples(&mut record, &wal_samples);
        let ack = if record.is_empty() {
            series_ack
        } else {
            Some(inner.wal.write(record))
        };
        Ok((report, ack))
    }

    /// Finds or creates the series of `batch` that `refs` has no reference
    /// for (their key was unknown), remembering their keys; a series with
    /// invalid labels stays `None` and is counted in `report`. Series it
    /// creates are queued to the WAL before the registry lets any other
    /// append find them, so no sample record can precede its series
    /// record; returns that record's ack, if any. Called under the append
    /// lock.
    fn resolve_unknown_series(
        &self,
        batch: &WriteBatch<'_>,
        refs: &mut [Option<SeriesRef>],
        report: &mut AppendReport,
    ) -> Option<WalAck> {
        let inner = &*self.inner;
        let mut scratch = Vec::with_capacity(512);
        // Keys to remember: (key, series).
        let mut learned: Vec<(u128, SeriesRef)> = Vec::new();
        let mut invalid: Vec<(usize, LabelError)> = Vec::new();
        // The labels of every unknown series, decoded now if deferred.
        let mut unknown = Vec::new();
        for (i, r) in refs.iter().enumerate() {
            if r.is_none() {
                match batch.labels(i) {
                    Ok(pairs) => unknown.push((i, pairs)),
                    Err(e) => invalid.push((i, LabelError::Undecodable(e))),
                }
            }
        }
        {
            // A series with an empty label value needs validation first
            // (empty values are dropped), so it is never found by its wire
            // labels here; validated below, its key is learned all the same.
            let reg = inner.registry.read();
            for (i, pairs) in &unknown {
                if pairs.iter().any(|(_, v)| v.is_empty()) {
                    continue;
                }
                let h = hash_label_pairs(&mut scratch, pairs.iter().copied());
                if let Some(found) = reg.lookup_pairs(h, pairs) {
                    // Found by its labels as they came: the key names them.
                    refs[*i] = Some(found);
                    if batch.key(*i) != 0 {
                        learned.push((batch.key(*i), found));
                    }
                }
            }
        }
        let mut valid = Vec::new();
        for (i, pairs) in &unknown {
            if refs[*i].is_some() {
                continue;
            }
            match validate_labels(pairs, &inner.opts.label_limits) {
                Ok(labels) => {
                    let h = labels.stable_hash();
                    valid.push((*i, labels, h));
                }
                Err(e) => invalid.push((*i, e)),
            }
        }
        // The first refused series in request order is the one named.
        invalid.sort_by_key(|(i, _)| *i);
        for (i, e) in invalid {
            report.invalid += batch.samples(i).len() as u64;
            report.first_rejection.get_or_insert((i, Rejection::InvalidLabels(e)));
        }
        let mut new_series: Vec<(SeriesRef, Arc<Labels>)> = Vec::new();
        let mut reg = inner.registry.write();
        for (i, labels, h) in valid {
            // Validation is a pure function of the wire labels (it drops
            // empty values and refuses what is invalid), so the same wire
            // bytes always name this series, even when they differ from its
            // stored labels.
            let keyed = batch.key(i) != 0;
            let r = match reg.lookup(h, &labels) {
                Some(r) => r,
                None => {
                    let shared = inner.interner.intern(labels);
                    let r = reg.create(h, shared.clone());
                    new_series.push((r, shared));
                    r
                }
            };
            refs[i] = Some(r);
            if keyed {
                learned.push((batch.key(i), r));
            }
        }
        for (key, r) in learned {
            reg.remember_key(key, r);
        }
        inner.stats.series_created.add(new_series.len() as u64);
        inner.stats.head_series.set(reg.len() as u64);
        if new_series.is_empty() {
            return None;
        }
        let list: Vec<(SeriesRef, &Labels)> = new_series.iter().map(|(r, l)| (*r, &**l)).collect();
        let mut record = Vec::with_capacity(new_series.len() * 64);
        encode_series(&mut record, &list);
        let ack = inner.wal.write(record);
        drop(reg);
        Some(ack)
    }

    /// Stops accepting writes and flushes the head to blocks, leaving an
    /// empty WAL. Called on shutdown.
    pub async fn close(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::Release);
        // Wait for appends in flight to queue their WAL records.
        drop(self.inner.append_lock.write());
        self.flush_head().await?;
        // Every sample is in blocks now: the checkpoint of live series that
        // starts the current segment is no longer needed. Start an empty
        // segment and drop the rest, so a stopped node keeps only blocks.
        let segment = self
            .inner
            .wal
            .rotate(Vec::new())
            .await
            .map_err(|_| StorageError::WalUnavailable("wal writer stopped".into()))?
            .map_err(StorageError::WalUnavailable)?;
        self.inner.wal.remove_segments_before(segment)?;
        self.inner.metadata.save(&self.inner.opts.data_dir.join(METADATA_FILE))
    }

    /// Metric metadata (type, help, unit) sent by clients.
    pub fn metadata(&self) -> Arc<MetadataStore> {
        self.inner.metadata.clone()
    }

    /// Loaded blocks, oldest first.
    pub fn blocks(&self) -> Vec<Arc<Block>> {
        self.inner.blocks.read().clone()
    }

    /// Refreshes the size gauges (blocks, bytes on disk).
    pub fn refresh_gauges(&self) {
        let blocks = self.inner.blocks.read();
        self.inner.stats.blocks.set(blocks.len() as u64);
        self.inner
            .stats
            .block_bytes
            .set(blocks.iter().map(|b| b.meta.bytes()).sum());
        drop(blocks);
        self.inner.stats.wal_bytes.set(self.inner.wal.disk_bytes());
        self.inner.stats.head_samples.set(self.head_samples());
        self.inner
            .stats
            .head_series
            .set(self.inner.registry.read().len() as u64);
    }

    /// Runs head flushes, compaction and retention until `shutdown` fires:
    /// flushes every 500 ms as needed, compaction and retention every 10 s
    /// in a task of their own, so that neither waits for the other.
    pub async fn run_maintenance(self, shutdown: tokio::sync::watch::Receiver<bool>) {
        let compaction = tokio::spawn(self.clone().run_compaction(shutdown.clone()));
        self.run_flushes(shutdown).await;
        if let Err(e) = compaction.await {
            tracing::error!(error = %e, "compaction task failed");
        }
    }

    async fn run_flushes(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        while next_tick(&mut tick, &mut shutdown).await {
            if self.head_needs_flush()
                && let Err(e) = self.flush_head().await
            {
                tracing::error!(error = %e, "head flush failed; will retry");
            }
            self.refresh_gauges();
        }
    }

    async fn run_compaction(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.tick().await; // the first tick is immediate; start after 10 s
        while next_tick(&mut tick, &mut shutdown).await {
            if let Err(e) = self.compact().await {
                tracing::error!(error = %e, "compaction failed; will retry");
            }
            if let Err(e) = self.apply_retention().await {
                tracing::error!(error = %e, "retention failed; will retry");
            }
        }
    }

    fn head_needs_flush(&self) -> bool {
        let head = self.inner.heads.read().active.clone();
        let n = head.num_samples();
        n >= self.inner.opts.head_max_samples || (n > 0 && head.age() >= self.inner.opts.head_max_age)
    }
}

#[cfg(test)]
mod tests;
