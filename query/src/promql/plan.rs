//! Before evaluation: find every selector in the query and the time range
//! its samples are needed for (through offsets, `@`, range windows and
//! subqueries), then read them all from storage.

use std::collections::BTreeMap;
use std::sync::Arc;

use promql_parser::parser::{Expr, MatrixSelector};
use sightline_storage::{Labels, Matcher, SeriesReader};

use super::error::QueryError;
use super::eval::{Evaluator, SelectorData, duration_ms, offset_ms, selector_key};
use super::modifiers::{SelectorModifier, selector_modifier};
use super::value::{LabelSet, RawSeries};
use crate::selector::matcher_sets;

/// One selector to read: its key, matchers and inclusive time range.
#[derive(Debug)]
pub struct SelectorRead {
    /// Key in [`SelectorData`].
    pub key: usize,
    /// Alternatives of matchers.
    pub matchers: Vec<Vec<Matcher>>,
    /// First millisecond needed.
    pub start: i64,
    /// Last millisecond needed.
    pub end: i64,
    /// True when the selector is a range function's argument, read batch
    /// by batch while the function runs instead of before evaluation
    /// (memory for a batch of series, not for all of them).
    pub streamed: bool,
}

/// Walks `expr`, evaluated at times within `[lo, hi]`, listing the reads.
pub fn plan(ev: &Evaluator<'_>, expr: &Expr, lo: i64, hi: i64, out: &mut Vec<SelectorRead>) -> Result<(), QueryError> {
    match expr {
        Expr::VectorSelector(vs) => {
            let (lo, hi) = ev.at_ms(&vs.at).map_or((lo, hi), |t| (t, t));
            let off = offset_ms(&vs.offset);
            // A smoothed selector interpolates towards the next sample.
            let ahead = match selector_modifier(vs) {
                Some(SelectorModifier::Smoothed) => ev.lookback,
                _ => 0,
            };
            out.push(SelectorRead {
                key: selector_key(vs),
                matchers: matcher_sets(vs).map_err(QueryError::Parse)?,
                start: lo - off - ev.lookback,
                end: hi - off + ahead,
                streamed: false,
            });
        }
        Expr::MatrixSelector(ms) => {
            let vs = &ms.vs;
            let (lo, hi) = ev.at_ms(&vs.at).map_or((lo, hi), |t| (t, t));
            let off = offset_ms(&vs.offset);
            // Anchored windows look back for the sample at their start,
            // smoothed ones also ahead for the sample after their end.
            let (behind, ahead) = match selector_modifier(vs) {
                None => (0, 0),
                Some(SelectorModifier::Anchored) => (ev.lookback, 0),
                Some(SelectorModifier::Smoothed) => (ev.lookback, ev.lookback),
            };
            out.push(SelectorRead {
                key: selector_key(vs),
                matchers: matcher_sets(vs).map_err(QueryError::Parse)?,
                start: lo - off - duration_ms(&ms.range) - behind,
                end: hi - off + ahead,
                streamed: false,
            });
        }
        Expr::Subquery(sq) => {
            let (lo, hi) = ev.at_ms(&sq.at).map_or((lo, hi), |t| (t, t));
            let off = offset_ms(&sq.offset);
            plan(ev, &sq.expr, lo - off - duration_ms(&sq.range), hi - off, out)?;
        }
        Expr::Paren(p) => plan(ev, &p.expr, lo, hi, out)?,
        Expr::Unary(u) => plan(ev, &u.expr, lo, hi, out)?,
        Expr::Binary(b) => {
            plan(ev, &b.lhs, lo, hi, out)?;
            plan(ev, &b.rhs, lo, hi, out)?;
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                plan(ev, p, lo, hi, out)?;
            }
            plan(ev, &a.expr, lo, hi, out)?;
        }
        Expr::Call(c) if c.func.name == "info" => {
            // The base expression as usual; the info series by their
            // metric name only (the other matchers pick data labels).
            if let Some(base) = c.args.args.first() {
                plan(ev, base, lo, hi, out)?;
            }
            let selector = c.args.args.get(1).and_then(|a| match a.as_ref() {
                Expr::VectorSelector(vs) => Some(vs),
                _ => None,
            });
            let (offset, at) = c.args.args.first().map_or((0, None), |b| info_reference(ev, b));
            let (lo, hi) = at.map_or((lo, hi), |t| (t, t));
            out.push(SelectorRead {
                key: info_key(c),
                matchers: vec![info_name_matchers(selector)?],
                start: lo - offset - ev.lookback,
                end: hi - offset,
                streamed: false,
            });
        }
        Expr::Call(c) => {
            for a in &c.args.args {
                plan(ev, a, lo, hi, out)?;
                // Every function taking a range selector reads it through
                // `Evaluator::range_batches`, series by series.
                if let Some(ms) = range_selector(a)
                    && let Some(read) = out.last_mut()
                    && read.key == selector_key(&ms.vs)
                    && read.matchers.len() == 1
                {
                    read.streamed = true;
                }
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
    Ok(())
}

/// The range selector `expr` is, inside any parentheses.
fn range_selector(expr: &Expr) -> Option<&MatrixSelector> {
    match expr {
        Expr::Paren(p) => range_selector(&p.expr),
        Expr::MatrixSelector(ms) => Some(ms),
        _ => None,
    }
}

/// When `info()` looks its info series up, as (offset, `@` time): at the
/// time its base expression reads its samples — a selector's own offset
/// and `@`, through function calls to their series argument, and through
/// subqueries adding their offset (an inner `@` wins over the
/// subquery's); at the step for anything else.
pub fn info_reference(ev: &Evaluator<'_>, base: &Expr) -> (i64, Option<i64>) {
    match base {
        Expr::Paren(p) => info_reference(ev, &p.expr),
        Expr::VectorSelector(vs) => (offset_ms(&vs.offset), ev.at_ms(&vs.at)),
        Expr::MatrixSelector(ms) => (offset_ms(&ms.vs.offset), ev.at_ms(&ms.vs.at)),
        Expr::Subquery(sq) => match info_reference(ev, &sq.expr) {
            (inner, Some(at)) => (inner, Some(at)),
            (inner, None) => (inner + offset_ms(&sq.offset), ev.at_ms(&sq.at)),
        },
        Expr::Call(c) => c
            .args
            .args
            .iter()
            .find(|a| !matches!(a.as_ref(), Expr::NumberLiteral(_) | Expr::StringLiteral(_)))
            .map_or((0, None), |a| info_reference(ev, a)),
        _ => (0, None),
    }
}

/// The key under which `info()`'s info series are read.
pub fn info_key(c: &promql_parser::parser::Call) -> usize {
    c as *const promql_parser::parser::Call as usize
}

/// The `__name__` matchers of `info()`'s selector (with only negative
/// ones, limited to `*_info` metrics), or `target_info` when it has none.
pub fn info_name_matchers(
    selector: Option<&promql_parser::parser::VectorSelector>,
) -> Result<Vec<Matcher>, QueryError> {
    let mut out = Vec::new();
    if let Some(vs) = selector {
        if let Some(name) = &vs.name {
            out.push(Matcher::equal(sightline_storage::labels::METRIC_NAME, name.clone()));
        }
        for m in vs
            .matchers
            .matchers
            .iter()
            .filter(|m| m.name == sightline_storage::labels::METRIC_NAME)
        {
            let op = match m.op {
                promql_parser::label::MatchOp::Equal => sightline_storage::MatchOp::Equal,
                promql_parser::label::MatchOp::NotEqual => sightline_storage::MatchOp::NotEqual,
                promql_parser::label::MatchOp::Re(_) => sightline_storage::MatchOp::Regex,
                promql_parser::label::MatchOp::NotRe(_) => sightline_storage::MatchOp::NotRegex,
            };
            out.push(Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| QueryError::Parse(e.to_string()))?);
        }
    }
    if out.is_empty() {
        out.push(Matcher::equal(sightline_storage::labels::METRIC_NAME, "target_info"));
    } else if !out.iter().any(|m| {
        matches!(
            m.op,
            sightline_storage::MatchOp::Equal | sightline_storage::MatchOp::Regex
        )
    }) {
        // Only negative name matchers: they narrow the `*_info` metrics.
        out.push(
            Matcher::new(
                sightline_storage::MatchOp::Regex,
                sightline_storage::labels::METRIC_NAME,
                ".+_info",
            )
            .map_err(|e| QueryError::Parse(e.to_string()))?,
        );
    }
    Ok(out)
}

/// Reads every planned selector; fails once more than `max_samples`
/// samples have been read in total. Returns the samples read.
pub async fn load<R: SeriesReader>(
    reader: &R,
    reads: Vec<SelectorRead>,
    max_samples: usize,
) -> Result<(SelectorData, usize), QueryError> {
    let mut data = SelectorData::new();
    let mut total = 0usize;
    let mut label_cache: BTreeMap<Arc<Labels>, LabelSet> = BTreeMap::new();
    for read in reads {
        if read.start > read.end {
            data.insert(read.key, Vec::new());
            continue;
        }
        let mut found: BTreeMap<Arc<Labels>, RawSeries> = BTreeMap::new();
        for matchers in &read.matchers {
            for s in reader.select(matchers, read.start, read.end).await? {
                total += s.timestamps.len();
                if total > max_samples {
                    return Err(QueryError::TooManySamples(max_samples));
                }
                let labels = label_cache
                    .entry(s.labels.clone())
                    .or_insert_with(|| LabelSet::from_storage(&s.labels))
                    .clone();
                found.entry(s.labels).or_insert(RawSeries {
                    labels,
                    drop_name: false,
                    ts: Arc::new(s.timestamps),
                    vs: Arc::new(s.values),
                    st: super::eval::start_timestamps(s.start_timestamps),
                });
            }
        }
        // Prometheus' series order (label by label), which decides ties
        // in topk/bottomk and the order of instant results.
        let mut series: Vec<RawSeries> = found.into_values().collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        data.insert(read.key, series);
    }
    Ok((data, total))
}
