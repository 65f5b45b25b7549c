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
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<Label>);

/// Shared, immutable label set as held by indexes.
pub type SharedLabels = Arc<Labels>;

impl Labels {
    /// Builds a label set from pairs in any order: sorts by name and drops
    /// empty values (an empty value means "no such label" in Prometheus).
    /// Duplicate names are kept; use [`validate_labels`] to reject them.
    pub fn from_pairs<I, N, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<String>,
        V: Into<String>,
    {
        let mut v: Vec<Label> = pairs
            .into_iter()
            .map(|(n, v)| Label::new(n, v))
            .filter(|l| !l.value.is_empty())
            .collect();
        v.sort();
        Labels(v)
    }

    /// Wraps labels that the caller has already sorted and validated
    /// (for example with [`validate_labels`]).
    pub fn from_sorted(labels: Vec<Label>) -> Self {
        debug_assert!(labels.windows(2).all(|w| w[0].name < w[1].name));
        Labels(labels)
    }

    /// The value of `name`, if the set has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// The metric name (`__name__`), if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Iterates the labels in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the set has no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The labels as a slice, sorted by name.
    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    /// Consumes the set, returning the sorted labels.
    pub fn into_vec(self) -> Vec<Label> {
        self.0
    }

    /// A stable 64-bit hash of the label set (xxh3 over names and values
    /// with separators), used to find a series without comparing strings.
    pub fn stable_hash(&self) -> u64 {
        let mut buf = Vec::with_capacity(256);
        hash_label_pairs(&mut buf, self.0.iter().map(|l| (l.name.as_str(), l.value.as_str())))
    }

    /// True when the set equals `pairs` exactly (same order, same strings).
    pub fn eq_pairs(&self, pairs: &[(&str, &str)]) -> bool {
        self.0.len() == pairs.len()
            && self
                .0
                .iter()
                .zip(pairs)
                .all(|(l, (n, v))| l.name == *n && l.value == *v)
    }

    /// Approximate heap bytes held by this set.
    pub fn heap_bytes(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<Label>()
            + self
                .0
                .iter()
                .map(|l| l.name.capacity() + l.value.capacity())
                .sum::<usize>()
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
        for l in self.0.iter().filter(|l| l.name != METRIC_NAME) {
            if !first {
                write!(f, ", ")?;
            }
            first = false;
            write!(f, "{}=\"{}\"", l.name, escape_label_value(&l.value))?;
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
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
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
    Ok(Labels(
        pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| Label::new(*n, *v))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l<'a>(pairs: &'a [(&'a str, &'a str)]) -> &'a [(&'a str, &'a str)] {
        pairs
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
    fn hash_is_order_independent_of_construction() {
        let a = Labels::from_pairs([("b", "2"), ("a", "1")]);
        let b = Labels::from_pairs([("a", "1"), ("b", "2")]);
        assert_eq!(a.stable_hash(), b.stable_hash());
        let c = Labels::from_pairs([("a", "12")]);
        let d = Labels::from_pairs([("a", "1"), ("2", "")]);
        assert_ne!(c.stable_hash(), d.stable_hash());
    }
}
