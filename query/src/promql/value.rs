//! The values the evaluator passes between nodes: label sets, series of
//! points over the evaluation steps, and the shapes of a query result.

use std::sync::Arc;

use sightline_storage::Labels;
use sightline_storage::labels::METRIC_NAME;
use xxhash_rust::xxh3::Xxh3;

/// One `name="value"` pair of an evaluated series.
pub type Label = (String, String);

/// A label set, sorted by name, without empty values.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelSet(pub Vec<Label>);

impl LabelSet {
    /// Copies a stored label set.
    pub fn from_storage(l: &Labels) -> Self {
        LabelSet(l.iter().map(|l| (l.name.to_string(), l.value.to_string())).collect())
    }

    /// Builds from pairs in any order; empty values are dropped.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        let mut v: Vec<Label> = pairs
            .into_iter()
            .map(|(n, v)| (n.into(), v.into()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        v.sort();
        v.dedup_by(|a, b| a.0 == b.0);
        LabelSet(v)
    }

    /// The value of `name`, or "" when absent.
    pub fn get(&self, name: &str) -> &str {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => &self.0[i].1,
            Err(_) => "",
        }
    }

    /// True when the set has label `name`.
    pub fn has(&self, name: &str) -> bool {
        self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)).is_ok()
    }

    /// Sets `name` to `value`; an empty value removes the label.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].1 = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, (name.to_string(), value.to_string())),
        }
    }

    /// Removes `name` if present.
    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            self.0.remove(i);
        }
    }

    /// The set without `__name__` and the metadata labels that describe
    /// the metric it named (`__type__`, `__unit__`), as Prometheus drops
    /// them together.
    pub fn without_name(mut self) -> Self {
        self.remove(METRIC_NAME);
        self.remove("__type__");
        self.remove("__unit__");
        self
    }

    /// Keeps only the labels named in `names`.
    pub fn keep(&self, names: &[String]) -> Self {
        LabelSet(
            self.0
                .iter()
                .filter(|(n, _)| names.iter().any(|k| k == n))
                .cloned()
                .collect(),
        )
    }

    /// Drops the labels named in `names` (and `__name__` when `drop_name`).
    pub fn drop(&self, names: &[String], drop_name: bool) -> Self {
        LabelSet(
            self.0
                .iter()
                .filter(|(n, _)| !(names.iter().any(|k| k == n) || (drop_name && n == METRIC_NAME)))
                .cloned()
                .collect(),
        )
    }

    /// A hash of the labels `on` (`include` true) or of all but those
    /// (`include` false, which also leaves out `__name__`): the signature
    /// used to match and group series.
    pub fn signature(&self, names: &[String], include: bool) -> u64 {
        let mut h = Xxh3::new();
        for (n, v) in &self.0 {
            let listed = names.iter().any(|k| k == n);
            let take = if include { listed } else { !listed && n != METRIC_NAME };
            if take {
                h.update(n.as_bytes());
                h.update(&[0xff]);
                h.update(v.as_bytes());
                h.update(&[0xff]);
            }
        }
        h.digest()
    }

    /// A hash of the whole set.
    pub fn hash(&self) -> u64 {
        let mut h = Xxh3::new();
        for (n, v) in &self.0 {
            h.update(n.as_bytes());
            h.update(&[0xff]);
            h.update(v.as_bytes());
            h.update(&[0xff]);
        }
        h.digest()
    }
}

impl std::fmt::Display for LabelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.get(METRIC_NAME);
        f.write_str(name)?;
        f.write_str("{")?;
        let mut first = true;
        for (n, v) in &self.0 {
            if n == METRIC_NAME {
                continue;
            }
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{n}={v:?}")?;
        }
        f.write_str("}")
    }
}

/// A float as Prometheus prints sample values and label values made from
/// them (Go's `strconv.FormatFloat(f, 'f', -1, 64)`): shortest exact
/// decimal, no exponent, `NaN`, `+Inf`, `-Inf`.
pub fn format_float(f: f64) -> String {
    let mut s = String::new();
    push_float(&mut s, f);
    s
}

/// Appends [`format_float`]'s text to `out` without allocating (the JSON
/// hot path): ryu's shortest digits, with its `.0` suffix dropped and its
/// exponent form (|f| ≥ 1e16 or < 1e-5) left to Rust's `Display`, which,
/// like Go's `'f'` format, never writes an exponent.
pub fn push_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f == f64::INFINITY {
        out.push_str("+Inf");
    } else if f == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let mut buf = ryu::Buffer::new();
        let s = buf.format_finite(f);
        if s.contains('e') {
            use std::fmt::Write as _;
            let _ = write!(out, "{f}");
        } else {
            out.push_str(s.strip_suffix(".0").unwrap_or(s));
        }
    }
}

/// One point of a series: a timestamp (ms) and a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Milliseconds since the epoch.
    pub t: i64,
    /// The value.
    pub v: f64,
}

/// A series as evaluated: labels, whether `__name__` is still to be
/// dropped (Prometheus' delayed name removal), and points ascending in
/// time.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The labels, `__name__` possibly still present.
    pub labels: LabelSet,
    /// `__name__` goes when the query ends (or when a later step needs it
    /// gone) because a name-dropping operation touched this series.
    pub drop_name: bool,
    /// Points ascending by `t`.
    pub points: Vec<Point>,
}

impl Series {
    /// A series with no points yet.
    pub fn new(labels: LabelSet, drop_name: bool) -> Self {
        Series {
            labels,
            drop_name,
            points: Vec::new(),
        }
    }

    /// The labels the series will have once the query ends.
    pub fn final_labels(&self) -> LabelSet {
        if self.drop_name {
            self.labels.clone().without_name()
        } else {
            self.labels.clone()
        }
    }
}

/// Raw samples of one series, as read from storage or produced by a
/// subquery: the input of range-vector functions.
#[derive(Debug, Clone)]
pub struct RawSeries {
    /// The labels.
    pub labels: LabelSet,
    /// True when `__name__` is to be dropped (subquery results only).
    pub drop_name: bool,
    /// Timestamps ascending (ms).
    pub ts: Arc<Vec<i64>>,
    /// Values (stale markers removed where the series feeds a range).
    pub vs: Arc<Vec<f64>>,
    /// Start timestamps (ms, 0 = unknown) beside `ts`, when storage has
    /// any for the series; None for computed series (subqueries), whose
    /// samples have none.
    pub st: Option<Arc<Vec<i64>>>,
}

/// The result of a query, in the shapes of Prometheus' API.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    /// A single number at a time.
    Scalar(Point),
    /// A string at a time.
    String(i64, String),
    /// One value per series at the evaluation time.
    Vector(Vec<(LabelSet, Point)>),
    /// Many values per series (range query results and range selectors).
    Matrix(Vec<(LabelSet, Vec<Point>)>),
}

impl QueryValue {
    /// Prometheus' name of the result type.
    pub fn type_name(&self) -> &'static str {
        match self {
            QueryValue::Scalar(_) => "scalar",
            QueryValue::String(..) => "string",
            QueryValue::Vector(_) => "vector",
            QueryValue::Matrix(_) => "matrix",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_go_does() {
        for (f, want) in [
            (1.0, "1"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (100.0, "100"),
            (1e21, "1000000000000000000000"),
            (1e-7, "0.0000001"),
            (123456.789, "123456.789"),
            (0.0, "0"),
            (-0.0, "-0"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(format_float(f), want, "{f}");
        }
    }

    #[test]
    fn label_set_edits_keep_order() {
        let mut l = LabelSet::from_pairs([("job", "api"), ("__name__", "up"), ("a", "")]);
        assert_eq!(l.0.len(), 2);
        l.set("instance", "x");
        l.set("job", "");
        assert_eq!(l.to_string(), "up{instance=\"x\"}");
        assert_eq!(l.clone().without_name().to_string(), "{instance=\"x\"}");
    }

    #[test]
    fn signatures_ignore_name_only_when_excluding() {
        let a = LabelSet::from_pairs([("__name__", "a"), ("job", "x")]);
        let b = LabelSet::from_pairs([("__name__", "b"), ("job", "x")]);
        assert_eq!(a.signature(&[], false), b.signature(&[], false));
        assert_ne!(
            a.signature(&["__name__".into()], true),
            b.signature(&["__name__".into()], true)
        );
    }
}

/// Collects points into output series keyed by label set, as
/// Prometheus' range evaluation does: points of equal label sets at
/// different steps join one series; two at the same step are an error.
#[derive(Default)]
pub struct SeriesBuilder {
    index: std::collections::HashMap<u64, usize>,
    series: Vec<Series>,
    check_duplicates: bool,
}

/// The error Prometheus gives when one step yields two equal label sets.
pub const DUPLICATE_LABELSET: &str = "vector cannot contain metrics with the same labelset";

impl SeriesBuilder {
    /// A builder; with `check_duplicates` two points with equal labels at
    /// the same step fail, otherwise the later one is kept too (Prometheus
    /// defers that check to the end of an instant query).
    pub fn new(check_duplicates: bool) -> Self {
        SeriesBuilder {
            check_duplicates,
            ..Default::default()
        }
    }

    /// The index of the series with `labels`, creating it.
    pub fn series_for(&mut self, labels: LabelSet, drop_name: bool) -> usize {
        let h = labels.hash();
        match self.index.get(&h) {
            Some(&i) => i,
            None => {
                self.series.push(Series::new(labels, drop_name));
                self.index.insert(h, self.series.len() - 1);
                self.series.len() - 1
            }
        }
    }

    /// Appends a point to series `i` (in any order).
    pub fn push(&mut self, i: usize, p: Point) {
        self.series[i].points.push(p);
    }

    /// The collected series in creation order, points sorted by time.
    /// Two points of one series at the same time fail when duplicates are
    /// checked, and otherwise become separate series for the final check.
    pub fn finish(self) -> Result<Vec<Series>, &'static str> {
        let mut out = Vec::with_capacity(self.series.len());
        for mut s in self.series {
            if !s.points.is_sorted_by_key(|p| p.t) {
                s.points.sort_by_key(|p| p.t);
            }
            if s.points.windows(2).any(|w| w[0].t == w[1].t) {
                if self.check_duplicates {
                    return Err(DUPLICATE_LABELSET);
                }
                let mut rest = Vec::new();
                let mut kept: Vec<Point> = Vec::with_capacity(s.points.len());
                for p in s.points.drain(..) {
                    if kept.last().is_some_and(|l| l.t == p.t) {
                        rest.push(p);
                    } else {
                        kept.push(p);
                    }
                }
                s.points = kept;
                let extra = Series {
                    labels: s.labels.clone(),
                    drop_name: s.drop_name,
                    points: rest,
                };
                out.push(s);
                out.push(extra);
                continue;
            }
            out.push(s);
        }
        Ok(out)
    }
}

impl LabelSet {
    /// Prometheus' own label-set hash (xxHash64 over `name 0xff value
    /// 0xff …`), used where results must pick the same series as
    /// Prometheus does (`limit_ratio`).
    pub fn prom_hash(&self) -> u64 {
        let mut b = Vec::with_capacity(64);
        for (n, v) in &self.0 {
            b.extend_from_slice(n.as_bytes());
            b.push(0xff);
            b.extend_from_slice(v.as_bytes());
            b.push(0xff);
        }
        xxhash_rust::xxh64::xxh64(&b, 0)
    }
}
