//! Samples and the value encodings storage relies on.

/// One float sample: a millisecond timestamp, a value and, for counters
/// whose sender knows it, the start timestamp.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    /// The value; a Prometheus staleness marker is the NaN [`STALE_NAN_BITS`].
    pub v: f64,
    /// When the counter this sample belongs to started counting (ms since
    /// the epoch; OpenTelemetry's `start_time_unix_nano`, remote write
    /// 2's start timestamp); 0 when unknown.
    pub st: i64,
}

impl Sample {
    /// Builds a sample without a start timestamp.
    pub fn new(t: i64, v: f64) -> Self {
        Sample { t, v, st: 0 }
    }

    /// Builds a sample whose counter started at `st` (0 = unknown).
    pub fn with_start(t: i64, v: f64, st: i64) -> Self {
        Sample { t, v, st }
    }

    /// True when both timestamp and the exact value bits are equal, so a
    /// retried write of the same sample is recognised (NaN included).
    pub fn same_as(&self, other: &Sample) -> bool {
        self.t == other.t && self.v.to_bits() == other.v.to_bits()
    }
}

/// The bit pattern Prometheus uses for a staleness marker (a signalling NaN).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// True when `v` is exactly a Prometheus staleness marker.
pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Largest decimal scale tried when storing floats as scaled integers.
pub const MAX_DECIMAL_SCALE: u8 = 12;

const POW10: [f64; 13] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12];
const MAX_EXACT: f64 = 9_007_199_254_740_992.0; // 2^53

/// The smallest scale `s <= MAX_DECIMAL_SCALE` with `v == m / 10^s` exactly
/// for an integer `m` (|m| <= 2^53), or `None` when `v` is not such a
/// decimal (NaN, infinities, -0.0, full-precision floats).
pub fn decimal_scale(v: f64) -> Option<u8> {
    if !v.is_finite() || (v == 0.0 && v.is_sign_negative()) {
        return None;
    }
    (0..=MAX_DECIMAL_SCALE).find(|&s| to_scaled(v, s).is_some())
}

/// `v` as the integer `m` with `m / 10^scale == v` bit for bit, if exact.
pub fn to_scaled(v: f64, scale: u8) -> Option<i64> {
    if v == 0.0 && v.is_sign_negative() {
        // The integer 0 would come back as +0.0.
        return None;
    }
    let p = POW10[usize::from(scale)];
    let m = (v * p).round();
    if m.abs() > MAX_EXACT {
        return None;
    }
    let back = m / p;
    (back.to_bits() == v.to_bits()).then_some(m as i64)
}

/// The float a scaled integer stands for: `m / 10^scale`.
pub fn from_scaled(m: i64, scale: u8) -> f64 {
    m as f64 / POW10[usize::from(scale.min(MAX_DECIMAL_SCALE))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_scale_round_trips_exactly() {
        for v in [0.0, 1.0, 0.1, 12345.67, 1.445401e6, -3.25, 8.178952e6, 0.000123, 1e15] {
            let s = decimal_scale(v).expect("decimal");
            let m = to_scaled(v, s).expect("exact");
            assert_eq!(from_scaled(m, s).to_bits(), v.to_bits(), "{v}");
        }
        assert_eq!(decimal_scale(12345.67), Some(2));
        assert_eq!(decimal_scale(f64::NAN), None);
        assert_eq!(decimal_scale(-0.0), None);
        assert_eq!(decimal_scale(f64::INFINITY), None);
        assert_eq!(decimal_scale(std::f64::consts::PI), None);
        assert_eq!(decimal_scale(1e300), None);
    }

    #[test]
    fn stale_marker_is_recognised_by_bits() {
        let stale = f64::from_bits(STALE_NAN_BITS);
        assert!(is_stale_marker(stale));
        assert!(!is_stale_marker(f64::NAN));
        assert!(Sample::new(1, stale).same_as(&Sample::new(1, stale)));
    }
}
