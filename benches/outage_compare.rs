//! The outage scenario through Sightline (shipped rule pack + shipped
//! Alertmanager config, built-in Alertmanager) and through real Prometheus
//! 2.42 + Alertmanager 0.25 (Debian) with the usual rules for the same
//! alerts (`up == 0`; a silent cluster or site as `group by (…) (up offset
//! …) unless group by (…) (up)`) and the same routing and inhibition.
//! Counts the notifications each on-call and ticket receiver gets.
//!
//! Fleet: 3 sites × 3 clusters × 20 nodes writing `up` every second. One
//! cluster goes dark for 40 s and returns; then one site goes dark for
//! 90 s and returns. The clock is compressed 30×: `for: 2m/3m/5m` run as
//! 4 s/6 s/10 s, the lookback is 5 s, and the usual rules' `offset 30m`
//! runs as `offset 60s` — shorter than the site's 90 s outage, as an
//! `offset 1h` is shorter than a long real one.
//!
//! Run: `benches/outage_compare.sh` (or `cargo bench --bench outage_compare`
//! after `cargo build --release`). Knob: TARGETS=sightline,prometheus.

#[path = "../tests/common/fleet.rs"]
mod fleet;
#[path = "support/peers.rs"]
mod peers;
#[path = "../tests/common/receiver.rs"]
mod receiver;
#[path = "support/remote_write.rs"]
mod remote_write;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message;
use receiver::Receiver;
use serde_json::Value;
use sightline_ingest::remote_write::proto;

/// Longer than the usual rules' offset window, so they have history to compare.
const WARMUP: u64 = 70;
const CLUSTER_DARK: u64 = 40;
const SITE_DARK: u64 = 90;
const SETTLE: u64 = 25;

/// The usual Prometheus rules for the same three alerts (compressed clock).
const TYPICAL_RULES: &str = r#"groups:
  - name: typical
    rules:
      - alert: SiteDown
        expr: group by (site) (up offset 60s) unless group by (site) (up)
        for: 4s
        labels: {severity: page}
      - alert: ClusterDown
        expr: |
          (group by (site, cluster) (up offset 60s) unless group by (site, cluster) (up))
            or
          (avg by (site, cluster) (up) < 0.5)
        for: 6s
        labels: {severity: page}
      - alert: NodeDown
        expr: up == 0
        for: 10s
        labels: {severity: ticket}
"#;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn wait_ready(url: &str) {
    let c = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if c.get(url).send().is_ok_and(|r| r.status().is_success()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} did not come up");
}

struct System {
    children: Vec<Child>,
    write_url: String,
}

fn start_sightline(work: &Path, port: u16) -> System {
    let cfg = fleet::write_sightline_setup(work, port);
    let http = peers::free_port();
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/sightline");
    let log = std::fs::File::create(work.join("sightline.log")).expect("log");
    let child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(work.join("data"))
        .arg("--http-listen")
        .arg(format!("127.0.0.1:{http}"))
        .arg("--grpc-listen")
        .arg(format!("127.0.0.1:{}", peers::free_port()))
        .stderr(log)
        .spawn()
        .expect("start sightline (cargo build --release first)");
    let url = format!("http://127.0.0.1:{http}");
    wait_ready(&format!("{url}/-/ready"));
    System {
        children: vec![child],
        write_url: format!("{url}/api/v1/write"),
    }
}

fn start_prometheus(work: &Path, port: u16) -> System {
    let am_port = peers::free_port();
    std::fs::write(work.join("alertmanager.yml"), fleet::alertmanager_config(port)).expect("write");
    let am_log = std::fs::File::create(work.join("alertmanager.log")).expect("log");
    let am = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", work.join("alertmanager.yml").display()))
        .arg(format!("--storage.path={}", work.join("am").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
        .arg(format!("--cluster.listen-address=127.0.0.1:{}", peers::free_port()))
        .stdout(am_log.try_clone().expect("log"))
        .stderr(am_log)
        .spawn()
        .expect("start prometheus-alertmanager (apt-get install prometheus-alertmanager)");
    wait_ready(&format!("http://127.0.0.1:{am_port}/-/ready"));
    std::fs::write(work.join("typical.yml"), TYPICAL_RULES).expect("write");
    std::fs::write(
        work.join("prometheus.yml"),
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: [typical.yml]\nalerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['127.0.0.1:{am_port}']}}]\n"
        ),
    )
    .expect("write");
    let http = peers::free_port();
    let log = std::fs::File::create(work.join("prometheus.log")).expect("log");
    let prom = Command::new("prometheus")
        .arg(format!("--config.file={}", work.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", work.join("prom").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{http}"))
        .arg("--web.enable-remote-write-receiver")
        .arg("--query.lookback-delta=5s")
        .arg("--rules.alert.resend-delay=2s")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    let url = format!("http://127.0.0.1:{http}");
    wait_ready(&format!("{url}/-/ready"));
    System {
        children: vec![prom, am],
        write_url: format!("{url}/api/v1/write"),
    }
}

fn writer(url: String, dark: Arc<Mutex<BTreeSet<String>>>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let c = reqwest::blocking::Client::new();
        while !stop.load(Ordering::SeqCst) {
            let off = dark.lock().expect("lock").clone();
            let series = fleet::up_series(&off, now_ms());
            let raw = proto::WriteRequest {
                timeseries: series,
                metadata: vec![],
            }
            .encode_to_vec();
            let body = snap::raw::Encoder::new().compress_vec(&raw).expect("snappy");
            if let Err(e) = remote_write::post_write(&c, &url, &body) {
                eprintln!("write failed: {e}");
            }
            std::thread::sleep(Duration::from_millis(1000));
        }
    })
}

/// One notification: when (s since start), receiver path, status,
/// alertname, site/cluster.
type Event = (f64, String, String, String, String);

fn events(r: &Receiver, t0: i64, seen: &Mutex<Vec<(String, i64)>>) -> Vec<Event> {
    // The receiver does not timestamp; stamp bodies the first time seen.
    let mut stamps = seen.lock().expect("lock");
    for (i, (_, body)) in r.bodies().into_iter().enumerate() {
        if i >= stamps.len() {
            stamps.push((body, now_ms()));
        }
    }
    let bodies: Vec<(String, String)> = r.bodies();
    bodies
        .iter()
        .zip(stamps.iter())
        .filter_map(|((path, body), (_, at))| {
            let v: Value = serde_json::from_str(body).ok()?;
            let (status, alertname, scope) = fleet::summary(&v);
            Some(((*at - t0) as f64 / 1000.0, path.clone(), status, alertname, scope))
        })
        .collect()
}

struct Outcome {
    system: String,
    events: Vec<Event>,
    phases: Vec<(String, f64, f64)>,
}

fn run(system: &str) -> Outcome {
    let work = tempfile::tempdir().expect("tmp");
    let receiver = Receiver::start();
    let mut sys = match system {
        "sightline" => start_sightline(work.path(), receiver.port),
        _ => start_prometheus(work.path(), receiver.port),
    };
    let dark = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(sys.write_url.clone(), dark.clone(), stop.clone());
    let t0 = now_ms();
    let seen = Mutex::new(Vec::new());
    let start = Instant::now();
    let sleep_polling = |secs: u64| {
        let until = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < until {
            let _ = events(&receiver, t0, &seen);
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let mut phases = Vec::new();
    sleep_polling(WARMUP);
    let a = start.elapsed().as_secs_f64();
    dark.lock().expect("lock").insert("fra-c1".into());
    eprintln!("{system}: cluster fra-c1 dark at {a:.0} s");
    sleep_polling(CLUSTER_DARK);
    let b = start.elapsed().as_secs_f64();
    dark.lock().expect("lock").clear();
    phases.push(("cluster fra-c1".to_string(), a, b));
    sleep_polling(SETTLE);
    let a = start.elapsed().as_secs_f64();
    dark.lock().expect("lock").insert("ams".into());
    eprintln!("{system}: site ams dark at {a:.0} s");
    sleep_polling(SITE_DARK);
    let b = start.elapsed().as_secs_f64();
    dark.lock().expect("lock").clear();
    phases.push(("site ams".to_string(), a, b));
    sleep_polling(SETTLE);
    stop.store(true, Ordering::SeqCst);
    let _ = w.join();
    let evs = events(&receiver, t0, &seen);
    for c in sys.children.iter_mut() {
        peers::terminate(c);
    }
    Outcome {
        system: system.to_string(),
        events: evs,
        phases,
    }
}

fn main() {
    sightline_alerting::tls::install_provider();
    let targets = std::env::var("TARGETS").unwrap_or_else(|_| "sightline,prometheus".into());
    let mut outcomes = Vec::new();
    for t in targets.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        eprintln!("== {t}");
        outcomes.push(run(t));
    }
    println!(
        "\nMachine: {}. Fleet: 3 sites x 3 clusters x 20 nodes; clock compressed 30x (see the file's header).\n",
        peers::machine()
    );
    println!(
        "| system | outage | pages (firing) | resolved while still dark | resolved after return | node/cluster notifications for the outage |"
    );
    println!("|---|---|---|---|---|---|");
    for o in &outcomes {
        for (what, a, b) in &o.phases {
            let in_scope = |e: &Event| {
                if what.starts_with("cluster") {
                    e.4 == "fra/fra-c1"
                } else {
                    e.4.starts_with("ams/")
                }
            };
            let next_phase_start = o.phases.iter().map(|p| p.1).find(|s| s > a).unwrap_or(f64::INFINITY);
            let during = |e: &Event| e.0 >= *a && e.0 < next_phase_start;
            let oncall: Vec<&Event> = o
                .events
                .iter()
                .filter(|e| e.1 == "/oncall" && in_scope(e) && during(e))
                .collect();
            let firing = oncall.iter().filter(|e| e.2 == "firing").count();
            let false_resolved = oncall.iter().filter(|e| e.2 == "resolved" && e.0 < *b).count();
            let resolved = oncall.iter().filter(|e| e.2 == "resolved" && e.0 >= *b).count();
            let lower_level = o
                .events
                .iter()
                .filter(|e| {
                    during(e)
                        && in_scope(e)
                        && (e.1 == "/tickets" || (what.starts_with("site") && e.3 == "ClusterDown"))
                })
                .count();
            println!(
                "| {} | {what} dark {:.0} s | {firing} | {false_resolved} | {resolved} | {lower_level} |",
                o.system,
                b - a
            );
        }
    }
    println!("\nTimeline (s since start: receiver status alertname site/cluster):");
    for o in &outcomes {
        println!("\n{}: phases {:?}", o.system, o.phases);
        for e in &o.events {
            if e.1 != "/watchdog" {
                println!("  {:6.1} {} {} {} {}", e.0, e.1, e.2, e.3, e.4);
            }
        }
    }
}
