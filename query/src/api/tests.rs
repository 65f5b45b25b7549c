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
