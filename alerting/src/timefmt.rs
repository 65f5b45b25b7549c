//! Times and numbers printed as Prometheus and Alertmanager print them
//! (Go's `time.Time` JSON and `strconv.FormatFloat(v, 'e', -1, 64)`).

/// RFC 3339 (Go's zero time for 0).
pub fn rfc3339(ms: i64) -> String {
    if ms == 0 {
        return "0001-01-01T00:00:00Z".into();
    }
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}

/// Parses RFC 3339 into ms (Go's zero time and empty give 0).
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    if s.is_empty() || s.starts_with("0001-01-01") {
        return Ok(0);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("invalid time {s:?}: {e}"))
}

/// Go's `strconv.FormatFloat(v, 'e' or 'E', -1, 64)`: shortest digits,
/// exponent with sign and at least two digits (`1e+00`, `2.5E-01`).
pub fn float_e(v: f64, upper: bool) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let s = format!("{v:e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let e = if upper { 'E' } else { 'e' };
    format!("{mant}{e}{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats() {
        assert_eq!(float_e(1.0, false), "1e+00");
        assert_eq!(float_e(0.25, false), "2.5e-01");
        assert_eq!(float_e(123456.0, false), "1.23456e+05");
        assert_eq!(float_e(50.0, true), "5E+01");
        assert_eq!(float_e(f64::NAN, false), "NaN");
        assert_eq!(rfc3339(0), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(1_700_000_000_000), "2023-11-14T22:13:20Z");
    }
}
