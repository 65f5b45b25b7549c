//! Before evaluation: find every selector in the query and the time range
//! its samples are needed for (through offsets, `@`, range windows and
//! subqueries), then read them all from storage.

use std::collections::BTreeMap;
use std::sync::Arc;

use promql_parser::parser::Expr;
use sightline_storage::{Labels, Matcher, SeriesReader};

use super::error::QueryError;
use super::eval::{Evaluator, SelectorData, duration_ms, offset_ms, selector_key};
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
}

/// Walks `expr`, evaluated at times within `[lo, hi]`, listing the reads.
pub fn plan(ev: &Evaluator<'_>, expr: &Expr, lo: i64, hi: i64, out: &mut Vec<SelectorRead>) -> Result<(), QueryError> {
    match expr {
        Expr::VectorSelector(vs) => {
            let (lo, hi) = ev.at_ms(&vs.at).map_or((lo, hi), |t| (t, t));
            let off = offset_ms(&vs.offset);
            out.push(SelectorRead {
                key: selector_key(vs),
                matchers: matcher_sets(vs).map_err(QueryError::Parse)?,
                start: lo - off - ev.lookback,
                end: hi - off,
            });
        }
        Expr::MatrixSelector(ms) => {
            let vs = &ms.vs;
            let (lo, hi) = ev.at_ms(&vs.at).map_or((lo, hi), |t| (t, t));
            let off = offset_ms(&vs.offset);
            out.push(SelectorRead {
                key: selector_key(vs),
                matchers: matcher_sets(vs).map_err(QueryError::Parse)?,
                start: lo - off - duration_ms(&ms.range),
                end: hi - off,
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
        Expr::Call(c) => {
            for a in &c.args.args {
                plan(ev, a, lo, hi, out)?;
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
    Ok(())
}

/// Reads every planned selector; fails once more than `max_samples`
/// samples have been read in total.
pub async fn load<R: SeriesReader>(
    reader: &R,
    reads: Vec<SelectorRead>,
    max_samples: usize,
) -> Result<SelectorData, QueryError> {
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
                });
            }
        }
        // Prometheus' series order (label by label), which decides ties
        // in topk/bottomk and the order of instant results.
        let mut series: Vec<RawSeries> = found.into_values().collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        data.insert(read.key, series);
    }
    Ok(data)
}
