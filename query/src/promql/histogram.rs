//! Quantiles from classic histogram buckets, as Prometheus'
//! `BucketQuantile`: sorted, merged on equal bounds, forced monotonic,
//! interpolated linearly inside the bucket.

/// One cumulative bucket: the count of observations `<= upper`.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    /// The bucket's upper bound (`le`).
    pub upper: f64,
    /// Cumulative count.
    pub count: f64,
}

/// Relative tolerance below which bucket count differences are float
/// noise (Prometheus' `smallDeltaTolerance`).
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// Prometheus' `almost.Equal`.
pub fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// The `q` quantile of the distribution the buckets describe, and
/// whether the buckets had to be forced monotonic.
pub fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    let mut forced = false;
    let v = quantile_sorted(q, buckets, &mut forced);
    (v, forced)
}

fn quantile_sorted(q: f64, buckets: &mut Vec<Bucket>, forced: &mut bool) -> f64 {
    buckets.sort_by(|a, b| a.upper.partial_cmp(&b.upper).unwrap_or(std::cmp::Ordering::Equal));
    match buckets.last() {
        Some(b) if b.upper == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    coalesce(buckets);
    *forced = ensure_monotonic(buckets);
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let n = buckets.len() - 1;
    let b = buckets[..n].partition_point(|x| x.count < rank);
    if b == n {
        return buckets[n - 1].upper;
    }
    if b == 0 && buckets[0].upper <= 0.0 {
        return buckets[0].upper;
    }
    let end = buckets[b].upper;
    let mut count = buckets[b].count;
    let mut start = 0.0;
    if b > 0 {
        start = buckets[b - 1].upper;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    start + (end - start) * (rank / count)
}

/// The fraction of observations between `lower` and `upper` the classic
/// buckets describe, interpolating linearly inside finite buckets. The
/// lowest bucket starts at 0 when its bound is positive, else at -Inf;
/// inside a bucket of infinite width nothing is interpolated (a bound
/// there counts none of that bucket's observations).
pub fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<Bucket>) -> f64 {
    if lower.is_nan() || upper.is_nan() || buckets.is_empty() {
        return f64::NAN;
    }
    buckets.sort_by(|a, b| a.upper.partial_cmp(&b.upper).unwrap_or(std::cmp::Ordering::Equal));
    match buckets.last() {
        Some(b) if b.upper == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    coalesce(buckets);
    ensure_monotonic(buckets);
    let total = buckets[buckets.len() - 1].count;
    if total == 0.0 {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    // Where a bound falls in rank (number of observations below it).
    let rank_of = |x: f64| -> f64 {
        let mut below = 0.0;
        let mut prev_upper = if buckets[0].upper > 0.0 { 0.0 } else { f64::NEG_INFINITY };
        let mut prev_count = 0.0;
        for b in buckets.iter() {
            let count = b.count - prev_count;
            let lo = prev_upper;
            if lo >= x {
                return below;
            }
            if x < b.upper {
                return if lo == f64::NEG_INFINITY {
                    below + count
                } else if b.upper == f64::INFINITY {
                    below
                } else {
                    below + count * (x - lo) / (b.upper - lo)
                };
            }
            below += count;
            prev_upper = b.upper;
            prev_count = b.count;
        }
        total
    };
    let (lo_rank, hi_rank) = (rank_of(lower).min(total), rank_of(upper).min(total));
    (hi_rank - lo_rank) / total
}

fn coalesce(buckets: &mut Vec<Bucket>) {
    let mut out: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match out.last_mut() {
            Some(last) if last.upper == b.upper => last.count += b.count,
            _ => out.push(*b),
        }
    }
    *buckets = out;
}

/// Removes decreases between buckets; true when a real (not float
/// noise) decrease was removed.
fn ensure_monotonic(buckets: &mut [Bucket]) -> bool {
    let mut forced = false;
    let mut prev = buckets[0].count;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.count;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, SMALL_DELTA_TOLERANCE) {
            b.count = prev;
            continue;
        }
        if curr < prev {
            b.count = prev;
            forced = true;
            continue;
        }
        prev = curr;
    }
    forced
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(upper: f64, count: f64) -> Bucket {
        Bucket { upper, count }
    }

    #[test]
    fn interpolates_within_the_bucket() {
        let mut v = vec![b(f64::INFINITY, 100.0), b(1.0, 50.0), b(2.0, 100.0)];
        assert_eq!(bucket_quantile(0.5, &mut v).0, 1.0);
        let mut v = vec![b(1.0, 50.0), b(2.0, 100.0), b(f64::INFINITY, 100.0)];
        assert_eq!(bucket_quantile(0.75, &mut v).0, 1.5);
    }

    #[test]
    fn fractions_interpolate_and_skip_infinite_buckets() {
        let set = || vec![b(1.0, 1.0), b(2.0, 3.0), b(3.0, 6.0), b(f64::INFINITY, 100.0)];
        assert!((bucket_fraction(0.0, 1.5, &mut set()) - 0.02).abs() < 1e-12);
        assert_eq!(bucket_fraction(4.0, 5.0, &mut set()), 0.0);
        assert_eq!(bucket_fraction(f64::NEG_INFINITY, f64::INFINITY, &mut set()), 1.0);
        let neg = || vec![b(-3.0, 10.0), b(-2.0, 12.0), b(-1.0, 15.0), b(f64::INFINITY, 100.0)];
        assert!((bucket_fraction(-4.0, -2.0, &mut neg()) - 0.02).abs() < 1e-12);
        assert!((bucket_fraction(f64::NEG_INFINITY, -1.5, &mut neg()) - 0.135).abs() < 1e-12);
    }

    #[test]
    fn needs_an_infinite_bucket() {
        let mut v = vec![b(1.0, 50.0), b(2.0, 100.0)];
        assert!(bucket_quantile(0.5, &mut v).0.is_nan());
    }
}
