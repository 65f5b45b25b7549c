//! Real Prometheus (Debian `prometheus`) scrapes a real node_exporter
//! (Debian `prometheus-node-exporter`) and remote-writes to Sightline;
//! every sample Prometheus stored must be in Sightline, bit for bit, and
//! the staleness markers Prometheus writes when the target goes away must
//! arrive as staleness markers.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

type Samples = BTreeMap<String, Vec<(i64, u64)>>;

fn key(metric: &serde_json::Map<String, Value>) -> String {
    let mut pairs: Vec<String> = metric
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// Raw samples Prometheus holds for job="node" (range selector query).
fn prometheus_samples(prom: &str) -> Samples {
    let r: Value = client()
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", "{job=\"node\"}[1h]")])
        .send()
        .expect("query prometheus")
        .json()
        .expect("json");
    let mut out = Samples::new();
    for s in r["data"]["result"].as_array().cloned().unwrap_or_default() {
        let k = key(s["metric"].as_object().expect("metric"));
        let vals = s["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().expect("ts") * 1000.0).round() as i64;
                let v: f64 = p[1].as_str().expect("value").parse().expect("float");
                (t, v.to_bits())
            })
            .collect();
        out.insert(k, vals);
    }
    out
}

/// Sightline's samples for job="node", staleness markers split out.
fn sightline_samples(srv: &Server) -> (Samples, usize) {
    let mut out = Samples::new();
    let mut stale = 0;
    for e in export(srv, "{job=\"node\"}") {
        let mut vals = Vec::new();
        for (t, v) in e.timestamps.iter().zip(&e.values) {
            match v {
                Value::String(s) if s == "StaleNaN" => stale += 1,
                Value::String(s) if s == "NaN" => vals.push((*t, f64::NAN.to_bits())),
                Value::String(s) if s == "+Inf" => vals.push((*t, f64::INFINITY.to_bits())),
                Value::String(s) if s == "-Inf" => vals.push((*t, f64::NEG_INFINITY.to_bits())),
                v => vals.push((*t, v.as_f64().expect("number").to_bits())),
            }
        }
        out.insert(key(&e.metric), vals);
    }
    (out, stale)
}

#[test]
fn prometheus_remote_writes_node_exporter_data_exactly() {
    let (Some(prometheus), Some(node_exporter)) = (
        require_tool("prometheus", "apt-get install prometheus"),
        require_tool("prometheus-node-exporter", "apt-get install prometheus-node-exporter"),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let srv = Server::start(&tmp.path().join("sightline"), &[]);

    let (mut ne, ne_port) = start_node_exporter(&node_exporter, tmp.path());

    let prom_port = free_port();
    let cfg = tmp.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{ne_port}']\nremote_write:\n  - url: {}\n    queue_config:\n      batch_send_deadline: 500ms\n",
            srv.url("/api/v1/write")
        ),
    )
    .expect("config");
    let mut prom_cmd = Command::new(prometheus);
    prom_cmd
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            tmp.path().join("prom-data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"));
    let _prom = Proc::spawn(prom_cmd, &tmp.path().join("prometheus.log"));
    let prom = format!("http://127.0.0.1:{prom_port}");
    wait_http_ok(&format!("{prom}/-/ready"));

    // Let Prometheus scrape a few times, then take the target away: its
    // next scrape fails and it writes staleness markers for every series.
    std::thread::sleep(Duration::from_secs(10));
    ne.terminate();

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let want = prometheus_samples(&prom);
        let (got, stale) = sightline_samples(&srv);
        let scraped_up_zero = want
            .iter()
            .any(|(k, v)| k.contains("__name__=up,") && v.last().is_some_and(|(_, b)| f64::from_bits(*b) == 0.0));
        if scraped_up_zero && want == got && stale > 0 {
            let samples: usize = want.values().map(Vec::len).sum();
            assert!(
                want.len() > 100,
                "node_exporter exposes hundreds of series, got {}",
                want.len()
            );
            assert!(
                samples >= 2 * want.len(),
                "several scrapes were compared: {samples} samples of {} series",
                want.len()
            );
            eprintln!(
                "compared {} series, {samples} samples, {stale} staleness markers",
                want.len()
            );
            return;
        }
        if Instant::now() > deadline {
            let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).take(5).collect();
            let differ: Vec<_> = want
                .iter()
                .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
                .take(3)
                .map(|(k, v)| (k.clone(), v.clone(), got.get(k).cloned()))
                .collect();
            panic!(
                "Sightline never matched Prometheus: {} vs {} series, {stale} stale markers; missing {missing:?}; differing {differ:?}",
                got.len(),
                want.len()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
