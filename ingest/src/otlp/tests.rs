use axum::body::Body;
use axum::http::Request;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, Summary, SummaryDataPoint, metric, number_data_point, summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use sightline_storage::now_ms;

use super::OtlpOptions;
use super::translate::translate;
use crate::IngestOptions;
use crate::stats::RejectReason;
use crate::testutil::{send, state, stored};

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn point(t_ms: i64, v: f64, attrs: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        time_unix_nano: (t_ms as u64) * 1_000_000,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "scanner"),
                    kv("service.namespace", "mail"),
                    kv("service.instance.id", "pod-1"),
                    kv("k8s.cluster.name", "c1"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metric(name: &str, unit: &str, data: metric::Data) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    }
}

#[test]
fn translates_every_supported_kind_like_prometheus() {
    let t = 1_700_000_000_000;
    // Counters, histograms and summaries keep their start time; a gauge's
    // start time means nothing and is dropped.
    let start = (t as u64 - 3_600_000) * 1_000_000;
    let started = |mut p: NumberDataPoint| {
        p.start_time_unix_nano = start;
        p
    };
    let req = request(vec![
        metric(
            "messages.scanned",
            "{message}",
            metric::Data::Sum(Sum {
                data_points: vec![started(point(t, 42.0, vec![kv("verdict", "ham")]))],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            }),
        ),
        metric(
            "queue.depth",
            "1",
            metric::Data::Gauge(Gauge {
                data_points: vec![started(point(t, 0.5, vec![]))],
            }),
        ),
        metric(
            "scan.duration",
            "s",
            metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    time_unix_nano: (t as u64) * 1_000_000,
                    start_time_unix_nano: start,
                    count: 6,
                    sum: Some(1.5),
                    bucket_counts: vec![1, 2, 3],
                    explicit_bounds: vec![0.1, 1.0],
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
        ),
        metric(
            "rpc.latency",
            "ms",
            metric::Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    time_unix_nano: (t as u64) * 1_000_000,
                    start_time_unix_nano: start,
                    count: 10,
                    sum: 55.0,
                    quantile_values: vec![ValueAtQuantile {
                        quantile: 0.99,
                        value: 9.0,
                    }],
                    ..Default::default()
                }],
            }),
        ),
    ]);
    let opts = OtlpOptions {
        promote_resource_attributes: vec!["k8s.cluster.name".into()],
    };
    let conv = translate(req, &opts);
    assert_eq!(conv.problems.total(), 0, "{:?}", conv.problems.first());
    let rendered: Vec<String> = conv
        .series
        .iter()
        .map(|(l, s)| {
            format!(
                "{} {}{}",
                sightline_storage::Labels::from_pairs(l.iter().map(|l| (l.name.clone(), l.value.clone()))),
                s.v,
                if s.st == 0 {
                    String::new()
                } else {
                    format!(" st={}", t - s.st)
                }
            )
        })
        .collect();
    let common = "instance=\"pod-1\", job=\"mail/scanner\", k8s_cluster_name=\"c1\"";
    for want in [
        format!("messages_scanned_total{{{common}, verdict=\"ham\"}} 42 st=3600000"),
        format!("queue_depth_ratio{{{common}}} 0.5"),
        format!("scan_duration_seconds_bucket{{{common}, le=\"0.1\"}} 1 st=3600000"),
        format!("scan_duration_seconds_bucket{{{common}, le=\"1\"}} 3 st=3600000"),
        format!("scan_duration_seconds_bucket{{{common}, le=\"+Inf\"}} 6 st=3600000"),
        format!("scan_duration_seconds_sum{{{common}}} 1.5 st=3600000"),
        format!("scan_duration_seconds_count{{{common}}} 6 st=3600000"),
        format!("rpc_latency_milliseconds{{{common}, quantile=\"0.99\"}} 9"),
        format!("rpc_latency_milliseconds_sum{{{common}}} 55 st=3600000"),
        format!("rpc_latency_milliseconds_count{{{common}}} 10 st=3600000"),
    ] {
        assert!(rendered.contains(&want), "missing {want} in {rendered:#?}");
    }
    // The promoted attribute is a label, so target_info has nothing left.
    assert!(!rendered.iter().any(|r| r.starts_with("target_info")));

    let conv = translate(
        request(vec![metric(
            "g",
            "",
            metric::Data::Gauge(Gauge {
                data_points: vec![point(t, 1.0, vec![])],
            }),
        )]),
        &OtlpOptions::default(),
    );
    let (info, sample) = conv
        .series
        .iter()
        .find(|(l, _)| l.iter().any(|l| l.name == "__name__" && l.value == "target_info"))
        .expect("target_info");
    let get = |n: &str| info.iter().find(|l| l.name == n).map(|l| l.value.as_str());
    assert_eq!(get("k8s_cluster_name"), Some("c1"));
    assert_eq!(get("job"), Some("mail/scanner"));
    assert_eq!(sample.t, t);
}

#[test]
fn delta_sums_and_exponential_histograms_are_refused_with_advice() {
    let t = 1_700_000_000_000;
    let conv = translate(
        request(vec![metric(
            "requests",
            "",
            metric::Data::Sum(Sum {
                data_points: vec![point(t, 1.0, vec![]), point(t + 1, 2.0, vec![])],
                aggregation_temporality: AggregationTemporality::Delta as i32,
                is_monotonic: true,
            }),
        )]),
        &OtlpOptions::default(),
    );
    assert_eq!(conv.problems.count(RejectReason::Unsupported), 2);
    assert!(conv.problems.first().unwrap_or_default().contains("cumulative"));
}

#[tokio::test]
async fn http_json_and_protobuf_are_stored_and_partial_success_reported() {
    let (_tmp, st) = state(IngestOptions::default()).await;
    let t = now_ms();
    let json = serde_json::json!({
        "resourceMetrics": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
            "scopeMetrics": [{"metrics": [
                {"name": "temp", "unit": "Cel", "gauge": {"dataPoints": [
                    {"timeUnixNano": ((t as u64) * 1_000_000).to_string(), "asDouble": 21.5}
                ]}},
                {"name": "bad.delta", "sum": {"aggregationTemporality": 1, "isMonotonic": true, "dataPoints": [
                    {"timeUnixNano": ((t as u64) * 1_000_000).to_string(), "asInt": "3"}
                ]}}
            ]}]
        }]
    });
    let req = Request::post("/v1/metrics")
        .header("content-type", "application/json")
        .body(Body::from(json.to_string()))
        .expect("request");
    let (code, _, body) = send(&st, req).await;
    assert_eq!(code, 200, "{body}");
    let resp: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(resp["partialSuccess"]["rejectedDataPoints"], 1, "{body}");
    let got = stored(&st, "temp_celsius").await;
    assert_eq!(got.len(), 1);
    assert!(got[0].0.contains("job=\"api\""));

    use prost::Message;
    let pb = request(vec![metric(
        "hits",
        "",
        metric::Data::Sum(Sum {
            data_points: vec![point(t, 5.0, vec![])],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        }),
    )]);
    let req = Request::post("/v1/metrics")
        .header("content-type", "application/x-protobuf")
        .body(Body::from(pb.encode_to_vec()))
        .expect("request");
    let (code, _, _) = send(&st, req).await;
    assert_eq!(code, 200);
    assert_eq!(stored(&st, "hits_total").await.len(), 1);

    let req = Request::post("/v1/metrics")
        .header("content-type", "text/plain")
        .body(Body::from("x"))
        .expect("request");
    assert_eq!(send(&st, req).await.0, 415);
    let req = Request::post("/v1/metrics")
        .header("content-type", "application/x-protobuf")
        .body(Body::from(vec![0xff, 0xff, 0xff]))
        .expect("request");
    assert_eq!(send(&st, req).await.0, 400);
}
