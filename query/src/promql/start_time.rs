//! Start timestamps in counter functions (Prometheus 3's experimental
//! "created/start timestamp" semantics, as its `start_timestamps.test`
//! pins them down).
//!
//! A sample's start timestamp (ST) says since when its counter has been
//! counting: constant for a cumulative counter, the previous sample's
//! time for an OpenTelemetry delta. 0 means unknown; then the classic
//! rules (a decrease is a reset) apply. With STs:
//! - a sample whose ST lies after the previous sample (or exactly at it,
//!   when the previous sample's own ST was known and before it) restarted
//!   the counter: its whole value is increase — none when ST equals the
//!   sample's own time, a "reset point" that only sets the baseline;
//! - when the window's first sample started counting inside the window,
//!   its counter is taken to be 0 at its ST: the increase includes the
//!   first value and the window is not extrapolated towards its start;
//! - a sample whose ST lies before the previous sample, without matching
//!   its ST, overlaps it: `rate` and `increase` warn.

use std::sync::Arc;

use sightline_storage::labels::METRIC_NAME;

use super::eval::{RangeInput, Steps, Window};

/// True when a sample with start timestamp `st` restarted the counter
/// after the previous sample (at `prev_t`, with start timestamp
/// `prev_st`). False when `st` is unknown (0).
pub fn restarted(prev_t: i64, prev_st: i64, st: i64) -> bool {
    st != 0 && (st > prev_t || (st == prev_t && prev_st != 0 && prev_st < prev_t))
}

/// True when sample `k` of a series is a counter reset: by its start
/// timestamp when `st` has one, else by a decrease.
pub fn is_reset(ts: &[i64], vs: &[f64], st: &[i64], k: usize) -> bool {
    vs[k] < vs[k - 1] || (!st.is_empty() && restarted(ts[k - 1], st[k - 1], st[k]))
}

/// What sample `k` adds to a counter's raw difference `vs[k] - vs[k-1]`
/// so that the sum is the increase between the two samples: the previous
/// value after a reset (the whole new value is increase), the new value's
/// negation too after a restart at a reset point (no increase at all).
pub fn reset_correction(ts: &[i64], vs: &[f64], st: &[i64], k: usize) -> f64 {
    if !st.is_empty() && restarted(ts[k - 1], st[k - 1], st[k]) {
        if st[k] == ts[k] {
            return vs[k - 1] - vs[k];
        }
        return vs[k - 1];
    }
    if vs[k] < vs[k - 1] { vs[k - 1] } else { 0.0 }
}

/// The start timestamp of the window's first sample when it lies inside
/// the window and before the sample, so that the counter can be taken to
/// be 0 there.
pub fn first_start_inside(w: &Window<'_>) -> Option<i64> {
    let (&st, &t) = (w.st.first()?, w.ts.first()?);
    (st > w.start && st < t).then_some(st)
}

/// True when sample `k`'s start timestamp lies before the previous
/// sample without being the same start: the two samples' intervals
/// overlap, which a counter cannot do.
fn overlaps(ts: &[i64], st: &[i64], k: usize) -> bool {
    st[k] != 0 && st[k] < ts[k - 1] && st[k] != st[k - 1]
}

/// The metric names (`__name__`, possibly empty) of series in `input`
/// with two overlapping samples in one of the steps' windows.
pub fn overlapping_metrics(input: &RangeInput, steps: Steps) -> Vec<String> {
    let mut names = Vec::new();
    for raw in &input.series {
        let Some(st) = raw.st.as_ref().map(Arc::as_ref) else {
            continue;
        };
        let bad: Vec<usize> = (1..raw.ts.len()).filter(|&k| overlaps(&raw.ts, st, k)).collect();
        if bad.is_empty() {
            continue;
        }
        let hit = steps.times().any(|t| {
            let end = input.at.unwrap_or(t) - input.offset;
            let start = end - input.range;
            let lo = raw.ts.partition_point(|x| *x <= start);
            let hi = raw.ts.partition_point(|x| *x <= end);
            // A pair (k-1, k) with both samples in [lo, hi).
            let i = bad.partition_point(|&k| k <= lo);
            i < bad.len() && bad[i] < hi
        });
        if hit {
            names.push(raw.labels.get(METRIC_NAME).to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_follow_the_otel_cases() {
        // Delta (ST = previous T, previous ST known): a restart.
        assert!(restarted(120_000, 60_000, 120_000));
        // Cumulative with unknown start (previous ST unknown): not one.
        assert!(!restarted(120_000, 0, 120_000));
        // Previous ST after its own sample (invalid): not one.
        assert!(!restarted(120_000, 180_000, 120_000));
        // Same start as a reset point at the previous sample: not one.
        assert!(!restarted(120_000, 120_000, 120_000));
        // Started after the previous sample: always one.
        assert!(restarted(120_000, 120_001, 120_001));
        assert!(!restarted(120_000, 0, 0));
    }

    #[test]
    fn corrections_make_the_sum_the_increase() {
        let ts = [0, 60_000, 120_000, 180_000];
        let vs = [5.0, 7.0, 3.0, 4.0];
        // No STs: classic, the decrease at k=2 is a reset.
        assert_eq!(reset_correction(&ts, &vs, &[], 2), 7.0);
        assert_eq!(reset_correction(&ts, &vs, &[], 1), 0.0);
        // Restart at k=3 (ST after the previous sample): all of 4 counts.
        let st = [1, 1, 1, 150_000];
        assert_eq!(vs[3] - vs[2] + reset_correction(&ts, &vs, &st, 3), 4.0);
        // A reset point (ST = T): nothing counts.
        let st = [1, 1, 1, 180_000];
        assert_eq!(vs[3] - vs[2] + reset_correction(&ts, &vs, &st, 3), 0.0);
    }
}

#[cfg(test)]
mod engine_tests {
    use sightline_storage::{Labels, MemorySeries};

    use crate::promql::value::QueryValue;
    use crate::promql::{Engine, EngineOptions};

    /// Prometheus' `start_timestamp()` case without its native histograms:
    /// samples every 10 s, the ones at 20 s without a start timestamp.
    fn data() -> MemorySeries {
        let mut m = MemorySeries::new();
        m.add_with_start(
            Labels::from_pairs([("__name__", "series"), ("case", "a")]),
            [
                (10_000, 10.0, 10_001),
                (20_000, 20.0, 0),
                (30_000, 30.0, 30_000),
                (40_000, 40.0, 39_999),
            ],
        );
        m
    }

    async fn points(query: &str, t: i64) -> Vec<f64> {
        let engine = Engine::new(EngineOptions::default());
        match engine.instant(&data(), query, t).await.expect("query").value {
            QueryValue::Vector(v) => v.iter().map(|s| s.1.v).collect(),
            other => panic!("vector expected, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn start_timestamp_returns_the_selected_samples_start() {
        assert_eq!(points("start_timestamp(series)", 15_000).await, vec![10.001]);
        // Unknown start: 0.
        assert_eq!(points("start_timestamp(series)", 25_000).await, vec![0.0]);
        assert_eq!(points("start_timestamp((series))", 45_000).await, vec![39.999]);
        // A computed vector carries no start timestamps.
        assert!(points("start_timestamp(series * 1)", 45_000).await.is_empty());
    }

    #[tokio::test]
    async fn subqueries_drop_start_timestamps() {
        // Delta samples (each starts where the previous one was taken): a
        // restart each time, so increase counts every value; through a
        // subquery the constant values are a flat counter.
        let mut m = MemorySeries::new();
        m.add_with_start(
            Labels::from_pairs([("__name__", "d")]),
            (1..=10).map(|i| (i * 60_000, 60.0, (i - 1) * 60_000)),
        );
        let engine = Engine::new(EngineOptions::default());
        let value = |q: &'static str| {
            let engine = &engine;
            let m = &m;
            async move {
                match engine.instant(m, q, 600_000).await.expect("query").value {
                    QueryValue::Vector(v) => v[0].1.v,
                    other => panic!("vector expected, got {other:?}"),
                }
            }
        };
        assert_eq!(value("increase(d[5m])").await, 300.0);
        assert_eq!(value("increase(d[5m:1m])").await, 0.0);
    }
}
