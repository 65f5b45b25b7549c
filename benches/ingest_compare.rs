//! Remote-write ingest benchmark: the same node_exporter-like data set is
//! written into Sightline, VictoriaMetrics and Prometheus in one run, and
//! each is measured for samples/s, CPU seconds per million samples, peak
//! RSS and bytes per sample on disk once flushed.
//!
//! Run: `benches/ingest_compare.sh` (installs the peers from Debian), or
//! `cargo bench --bench ingest_compare` with the peers on PATH.
//! Knobs (environment): HOSTS (100), HOURS (2), CONCURRENCY (4),
//! TARGETS (sightline,victoria-metrics,prometheus), SIGHTLINE_CONFIG,
//! KEEP_DATA (set: keep the data directories), SIGHTLINE_WRAPPER (a
//! command to run the server under, e.g. `heaptrack`).

#[path = "support/node_data.rs"]
mod node_data;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/remote_write.rs"]
mod remote_write;
#[path = "support/rng.rs"]
mod rng;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use peers::{Target, du, machine, proc_stat, start, terminate};
use prost::Message;
use remote_write::{post_write, proto_labels};
use sightline_ingest::remote_write::proto;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct DataSet {
    requests: Vec<Vec<u8>>,
    requests_per_step: usize,
    samples: u64,
    series: usize,
    raw_bytes: u64,
}

fn build_data_set(hosts: usize, hours: usize) -> DataSet {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/metrics/node_exporter.prom");
    let text = std::fs::read_to_string(&shared).unwrap_or_else(|e| panic!("read {}: {e}", shared.display()));
    let templates = node_data::load_templates(&text);
    let mut fleet = node_data::Fleet::new(&templates, hosts, 42);
    let steps = hours * 240;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let start = (now - (hours as i64) * 3_600_000 - 60_000) / 15_000 * 15_000;
    let mut jitter = node_data::Rng::new(7);
    let label_protos: Vec<Vec<proto::Label>> = fleet.series.iter().map(|s| proto_labels(&s.labels)).collect();
    let mut requests = Vec::new();
    let mut samples = 0u64;
    let mut raw_bytes = 0u64;
    let mut encoder = snap::raw::Encoder::new();
    for step in 0..steps {
        let values = fleet.step();
        let base = start + step as i64 * 15_000;
        for chunk in (0..values.len()).collect::<Vec<_>>().chunks(2000) {
            let timeseries = chunk
                .iter()
                .map(|&i| proto::TimeSeries {
                    labels: label_protos[i].clone(),
                    samples: vec![proto::Sample {
                        value: values[i],
                        timestamp: base + fleet.offsets[i] + jitter.below(3) as i64,
                        start_timestamp: 0,
                    }],
                    exemplars: vec![],
                    histograms: vec![],
                })
                .collect();
            let raw = proto::WriteRequest {
                timeseries,
                metadata: vec![],
            }
            .encode_to_vec();
            raw_bytes += raw.len() as u64;
            requests.push(encoder.compress_vec(&raw).expect("snappy"));
            samples += chunk.len() as u64;
        }
    }
    DataSet {
        requests_per_step: fleet.series.len().div_ceil(2000),
        requests,
        samples,
        series: fleet.series.len(),
        raw_bytes,
    }
}

struct Result_ {
    name: &'static str,
    samples_per_sec: f64,
    cpu_per_million: f64,
    peak_rss: u64,
    bytes_per_sample: f64,
    disk_bytes: u64,
    errors: u64,
}

fn send_all(t: &Target, data: &DataSet, concurrency: usize) -> (Duration, u64) {
    // Like Prometheus' remote-write shards, each writer owns a fixed subset
    // of the series (every request position modulo the writer count), so
    // each series' samples arrive in order.
    let per_step = data.requests_per_step;
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..concurrency {
            let errors = errors.clone();
            let url = format!("{}/api/v1/write", t.url);
            s.spawn(move || {
                let c = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(120))
                    .build()
                    .expect("client");
                let mine = (0..data.requests.len()).filter(|i| (i % per_step) % concurrency == w);
                for i in mine {
                    let body = &data.requests[i];
                    if let Err(e) = post_write(&c, &url, body)
                        && errors.fetch_add(1, Ordering::Relaxed) < 3
                    {
                        eprintln!("{}: {e}", t.name);
                    }
                }
            });
        }
    });
    (started.elapsed(), errors.load(Ordering::Relaxed))
}

fn run(name: &'static str, work: &Path, data: &DataSet, concurrency: usize) -> Result_ {
    let mut t = start(name, work, &[]);
    let pid = t.child.id();
    let (cpu0, _) = proc_stat(pid);
    let (elapsed, errors) = send_all(&t, data, concurrency);
    let (cpu1, peak_rss) = proc_stat(pid);
    if name == "victoria-metrics" {
        let _ = reqwest::blocking::get(format!("{}/internal/force_flush", t.url));
    }
    // Let background merges/compactions settle as they would in service.
    std::thread::sleep(Duration::from_secs(10));
    let (_, peak_rss2) = proc_stat(pid);
    terminate(&mut t.child);
    let disk = du(&t.data_dir);
    Result_ {
        name,
        samples_per_sec: data.samples as f64 / elapsed.as_secs_f64(),
        cpu_per_million: (cpu1 - cpu0) / (data.samples as f64 / 1e6),
        peak_rss: peak_rss.max(peak_rss2),
        bytes_per_sample: disk as f64 / data.samples as f64,
        disk_bytes: disk,
        errors,
    }
}

fn main() {
    sightline_alerting::tls::install_provider();
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` probes bench targets; nothing to do.
    }
    let hosts = env_usize("HOSTS", 100);
    let hours = env_usize("HOURS", 2);
    let concurrency = env_usize("CONCURRENCY", 4);
    let targets = std::env::var("TARGETS").unwrap_or_else(|_| "sightline,victoria-metrics,prometheus".into());
    eprintln!("building data set: {hosts} hosts, {hours} h at 15 s ...");
    let data = build_data_set(hosts, hours);
    eprintln!(
        "{} series, {} samples, {} requests, {:.1} MB protobuf ({:.1} MB snappy)",
        data.series,
        data.samples,
        data.requests.len(),
        data.raw_bytes as f64 / 1e6,
        data.requests.iter().map(|r| r.len()).sum::<usize>() as f64 / 1e6
    );
    // KEEP_DATA=1 keeps every system's data directory, to inspect the
    // stored files afterwards.
    let keep = std::env::var_os("KEEP_DATA").is_some();
    let work = tempfile::Builder::new()
        .prefix("ingest-bench")
        .disable_cleanup(keep)
        .tempdir()
        .expect("tmp");
    if keep {
        eprintln!("keeping data in {}", work.path().display());
    }
    let mut results = Vec::new();
    for name in targets.split(',') {
        let name: &'static str = match name.trim() {
            "sightline" => "sightline",
            "victoria-metrics" => "victoria-metrics",
            "prometheus" => "prometheus",
            other => panic!("unknown target {other}"),
        };
        eprintln!("running {name} ...");
        let r = run(name, work.path(), &data, concurrency);
        eprintln!(
            "{name}: {:.0} samples/s, {:.2} CPU s per M samples, peak RSS {:.0} MB, {:.3} bytes/sample, {} errors",
            r.samples_per_sec,
            r.cpu_per_million,
            r.peak_rss as f64 / 1e6,
            r.bytes_per_sample,
            r.errors
        );
        results.push(r);
    }
    let vm = results.iter().find(|r| r.name == "victoria-metrics");
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "\nMachine: {}. Data: {} series ({hosts} hosts), {} samples over {hours} h at 15 s, {} requests of 2000 samples, {concurrency} concurrent writers.\n",
        machine(),
        data.series,
        data.samples,
        data.requests.len()
    );
    let _ = writeln!(
        out,
        "| system | samples/s | CPU s / M samples | peak RSS MB | bytes/sample on disk | disk MB | errors | ingest vs VM | bytes vs VM | RSS vs VM |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for r in &results {
        let ratio = |a: f64, b: Option<f64>| b.map_or("-".to_string(), |b| format!("{:.2}x", a / b));
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.2} | {:.0} | {:.3} | {:.1} | {} | {} | {} | {} |",
            r.name,
            r.samples_per_sec,
            r.cpu_per_million,
            r.peak_rss as f64 / 1e6,
            r.bytes_per_sample,
            r.disk_bytes as f64 / 1e6,
            r.errors,
            ratio(r.samples_per_sec, vm.map(|v| v.samples_per_sec)),
            ratio(r.bytes_per_sample, vm.map(|v| v.bytes_per_sample)),
            ratio(r.peak_rss as f64, vm.map(|v| v.peak_rss as f64)),
        );
    }
}
