//! Every query of every dashboard in `dashboards/grafana/` runs against
//! the real binary holding sample data: a fleet's `up`, a real
//! node_exporter scrape, the efficiency sample day, Sightline's own
//! `/metrics` and log lines. Template variables are resolved through the
//! label-values APIs as Grafana resolves them; every panel query must
//! answer without error and with data.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use serde_json::{Value, json};
use sightline_ingest::scrape::expfmt;
use sightline_query::efficiency::sample::{self, SampleKind};
use sightline_storage::{MatchOp, Matcher, SeriesReader};

const MINUTE: i64 = 60_000;

/// Label pairs of one series.
type Pairs = Vec<(String, String)>;
/// A series to write: labels and samples.
type OwnedSeries = (Pairs, Vec<(i64, f64)>);
/// One sample of a series.
type LabelledSample = (Pairs, (i64, f64));

/// Remote-writes `(labels, samples)` series in time slices, oldest first.
fn write_series(srv: &Server, series: &[OwnedSeries]) {
    let (from, to) = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
    let mut slice = from;
    while slice <= to {
        let batch: Vec<_> = series
            .iter()
            .map(|(labels, samples)| {
                let mut labels: Vec<(&str, &str)> = labels.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                labels.sort();
                let samples: Vec<(i64, f64)> = samples
                    .iter()
                    .copied()
                    .filter(|(t, _)| (slice..slice + 30 * MINUTE).contains(t))
                    .collect();
                ts(&labels, &samples)
            })
            .filter(|s| !s.samples.is_empty())
            .collect();
        if !batch.is_empty() {
            let (code, body) = remote_write(srv, batch);
            assert!((200..300).contains(&code), "remote write: {code} {body}");
        }
        slice += 30 * MINUTE;
    }
}

fn pairs(list: &[(&str, &str)]) -> Pairs {
    list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

/// A scrape's samples with `extra` labels, at `t`, counters advanced by `k`.
fn scrape_at(scrape: &[expfmt::ScrapedSample], extra: &[(&str, &str)], t: i64, k: f64) -> Vec<LabelledSample> {
    scrape
        .iter()
        .filter(|s| s.value.is_finite())
        .map(|s| {
            let mut labels = s.labels.clone();
            labels.extend(pairs(extra));
            let counter = s.labels[0].1.ends_with("_total") || s.labels[0].1.ends_with("_bucket");
            (labels, (t, if counter { s.value + k } else { s.value }))
        })
        .collect()
}

/// Groups scraped samples of several times into series.
fn by_series(samples: Vec<LabelledSample>) -> Vec<OwnedSeries> {
    let mut map: BTreeMap<Pairs, Vec<(i64, f64)>> = BTreeMap::new();
    for (labels, p) in samples {
        map.entry(labels).or_default().push(p);
    }
    map.into_iter().collect()
}

fn load_sample_data(srv: &Server, node_scrape: &str) -> i64 {
    let now = now_ms();
    // The efficiency sample day's last two hours (first: storage takes
    // samples at most an hour behind the newest).
    let (data, _) = sample::build_ending(SampleKind::Gain20, now);
    let everything = Matcher::new(MatchOp::Regex, "__name__", ".+").expect("matcher");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let day = rt
        .block_on(data.select(&[everything], now - 120 * MINUTE, now))
        .expect("sample");
    let efficiency: Vec<_> = day
        .iter()
        .map(|s| {
            let labels: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect();
            (
                labels,
                s.timestamps.iter().copied().zip(s.values.iter().copied()).collect(),
            )
        })
        .collect();
    write_series(srv, &efficiency);
    // A fleet: 2 sites x 2 clusters x 3 nodes, one node down.
    let mut fleet = Vec::new();
    for site in ["dc1", "dc2"] {
        for c in 1..=2 {
            for n in 1..=3 {
                let cluster = format!("{site}-c{c}");
                let instance = format!("{cluster}-n{n}:9100");
                let value = if site == "dc2" && c == 2 && n == 3 { 0.0 } else { 1.0 };
                let labels = pairs(&[
                    ("__name__", "up"),
                    ("site", site),
                    ("cluster", &cluster),
                    ("instance", &instance),
                    ("job", "node"),
                ]);
                fleet.push((
                    labels,
                    (0..80).map(|k| (now - 20 * MINUTE + k * 15_000, value)).collect(),
                ));
            }
        }
    }
    write_series(srv, &fleet);
    // A real node_exporter scrape every 15 s for 20 minutes.
    let scrape = expfmt::parse(node_scrape).expect("node_exporter scrape parses");
    let extra = [("instance", "dc1-c1-n1:9100"), ("job", "node"), ("site", "dc1")];
    let node: Vec<_> = (0..80)
        .flat_map(|k| scrape_at(&scrape, &extra, now - 20 * MINUTE + k * 15_000, k as f64 * 3.0))
        .collect();
    write_series(srv, &by_series(node));
    // Log lines of a mail job, some of them errors.
    let lines: Vec<(String, Vec<[String; 2]>)> = ["info", "error"]
        .iter()
        .map(|level| {
            let values = (0..60)
                .map(|k| {
                    let t = (now - 10 * MINUTE + k * 10_000) * 1_000_000;
                    [
                        t.to_string(),
                        format!("level={level} msg=\"message {k} scanned\" {level}"),
                    ]
                })
                .collect();
            (level.to_string(), values)
        })
        .collect();
    let streams: Vec<Value> = lines
        .into_iter()
        .map(|(level, values)| json!({"stream": {"job": "mail", "level": level}, "values": values}))
        .collect();
    let r = client()
        .post(srv.url("/loki/api/v1/push"))
        .json(&json!({ "streams": streams }))
        .send()
        .expect("push");
    assert!(r.status().is_success(), "push: {}", r.text().unwrap_or_default());
    // Sightline's own /metrics, scraped four times 15 s apart.
    let instance = srv.http.to_string();
    let extra = [("instance", instance.as_str()), ("job", "sightline")];
    let mut own = Vec::new();
    for (i, t) in [now - 45_000, now - 30_000, now - 15_000, now].into_iter().enumerate() {
        let text = metrics_text(srv);
        let scrape = expfmt::parse(&text).expect("own metrics parse");
        own.extend(scrape_at(&scrape, &extra, t, i as f64));
    }
    write_series(srv, &by_series(own));
    now
}

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
