//! The collector agent against the real binary: `sightline agent` scrapes
//! a real node_exporter (Debian `prometheus-node-exporter`) and file_sd
//! targets and ships to `sightline serve`; the series it records are the
//! ones real Prometheus records for the same target.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;
use serde_json::Value;

fn instant(srv: &Server, q: &str) -> Vec<Value> {
    let r = client()
        .get(srv.url("/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .expect("query");
    let v: Value = r.json().expect("json");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The label sets of `{job="<job>"}` without the labels that tell the
/// two scrapers apart.
fn series_of(srv: &Server, job: &str) -> BTreeSet<Vec<(String, String)>> {
    let now = now_ms() / 1000;
    let r = client()
        .get(srv.url("/api/v1/series"))
        .query(&[
            ("match[]", format!("{{job=\"{job}\"}}")),
            ("start", (now - 600).to_string()),
            ("end", (now + 60).to_string()),
        ])
        .send()
        .expect("series");
    let v: Value = r.json().expect("json");
    v["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            s.as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, _)| !["job", "site", "cluster"].contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn agent_scrapes_node_exporter_as_prometheus_does_and_follows_file_sd() {
    let Some(node_exporter) = require_tool("prometheus-node-exporter", "apt-get install prometheus-node-exporter")
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let srv = Server::start(&tmp.path().join("data"), &[]);
    let (_ne, ne_port) = start_node_exporter(&node_exporter, tmp.path());

    // file_sd starts with a target nothing listens on.
    let dead = free_port();
    let sd = tmp.path().join("targets.json");
    std::fs::write(
        &sd,
        format!(r#"[{{"targets":["127.0.0.1:{dead}"],"labels":{{"role":"self"}}}}]"#),
    )
    .expect("sd");
    let cfg = tmp.path().join("agent.yml");
    std::fs::write(
        &cfg,
        format!(
            r#"identity: {{site: ams, cluster: ams-c1}}
global: {{scrape_interval: 1s, scrape_timeout: 1s}}
scrape_configs:
  - job_name: node_agent
    static_configs:
      - targets: ['127.0.0.1:{ne_port}']
  - job_name: node_slim
    static_configs:
      - targets: ['127.0.0.1:{ne_port}']
    relabel_configs:
      - source_labels: [__address__]
        regex: '([^:]+):\d+'
        target_label: host
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: 'go_.*'
        action: drop
  - job_name: self
    file_sd_configs:
      - files: [targets.json]
remote_write:
  - url: http://127.0.0.1:{dead}/api/v1/write
  - url: {url}
"#,
            url = srv.url("/api/v1/write")
        ),
    )
    .expect("agent config");
    let mut agent = start_agent(&cfg, tmp.path());

    // Shipped past the first (dead) site to the second; identity added.
    wait_for("up from the agent", 30, || {
        let r = instant(&srv, r#"up{job="node_agent", site="ams", cluster="ams-c1"} == 1"#);
        (!r.is_empty()).then_some(())
    });
    // Each job's first scrape may be shipped in a later batch than the
    // one above: wait for it too.
    let r = wait_for("up of the self job", 30, || {
        let r = instant(&srv, r#"up{job="self", role="self"}"#);
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["value"][1], "0", "a target nobody answers on is down");
    // Relabelling: a host label from the address; go_* dropped after the scrape.
    wait_for("node_slim's relabelled series", 30, || {
        let r = instant(&srv, r#"node_load1{job="node_slim", host="127.0.0.1"}"#);
        (!r.is_empty()).then_some(())
    });
    assert!(instant(&srv, r#"go_goroutines{job="node_slim"}"#).is_empty());
    assert!(!instant(&srv, r#"go_goroutines{job="node_agent"}"#).is_empty());
    let post = instant(&srv, r#"scrape_samples_post_metric_relabeling{job="node_slim"}"#);
    let scraped = instant(&srv, r#"scrape_samples_scraped{job="node_slim"}"#);
    let num = |r: &[Value]| r[0]["value"][1].as_str().unwrap_or("0").parse::<f64>().unwrap_or(0.0);
    assert!(num(&post) < num(&scraped) && num(&post) > 100.0, "{post:?} {scraped:?}");

    // file_sd: the file now names Sightline itself; the next scrape uses it.
    let self_addr = srv
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    std::fs::write(
        &sd,
        format!(r#"[{{"targets":["{self_addr}"],"labels":{{"role":"self"}}}}]"#),
    )
    .expect("sd");
    wait_for("the new file_sd target", 30, || {
        let r = instant(&srv, &format!(r#"up{{job="self", instance="{self_addr}"}} == 1"#));
        (!r.is_empty()).then_some(())
    });

    // Real Prometheus scraping the same target records the same series.
    if let Some(prometheus) = require_tool("prometheus", "apt-get install prometheus") {
        let prom_cfg = tmp.path().join("prometheus.yml");
        std::fs::write(
            &prom_cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: node_prom\n    static_configs:\n      - targets: ['127.0.0.1:{ne_port}']\nremote_write:\n  - url: {}\n    queue_config:\n      batch_send_deadline: 500ms\n",
                srv.url("/api/v1/write")
            ),
        )
        .expect("prometheus config");
        let prom_port = free_port();
        let mut prom_cmd = Command::new(prometheus);
        prom_cmd
            .arg(format!("--config.file={}", prom_cfg.display()))
            .arg(format!("--storage.tsdb.path={}", tmp.path().join("prom").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"));
        let _prom = Proc::spawn(prom_cmd, &tmp.path().join("prometheus.log"));
        wait_for("Prometheus' samples", 60, || {
            (!instant(&srv, r#"up{job="node_prom"}"#).is_empty()).then_some(())
        });
        // Both have scraped a few times; compare what each recorded.
        std::thread::sleep(std::time::Duration::from_secs(4));
        let ours = series_of(&srv, "node_agent");
        let theirs = series_of(&srv, "node_prom");
        let only_ours: Vec<_> = ours.difference(&theirs).collect();
        let only_theirs: Vec<_> = theirs.difference(&ours).collect();
        assert!(
            only_ours.is_empty() && only_theirs.is_empty(),
            "series only the agent recorded: {only_ours:?}\nseries only Prometheus recorded: {only_theirs:?}"
        );
        assert!(ours.len() > 300, "{} series", ours.len());
    }
    agent.terminate();
}

#[test]
fn a_site_outage_and_an_agent_kill_9_lose_no_scraped_samples() {
    let Some(node_exporter) = require_tool("prometheus-node-exporter", "apt-get install prometheus-node-exporter")
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let http: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let grpc: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let mut srv = Server::start_on(&data, http, grpc, &[]);
    let (_ne, ne_port) = start_node_exporter(&node_exporter, tmp.path());
    let cfg = tmp.path().join("agent.yml");
    std::fs::write(
        &cfg,
        format!(
            "identity: {{site: ams}}\nglobal: {{scrape_interval: 1s, scrape_timeout: 1s}}\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{ne_port}']\nremote_write:\n  - url: {}\n",
            srv.url("/api/v1/write")
        ),
    )
    .expect("agent config");
    let start_agent = || start_agent(&cfg, tmp.path());
    let agent = start_agent();
    wait_for("the first scrapes", 30, || {
        (!instant(&srv, r#"up{job="node"}"#).is_empty()).then_some(())
    });
    // The site goes away; the agent keeps scraping into its disk buffer,
    // is killed with kill -9 there, and restarted.
    assert!(srv.sigterm().success());
    let site_down = now_ms();
    std::thread::sleep(std::time::Duration::from_secs(3));
    drop(agent); // SIGKILL
    let agent_dead = now_ms();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let agent_back = now_ms();
    let _agent = start_agent();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let srv = Server::start_on(&data, http, grpc, &[]);
    let site_back = now_ms();
    // Everything buffered arrives once the site is back.
    let up = wait_for("the buffered samples", 60, || {
        let e = export(&srv, r#"up{job="node"}"#);
        let ts = e.first().map(|s| s.timestamps.clone()).unwrap_or_default();
        ts.last().is_some_and(|t| *t >= site_back).then_some(ts)
    });
    // One sample a second throughout, except while the agent itself was
    // dead (between the kill and its first scrape after the restart).
    for w in up.windows(2) {
        if w[1] - w[0] > 1_600 {
            assert!(
                w[0] >= agent_dead - 1_600 && w[1] <= agent_back + 3_000,
                "a gap {}..{} ms outside the agent's own downtime {agent_dead}..{agent_back} (site down {site_down}..{site_back})",
                w[0],
                w[1]
            );
        }
    }
    let during_outage = up.iter().filter(|t| **t > site_down && **t < site_back).count();
    assert!(
        during_outage >= 5,
        "{during_outage} samples scraped while the site was down arrived"
    );
    let failures = instant(&srv, "sightline_agent_send_failures_total");
    assert!(!failures.is_empty(), "the agent reports its own health");
}

/// Every line of a Loki streams answer.
fn log_lines(srv: &Server, query: &str) -> Vec<String> {
    let now = now_ms() * 1_000_000;
    let r = client()
        .get(srv.url("/loki/api/v1/query_range"))
        .query(&[
            ("query", query.to_string()),
            ("start", (now - 3_600_000_000_000).to_string()),
            ("end", (now + 60_000_000_000).to_string()),
            ("limit", "5000".to_string()),
        ])
        .send()
        .expect("query");
    let v: Value = r.json().expect("json");
    v["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .flat_map(|s| {
            s["values"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|e| e[1].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

#[test]
fn tailed_log_lines_arrive_once_across_rotation_and_agent_kill_9() {
    let tmp = tempfile::tempdir().expect("tmp");
    let srv = Server::start(&tmp.path().join("data"), &[]);
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).expect("dir");
    let log = logs.join("mail.log");
    let cfg = tmp.path().join("agent.yml");
    std::fs::write(
        &cfg,
        format!(
            "identity: {{site: ams}}\nremote_write:\n  - url: {}\nloki_push:\n  - url: {}\nlog_files:\n  - paths: ['logs/mail.log*']\n    labels: {{job: mail}}\n",
            srv.url("/api/v1/write"),
            srv.url("/loki/api/v1/push")
        ),
    )
    .expect("agent config");
    let start_agent = || start_agent(&cfg, tmp.path());
    let write = |from: usize, to: usize| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open log");
        for i in from..to {
            std::io::Write::write_all(&mut f, format!("line {i:05}\n").as_bytes()).expect("write");
            if i % 50 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    };
    let mut agent = start_agent();
    write(0, 300);
    // kill -9 while lines are being written, then go on writing.
    drop(agent); // SIGKILL
    write(300, 500);
    agent = start_agent();
    write(500, 700);
    // Rotation: renamed inside the glob, a new file under the old name.
    std::fs::rename(&log, logs.join("mail.log.1")).expect("rotate");
    write(700, 900);
    drop(agent); // SIGKILL again, right after a rotation
    write(900, 1000);
    let _agent = start_agent();
    wait_for("every line", 60, || {
        (log_lines(&srv, r#"{job="mail", site="ams"}"#).len() >= 1000).then_some(())
    });
    // A moment more, so late duplicates would show.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let mut got = log_lines(&srv, r#"{job="mail", site="ams"}"#);
    assert_eq!(got.len(), 1000, "every line exactly once (duplicates would make more)");
    got.sort();
    let want: Vec<String> = (0..1000).map(|i| format!("line {i:05}")).collect();
    assert_eq!(got, want, "no line missing");
}

/// With `replication_factor: 2` every scraped sample reaches two sites:
/// the first two while all three are up, the other two once the first is
/// killed with kill -9 (so losing any one site loses no sample).
#[test]
fn dual_shipping_puts_every_sample_on_two_sites() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut sites: Vec<Server> = (0..3)
        .map(|i| Server::start(&tmp.path().join(format!("site{i}")), &[]))
        .collect();
    let cfg = tmp.path().join("agent.yml");
    let urls: String = sites
        .iter()
        .map(|s| format!("  - url: {}\n", s.url("/api/v1/write")))
        .collect();
    // The agent scrapes the third site's own /metrics (always there).
    let target = sites[2].http;
    std::fs::write(
        &cfg,
        format!(
            "identity: {{site: ams}}\nreplication_factor: 2\nglobal: {{scrape_interval: 1s, scrape_timeout: 1s}}\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['{target}']\nremote_write:\n{urls}"
        ),
    )
    .expect("agent config");
    let _agent = start_agent(&cfg, tmp.path());
    let up_times = |srv: &Server| -> BTreeSet<i64> {
        export(srv, r#"up{job="self"}"#)
            .first()
            .map(|s| s.timestamps.iter().copied().collect())
            .unwrap_or_default()
    };
    wait_for("five scrapes on the first two sites", 30, || {
        (up_times(&sites[1]).len() >= 5).then_some(())
    });
    sites[0].kill9();
    let killed = now_ms();
    wait_for("five scrapes after the kill on the second site", 30, || {
        (up_times(&sites[1]).iter().filter(|t| **t > killed + 2_000).count() >= 5).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (b, c) = (up_times(&sites[1]), up_times(&sites[2]));
    let before: BTreeSet<i64> = b.iter().copied().filter(|t| *t < killed - 2_000).collect();
    assert!(before.len() >= 3, "{before:?}");
    // Before the kill the first two sites hold each sample (the first is
    // dead now, so its share shows as: the third site did not need them).
    assert!(
        before.iter().all(|t| !c.contains(t)),
        "the third site got samples while the first two were up"
    );
    // After it, the second and third hold every sample (the last one may
    // still be in flight).
    let after: Vec<i64> = b.iter().copied().filter(|t| *t > killed + 2_000).collect();
    let missing: Vec<i64> = after[..after.len() - 1]
        .iter()
        .copied()
        .filter(|t| !c.contains(t))
        .collect();
    assert!(
        missing.is_empty(),
        "samples on one site only after the kill: {missing:?}"
    );
    let first = Server::start_on(&sites[0].data_dir.clone(), sites[0].http, sites[0].grpc, &[]);
    let a = up_times(&first);
    assert!(
        before.iter().all(|t| a.contains(t)),
        "the first site lost acknowledged samples"
    );
}

/// Appends entries `from..to` to a journal file in `dir`, written by
/// systemd's own journal writer (`systemd-journal-remote`, from export
/// format), as journald would have written them.
fn journal_append(writer: &std::path::Path, dir: &std::path::Path, from: usize, to: usize) {
    let now_us = now_ms() * 1000;
    let mut export = String::new();
    for i in from..to {
        export.push_str(&format!(
            "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_SYSTEMD_UNIT=mail.service\nPRIORITY=6\nMESSAGE=journal line {i:04}\n\n",
            now_us + i as i64,
            i + 1
        ));
    }
    let mut child = Command::new(writer)
        .arg(format!("--output={}", dir.join("remote.journal").display()))
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("systemd-journal-remote");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), export.as_bytes()).expect("export");
    drop(child.stdin.take());
    assert!(child.wait().expect("wait").success(), "systemd-journal-remote failed");
}

/// Whether the agent's on-disk buffer in `dir` has recorded every record
/// in it as acknowledged: its cursor (`segment offset`) is at the end of
/// the last segment.
fn buffer_delivered(dir: &std::path::Path) -> bool {
    let Ok(cursor) = std::fs::read_to_string(dir.join("cursor")) else {
        return false;
    };
    let Some((segment, offset)) = cursor
        .trim()
        .split_once(' ')
        .and_then(|(s, o)| Some((s.parse::<u64>().ok()?, o.parse::<u64>().ok()?)))
    else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.filter_map(|e| e.ok()).all(|e| {
        let name = e.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            return true;
        };
        let len = e.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        id < segment || (id == segment && len <= offset) || (id > segment && len == 0)
    })
}

/// The agent reads a systemd journal through journalctl, with `unit` and
/// `level` labels, ships it over its gRPC stream, and continues after its
/// saved cursor when restarted after `kill -9`: every entry once.
#[test]
fn journal_entries_arrive_once_across_an_agent_kill_9() {
    let Some(_) = require_tool("journalctl", "apt-get install systemd") else {
        return;
    };
    let writer = std::path::Path::new("/lib/systemd/systemd-journal-remote");
    if !require_path(writer, "apt-get install systemd-journal-remote") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let srv = Server::start(&tmp.path().join("data"), &[]);
    let journal = tmp.path().join("journal");
    std::fs::create_dir_all(&journal).expect("dir");
    journal_append(writer, &journal, 0, 50);
    let cfg = tmp.path().join("agent.yml");
    std::fs::write(
        &cfg,
        format!(
            "identity: {{site: ams}}\nsites:\n  - url: http://{}\njournal:\n  directory: journal\n  labels: {{job: journal}}\n",
            srv.grpc
        ),
    )
    .expect("agent config");
    let query = r#"{job="journal", unit="mail.service", level="informational", site="ams"}"#;
    let mut agent = start_agent(&cfg, tmp.path());
    wait_for("the first 50 entries", 30, || {
        (log_lines(&srv, query).len() >= 50).then_some(())
    });
    // A batch the server stored but whose acknowledgement the agent had
    // not yet recorded is sent again after a kill, by design (the storage
    // drops the repeat). The kill comes once the agent has recorded both
    // where the journal continues and that its buffer is delivered, so a
    // repeat below can only mean the journal was read again.
    let logs_buffer = tmp.path().join("agent-buffer").join("logs");
    wait_for("the journal cursor and the delivery saved", 30, || {
        (logs_buffer.join("journal.cursor").exists() && buffer_delivered(&logs_buffer)).then_some(())
    });
    drop(agent); // SIGKILL
    journal_append(writer, &journal, 50, 100);
    agent = start_agent(&cfg, tmp.path());
    journal_append(writer, &journal, 100, 150);
    wait_for("every entry", 30, || {
        (log_lines(&srv, query).len() >= 150).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    drop(agent);
    let mut got = log_lines(&srv, query);
    got.sort();
    let want: Vec<String> = (0..150).map(|i| format!("journal line {i:04}")).collect();
    assert_eq!(got, want, "every entry exactly once");
    // And the restarted agent continued after its cursor rather than
    // reading the journal again (the storage would drop what it has, and
    // count it here).
    let duplicates: f64 = metrics_text(&srv)
        .lines()
        .filter(|l| l.starts_with("sightline_logs_entries_duplicate_total"))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum();
    assert_eq!(duplicates, 0.0, "entries were sent again");
}
