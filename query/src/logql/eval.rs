//! Evaluating LogQL: log queries give streams of lines, metric queries
//! give series of samples at evenly spaced steps.
//!
//! Times are Unix nanoseconds. A log query reads `[start, end)`; a range
//! aggregation at step `t` reads the window `(t - offset - range, t -
//! offset]`, as Loki does.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use sightline_storage::logs::{LogReader, LogSelect};
use sightline_storage::{MatchOp, StorageError};

use super::ast::*;
use super::pipeline::{ERROR_LABEL, LabelMap, Pipeline};

/// Limits of one query (Loki's names in parentheses).
#[derive(Debug, Clone)]
pub struct LogqlLimits {
    /// Largest `limit` of a log query (`max_entries_limit_per_query`).
    pub max_entries: usize,
    /// Series one metric query may return (`max_query_series`).
    pub max_series: usize,
    /// Series a range aggregation may build before it is aggregated (one
    /// per stream and parsed label set): bounds a query's memory.
    pub max_inner_series: usize,
    /// Bytes of lines one query may read (0: no limit).
    pub max_bytes_scanned: u64,
    /// Longest a query may run.
    pub timeout: std::time::Duration,
}

impl Default for LogqlLimits {
    fn default() -> Self {
        LogqlLimits {
            max_entries: 5000,
            max_series: 500,
            max_inner_series: 100_000,
            max_bytes_scanned: 0,
            timeout: std::time::Duration::from_secs(120),
        }
    }
}

/// Why a query failed; `bad_request` errors are the caller's to fix (400).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalError {
    /// The message.
    pub message: String,
    /// True for problems of the query or its limits (400); false for
    /// storage failures (500).
    pub bad_request: bool,
    /// True when the query ran out of time (504).
    pub timeout: bool,
}

impl EvalError {
    fn bad(m: impl Into<String>) -> Self {
        EvalError {
            message: m.into(),
            bad_request: true,
            timeout: false,
        }
    }
}

impl From<StorageError> for EvalError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::LimitExceeded(m) | StorageError::BadMatcher(m) => EvalError::bad(m),
            // A site left out of a strict request: the gateway's timeout.
            StorageError::Unavailable(m) => EvalError {
                message: m,
                bad_request: false,
                timeout: true,
            },
            other => EvalError {
                message: other.to_string(),
                bad_request: false,
                timeout: false,
            },
        }
    }
}

/// Direction of a log query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Newest first (Loki's default).
    Backward,
    /// Oldest first.
    Forward,
}

/// A stream of a log query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamResult {
    /// Labels after the pipeline.
    pub labels: LabelMap,
    /// (ns, line) in the query's direction.
    pub entries: Vec<(i64, String)>,
}

/// A series of a metric query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesResult {
    /// Labels.
    pub labels: LabelMap,
    /// (ns, value) at the steps where the series has a value.
    pub points: Vec<(i64, f64)>,
}

/// What a query read, for the `stats` of the answer.
#[derive(Debug, Default, Clone, Copy)]
pub struct EvalStats {
    /// Lines read from storage.
    pub lines: u64,
    /// Bytes of those lines.
    pub bytes: u64,
}

/// Evaluation context: where to read, as whom, within which limits.
pub struct Context<'a> {
    /// Log storage.
    pub reader: &'a dyn LogReader,
    /// The tenant.
    pub tenant: &'a str,
    /// Limits.
    pub limits: &'a LogqlLimits,
    /// When the query started.
    pub started: Instant,
    /// What was read.
    pub stats: EvalStats,
}

impl Context<'_> {
    fn check_time(&self) -> Result<(), EvalError> {
        if self.started.elapsed() > self.limits.timeout {
            return Err(EvalError {
                message: format!(
                    "query timed out after {:?} (query.timeout); narrow the time range or the selector",
                    self.limits.timeout
                ),
                bad_request: false,
                timeout: true,
            });
        }
        Ok(())
    }

    fn read(
        &mut self,
        log: &LogExpr,
        pipeline: &Pipeline,
        start: i64,
        end: i64,
        skip_lines: bool,
    ) -> Result<Vec<sightline_storage::logs::LogStream>, EvalError> {
        let mut q = LogSelect::new(self.tenant, log.matchers.clone(), start, end);
        q.contains = pipeline.needles();
        q.skip_lines = skip_lines;
        q.max_bytes = self.limits.max_bytes_scanned;
        let streams = self.reader.select(&q)?;
        for s in &streams {
            self.stats.lines += s.entries.len() as u64;
            self.stats.bytes += s.entries.iter().map(|e| e.line.len() as u64).sum::<u64>();
        }
        self.check_time()?;
        Ok(streams)
    }
}

fn key_of(labels: &LabelMap) -> String {
    let mut k = String::new();
    for (n, v) in labels {
        k.push_str(n);
        k.push('\u{1}');
        k.push_str(v);
        k.push('\u{2}');
    }
    k
}

fn stream_label_map(labels: &sightline_storage::Labels) -> LabelMap {
    labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect()
}

/// Runs a log query over `[start, end)`, giving at most `limit` entries
/// (the newest for [`Direction::Backward`], the oldest for forward).
pub fn eval_log(
    ctx: &mut Context<'_>,
    log: &LogExpr,
    start: i64,
    end: i64,
    limit: usize,
    direction: Direction,
) -> Result<Vec<StreamResult>, EvalError> {
    if limit > ctx.limits.max_entries {
        return Err(EvalError::bad(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {})",
            ctx.limits.max_entries
        )));
    }
    let pipeline = Pipeline::new(log).map_err(EvalError::bad)?;
    let streams = ctx.read(log, &pipeline, start, end, false)?;
    // (time, line, stream, labels when the pipeline changed the stream's).
    let mut picked: Vec<(i64, String, usize, Option<LabelMap>)> = Vec::new();
    for (si, s) in streams.iter().enumerate() {
        // The answer's entries are among each stream's first `limit`
        // matches in the query's direction.
        let mut taken = 0;
        let mut visit = |e: &sightline_storage::logs::LogEntry| {
            if let Some(p) = pipeline.process(e.ts, &e.line, &s.key.labels, &e.metadata) {
                picked.push((e.ts, p.line, si, p.labels));
                taken += 1;
            }
            taken < limit
        };
        match direction {
            Direction::Backward => {
                for e in s.entries.iter().rev() {
                    if !visit(e) {
                        break;
                    }
                }
            }
            Direction::Forward => {
                for e in &s.entries {
                    if !visit(e) {
                        break;
                    }
                }
            }
        }
    }
    match direction {
        Direction::Backward => picked.sort_by_key(|p| std::cmp::Reverse(p.0)),
        Direction::Forward => picked.sort_by_key(|p| p.0),
    }
    picked.truncate(limit);
    // A stream's own labels are turned into a map and key once, not per line.
    let mut stream_labels: HashMap<usize, (String, LabelMap)> = HashMap::new();
    let mut by_labels: BTreeMap<String, StreamResult> = BTreeMap::new();
    for (ts, line, si, labels) in picked {
        let key = match &labels {
            Some(l) => key_of(l),
            None => stream_labels
                .entry(si)
                .or_insert_with(|| {
                    let l = stream_label_map(&streams[si].key.labels);
                    (key_of(&l), l)
                })
                .0
                .clone(),
        };
        by_labels
            .entry(key)
            .or_insert_with(|| StreamResult {
                labels: labels.unwrap_or_else(|| stream_labels.get(&si).map(|x| x.1.clone()).unwrap_or_default()),
                entries: Vec::new(),
            })
            .entries
            .push((ts, line));
    }
    Ok(by_labels.into_values().collect())
}

/// The steps of a range query.
#[derive(Debug, Clone, Copy)]
pub struct Steps {
    /// First step, ns.
    pub start: i64,
    /// Last step at or before this, ns.
    pub end: i64,
    /// Step, ns (> 0).
    pub step: i64,
}

impl Steps {
    fn count(&self) -> usize {
        if self.end < self.start {
            return 0;
        }
        ((self.end - self.start) / self.step) as usize + 1
    }

    fn at(&self, i: usize) -> i64 {
        self.start + self.step * i as i64
    }
}

/// Most points one series may have (Loki's limit).
pub const MAX_POINTS: usize = 11_000;

#[derive(Debug, Clone)]
struct Series {
    labels: LabelMap,
    values: Vec<Option<f64>>,
}

enum Value {
    Scalar(f64),
    Vector(Vec<Series>),
}

/// Runs a metric query at every step.
pub fn eval_metric(ctx: &mut Context<'_>, expr: &MetricExpr, steps: Steps) -> Result<Vec<SeriesResult>, EvalError> {
    let n = steps.count();
    if n > MAX_POINTS {
        return Err(EvalError::bad(format!(
            "exceeded maximum resolution of {MAX_POINTS} points per timeseries. Try decreasing the query resolution (?step=XX)"
        )));
    }
    let v = eval(ctx, expr, steps)?;
    if let Value::Vector(s) = &v {
        check_series(ctx, s.iter().filter(|s| s.values.iter().any(Option::is_some)).count())?;
    }
    let series = match v {
        Value::Scalar(x) => vec![Series {
            labels: LabelMap::new(),
            values: vec![Some(x); n],
        }],
        Value::Vector(s) => s,
    };
    let keep_order = matches!(
        expr,
        MetricExpr::Vector {
            op: VectorOp::Sort | VectorOp::SortDesc,
            ..
        }
    );
    let mut out: Vec<SeriesResult> = series
        .into_iter()
        .map(|s| SeriesResult {
            points: s
                .values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| (steps.at(i), v)))
                .collect(),
            labels: s.labels,
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if !keep_order {
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
    }
    Ok(out)
}

/// True when the expression's answer is a scalar (numbers only).
pub fn is_scalar(expr: &MetricExpr) -> bool {
    match expr {
        MetricExpr::Literal(_) => true,
        MetricExpr::Paren(e) => is_scalar(e),
        MetricExpr::Binary { lhs, rhs, .. } => is_scalar(lhs) && is_scalar(rhs),
        _ => false,
    }
}

fn check_inner_series(ctx: &Context<'_>, n: usize) -> Result<(), EvalError> {
    if n > ctx.limits.max_inner_series {
        return Err(EvalError::bad(format!(
            "a range aggregation in this query builds more than {} series (logs.max_inner_series_per_query); add more specific stream selectors or aggregate parsed labels away",
            ctx.limits.max_inner_series
        )));
    }
    Ok(())
}

fn check_series(ctx: &Context<'_>, n: usize) -> Result<(), EvalError> {
    if n > ctx.limits.max_series {
        return Err(EvalError::bad(format!(
            "maximum number of series ({}) reached for a single query; consider reducing query cardinality by adding more specific stream selectors, reduce the time range of the query, or adding more specific label filters",
            ctx.limits.max_series
        )));
    }
    Ok(())
}

fn eval(ctx: &mut Context<'_>, expr: &MetricExpr, steps: Steps) -> Result<Value, EvalError> {
    ctx.check_time()?;
    match expr {
        MetricExpr::Literal(v) => Ok(Value::Scalar(*v)),
        MetricExpr::Paren(e) => eval(ctx, e, steps),
        MetricExpr::Vector0(v) => Ok(Value::Vector(vec![Series {
            labels: LabelMap::new(),
            values: vec![Some(*v); steps.count()],
        }])),
        MetricExpr::Range {
            op,
            param,
            log,
            range,
            offset,
            grouping,
        } => eval_range(ctx, *op, *param, log, *range, *offset, grouping.as_ref(), steps).map(Value::Vector),
        MetricExpr::Vector {
            op,
            param,
            grouping,
            inner,
        } => {
            let v = match eval(ctx, inner, steps)? {
                Value::Vector(v) => v,
                Value::Scalar(_) => return Err(EvalError::bad("an aggregation needs a vector, not a scalar")),
            };
            Ok(Value::Vector(aggregate(
                *op,
                *param,
                grouping.as_ref(),
                v,
                steps.count(),
            )))
        }
        MetricExpr::Binary {
            op,
            lhs,
            rhs,
            bool_mod,
            matching,
        } => {
            let l = eval(ctx, lhs, steps)?;
            let r = eval(ctx, rhs, steps)?;
            binary(*op, *bool_mod, matching, l, r)
        }
        MetricExpr::LabelReplace {
            inner,
            dst,
            replacement,
            src,
            regex,
            ..
        } => {
            let v = match eval(ctx, inner, steps)? {
                Value::Vector(v) => v,
                s @ Value::Scalar(_) => return Ok(s),
            };
            Ok(Value::Vector(
                v.into_iter()
                    .map(|mut s| {
                        let value = s.labels.get(src).cloned().unwrap_or_default();
                        if let Some(c) = regex.captures(&value) {
                            let mut out = String::new();
                            c.expand(replacement, &mut out);
                            if out.is_empty() {
                                s.labels.remove(dst);
                            } else {
                                s.labels.insert(dst.clone(), out);
                            }
                        }
                        s
                    })
                    .collect(),
            ))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn eval_range(
    ctx: &mut Context<'_>,
    op: RangeOp,
    param: Option<f64>,
    log: &LogExpr,
    range: f64,
    offset: f64,
    grouping: Option<&Grouping>,
    steps: Steps,
) -> Result<Vec<Series>, EvalError> {
    let range_ns = (range * 1e9) as i64;
    let offset_ns = (offset * 1e9) as i64;
    let pipeline = Pipeline::new(log).map_err(EvalError::bad)?;
    let read_start = steps.start - offset_ns - range_ns + 1;
    let read_end = steps.end - offset_ns + 1;
    // Counting without a pipeline needs no line text.
    let skip_lines = log.stages.is_empty() && matches!(op, RangeOp::Count | RangeOp::Rate | RangeOp::Absent);
    let streams = ctx.read(log, &pipeline, read_start, read_end, skip_lines)?;
    // Samples per output series.
    let mut series: HashMap<String, (LabelMap, Vec<(i64, f64)>)> = HashMap::new();
    for s in &streams {
        let stream_key = key_of(&stream_label_map(&s.key.labels));
        for e in &s.entries {
            let Some(p) = pipeline.process(e.ts, &e.line, &s.key.labels, &e.metadata) else {
                continue;
            };
            let v = match op {
                RangeOp::Bytes | RangeOp::BytesRate => p.line.len() as f64,
                _ if pipeline.has_unwrap() => p.value.unwrap_or(0.0),
                _ => 1.0,
            };
            let (key, labels) = match (p.labels, grouping) {
                (None, None) => (stream_key.clone(), None),
                (Some(l), None) => (key_of(&l), Some(l)),
                (l, Some(g)) => {
                    let l = l.unwrap_or_else(|| stream_label_map(&s.key.labels));
                    let g = group_labels(&l, g);
                    (key_of(&g), Some(g))
                }
            };
            let slot = series
                .entry(key)
                .or_insert_with(|| (labels.unwrap_or_else(|| stream_label_map(&s.key.labels)), Vec::new()));
            slot.1.push((e.ts, v));
        }
        check_inner_series(ctx, series.len())?;
    }
    ctx.check_time()?;
    for (labels, _) in series.values() {
        if let Some(err) = labels.get(ERROR_LABEL) {
            let shown: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            return Err(EvalError::bad(format!(
                "pipeline error: '{err}' for series: '{{{}}}'.\nUse a label filter to intentionally skip this error. (e.g | __error__!=\"{err}\").\nTo skip all potential errors you can match empty errors.(e.g __error__=\"\")\nThe label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )",
                shown.join(", ")
            )));
        }
    }
    let n = steps.count();
    if op == RangeOp::Absent {
        let any_at: Vec<bool> = (0..n)
            .map(|i| {
                let t = steps.at(i) - offset_ns;
                series
                    .values()
                    .any(|(_, pts)| pts.iter().any(|(ts, _)| *ts > t - range_ns && *ts <= t))
            })
            .collect();
        let labels: LabelMap = log
            .matchers
            .iter()
            .filter(|m| m.op == MatchOp::Equal)
            .map(|m| (m.name.clone(), m.value.clone()))
            .collect();
        let values: Vec<Option<f64>> = any_at.iter().map(|a| (!a).then_some(1.0)).collect();
        return Ok(if values.iter().any(Option::is_some) {
            vec![Series { labels, values }]
        } else {
            Vec::new()
        });
    }
    let mut out = Vec::with_capacity(series.len());
    for (_, (labels, mut pts)) in series {
        pts.sort_by_key(|p| p.0);
        let mut values = vec![None; n];
        let (mut lo, mut hi) = (0usize, 0usize);
        for (i, slot) in values.iter_mut().enumerate() {
            let t = steps.at(i) - offset_ns;
            while hi < pts.len() && pts[hi].0 <= t {
                hi += 1;
            }
            while lo < hi && pts[lo].0 <= t - range_ns {
                lo += 1;
            }
            if lo < hi {
                *slot = range_value(op, param, &pts[lo..hi], range, t - range_ns, t);
            }
        }
        out.push(Series { labels, values });
    }
    Ok(out)
}

fn range_value(op: RangeOp, param: Option<f64>, pts: &[(i64, f64)], range: f64, from: i64, to: i64) -> Option<f64> {
    let vals = || pts.iter().map(|p| p.1);
    let n = pts.len() as f64;
    Some(match op {
        RangeOp::Count => n,
        RangeOp::Rate => vals().sum::<f64>() / range,
        RangeOp::Bytes => vals().sum(),
        RangeOp::BytesRate => vals().sum::<f64>() / range,
        RangeOp::Sum => vals().sum(),
        RangeOp::Avg => vals().sum::<f64>() / n,
        RangeOp::Max => vals().fold(f64::NEG_INFINITY, f64::max),
        RangeOp::Min => vals().fold(f64::INFINITY, f64::min),
        RangeOp::First => pts[0].1,
        RangeOp::Last => pts[pts.len() - 1].1,
        RangeOp::Stdvar | RangeOp::Stddev => {
            let mean = vals().sum::<f64>() / n;
            let var = vals().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            if op == RangeOp::Stdvar { var } else { var.sqrt() }
        }
        RangeOp::Quantile => quantile(param.unwrap_or(0.5), vals().collect()),
        RangeOp::RateCounter => counter_rate(pts, from, to, range)?,
        RangeOp::Absent => return None,
    })
}

/// Prometheus' quantile over a set of values.
fn quantile(q: f64, mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = q * (v.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = (lower + 1).min(v.len() - 1);
    let w = rank - lower as f64;
    v[lower] * (1.0 - w) + v[upper] * w
}

/// Prometheus' extrapolated counter rate over the window `(from, to]`.
fn counter_rate(pts: &[(i64, f64)], from: i64, to: i64, range: f64) -> Option<f64> {
    if pts.len() < 2 {
        return None;
    }
    let mut increase = pts[pts.len() - 1].1 - pts[0].1;
    for w in pts.windows(2) {
        if w[1].1 < w[0].1 {
            increase += w[0].1;
        }
    }
    let first_t = pts[0].0 as f64 / 1e9;
    let last_t = pts[pts.len() - 1].0 as f64 / 1e9;
    let (from, to) = (from as f64 / 1e9, to as f64 / 1e9);
    let sampled = last_t - first_t;
    let avg_gap = sampled / (pts.len() - 1) as f64;
    let mut to_start = first_t - from;
    let to_end = to - last_t;
    if increase > 0.0 && pts[0].1 >= 0.0 {
        let to_zero = sampled * (pts[0].1 / increase);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg_gap * 1.1;
    let mut extrapolate = sampled;
    extrapolate += if to_start < threshold { to_start } else { avg_gap / 2.0 };
    extrapolate += if to_end < threshold { to_end } else { avg_gap / 2.0 };
    Some(increase * (extrapolate / sampled) / range)
}

fn group_labels(labels: &LabelMap, g: &Grouping) -> LabelMap {
    labels
        .iter()
        .filter(|(k, _)| g.labels.iter().any(|l| l == *k) != g.without)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn aggregate(
    op: VectorOp,
    param: Option<f64>,
    grouping: Option<&Grouping>,
    input: Vec<Series>,
    n: usize,
) -> Vec<Series> {
    let group_of = |l: &LabelMap| match grouping {
        Some(g) => group_labels(l, g),
        None => LabelMap::new(),
    };
    match op {
        VectorOp::Sort | VectorOp::SortDesc => {
            let mut v = input;
            // Order by the value at the last step with one.
            let last = |s: &Series| s.values.iter().rev().find_map(|x| *x).unwrap_or(f64::NAN);
            v.sort_by(|a, b| {
                let o = last(a).total_cmp(&last(b));
                if op == VectorOp::SortDesc { o.reverse() } else { o }
            });
            v
        }
        VectorOp::Topk | VectorOp::Bottomk => {
            let k = param.unwrap_or(1.0) as usize;
            let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (i, s) in input.iter().enumerate() {
                groups.entry(key_of(&group_of(&s.labels))).or_default().push(i);
            }
            let mut keep = vec![vec![false; n]; input.len()];
            for members in groups.values() {
                #[allow(clippy::needless_range_loop)] // `step` indexes every member's values
                for step in 0..n {
                    let mut present: Vec<(usize, f64)> = members
                        .iter()
                        .filter_map(|&i| input[i].values[step].map(|v| (i, v)))
                        .collect();
                    present.sort_by(|a, b| {
                        let o = a.1.total_cmp(&b.1);
                        if op == VectorOp::Topk { o.reverse() } else { o }
                    });
                    for (i, _) in present.into_iter().take(k) {
                        keep[i][step] = true;
                    }
                }
            }
            input
                .into_iter()
                .zip(keep)
                .map(|(mut s, k)| {
                    for (v, keep) in s.values.iter_mut().zip(k) {
                        if !keep {
                            *v = None;
                        }
                    }
                    s
                })
                .filter(|s| s.values.iter().any(Option::is_some))
                .collect()
        }
        _ => {
            let mut groups: BTreeMap<String, (LabelMap, Vec<Vec<f64>>)> = BTreeMap::new();
            for s in &input {
                let g = group_of(&s.labels);
                let slot = groups.entry(key_of(&g)).or_insert_with(|| (g, vec![Vec::new(); n]));
                for (i, v) in s.values.iter().enumerate() {
                    if let Some(v) = v {
                        slot.1[i].push(*v);
                    }
                }
            }
            groups
                .into_values()
                .map(|(labels, per_step)| Series {
                    labels,
                    values: per_step
                        .into_iter()
                        .map(|vals| {
                            if vals.is_empty() {
                                return None;
                            }
                            let len = vals.len() as f64;
                            let sum: f64 = vals.iter().sum();
                            Some(match op {
                                VectorOp::Sum => sum,
                                VectorOp::Avg => sum / len,
                                VectorOp::Min => vals.iter().copied().fold(f64::INFINITY, f64::min),
                                VectorOp::Max => vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                                VectorOp::Count => len,
                                VectorOp::Stdvar | VectorOp::Stddev => {
                                    let mean = sum / len;
                                    let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / len;
                                    if op == VectorOp::Stdvar { var } else { var.sqrt() }
                                }
                                _ => sum,
                            })
                        })
                        .collect(),
                })
                .collect()
        }
    }
}

fn arith(op: BinOp, a: f64, b: f64) -> f64 {
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::Mod => a % b,
        BinOp::Pow => a.powf(b),
        BinOp::Eq => f64::from(u8::from(a == b)),
        BinOp::Ne => f64::from(u8::from(a != b)),
        BinOp::Gt => f64::from(u8::from(a > b)),
        BinOp::Ge => f64::from(u8::from(a >= b)),
        BinOp::Lt => f64::from(u8::from(a < b)),
        BinOp::Le => f64::from(u8::from(a <= b)),
        BinOp::And | BinOp::Or | BinOp::Unless => f64::NAN,
    }
}

/// The value of `lhs op rhs` for one step: `None` drops the sample
/// (a failed comparison without `bool`).
fn combine(op: BinOp, bool_mod: bool, a: f64, b: f64, keep: f64) -> Option<f64> {
    let r = arith(op, a, b);
    if op.is_comparison() && !bool_mod {
        return (r == 1.0).then_some(keep);
    }
    Some(r)
}

fn signature(labels: &LabelMap, m: &VectorMatching) -> String {
    match m.on {
        Some(true) => key_of(
            &labels
                .iter()
                .filter(|(k, _)| m.labels.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        Some(false) => key_of(
            &labels
                .iter()
                .filter(|(k, _)| !m.labels.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        None => key_of(labels),
    }
}

fn binary(op: BinOp, bool_mod: bool, m: &VectorMatching, l: Value, r: Value) -> Result<Value, EvalError> {
    match (l, r) {
        (Value::Scalar(a), Value::Scalar(b)) => {
            if op.is_comparison() && !bool_mod {
                return Err(EvalError::bad("comparisons between scalars must use BOOL modifier"));
            }
            Ok(Value::Scalar(arith(op, a, b)))
        }
        (Value::Vector(v), Value::Scalar(b)) => Ok(Value::Vector(
            v.into_iter()
                .map(|mut s| {
                    for x in s.values.iter_mut() {
                        *x = x.and_then(|a| combine(op, bool_mod, a, b, a));
                    }
                    s
                })
                .collect(),
        )),
        (Value::Scalar(a), Value::Vector(v)) => Ok(Value::Vector(
            v.into_iter()
                .map(|mut s| {
                    for x in s.values.iter_mut() {
                        *x = x.and_then(|b| combine(op, bool_mod, a, b, b));
                    }
                    s
                })
                .collect(),
        )),
        (Value::Vector(lv), Value::Vector(rv)) => {
            if op.is_set() {
                return Ok(Value::Vector(set_op(op, m, lv, rv)));
            }
            let n = lv.first().or(rv.first()).map_or(0, |s| s.values.len());
            let mut right: HashMap<String, Vec<&Series>> = HashMap::new();
            for s in &rv {
                right.entry(signature(&s.labels, m)).or_default().push(s);
            }
            let mut out: BTreeMap<String, Series> = BTreeMap::new();
            for ls in &lv {
                let sig = signature(&ls.labels, m);
                let Some(matches) = right.get(&sig) else { continue };
                if matches.len() > 1 && m.group != Some(false) {
                    return Err(EvalError::bad(format!(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right) for {}",
                        op.text()
                    )));
                }
                for rs in matches {
                    let mut labels = match (m.group, m.on) {
                        (Some(false), _) => rs.labels.clone(),
                        (Some(true), _) | (None, None) => ls.labels.clone(),
                        (None, Some(true)) => ls
                            .labels
                            .iter()
                            .filter(|(k, _)| m.labels.contains(k))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                        (None, Some(false)) => ls
                            .labels
                            .iter()
                            .filter(|(k, _)| !m.labels.contains(k))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    };
                    if let Some(left) = m.group {
                        let one = if left { rs } else { ls };
                        for name in &m.include {
                            match one.labels.get(name) {
                                Some(v) => labels.insert(name.clone(), v.clone()),
                                None => labels.remove(name),
                            };
                        }
                    }
                    let values = (0..n)
                        .map(|i| match (ls.values[i], rs.values[i]) {
                            (Some(a), Some(b)) => {
                                combine(op, bool_mod, a, b, if m.group == Some(false) { b } else { a })
                            }
                            _ => None,
                        })
                        .collect();
                    let key = key_of(&labels);
                    if out.contains_key(&key) {
                        return Err(EvalError::bad(format!(
                            "found duplicate series for the match group {sig:?} on the {} side of the operation",
                            if m.group == Some(false) { "left" } else { "right" }
                        )));
                    }
                    out.insert(key, Series { labels, values });
                }
            }
            Ok(Value::Vector(out.into_values().collect()))
        }
    }
}

fn set_op(op: BinOp, m: &VectorMatching, lv: Vec<Series>, rv: Vec<Series>) -> Vec<Series> {
    let n = lv.first().or(rv.first()).map_or(0, |s| s.values.len());
    let mut right_at: HashMap<String, Vec<bool>> = HashMap::new();
    for s in &rv {
        let slot = right_at
            .entry(signature(&s.labels, m))
            .or_insert_with(|| vec![false; n]);
        for (i, v) in s.values.iter().enumerate() {
            slot[i] |= v.is_some();
        }
    }
    match op {
        BinOp::And | BinOp::Unless => lv
            .into_iter()
            .map(|mut s| {
                let present = right_at.get(&signature(&s.labels, m));
                for (i, v) in s.values.iter_mut().enumerate() {
                    let r = present.is_some_and(|p| p[i]);
                    if r != (op == BinOp::And) {
                        *v = None;
                    }
                }
                s
            })
            .filter(|s| s.values.iter().any(Option::is_some))
            .collect(),
        _ => {
            let mut left_at: HashMap<String, Vec<bool>> = HashMap::new();
            for s in &lv {
                let slot = left_at.entry(signature(&s.labels, m)).or_insert_with(|| vec![false; n]);
                for (i, v) in s.values.iter().enumerate() {
                    slot[i] |= v.is_some();
                }
            }
            let mut out = lv;
            for mut s in rv {
                let present = left_at.get(&signature(&s.labels, m));
                for (i, v) in s.values.iter_mut().enumerate() {
                    if present.is_some_and(|p| p[i]) {
                        *v = None;
                    }
                }
                if s.values.iter().any(Option::is_some) {
                    out.push(s);
                }
            }
            out
        }
    }
}
