//! Sightline's face: the built-in web UI (`ui/`) and the Grafana
//! dashboards (`grafana/*.json`), both compiled into the binary.
//!
//! The UI is a page of plain JavaScript modules that reads the same HTTP
//! APIs Grafana reads (Prometheus' under `/api/v1/`, Loki's under
//! `/loki/api/v1/`, Alertmanager's under `/api/v2/`), so this crate
//! depends on no other crate of ours: it serves files, and the dashboards
//! the UI renders are the very files Grafana is given.
//!
//! Routes: `/` (the page), `/ui/{file}` (its scripts, styles and the
//! vendored uPlot), `/ui/api/dashboards` (the dashboards' uids and
//! titles) and `/ui/api/dashboards/{uid}` (one dashboard's JSON).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

mod assets {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// One dashboard of `grafana/`, parsed once.
struct Dashboard {
    uid: String,
    title: String,
    tags: Vec<String>,
    file: &'static str,
    json: &'static str,
}

/// The dashboards, in file-name order.
struct Dashboards(Vec<Dashboard>);

impl Dashboards {
    /// Parses the compiled-in files; a file without a uid is left out
    /// with an error logged by the caller's test (every shipped file has
    /// one: see the tests below).
    fn load() -> Self {
        let list = assets::DASHBOARD_FILES
            .iter()
            .filter_map(|(file, json)| {
                let v: Value = serde_json::from_str(json).ok()?;
                Some(Dashboard {
                    uid: v["uid"].as_str()?.to_string(),
                    title: v["title"].as_str().unwrap_or(file).to_string(),
                    tags: v["tags"]
                        .as_array()
                        .map(|t| t.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                        .unwrap_or_default(),
                    file,
                    json,
                })
            })
            .collect();
        Dashboards(list)
    }
}

/// The UI's routes: the page at `/`, its files under `/ui/`, and the
/// dashboards under `/ui/api/dashboards`.
pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/ui/api/dashboards", get(list_dashboards))
        .route("/ui/api/dashboards/{uid}", get(dashboard))
        .route("/ui/{*file}", get(ui_file))
        .with_state(Arc::new(Dashboards::load()))
}

/// The content type of a UI file, by its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "text/plain; charset=utf-8",
    }
}

/// A UI file's bytes, or 404 naming the path. Files are not versioned by
/// name, so browsers revalidate them (`no-cache`) and an upgraded binary
/// is never shown with an old script.
fn serve(path: &str) -> Response {
    match assets::UI_FILES.iter().find(|(p, _)| *p == path) {
        Some((p, bytes)) => (
            [
                (header::CONTENT_TYPE, content_type(p)),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, format!("no UI file {path:?}\n")).into_response(),
    }
}

async fn index() -> Response {
    serve("index.html")
}

async fn ui_file(Path(file): Path<String>) -> Response {
    serve(&file)
}

async fn list_dashboards(State(d): State<Arc<Dashboards>>) -> Response {
    let list: Vec<Value> =
        d.0.iter()
            .map(|d| json!({"uid": d.uid, "title": d.title, "tags": d.tags, "file": d.file}))
            .collect();
    axum::Json(json!({"status": "success", "data": list})).into_response()
}

async fn dashboard(State(d): State<Arc<Dashboards>>, Path(uid): Path<String>) -> Response {
    match d.0.iter().find(|d| d.uid == uid) {
        Some(d) => ([(header::CONTENT_TYPE, "application/json")], d.json).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({
                "status": "error",
                "errorType": "not_found",
                "error": format!("no dashboard with uid {uid:?} (GET /ui/api/dashboards lists them)"),
            })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str) -> (StatusCode, String, String) {
        let r = router()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = r.status();
        let ct = r
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = axum::body::to_bytes(r.into_body(), 1 << 24).await.expect("body");
        (status, ct, String::from_utf8_lossy(&body).into_owned())
    }

    #[test]
    fn every_shipped_dashboard_parses_and_has_a_unique_uid() {
        let d = Dashboards::load();
        assert_eq!(
            d.0.len(),
            assets::DASHBOARD_FILES.len(),
            "a dashboard file did not parse or has no uid"
        );
        let mut uids: Vec<&str> = d.0.iter().map(|d| d.uid.as_str()).collect();
        uids.sort();
        uids.dedup();
        assert_eq!(uids.len(), d.0.len(), "duplicate uids");
        assert!(d.0.len() >= 6);
    }

    #[tokio::test]
    async fn the_page_and_its_files_are_served_with_their_types() {
        let (s, ct, body) = get("/").await;
        assert_eq!((s, ct.as_str()), (StatusCode::OK, "text/html; charset=utf-8"));
        assert!(body.contains("uPlot.iife.min.js"), "{body}");
        // Every file the page names is served.
        for name in [
            "vendor/uPlot.iife.min.js",
            "vendor/uPlot.min.css",
            "app.js",
            "style.css",
        ] {
            assert!(body.contains(name), "index.html does not load {name}");
            let (s, _, _) = get(&format!("/ui/{name}")).await;
            assert_eq!(s, StatusCode::OK, "{name}");
        }
        let (_, ct, js) = get("/ui/app.js").await;
        assert_eq!(ct, "text/javascript; charset=utf-8");
        // Modules the entry script imports are there too.
        for line in js.lines().filter(|l| l.starts_with("import ")) {
            let file = line.split('"').nth(1).expect("import path").trim_start_matches("./");
            let (s, _, _) = get(&format!("/ui/{file}")).await;
            assert_eq!(s, StatusCode::OK, "imported {file}");
        }
        let (s, _, body) = get("/ui/nope.js").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert!(body.contains("nope.js"));
    }

    #[tokio::test]
    async fn dashboards_are_listed_and_served_by_uid() {
        let (s, _, body) = get("/ui/api/dashboards").await;
        assert_eq!(s, StatusCode::OK);
        let v: Value = serde_json::from_str(&body).expect("json");
        let list = v["data"].as_array().expect("list");
        assert!(
            list.iter()
                .any(|d| d["uid"] == "sightline-fleet" && d["title"] == "Fleet overview")
        );
        let (s, ct, body) = get("/ui/api/dashboards/sightline-fleet").await;
        assert_eq!((s, ct.as_str()), (StatusCode::OK, "application/json"));
        let d: Value = serde_json::from_str(&body).expect("json");
        assert!(d["panels"].as_array().is_some_and(|p| !p.is_empty()));
        let (s, _, body) = get("/ui/api/dashboards/missing").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let err: Value = serde_json::from_str(&body).expect("json");
        assert!(
            err["error"].as_str().is_some_and(|e| e.contains("\"missing\"")),
            "{body}"
        );
    }
}
