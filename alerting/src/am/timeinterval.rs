//! Alertmanager's time intervals (`times`, `weekdays`, `days_of_month`,
//! `months`, `years`), used by `mute_time_intervals` and
//! `active_time_intervals`. Times are evaluated in UTC.

use chrono::{Datelike, Timelike};
use serde::Deserialize;

/// One interval as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalSpec {
    #[serde(default)]
    times: Vec<TimeRangeSpec>,
    #[serde(default)]
    weekdays: Vec<String>,
    #[serde(default)]
    days_of_month: Vec<String>,
    #[serde(default)]
    months: Vec<String>,
    #[serde(default)]
    years: Vec<String>,
    #[serde(default)]
    location: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeRangeSpec {
    start_time: String,
    end_time: String,
}

/// A compiled interval: every non-empty list must contain the time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimeInterval {
    /// Minute-of-day ranges, end exclusive.
    times: Vec<(u32, u32)>,
    /// Weekday ranges, 0 = Sunday, inclusive.
    weekdays: Vec<(u32, u32)>,
    /// Day-of-month ranges, negative from the end, inclusive.
    days_of_month: Vec<(i32, i32)>,
    /// Month ranges, 1-12, inclusive.
    months: Vec<(u32, u32)>,
    /// Year ranges, inclusive.
    years: Vec<(i32, i32)>,
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn minutes(s: &str) -> Result<u32, String> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| format!("bad time {s:?}, expected HH:MM"))?;
    let (h, m): (u32, u32) = (
        h.parse().map_err(|_| format!("bad time {s:?}"))?,
        m.parse().map_err(|_| format!("bad time {s:?}"))?,
    );
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(format!("bad time {s:?}"));
    }
    Ok(h * 60 + m)
}

fn range<T: Copy + PartialOrd>(s: &str, one: impl Fn(&str) -> Result<T, String>) -> Result<(T, T), String> {
    let (a, b) = match s.split_once(':') {
        Some((a, b)) => (one(a.trim())?, one(b.trim())?),
        None => {
            let v = one(s.trim())?;
            (v, v)
        }
    };
    Ok((a, b))
}

fn named(names: &[&str], offset: u32, s: &str) -> Result<u32, String> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        return Ok(i as u32 + offset);
    }
    match lower.parse::<u32>() {
        Ok(n) if offset == 1 && (1..=12).contains(&n) => Ok(n),
        _ => Err(format!("unknown name {s:?}")),
    }
}

impl TimeInterval {
    /// Checks and compiles one interval.
    pub fn compile(spec: &TimeIntervalSpec) -> Result<TimeInterval, String> {
        if let Some(loc) = &spec.location
            && loc != "UTC"
        {
            return Err(format!("location {loc:?}: only UTC is supported"));
        }
        let mut t = TimeInterval::default();
        for r in &spec.times {
            let (a, b) = (minutes(&r.start_time)?, minutes(&r.end_time)?);
            if a >= b {
                return Err(format!(
                    "start_time {} must be before end_time {}",
                    r.start_time, r.end_time
                ));
            }
            t.times.push((a, b));
        }
        for w in &spec.weekdays {
            t.weekdays.push(range(w, |s| named(&WEEKDAYS, 0, s))?);
        }
        for d in &spec.days_of_month {
            let r = range(d, |s| {
                s.parse::<i32>()
                    .ok()
                    .filter(|n| *n != 0 && (-31..=31).contains(n))
                    .ok_or_else(|| format!("bad day of month {s:?}"))
            })?;
            t.days_of_month.push(r);
        }
        for m in &spec.months {
            t.months.push(range(m, |s| named(&MONTHS, 1, s))?);
        }
        for y in &spec.years {
            t.years
                .push(range(y, |s| s.parse::<i32>().map_err(|_| format!("bad year {s:?}")))?);
        }
        Ok(t)
    }

    /// Whether the instant `ms` (UTC) falls in the interval.
    pub fn contains(&self, ms: i64) -> bool {
        let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else {
            return false;
        };
        let minute = t.hour() * 60 + t.minute();
        if !self.times.is_empty() && !self.times.iter().any(|(a, b)| minute >= *a && minute < *b) {
            return false;
        }
        let wd = t.weekday().num_days_from_sunday();
        if !self.weekdays.is_empty() && !self.weekdays.iter().any(|(a, b)| wd >= *a && wd <= *b) {
            return false;
        }
        if !self.days_of_month.is_empty() {
            let days_in_month = {
                let (y, m) = (t.year(), t.month());
                let next = if m == 12 {
                    chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1)
                } else {
                    chrono::NaiveDate::from_ymd_opt(y, m + 1, 1)
                };
                next.and_then(|n| n.pred_opt()).map_or(31, |d| d.day() as i32)
            };
            let day = t.day() as i32;
            let abs = |d: i32| if d < 0 { days_in_month + d + 1 } else { d };
            if !self.days_of_month.iter().any(|(a, b)| day >= abs(*a) && day <= abs(*b)) {
                return false;
            }
        }
        if !self.months.is_empty() && !self.months.iter().any(|(a, b)| t.month() >= *a && t.month() <= *b) {
            return false;
        }
        if !self.years.is_empty() && !self.years.iter().any(|(a, b)| t.year() >= *a && t.year() <= *b) {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> TimeInterval {
        TimeInterval::compile(&serde_saphyr::from_str::<TimeIntervalSpec>(yaml).unwrap()).unwrap()
    }

    // 2026-11-26 is a Thursday.
    const THU_1030: i64 = 1_795_689_000_000;

    #[test]
    fn intervals_contain_what_alertmanager_says() {
        assert!(
            spec("weekdays: ['monday:friday']\ntimes: [{start_time: '09:00', end_time: '17:00'}]\n").contains(THU_1030)
        );
        assert!(!spec("weekdays: ['saturday', 'sunday']\n").contains(THU_1030));
        assert!(!spec("times: [{start_time: '11:00', end_time: '24:00'}]\n").contains(THU_1030));
        assert!(spec("days_of_month: ['-5:-1']\nmonths: ['november']\nyears: ['2026']\n").contains(THU_1030));
        assert!(!spec("days_of_month: ['1:7']\n").contains(THU_1030));
        assert!(
            TimeInterval::compile(&TimeIntervalSpec {
                location: Some("Europe/Berlin".into()),
                ..Default::default()
            })
            .is_err()
        );
    }
}
