//! The series notation of Prometheus' test languages (PromQL test
//! scripts' `load`, `promtool test rules`' `input_series`):
//! `metric{a="b"} 1 2+3x4 _ stale`, one value per step.

use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;
use sightline_storage::{Labels, STALE_NAN_BITS};

/// Where the metric part of a series line ends.
pub fn metric_end(def: &str) -> usize {
    let (mut depth, mut quote) = (0i32, None::<char>);
    let mut prev = ' ';
    for (k, c) in def.char_indices() {
        match quote {
            Some(q) => {
                if c == q && prev != '\\' {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' | '`' => quote = Some(c),
                '{' => depth += 1,
                '}' => depth -= 1,
                c if c.is_whitespace() && depth == 0 => return k,
                _ => {}
            },
        }
        prev = if prev == '\\' && c == '\\' { ' ' } else { c };
    }
    def.len()
}

/// A number as the test languages write it (also `0x1f`, `Inf`, `NaN`).
pub fn parse_number(s: &str) -> Option<f64> {
    if let Some(h) = s.strip_prefix("0x") {
        return i64::from_str_radix(h, 16).ok().map(|v| v as f64);
    }
    let s2 = s.strip_prefix('+').unwrap_or(s);
    match s2.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if s2
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
    {
        return s2.parse().ok();
    }
    None
}

/// `metric{a="b"} 1 2+3x4 _ stale` → labels and values (None = omitted).
pub fn parse_series_line(def: &str) -> Result<(Labels, Vec<Option<f64>>), String> {
    let split = metric_end(def);
    let (metric, values) = def.split_at(split);
    let labels = parse_metric(metric.trim())?;
    let mut out = Vec::new();
    for item in values.split_whitespace() {
        expand_item(item, &mut out)?;
    }
    Ok((labels, out))
}

/// A start-timestamp line of PromQL test scripts, `metric{a="b"}@st -30s-1mx2 _ 0`:
/// the labels and, per step, the start timestamp as an offset (ms) from
/// the step's sample time (None = the sample has none). Items are
/// durations in the value notation (`a`, `axN`, `a+bxN`, `a-bxN`, `_`).
pub fn parse_start_timestamp_line(def: &str) -> Result<(Labels, Vec<Option<i64>>), String> {
    let split = metric_end(def);
    let (metric, items) = def.split_at(split);
    let metric = metric.trim();
    let metric = metric
        .strip_suffix("@st")
        .ok_or_else(|| format!("{metric}: a start-timestamp line's series ends in @st"))?;
    let labels = parse_metric(metric)?;
    let mut out = Vec::new();
    for item in items.split_whitespace() {
        expand_item(&durations_as_ms(item)?, &mut out)?;
    }
    Ok((labels, out.into_iter().map(|v| v.map(|ms| ms as i64)).collect()))
}

/// A value item whose numbers are durations (`-30s-1mx2`) with the
/// durations written as milliseconds (`-30000-60000x2`).
fn durations_as_ms(item: &str) -> Result<String, String> {
    if item.starts_with('_') {
        return Ok(item.to_string());
    }
    let (body, times) = match item.rfind('x') {
        Some(k) if k + 1 < item.len() && item[k + 1..].chars().all(|c| c.is_ascii_digit()) => (&item[..k], &item[k..]),
        _ => (item, ""),
    };
    let op_at = body
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '+' || *c == '-')
        .map(|(k, _)| k);
    let signed_ms = |d: &str| -> Result<i64, String> {
        let (negative, unsigned) = match d.as_bytes().first() {
            Some(b'-') => (true, &d[1..]),
            Some(b'+') => (false, &d[1..]),
            _ => (false, d),
        };
        let ms = if unsigned == "0" {
            0
        } else {
            sightline_storage::parse_duration(unsigned)?.as_millis() as i64
        };
        Ok(if negative { -ms } else { ms })
    };
    Ok(match op_at {
        Some(k) => format!(
            "{}{}{}{times}",
            signed_ms(&body[..k])?,
            &body[k..k + 1],
            signed_ms(&body[k + 1..])?
        ),
        None => format!("{}{times}", signed_ms(body)?),
    })
}

/// `metric{a="b"}` (only `=` matchers) → labels.
pub fn parse_metric(m: &str) -> Result<Labels, String> {
    if m == "{}" {
        return Ok(Labels::default());
    }
    let expr = promql_parser::parser::parse(m).map_err(|e| format!("{m}: {e}"))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!("{m}: not a series description"));
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(n) = vs.name {
        pairs.push(("__name__".into(), n));
    }
    for mt in vs.matchers.matchers {
        if mt.op != MatchOp::Equal {
            return Err(format!("{m}: only = matchers in series descriptions"));
        }
        pairs.push((mt.name, mt.value));
    }
    pairs.sort();
    Ok(Labels::from_pairs(pairs))
}

/// Expands one value item (`1`, `_`, `_x3`, `stale`, `1+2x3`, `5-1x4`)
/// into `out` (`None` = no sample at that step).
pub fn expand_item(item: &str, out: &mut Vec<Option<f64>>) -> Result<(), String> {
    if item == "_" {
        out.push(None);
        return Ok(());
    }
    if let Some(n) = item.strip_prefix("_x") {
        let n: usize = n.parse().map_err(|_| format!("bad repeat {item}"))?;
        out.extend(std::iter::repeat_n(None, n));
        return Ok(());
    }
    if item == "stale" {
        out.push(Some(f64::from_bits(STALE_NAN_BITS)));
        return Ok(());
    }
    // a, axN, a+bxN, a-bxN
    let (body, times) = match item.rfind('x') {
        Some(k) if item[k + 1..].chars().all(|c| c.is_ascii_digit()) && k + 1 < item.len() => (
            &item[..k],
            Some(item[k + 1..].parse::<usize>().map_err(|e| e.to_string())?),
        ),
        _ => (item, None),
    };
    // Find the operator between start and step: a sign not at position 0
    // and not right after an exponent marker.
    let bytes = body.as_bytes();
    let mut op_at = None;
    for k in 1..bytes.len() {
        if (bytes[k] == b'+' || bytes[k] == b'-') && !matches!(bytes[k - 1], b'e' | b'E') {
            op_at = Some(k);
            break;
        }
    }
    let (start, step) = match op_at {
        Some(k) if times.is_some() => {
            let a = parse_number(&body[..k]).ok_or_else(|| format!("bad number in {item}"))?;
            let b = parse_number(&body[k + 1..]).ok_or_else(|| format!("bad number in {item}"))?;
            (a, if bytes[k] == b'-' { -b } else { b })
        }
        _ => (parse_number(body).ok_or_else(|| format!("bad value {item}"))?, 0.0),
    };
    match times {
        None => out.push(Some(start)),
        Some(n) => {
            let mut v = start;
            for _ in 0..=n {
                out.push(Some(v));
                v += step;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_start_timestamp_lines() {
        let (labels, sts) =
            parse_start_timestamp_line(r#"c{type="x"}@st _ -30s-1mx2 0 +1m 1ms-1mx1 -59999msx1"#).unwrap();
        assert_eq!(labels.get("type"), Some("x"));
        let want = [
            None,
            Some(-30_000),
            Some(-90_000),
            Some(-150_000),
            Some(0),
            Some(60_000),
        ];
        assert_eq!(&sts[..6], &want);
        assert_eq!(&sts[6..], &[Some(1), Some(-59_999), Some(-59_999), Some(-59_999)]);
        assert!(parse_start_timestamp_line("c 1").is_err());
        assert!(parse_start_timestamp_line("c@st 5q").is_err());
    }

    #[test]
    fn expands_prometheus_value_notation() {
        let (labels, values) = parse_series_line(r#"up{job="a b", i="1"} 1+2x2 _ stale 5-1x1 _x2"#).unwrap();
        assert_eq!(labels.get("job"), Some("a b"));
        assert_eq!(labels.get("__name__"), Some("up"));
        let v: Vec<Option<u64>> = values.iter().map(|v| v.map(f64::to_bits)).collect();
        assert_eq!(
            v,
            vec![
                Some(1f64.to_bits()),
                Some(3f64.to_bits()),
                Some(5f64.to_bits()),
                None,
                Some(STALE_NAN_BITS),
                Some(5f64.to_bits()),
                Some(4f64.to_bits()),
                None,
                None,
            ]
        );
        assert!(parse_series_line("up 1+").is_err());
        assert!(parse_series_line("up{a=~\"x\"} 1").is_err());
    }
}
