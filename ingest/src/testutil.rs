//! Helpers shared by this crate's tests.

use axum::body::Body;
use axum::http::Request;
use sightline_storage::{Db, DbOptions, Matcher, SeriesReader};
use tower::ServiceExt;

use crate::{IngestOptions, IngestState, router};

/// A database in a temporary directory and ingest state over it.
pub async fn state(opts: IngestOptions) -> (tempfile::TempDir, IngestState) {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut o = DbOptions::new(tmp.path());
    o.wal_fsync = false;
    let db = Db::open(o).await.expect("open db");
    (tmp, IngestState::new(db, opts))
}

/// Sends one request through the ingest router; returns status, headers, body.
pub async fn send(state: &IngestState, req: Request<Body>) -> (u16, axum::http::HeaderMap, String) {
    let resp = router(state.clone()).oneshot(req).await.expect("router");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    (status, headers, String::from_utf8_lossy(&body).to_string())
}

/// Every stored series of `metric` as (labels text, samples as (t, value bits)).
pub async fn stored(state: &IngestState, metric: &str) -> Vec<(String, Vec<(i64, u64)>)> {
    state
        .db
        .select(&[Matcher::equal("__name__", metric)], i64::MIN, i64::MAX)
        .await
        .expect("select")
        .into_iter()
        .map(|s| {
            (
                s.labels.to_string(),
                s.timestamps
                    .into_iter()
                    .zip(s.values.into_iter().map(f64::to_bits))
                    .collect(),
            )
        })
        .collect()
}
