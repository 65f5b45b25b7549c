//! The evaluator: walks the syntax tree once, computing every node for
//! all evaluation steps at a time (series-at-a-time, not step-at-a-time),
//! over samples preloaded by [`super::plan`] — or, for a range function's
//! selector, streamed from storage a batch of series at a time
//! ([`Evaluator::range_batches`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use promql_parser::parser::{AtModifier, Expr, MatrixSelector, Offset, SubqueryExpr, VectorSelector};
use sightline_storage::{STALE_NAN_BITS, SeriesData};

use super::error::{QueryError, exec_err};
use super::modifiers::{SelectorModifier, selector_modifier};
use super::value::{LabelSet, Point, RawSeries, Series};
use super::{aggregate, binary, functions};

/// The evaluation times of a node: `start`, `start + step`, … `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    /// First evaluation time (ms).
    pub start: i64,
    /// Last evaluation time (ms), `start + k * step`.
    pub end: i64,
    /// Distance between evaluation times (ms), positive.
    pub step: i64,
}

impl Steps {
    /// One evaluation at `t`.
    pub fn instant(t: i64) -> Self {
        Steps {
            start: t,
            end: t,
            step: 1,
        }
    }

    /// Number of evaluation times.
    pub fn len(&self) -> usize {
        ((self.end - self.start) / self.step + 1) as usize
    }

    /// Never true: there is always at least one evaluation time.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `i`th evaluation time.
    pub fn at(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    /// The index of evaluation time `t`.
    pub fn index(&self, t: i64) -> usize {
        ((t - self.start) / self.step) as usize
    }

    /// Every evaluation time.
    pub fn times(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).map(|i| self.at(i))
    }
}

/// A node's value over all evaluation steps.
#[derive(Debug, Clone)]
pub enum Value {
    /// One number per step.
    Scalar(Vec<f64>),
    /// A string (same at every step).
    String(String),
    /// Series with a point at some of the steps.
    Vector(Vec<Series>),
    /// Raw samples in a window ending at the (single) evaluation time; only
    /// the result of an instant query such as `up[5m]`.
    Matrix(Vec<RawSeries>),
}

/// Samples preloaded for each selector, keyed by the selector's address
/// in the syntax tree; stale markers kept.
pub type SelectorData = HashMap<usize, Vec<RawSeries>>;

/// The key of a selector in [`SelectorData`].
pub fn selector_key(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

/// True for Prometheus' staleness marker.
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Milliseconds of a parser duration.
pub fn duration_ms(d: &Duration) -> i64 {
    d.as_millis() as i64
}

/// Signed milliseconds of an `offset` (0 when none).
pub fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

/// Milliseconds since the epoch of a time that may precede it.
pub fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// Shared settings of one query's evaluation.
pub struct Evaluator<'a> {
    /// Preloaded samples.
    pub data: &'a SelectorData,
    /// How far back an instant selector looks for a sample (ms).
    pub lookback: i64,
    /// The query's own start (for `@ start()`).
    pub query_start: i64,
    /// The query's own end (for `@ end()`).
    pub query_end: i64,
    /// Step of subqueries written without one (`[1h:]`), ms.
    pub default_subquery_step: i64,
    /// When to give up.
    pub deadline: Option<Instant>,
    /// The query's step (ms; 0 for an instant query), for `step()`.
    pub query_step: i64,
    /// True for an instant query (changes when duplicate label sets are
    /// reported, as in Prometheus).
    pub instant: bool,
    /// Warnings and infos collected while evaluating.
    pub annotations: RefCell<Vec<Annotation>>,
    /// Range selectors read while their function runs, by selector key
    /// (see [`super::plan::SelectorRead::streamed`]); `None` once taken.
    pub streams: RefCell<Streams>,
    /// Samples the query may still read (`query.max_samples` minus what
    /// was loaded before evaluation).
    pub sample_budget: Cell<usize>,
    /// The `query.max_samples` limit, for its error message.
    pub max_samples: usize,
}

/// Batches of series arriving from storage for a streamed selector.
pub type SeriesStream = tokio::sync::mpsc::Receiver<Vec<SeriesData>>;

/// The streamed selectors of a query, by selector key.
pub type Streams = HashMap<usize, Option<SeriesStream>>;

/// A warning or info about the result, as Prometheus' annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// True for a warning, false for an info.
    pub warning: bool,
    /// The message without the `PromQL warning: ` prefix.
    pub message: String,
    /// The expression the message is about, to locate it in the query.
    pub about: Option<String>,
}

impl Evaluator<'_> {
    /// Records a warning about `about`.
    pub fn warn(&self, message: String, about: Option<String>) {
        self.annotate(true, message, about);
    }

    /// Records an info about `about`.
    pub fn info(&self, message: String, about: Option<String>) {
        self.annotate(false, message, about);
    }

    fn annotate(&self, warning: bool, message: String, about: Option<String>) {
        let a = Annotation {
            warning,
            message,
            about,
        };
        let mut all = self.annotations.borrow_mut();
        if !all.contains(&a) {
            all.push(a);
        }
    }

    /// Fails once the deadline has passed.
    pub fn check_deadline(&self) -> Result<(), QueryError> {
        match self.deadline {
            Some(d) if Instant::now() > d => Err(QueryError::Timeout("query execution")),
            _ => Ok(()),
        }
    }

    /// The time an `@` modifier pins evaluation to.
    pub fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.query_start),
            Some(AtModifier::End) => Some(self.query_end),
            Some(AtModifier::At(t)) => Some(system_time_ms(t)),
        }
    }

    /// Evaluates `expr` at every time of `steps`.
    pub fn eval(&self, expr: &Expr, steps: Steps) -> Result<Value, QueryError> {
        self.check_deadline()?;
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(vec![n.val; steps.len()])),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, steps),
            Expr::Unary(u) => match self.eval(&u.expr, steps)? {
                Value::Scalar(v) => Ok(Value::Scalar(v.into_iter().map(|x| -x).collect())),
                Value::Vector(mut series) => {
                    for s in &mut series {
                        s.drop_name = true;
                        for p in &mut s.points {
                            p.v = -p.v;
                        }
                    }
                    Ok(Value::Vector(series))
                }
                _ => exec_err("unary minus applies only to scalars and instant vectors"),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.vector_selector(vs, steps))),
            Expr::MatrixSelector(ms) => Ok(Value::Matrix(self.matrix_at(ms, steps)?)),
            Expr::Subquery(sq) => {
                let raw = self.subquery(sq, steps)?;
                let (range, offset) = (duration_ms(&sq.range), offset_ms(&sq.offset));
                let at = self.at_ms(&sq.at);
                Ok(Value::Matrix(window_raw(&raw, steps.end, range, offset, at)))
            }
            Expr::Call(call) => functions::call(self, call, steps),
            Expr::Aggregate(agg) => aggregate::eval(self, agg, steps),
            Expr::Binary(b) => binary::eval(self, b, steps),
            Expr::Extension(_) => exec_err("extension expressions are not supported"),
        }
    }

    /// Evaluates `expr`, which must give an instant vector.
    pub fn eval_vector(&self, expr: &Expr, steps: Steps) -> Result<Vec<Series>, QueryError> {
        match self.eval(expr, steps)? {
            Value::Vector(v) => Ok(v),
            _ => exec_err(format!("expected an instant vector, got {expr}")),
        }
    }

    /// Evaluates `expr`, which must give a scalar.
    pub fn eval_scalar(&self, expr: &Expr, steps: Steps) -> Result<Vec<f64>, QueryError> {
        match self.eval(expr, steps)? {
            Value::Scalar(v) => Ok(v),
            _ => exec_err(format!("expected a scalar, got {expr}")),
        }
    }

    /// The preloaded samples of a selector.
    pub fn selector_data(&self, vs: &VectorSelector) -> &[RawSeries] {
        self.data.get(&selector_key(vs)).map(Vec::as_slice).unwrap_or(&[])
    }

    /// An instant selector: at each step the newest sample within the
    /// lookback window, unless that sample is a staleness marker.
    pub fn vector_selector(&self, vs: &VectorSelector, steps: Steps) -> Vec<Series> {
        self.vector_selector_with(vs, steps, SampleField::Value)
    }

    /// Like [`Self::vector_selector`], each point's value being `field` of
    /// the sample selected (its time for `timestamp()`, its start time for
    /// `start_timestamp()`).
    pub fn vector_selector_with(&self, vs: &VectorSelector, steps: Steps, field: SampleField) -> Vec<Series> {
        let offset = offset_ms(&vs.offset);
        let at = self.at_ms(&vs.at);
        if field == SampleField::Value && selector_modifier(vs) == Some(SelectorModifier::Smoothed) {
            return self.smoothed_samples(self.selector_data(vs), steps, offset, at);
        }
        self.instant_samples(self.selector_data(vs), steps, offset, at, field)
    }

    /// A `smoothed` instant selector: at each step the value interpolated
    /// between the newest sample at or before `(at or step) - offset`
    /// (within the lookback window) and the next one (within the lookback
    /// delta after); the newest sample's value when there is no next one.
    fn smoothed_samples(&self, data: &[RawSeries], steps: Steps, offset: i64, at: Option<i64>) -> Vec<Series> {
        each_series(data, |raw, points| {
            for (t, eff, j) in newest_per_step(raw, steps, offset, at) {
                let (pt, pv) = (raw.ts[j - 1], raw.vs[j - 1]);
                if pt <= eff - self.lookback || is_stale(pv) {
                    continue;
                }
                let v = match raw.ts.get(j).zip(raw.vs.get(j)) {
                    Some((&nt, &nv)) if pt < eff && nt <= eff + self.lookback && !is_stale(nv) => {
                        pv + (nv - pv) * (eff - pt) as f64 / (nt - pt) as f64
                    }
                    _ => pv,
                };
                points.push(Point { t, v });
            }
        })
    }

    /// Instant-selector semantics over raw series: at each step the newest
    /// sample within the lookback window before `(at or step) - offset`,
    /// unless it is a staleness marker.
    pub fn instant_samples(
        &self,
        data: &[RawSeries],
        steps: Steps,
        offset: i64,
        at: Option<i64>,
        field: SampleField,
    ) -> Vec<Series> {
        each_series(data, |raw, points| {
            points.reserve(steps.len().min(raw.ts.len() + 1));
            for (t, eff, j) in newest_per_step(raw, steps, offset, at) {
                let (sample_t, sv) = (raw.ts[j - 1], raw.vs[j - 1]);
                if sample_t > eff - self.lookback && !is_stale(sv) {
                    let v = match field {
                        SampleField::Value => sv,
                        SampleField::Time => sample_t as f64 / 1000.0,
                        SampleField::Start => raw.st.as_ref().map_or(0, |st| st[j - 1]) as f64 / 1000.0,
                    };
                    points.push(Point { t, v });
                }
            }
        })
    }

    /// The raw samples of a range selector, stale markers removed, as
    /// the input of a range function.
    pub fn matrix_input(&self, ms: &MatrixSelector) -> Vec<RawSeries> {
        self.selector_data(&ms.vs).iter().cloned().map(without_stale).collect()
    }

    /// Hands a range function's input to `f`: all of it at once, or, for
    /// a selector streamed from storage, a batch of series at a time in
    /// label order. Returns true when the input was streamed (its series
    /// then arrive in storage's label order, not the loader's).
    pub fn range_batches(
        &self,
        expr: &Expr,
        steps: Steps,
        mut f: impl FnMut(RangeInput) -> Result<(), QueryError>,
    ) -> Result<bool, QueryError> {
        let ms = match expr {
            Expr::Paren(p) => return self.range_batches(&p.expr, steps, f),
            Expr::MatrixSelector(ms) => ms,
            _ => {
                f(self.range_input(expr, steps)?)?;
                return Ok(false);
            }
        };
        let key = selector_key(&ms.vs);
        let stream = match self.streams.borrow_mut().get_mut(&key) {
            None => {
                f(self.range_input(expr, steps)?)?;
                return Ok(false);
            }
            Some(slot) => slot.take(),
        };
        let Some(mut stream) = stream else {
            return exec_err(format!("internal error: streamed selector {} evaluated twice", ms.vs));
        };
        while let Some(batch) = stream.blocking_recv() {
            self.check_deadline()?;
            let samples: usize = batch.iter().map(|s| s.timestamps.len()).sum();
            let left = self.sample_budget.get();
            if samples > left {
                return Err(QueryError::TooManySamples(self.max_samples));
            }
            self.sample_budget.set(left - samples);
            let series = batch
                .into_iter()
                .map(|s| {
                    without_stale(RawSeries {
                        labels: LabelSet::from_storage(&s.labels),
                        drop_name: false,
                        ts: Arc::new(s.timestamps),
                        vs: Arc::new(s.values),
                        st: start_timestamps(s.start_timestamps),
                    })
                })
                .collect();
            f(self.selector_range_input(ms, series))?;
        }
        Ok(true)
    }

    /// A range selector evaluated on its own (instant queries only): the
    /// samples in its window at the evaluation time.
    fn matrix_at(&self, ms: &MatrixSelector, steps: Steps) -> Result<Vec<RawSeries>, QueryError> {
        if steps.len() != 1 {
            return exec_err("a range vector cannot be the result of a range query");
        }
        if selector_modifier(&ms.vs).is_some() {
            // The extended window itself: its edges' values at its start
            // and end, the samples inside between them.
            let input = self.selector_range_input(ms, self.matrix_input(ms));
            let mut out = Vec::new();
            for raw in &input.series {
                let window = std::sync::Mutex::new(Vec::new());
                input.series_windows(raw, steps, &|w: &Window<'_>| {
                    if let Ok(mut points) = window.lock() {
                        *points = w.extended(false).unwrap_or_default();
                    }
                    None
                });
                let points = window.into_inner().unwrap_or_default();
                if !points.is_empty() {
                    out.push(RawSeries {
                        labels: raw.labels.clone(),
                        drop_name: raw.drop_name,
                        ts: Arc::new(points.iter().map(|p| p.0).collect()),
                        vs: Arc::new(points.iter().map(|p| p.1).collect()),
                        st: None,
                    });
                }
            }
            return Ok(out);
        }
        let raw = self.matrix_input(ms);
        let at = self.at_ms(&ms.vs.at);
        Ok(window_raw(
            &raw,
            steps.end,
            duration_ms(&ms.range),
            offset_ms(&ms.vs.offset),
            at,
        ))
    }

    /// Evaluates the inner expression of a subquery at its own steps,
    /// aligned to multiples of the step as Prometheus does, covering every
    /// window the outer steps will ask for. Returns raw series.
    pub fn subquery(&self, sq: &SubqueryExpr, steps: Steps) -> Result<Vec<RawSeries>, QueryError> {
        let step = match &sq.step {
            Some(d) if !d.is_zero() => duration_ms(d),
            _ => self.default_subquery_step,
        };
        if step <= 0 {
            return exec_err("subquery step must be positive");
        }
        let range = duration_ms(&sq.range);
        let offset = offset_ms(&sq.offset);
        let (outer_start, outer_end) = match self.at_ms(&sq.at) {
            Some(t) => (t, t),
            None => (steps.start, steps.end),
        };
        let first = outer_start - offset - range;
        let mut start = step * (first / step);
        if start <= first {
            start += step;
        }
        let end = outer_end - offset;
        if start > end {
            return Ok(Vec::new());
        }
        let end = start + (end - start) / step * step;
        let inner = Steps { start, end, step };
        let series = match self.eval(&sq.expr, inner)? {
            Value::Vector(v) => v,
            Value::Scalar(v) => vec![Series {
                labels: LabelSet::default(),
                drop_name: false,
                points: v
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| Point { t: inner.at(i), v })
                    .collect(),
            }],
            _ => return exec_err("subquery is only allowed on instant vector or scalar"),
        };
        Ok(series
            .into_iter()
            .map(|s| RawSeries {
                labels: s.labels,
                drop_name: s.drop_name,
                ts: Arc::new(s.points.iter().map(|p| p.t).collect()),
                vs: Arc::new(s.points.iter().map(|p| p.v).collect()),
                st: None,
            })
            .collect())
    }

    /// A range selector's series with its window settings.
    fn selector_range_input(&self, ms: &MatrixSelector, series: Vec<RawSeries>) -> RangeInput {
        RangeInput {
            series,
            range: duration_ms(&ms.range),
            offset: offset_ms(&ms.vs.offset),
            at: self.at_ms(&ms.vs.at),
            modifier: selector_modifier(&ms.vs),
            lookback: self.lookback,
        }
    }

    /// The input of a range function: its range-vector argument's raw
    /// series with the window length and offset to apply.
    pub fn range_input(&self, expr: &Expr, steps: Steps) -> Result<RangeInput, QueryError> {
        match expr {
            Expr::Paren(p) => self.range_input(&p.expr, steps),
            Expr::MatrixSelector(ms) => Ok(self.selector_range_input(ms, self.matrix_input(ms))),
            Expr::Subquery(sq) => Ok(RangeInput {
                series: self.subquery(sq, steps)?,
                range: duration_ms(&sq.range),
                offset: offset_ms(&sq.offset),
                at: self.at_ms(&sq.at),
                modifier: None,
                lookback: self.lookback,
            }),
            other => exec_err(format!("expected a range vector, got {other}")),
        }
    }
}

/// For each step with a sample at or before its time `(at or step) -
/// offset`: the step, that time, and the index just past the newest such
/// sample (so `j - 1` is the newest, `j` the next).
fn newest_per_step(
    raw: &RawSeries,
    steps: Steps,
    offset: i64,
    at: Option<i64>,
) -> impl Iterator<Item = (i64, i64, usize)> + '_ {
    let mut j = 0;
    (0..steps.len()).filter_map(move |i| {
        let t = steps.at(i);
        let eff = at.unwrap_or(t) - offset;
        while j < raw.ts.len() && raw.ts[j] <= eff {
            j += 1;
        }
        (j > 0).then_some((t, eff, j))
    })
}

/// The series `f` gives points for (those it gives none are left out),
/// with the raw series' labels.
fn each_series(data: &[RawSeries], mut f: impl FnMut(&RawSeries, &mut Vec<Point>)) -> Vec<Series> {
    let mut out = Vec::new();
    for raw in data {
        let mut points = Vec::new();
        f(raw, &mut points);
        if !points.is_empty() {
            out.push(Series {
                labels: raw.labels.clone(),
                drop_name: false,
                points,
            });
        }
    }
    out
}

/// Storage's start timestamps as a raw series keeps them: None when the
/// series has none.
pub fn start_timestamps(st: Vec<i64>) -> Option<Arc<Vec<i64>>> {
    (!st.is_empty()).then(|| Arc::new(st))
}

/// Which part of a selected sample an instant selector returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleField {
    /// The value.
    Value,
    /// The sample's timestamp, in seconds.
    Time,
    /// The sample's start timestamp, in seconds (0 when unknown).
    Start,
}

/// The series without staleness markers (a range function's input).
fn without_stale(raw: RawSeries) -> RawSeries {
    if !raw.vs.iter().any(|v| is_stale(*v)) {
        return raw;
    }
    let kept = |k: &usize| !is_stale(raw.vs[*k]);
    let keep = || (0..raw.ts.len()).filter(kept);
    RawSeries {
        ts: Arc::new(keep().map(|k| raw.ts[k]).collect()),
        vs: Arc::new(keep().map(|k| raw.vs[k]).collect()),
        st: raw.st.as_ref().map(|st| Arc::new(keep().map(|k| st[k]).collect())),
        labels: raw.labels,
        drop_name: raw.drop_name,
    }
}

/// A range vector argument, ready for windowing.
pub struct RangeInput {
    /// Raw samples, stale markers removed.
    pub series: Vec<RawSeries>,
    /// Window length (ms).
    pub range: i64,
    /// Offset (ms).
    pub offset: i64,
    /// `@` time, if any.
    pub at: Option<i64>,
    /// `anchored` or `smoothed`, if the selector has it.
    pub modifier: Option<SelectorModifier>,
    /// The lookback delta (ms): how far past its window an extended
    /// selector looks for the samples around the window's edges.
    pub lookback: i64,
}

/// The samples an `anchored` or `smoothed` window may use beyond its own:
/// from a lookback delta before its start (and, smoothed, after its end).
pub struct Extended<'a> {
    /// Which modifier.
    pub modifier: SelectorModifier,
    /// Timestamps, ascending.
    pub ts: &'a [i64],
    /// Values.
    pub vs: &'a [f64],
}

/// One window of samples handed to a range function.
pub struct Window<'a> {
    /// True when a counter reset (a decrease) lies inside the window;
    /// false lets counter functions skip scanning for one.
    pub has_reset: bool,
    /// Sample timestamps in the window, ascending.
    pub ts: &'a [i64],
    /// Sample values.
    pub vs: &'a [f64],
    /// Sample start timestamps (0 = unknown); empty when the series has
    /// none.
    pub st: &'a [i64],
    /// The evaluation step's time.
    pub t: i64,
    /// Window start (exclusive), ms.
    pub start: i64,
    /// Window end (inclusive), ms.
    pub end: i64,
    /// Window length in ms.
    pub range: i64,
    /// For an `anchored` or `smoothed` selector, the samples around the
    /// window.
    pub ext: Option<Extended<'a>>,
}

impl Window<'_> {
    /// The window of an `anchored` or `smoothed` selector as points: its
    /// start with the value there, the samples strictly inside, its end
    /// with the value there (Prometheus' `extendFloats`). Anchored edges
    /// take the last sample at or before them (the first inside when
    /// none); smoothed edges interpolate between the samples around them,
    /// modelling a counter reset as a restart from 0 when `is_counter`.
    /// None when the selector has no modifier or no sample fits.
    pub fn extended(&self, is_counter: bool) -> Option<Vec<(i64, f64)>> {
        let ext = self.ext.as_ref()?;
        let (ts, vs) = (ext.ts, ext.vs);
        if ts.is_empty() {
            return None;
        }
        let smoothed = ext.modifier == SelectorModifier::Smoothed;
        let mut last = ts.len() - 1;
        let mut first = ts[..last].partition_point(|t| *t <= self.start).saturating_sub(1);
        if smoothed {
            last = ts[..last].partition_point(|t| *t < self.end);
        }
        if ts[last] <= self.start || (smoothed && ts[first] > self.end) {
            return None;
        }
        let interpolate = |a: usize, b: usize, t: i64| {
            let (mut y1, y2) = (vs[a], vs[b]);
            if is_counter && y2 < y1 {
                y1 = 0.0;
            }
            y1 + (y2 - y1) * (t - ts[a]) as f64 / (ts[b] - ts[a]) as f64
        };
        let left = if smoothed && ts[first] < self.start {
            interpolate(first, first + 1, self.start)
        } else {
            vs[first]
        };
        let right = if smoothed && last > 0 && ts[last] > self.end {
            interpolate(last - 1, last, self.end)
        } else {
            vs[last]
        };
        if ts[first] <= self.start {
            first += 1;
        }
        let inner_end = if ts[last] >= self.end { last } else { last + 1 };
        let mut out = Vec::with_capacity(inner_end.saturating_sub(first) + 2);
        out.push((self.start, left));
        if first < inner_end {
            out.extend(
                ts[first..inner_end]
                    .iter()
                    .copied()
                    .zip(vs[first..inner_end].iter().copied()),
            );
        }
        out.push((self.end, right));
        Some(out)
    }
}

impl RangeInput {
    /// Calls `f` for each series and step with the samples in
    /// `(eff - range, eff]`, where `eff` is the step time (or `@` time)
    /// minus the offset; collects the points `f` returns.
    ///
    /// Large inputs are split across the machine's cores (a range query
    /// over thousands of series is mostly this loop).
    pub fn map_windows(&self, steps: Steps, f: impl Fn(&Window<'_>) -> Option<f64> + Sync) -> Vec<(usize, Vec<Point>)> {
        let n = self.series.len();
        let threads = std::thread::available_parallelism().map_or(1, |p| p.get()).min(8);
        if threads < 2 || n < 2 || n * steps.len() < PARALLEL_MIN_WINDOWS {
            return (0..n)
                .filter_map(|si| {
                    let points = self.series_windows(&self.series[si], steps, &f);
                    (!points.is_empty()).then_some((si, points))
                })
                .collect();
        }
        let chunk = n.div_ceil(threads);
        let f = &f;
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .series
                .chunks(chunk)
                .enumerate()
                .map(|(ci, part)| {
                    scope.spawn(move || {
                        part.iter()
                            .enumerate()
                            .filter_map(|(k, raw)| {
                                let points = self.series_windows(raw, steps, f);
                                (!points.is_empty()).then_some((ci * chunk + k, points))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    }

    /// The points `f` gives for each step's window over one series.
    fn series_windows(
        &self,
        raw: &RawSeries,
        steps: Steps,
        f: &(impl Fn(&Window<'_>) -> Option<f64> + Sync),
    ) -> Vec<Point> {
        let mut points = Vec::with_capacity(steps.len().min(raw.ts.len() + 1));
        let st: &[i64] = raw.st.as_ref().map_or(&[], |st| st.as_slice());
        // Indices k where sample k is a counter reset.
        let resets: Vec<usize> = (1..raw.vs.len())
            .filter(|&k| super::start_time::is_reset(&raw.ts, &raw.vs, st, k))
            .collect();
        let (mut lo, mut hi) = (0usize, 0usize);
        let (mut ext_lo, mut ext_hi) = (0usize, 0usize);
        for t in steps.times() {
            let end = self.at.unwrap_or(t) - self.offset;
            let start = end - self.range;
            while hi < raw.ts.len() && raw.ts[hi] <= end {
                hi += 1;
            }
            while lo < hi && raw.ts[lo] <= start {
                lo += 1;
            }
            let ext = self.modifier.map(|modifier| {
                let ahead = if modifier == SelectorModifier::Smoothed {
                    self.lookback
                } else {
                    0
                };
                while ext_hi < raw.ts.len() && raw.ts[ext_hi] <= end + ahead {
                    ext_hi += 1;
                }
                while ext_lo < ext_hi && raw.ts[ext_lo] <= start - self.lookback {
                    ext_lo += 1;
                }
                Extended {
                    modifier,
                    ts: &raw.ts[ext_lo..ext_hi],
                    vs: &raw.vs[ext_lo..ext_hi],
                }
            });
            let first_reset = resets.partition_point(|&k| k <= lo);
            let w = Window {
                has_reset: first_reset < resets.len() && resets[first_reset] < hi,
                ts: &raw.ts[lo..hi],
                vs: &raw.vs[lo..hi],
                st: if st.is_empty() { st } else { &st[lo..hi] },
                t,
                start,
                end,
                range: self.range,
                ext,
            };
            if let Some(v) = f(&w) {
                points.push(Point { t, v });
            }
        }
        points
    }
}

/// Below this many windows (series × steps) a range function runs on one
/// thread; above, the series are split across cores.
const PARALLEL_MIN_WINDOWS: usize = 20_000;

/// The samples of each series in `(eff - range, eff]` at time `t`.
fn window_raw(raw: &[RawSeries], t: i64, range: i64, offset: i64, at: Option<i64>) -> Vec<RawSeries> {
    let end = at.unwrap_or(t) - offset;
    let start = end - range;
    let mut out = Vec::new();
    for s in raw {
        let lo = s.ts.partition_point(|x| *x <= start);
        let hi = s.ts.partition_point(|x| *x <= end);
        if lo < hi {
            out.push(RawSeries {
                labels: s.labels.clone(),
                drop_name: s.drop_name,
                ts: Arc::new(s.ts[lo..hi].to_vec()),
                vs: Arc::new(s.vs[lo..hi].to_vec()),
                st: s.st.as_ref().map(|st| Arc::new(st[lo..hi].to_vec())),
            });
        }
    }
    out
}
