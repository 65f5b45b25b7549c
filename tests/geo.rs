//! The whole of geo-redundancy at once: three sites, three agents (one
//! per site, each shipping its metrics and logs over one gRPC stream per
//! site to its own site and the next, `replication_factor: 2`), a real
//! node_exporter scraped every second and log files being written all
//! along. A site is killed with `kill -9` and comes back; an agent is
//! killed with `kill -9` and restarted. Through the query APIs:
//! - every log line is stored exactly once, none missing, on every site;
//! - every scrape's `up` sample is there once, with no gap but the
//!   killed agent's own downtime;
//! - while the site is down the survivors answer within 2 s with a
//!   warning naming it, and the site-down alert pages exactly once.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::sites::{SITES, query, start_alerting_sites};
use common::*;
use serde_json::Value;

/// Lines each writer writes per second.
const LINES_PER_SECOND: u64 = 40;

/// Writes the agent's config: identity `node` n<k>, sites in the order
/// own, next, last, the node_exporter every second, its log file.
fn agent_config(dir: &Path, k: usize, grpc: &[String; 3], ne_port: u16) -> PathBuf {
    let sites: String = (0..3)
        .map(|j| format!("  - url: http://{}\n", grpc[(k + j) % 3]))
        .collect();
    let path = dir.join(format!("agent-{k}.yml"));
    std::fs::write(
        &path,
        format!(
            "identity: {{site: {site}, cluster: {site}-c1, node: n{k}}}\n\
             global: {{scrape_interval: 1s, scrape_timeout: 1s}}\n\
             scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{ne_port}']\n\
             replication_factor: 2\n\
             sites:\n{sites}\
             buffer: {{path: buffer-{k}}}\n\
             log_files:\n  - paths: ['logs-{k}/app.log*']\n    labels: {{job: app}}\n",
            site = SITES[k],
        ),
    )
    .expect("agent config");
    path
}

/// Writes `n<k> line <i>` to the agent's log file at a steady rate until
/// `stop`; returns how many lines it wrote.
fn writer(file: PathBuf, k: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .expect("open log");
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            std::io::Write::write_all(&mut f, format!("n{k} line {i:06}\n").as_bytes()).expect("write");
            i += 1;
            std::thread::sleep(Duration::from_millis(1000 / LINES_PER_SECOND));
        }
        i
    })
}

/// The lines of `{job="app", node="n<k>"}` a site answers with (all
/// sites' data, deduplicated), and the answer's warnings.
fn lines_of(srv: &Server, k: usize) -> (Vec<String>, String) {
    let now_ns = now_ms() * 1_000_000;
    let r = client()
        .get(srv.url("/loki/api/v1/query_range"))
        .query(&[
            ("query", format!("{{job=\"app\", node=\"n{k}\"}}")),
            ("start", (now_ns - 900_000_000_000).to_string()),
            ("end", (now_ns + 1_000_000_000).to_string()),
            ("limit", "5000".into()),
            ("direction", "forward".into()),
        ])
        .send()
        .expect("loki query");
    let body: Value = r.json().expect("json");
    let mut lines: Vec<String> = body["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v[1].as_str().map(str::to_string))
        .collect();
    lines.sort();
    (lines, body["warnings"].to_string())
}

/// The times (ms) of node n<k>'s `up` samples in the last 10 minutes.
fn up_times(srv: &Server, k: usize) -> Vec<i64> {
    let (code, body, _) = query(srv, &format!("up{{job=\"node\", node=\"n{k}\"}}[10m]"), &[]);
    assert_eq!(code, 200, "{body}");
    let result = body["data"]["result"].as_array().cloned().unwrap_or_default();
    assert_eq!(result.len(), 1, "one series of up for n{k}: {body}");
    result[0]["values"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| (v[0].as_f64().unwrap_or(0.0) * 1000.0).round() as i64)
        .collect()
}

#[test]
fn a_lost_site_and_a_killed_agent_lose_nothing_and_page_once() {
    let Some(ne) = require_tool("prometheus-node-exporter", "apt-get install prometheus-node-exporter") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let (_ne, ne_port) = start_node_exporter(&ne, dir);
    let (mut sites, webhook) = start_alerting_sites(
        dir,
        "SightlineSiteUnreachable",
        ("max by (peer) (sightline_peer_up) == 0", "3s"),
        "alertname, peer",
    );
    let grpc: [String; 3] = [0, 1, 2].map(|i| sites[i].grpc.to_string());
    let configs: Vec<PathBuf> = (0..3).map(|k| agent_config(dir, k, &grpc, ne_port)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|k| {
            std::fs::create_dir_all(dir.join(format!("logs-{k}"))).expect("log dir");
            writer(dir.join(format!("logs-{k}/app.log")), k, stop.clone())
        })
        .collect();
    let mut agents: Vec<Proc> = configs.iter().map(|c| start_agent(c, dir)).collect();
    wait_for("every agent's lines on dc1", 30, || {
        (0..3).all(|k| !lines_of(&sites[0], k).0.is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));

    // dc3 dies mid-stream; its agent goes on with dc1 and dc2.
    sites[2].kill9();
    for srv in &sites[..2] {
        let (code, body, took) = query(srv, "count(up{job=\"node\"})", &[]);
        assert_eq!(code, 200, "{body}");
        assert!(took < Duration::from_secs(2), "answer took {took:?}");
        assert!(
            body["warnings"].to_string().contains(r#"site \"dc3\" is missing"#),
            "{body}"
        );
    }
    // Agent n1 is killed with kill -9 while writing, and restarted.
    drop(std::mem::replace(&mut agents[1], Proc(None))); // SIGKILL
    std::thread::sleep(Duration::from_secs(2));
    agents[1] = start_agent(&configs[1], dir);

    // The survivors page once for dc3.
    wait_for("the page for dc3", 30, || (!webhook.bodies().is_empty()).then_some(()));
    std::thread::sleep(Duration::from_secs(6));
    let pages = webhook.bodies();
    assert_eq!(pages.len(), 1, "paged more than once: {pages:#?}");
    let page: Value = serde_json::from_str(&pages[0].1).expect("json");
    assert_eq!(page["alerts"][0]["labels"]["peer"], "dc3", "{page}");

    // dc3 comes back; writing goes on a little, then stops.
    sites[2] = restart(&sites[2], dir);
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let written: Vec<u64> = writers.into_iter().map(|w| w.join().expect("writer")).collect();

    // Every line exactly once, none missing, whichever site is asked.
    for (k, &n) in written.iter().enumerate() {
        let want: Vec<String> = (0..n).map(|i| format!("n{k} line {i:06}")).collect();
        for srv in &sites {
            let got = wait_for(&format!("n{k}'s {n} lines on {}", srv.http), 60, || {
                let (lines, warnings) = lines_of(srv, k);
                (lines.len() as u64 >= n && warnings == "null").then_some(lines)
            });
            if got != want {
                let have: BTreeMap<&String, usize> = got.iter().fold(BTreeMap::new(), |mut m, l| {
                    *m.entry(l).or_default() += 1;
                    m
                });
                let dups: Vec<_> = have.iter().filter(|(_, c)| **c > 1).take(5).collect();
                let missing: Vec<_> = want.iter().filter(|l| !have.contains_key(l)).take(5).collect();
                panic!(
                    "n{k} on {}: {} lines for {n} written; duplicates {dups:?}, missing {missing:?}",
                    srv.http,
                    got.len()
                );
            }
        }
    }
    // Every scrape once: strictly increasing times, one a second, no gap
    // but n1's own downtime (killed for 2 s, then a restart).
    for (k, lines) in written.iter().enumerate() {
        let times = up_times(&sites[0], k);
        assert_eq!(times, up_times(&sites[2], k), "n{k}: the sites disagree");
        assert!(times.len() > 15, "n{k}: only {} scrapes", times.len());
        let gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| *g > 0), "n{k}: a sample twice: {times:?}");
        let allowed = if k == 1 { 8_000 } else { 2_500 };
        let widest = gaps.iter().copied().max().unwrap_or(0);
        eprintln!(
            "n{k}: {} lines written and stored once; {} scrapes, widest gap {widest} ms",
            lines,
            times.len()
        );
        assert!(widest <= allowed, "n{k}: a gap of {widest} ms in {times:?}");
    }
}

/// Starts a killed site again on its own ports and data.
fn restart(old: &Server, dir: &Path) -> Server {
    let name = old
        .data_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("site dir")
        .to_string();
    let config = dir.join(format!("{name}.yml"));
    Server::start_on(
        &old.data_dir,
        old.http,
        old.grpc,
        &["--config", &config.to_string_lossy()],
    )
}
