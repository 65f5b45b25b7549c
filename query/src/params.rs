//! Request parameters as Prometheus reads them: from the query string and,
//! for form-encoded POSTs, from the body; times as RFC 3339 or Unix
//! seconds.

use axum::http::{HeaderMap, header};

/// The smallest and largest timestamps Prometheus accepts (ms).
pub const MIN_TIME: i64 = -9_223_309_901_257_974;
/// See [`MIN_TIME`].
pub const MAX_TIME: i64 = 9_223_309_901_257_974;

/// All parameters of one request, repeated keys kept in order.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Collects parameters from the query string and a form body.
    pub fn from_parts(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Self {
        let mut pairs: Vec<(String, String)> = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        Params(pairs)
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A time parameter in milliseconds, or `default` when absent.
    pub fn time(&self, name: &str, default: i64) -> Result<i64, String> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(v) => parse_time(v)
                .ok_or_else(|| format!("invalid parameter {name:?}: cannot parse {v:?} to a valid timestamp")),
        }
    }

    /// A non-negative integer parameter; 0 when absent.
    pub fn limit(&self) -> Result<usize, String> {
        match self.get("limit") {
            None | Some("") => Ok(0),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                .ok_or_else(|| format!("invalid parameter \"limit\": cannot parse {v:?} to a valid limit")),
        }
    }
}

/// Parses a duration as Prometheus' API does: float seconds (`15`,
/// `0.5`) or a duration string (`1m30s`, `100ms`). Milliseconds.
pub fn parse_duration_ms(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        let ms = (f * 1000.0).round();
        if !ms.is_finite() || ms.abs() > i64::MAX as f64 {
            return None;
        }
        return Some(ms as i64);
    }
    let mut total: i64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest.find(|c: char| !c.is_ascii_digit())?;
        if n == 0 {
            return None;
        }
        let num: i64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(num.checked_mul(unit)?)?;
    }
    Some(total)
}

/// Parses Unix seconds (with fraction) or RFC 3339 into milliseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return None;
        }
        let ms = (f * 1000.0).round();
        return Some(ms.clamp(MIN_TIME as f64, MAX_TIME as f64) as i64);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_like_prometheus() {
        assert_eq!(parse_time("1435781451.781"), Some(1_435_781_451_781));
        assert_eq!(parse_time("2015-07-01T20:10:51.781Z"), Some(1_435_781_451_781));
        assert_eq!(parse_time("0"), Some(0));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("NaN"), None);
    }

    #[test]
    fn durations_parse_as_seconds_or_units() {
        assert_eq!(parse_duration_ms("15"), Some(15_000));
        assert_eq!(parse_duration_ms("0.5"), Some(500));
        assert_eq!(parse_duration_ms("1m30s"), Some(90_000));
        assert_eq!(parse_duration_ms("100ms"), Some(100));
        assert_eq!(parse_duration_ms("5x"), None);
        assert_eq!(parse_duration_ms(""), None);
    }
}
