//! The in-memory head: the series registry (labels, references, postings)
//! and the recent samples of each series, sorted by time.
//!
//! The registry outlives a head: when the head is cut into blocks a fresh
//! head takes its place while the registry keeps the references that the
//! write-ahead log uses.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::chunk::SeriesChunks;
use crate::labels::{Labels, SharedLabels};
use crate::postings::Postings;
use crate::sample::Sample;

/// A global series reference, stable for as long as the series is live.
pub type SeriesRef = u64;

/// Hasher for keys that are already well-mixed or small integers: one
/// multiplication instead of SipHash.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write_u128(&mut self, n: u128) {
        // Keys of this kind are hashes already: their low half will do.
        self.write_u64(n as u64);
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A `HashMap` using [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;

/// Maps label sets to series references and indexes them by label.
#[derive(Debug, Default)]
pub struct SeriesRegistry {
    by_hash: FastMap<u64, Vec<(SeriesRef, SharedLabels)>>,
    /// Series by the key of their labels as a client encoded them
    /// ([`crate::batch::series_key`]).
    by_key: FastMap<u128, SeriesRef>,
    series: FastMap<SeriesRef, SharedLabels>,
    postings: Postings<SeriesRef>,
    next_ref: SeriesRef,
}

impl SeriesRegistry {
    /// An empty registry whose first reference is 1.
    pub fn new() -> Self {
        SeriesRegistry {
            next_ref: 1,
            ..Default::default()
        }
    }

    /// The reference of a known label set.
    pub fn lookup(&self, hash: u64, labels: &Labels) -> Option<SeriesRef> {
        self.by_hash
            .get(&hash)?
            .iter()
            .find(|(_, l)| **l == *labels)
            .map(|(r, _)| *r)
    }

    /// The reference of a known series given as label pairs in order
    /// (no allocation).
    pub fn lookup_pairs(&self, hash: u64, pairs: &[(&str, &str)]) -> Option<SeriesRef> {
        self.by_hash
            .get(&hash)?
            .iter()
            .find(|(_, l)| l.eq_pairs(pairs))
            .map(|(r, _)| *r)
    }

    /// The series a client's series key names, if it is known.
    pub fn lookup_key(&self, key: u128) -> Option<SeriesRef> {
        self.by_key.get(&key).copied()
    }

    /// Remembers that `key` names series `r` (a key for the same series
    /// from another client's encoding is kept beside it). The caller has
    /// checked that the key's wire labels validate to the series' labels.
    pub fn remember_key(&mut self, key: u128, r: SeriesRef) {
        if self.series.contains_key(&r) {
            self.by_key.insert(key, r);
        }
    }

    /// Registers a new series and returns its reference. The caller has
    /// checked with [`SeriesRegistry::lookup`] that it is new.
    pub fn create(&mut self, hash: u64, labels: SharedLabels) -> SeriesRef {
        let r = self.next_ref;
        self.next_ref += 1;
        self.insert_with_ref(r, hash, labels);
        r
    }

    /// Registers a series under a given reference (write-ahead log replay).
    pub fn insert_with_ref(&mut self, r: SeriesRef, hash: u64, labels: SharedLabels) {
        if self.series.contains_key(&r) {
            return;
        }
        self.postings.insert(r, &labels);
        self.by_hash.entry(hash).or_default().push((r, labels.clone()));
        self.series.insert(r, labels);
        self.next_ref = self.next_ref.max(r + 1);
    }

    /// Labels of a reference.
    pub fn labels(&self, r: SeriesRef) -> Option<&SharedLabels> {
        self.series.get(&r)
    }

    /// The postings index over live series.
    pub fn postings(&self) -> &Postings<SeriesRef> {
        &self.postings
    }

    /// Number of live series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True when no series is registered.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Forgets every series not in `keep`; returns how many were dropped.
    pub fn retain(&mut self, keep: &BTreeSet<SeriesRef>) -> usize {
        let dead: BTreeSet<SeriesRef> = self.series.keys().filter(|r| !keep.contains(r)).copied().collect();
        if dead.is_empty() {
            return 0;
        }
        let series = &self.series;
        self.postings.remove_all(&dead, |r| series.get(&r).map(|l| &**l));
        self.by_key.retain(|_, r| !dead.contains(r));
        for r in &dead {
            if let Some(labels) = self.series.remove(r) {
                let h = labels.stable_hash();
                if let Some(v) = self.by_hash.get_mut(&h) {
                    v.retain(|(x, _)| x != r);
                    if v.is_empty() {
                        self.by_hash.remove(&h);
                    }
                }
            }
        }
        dead.len()
    }

    /// Every live series, for a write-ahead log checkpoint.
    pub fn all(&self) -> impl Iterator<Item = (SeriesRef, &SharedLabels)> {
        self.series.iter().map(|(r, l)| (*r, l))
    }
}

/// What happened to one sample offered to the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Stored.
    Stored,
    /// An identical sample (same time, same value bits) was already stored.
    Duplicate,
    /// Another value is already stored at this timestamp; the new one is
    /// refused (Prometheus' "duplicate sample for timestamp").
    Conflict,
}

const SHARDS: usize = 32;

/// Recent samples of every series, sharded by reference to spread locking.
#[derive(Debug)]
pub struct Head {
    shards: Vec<Mutex<FastMap<SeriesRef, SeriesChunks>>>,
    samples: AtomicU64,
    min_t: AtomicI64,
    max_t: AtomicI64,
    created: std::time::Instant,
}

impl Default for Head {
    fn default() -> Self {
        Self::new()
    }
}

impl Head {
    /// An empty head.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty head with room for `series` series without rehashing (the
    /// head that replaces a cut one expects about as many).
    pub fn with_capacity(series: usize) -> Self {
        let per_shard = series.div_ceil(SHARDS);
        Head {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(FastMap::with_capacity_and_hasher(per_shard, Default::default())))
                .collect(),
            samples: AtomicU64::new(0),
            min_t: AtomicI64::new(i64::MAX),
            max_t: AtomicI64::new(i64::MIN),
            created: std::time::Instant::now(),
        }
    }

    fn shard(&self, r: SeriesRef) -> &Mutex<FastMap<SeriesRef, SeriesChunks>> {
        &self.shards[(r as usize) % SHARDS]
    }

    /// Offers samples of one series; `on_outcome` sees each sample's fate.
    pub fn insert(&self, r: SeriesRef, samples: &[Sample], mut on_outcome: impl FnMut(&Sample, InsertOutcome)) {
        self.insert_many(&[(r, samples)], |_, s, outcome| on_outcome(s, outcome));
    }

    /// Offers the samples of many series at once; `on_outcome` sees each
    /// sample with the index of its item. Items are taken shard by shard
    /// (each shard locked once, its map probed while it is warm in the
    /// cache); items of one series keep their order.
    pub fn insert_many(
        &self,
        items: &[(SeriesRef, &[Sample])],
        mut on_outcome: impl FnMut(usize, &Sample, InsertOutcome),
    ) {
        let mut starts = [0usize; SHARDS + 1];
        for (r, _) in items {
            starts[(*r as usize) % SHARDS + 1] += 1;
        }
        for i in 0..SHARDS {
            starts[i + 1] += starts[i];
        }
        // One item (every call of `insert`, e.g. WAL replay at start-up)
        // needs no ordering and no allocation.
        let single = [0usize];
        let sorted: Vec<usize>;
        let order: &[usize] = if items.len() == 1 {
            &single
        } else {
            let mut next = starts;
            let mut by_shard = vec![0usize; items.len()];
            for (i, (r, _)) in items.iter().enumerate() {
                let shard = (*r as usize) % SHARDS;
                by_shard[next[shard]] = i;
                next[shard] += 1;
            }
            sorted = by_shard;
            &sorted
        };
        let mut stored = 0u64;
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for shard in 0..SHARDS {
            let group = &order[starts[shard]..starts[shard + 1]];
            if group.is_empty() {
                continue;
            }
            let mut map = self.shards[shard].lock();
            // Touch every series' open chunk first: these loads do not
            // depend on each other, so their cache misses overlap, and
            // the encoding below finds its bytes in cache. A lone series
            // (WAL replay inserts one at a time) has nothing to overlap.
            if group.len() > 1 {
                let mut warm = 0u8;
                for &i in group {
                    if let Some(c) = map.get(&items[i].0) {
                        warm ^= c.last_byte();
                    }
                }
                std::hint::black_box(warm);
            }
            for &i in group {
                let (r, samples) = items[i];
                let buf = map.entry(r).or_default();
                for s in samples {
                    let outcome = buf.insert(*s);
                    if outcome == InsertOutcome::Stored {
                        stored += 1;
                        lo = lo.min(s.t);
                        hi = hi.max(s.t);
                    }
                    on_outcome(i, s, outcome);
                }
            }
        }
        if stored > 0 {
            self.samples.fetch_add(stored, Ordering::Relaxed);
            self.min_t.fetch_min(lo, Ordering::Relaxed);
            self.max_t.fetch_max(hi, Ordering::Relaxed);
        }
    }

    /// Samples of `r` within `[start, end]` (inclusive), appended to `out`.
    pub fn read(&self, r: SeriesRef, start: i64, end: i64, out: &mut Vec<Sample>) {
        let shard = self.shard(r).lock();
        if let Some(buf) = shard.get(&r) {
            buf.read(start, end, out);
        }
    }

    /// True when the head holds samples of `r` overlapping `[start, end]`.
    pub fn has_samples_in(&self, r: SeriesRef, start: i64, end: i64) -> bool {
        let shard = self.shard(r).lock();
        shard.get(&r).is_some_and(|buf| buf.has_samples_in(start, end))
    }

    /// Number of samples stored.
    pub fn num_samples(&self) -> u64 {
        self.samples.load(Ordering::Relaxed)
    }

    /// Smallest and largest stored timestamp, if any sample is stored.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let lo = self.min_t.load(Ordering::Relaxed);
        let hi = self.max_t.load(Ordering::Relaxed);
        (lo <= hi).then_some((lo, hi))
    }

    /// How long ago this head was started.
    pub fn age(&self) -> std::time::Duration {
        self.created.elapsed()
    }

    /// Number of series with samples.
    pub fn num_series(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// References of every series with samples.
    pub fn series_refs(&self) -> BTreeSet<SeriesRef> {
        let mut out = BTreeSet::new();
        for s in &self.shards {
            out.extend(s.lock().keys().copied());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn head_keeps_samples_sorted_and_deduplicated() {
        let head = Head::new();
        let mut outcomes = Vec::new();
        let samples = [
            Sample::new(20, 2.0),
            Sample::new(10, 1.0),
            Sample::new(20, 2.0),
            Sample::new(20, 3.0),
            Sample::new(30, 4.0),
        ];
        head.insert(1, &samples, |_, o| outcomes.push(o));
        assert_eq!(
            outcomes,
            vec![
                InsertOutcome::Stored,
                InsertOutcome::Stored,
                InsertOutcome::Duplicate,
                InsertOutcome::Conflict,
                InsertOutcome::Stored
            ]
        );
        let mut out = Vec::new();
        head.read(1, 10, 25, &mut out);
        assert_eq!(out, vec![Sample::new(10, 1.0), Sample::new(20, 2.0)]);
        assert_eq!(head.num_samples(), 3);
        assert_eq!(head.time_range(), Some((10, 30)));
    }

    #[test]
    fn many_series_at_once_are_stored_as_one_at_a_time() {
        let one = Head::new();
        let many = Head::new();
        // Series 1 and 33 share a shard; series 1 comes twice, in order.
        let a = [Sample::new(10, 1.0), Sample::new(20, 2.0)];
        let b = [Sample::new(20, 9.0), Sample::new(30, 3.0)];
        let c = [Sample::new(5, 5.0)];
        let items: Vec<(SeriesRef, &[Sample])> = vec![(1, &a), (2, &c), (33, &c), (1, &b)];
        let mut want = Vec::new();
        for (i, (r, samples)) in items.iter().enumerate() {
            one.insert(*r, samples, |s, o| want.push((i, s.t, o)));
        }
        let mut got = Vec::new();
        many.insert_many(&items, |i, s, o| got.push((i, s.t, o)));
        got.sort_by_key(|(i, t, _)| (*i, *t));
        want.sort_by_key(|(i, t, _)| (*i, *t));
        assert_eq!(got, want);
        assert!(got.contains(&(3, 20, InsertOutcome::Conflict)));
        assert_eq!(many.num_samples(), one.num_samples());
        assert_eq!(many.time_range(), Some((5, 30)));
        for r in [1, 2, 33] {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            one.read(r, i64::MIN, i64::MAX, &mut x);
            many.read(r, i64::MIN, i64::MAX, &mut y);
            assert_eq!(x, y);
        }
    }

    #[test]
    fn registry_finds_and_forgets_series() {
        let mut reg = SeriesRegistry::new();
        let a = Labels::from_pairs([("__name__", "a")]);
        let b = Labels::from_pairs([("__name__", "b")]);
        let ra = reg.create(a.stable_hash(), Arc::new(a.clone()));
        let rb = reg.create(b.stable_hash(), Arc::new(b.clone()));
        assert_eq!(reg.lookup(a.stable_hash(), &a), Some(ra));
        reg.remember_key(77, ra);
        assert_eq!(reg.lookup_key(77), Some(ra));
        assert_eq!(reg.lookup_key(78), None);
        assert_eq!(reg.retain(&BTreeSet::from([rb])), 1);
        assert_eq!(reg.lookup(a.stable_hash(), &a), None);
        assert_eq!(reg.lookup_key(77), None, "a dead series' key is forgotten");
        assert_eq!(reg.postings().all(), &[rb]);
    }
}
