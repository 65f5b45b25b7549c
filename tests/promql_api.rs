//! The Prometheus query API against the running binary, with real
//! clients: `promtool query …` (Debian `prometheus` package) and the
//! exact requests Grafana's Prometheus data source sends.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

/// Two jobs × two instances of a counter growing 10/s (api) and 1/s
/// (node) every 15 s for the last 10 minutes, plus a gauge.
fn load(server: &Server) -> i64 {
    let end = now_ms() / 15_000 * 15_000 - 15_000;
    let start = end - 600_000;
    let mut series = Vec::new();
    for (job, rate) in [("api", 10.0), ("node", 1.0)] {
        for inst in ["a", "b"] {
            let samples: Vec<(i64, f64)> = (0..=40).map(|i| (start + i * 15_000, i as f64 * 15.0 * rate)).collect();
            series.push(ts(
                &[("__name__", "req_total"), ("instance", inst), ("job", job)],
                &samples,
            ));
            series.push(ts(
                &[("__name__", "temp_celsius"), ("instance", inst), ("job", job)],
                &[(end, if inst == "a" { 21.5 } else { 23.0 })],
            ));
        }
    }
    let (code, body) = remote_write(server, series);
    assert_eq!(code, 204, "{body}");
    end
}

/// What Prometheus sends once a minute: metadata without samples.
fn send_metadata(server: &Server) {
    use prost::Message;
    use sightline_ingest::remote_write::proto;
    let raw = proto::WriteRequest {
        timeseries: vec![],
        metadata: vec![proto::MetricMetadata {
            r#type: 1,
            metric_family_name: "req_total".into(),
            help: "Requests served.".into(),
            unit: String::new(),
        }],
    }
    .encode_to_vec();
    let body = snap::raw::Encoder::new().compress_vec(&raw).expect("snappy");
    let r = client()
        .post(server.url("/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .body(body)
        .send()
        .expect("write");
    assert_eq!(r.status(), 204);
}

fn rfc3339(ms: i64) -> String {
    let secs = ms / 1000;
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool").args(args).output().expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn promtool_queries_get_prometheus_answers() {
    if require_tool("promtool", "apt-get install prometheus").is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let server = Server::start(&dir.path().join("data"), &[]);
    let end = load(&server);
    let url = server.url("");
    let url = url.trim_end_matches('/');

    // instant: rate over the counters, summed by job.
    let out = promtool(&[
        "query",
        "instant",
        "-o",
        "json",
        "--time",
        &rfc3339(end),
        url,
        "sum by (job) (rate(req_total[5m]))",
    ]);
    let v: Value = serde_json::from_str(&out).expect("promtool json");
    let mut got: Vec<(String, f64)> = v
        .as_array()
        .expect("vector")
        .iter()
        .map(|s| {
            (
                s["metric"]["job"].as_str().unwrap_or("").to_string(),
                s["value"][1].as_str().and_then(|x| x.parse().ok()).unwrap_or(f64::NAN),
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got.len(), 2, "{out}");
    assert!((got[0].1 - 20.0).abs() < 1e-9, "api: 2 instances × 10/s, got {got:?}");
    assert!((got[1].1 - 2.0).abs() < 1e-9, "node: 2 × 1/s, got {got:?}");

    // range: 5 steps of a gauge.
    let out = promtool(&[
        "query",
        "range",
        "-o",
        "json",
        "--start",
        &rfc3339(end - 60_000),
        "--end",
        &rfc3339(end),
        "--step",
        "15s",
        url,
        "max(temp_celsius)",
    ]);
    let v: Value = serde_json::from_str(&out).expect("promtool json");
    let values = v[0]["values"].as_array().expect("values");
    assert_eq!(values.len(), 1, "the gauge has one sample at `end`: {out}");
    assert_eq!(values[0][1], "23");

    // series and labels.
    let out = promtool(&["query", "series", "--match", "req_total{job=\"api\"}", url]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("instance=\"a\""), "{out}");
    let out = promtool(&["query", "labels", url, "job"]);
    assert_eq!(out.lines().collect::<Vec<_>>(), vec!["api", "node"], "{out}");
}

#[test]
fn grafana_prometheus_data_source_requests_work() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = Server::start(&dir.path().join("data"), &[]);
    let end = load(&server);
    let c = client();
    let get = |path: &str, q: &[(&str, String)]| -> Value {
        let r = c.get(server.url(path)).query(q).send().expect("request");
        assert_eq!(r.status(), 200, "{path}");
        r.json().expect("json")
    };
    let post = |path: &str, form: &[(&str, String)]| -> Value {
        let r = c.post(server.url(path)).form(form).send().expect("request");
        assert_eq!(r.status(), 200, "{path}");
        r.json().expect("json")
    };
    let secs = |ms: i64| format!("{}", ms / 1000);

    // "Save & test": the health check query at time 4.
    let v = get("/api/v1/query", &[("query", "1+1".into()), ("time", "4".into())]);
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "scalar");
    assert_eq!(v["data"]["result"], serde_json::json!([4, "2"]));

    // Build info decides which features Grafana enables.
    let v = get("/api/v1/status/buildinfo", &[]);
    assert!(v["data"]["version"].as_str().is_some_and(|s| s.starts_with("3.")));

    // Panels: form-encoded POST range queries.
    let v = post(
        "/api/v1/query_range",
        &[
            (
                "query",
                "sum by (job) (rate(req_total[$__rate_interval]))".replace("$__rate_interval", "1m"),
            ),
            ("start", secs(end - 300_000)),
            ("end", secs(end)),
            ("step", "60".into()),
        ],
    );
    assert_eq!(v["data"]["resultType"], "matrix");
    let result = v["data"]["result"].as_array().expect("matrix");
    assert_eq!(result.len(), 2);
    assert_eq!(result[0]["metric"]["job"], "api");
    assert_eq!(result[0]["values"].as_array().map(Vec::len), Some(6));
    // Instant POST (table panels, stat panels).
    let v = post(
        "/api/v1/query",
        &[("query", "count(temp_celsius > 22)".into()), ("time", secs(end))],
    );
    assert_eq!(v["data"]["result"][0]["value"][1], "2");

    // Metric browser and variables.
    let v = get(
        "/api/v1/label/__name__/values",
        &[("start", secs(end - 3_600_000)), ("end", secs(end))],
    );
    assert_eq!(v["data"], serde_json::json!(["req_total", "temp_celsius"]));
    let v = get(
        "/api/v1/series",
        &[
            ("match[]", "temp_celsius".into()),
            ("start", secs(end - 3_600_000)),
            ("end", secs(end)),
        ],
    );
    assert_eq!(v["data"].as_array().map(Vec::len), Some(4));
    let v = post(
        "/api/v1/labels",
        &[("start", secs(end - 3_600_000)), ("end", secs(end))],
    );
    assert_eq!(v["data"], serde_json::json!(["__name__", "instance", "job"]));
    let v = get(
        "/api/v1/label/instance/values",
        &[("match[]", "req_total{job=\"node\"}".into())],
    );
    assert_eq!(v["data"], serde_json::json!(["a", "b"]));
    send_metadata(&server);
    let v = get("/api/v1/metadata", &[("metric", "req_total".into())]);
    assert_eq!(
        v["data"],
        serde_json::json!({"req_total": [{"type": "counter", "help": "Requests served.", "unit": ""}]})
    );

    // A broken query is a 400 with Prometheus' error envelope.
    let r = c
        .get(server.url("/api/v1/query"))
        .query(&[("query", "sum(rate(req_total[5m])")])
        .send()
        .expect("request");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().expect("json");
    assert_eq!(v["errorType"], "bad_data");
}
