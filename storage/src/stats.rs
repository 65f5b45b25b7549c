//! Storage self-metrics: lock-free counters and histograms that the binary
//! renders in the Prometheus text format under `sightline_storage_*`.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// A cumulative-on-read latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// `(upper bound, cumulative count)` per bucket, then total count and sum
    /// in seconds, as Prometheus histograms expose them.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut acc = 0;
        let buckets = LATENCY_BUCKETS
            .iter()
            .zip(self.buckets.iter())
            .map(|(b, c)| {
                acc += c.load(Ordering::Relaxed);
                (*b, acc)
            })
            .collect();
        (
            buckets,
            self.count.load(Ordering::Relaxed),
            self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        )
    }
}

/// Every metric the storage layer keeps about itself.
#[derive(Debug, Default)]
pub struct StorageStats {
    /// Samples stored in the head (after de-duplication).
    pub samples_appended: Counter,
    /// Samples dropped because an identical sample was already stored.
    pub samples_duplicate: Counter,
    /// Samples refused: older than the out-of-order window.
    pub samples_too_old: Counter,
    /// Samples refused: too far in the future.
    pub samples_too_new: Counter,
    /// Samples refused: same timestamp as a stored sample, other value.
    pub samples_conflicting: Counter,
    /// Series created in the head.
    pub series_created: Counter,
    /// Series currently indexed in the head.
    pub head_series: Gauge,
    /// Samples currently in memory (head and heads being flushed).
    pub head_samples: Gauge,
    /// Write-ahead log fsync latency.
    pub wal_fsync_seconds: LatencyHistogram,
    /// Bytes written to the write-ahead log.
    pub wal_bytes_written: Counter,
    /// Corrupt or torn WAL records cut off at start-up.
    pub wal_corruptions: Counter,
    /// Head flushes to blocks completed.
    pub head_flushes: Counter,
    /// Compactions completed.
    pub compactions: Counter,
    /// Blocks deleted by retention.
    pub retention_deletions: Counter,
    /// Blocks currently loaded.
    pub blocks: Gauge,
    /// Bytes of block files on disk.
    pub block_bytes: Gauge,
    /// Bytes of write-ahead log segments on disk.
    pub wal_bytes: Gauge,
}
