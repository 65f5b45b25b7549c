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
    fn needs_an_infinite_bucket() {
        let mut v = vec![b(1.0, 50.0), b(2.0, 100.0)];
        assert!(bucket_quantile(0.5, &mut v).0.is_nan());
    }
}
