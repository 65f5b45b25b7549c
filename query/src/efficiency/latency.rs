//! A cohort's latency distribution from a classic histogram's buckets,
//! summarised with an HDR histogram.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Percentiles of a latency distribution, in the histogram's unit (the
/// unit of its `le` bounds, seconds for `*_seconds_bucket`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Observations in the cohort's time range.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Observations above the highest finite bucket bound: counted at that
    /// bound, so percentiles reaching into them are lower bounds.
    pub above_highest_bound: u64,
}

/// Values are recorded in millionths of the unit (microseconds for
/// seconds), three significant digits.
const SCALE: f64 = 1e6;

/// Points each bucket's observations are spread over: within a bucket,
/// observations are taken to be evenly spread (as `histogram_quantile`
/// interpolates linearly).
const SPREAD: u64 = 64;

/// Summarises buckets given as `(upper bound, cumulative count)` (any
/// order; `+Inf` included). None when they hold no observation.
pub fn summarise(buckets: &[(f64, f64)]) -> Option<LatencySummary> {
    let mut buckets: Vec<(f64, u64)> = buckets
        .iter()
        .filter(|(le, c)| !le.is_nan() && c.is_finite())
        .map(|(le, c)| (*le, c.max(0.0).round() as u64))
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let highest_finite = buckets.iter().rev().find(|b| b.0.is_finite()).map_or(0.0, |b| b.0);
    let top = ((highest_finite.max(0.0) * SCALE) as u64).max(2);
    let mut h = Histogram::<u64>::new_with_bounds(1, top.saturating_mul(2), 3).ok()?;
    let (mut lower, mut below, mut above) = (0.0f64, 0u64, 0u64);
    for (le, cumulative) in buckets {
        // Counts of an increase() over buckets may dip at a bound: never
        // negative.
        let count = cumulative.saturating_sub(below);
        below = below.max(cumulative);
        if count == 0 {
            lower = le.max(lower);
            continue;
        }
        if le.is_infinite() {
            above += count;
            h.saturating_record_n(to_units(highest_finite), count);
            continue;
        }
        let slices = count.min(SPREAD);
        for j in 0..slices {
            let at = lower + (le - lower) * (j as f64 + 0.5) / slices as f64;
            let n = count / slices + u64::from(j < count % slices);
            h.saturating_record_n(to_units(at), n);
        }
        lower = le;
    }
    if h.is_empty() {
        return None;
    }
    let at = |q: f64| h.value_at_quantile(q) as f64 / SCALE;
    Some(LatencySummary {
        count: h.len(),
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        p999: at(0.999),
        above_highest_bound: above,
    })
}

fn to_units(v: f64) -> u64 {
    ((v.max(0.0) * SCALE) as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_within_buckets() {
        // 100 observations: 50 in (0, 0.1], 40 in (0.1, 0.2], 10 in (0.2, 1].
        let s = summarise(&[(0.1, 50.0), (0.2, 90.0), (1.0, 100.0), (f64::INFINITY, 100.0)]).expect("data");
        assert_eq!(s.count, 100);
        assert_eq!(s.above_highest_bound, 0);
        // The median sits at the first bucket's top, p90 at the second's.
        assert!((s.p50 - 0.1).abs() < 0.005, "{s:?}");
        assert!((s.p90 - 0.2).abs() < 0.005, "{s:?}");
        assert!(s.p99 > 0.8 && s.p99 <= 1.0, "{s:?}");
    }

    #[test]
    fn overflow_is_counted_and_empty_histograms_have_no_summary() {
        let s = summarise(&[(f64::INFINITY, 10.0), (0.5, 5.0)]).expect("data");
        assert_eq!((s.count, s.above_highest_bound), (10, 5));
        assert!((s.p99 - 0.5).abs() < 0.001);
        assert_eq!(summarise(&[(0.5, 0.0), (f64::INFINITY, 0.0)]), None);
        assert_eq!(summarise(&[]), None);
    }
}
