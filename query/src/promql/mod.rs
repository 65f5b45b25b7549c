//! A PromQL engine with Prometheus 3 semantics for float samples.
//!
//! A query runs in two phases: [`plan`] finds every selector and the
//! time range it needs and reads those samples through the storage
//! [`SeriesReader`] (a range function's selector is instead streamed to
//! it while it runs); then the evaluator computes the whole tree
//! synchronously (off the async runtime), node by node over all steps.

mod aggregate;
mod binary;
pub mod durexpr;
pub mod error;
pub mod eval;
mod functions;
mod histogram;
pub mod modifiers;
pub mod plan;
mod start_time;
pub mod value;

use std::sync::Arc;
use std::time::{Duration, Instant};

use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr};
use sightline_storage::SeriesReader;
use tokio::sync::Semaphore;

pub use durexpr::DurationContext;
pub use error::QueryError;
use eval::{Evaluator, Steps, Value};
use value::{DUPLICATE_LABELSET, LabelSet, Point, QueryValue};

/// Limits and defaults of the engine (Prometheus' `--query.*` flags).
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample.
    pub lookback_delta: Duration,
    /// Longest a query may run.
    pub timeout: Duration,
    /// Most samples one query may read.
    pub max_samples: usize,
    /// Most queries running at once; more wait for a slot.
    pub max_concurrent: usize,
    /// Step of subqueries written without one, like `[1h:]` (Prometheus
    /// uses the global evaluation interval).
    pub default_subquery_step: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: Duration::from_secs(300),
            timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
            max_concurrent: 20,
            default_subquery_step: Duration::from_secs(60),
        }
    }
}

/// A query's answer with Prometheus' annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The value.
    pub value: QueryValue,
    /// `PromQL warning: …` messages.
    pub warnings: Vec<String>,
    /// `PromQL info: …` messages.
    pub infos: Vec<String>,
}

/// Runs PromQL queries against a [`SeriesReader`].
pub struct Engine {
    opts: EngineOptions,
    slots: Arc<Semaphore>,
}

/// Parses a query, giving errors in Prometheus' wording; duration
/// expressions see `step()` and `range()` as 0 (an instant query).
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    parse_with(query, &DurationContext::default())
}

/// Parses a query run with the given step and range (for `step()` and
/// `range()` in duration expressions).
pub fn parse_with(query: &str, ctx: &DurationContext) -> Result<Expr, QueryError> {
    let parse_err = |e: String| QueryError::Parse(format!("1:1: parse error: {e}"));
    let query = durexpr::rewrite(query, ctx).map_err(parse_err)?;
    let query = modifiers::rewrite(&query);
    parser::parse(&query).map_err(parse_err)
}

impl Engine {
    /// An engine with these limits.
    pub fn new(opts: EngineOptions) -> Self {
        let slots = Arc::new(Semaphore::new(opts.max_concurrent.max(1)));
        Engine { opts, slots }
    }

    /// The engine's settings.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `query` at `t` (ms).
    pub async fn instant<R: SeriesReader>(&self, reader: &R, query: &str, t: i64) -> Result<QueryResult, QueryError> {
        let expr = parse(query)?;
        self.run(reader, query, expr, Steps::instant(t), true).await
    }

    /// Evaluates `query` at `start`, `start + step`, … up to `end` (ms).
    pub async fn range<R: SeriesReader>(
        &self,
        reader: &R,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<QueryResult, QueryError> {
        let expr = parse_with(
            query,
            &DurationContext {
                step_ms: step,
                range_ms: end - start,
            },
        )?;
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            other => {
                return Err(QueryError::Parse(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    type_name(other)
                )));
            }
        }
        if step <= 0 {
            return Err(QueryError::Parse(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        let end = start + (end - start) / step * step;
        self.run(reader, query, expr, Steps { start, end, step }, false).await
    }

    async fn run<R: SeriesReader>(
        &self,
        reader: &R,
        text: &str,
        expr: Expr,
        steps: Steps,
        instant: bool,
    ) -> Result<QueryResult, QueryError> {
        let text = text.to_string();
        let started = Instant::now();
        let deadline = started + self.opts.timeout;
        let _slot = tokio::time::timeout(self.opts.timeout, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| QueryError::Timeout("queue"))?
            .map_err(|_| QueryError::Timeout("queue"))?;
        // Boxed so selector keys (node addresses) survive moving the tree.
        let expr = Box::new(expr);
        let lookback = self.opts.lookback_delta.as_millis() as i64;
        let query_step = if instant { 0 } else { steps.step };
        let default_subquery_step = self.opts.default_subquery_step.as_millis() as i64;
        let settings = EvalSettings {
            lookback,
            steps,
            default_subquery_step,
            query_step,
            instant,
            max_samples: self.opts.max_samples,
        };
        let reads = {
            let empty = eval::SelectorData::new();
            let ev = settings.evaluator(&empty, None, eval::Streams::new(), 0);
            let mut reads = Vec::new();
            plan::plan(&ev, &expr, steps.start, steps.end, &mut reads)?;
            reads
        };
        let t_plan = started.elapsed();
        let remaining = deadline.saturating_duration_since(Instant::now());
        let (streamed, reads): (Vec<_>, Vec<_>) = reads.into_iter().partition(|r| r.streamed);
        let (data, loaded) = tokio::time::timeout(remaining, plan::load(reader, reads, self.opts.max_samples))
            .await
            .map_err(|_| QueryError::Timeout("query preparation"))??;
        let t_load = started.elapsed();
        // Streamed selectors are read while the evaluator runs: one
        // producer per selector, each a batch ahead of its consumer.
        let mut streams = eval::Streams::new();
        let mut producers = Vec::new();
        for read in &streamed {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            streams.insert(read.key, Some(rx));
            if read.start <= read.end {
                producers.push(reader.select_batches(
                    &read.matchers[0],
                    read.start,
                    read.end,
                    STREAM_BATCH_SAMPLES,
                    tx,
                ));
            }
        }
        let sample_budget = self.opts.max_samples.saturating_sub(loaded);
        let evaluation = tokio::task::spawn_blocking(move || {
            let t0 = Instant::now();
            let ev = settings.evaluator(&data, Some(deadline), streams, sample_budget);
            let value = ev.eval(&expr, steps)?;
            let t_eval = t0.elapsed();
            let value = finish(value, steps, instant)?;
            tracing::debug!(?t_plan, ?t_load, ?t_eval, total = ?(t_load + t0.elapsed()), "query phases");
            let (mut warnings, mut infos) = (Vec::new(), Vec::new());
            for a in ev.annotations.take() {
                let position = a
                    .about
                    .and_then(|about| text.find(&about))
                    .map(|col| format!(" (1:{})", col + 1))
                    .unwrap_or_default();
                if a.warning {
                    warnings.push(format!("PromQL warning: {}{position}", a.message));
                } else {
                    infos.push(format!("PromQL info: {}{position}", a.message));
                }
            }
            Ok(QueryResult { value, warnings, infos })
        });
        let remaining = deadline.saturating_duration_since(Instant::now());
        let (read, evaluated) = tokio::time::timeout(remaining, async {
            tokio::join!(futures::future::try_join_all(producers), evaluation)
        })
        .await
        .map_err(|_| QueryError::Timeout("query execution"))?;
        // A storage failure cut a stream short: the evaluator saw fewer
        // series than exist, so its answer is not returned.
        read?;
        evaluated.map_err(|e| QueryError::Execution(format!("query evaluation failed: {e}")))?
    }
}

/// What every evaluator of one query shares.
#[derive(Clone, Copy)]
struct EvalSettings {
    lookback: i64,
    steps: Steps,
    default_subquery_step: i64,
    query_step: i64,
    instant: bool,
    max_samples: usize,
}

impl EvalSettings {
    fn evaluator<'a>(
        &self,
        data: &'a eval::SelectorData,
        deadline: Option<Instant>,
        streams: eval::Streams,
        sample_budget: usize,
    ) -> Evaluator<'a> {
        Evaluator {
            data,
            lookback: self.lookback,
            query_start: self.steps.start,
            query_end: self.steps.end,
            default_subquery_step: self.default_subquery_step,
            deadline,
            query_step: self.query_step,
            instant: self.instant,
            annotations: Default::default(),
            streams: std::cell::RefCell::new(streams),
            sample_budget: std::cell::Cell::new(sample_budget),
            max_samples: self.max_samples,
        }
    }
}

/// Samples per batch of a streamed selector (about 4 MB as loaded; 1 M
/// was no faster and held ~20 MB more).
const STREAM_BATCH_SAMPLES: usize = 1 << 18;

fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Scalar => "scalar",
        ValueType::String => "string",
        ValueType::Vector => "instant vector",
        ValueType::Matrix => "range vector",
    }
}

/// Turns the evaluated value into the API's result shape: drops
/// `__name__` where delayed, merges and checks equal label sets, sorts.
fn finish(value: Value, steps: Steps, instant: bool) -> Result<QueryValue, QueryError> {
    let dup = || QueryError::Execution(DUPLICATE_LABELSET.into());
    match value {
        Value::Scalar(v) if instant => Ok(QueryValue::Scalar(Point {
            t: steps.start,
            v: v[0],
        })),
        Value::Scalar(v) => Ok(QueryValue::Matrix(vec![(
            LabelSet::default(),
            v.into_iter()
                .enumerate()
                .map(|(i, v)| Point { t: steps.at(i), v })
                .collect(),
        )])),
        Value::String(s) => Ok(QueryValue::String(steps.start, s)),
        Value::Matrix(raw) => {
            let mut out: Vec<(LabelSet, Vec<Point>)> = raw
                .into_iter()
                .map(|r| {
                    let labels = if r.drop_name { r.labels.without_name() } else { r.labels };
                    let points =
                        r.ts.iter()
                            .zip(r.vs.iter())
                            .map(|(t, v)| Point { t: *t, v: *v })
                            .collect();
                    (labels, points)
                })
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            if out.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(dup());
            }
            Ok(QueryValue::Matrix(out))
        }
        Value::Vector(series) if instant => {
            let out: Vec<(LabelSet, Point)> = series
                .into_iter()
                .filter_map(|s| {
                    let labels = s.final_labels();
                    s.points.first().map(|p| (labels, *p))
                })
                .collect();
            let mut seen = std::collections::HashSet::new();
            if !out.iter().all(|(l, _)| seen.insert(l.hash())) {
                return Err(dup());
            }
            Ok(QueryValue::Vector(out))
        }
        Value::Vector(series) => {
            let mut merged: std::collections::BTreeMap<LabelSet, Vec<Point>> = std::collections::BTreeMap::new();
            for s in series {
                if s.points.is_empty() {
                    continue;
                }
                let labels = s.final_labels();
                merged.entry(labels).or_default().extend(s.points);
            }
            let mut out = Vec::with_capacity(merged.len());
            for (labels, mut points) in merged {
                if !points.is_sorted_by_key(|p| p.t) {
                    points.sort_by_key(|p| p.t);
                }
                if points.windows(2).any(|w| w[0].t == w[1].t) {
                    return Err(dup());
                }
                out.push((labels, points));
            }
            Ok(QueryValue::Matrix(out))
        }
    }
}
