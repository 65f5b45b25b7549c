//! How fast the surviving sites answer when a site is lost.
//!
//! Three `sightline serve` processes (release build) on loopback, each
//! with the other two as peers (`site.peer_timeout: 1s`), each holding
//! its own site's `up` series (3 clusters × 20 nodes, one sample a second
//! for two minutes). A client asks dc1 `count(up)` (every site's data)
//! and `sum by (site) (rate(up[1m]))` in a loop while dc3 is lost in two
//! ways:
//! - crashed (`kill -9`: its port refuses connections), then restarted;
//! - hung (`SIGSTOP`: connections are accepted and never answered, as a
//!   site behind a dead link), then resumed.
//!
//! Measured: the time from the loss to the first answer from dc1 (and
//! whether it carries the warning naming dc3), query latency before and
//! during the loss, and the time from dc3's return until dc1's answers
//! are complete again.
//!
//! Run: `benches/site_failover.sh` (or `cargo bench --bench site_failover`
//! after `cargo build --release`).

#[path = "../tests/common/fleet.rs"]
mod fleet;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/remote_write.rs"]
mod remote_write;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::Value;

const SITES: [&str; 3] = ["dc1", "dc2", "dc3"];

struct Site {
    name: &'static str,
    port: u16,
    grpc: u16,
    config: PathBuf,
    data: PathBuf,
    child: Option<Child>,
}

impl Site {
    fn start(&mut self, work: &Path) {
        let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/sightline");
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(work.join(format!("{}.log", self.name)))
            .expect("log");
        let mut child = Command::new(bin)
            .args(["serve", "--data-dir"])
            .arg(&self.data)
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--grpc-listen")
            .arg(format!("127.0.0.1:{}", self.grpc))
            .arg("--config")
            .arg(&self.config)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start sightline (cargo build --release first)");
        peers::wait_ready(&format!("{}/-/ready", self.url()), &mut child);
        self.child = Some(child);
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").arg(sig).arg(c.id().to_string()).status();
        }
    }
}

/// One answer of dc1: latency, status, value, whether dc3 was named.
struct Answer {
    took: Duration,
    ok: bool,
    value: f64,
    warned: bool,
}

fn ask(c: &reqwest::blocking::Client, url: &str, query: &str) -> Answer {
    let started = Instant::now();
    let r = c
        .get(format!("{url}/api/v1/query"))
        .query(&[("query", query)])
        .timeout(Duration::from_secs(30))
        .send();
    let took = started.elapsed();
    let Ok(r) = r else {
        return Answer {
            took,
            ok: false,
            value: f64::NAN,
            warned: false,
        };
    };
    let ok = r.status().is_success();
    let body: Value = r.json().unwrap_or(Value::Null);
    let value = body["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let warned = body["warnings"].to_string().contains("dc3");
    Answer {
        took,
        ok,
        value,
        warned,
    }
}

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

/// Asks until an answer comes (any status): time from `since` to it.
fn first_answer(c: &reqwest::blocking::Client, url: &str, since: Instant) -> (Duration, Answer) {
    loop {
        let a = ask(c, url, "count(up)");
        if a.ok {
            return (since.elapsed(), a);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Median latency of `n` answers to both dashboard queries.
fn latency(c: &reqwest::blocking::Client, url: &str, n: usize) -> (f64, usize) {
    let mut took = Vec::new();
    let mut warned = 0;
    for i in 0..n {
        let q = if i % 2 == 0 {
            "count(up)"
        } else {
            "sum by (site) (rate(up[1m]))"
        };
        let a = ask(c, url, q);
        warned += usize::from(a.warned);
        took.push(a.took);
    }
    (median_ms(took), warned)
}

/// Time until dc1 answers 180 nodes with no warning.
fn until_complete(c: &reqwest::blocking::Client, url: &str, since: Instant) -> Duration {
    loop {
        let a = ask(c, url, "count(up)");
        if a.ok && a.value == 180.0 && !a.warned {
            return since.elapsed();
        }
        assert!(since.elapsed() < Duration::from_secs(60), "dc1 never complete again");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    sightline_alerting::tls::install_provider();
    let work = tempfile::tempdir().expect("tmp");
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (peers::free_port(), peers::free_port())).collect();
    let mut sites: Vec<Site> = (0..3)
        .map(|i| {
            let peers: String = (0..3)
                .filter(|j| *j != i)
                .map(|j| {
                    format!(
                        "    - {{name: {}, url: \"http://127.0.0.1:{}\"}}\n",
                        SITES[j], ports[j].0
                    )
                })
                .collect();
            let config = work.path().join(format!("{}.yml", SITES[i]));
            std::fs::write(
                &config,
                format!("site:\n  name: {}\n  peer_timeout: 1s\n  peers:\n{peers}", SITES[i]),
            )
            .expect("config");
            Site {
                name: SITES[i],
                port: ports[i].0,
                grpc: ports[i].1,
                config,
                data: work.path().join(SITES[i]),
                child: None,
            }
        })
        .collect();
    for s in &mut sites {
        s.start(work.path());
    }
    let c = reqwest::blocking::Client::new();
    // Two minutes of `up` per node, each site holding its own nodes (the
    // fleet's three sites renamed dc1..dc3).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for t in (0..120).map(|k| now - 120_000 + k * 1000) {
        for (i, series) in fleet::up_series(&Default::default(), t).chunks(60).enumerate() {
            let mut series = series.to_vec();
            for ts in &mut series {
                for l in &mut ts.labels {
                    if l.name == "site" {
                        l.value = SITES[i].to_string();
                    }
                }
            }
            let raw = sightline_ingest::remote_write::proto::WriteRequest {
                timeseries: series,
                metadata: vec![],
            }
            .encode_to_vec();
            let body = snap::raw::Encoder::new().compress_vec(&raw).expect("snappy");
            remote_write::post_write(&c, &format!("{}/api/v1/write", sites[i].url()), &body).expect("write");
        }
    }
    let dc1 = sites[0].url();
    assert_eq!(ask(&c, &dc1, "count(up)").value, 180.0, "dc1 does not see the fleet");
    let (healthy, _) = latency(&c, &dc1, 40);

    // Crash.
    let lost = Instant::now();
    sites[2].signal("-KILL");
    if let Some(mut ch) = sites[2].child.take() {
        let _ = ch.wait();
    }
    let (crash_first, a) = first_answer(&c, &dc1, lost);
    let crash_first_warned = a.warned && a.value == 120.0;
    let (crash_lat, crash_warned) = latency(&c, &dc1, 40);
    let back = Instant::now();
    sites[2].start(work.path());
    let restart_ready = back.elapsed();
    let crash_complete = until_complete(&c, &dc1, back);

    // Hang.
    let lost = Instant::now();
    sites[2].signal("-STOP");
    let (hang_first, a) = first_answer(&c, &dc1, lost);
    let hang_first_warned = a.warned && a.value == 120.0;
    let (hang_lat, hang_warned) = latency(&c, &dc1, 40);
    let back = Instant::now();
    sites[2].signal("-CONT");
    let hang_complete = until_complete(&c, &dc1, back);

    for s in &mut sites {
        if let Some(mut ch) = s.child.take() {
            peers::terminate(&mut ch);
        }
    }
    println!("machine: {}", peers::machine());
    println!("3 sites x 60 nodes, peer_timeout 1s; dc1 asked count(up) and sum by (site) (rate(up[1m]))\n");
    println!(
        "| loss of dc3 | first answer from dc1 after the loss | that answer: 120 nodes + warning naming dc3 | median latency before | median latency during (warned / asked) | dc1 complete again after dc3's return |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| crash (kill -9) | {:.1} ms | {} | {healthy:.1} ms | {crash_lat:.1} ms ({crash_warned}/40) | {:.2} s (dc3 ready after {:.2} s) |",
        crash_first.as_secs_f64() * 1000.0,
        crash_first_warned,
        crash_complete.as_secs_f64(),
        restart_ready.as_secs_f64()
    );
    println!(
        "| hang (SIGSTOP) | {:.1} ms | {} | {healthy:.1} ms | {hang_lat:.1} ms ({hang_warned}/40) | {:.2} s |",
        hang_first.as_secs_f64() * 1000.0,
        hang_first_warned,
        hang_complete.as_secs_f64()
    );
}
