//! Every query of every dashboard in `dashboards/grafana/` runs against
//! the real binary holding sample data: a fleet's `up`, a real
//! node_exporter scrape, the efficiency sample day, Sightline's own
//! `/metrics` and log lines. Template variables are resolved through the
//! label-values APIs as Grafana resolves them; every panel query must
//! answer without error and with data.

mod common;

use std::path::Path;

use common::sample_data::{MINUTE, load_sample_data};
use common::*;
use serde_json::Value;

/// `label_values(metric, label)` or `label_values(label)` through the
/// label-values API of the variable's data source: the first value.
fn resolve_variable(srv: &Server, var: &Value) -> (String, String) {
    let name = var["name"].as_str().expect("variable name").to_string();
    let query = var["query"].as_str().expect("variable query");
    let inner = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("variable {name}: unsupported query {query}"));
    let (matcher, label) = match inner.rsplit_once(',') {
        Some((m, l)) => (Some(m.trim()), l.trim()),
        None => (None, inner.trim()),
    };
    let loki = var["datasource"]["type"] == "loki";
    let path = if loki {
        format!("/loki/api/v1/label/{label}/values")
    } else {
        format!("/api/v1/label/{label}/values")
    };
    let mut req = client().get(srv.url(&path));
    if let Some(m) = matcher {
        req = req.query(&[("match[]", m)]);
    }
    let body: Value = req.send().and_then(|r| r.json()).expect("label values");
    let first = body["data"][0]
        .as_str()
        .unwrap_or_else(|| panic!("variable {name} ({query}) has no values: {body}"));
    (name, first.to_string())
}

fn substitute(expr: &str, vars: &[(String, String)]) -> String {
    let mut e = expr.replace("$__rate_interval", "1m").replace("$__interval", "30s");
    for (name, value) in vars {
        e = e
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    e
}

/// Runs one panel query; the error names dashboard, panel and query.
fn run_target(srv: &Server, now: i64, target: &Value, expr: &str) -> Result<usize, String> {
    let loki = target["datasource"]["type"] == "loki";
    let (start, end) = (now - 15 * MINUTE, now);
    let req = if loki {
        client().get(srv.url("/loki/api/v1/query_range")).query(&[
            ("query", expr.to_string()),
            ("start", (start * 1_000_000).to_string()),
            ("end", (end * 1_000_000).to_string()),
            ("step", "30".into()),
            ("limit", "100".into()),
        ])
    } else if target["instant"] == true {
        client().get(srv.url("/api/v1/query")).query(&[
            ("query", expr.to_string()),
            ("time", format!("{:.3}", end as f64 / 1000.0)),
        ])
    } else {
        client().get(srv.url("/api/v1/query_range")).query(&[
            ("query", expr.to_string()),
            ("start", format!("{:.3}", start as f64 / 1000.0)),
            ("end", format!("{:.3}", end as f64 / 1000.0)),
            ("step", "30".into()),
        ])
    };
    let r = req.send().map_err(|e| e.to_string())?;
    let status = r.status();
    let body: Value = r.json().map_err(|e| e.to_string())?;
    if !status.is_success() || body["status"] != "success" {
        return Err(format!("{status}: {body}"));
    }
    let n = body["data"]["result"].as_array().map_or(0, Vec::len);
    if n == 0 {
        return Err("no data".into());
    }
    Ok(n)
}

#[test]
fn every_dashboard_query_answers_with_data() {
    let node_scrape = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/metrics/node_exporter.prom");
    let Ok(node_scrape) = std::fs::read_to_string(&node_scrape) else {
        assert!(
            std::env::var_os("SIGHTLINE_REQUIRE_CONFORMANCE").is_none(),
            "{} is missing",
            node_scrape.display()
        );
        eprintln!("SKIPPED: {} is missing", node_scrape.display());
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let srv = Server::start(&tmp.path().join("data"), &[]);
    let now = load_sample_data(&srv, &node_scrape);

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/grafana");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dashboards dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 6, "{files:?}");
    let mut failures = Vec::new();
    let mut queries = 0;
    for file in &files {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(file).expect("read")).expect("dashboard JSON");
        let title = d["title"].as_str().unwrap_or("?").to_string();
        assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()), "{title}: no uid");
        let vars: Vec<(String, String)> = d["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| resolve_variable(&srv, v))
            .collect();
        for panel in d["panels"].as_array().expect("panels") {
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{title}: panel {} has no query", panel["title"]);
            for target in targets {
                let ds = target["datasource"]["uid"].as_str().unwrap_or("");
                assert!(
                    ds == "sightline-prometheus" || ds == "sightline-loki",
                    "{title}: unknown data source {ds}"
                );
                let expr = substitute(target["expr"].as_str().expect("expr"), &vars);
                queries += 1;
                if let Err(e) = run_target(&srv, now, target, &expr) {
                    failures.push(format!("{title} / {}: {expr}: {e}", panel["title"]));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {queries} queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(queries >= 30, "only {queries} queries");
}
