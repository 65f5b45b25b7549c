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
//!
//! A series with a key may also leave its labels undecoded: the batch then
//! holds the span of wire bytes they are in and a decoder for them, and
//! decodes them only if the database does not know the key. Most series of
//! a steady stream are known, so most labels are never decoded at all.

use std::borrow::Cow;
use std::ops::Range;

use crate::labels::Label;
use crate::sample::Sample;

/// Decodes the labels of one series from the bytes a client encoded them
/// as, appending (name, value) pairs in wire order to `out`. The error
/// says what is wrong with the bytes.
pub type WireLabelsDecoder = for<'b> fn(&'b [u8], &mut Vec<(&'b str, &'b str)>) -> Result<(), String>;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The series' range in `pairs`, or in the wire bytes when `deferred`.
    pairs: (u32, u32),
    samples: (u32, u32),
    key: u128,
    deferred: bool,
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
    /// Where deferred labels are, and how to decode them.
    wire: Option<(&'a [u8], WireLabelsDecoder)>,
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
            wire: None,
        }
    }

    /// Lets series of this batch leave their labels in `wire`, to be
    /// decoded by `decode` only when needed (see
    /// [`WriteBatch::finish_series_deferred`]).
    pub fn defer_labels_to(&mut self, wire: &'a [u8], decode: WireLabelsDecoder) {
        self.wire = Some((wire, decode));
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
                deferred: false,
            });
        } else {
            self.pairs.truncate(self.open_pairs);
        }
        self.open_pairs = self.pairs.len();
        self.open_samples = self.samples.len();
    }

    /// Closes the series being built, whose labels are the bytes `span` of
    /// the wire given to [`WriteBatch::defer_labels_to`] and whose key is
    /// the [`series_key`] of those bytes. Labels pushed for it are dropped.
    pub fn finish_series_deferred(&mut self, key: u128, span: Range<usize>) {
        self.pairs.truncate(self.open_pairs);
        if self.samples.len() > self.open_samples {
            self.series.push(Entry {
                pairs: (span.start as u32, span.end as u32),
                samples: (self.open_samples as u32, self.samples.len() as u32),
                key,
                deferred: true,
            });
        }
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

    /// The labels of series `i`, in wire order, decoded now if they were
    /// deferred. An error says why the wire bytes are not labels.
    pub fn labels(&self, i: usize) -> Result<Cow<'_, [(&'a str, &'a str)]>, String> {
        let e = self.series[i];
        let range = e.pairs.0 as usize..e.pairs.1 as usize;
        if !e.deferred {
            return Ok(Cow::Borrowed(&self.pairs[range]));
        }
        let (wire, decode) = self.wire.ok_or("the batch has no wire bytes for deferred labels")?;
        let span = wire
            .get(range.clone())
            .ok_or_else(|| format!("labels at bytes {range:?} are outside the request"))?;
        let mut out = Vec::new();
        decode(span, &mut out)?;
        Ok(Cow::Owned(out))
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
        match self.labels(i) {
            Ok(pairs) => {
                let inner: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
                format!("{{{}}}", inner.join(", "))
            }
            Err(e) => format!("#{} (undecodable labels: {e})", i + 1),
        }
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
        assert_eq!(*b.labels(1).expect("labels"), [("__name__", "down")]);
        assert_eq!(b.samples(1).len(), 2);
        assert_eq!(b.num_samples(), 3);
        assert_eq!(b.describe(0), "{__name__=\"up\"}");
    }

    fn decode_colon_pairs<'b>(wire: &'b [u8], out: &mut Vec<(&'b str, &'b str)>) -> Result<(), String> {
        let text = std::str::from_utf8(wire).map_err(|e| e.to_string())?;
        for pair in text.split(',') {
            out.push(pair.split_once(':').ok_or_else(|| format!("no colon in {pair:?}"))?);
        }
        Ok(())
    }

    #[test]
    fn deferred_labels_are_decoded_when_asked_for() {
        let wire = b"__name__:up,job:api__name__-bad";
        let mut b = WriteBatch::new();
        b.defer_labels_to(wire, decode_colon_pairs);
        b.push_sample(Sample::new(1, 1.0));
        b.finish_series_deferred(series_key(&wire[..19]), 0..19);
        b.push_label("__name__", "eager");
        b.push_sample(Sample::new(2, 2.0));
        b.finish_series();
        b.push_sample(Sample::new(3, 3.0));
        b.finish_series_deferred(series_key(&wire[19..]), 19..wire.len());
        // No samples: dropped like any other empty series.
        b.finish_series_deferred(7, 0..19);
        assert_eq!(b.len(), 3);
        assert_eq!(*b.labels(0).expect("labels"), [("__name__", "up"), ("job", "api")]);
        assert_eq!(b.key(0), series_key(b"__name__:up,job:api"));
        assert_eq!(*b.labels(1).expect("labels"), [("__name__", "eager")]);
        assert_eq!(b.samples(2), &[Sample::new(3, 3.0)]);
        assert_eq!(b.labels(2), Err("no colon in \"__name__-bad\"".to_string()));
        assert_eq!(b.describe(2), "#3 (undecodable labels: no colon in \"__name__-bad\")");
    }
}
