//! Test harness: starts the real `sightline` binary on loopback ports and
//! talks to it like a client would.

#![allow(dead_code)]

mod receiver;
pub mod sample_data;
pub mod sites;
#[allow(unused_imports)]
pub use receiver::Receiver;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::Value;
use sightline_ingest::remote_write::proto;

/// A free loopback port for a server a test starts, free for TCP and UDP
/// when checked. Picked at random below the kernel's ephemeral range
/// (`ip_local_port_range`): a port from `bind(0)` comes from that range,
/// where the client connections of tests running in parallel take their
/// local ports, and one did take such a port in CI between this check and
/// the server's bind ("Address already in use").
pub fn free_port() -> u16 {
    const FIRST: u32 = 10_000;
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    if ephemeral_start > FIRST + 1000 {
        for _ in 0..1000 {
            let port = u16::try_from(FIRST + (random_u64() % u64::from(ephemeral_start - FIRST)) as u32)
                .expect("below the ephemeral range");
            if TcpListener::bind(("127.0.0.1", port)).is_ok() && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// 64 random bits (std's per-process random hash keys and a counter).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// A running `sightline serve`.
pub struct Server {
    child: Option<Child>,
    /// HTTP address.
    pub http: SocketAddr,
    /// gRPC address.
    pub grpc: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Where stderr goes.
    pub log: PathBuf,
}

impl Server {
    /// Starts the binary on fresh ports and waits until `/-/ready` is 200.
    /// A free port can be taken by another process before the binary binds
    /// it (tests run in parallel): then it starts again on other ports.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let mut attempts = 0;
        loop {
            let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
            let grpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
            match Self::try_start_on(data_dir, http, grpc, extra) {
                Ok(s) => return s,
                Err(log) if attempts < 3 && log.contains("Address already in use") => attempts += 1,
                Err(log) => panic!("{log}"),
            }
        }
    }

    /// Starts the binary on the given addresses.
    pub fn start_on(data_dir: &Path, http: SocketAddr, grpc: SocketAddr, extra: &[&str]) -> Server {
        Self::try_start_on(data_dir, http, grpc, extra).unwrap_or_else(|log| panic!("{log}"))
    }

    /// Starts the binary on the given addresses; the error is why it did
    /// not become ready, with its log.
    fn try_start_on(data_dir: &Path, http: SocketAddr, grpc: SocketAddr, extra: &[&str]) -> Result<Server, String> {
        std::fs::create_dir_all(data_dir).expect("data dir");
        let log = data_dir.with_extension(format!("log.{}", std::process::id()));
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_sightline"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--http-listen")
            .arg(http.to_string())
            .arg("--grpc-listen")
            .arg(grpc.to_string())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("spawn sightline");
        let mut s = Server {
            child: Some(child),
            http,
            grpc,
            data_dir: data_dir.to_path_buf(),
            log,
        };
        s.wait_ready()?;
        Ok(s)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = client();
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!(
                    "sightline exited during start-up with {status}: {}",
                    self.log_text()
                ));
            }
            if let Ok(r) = client.get(self.url("/-/ready")).send()
                && r.status().is_success()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("sightline not ready after 60 s: {}", self.log_text()))
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for exit.
    pub fn sigterm(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .expect("kill");
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st;
            }
            assert!(Instant::now() < deadline, "no exit within 60 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A blocking HTTP client with a timeout.
pub fn client() -> reqwest::blocking::Client {
    sightline_alerting::tls::install_provider();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The server's `/metrics` text.
pub fn metrics_text(server: &Server) -> String {
    client()
        .get(server.url("/metrics"))
        .send()
        .and_then(|r| r.text())
        .expect("GET /metrics")
}

/// A series for remote write: labels (sorted by the caller) and samples.
pub fn ts(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> proto::TimeSeries {
    proto::TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| proto::Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|(t, v)| proto::Sample {
                value: *v,
                timestamp: *t,
                start_timestamp: 0,
            })
            .collect(),
        exemplars: vec![],
        histograms: vec![],
    }
}

/// Sends a remote write 1.0 request; returns status and body.
pub fn remote_write(server: &Server, series: Vec<proto::TimeSeries>) -> (u16, String) {
    remote_write_to(&server.url(""), series)
}

/// Sends a remote write 1.0 request to the server at `base_url`.
pub fn remote_write_to(base_url: &str, series: Vec<proto::TimeSeries>) -> (u16, String) {
    let raw = proto::WriteRequest {
        timeseries: series,
        metadata: vec![],
    }
    .encode_to_vec();
    let body = snap::raw::Encoder::new().compress_vec(&raw).expect("snappy");
    match client()
        .post(format!("{base_url}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
    {
        Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// One exported series.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    /// Labels as a JSON object.
    pub metric: serde_json::Map<String, Value>,
    /// Timestamps (ms).
    pub timestamps: Vec<i64>,
    /// Values as JSON (numbers or "NaN"/"StaleNaN"/"+Inf"/"-Inf").
    pub values: Vec<Value>,
}

/// Reads `/api/v1/export` for a selector.
pub fn export(server: &Server, selector: &str) -> Vec<Exported> {
    let r = client()
        .get(server.url("/api/v1/export"))
        .query(&[("match[]", selector)])
        .send()
        .expect("export");
    assert!(
        r.status().is_success(),
        "export failed: {}",
        r.text().unwrap_or_default()
    );
    r.text()
        .expect("body")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json line");
            Exported {
                metric: v["metric"].as_object().cloned().unwrap_or_default(),
                timestamps: v["timestamps"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_i64).collect())
                    .unwrap_or_default(),
                values: v["values"].as_array().cloned().unwrap_or_default(),
            }
        })
        .collect()
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[path = "../../benches/support/rng.rs"]
mod rng;
/// The deterministic PRNG shared with the benchmark generator.
#[allow(unused_imports)]
pub use rng::Rng;

/// Sum of the sizes of files named `*.wal` below `dir`.
pub fn wal_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("wal"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The path of an external program a test needs. When it is missing the
/// test is skipped with a loud message, unless `SIGHTLINE_REQUIRE_EXTERNAL`
/// is set (as `.ci/run` does), in which case the test fails.
pub fn require_tool(name: &str, install_hint: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var_os("SIGHTLINE_REQUIRE_EXTERNAL").is_some() {
            panic!("{name} is required but not installed: {install_hint}");
        }
        eprintln!("SKIPPED: {name} is not installed ({install_hint}); .ci/run installs it");
    }
    found
}

/// Whether `path` (a program or files a test needs outside `PATH`)
/// exists. When it does not the test is skipped with a loud message, or
/// fails under `SIGHTLINE_REQUIRE_EXTERNAL` (as in CI).
pub fn require_path(path: &Path, install_hint: &str) -> bool {
    if path.exists() {
        return true;
    }
    if std::env::var_os("SIGHTLINE_REQUIRE_EXTERNAL").is_some() {
        panic!("{} is required but missing: {install_hint}", path.display());
    }
    eprintln!(
        "SKIPPED: {} is missing ({install_hint}); .ci/run installs it",
        path.display()
    );
    false
}

/// Starts `sightline agent --config cfg`, logging to a new file in `dir`
/// named after the configuration file.
pub fn start_agent(cfg: &Path, dir: &Path) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sightline"));
    cmd.args(["agent", "--config"]).arg(cfg);
    let name = cfg.file_stem().and_then(|s| s.to_str()).unwrap_or("agent");
    Proc::spawn(cmd, &dir.join(format!("{name}-{}.log", now_ms())))
}

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Proc(pub Option<Child>);

impl Proc {
    /// Spawns `cmd` with output discarded to `log`.
    pub fn spawn(mut cmd: Command, log: &Path) -> Proc {
        let f = std::fs::File::create(log).expect("log file");
        let f2 = f.try_clone().expect("log file");
        let child = cmd.stdout(f).stderr(f2).spawn().expect("spawn");
        Proc(Some(child))
    }

    /// Sends SIGTERM and waits up to 60 s for the exit.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `url` until it answers 2xx or 60 s pass.
pub fn wait_http_ok(url: &str) {
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if c.get(url).send().is_ok_and(|r| r.status().is_success()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} did not come up within 60 s");
}

/// Polls `f` every 100 ms until it gives a value or `secs` pass.
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts a real node_exporter on a free loopback port (logging to
/// `dir/node_exporter.log`) and waits until it answers; returns the
/// process and its port.
pub fn start_node_exporter(binary: &Path, dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let mut cmd = Command::new(binary);
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let proc = Proc::spawn(cmd, &dir.join("node_exporter.log"));
    wait_http_ok(&format!("http://127.0.0.1:{port}/metrics"));
    (proc, port)
}
