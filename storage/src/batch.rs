//! A write batch: the series and samples of one request, with label names
//! and values borrowed from the decoded request body, so that series the
//! head already knows cost no allocation at all.
//!
//! A decoder may also give each series a *key*: a 128-bit hash of the
//! series' labels exactly as the client encoded them ([`series_key`]). The
//! database remembers which series a key named, so a known series is found
//! by hashing bytes that are already contiguous and one probe of a map,
//! without touching its labels. Two different label encodings share a
//! 128-bit xxh3 hash with odds of about n²/2¹²⁹ among n keys (below 10⁻²⁰
//! for a billion series), far below the odds of undetected memory or disk
//! errors, so a key is trusted as the series' identity.

use crate::labels::Label;
use crate::sample::Sample;

#[derive(Debug, Clone, Copy)]
struct Entry {
    pairs: (u32, u32),
    samples: (u32, u32),
    key: u128,
}

/// The key of a series whose labels a client encoded as `wire` (for
/// example the bytes of every `Label` field of a remote-write
/// `TimeSeries`). Never 0, which means "no key".
pub fn series_key(wire: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(wire).max(1)
}

/// Series of one write, as received: labels in wire order (not yet
/// validated), samples in any order.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch<'a> {
    pairs: Vec<(&'a str, &'a str)>,
    samples: Vec<Sample>,
    series: Vec<Entry>,
    open_pairs: usize,
    open_samples: usize,
}

impl<'a> WriteBatch<'a> {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `series` series of `labels` labels.
    pub fn with_capacity(series: usize, labels: usize) -> Self {
        WriteBatch {
            pairs: Vec::with_capacity(series * labels),
            samples: Vec::with_capacity(series),
            series: Vec::with_capacity(series),
            open_pairs: 0,
            open_samples: 0,
        }
    }

    /// Adds a label to the series being built.
    pub fn push_label(&mut self, name: &'a str, value: &'a str) {
        self.pairs.push((name, value));
    }

    /// Adds a sample to the series being built.
    pub fn push_sample(&mut self, s: Sample) {
        self.samples.push(s);
    }

    /// Closes the series being built; one without samples is dropped.
    pub fn finish_series(&mut self) {
        self.finish_series_with_key(0);
    }

    /// Closes the series being built, with its [`series_key`] (0: none).
    pub fn finish_series_with_key(&mut self, key: u128) {
        if self.samples.len() > self.open_samples {
            self.series.push(Entry {
                pairs: (self.open_pairs as u32, self.pairs.len() as u32),
                samples: (self.open_samples as u32, self.samples.len() as u32),
                key,
            });
        } else {
            self.pairs.truncate(self.open_pairs);
        }
        self.open_pairs = self.pairs.len();
        self.open_samples = self.samples.len();
    }

    /// Drops the series being built (for example after a decode error in it).
    pub fn abandon_series(&mut self) {
        self.pairs.truncate(self.open_pairs);
        self.samples.truncate(self.open_samples);
    }

    /// Adds a whole series.
    pub fn add_series(&mut self, labels: &'a [Label], samples: &[Sample]) {
        for l in labels {
            self.push_label(&l.name, &l.value);
        }
        self.samples.extend_from_slice(samples);
        self.finish_series();
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True when the batch holds no series.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Total samples.
    pub fn num_samples(&self) -> usize {
        self.series.iter().map(|e| (e.samples.1 - e.samples.0) as usize).sum()
    }

    /// The labels of series `i`, in wire order.
    pub fn labels(&self, i: usize) -> &[(&'a str, &'a str)] {
        let e = self.series[i];
        &self.pairs[e.pairs.0 as usize..e.pairs.1 as usize]
    }

    /// The [`series_key`] of series `i`, 0 when the decoder gave none.
    pub fn key(&self, i: usize) -> u128 {
        self.series[i].key
    }

    /// The samples of series `i`.
    pub fn samples(&self, i: usize) -> &[Sample] {
        let e = self.series[i];
        &self.samples[e.samples.0 as usize..e.samples.1 as usize]
    }

    /// Series `i` as Prometheus prints a selector, for error messages.
    pub fn describe(&self, i: usize) -> String {
        let inner: Vec<String> = self.labels(i).iter().map(|(n, v)| format!("{n}={v:?}")).collect();
        format!("{{{}}}", inner.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_series_and_drops_empty_ones() {
        let mut b = WriteBatch::new();
        b.push_label("__name__", "up");
        b.push_sample(Sample::new(1, 1.0));
        b.finish_series();
        b.push_label("__name__", "no_samples");
        b.finish_series();
        b.push_label("__name__", "x");
        b.push_sample(Sample::new(2, 2.0));
        b.abandon_series();
        b.push_label("__name__", "down");
        b.push_sample(Sample::new(3, 0.0));
        b.push_sample(Sample::new(4, 0.0));
        b.finish_series();
        assert_eq!(b.len(), 2);
        assert_eq!(b.labels(1), &[("__name__", "down")]);
        assert_eq!(b.samples(1).len(), 2);
        assert_eq!(b.num_samples(), 3);
        assert_eq!(b.describe(0), "{__name__=\"up\"}");
    }
}
