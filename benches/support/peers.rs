//! Starting and measuring the systems a benchmark compares: Sightline
//! (release build), VictoriaMetrics and Prometheus from Debian, each on a
//! free loopback port with its own data directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running system under test.
pub struct Target {
    /// `sightline`, `victoria-metrics` or `prometheus`.
    pub name: &'static str,
    /// The process.
    pub child: Child,
    /// Base URL.
    pub url: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Sightline's gRPC address (`http://127.0.0.1:port`; OTLP and the
    /// agents' ship streams); empty for the others.
    pub grpc_url: String,
}

/// CPU seconds used so far and peak RSS (bytes) of a process.
pub fn proc_stat(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let cpu = (f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0))
        / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    (cpu, hwm)
}

/// Bytes of all files below `dir`.
pub fn du(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                total += du(&e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

/// Polls `url` until it answers 2xx.
pub fn wait_ready(url: &str, child: &mut Child) {
    let c = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{url}: exited during start-up: {st}");
        }
        if c.get(url).send().is_ok_and(|r| r.status().is_success()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} not ready");
}

/// Starts `name` with a data directory under `work`; `extra` arguments
/// go to its command line.
pub fn start(name: &'static str, work: &Path, extra: &[String]) -> Target {
    let port = free_port();
    let data_dir = work.join(name);
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let log = std::fs::File::create(work.join(format!("{name}.log"))).expect("log");
    let mut grpc_url = String::new();
    let (mut cmd, ready) = match name {
        "sightline" => {
            let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/sightline");
            // SIGHTLINE_WRAPPER (e.g. `heaptrack`) runs the server under a
            // profiler; CPU and RSS are then the wrapper's, not the server's.
            let mut c = match std::env::var("SIGHTLINE_WRAPPER") {
                Ok(w) if !w.trim().is_empty() => {
                    let mut words = w.split_whitespace();
                    let mut c = Command::new(words.next().unwrap_or_default());
                    c.args(words).arg(bin);
                    c
                }
                _ => Command::new(bin),
            };
            c.args(["serve", "--data-dir"])
                .arg(&data_dir)
                .arg("--http-listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--grpc-listen")
                .arg({
                    let addr = format!("127.0.0.1:{}", free_port());
                    grpc_url = format!("http://{addr}");
                    addr
                });
            if let Ok(cfg) = std::env::var("SIGHTLINE_CONFIG") {
                c.arg("--config").arg(cfg);
            }
            (c, "/-/ready")
        }
        "victoria-metrics" => {
            let mut c = Command::new("victoria-metrics");
            c.arg(format!("-storageDataPath={}", data_dir.display()))
                .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                .arg("-retentionPeriod=100y");
            (c, "/health")
        }
        "prometheus" => {
            let cfg = work.join("prometheus-empty.yml");
            std::fs::write(&cfg, "global: {}\n").expect("cfg");
            let mut c = Command::new("prometheus");
            c.arg(format!("--config.file={}", cfg.display()))
                .arg(format!("--storage.tsdb.path={}", data_dir.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--web.enable-remote-write-receiver")
                .arg("--storage.tsdb.retention.time=100y");
            (c, "/-/ready")
        }
        other => panic!("unknown target {other}"),
    };
    cmd.args(extra);
    let mut child = cmd
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e} (is it installed? see benches/ingest_compare.sh)"));
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{url}{ready}"), &mut child);
    Target {
        name,
        child,
        url,
        data_dir,
        grpc_url,
    }
}

/// SIGTERM, then waits up to 10 minutes (SIGKILL after).
pub fn terminate(child: &mut Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Cores and CPU model of this machine.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cores} cores, {cpu}")
}
