//! The functions a rule template may call: Go's built-ins (`and`, `or`,
//! `not`, `eq`…`ge`, `len`, `index`, `print*`, `html`, `js`,
//! `urlquery`) and Prometheus' (`query`, `first`, `label`, `value`,
//! `humanize*`, `reReplaceAll`, `match`, `title`, `stripPort`, …).

use std::collections::BTreeMap;

use sightline_query::gotemplate::builtins::{fail, nargs, string};
use sightline_query::gotemplate::gofmt::{fmt_g, fmt_v};
use sightline_query::gotemplate::{CallError, Value};

use super::Env;

type R = Result<Value, CallError>;

/// Prometheus' `convertToFloat`: numbers, and strings that parse.
fn to_float(v: &Value) -> Result<f64, CallError> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| fail(format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"))),
        other => Err(fail(format!("can't convert {} to float", other.kind()))),
    }
}

fn sample_field<'a>(v: &'a Value, field: &str, func: &str) -> Result<&'a Value, CallError> {
    match v {
        Value::Map(m) => m
            .get(field)
            .ok_or_else(|| fail(format!("{func}() needs a query result sample"))),
        other => Err(fail(format!(
            "{func}() needs a query result sample, got {}",
            other.kind()
        ))),
    }
}

/// Every function name `call` knows.
pub const NAMES: &[&str] = &[
    "and",
    "or",
    "not",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "len",
    "index",
    "print",
    "println",
    "printf",
    "html",
    "safeHtml",
    "js",
    "urlquery",
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "sortByLabel",
    "args",
    "reReplaceAll",
    "match",
    "title",
    "toUpper",
    "toLower",
    "graphLink",
    "tableLink",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "parseDuration",
    "pathPrefix",
    "externalURL",
    "stripPort",
    "stripDomain",
];

/// Calls `name`.
pub fn call(name: &str, args: Vec<Value>, env: &mut dyn Env) -> R {
    match name {
        "safeHtml" => {
            nargs(&args, 1, name)?;
            Ok(Value::Str(string(&args[0])?.to_string()))
        }
        "query" => {
            nargs(&args, 1, name)?;
            let q = string(&args[0])?;
            env.query(q).map(Value::List).map_err(fail)
        }
        "first" => {
            nargs(&args, 1, name)?;
            match &args[0] {
                Value::List(l) => l
                    .first()
                    .cloned()
                    .ok_or_else(|| fail("first() called on vector with no elements")),
                other => Err(fail(format!("first() needs a query result, got {}", other.kind()))),
            }
        }
        "label" => {
            nargs(&args, 2, name)?;
            let label = string(&args[0])?;
            match sample_field(&args[1], "Labels", name)? {
                Value::Map(m) => Ok(m.get(label).cloned().unwrap_or(Value::Str(String::new()))),
                _ => Ok(Value::Str(String::new())),
            }
        }
        "value" => {
            nargs(&args, 1, name)?;
            sample_field(&args[0], "Value", name).cloned()
        }
        "strvalue" => {
            nargs(&args, 1, name)?;
            match sample_field(&args[0], "Labels", name)? {
                Value::Map(m) => Ok(m.get("__value__").cloned().unwrap_or(Value::Str(String::new()))),
                _ => Ok(Value::Str(String::new())),
            }
        }
        "sortByLabel" => {
            nargs(&args, 2, name)?;
            let label = string(&args[0])?.to_string();
            let Value::List(mut l) = args[1].clone() else {
                return Err(fail("sortByLabel needs a query result"));
            };
            let key = |v: &Value| match v {
                Value::Map(m) => match m.get("Labels") {
                    Some(Value::Map(l)) => l.get(&label).map(fmt_v).unwrap_or_default(),
                    _ => String::new(),
                },
                _ => String::new(),
            };
            l.sort_by_key(key);
            Ok(Value::List(l))
        }
        "args" => Ok(Value::Map(
            args.into_iter()
                .enumerate()
                .map(|(i, v)| (format!("arg{i}"), v))
                .collect::<BTreeMap<_, _>>(),
        )),
        "reReplaceAll" => {
            nargs(&args, 3, name)?;
            let re = regex::Regex::new(string(&args[0])?).map_err(|e| fail(e.to_string()))?;
            Ok(Value::Str(
                re.replace_all(string(&args[2])?, string(&args[1])?).into_owned(),
            ))
        }
        "match" => {
            nargs(&args, 2, name)?;
            let re = regex::Regex::new(string(&args[0])?).map_err(|e| fail(e.to_string()))?;
            Ok(Value::Bool(re.is_match(string(&args[1])?)))
        }
        "title" => {
            nargs(&args, 1, name)?;
            Ok(Value::Str(title(string(&args[0])?)))
        }
        "toUpper" => {
            nargs(&args, 1, name)?;
            Ok(Value::Str(string(&args[0])?.to_uppercase()))
        }
        "toLower" => {
            nargs(&args, 1, name)?;
            Ok(Value::Str(string(&args[0])?.to_lowercase()))
        }
        "graphLink" | "tableLink" => {
            nargs(&args, 1, name)?;
            let expr: String = form_urlencoded::byte_serialize(string(&args[0])?.as_bytes()).collect();
            let tab = if name == "tableLink" { 1 } else { 0 };
            Ok(Value::Str(format!("/graph?g0.expr={expr}&g0.tab={tab}")))
        }
        "humanize" => {
            nargs(&args, 1, name)?;
            Ok(Value::Str(humanize(to_float(&args[0])?)))
        }
        "humanize1024" => {
            nargs(&args, 1, name)?;
            Ok(Value::Str(humanize1024(to_float(&args[0])?)))
        }
        "humanizeDuration" => {
            nargs(&args, 1, name)?;
            Ok(Value::Str(humanize_duration(to_float(&args[0])?)))
        }
        "humanizePercentage" => {
            nargs(&args, 1, name)?;
            Ok(Value::Str(format!("{}%", fmt_g(to_float(&args[0])? * 100.0, Some(4)))))
        }
        "humanizeTimestamp" => {
            nargs(&args, 1, name)?;
            Ok(Value::Str(humanize_timestamp(to_float(&args[0])?)))
        }
        "parseDuration" => {
            nargs(&args, 1, name)?;
            let text = string(&args[0])?;
            let ms = sightline_query::params::parse_duration_ms(text)
                .ok_or_else(|| fail(format!("not a valid duration string: {text:?}")))?;
            Ok(Value::Float(ms as f64 / 1000.0))
        }
        "pathPrefix" => Ok(Value::Str(env.path_prefix())),
        "externalURL" => Ok(Value::Str(env.external_url())),
        "stripPort" => {
            nargs(&args, 1, name)?;
            Ok(Value::Str(strip_port(string(&args[0])?).to_string()))
        }
        "stripDomain" => {
            nargs(&args, 1, name)?;
            Ok(Value::Str(strip_domain(string(&args[0])?)))
        }
        _ => Err(CallError::Unknown),
    }
}

const BIG: [&str; 8] = ["k", "M", "G", "T", "P", "E", "Z", "Y"];
const SMALL: [&str; 8] = ["m", "u", "n", "p", "f", "a", "z", "y"];

fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return fmt_g(v, Some(4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in BIG {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in SMALL {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", fmt_g(v, Some(4)))
}

fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return fmt_g(v, Some(4));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", fmt_g(v, Some(4)))
}

fn humanize_duration(mut v: f64) -> String {
    if !v.is_finite() {
        return fmt_g(v, Some(4));
    }
    if v == 0.0 {
        return format!("{}s", fmt_g(v, Some(4)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (seconds, minutes, hours, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", fmt_g(v, Some(4)));
    }
    let mut prefix = "";
    for p in SMALL {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", fmt_g(v, Some(4)))
}

/// Go's `time.Time` printing of a Unix time in UTC, at the millisecond
/// precision Prometheus keeps (`model.TimeFromUnixNano`).
fn humanize_timestamp(v: f64) -> String {
    let ns = v * 1e9;
    if !v.is_finite() || ns >= i64::MAX as f64 || ns <= i64::MIN as f64 {
        return fmt_g(v, Some(4));
    }
    let ms = (ns as i64) / 1_000_000;
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else {
        return fmt_g(v, Some(4));
    };
    let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let frac_ms = ms.rem_euclid(1000);
    if frac_ms > 0 {
        s.push('.');
        s.push_str(format!("{frac_ms:03}").trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

fn strip_port(s: &str) -> &str {
    if let Some(rest) = s.strip_prefix('[') {
        return match rest.split_once("]:") {
            Some((host, _)) => host,
            None => s,
        };
    }
    match s.rsplit_once(':') {
        Some((host, _)) if !host.contains(':') => host,
        _ => s,
    }
}

fn strip_domain(s: &str) -> String {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && !h.starts_with('[') => (h, Some(p)),
        _ => (s, None),
    };
    if host.parse::<std::net::IpAddr>().is_ok() || s.starts_with('[') || host.matches(':').count() > 1 {
        return s.to_string();
    }
    let short = host.split('.').next().unwrap_or(host);
    match port {
        Some(p) => format!("{short}:{p}"),
        None => short.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanizers_match_prometheus() {
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(999.0), "999");
        assert_eq!(humanize(0.0012), "1.2m");
        assert_eq!(humanize(-1500.0), "-1.5k");
        assert_eq!(humanize1024(1048576.0), "1Mi");
        assert_eq!(humanize1024(0.5), "0.5");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(3600.0), "1h 0m 0s");
        assert_eq!(humanize_duration(61.5), "1m 1s");
        assert_eq!(humanize_duration(1.2345), "1.234s");
        assert_eq!(humanize_duration(0.0012), "1.2ms");
        assert_eq!(humanize_duration(0.0), "0s");
        assert_eq!(humanize_timestamp(1435065584.128), "2015-06-23 13:19:44.128 +0000 UTC");
        assert_eq!(humanize_timestamp(0.0), "1970-01-01 00:00:00 +0000 UTC");
    }

    #[test]
    fn host_helpers() {
        assert_eq!(strip_port("foo.example.com:9100"), "foo.example.com");
        assert_eq!(strip_port("[::1]:9100"), "::1");
        assert_eq!(strip_port("noport"), "noport");
        assert_eq!(strip_domain("foo.example.com:9100"), "foo:9100");
        assert_eq!(strip_domain("10.0.0.1:9100"), "10.0.0.1:9100");
        assert_eq!(strip_domain("foo.example.com"), "foo");
        assert_eq!(title("hello wORLD-x"), "Hello WORLD-X");
    }
}
