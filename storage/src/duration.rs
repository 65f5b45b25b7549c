//! Prometheus-style durations (`15s`, `1h30m`, `500ms`), shared by every
//! configuration file.

use std::time::Duration;

/// Parses a Prometheus duration such as `15d`, `1h30m`, `500ms`; the
/// error says what is wrong and what is expected.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total_ms: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "invalid duration {s:?}: expected a number, e.g. 15d, 1h30m, 500ms"
            ));
        }
        let n: u128 = rest[..digits].parse().map_err(|_| format!("invalid duration {s:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit_ms: u128 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            u => {
                return Err(format!(
                    "invalid duration {s:?}: unknown unit {u:?} (use ms, s, m, h, d, w, y)"
                ));
            }
        };
        rest = &rest[unit_len..];
        total_ms += n * unit_ms;
    }
    u64::try_from(total_ms)
        .map(Duration::from_millis)
        .map_err(|_| format!("duration {s:?} is too long"))
}
