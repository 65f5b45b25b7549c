use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use serde_json::Value;
use sightline_storage::{Db, DbOptions, Labels, STALE_NAN_BITS, Sample, WriteBatch, now_ms};
use tower::ServiceExt;

use crate::{ApiState, router};

async fn db_with_data() -> (tempfile::TempDir, Db, i64) {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut o = DbOptions::new(tmp.path());
    o.wal_fsync = false;
    let db = Db::open(o).await.expect("open");
    let t = now_ms() - 60_000;
    let s = |name: &str, job: &str, inst: &str, v: &[f64]| {
        let labels = Labels::from_pairs([("__name__", name), ("job", job), ("instance", inst)]).to_vec();
        let samples: Vec<Sample> = v
            .iter()
            .enumerate()
            .map(|(i, v)| Sample::new(t + i as i64 * 15_000, *v))
            .collect();
        (labels, samples)
    };
    let series = [
        s("up", "node", "a:9100", &[1.0, 1.0]),
        s("up", "node", "b:9100", &[0.0]),
        s("up", "api", "c:80", &[1.0, f64::from_bits(STALE_NAN_BITS)]),
        s("cpu_seconds_total", "node", "a:9100", &[0.1, 12345.67, f64::INFINITY]),
    ];
    let mut batch = WriteBatch::new();
    for (labels, samples) in &series {
        batch.add_series(labels, samples);
    }
    db.append(&batch).await.expect("append");
    (tmp, db, t)
}

async fn get(db: &Db, uri: &str) -> (u16, String) {
    let app = router(ApiState::new(Arc::new(db.clone())));
    let resp = app
        .oneshot(Request::get(uri).body(Body::empty()).expect("req"))
        .await
        .expect("resp");
    let code = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    (code, String::from_utf8_lossy(&body).to_string())
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).expect("json")
}

#[tokio::test]
async fn series_labels_and_values_answer_in_prometheus_format() {
    let (_tmp, db, _) = db_with_data().await;
    let (code, body) = get(&db, "/api/v1/series?match[]=up{job=%22node%22}").await;
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["data"][0]["instance"], "a:9100");

    let (_, body) = get(&db, "/api/v1/labels").await;
    assert_eq!(json(&body)["data"], serde_json::json!(["__name__", "instance", "job"]));
    let (_, body) = get(&db, "/api/v1/label/__name__/values").await;
    assert_eq!(json(&body)["data"], serde_json::json!(["cpu_seconds_total", "up"]));
    let (_, body) = get(&db, "/api/v1/label/instance/values?match[]=up&limit=2").await;
    let v = json(&body);
    assert_eq!(v["data"], serde_json::json!(["a:9100", "b:9100"]));
    assert_eq!(v["warnings"][0], "results truncated due to limit");
}

#[tokio::test]
async fn bad_parameters_are_400_bad_data() {
    let (_tmp, db, _) = db_with_data().await;
    for uri in [
        "/api/v1/series",
        "/api/v1/series?match[]=up{",
        "/api/v1/series?match[]={job=~%22.*%22}",
        "/api/v1/series?match[]=up&start=yesterday",
        "/api/v1/series?match[]=up&start=10&end=5",
        "/api/v1/labels?limit=-1",
        "/api/v1/export",
    ] {
        let (code, body) = get(&db, uri).await;
        assert_eq!(code, 400, "{uri}: {body}");
        let v = json(&body);
        assert_eq!(v["status"], "error");
        assert_eq!(v["errorType"], "bad_data", "{uri}");
        assert!(!v["error"].as_str().unwrap_or_default().is_empty());
    }
}

#[tokio::test]
async fn export_returns_every_sample_exactly() {
    let (_tmp, db, t) = db_with_data().await;
    let (code, body) = get(&db, "/api/v1/export?match[]={__name__!=%22%22}").await;
    assert_eq!(code, 200);
    let lines: Vec<Value> = body.lines().map(json).collect();
    assert_eq!(lines.len(), 4);
    let cpu = &lines[0];
    assert_eq!(cpu["metric"]["__name__"], "cpu_seconds_total");
    assert_eq!(cpu["values"], serde_json::json!([0.1, 12345.67, "+Inf"]));
    assert_eq!(cpu["timestamps"], serde_json::json!([t, t + 15_000, t + 30_000]));
    let api = lines.iter().find(|l| l["metric"]["job"] == "api").expect("api");
    assert_eq!(api["values"], serde_json::json!([1.0, "StaleNaN"]));
    let (_, body) = get(
        &db,
        &format!("/api/v1/export?match[]=up&start={}", (t + 10_000) as f64 / 1000.0),
    )
    .await;
    assert_eq!(body.lines().count(), 2, "b:9100 has no sample after start");
}

#[tokio::test]
async fn form_encoded_post_is_read_like_a_query_string() {
    let (_tmp, db, _) = db_with_data().await;
    let app = router(ApiState::new(Arc::new(db.clone())));
    let req = Request::post("/api/v1/series")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("match%5B%5D=up%7Bjob%3D%22api%22%7D&start=0"))
        .expect("req");
    let resp = app.oneshot(req).await.expect("resp");
    assert_eq!(resp.status(), 200);
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    let v = json(&String::from_utf8_lossy(&body));
    assert_eq!(v["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["data"][0]["instance"], "c:80");
}

fn secs(ms: i64) -> String {
    format!("{}", ms as f64 / 1000.0)
}

#[tokio::test]
async fn instant_queries_answer_every_result_type() {
    let (_tmp, db, t) = db_with_data().await;
    let at = secs(t + 15_000);
    let (code, body) = get(&db, &format!("/api/v1/query?query=up%7Bjob%3D%22node%22%7D&time={at}")).await;
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["data"]["resultType"], "vector");
    let result = v["data"]["result"].as_array().expect("array");
    assert_eq!(result.len(), 2);
    let a = result.iter().find(|r| r["metric"]["instance"] == "a:9100").expect("a");
    assert_eq!(a["value"][1], "1");
    assert_eq!(a["value"][0].as_f64(), Some((t + 15_000) as f64 / 1000.0));

    let (_, body) = get(&db, &format!("/api/v1/query?query=1%2B1&time={at}")).await;
    let v = json(&body);
    assert_eq!(v["data"]["resultType"], "scalar");
    assert_eq!(v["data"]["result"][1], "2");

    let (_, body) = get(&db, &format!("/api/v1/query?query=%22hi%22&time={at}")).await;
    assert_eq!(json(&body)["data"]["result"][1], "hi");

    let (_, body) = get(
        &db,
        &format!(
            "/api/v1/query?query=cpu_seconds_total%5B1m%5D&time={}",
            secs(t + 30_000)
        ),
    )
    .await;
    let v = json(&body);
    assert_eq!(v["data"]["resultType"], "matrix");
    assert_eq!(
        v["data"]["result"][0]["values"],
        serde_json::json!([
            [t as f64 / 1000.0, "0.1"],
            [(t + 15_000) as f64 / 1000.0, "12345.67"],
            [(t + 30_000) as f64 / 1000.0, "+Inf"]
        ])
    );
}

#[tokio::test]
async fn range_queries_follow_staleness_and_steps() {
    let (_tmp, db, t) = db_with_data().await;
    let uri = format!(
        "/api/v1/query_range?query=up%7Bjob%3D%22api%22%7D&start={}&end={}&step=15s",
        secs(t),
        secs(t + 45_000)
    );
    let (code, body) = get(&db, &uri).await;
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["data"]["resultType"], "matrix");
    // The stale marker at t+15s ends the series.
    assert_eq!(v["data"]["result"][0]["values"].as_array().map(Vec::len), Some(1));

    let app = router(ApiState::new(Arc::new(db.clone())));
    let form = format!("query=sum(up)&start={}&end={}&step=15", secs(t), secs(t + 15_000));
    let req = Request::post("/api/v1/query_range")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .expect("req");
    let resp = app.oneshot(req).await.expect("resp");
    assert_eq!(resp.status(), 200);
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    let v = json(&String::from_utf8_lossy(&body));
    assert_eq!(v["data"]["result"][0]["values"][0][1], "2");
    assert_eq!(v["data"]["result"][0]["values"][1][1], "1");
}

#[tokio::test]
async fn bad_queries_get_prometheus_status_codes() {
    let (_tmp, db, _) = db_with_data().await;
    let (code, body) = get(&db, "/api/v1/query?query=sum(").await;
    assert_eq!(code, 400, "{body}");
    let v = json(&body);
    assert_eq!(v["errorType"], "bad_data");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("invalid parameter \"query\"")),
        "{body}"
    );
    let (code, _) = get(&db, "/api/v1/query").await;
    assert_eq!(code, 400);
    let (code, body) = get(&db, "/api/v1/query_range?query=up&start=10&end=0&step=1").await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = get(&db, "/api/v1/query_range?query=up&start=0&end=100000&step=1").await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("11,000 points"), "{body}");
    let (code, body) = get(&db, "/api/v1/query_range?query=up%5B5m%5D&start=0&end=10&step=1").await;
    assert_eq!(code, 400, "{body}");
    // Execution errors are 422.
    let (code, body) = get(&db, "/api/v1/query?query=up%20%2B%20on()%20up").await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(json(&body)["errorType"], "execution");
}

#[tokio::test]
async fn the_sample_limit_names_itself() {
    let (_tmp, db, t) = db_with_data().await;
    let opts = crate::promql::EngineOptions {
        max_samples: 2,
        ..Default::default()
    };
    let app = router(ApiState::with_engine(Arc::new(db.clone()), opts));
    let uri = format!(
        "/api/v1/query?query=count_over_time(%7B__name__%3D~%22.%2B%22%7D%5B1h%5D)&time={}",
        secs(t + 60_000)
    );
    let resp = app
        .oneshot(Request::get(uri).body(Body::empty()).expect("req"))
        .await
        .expect("resp");
    assert_eq!(resp.status(), 422);
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("query.max_samples"), "{body}");
}

#[tokio::test]
async fn status_and_format_endpoints_answer() {
    let (_tmp, db, _) = db_with_data().await;
    let (code, body) = get(&db, "/api/v1/status/buildinfo").await;
    assert_eq!(code, 200);
    assert!(
        json(&body)["data"]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with('3'))
    );
    let (_, body) = get(&db, "/api/v1/format_query?query=sum(rate(x%5B5m%5D))by(job)").await;
    assert_eq!(json(&body)["data"], "sum by (job) (rate(x[5m]))");
    let (_, body) = get(&db, "/api/v1/status/tsdb").await;
    let v = json(&body);
    assert_eq!(v["data"]["headStats"]["numSeries"], 4);
    assert_eq!(v["data"]["seriesCountByMetricName"][0]["name"], "up");
    assert_eq!(v["data"]["seriesCountByMetricName"][0]["value"], 3);
    let (code, body) = get(&db, "/api/v1/query_exemplars?query=up").await;
    assert_eq!(code, 200);
    assert_eq!(json(&body)["data"], serde_json::json!([]));
}
