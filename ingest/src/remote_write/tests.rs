use axum::body::Body;
use axum::http::Request;
use prost::Message;
use sightline_storage::{Matcher, STALE_NAN_BITS, SeriesReader, now_ms};

use super::proto::*;
use crate::IngestOptions;
use crate::testutil::{send, state, stored};

fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|(t, v)| Sample {
                value: *v,
                timestamp: *t,
                start_timestamp: 0,
            })
            .collect(),
        exemplars: vec![],
        histograms: vec![],
    }
}

fn v1_body(ts: Vec<TimeSeries>) -> Vec<u8> {
    let raw = WriteRequest {
        timeseries: ts,
        metadata: vec![],
    }
    .encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&raw).expect("snappy")
}

fn post(body: Vec<u8>, content_type: Option<&str>, encoding: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/api/v1/write");
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    if let Some(enc) = encoding {
        b = b.header("content-encoding", enc);
    }
    b.body(Body::from(body)).expect("request")
}

fn v1(body: Vec<u8>) -> Request<Body> {
    post(body, Some("application/x-protobuf"), Some("snappy"))
}

#[tokio::test]
async fn v1_write_is_stored_exactly_with_stale_markers_and_retries_once() {
    let (_tmp, st) = state(IngestOptions::default()).await;
    let t = now_ms() - 1000;
    let stale = f64::from_bits(STALE_NAN_BITS);
    let body = v1_body(vec![series(
        &[("__name__", "up"), ("instance", "a:9100"), ("job", "node")],
        &[(t, 1.0), (t + 15, stale)],
    )]);
    let (code, _, msg) = send(&st, v1(body.clone())).await;
    assert_eq!(code, 204, "{msg}");
    let (code, _, _) = send(&st, v1(body)).await;
    assert_eq!(code, 204, "a retried request is accepted");
    let got = stored(&st, "up").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, vec![(t, 1f64.to_bits()), (t + 15, STALE_NAN_BITS)]);
}

#[tokio::test]
async fn wrong_media_type_or_encoding_is_415() {
    let (_tmp, st) = state(IngestOptions::default()).await;
    let body = v1_body(vec![series(&[("__name__", "up")], &[(now_ms(), 1.0)])]);
    for (ct, enc) in [
        (Some("application/json"), Some("snappy")),
        (Some("application/x-protobuf"), Some("gzip")),
        (
            Some("application/x-protobuf;proto=io.prometheus.write.v9.Request"),
            Some("snappy"),
        ),
    ] {
        let (code, _, msg) = send(&st, post(body.clone(), ct, enc)).await;
        assert_eq!(code, 415, "{ct:?} {enc:?}: {msg}");
        assert!(msg.contains("unsupported"), "{msg}");
    }
    assert!(stored(&st, "up").await.is_empty());
}

#[tokio::test]
async fn corrupt_snappy_and_protobuf_are_400() {
    let (_tmp, st) = state(IngestOptions::default()).await;
    let (code, _, msg) = send(&st, v1(b"\xff\xff\xff\xff\xffnot snappy".to_vec())).await;
    assert_eq!(code, 400);
    assert!(msg.contains("snappy"), "{msg}");
    let garbage = snap::raw::Encoder::new()
        .compress_vec(b"\x0a\xff\xff\xff")
        .expect("snappy");
    let (code, _, msg) = send(&st, v1(garbage)).await;
    assert_eq!(code, 400);
    assert!(msg.contains("protobuf"), "{msg}");
}

#[tokio::test]
async fn invalid_series_are_named_and_valid_ones_kept() {
    let (_tmp, st) = state(IngestOptions::default()).await;
    let t = now_ms();
    let body = v1_body(vec![
        series(&[("__name__", "ok"), ("a", "1")], &[(t, 1.0)]),
        series(&[("job", "x"), ("__name__", "bad_order")], &[(t, 1.0)]),
        series(&[("__name__", "dup"), ("a", "1"), ("a", "2")], &[(t, 1.0)]),
        series(&[("__name__", "3bad")], &[(t, 1.0)]),
        series(&[("", "x"), ("__name__", "empty_name")], &[(t, 1.0)]),
        series(&[("__name__", "ok"), ("a", "2")], &[(t, 2.0)]),
    ]);
    let (code, _, msg) = send(&st, v1(body)).await;
    assert_eq!(code, 400);
    assert!(msg.contains("bad_order") && msg.contains("not sorted"), "{msg}");
    assert_eq!(stored(&st, "ok").await.len(), 2);
    use crate::stats::RejectReason;
    assert_eq!(st.stats.rejected(RejectReason::InvalidSeries), 4);
}

#[tokio::test]
async fn a_series_with_undecodable_labels_is_refused_and_the_rest_kept() {
    let (_tmp, st) = state(IngestOptions::default()).await;
    let t = now_ms();
    let mut raw = WriteRequest {
        timeseries: vec![
            series(&[("__name__", "ok"), ("a", "1")], &[(t, 1.0)]),
            series(&[("__name__", "ok"), ("a", "MARK")], &[(t, 2.0)]),
            series(&[("__name__", "ok"), ("a", "3")], &[(t, 3.0)]),
        ],
        metadata: vec![],
    }
    .encode_to_vec();
    let at = raw.windows(4).position(|w| w == b"MARK").expect("marker");
    raw[at] = 0xff;
    let body = snap::raw::Encoder::new().compress_vec(&raw).expect("snappy");
    let (code, _, msg) = send(&st, v1(body)).await;
    assert_eq!(code, 400);
    assert!(
        msg.contains("#2 (undecodable labels: label value is not valid UTF-8)"),
        "{msg}"
    );
    assert_eq!(stored(&st, "ok").await.len(), 2);
    use crate::stats::RejectReason;
    assert_eq!(st.stats.rejected(RejectReason::InvalidSeries), 1);
}

#[tokio::test]
async fn too_old_samples_are_400_naming_the_series() {
    let (_tmp, st) = state(IngestOptions::default()).await;
    let t = now_ms();
    let body = v1_body(vec![series(&[("__name__", "m"), ("i", "fresh")], &[(t, 1.0)])]);
    assert_eq!(send(&st, v1(body)).await.0, 204);
    // Now the newest sample is at t: three hours back is outside the window.
    let body = v1_body(vec![
        series(&[("__name__", "m"), ("i", "fresh")], &[(t + 1, 1.0)]),
        series(&[("__name__", "m"), ("i", "ancient")], &[(t - 3 * 3_600_000, 1.0)]),
    ]);
    let (code, _, msg) = send(&st, v1(body)).await;
    assert_eq!(code, 400);
    assert!(msg.contains("ancient") && msg.contains("too old"), "{msg}");
    assert_eq!(stored(&st, "m").await.len(), 1);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let opts = IngestOptions {
        max_request_bytes: 64,
        ..Default::default()
    };
    let (_tmp, st) = state(opts).await;
    let big = v1_body(vec![series(
        &[("__name__", "up"), ("pad", &"x".repeat(500))],
        &[(now_ms(), 1.0)],
    )]);
    let (code, _, msg) = send(&st, v1(big)).await;
    assert_eq!(code, 413, "{msg}");
    let opts = IngestOptions {
        max_decoded_bytes: 64,
        ..Default::default()
    };
    let (_tmp2, st) = state(opts).await;
    let big = v1_body(vec![series(
        &[("__name__", "up"), ("pad", &"x".repeat(500))],
        &[(now_ms(), 1.0)],
    )]);
    let (code, _, msg) = send(&st, v1(big)).await;
    assert_eq!(code, 413, "{msg}");
}

fn v2_body(req: RequestV2) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy")
}

#[tokio::test]
async fn v2_write_resolves_symbols_and_reports_written_counts() {
    let (_tmp, st) = state(IngestOptions::default()).await;
    let t = now_ms();
    let symbols = ["", "__name__", "http_requests_total", "code", "200", "500"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // code="200" has a per-sample start timestamp, code="500" the
    // series-level created timestamp of earlier 2.0 senders.
    let ts = |code: u32, v: f64| TimeSeriesV2 {
        labels_refs: vec![1, 2, 3, code],
        samples: vec![Sample {
            value: v,
            timestamp: t,
            start_timestamp: if code == 4 { t - 60_000 } else { 0 },
        }],
        histograms: vec![],
        exemplars: vec![],
        metadata: None,
        created_timestamp: if code == 5 { t - 120_000 } else { 0 },
    };
    let body = v2_body(RequestV2 {
        symbols,
        timeseries: vec![ts(4, 10.0), ts(5, 2.0)],
    });
    let req = post(
        body,
        Some("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
        Some("snappy"),
    );
    let (code, headers, msg) = send(&st, req).await;
    assert_eq!(code, 204, "{msg}");
    assert_eq!(headers["x-prometheus-remote-write-samples-written"], "2");
    assert_eq!(headers["x-prometheus-remote-write-histograms-written"], "0");
    let got = stored(&st, "http_requests_total").await;
    assert_eq!(got.len(), 2);
    assert!(got[0].0.contains("code=\"200\""));
    let starts: Vec<Vec<i64>> = st
        .db
        .select(&[Matcher::equal("__name__", "http_requests_total")], i64::MIN, i64::MAX)
        .await
        .expect("select")
        .into_iter()
        .map(|s| s.start_timestamps)
        .collect();
    assert_eq!(starts, vec![vec![t - 60_000], vec![t - 120_000]]);

    let bad = v2_body(RequestV2 {
        symbols: vec![String::new(), "__name__".into()],
        timeseries: vec![TimeSeriesV2 {
            labels_refs: vec![1, 9],
            samples: vec![Sample {
                value: 1.0,
                timestamp: t,
                start_timestamp: 0,
            }],
            histograms: vec![],
            exemplars: vec![],
            metadata: None,
            created_timestamp: 0,
        }],
    });
    let req = post(
        bad,
        Some("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
        Some("snappy"),
    );
    let (code, headers, msg) = send(&st, req).await;
    assert_eq!(code, 400);
    assert!(msg.contains("symbol 9"), "{msg}");
    assert_eq!(headers["x-prometheus-remote-write-samples-written"], "0");
}

#[tokio::test]
async fn overload_answers_429_with_retry_after() {
    let opts = IngestOptions {
        max_inflight_requests: 1,
        ..Default::default()
    };
    let (_tmp, st) = state(opts).await;
    let _held = st.admit().expect("first permit");
    let body = v1_body(vec![series(&[("__name__", "up")], &[(now_ms(), 1.0)])]);
    let (code, headers, _) = send(&st, v1(body)).await;
    assert_eq!(code, 429);
    assert_eq!(headers["retry-after"], "1");
}

#[tokio::test]
async fn metadata_from_v1_and_v2_is_kept_for_the_metadata_api() {
    let (_tmp, st) = state(IngestOptions::default()).await;
    let raw = WriteRequest {
        timeseries: vec![series(&[("__name__", "http_requests_total")], &[(now_ms(), 1.0)])],
        metadata: vec![MetricMetadata {
            r#type: 1,
            metric_family_name: "http_requests_total".into(),
            help: "Requests served.".into(),
            unit: String::new(),
        }],
    }
    .encode_to_vec();
    let body = snap::raw::Encoder::new().compress_vec(&raw).expect("snappy");
    let (code, _, msg) = send(&st, v1(body)).await;
    assert_eq!(code, 204, "{msg}");
    let md = st.db.metadata().query(Some("http_requests_total"), 0, 0);
    assert_eq!(md["http_requests_total"][0].metric_type, "counter");
    assert_eq!(md["http_requests_total"][0].help, "Requests served.");

    let req = RequestV2 {
        symbols: vec![
            "".into(),
            "__name__".into(),
            "temp_celsius".into(),
            "Temperature.".into(),
            "celsius".into(),
        ],
        timeseries: vec![TimeSeriesV2 {
            labels_refs: vec![1, 2],
            samples: vec![Sample {
                value: 20.5,
                timestamp: now_ms(),
                start_timestamp: 0,
            }],
            metadata: Some(MetadataV2 {
                r#type: 2,
                help_ref: 3,
                unit_ref: 4,
            }),
            ..Default::default()
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy");
    let (code, _, msg) = send(
        &st,
        post(
            body,
            Some("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
            Some("snappy"),
        ),
    )
    .await;
    assert_eq!(code, 204, "{msg}");
    let md = st.db.metadata().query(Some("temp_celsius"), 0, 0);
    assert_eq!(md["temp_celsius"][0].metric_type, "gauge");
    assert_eq!(md["temp_celsius"][0].unit, "celsius");
}

/// The kept buffer gives what a fresh one does, request after request
/// (longer, then shorter, then nested), and refuses what `decompress` does.
#[test]
fn kept_buffer_decompresses_as_a_fresh_one() {
    use super::{decompress, with_decompressed};
    let bodies: Vec<Vec<u8>> = [5000usize, 10, 300]
        .iter()
        .map(|&n| (0..n).map(|i| (i * 7 % 251) as u8).collect())
        .collect();
    for raw in &bodies {
        let body = snap::raw::Encoder::new().compress_vec(raw).expect("compress");
        let got = with_decompressed(&body, 1 << 20, |b| {
            let inner = with_decompressed(&body, 1 << 20, |b| Ok(b.to_vec()))?;
            assert_eq!(inner, b, "a nested call has its own buffer");
            Ok(b.to_vec())
        })
        .expect("decompresses");
        assert_eq!(&got, raw);
        assert_eq!(decompress(&body, 1 << 20).expect("decompresses"), *raw);
        let too_big = with_decompressed(&body, raw.len() - 1, |_| Ok(())).unwrap_err();
        assert!(too_big.to_string().contains("more than the limit"), "{too_big}");
    }
    assert!(with_decompressed(b"\x05\x00", 100, |_| Ok(())).is_err());
}
