//! The Prometheus text exposition format (version 0.0.4), as every
//! `/metrics` endpoint serves it: `# HELP` and `# TYPE` lines, then
//! `name{label="value",…} value [timestamp_ms]` per sample.

/// One sample of a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapedSample {
    /// `__name__` first, then the labels as written.
    pub labels: Vec<(String, String)>,
    /// The value (`NaN`, `+Inf`, `-Inf` allowed).
    pub value: f64,
    /// The sample's own timestamp (ms), when the exposition gives one.
    pub timestamp: Option<i64>,
}

/// Parses an exposition; fails on the first malformed line, naming it
/// (Prometheus refuses the whole scrape then, and so do we).
pub fn parse(text: &str) -> Result<Vec<ScrapedSample>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(parse_line(line).map_err(|e| format!("line {}: {e}: {line:?}", n + 1))?);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<ScrapedSample, String> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace()).unwrap_or(line.len());
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut labels = vec![("__name__".to_string(), name.to_string())];
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let (pairs, after) = parse_labels(body)?;
        labels.extend(pairs);
        rest = after;
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value = parse_value(value)?;
    let timestamp = match fields.next() {
        Some(t) => Some(t.parse::<i64>().map_err(|_| format!("invalid timestamp {t:?}"))?),
        None => None,
    };
    if fields.next().is_some() {
        return Err("text after the timestamp".into());
    }
    Ok(ScrapedSample {
        labels,
        value,
        timestamp,
    })
}

/// Label pairs as written.
type Pairs = Vec<(String, String)>;

/// `name="value",…}` up to and past the closing brace; returns the pairs
/// and the text after the brace.
fn parse_labels(mut s: &str) -> Result<(Pairs, &str), String> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok((out, after));
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let name = s[..eq].trim();
        if !is_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        let after = s[eq + 1..].trim_start();
        let body = after.strip_prefix('"').ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = body.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, c)) => {
                        value.push('\\');
                        value.push(c);
                    }
                    None => return Err("unterminated label value".into()),
                },
                Some((_, c)) => value.push(c),
            }
        };
        out.push((name.to_string(), value));
        s = body[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s.parse::<f64>().map_err(|_| format!("invalid value {s:?}")),
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_node_exporter_scrape_parses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/metrics/node_exporter.prom"
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("SKIPPED: {path} not present");
            return;
        };
        let samples = parse(&text).expect("parses");
        assert_eq!(samples.len(), 507, "the README of the data set counts 507 series");
        assert!(
            samples.iter().any(|s| s.labels[0].1 == "node_cpu_seconds_total"
                && s.labels.iter().any(|(n, v)| n == "mode" && v == "idle"))
        );
    }

    #[test]
    fn escapes_special_values_and_timestamps() {
        let text =
            "# HELP x help\n# TYPE x gauge\nx{a=\"q\\\"uo\\nte\",b=\"\\\\\"} +Inf 1700000000000\ny NaN\nz{} -1.5e3\n";
        let s = parse(text).expect("parses");
        assert_eq!(
            s[0].labels,
            vec![
                ("__name__".to_string(), "x".to_string()),
                ("a".into(), "q\"uo\nte".into()),
                ("b".into(), "\\".into())
            ]
        );
        assert_eq!((s[0].value, s[0].timestamp), (f64::INFINITY, Some(1_700_000_000_000)));
        assert!(s[1].value.is_nan());
        assert_eq!(s[2].value, -1500.0);
    }

    #[test]
    fn malformed_lines_are_named() {
        for bad in ["1x 3", "x{a=b} 1", "x{a=\"b} 1", "x", "x 1 2 3", "x{1a=\"b\"} 1"] {
            let e = parse(bad).expect_err(bad);
            assert!(e.starts_with("line 1:"), "{e}");
        }
    }
}
