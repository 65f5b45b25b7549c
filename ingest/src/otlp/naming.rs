//! OTLP to Prometheus names, as Prometheus 3 translates them by default
//! (`UnderscoreEscapingWithSuffixes`): invalid characters become `_`,
//! unit and type suffixes are appended.

/// The kind of metric, which decides the suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A gauge (or a non-monotonic sum).
    Gauge,
    /// A monotonic cumulative sum: gets `_total`.
    Counter,
    /// A histogram or summary: no type suffix here.
    Other,
}

fn unit_name(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

fn per_unit_name(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// Invalid characters to `_`, runs of `_` collapsed, leading `_` dropped.
fn clean_unit(s: &str) -> String {
    let mapped: String = s.chars().map(|c| if is_name_char(c) { c } else { '_' }).collect();
    let mut out = String::with_capacity(mapped.len());
    for c in mapped.chars() {
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    out.trim_start_matches('_').to_string()
}

fn unit_suffixes(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let main = parts.next().unwrap_or("").trim();
    let per = parts.next().unwrap_or("").trim();
    let main_suffix = if !main.is_empty() && !main.contains(['{', '}']) {
        unit_name(main).to_string()
    } else {
        String::new()
    };
    let per_suffix = if !per.is_empty() && !per.contains(['{', '}']) {
        format!("per_{}", per_unit_name(per))
    } else {
        String::new()
    };
    (clean_unit(&main_suffix), clean_unit(&per_suffix))
}

/// The Prometheus metric name for an OTLP metric; `None` when nothing
/// valid is left of it.
pub fn metric_name(name: &str, unit: &str, kind: MetricKind) -> Option<String> {
    let mut tokens: Vec<String> = name
        .split(|c: char| !is_name_char(c))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let (mut main, per) = unit_suffixes(unit);
    if tokens.contains(&main) {
        main.clear();
    }
    let mut per = if per == "per_" {
        String::new()
    } else {
        per.trim_end_matches('_').to_string()
    };
    if tokens.contains(&per) {
        per.clear();
    }
    if !per.is_empty() {
        main = main.trim_end_matches('_').to_string();
    }
    if !main.is_empty() {
        tokens.push(main);
    }
    if !per.is_empty() {
        tokens.push(per);
    }
    if kind == MetricKind::Counter {
        tokens.retain(|t| t != "total");
        tokens.push("total".into());
    }
    if unit == "1" && kind == MetricKind::Gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".into());
    }
    let mut out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    (!out.is_empty() && out.chars().any(|c| c != '_')).then_some(out)
}

/// A Prometheus label name for an OTLP attribute key.
pub fn label_name(key: &str) -> String {
    if key.is_empty() {
        return String::new();
    }
    let mut out: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    } else if out.starts_with('_') && !out.starts_with("__") {
        out.insert_str(0, "key");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_translation() {
        let n = |name, unit, kind| metric_name(name, unit, kind).unwrap_or_default();
        assert_eq!(
            n("http.server.duration", "s", MetricKind::Other),
            "http_server_duration_seconds"
        );
        assert_eq!(n("requests.count", "1", MetricKind::Counter), "requests_count_total");
        assert_eq!(n("memory.usage", "By", MetricKind::Gauge), "memory_usage_bytes");
        assert_eq!(n("cpu.utilization", "1", MetricKind::Gauge), "cpu_utilization_ratio");
        assert_eq!(n("net.io", "By/s", MetricKind::Gauge), "net_io_bytes_per_second");
        assert_eq!(n("jobs_total", "{jobs}", MetricKind::Counter), "jobs_total");
        assert_eq!(n("latency_seconds", "s", MetricKind::Other), "latency_seconds");
        assert_eq!(n("2xx.responses", "", MetricKind::Counter), "_2xx_responses_total");
        assert_eq!(n("a..b__c", "", MetricKind::Gauge), "a_b_c");
        assert_eq!(metric_name("...", "", MetricKind::Gauge), None);
    }

    #[test]
    fn label_names_are_sanitised() {
        assert_eq!(label_name("service.name"), "service_name");
        assert_eq!(label_name("2fa"), "key_2fa");
        assert_eq!(label_name("_private"), "key_private");
        assert_eq!(label_name("__keep"), "__keep");
    }
}
