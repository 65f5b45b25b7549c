//! Request parameters as Loki reads them: times as Unix nanoseconds,
//! Unix seconds with a fraction, or RFC 3339; steps as durations or
//! seconds.

use crate::logql::Direction;
use crate::params::Params;

use super::{LokiError, bad};

/// The parameters of one Loki request.
pub(super) struct LokiParams(pub Params);

impl std::ops::Deref for LokiParams {
    type Target = Params;
    fn deref(&self) -> &Params {
        &self.0
    }
}

impl LokiParams {
    pub fn required(&self, name: &str) -> Result<String, LokiError> {
        match self.get(name) {
            Some(q) if !q.trim().is_empty() => Ok(q.to_string()),
            _ => Err(bad(format!("missing required parameter {name:?}"))),
        }
    }

    pub fn time_ns(&self, name: &str, default: i64) -> Result<i64, LokiError> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(v) => parse_loki_time(v)
                .ok_or_else(|| bad(format!("invalid parameter {name:?}: cannot parse {v:?} as a timestamp"))),
        }
    }

    /// `start`/`end` (or `since`), with end defaulting to now and start to
    /// `default_secs` before it.
    pub fn range_ns(&self, default_secs: i64) -> Result<(i64, i64), LokiError> {
        let end = self.time_ns("end", super::logql_now())?;
        let since = match self.get("since") {
            Some(s) if !s.is_empty() => {
                parse_loki_duration_ns(s).ok_or_else(|| bad(format!("invalid parameter \"since\": {s:?}")))?
            }
            _ => default_secs * 1_000_000_000,
        };
        let start = self.time_ns("start", end - since)?;
        if end < start {
            return Err(bad("the end timestamp must not be before the start time"));
        }
        Ok((start, end))
    }

    pub fn limit(&self) -> Result<usize, LokiError> {
        match self.get("limit") {
            None | Some("") => Ok(100),
            Some(v) => v.parse::<usize>().map_err(|_| {
                bad(format!(
                    "invalid parameter \"limit\": {v:?} is not a non-negative integer"
                ))
            }),
        }
    }

    pub fn direction(&self) -> Result<Direction, LokiError> {
        match self.get("direction").map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("backward") => Ok(Direction::Backward),
            Some("forward") => Ok(Direction::Forward),
            Some(other) => Err(bad(format!("invalid direction {other:?}: use forward or backward"))),
        }
    }
}

/// Loki's timestamp rules: with a `.`, Unix seconds; an integer of up to
/// 10 digits, Unix seconds; a longer one, nanoseconds; else RFC 3339.
pub fn parse_loki_time(v: &str) -> Option<i64> {
    if v.contains('.')
        && let Ok(f) = v.parse::<f64>()
    {
        return f.is_finite().then(|| (f * 1e3).round() as i64 * 1_000_000);
    }
    if let Ok(n) = v.parse::<i64>() {
        return Some(if v.trim_start_matches('-').len() <= 10 {
            n.saturating_mul(1_000_000_000)
        } else {
            n
        });
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .ok()
        .and_then(|d| d.timestamp_nanos_opt())
}

/// A step or `since`: a duration (`1m`) or seconds (`60`, `0.5`).
pub fn parse_loki_duration_ns(v: &str) -> Option<i64> {
    if let Ok(f) = v.parse::<f64>() {
        return (f.is_finite() && f >= 0.0).then_some((f * 1e9) as i64);
    }
    crate::logql::lexer::parse_duration(v).map(|s| (s * 1e9) as i64)
}

/// Loki's default step: the range over 250 points, at least a second.
pub fn default_step_ns(start: i64, end: i64) -> i64 {
    let secs = ((end - start) as f64 / 1e9 / 250.0).floor().max(1.0);
    (secs * 1e9) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loki_time_formats() {
        assert_eq!(parse_loki_time("1700000000"), Some(1_700_000_000_000_000_000));
        assert_eq!(parse_loki_time("1700000000.5"), Some(1_700_000_000_500_000_000));
        assert_eq!(parse_loki_time("1700000000000000001"), Some(1_700_000_000_000_000_001));
        assert_eq!(parse_loki_time("2023-11-14T22:13:20Z"), Some(1_700_000_000_000_000_000));
        assert_eq!(parse_loki_time("soon"), None);
        assert_eq!(default_step_ns(0, 3600 * 1_000_000_000), 14_000_000_000);
        assert_eq!(parse_loki_duration_ns("1m"), Some(60_000_000_000));
    }
}
