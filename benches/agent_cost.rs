//! What the collector agent costs a node: its CPU (as a share of one
//! core) and peak RSS while it scrapes 1,000 series every 15 s and tails
//! a log file growing by 100 lines/s, shipping both to a local
//! `sightline serve` (release build). Issue 6's target: under 1 % of one
//! core and under 30 MB RSS.
//!
//! The 1,000 series are the real series shapes of
//! `../shared/data/metrics/node_exporter.prom` (507 of them) served twice
//! with a `replica` label, by a small HTTP server in this process; the log
//! lines are loghub's OpenSSH sample, replayed in a loop.
//!
//! Run: `benches/agent_cost.sh` (or `cargo bench --bench agent_cost`
//! after `cargo build --release`). Knobs: SECONDS (default 120), SERIES
//! (1000), LINES_PER_SEC (100).

#[path = "support/peers.rs"]
mod peers;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// An exposition of `n` series built from the real node_exporter scrape.
fn exposition(n: usize) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/metrics/node_exporter.prom");
    let real = std::fs::read_to_string(path).expect("../shared/data/metrics/node_exporter.prom");
    let samples: Vec<&str> = real.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    let mut out = String::new();
    for i in 0..n {
        let line = samples[i % samples.len()];
        let replica = i / samples.len();
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let series = match series.split_once('{') {
            Some((name, rest)) => format!("{name}{{replica=\"{replica}\",{rest}"),
            None => format!("{series}{{replica=\"{replica}\"}}"),
        };
        out.push_str(&format!("{series} {value}\n"));
    }
    out
}

/// Serves `body` at every path until the process ends.
fn serve_metrics(body: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let body = Arc::new(body);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let body = body.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(match stream.try_clone() {
                    Ok(s) => s,
                    Err(_) => return,
                });
                let mut stream = stream;
                loop {
                    // One request: read the head up to the blank line.
                    let mut line = String::new();
                    let mut any = false;
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        any = true;
                        if line == "\r\n" || line == "\n" {
                            break;
                        }
                        line.clear();
                    }
                    if !any {
                        return;
                    }
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    if stream.write_all(head.as_bytes()).is_err() || stream.write_all(body.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn main() {
    sightline_alerting::tls::install_provider();
    let seconds = env_or("SECONDS", 120);
    let series = env_or("SERIES", 1000) as usize;
    let lines_per_sec = env_or("LINES_PER_SEC", 100);
    let work = tempfile::tempdir().expect("tmp");
    let mut srv = peers::start("sightline", work.path(), &[]);
    let port = serve_metrics(exposition(series));

    let log_src = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/logs/loghub/OpenSSH/OpenSSH_2k.log"
    );
    let sample: Vec<String> = std::fs::read_to_string(log_src)
        .expect("loghub OpenSSH sample")
        .lines()
        .map(String::from)
        .collect();
    let log = work.path().join("sshd.log");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .expect("log");
            let start = Instant::now();
            let mut written = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = (start.elapsed().as_secs_f64() * lines_per_sec as f64) as u64;
                while written < due {
                    let line = &sample[(written as usize) % sample.len()];
                    let _ = writeln!(f, "{line}");
                    written += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            written
        })
    };

    let cfg = work.path().join("agent.yml");
    std::fs::write(
        &cfg,
        format!(
            "identity: {{site: ams, cluster: ams-c1}}\nglobal: {{scrape_interval: 15s, scrape_timeout: 10s}}\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\nsites:\n  - url: {url}\nlog_files:\n  - paths: ['sshd.log']\n    labels: {{job: sshd}}\n",
            url = srv.grpc_url
        ),
    )
    .expect("agent config");
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/sightline");
    let mut agent = Command::new(bin)
        .args(["agent", "--config"])
        .arg(&cfg)
        .stdout(std::fs::File::create(work.path().join("agent.log")).expect("log"))
        .stderr(std::fs::File::create(work.path().join("agent.err")).expect("log"))
        .spawn()
        .expect("start the agent");
    let pid = agent.id();
    // Warm-up: the first scrape and the start-up allocations.
    std::thread::sleep(Duration::from_secs(15));
    let (cpu0, _) = peers::proc_stat(pid);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let (cpu1, hwm) = peers::proc_stat(pid);
    let wall = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap_or(0);
    std::thread::sleep(Duration::from_secs(2));

    // What arrived (so the cost is that of doing the work).
    let c = reqwest::blocking::Client::new();
    let q = |query: &str| -> f64 {
        c.get(format!("{}/api/v1/query", srv.url))
            .query(&[("query", query)])
            .send()
            .ok()
            .and_then(|r| r.json::<serde_json::Value>().ok())
            .and_then(|v| v["data"]["result"][0]["value"][1].as_str().map(String::from))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0)
    };
    let scraped = q(r#"scrape_samples_scraped{job="node"}"#);
    let sent_lines = q("sightline_agent_sent_log_lines_total");
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let _ = agent.wait();
    peers::terminate(&mut srv.child);

    let cpu_share = (cpu1 - cpu0) / wall * 100.0;
    println!(
        "\nMachine: {}. Agent over {wall:.0} s after a 15 s warm-up.\n",
        peers::machine()
    );
    println!(
        "| series per scrape | scrape interval | log lines/s | lines written | lines shipped (agent's counter) | agent CPU, % of one core | agent peak RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {scraped:.0} | 15 s | {lines_per_sec} | {written} | {sent_lines:.0} | {cpu_share:.2} | {:.1} |",
        hwm as f64 / 1e6
    );
    println!(
        "\nTargets (issue 6): CPU < 1 % of one core: {}; RSS < 30 MB: {}.",
        if cpu_share < 1.0 { "met" } else { "not met" },
        if hwm < 30_000_000 { "met" } else { "not met" }
    );
}
