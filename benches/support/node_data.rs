//! A deterministic node_exporter-like data set: the real series shapes of
//! `../shared/data/metrics/node_exporter.prom` multiplied over many hosts,
//! with values that move the way each kind of metric really moves.

use std::collections::BTreeMap;

pub use crate::rng::Rng;

/// How a series' value evolves between scrapes.
#[derive(Debug, Clone, Copy)]
enum Model {
    /// Never changes (info metrics, sizes, flags, boot time).
    Constant,
    /// CPU-seconds counters: steps of 0.01.
    CounterCentis,
    /// Byte counters: large integer steps.
    CounterBytes,
    /// Event counters: small integer steps.
    CounterEvents,
    /// Memory-like gauges: page (4096-byte) multiples.
    GaugePages,
    /// Load averages and the like: two decimals.
    GaugeCentis,
    /// Durations and quantiles: full float precision.
    GaugeFull,
    /// Small integer gauges (goroutines, threads, queue lengths).
    GaugeInt,
}

/// One template series from the real scrape.
#[derive(Debug, Clone)]
pub struct Template {
    pub labels: Vec<(String, String)>,
    pub value: f64,
    model: Model,
}

fn model_for(name: &str, kind: &str, value: f64) -> Model {
    let counter = kind == "counter" || name.ends_with("_total");
    if name.ends_with("_info")
        || name.contains("boot_time")
        || name.contains("_size_bytes")
        || name.contains("mtu")
        || name.ends_with("_up")
        || name.contains("flags")
        || name.contains("_id")
        || name.contains("start_time")
    {
        Model::Constant
    } else if counter && name.ends_with("_seconds_total") {
        Model::CounterCentis
    } else if counter && name.contains("bytes") {
        Model::CounterBytes
    } else if counter {
        Model::CounterEvents
    } else if kind == "summary" || name.contains("duration") || name.ends_with("_seconds") {
        Model::GaugeFull
    } else if name.contains("bytes") {
        Model::GaugePages
    } else if name.starts_with("node_load") || name.contains("celsius") || value.fract() != 0.0 {
        Model::GaugeCentis
    } else {
        Model::GaugeInt
    }
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    // name="value",name="value" with \" escapes (none in practice here).
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq].trim_start_matches(',').trim().to_string();
        let after = &rest[eq + 2..];
        let mut end = 0;
        let bytes = after.as_bytes();
        while end < bytes.len() && !(bytes[end] == b'"' && (end == 0 || bytes[end - 1] != b'\\')) {
            end += 1;
        }
        out.push((name, after[..end].replace("\\\"", "\"")));
        rest = &after[(end + 1).min(after.len())..];
    }
    out
}

/// Reads the templates from a Prometheus text exposition.
pub fn load_templates(text: &str) -> Vec<Template> {
    let mut kinds: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut p = rest.split_whitespace();
            if let (Some(n), Some(k)) = (p.next(), p.next()) {
                kinds.insert(n.to_string(), k.to_string());
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let Ok(value) = value.parse::<f64>() else { continue };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, parse_labels(l.trim_end_matches('}'))),
            None => (series, Vec::new()),
        };
        let family = name
            .strip_suffix("_sum")
            .or_else(|| name.strip_suffix("_count"))
            .filter(|f| kinds.get(*f).is_some_and(|k| k == "summary"))
            .unwrap_or(name);
        let kind = kinds.get(family).map(String::as_str).unwrap_or("untyped");
        let mut all = vec![("__name__".to_string(), name.to_string())];
        all.extend(labels);
        out.push(Template {
            model: model_for(name, kind, value),
            labels: all,
            value,
        });
    }
    out
}

/// One generated series: labels (sorted) and its current value.
pub struct Series {
    pub labels: Vec<(String, String)>,
    value: f64,
    model: Model,
}

/// The fleet: every template on every host.
pub struct Fleet {
    pub series: Vec<Series>,
    /// Scrape offset of each series' host within the interval (ms).
    pub offsets: Vec<i64>,
    rng: Rng,
}

impl Fleet {
    /// `hosts` hosts spread over 3 sites and 4 clusters each.
    pub fn new(templates: &[Template], hosts: usize, seed: u64) -> Fleet {
        let mut rng = Rng::new(seed);
        let mut series = Vec::new();
        let mut offsets = Vec::new();
        for h in 0..hosts {
            let site = format!("dc{}", h % 3 + 1);
            let cluster = format!("k8s-{}-{}", h % 3 + 1, (h / 3) % 4 + 1);
            let instance = format!("node-{h:04}.{site}.example.net:9100");
            let offset = rng.below(15_000) as i64;
            for t in templates {
                let mut labels = t.labels.clone();
                labels.push(("cluster".into(), cluster.clone()));
                labels.push(("instance".into(), instance.clone()));
                labels.push(("job".into(), "node".into()));
                labels.push(("site".into(), site.clone()));
                labels.sort();
                // Hosts differ: scale counters and memory by host size.
                let scale = 1.0 + (h % 7) as f64;
                let value = match t.model {
                    Model::CounterCentis => (t.value * scale * 100.0).round() / 100.0,
                    Model::CounterBytes | Model::CounterEvents => (t.value * scale).round(),
                    Model::GaugePages => ((t.value * scale) / 4096.0).round() * 4096.0,
                    _ => t.value,
                };
                series.push(Series {
                    labels,
                    value,
                    model: t.model,
                });
                offsets.push(offset);
            }
        }
        Fleet {
            series,
            offsets,
            rng: Rng::new(seed ^ 0x9e37_79b9_7f4a_7c15),
        }
    }

    /// Advances every series by one scrape interval and returns the values.
    pub fn step(&mut self) -> Vec<f64> {
        let rng = &mut self.rng;
        self.series
            .iter_mut()
            .map(|s| {
                s.value = match s.model {
                    Model::Constant => s.value,
                    Model::CounterCentis => {
                        if rng.below(200_000) == 0 {
                            0.0
                        } else {
                            ((s.value * 100.0).round() + rng.below(1500) as f64) / 100.0
                        }
                    }
                    Model::CounterBytes => s.value + (rng.below(64) * 4096 * rng.below(4)) as f64,
                    Model::CounterEvents => s.value + rng.below(20) as f64 * (rng.below(3) as f64),
                    Model::GaugePages => (s.value + (rng.below(65) as f64 - 32.0) * 4096.0).max(0.0),
                    Model::GaugeCentis => ((s.value * 100.0).round() + rng.below(21) as f64 - 10.0).max(0.0) / 100.0,
                    Model::GaugeFull => rng.unit() * 0.05,
                    Model::GaugeInt => (s.value + rng.below(3) as f64 - 1.0).max(0.0),
                };
                s.value
            })
            .collect()
    }
}
