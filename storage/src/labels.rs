//! Label sets: the identity of a series.
//!
//! A [`Labels`] value is always sorted by label name, holds no duplicate
//! names and no empty values, so two equal label sets compare and hash
//! equal. [`validate_labels`] checks untrusted input against the rules
//! Prometheus applies before anything reaches storage.

use std::fmt;
use std::sync::Arc;

/// The reserved label that carries a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// One `name="value"` pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    /// The label name, e.g. `instance`.
    pub name: String,
    /// The label value; never empty inside a [`Labels`].
    pub value: String,
}

impl Label {
    /// Builds a label from anything string-like.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A sorted, duplicate-free set of labels identifying one series.
///
/// Stored compactly: all names and values back to back in one string plus
/// their end offsets, two allocations per series instead of two per label
/// (a 15-label series takes about a third of the memory it would as
/// separate `String`s, which matters with a million series in memory).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels {
    /// name0 value0 name1 value1 … with no separators.
    text: Box<str>,
    /// End offset in `text` of every name and value (two per label).
    ends: Box<[u32]>,
}

/// One label of a [`Labels`] set, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelRef<'a> {
    /// The label name.
    pub name: &'a str,
    /// The label value (never empty).
    pub value: &'a str,
}

/// Shared, immutable label set as held by indexes.
pub type SharedLabels = Arc<Labels>;

impl Labels {
    /// Builds from pairs already sorted by name, without empty values.
    fn from_sorted_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        let mut text = String::new();
        let mut ends = Vec::new();
        for (n, v) in pairs {
            text.push_str(n);
            ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
            text.push_str(v);
            ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
        }
        Labels {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    /// Builds a label set from pairs in any order: sorts by name and drops
    /// empty values (an empty value means "no such label" in Prometheus).
    /// Duplicate names are kept; use [`validate_labels`] to reject them.
    pub fn from_pairs<I, N, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<str>,
        V: AsRef<str>,
    {
        let mut v: Vec<(N, V)> = pairs.into_iter().filter(|(_, v)| !v.as_ref().is_empty()).collect();
        v.sort_by(|a, b| (a.0.as_ref(), a.1.as_ref()).cmp(&(b.0.as_ref(), b.1.as_ref())));
        Self::from_sorted_pairs(v.iter().map(|(n, v)| (n.as_ref(), v.as_ref())))
    }

    /// The value of `name`, if the set has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|l| l.name == name).map(|l| l.value)
    }

    /// The metric name (`__name__`), if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Iterates the labels in name order.
    pub fn iter(&self) -> LabelIter<'_> {
        LabelIter { labels: self, next: 0 }
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.ends.len() / 2
    }

    /// True when the set has no labels.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The labels as owned pairs, in name order.
    pub fn to_vec(&self) -> Vec<Label> {
        self.iter().map(|l| Label::new(l.name, l.value)).collect()
    }

    /// A stable 64-bit hash of the label set (xxh3 over names and values
    /// with separators), used to find a series without comparing strings.
    pub fn stable_hash(&self) -> u64 {
        let mut buf = Vec::with_capacity(self.text.len() + self.ends.len());
        hash_label_pairs(&mut buf, self.iter().map(|l| (l.name, l.value)))
    }

    /// True when the set equals `pairs` exactly (same order, same strings).
    ///
    /// This is the hot path of every write (one call per incoming series),
    /// so it compares raw bytes at the stored offsets.
    pub fn eq_pairs(&self, pairs: &[(&str, &str)]) -> bool {
        if self.ends.len() != pairs.len() * 2 {
            return false;
        }
        let text = self.text.as_bytes();
        let mut start = 0usize;
        for (i, (n, v)) in pairs.iter().enumerate() {
            let mid = self.ends[2 * i] as usize;
            let end = self.ends[2 * i + 1] as usize;
            if text.get(start..mid) != Some(n.as_bytes()) || text.get(mid..end) != Some(v.as_bytes()) {
                return false;
            }
            start = end;
        }
        true
    }

    /// Approximate heap bytes held by this set.
    pub fn heap_bytes(&self) -> usize {
        self.text.len() + self.ends.len() * 4
    }
}

/// Iterator over a [`Labels`] set.
pub struct LabelIter<'a> {
    labels: &'a Labels,
    next: usize,
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = LabelRef<'a>;

    fn next(&mut self) -> Option<LabelRef<'a>> {
        let ends = &self.labels.ends;
        if self.next + 1 >= ends.len() {
            return None;
        }
        let start = if self.next == 0 {
            0
        } else {
            ends[self.next - 1] as usize
        };
        let mid = ends[self.next] as usize;
        let end = ends[self.next + 1] as usize;
        self.next += 2;
        let text = &self.labels.text;
        Some(LabelRef {
            name: text.get(start..mid).unwrap_or(""),
            value: text.get(mid..end).unwrap_or(""),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.labels.ends.len().saturating_sub(self.next)) / 2;
        (n, Some(n))
    }
}

impl ExactSizeIterator for LabelIter<'_> {}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    /// Lexicographic by (name, value) pairs, as Prometheus orders series.
    ///
    /// Pairs compared in order are strings compared in order (name0,
    /// value0, name1, …), so this finds the first string that differs from
    /// the common prefix of the two texts and the string boundaries,
    /// instead of walking label by label (sorting series at every flush
    /// and merge spent most of its time in that walk).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if std::ptr::eq(self, other) {
            return std::cmp::Ordering::Equal;
        }
        let (a, b) = (self.text.as_bytes(), other.text.as_bytes());
        let same = common_prefix(a, b);
        let mut start = 0usize;
        for (&ea, &eb) in self.ends.iter().zip(other.ends.iter()) {
            let (ea, eb) = (ea as usize, eb as usize);
            if ea != eb || ea > same {
                return a[start..ea].cmp(&b[start..eb]);
            }
            start = ea;
        }
        self.ends.len().cmp(&other.ends.len())
    }
}

/// Length of the longest common prefix of `a` and `b`, eight bytes at a
/// time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let (x, y) = (word_at(a, i), word_at(b, i));
        if x != y {
            return i + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// The eight bytes at `i` as a little-endian word (the caller checked that
/// they exist).
fn word_at(s: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[i..i + 8]);
    u64::from_le_bytes(w)
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter().map(|l| (l.name, l.value))).finish()
    }
}

/// Hashes sorted label pairs exactly as [`Labels::stable_hash`] does, so a
/// caller can look a series up before building a [`Labels`] value. `buf`
/// is scratch space reused between calls.
pub fn hash_label_pairs<'a>(buf: &mut Vec<u8>, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    buf.clear();
    for (n, v) in pairs {
        buf.extend_from_slice(n.as_bytes());
        buf.push(0xff);
        buf.extend_from_slice(v.as_bytes());
        buf.push(0xfe);
    }
    xxhash_rust::xxh3::xxh3_64(buf)
}

impl fmt::Display for Labels {
    /// Formats as Prometheus does: `name{a="b", c="d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name().unwrap_or("");
        write!(f, "{name}{{")?;
        let mut first = true;
        for l in self.iter().filter(|l| l.name != METRIC_NAME) {
            if !first {
                write!(f, ", ")?;
            }
            first = false;
            write!(f, "{}=\"{}\"", l.name, escape_label_value(l.value))?;
        }
        write!(f, "}}")
    }
}

fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

impl<'a> IntoIterator for &'a Labels {
    type Item = LabelRef<'a>;
    type IntoIter = LabelIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Why a label set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// The series has no labels at all.
    #[error("series has no labels")]
    Empty,
    /// The series has no `__name__` label.
    #[error("series has no metric name (__name__ label)")]
    MissingMetricName,
    /// A label name is the empty string.
    #[error("empty label name")]
    EmptyName,
    /// Label names are not in ascending order.
    #[error("labels are not sorted by name: {0:?} comes after {1:?}")]
    Unsorted(String, String),
    /// The same label name appears twice.
    #[error("duplicate label name {0:?}")]
    Duplicate(String),
    /// A label name breaks `[a-zA-Z_][a-zA-Z0-9_]*` (or is not UTF-8).
    #[error("invalid label name {0:?}")]
    InvalidName(String),
    /// The metric name breaks `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("invalid metric name {0:?}")]
    InvalidMetricName(String),
    /// Too many labels on one series.
    #[error("series has {0} labels, more than the limit of {1}")]
    TooMany(usize, usize),
    /// A name or value is longer than allowed.
    #[error("label {0:?} is {1} bytes long, more than the limit of {2}")]
    TooLong(String, usize, usize),
    /// The bytes the client sent for the labels are not labels.
    #[error("labels could not be decoded: {0}")]
    Undecodable(String),
}

/// Limits applied to every incoming label set.
#[derive(Debug, Clone, Copy)]
pub struct LabelLimits {
    /// Maximum labels per series (Prometheus' `label_limit`).
    pub max_labels: usize,
    /// Maximum bytes of one label name or value.
    pub max_label_bytes: usize,
}

impl Default for LabelLimits {
    fn default() -> Self {
        LabelLimits {
            max_labels: 64,
            max_label_bytes: 4096,
        }
    }
}

/// True for a legal Prometheus label name.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut b = name.bytes();
    match b.next() {
        Some(c) if c.is_ascii_alphabetic() || c == b'_' => {}
        _ => return false,
    }
    b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// True for a legal Prometheus metric name.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut b = name.bytes();
    match b.next() {
        Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {}
        _ => return false,
    }
    b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// Checks labels exactly as they arrived on the wire (order preserved) and
/// returns the label set with empty values dropped.
///
/// Rules: at least one label; a valid `__name__`; names non-empty, valid,
/// strictly ascending (so no duplicates); within `limits`.
pub fn validate_labels(pairs: &[(&str, &str)], limits: &LabelLimits) -> Result<Labels, LabelError> {
    if pairs.is_empty() {
        return Err(LabelError::Empty);
    }
    if pairs.len() > limits.max_labels {
        return Err(LabelError::TooMany(pairs.len(), limits.max_labels));
    }
    let mut has_name = false;
    for (i, (name, value)) in pairs.iter().enumerate() {
        if name.is_empty() {
            return Err(LabelError::EmptyName);
        }
        if name.len() > limits.max_label_bytes || value.len() > limits.max_label_bytes {
            let len = name.len().max(value.len());
            return Err(LabelError::TooLong(name.to_string(), len, limits.max_label_bytes));
        }
        if i > 0 {
            let prev = pairs[i - 1].0;
            if prev == *name {
                return Err(LabelError::Duplicate(name.to_string()));
            }
            if prev > *name {
                return Err(LabelError::Unsorted(name.to_string(), prev.to_string()));
            }
        }
        if *name == METRIC_NAME {
            if !is_valid_metric_name(value) {
                return Err(LabelError::InvalidMetricName(value.to_string()));
            }
            has_name = true;
        } else if !is_valid_label_name(name) {
            return Err(LabelError::InvalidName(name.to_string()));
        }
    }
    if !has_name {
        return Err(LabelError::MissingMetricName);
    }
    Ok(Labels::from_sorted_pairs(
        pairs.iter().filter(|(_, v)| !v.is_empty()).copied(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l<'a>(pairs: &'a [(&'a str, &'a str)]) -> &'a [(&'a str, &'a str)] {
        pairs
    }

    #[test]
    fn label_sets_order_as_their_pairs_do() {
        // Names and values from a tiny alphabet, so that sets share long
        // prefixes and differ at every possible place: a name against a
        // value, a string against its own prefix, one set against its
        // extension, a difference inside and across the first 8 bytes.
        let mut seed = 3u64;
        let mut next = |m: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        let mut sets = Vec::new();
        for _ in 0..400 {
            let n = next(4) as usize;
            let mut pairs: Vec<(String, String)> = Vec::new();
            for _ in 0..n {
                let name: String = (0..1 + next(9)).map(|_| ["a", "b", "aa"][next(3) as usize]).collect();
                let value: String = (0..1 + next(12)).map(|_| ["x", "y", "ab"][next(3) as usize]).collect();
                pairs.push((name, value));
            }
            sets.push(Labels::from_pairs(pairs));
        }
        for a in &sets {
            assert_eq!(a.cmp(a), std::cmp::Ordering::Equal);
            for b in &sets {
                assert_eq!(a.cmp(b), a.iter().cmp(b.iter()), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn accepts_sorted_labels_and_drops_empty_values() {
        let ls = validate_labels(
            l(&[("__name__", "up"), ("empty", ""), ("job", "node")]),
            &LabelLimits::default(),
        )
        .expect("valid");
        assert_eq!(ls.len(), 2);
        assert_eq!(ls.get("job"), Some("node"));
        assert_eq!(ls.get("empty"), None);
        assert_eq!(ls.to_string(), "up{job=\"node\"}");
    }

    #[test]
    fn rejects_each_kind_of_bad_label_set() {
        let lim = LabelLimits::default();
        assert_eq!(validate_labels(&[], &lim), Err(LabelError::Empty));
        assert!(matches!(
            validate_labels(l(&[("job", "x"), ("__name__", "up")]), &lim),
            Err(LabelError::Unsorted(..))
        ));
        assert!(matches!(
            validate_labels(l(&[("__name__", "up"), ("a", "1"), ("a", "2")]), &lim),
            Err(LabelError::Duplicate(..))
        ));
        assert!(matches!(
            validate_labels(l(&[("", "x"), ("__name__", "up")]), &lim),
            Err(LabelError::EmptyName)
        ));
        assert!(matches!(
            validate_labels(l(&[("__name__", "1up")]), &lim),
            Err(LabelError::InvalidMetricName(..))
        ));
        assert!(matches!(
            validate_labels(l(&[("__name__", "up"), ("bad-name", "x")]), &lim),
            Err(LabelError::InvalidName(..))
        ));
        assert!(matches!(
            validate_labels(l(&[("job", "x")]), &lim),
            Err(LabelError::MissingMetricName)
        ));
    }

    #[test]
    fn compact_labels_iterate_compare_and_order_by_pairs() {
        let a = Labels::from_pairs([("a", "bc")]);
        let b = Labels::from_pairs([("ab", "c")]);
        assert_ne!(a, b);
        assert!(a < b, "ordered by name first, not by the concatenated text");
        let c = Labels::from_pairs([("z", "1"), ("__name__", "up"), ("empty", "")]);
        let pairs: Vec<(&str, &str)> = c.iter().map(|l| (l.name, l.value)).collect();
        assert_eq!(pairs, vec![("__name__", "up"), ("z", "1")]);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("z"), Some("1"));
        assert_eq!(c.get("empty"), None);
        assert!(c.eq_pairs(&[("__name__", "up"), ("z", "1")]));
        assert!(!c.eq_pairs(&[("__name__", "up"), ("z", "2")]));
        assert!(
            !c.eq_pairs(&[("__name__", "upz"), ("", "1")]),
            "same bytes, other split"
        );
        assert!(!c.eq_pairs(&[("__name__", "up")]));
        assert!(Labels::default().is_empty());
        assert_eq!(Labels::default().iter().count(), 0);
    }

    #[test]
    fn hash_is_order_independent_of_construction() {
        let a = Labels::from_pairs([("b", "2"), ("a", "1")]);
        let b = Labels::from_pairs([("a", "1"), ("b", "2")]);
        assert_eq!(a.stable_hash(), b.stable_hash());
        let c = Labels::from_pairs([("a", "12")]);
        let d = Labels::from_pairs([("a", "1"), ("2", "")]);
        assert_ne!(c.stable_hash(), d.stable_hash());
    }
}
