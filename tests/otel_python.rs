//! The Python OpenTelemetry SDK (`opentelemetry-sdk`,
//! `opentelemetry-exporter-otlp-proto-grpc`) sends metrics to Sightline
//! over OTLP gRPC; every value must arrive under the name Prometheus 3
//! would give it, with `job`/`instance` from the resource, and counters
//! with the SDK's start time.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

/// True when python3 and the OpenTelemetry SDK are installed; otherwise
/// the test is skipped loudly (or fails, under SIGHTLINE_REQUIRE_EXTERNAL).
fn otel_sdk_available() -> bool {
    if require_tool("python3", "apt-get install python3").is_none() {
        return false;
    }
    let has_otel = Command::new("python3")
        .args(["-c", "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_otel {
        let hint = "pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-grpc";
        assert!(std::env::var_os("SIGHTLINE_REQUIRE_EXTERNAL").is_none(), "{hint}");
        eprintln!("SKIPPED: the OpenTelemetry Python SDK is not installed ({hint})");
    }
    has_otel
}

/// Runs `tests/otel/<script>` against the server's OTLP gRPC port and
/// returns what it printed (what it sent, as JSON).
fn run_sender(script: &str, srv: &Server) -> std::process::Output {
    let path = format!("{}/tests/otel/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(path)
        .arg(srv.grpc.to_string())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{script} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        srv.log_text()
    );
    out
}

#[test]
fn python_sdk_metrics_arrive_over_grpc() {
    if !otel_sdk_available() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let srv = Server::start(&tmp.path().join("data"), &[]);
    let out = run_sender("send_metrics.py", &srv);
    let expected: serde_json::Map<String, Value> =
        serde_json::from_slice(&out.stdout).expect("expected values as JSON");
    let stored = export(&srv, "{job=\"mail/spam-scanner\"}");
    for (want_series, want_value) in expected.iter().filter(|(k, _)| !k.starts_with("__")) {
        let (name, matchers) = want_series.split_once('{').unwrap_or((want_series, ""));
        let extra: Vec<(String, String)> = matchers
            .trim_end_matches('}')
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').expect("k=v");
                (k.to_string(), v.trim_matches('"').to_string())
            })
            .collect();
        let hit = stored.iter().find(|e| {
            e.metric.get("__name__").and_then(Value::as_str) == Some(name)
                && extra
                    .iter()
                    .all(|(k, v)| e.metric.get(k).and_then(Value::as_str) == Some(v.as_str()))
        });
        let Some(hit) = hit else {
            let names: Vec<_> = stored.iter().map(|e| e.metric.clone()).collect();
            panic!("{want_series} not stored; stored: {names:#?}");
        };
        assert_eq!(
            hit.metric.get("instance").and_then(Value::as_str),
            Some("pod-7"),
            "{want_series}"
        );
        let got = hit.values.last().and_then(Value::as_f64).expect("numeric value");
        let want = want_value.as_f64().expect("number");
        assert!((got - want).abs() < 1e-9, "{want_series}: got {got}, want {want}");
    }

    // The counter's start time arrived and is used: start_timestamp()
    // returns it, and increase() counts from 0 at that start (inside the
    // window) instead of extrapolating: exactly 8 at the last sample.
    let clock = |k: &str| expected[k].as_f64().expect("clock");
    let ham = "messages_scanned_total{verdict=\"ham\"}";
    let last = export(&srv, ham)[0].timestamps.last().copied().expect("a sample");
    let at = format!("{:.3}", last as f64 / 1000.0);
    let start = instant_value(&srv, &format!("start_timestamp({ham})"), &at);
    assert!(
        start >= clock("__started_after") - 0.001 && start <= clock("__started_before"),
        "start {start} not within the SDK's first measurement"
    );
    assert_eq!(instant_value(&srv, &format!("increase({ham}[1h])"), &at), 8.0);
}

/// The single value of an instant query's result at time `at` (seconds).
fn instant_value(srv: &Server, query: &str, at: &str) -> f64 {
    let body: Value = client()
        .get(srv.url("/api/v1/query"))
        .query(&[("query", query), ("time", at)])
        .send()
        .and_then(|r| r.json())
        .expect("query");
    let result = &body["data"]["result"];
    assert_eq!(result.as_array().map(Vec::len), Some(1), "{query}: {body}");
    result[0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{query}: {body}"))
}

#[test]
fn python_sdk_logs_arrive_over_grpc_as_loki_streams() {
    if !otel_sdk_available() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let srv = Server::start(&tmp.path().join("data"), &[]);
    let out = run_sender("send_logs.py", &srv);
    let sent: Vec<String> = serde_json::from_slice(&out.stdout).expect("sent lines as JSON");
    let now_ns = now_ms() * 1_000_000;
    let r = client()
        .get(srv.url("/loki/api/v1/query_range"))
        .query(&[
            (
                "query",
                r#"{service_name="spam-scanner", k8s_pod_name="pod-7"} | severity_text="WARN""#.to_string(),
            ),
            ("start", (now_ns - 600_000_000_000).to_string()),
            ("end", (now_ns + 60_000_000_000).to_string()),
            ("direction", "forward".to_string()),
        ])
        .send()
        .expect("query");
    let body: Value = r.json().expect("json");
    let mut got: Vec<(i64, String)> = Vec::new();
    for s in body["data"]["result"].as_array().expect("streams") {
        assert_eq!(s["stream"]["service_namespace"], "mail");
        assert_eq!(
            s["stream"]["host_name"], "node-3",
            "other resource attributes are structured metadata"
        );
        assert!(
            s["stream"]["mail_id"].as_str().is_some_and(|m| m.starts_with("m-")),
            "{s}"
        );
        for v in s["values"].as_array().expect("values") {
            got.push((
                v[0].as_str().expect("ts").parse().expect("ns"),
                v[1].as_str().expect("line").to_string(),
            ));
        }
    }
    got.sort();
    let lines: Vec<String> = got.into_iter().map(|x| x.1).collect();
    assert_eq!(lines, sent);
}
