//! OTLP metrics to Prometheus series, as Prometheus 3's OTLP receiver
//! does by default.
//!
//! - `job` is `service.namespace/service.name` (or `service.name`),
//!   `instance` is `service.instance.id`; other resource attributes go to
//!   a `target_info` series unless promoted to labels by configuration.
//! - Gauges and sums keep their values; monotonic sums get `_total`.
//! - Explicit-bucket histograms become classic `_bucket{le}`, `_sum`,
//!   `_count`; summaries become `{quantile}`, `_sum`, `_count`.
//! - Delta temporality and exponential histograms are refused with a
//!   message saying what to change in the exporter.
//! - A point flagged "no recorded value" becomes a staleness marker.
//! - The `start_time_unix_nano` of counters, histograms and summaries is
//!   kept as the samples' start timestamp (for `rate` and `increase`
//!   across restarts); gauges and quantiles have none.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, NumberDataPoint, metric, number_data_point,
};
use sightline_storage::labels::METRIC_NAME;
use sightline_storage::{Label, MetricMetadata, STALE_NAN_BITS, Sample, WriteBatch};

use super::OtlpOptions;
use super::naming::{MetricKind, label_name, metric_name};
use crate::Problems;
use crate::stats::RejectReason;

const FLAG_NO_RECORDED_VALUE: u32 = 1;

/// A string form of an attribute value.
pub fn any_value_string(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(|v| format!("{:?}", any_value_string(v))).collect();
            format!("[{}]", items.join(","))
        }
        Some(any_value::Value::KvlistValue(kv)) => {
            let items: Vec<String> = kv
                .values
                .iter()
                .map(|p| {
                    format!(
                        "{:?}:{:?}",
                        p.key,
                        p.value.as_ref().map(any_value_string).unwrap_or_default()
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Some(any_value::Value::BytesValue(b)) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Some(any_value::Value::StringValueStrindex(i)) => i.to_string(),
        None => String::new(),
    }
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(any_value_string)
        .filter(|s| !s.is_empty())
}

/// Label pairs keyed by sanitised name; colliding keys join their values
/// with `;` in key order, as Prometheus does.
#[derive(Clone, Default)]
struct LabelSet(BTreeMap<String, Vec<(String, String)>>);

impl LabelSet {
    fn add_attr(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return;
        }
        let name = label_name(key);
        let list = self.0.entry(name).or_default();
        list.retain(|(k, _)| k != key);
        list.push((key.to_string(), value));
        list.sort();
    }
    fn set(&mut self, name: &str, value: String) {
        self.0.insert(name.to_string(), vec![(name.to_string(), value)]);
    }
    fn to_labels(&self) -> Vec<Label> {
        self.0
            .iter()
            .map(|(n, vs)| {
                let value = vs.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>().join(";");
                Label::new(n.clone(), value)
            })
            .collect()
    }
}

/// Series translated from one request (labels sorted by name, not yet
/// validated: storage does that) and the data points refused.
#[derive(Debug, Default)]
pub struct Translated {
    /// One entry per data point series.
    pub series: Vec<(Vec<Label>, Sample)>,
    /// What could not be translated.
    pub problems: Problems,
    /// Metadata of the translated metrics: (Prometheus name, metadata).
    pub metadata: Vec<(String, MetricMetadata)>,
}

impl Translated {
    /// A write batch borrowing the translated series.
    pub fn batch(&self) -> WriteBatch<'_> {
        let mut b = WriteBatch::with_capacity(self.series.len(), 8);
        for (labels, sample) in &self.series {
            b.add_series(labels, std::slice::from_ref(sample));
        }
        b
    }
}

struct Emitter {
    out: Translated,
}

impl Emitter {
    /// Adds one sample of series `name` with `base` and `extra` labels;
    /// `at` is its time and start time (0 = none).
    fn emit(&mut self, base: &LabelSet, name: &str, extra: &[(&str, String)], at: (i64, i64), v: f64) {
        let mut ls = base.clone();
        for (n, val) in extra {
            ls.set(n, val.clone());
        }
        ls.set(METRIC_NAME, name.to_string());
        self.out
            .series
            .push((ls.to_labels(), Sample::with_start(at.0, v, at.1)));
    }

    fn refuse(&mut self, reason: RejectReason, points: u64, message: impl FnOnce() -> String) {
        self.out.problems.add(reason, points, message);
    }
}

fn point_time(time_unix_nano: u64) -> Option<i64> {
    (time_unix_nano > 0).then(|| i64::try_from(time_unix_nano / 1_000_000).unwrap_or(i64::MAX))
}

/// A point's start time in ms, 0 when unset.
fn start_time(start_time_unix_nano: u64) -> i64 {
    point_time(start_time_unix_nano).unwrap_or(0)
}

fn value_or_stale(flags: u32, v: f64) -> f64 {
    if flags & FLAG_NO_RECORDED_VALUE != 0 {
        f64::from_bits(STALE_NAN_BITS)
    } else {
        v
    }
}

/// Formats a bucket bound as Prometheus does for `le`.
pub fn format_bound(b: f64) -> String {
    if b == f64::INFINITY {
        "+Inf".into()
    } else if b == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        b.to_string()
    }
}

fn point_labels(resource: &LabelSet, attrs: &[KeyValue]) -> LabelSet {
    let mut ls = resource.clone();
    for kv in attrs {
        ls.add_attr(&kv.key, kv.value.as_ref().map(any_value_string).unwrap_or_default());
    }
    ls
}

const IDENTIFYING: [&str; 3] = ["service.name", "service.namespace", "service.instance.id"];

/// Translates a whole request.
pub fn translate(req: ExportMetricsServiceRequest, opts: &OtlpOptions) -> Translated {
    let mut em = Emitter {
        out: Translated::default(),
    };
    for rm in req.resource_metrics {
        let res_attrs = rm.resource.map(|r| r.attributes).unwrap_or_default();
        let mut base = LabelSet::default();
        for key in &opts.promote_resource_attributes {
            if let Some(v) = attr(&res_attrs, key) {
                base.add_attr(key, v);
            }
        }
        let job = match (attr(&res_attrs, "service.namespace"), attr(&res_attrs, "service.name")) {
            (Some(ns), Some(n)) => Some(format!("{ns}/{n}")),
            (None, Some(n)) => Some(n),
            _ => None,
        };
        if let Some(job) = &job {
            base.set("job", job.clone());
        }
        let instance = attr(&res_attrs, "service.instance.id");
        if let Some(i) = &instance {
            base.set("instance", i.clone());
        }
        let mut latest: Option<i64> = None;
        for sm in rm.scope_metrics {
            for m in sm.metrics {
                translate_metric(&mut em, &base, m, &mut latest);
            }
        }
        // target_info carries the resource attributes that are not labels.
        let info_attrs: Vec<&KeyValue> = res_attrs
            .iter()
            .filter(|kv| !IDENTIFYING.contains(&kv.key.as_str()))
            .filter(|kv| !opts.promote_resource_attributes.contains(&kv.key))
            .collect();
        if let (Some(t), false) = (latest, info_attrs.is_empty()) {
            let mut ls = LabelSet::default();
            for kv in info_attrs {
                ls.add_attr(&kv.key, kv.value.as_ref().map(any_value_string).unwrap_or_default());
            }
            if let Some(job) = &job {
                ls.set("job", job.clone());
            }
            if let Some(i) = &instance {
                ls.set("instance", i.clone());
            }
            em.emit(&ls, "target_info", &[], (t, 0), 1.0);
        }
    }
    em.out
}

/// The Prometheus name of a metric, or the refusal of all its points.
fn prom_name(em: &mut Emitter, name: &str, unit: &str, kind: MetricKind, points: usize) -> Option<String> {
    let prom = metric_name(name, unit, kind);
    if prom.is_none() {
        em.refuse(RejectReason::InvalidSeries, points as u64, || {
            format!("metric name {name:?} has no valid characters")
        });
    }
    prom
}

/// Gauge and sum points: one sample each.
fn emit_number_points(
    em: &mut Emitter,
    base: &LabelSet,
    name: &str,
    prom: &str,
    points: Vec<NumberDataPoint>,
    latest: &mut Option<i64>,
    counter: bool,
) {
    for p in points {
        let Some(t) = point_time(p.time_unix_nano) else {
            em.refuse(RejectReason::InvalidSeries, 1, || missing_time(name));
            continue;
        };
        track(latest, t);
        let v = value_or_stale(p.flags, number(p.value));
        let st = if counter { start_time(p.start_time_unix_nano) } else { 0 };
        em.emit(&point_labels(base, &p.attributes), prom, &[], (t, st), v);
    }
}

/// Refuses every point of a delta-temporality metric, saying what to change.
fn refuse_delta(em: &mut Emitter, kind: &str, name: &str, points: usize) {
    em.refuse(RejectReason::Unsupported, points as u64, || {
        format!(
            "metric {name:?} uses delta temporality; Sightline stores cumulative {kind}: set the exporter's temporality preference to cumulative"
        )
    });
}

fn track(latest: &mut Option<i64>, t: i64) {
    *latest = Some(latest.map_or(t, |l| l.max(t)));
}

fn missing_time(name: &str) -> String {
    format!("metric {name:?}: data point has no time_unix_nano")
}

fn translate_metric(em: &mut Emitter, base: &LabelSet, m: Metric, latest: &mut Option<i64>) {
    let Metric {
        name,
        unit,
        description,
        data,
        ..
    } = m;
    let describe = |em: &mut Emitter, prom: &str, metric_type: &str| {
        em.out.metadata.push((
            prom.to_string(),
            MetricMetadata {
                metric_type: metric_type.to_string(),
                help: description.clone(),
                unit: unit.clone(),
            },
        ));
    };
    match data {
        None => {}
        Some(metric::Data::Gauge(g)) => {
            if let Some(prom) = prom_name(em, &name, &unit, MetricKind::Gauge, g.data_points.len()) {
                describe(em, &prom, "gauge");
                emit_number_points(em, base, &name, &prom, g.data_points, latest, false);
            }
        }
        Some(metric::Data::Sum(s)) => {
            if s.aggregation_temporality == AggregationTemporality::Delta as i32 {
                return refuse_delta(em, "sums", &name, s.data_points.len());
            }
            let kind = if s.is_monotonic {
                MetricKind::Counter
            } else {
                MetricKind::Gauge
            };
            if let Some(prom) = prom_name(em, &name, &unit, kind, s.data_points.len()) {
                describe(em, &prom, if s.is_monotonic { "counter" } else { "gauge" });
                emit_number_points(em, base, &name, &prom, s.data_points, latest, s.is_monotonic);
            }
        }
        Some(metric::Data::Histogram(h)) => {
            if h.aggregation_temporality == AggregationTemporality::Delta as i32 {
                return refuse_delta(em, "histograms", &name, h.data_points.len());
            }
            let Some(prom) = prom_name(em, &name, &unit, MetricKind::Other, h.data_points.len()) else {
                return;
            };
            describe(em, &prom, "histogram");
            for p in h.data_points {
                let Some(t) = point_time(p.time_unix_nano) else {
                    em.refuse(RejectReason::InvalidSeries, 1, || missing_time(&name));
                    continue;
                };
                if !p.bucket_counts.is_empty() && p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
                    em.refuse(RejectReason::InvalidSeries, 1, || {
                        format!(
                            "histogram {name:?}: {} bucket counts for {} bounds (expected bounds + 1)",
                            p.bucket_counts.len(),
                            p.explicit_bounds.len()
                        )
                    });
                    continue;
                }
                track(latest, t);
                let ls = point_labels(base, &p.attributes);
                let val = |v: f64| value_or_stale(p.flags, v);
                let at = (t, start_time(p.start_time_unix_nano));
                let bucket = format!("{prom}_bucket");
                let mut cumulative = 0u64;
                for (bound, c) in p.explicit_bounds.iter().zip(&p.bucket_counts) {
                    cumulative += c;
                    em.emit(
                        &ls,
                        &bucket,
                        &[("le", format_bound(*bound))],
                        at,
                        val(cumulative as f64),
                    );
                }
                em.emit(&ls, &bucket, &[("le", "+Inf".into())], at, val(p.count as f64));
                if let Some(sum) = p.sum {
                    em.emit(&ls, &format!("{prom}_sum"), &[], at, val(sum));
                }
                em.emit(&ls, &format!("{prom}_count"), &[], at, val(p.count as f64));
            }
        }
        Some(metric::Data::Summary(s)) => {
            let Some(prom) = prom_name(em, &name, &unit, MetricKind::Other, s.data_points.len()) else {
                return;
            };
            describe(em, &prom, "summary");
            for p in s.data_points {
                let Some(t) = point_time(p.time_unix_nano) else {
                    em.refuse(RejectReason::InvalidSeries, 1, || missing_time(&name));
                    continue;
                };
                track(latest, t);
                let ls = point_labels(base, &p.attributes);
                let val = |v: f64| value_or_stale(p.flags, v);
                for q in &p.quantile_values {
                    em.emit(
                        &ls,
                        &prom,
                        &[("quantile", format_bound(q.quantile))],
                        (t, 0),
                        val(q.value),
                    );
                }
                let at = (t, start_time(p.start_time_unix_nano));
                em.emit(&ls, &format!("{prom}_sum"), &[], at, val(p.sum));
                em.emit(&ls, &format!("{prom}_count"), &[], at, val(p.count as f64));
            }
        }
        Some(metric::Data::ExponentialHistogram(h)) => {
            em.refuse(RejectReason::Unsupported, h.data_points.len() as u64, || {
                format!(
                    "metric {name:?} is an exponential histogram, which Sightline does not store yet: configure the exporter to use explicit-bucket histograms"
                )
            });
        }
    }
}

fn number(v: Option<number_data_point::Value>) -> f64 {
    match v {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => 0.0,
    }
}
