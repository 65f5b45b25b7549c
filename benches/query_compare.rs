//! Query benchmark: the same dashboard-shaped data set (counters by
//! job/instance/method/code, CPU seconds, memory gauges, `up`, a latency
//! histogram) is remote-written into Sightline, VictoriaMetrics and
//! Prometheus, then the same dashboard-like range and instant queries run
//! against each, one system at a time.
//!
//! Reported per system and query: median latency of REPEAT runs (after one
//! warm-up), and the peak RSS while the heaviest query ran (VmHWM reset
//! through /proc/PID/clear_refs before it).
//!
//! Run: `benches/query_compare.sh`, or `cargo bench --bench query_compare`
//! with the peers on PATH. Knobs: INSTANCES (40 per job, 3 jobs), HOURS
//! (24), REPEAT (5), TARGETS.

#[path = "support/peers.rs"]
mod peers;
#[path = "support/query_data.rs"]
mod query_data;
#[path = "support/remote_write.rs"]
mod remote_write;
#[path = "support/rng.rs"]
mod rng;

use std::io::Write;
use std::time::{Duration, Instant};

use peers::{Target, machine, proc_stat, start, terminate};
use prost::Message;
use query_data::{GenSeries, Shape, generate};
use remote_write::{post_write, proto_labels};
use sightline_ingest::remote_write::proto;

const INTERVAL: i64 = 15_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Snappy-compressed remote-write requests, time-major, ≤ 2000 samples,
/// for the series with `index % shards == shard` (like one remote-write
/// shard of Prometheus, so each series' samples arrive in order).
fn requests(set: &[GenSeries], points: usize, shard: usize, shards: usize) -> Vec<Vec<u8>> {
    let labels: Vec<Vec<proto::Label>> = set.iter().map(|s| proto_labels(&s.labels)).collect();
    let start = set
        .iter()
        .filter_map(|s| s.samples.first().map(|x| x.0))
        .min()
        .unwrap_or(0);
    let mut cursor = vec![0usize; set.len()];
    let mut out = Vec::new();
    let mut enc = snap::raw::Encoder::new();
    let mut pending: Vec<proto::TimeSeries> = Vec::new();
    let mut count = 0;
    let steps_per_request = (2000 / set.len().max(1)).max(1);
    for step in 0..points {
        let t_hi = start + step as i64 * INTERVAL;
        if step % steps_per_request != steps_per_request - 1 && step != points - 1 {
            continue;
        }
        for (i, s) in set.iter().enumerate() {
            if i % shards != shard {
                continue;
            }
            let from = cursor[i];
            let mut to = from;
            while to < s.samples.len() && s.samples[to].0 <= t_hi {
                to += 1;
            }
            if to == from {
                continue;
            }
            cursor[i] = to;
            count += to - from;
            pending.push(proto::TimeSeries {
                labels: labels[i].clone(),
                samples: s.samples[from..to]
                    .iter()
                    .map(|(t, v)| proto::Sample {
                        value: *v,
                        timestamp: *t,
                        start_timestamp: 0,
                    })
                    .collect(),
                exemplars: vec![],
                histograms: vec![],
            });
            if count >= 2000 {
                let raw = proto::WriteRequest {
                    timeseries: std::mem::take(&mut pending),
                    metadata: vec![],
                }
                .encode_to_vec();
                out.push(enc.compress_vec(&raw).expect("snappy"));
                count = 0;
            }
        }
    }
    if !pending.is_empty() {
        let raw = proto::WriteRequest {
            timeseries: pending,
            metadata: vec![],
        }
        .encode_to_vec();
        out.push(enc.compress_vec(&raw).expect("snappy"));
    }
    out
}

fn load(t: &Target, shards: &[Vec<Vec<u8>>]) {
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    // One writer per shard of series.
    std::thread::scope(|s| {
        for reqs in shards {
            let c = c.clone();
            let url = format!("{}/api/v1/write", t.url);
            s.spawn(move || {
                for body in reqs {
                    post_write(&c, &url, body).unwrap_or_else(|e| panic!("{}: write failed: {e}", t.name));
                }
            });
        }
    });
}

/// A dashboard query: instant (`step` 0) or range.
struct Query {
    name: &'static str,
    expr: &'static str,
    range_ms: i64,
    step_ms: i64,
}

fn dashboard() -> Vec<Query> {
    let h = 3_600_000;
    vec![
        Query {
            name: "req rate by job, 24h",
            expr: "sum by (job) (rate(http_requests_total[5m]))",
            range_ms: 24 * h,
            step_ms: 60_000,
        },
        Query {
            name: "req rate by job+code, 6h",
            expr: "sum by (job, code) (rate(http_requests_total[5m]))",
            range_ms: 6 * h,
            step_ms: 30_000,
        },
        Query {
            name: "p99 latency by job, 24h",
            expr: "histogram_quantile(0.99, sum by (le, job) (rate(request_duration_seconds_bucket[5m])))",
            range_ms: 24 * h,
            step_ms: 300_000,
        },
        Query {
            name: "cpu busy by instance, 6h",
            expr: "1 - avg by (instance) (rate(node_cpu_seconds_total{mode=\"idle\"}[5m]))",
            range_ms: 6 * h,
            step_ms: 60_000,
        },
        Query {
            name: "error ratio, 24h",
            expr: "sum(rate(http_requests_total{code=\"500\"}[5m])) / sum(rate(http_requests_total[5m]))",
            range_ms: 24 * h,
            step_ms: 120_000,
        },
        Query {
            name: "targets up, 24h",
            expr: "count(up == 1)",
            range_ms: 24 * h,
            step_ms: 300_000,
        },
        Query {
            name: "one series, 1h",
            expr: "rate(http_requests_total{job=\"api\",code=\"500\",method=\"GET\",instance=\"10.0.0.1:9100\"}[5m])",
            range_ms: h,
            step_ms: 15_000,
        },
        Query {
            name: "mem p90 10m, 1h",
            expr: "quantile_over_time(0.9, memory_usage_bytes[10m])",
            range_ms: h,
            step_ms: 60_000,
        },
        Query {
            name: "top 5 memory (instant)",
            expr: "topk(5, memory_usage_bytes)",
            range_ms: 0,
            step_ms: 0,
        },
        Query {
            name: "max mem 1h (instant)",
            expr: "max_over_time(memory_usage_bytes[1h])",
            range_ms: 0,
            step_ms: 0,
        },
        Query {
            name: "requests last 24h (instant)",
            expr: "sum by (job) (increase(http_requests_total[24h]))",
            range_ms: 0,
            step_ms: 0,
        },
        Query {
            name: "stat: avg latency (instant)",
            expr: "sum(rate(request_duration_seconds_sum[5m])) / sum(rate(request_duration_seconds_count[5m]))",
            range_ms: 0,
            step_ms: 0,
        },
    ]
}

/// The heaviest query (the first of the list), whose peak memory is
/// compared.
const HEAVIEST: usize = 0;

fn run_query(c: &reqwest::blocking::Client, t: &Target, q: &Query, end: i64) -> (Duration, usize) {
    let secs = |ms: i64| format!("{}.{:03}", ms / 1000, ms % 1000);
    let started = Instant::now();
    let r = if q.range_ms == 0 {
        c.post(format!("{}/api/v1/query", t.url))
            .form(&[("query", q.expr.to_string()), ("time", secs(end))])
            .send()
    } else {
        c.post(format!("{}/api/v1/query_range", t.url))
            .form(&[
                ("query", q.expr.to_string()),
                ("start", secs(end - q.range_ms)),
                ("end", secs(end)),
                ("step", format!("{}", q.step_ms / 1000)),
            ])
            .send()
    };
    let body = match r {
        Ok(r) if r.status().is_success() => r.text().unwrap_or_default(),
        Ok(r) => panic!("{} {}: {} {}", t.name, q.name, r.status(), r.text().unwrap_or_default()),
        Err(e) => panic!("{} {}: {e}", t.name, q.name),
    };
    let elapsed = started.elapsed();
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let n = v["data"]["result"].as_array().map(Vec::len).unwrap_or(0);
    (elapsed, n)
}

fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

fn rss_now(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

struct Outcome {
    name: &'static str,
    medians: Vec<Duration>,
    series: Vec<usize>,
    heavy_peak: u64,
    heavy_base: u64,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    sightline_alerting::tls::install_provider();
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let instances = env_usize("INSTANCES", 40);
    let hours = env_usize("HOURS", 24);
    let repeat = env_usize("REPEAT", 5).max(1);
    let targets = std::env::var("TARGETS").unwrap_or_else(|_| "sightline,victoria-metrics,prometheus".into());
    let points = hours * 240;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let end = (now - 300_000) / INTERVAL * INTERVAL;
    let start_t = end - (points as i64 - 1) * INTERVAL;
    eprintln!("generating {instances} instances x 3 jobs, {hours} h at 15 s ...");
    let set = generate(
        Shape {
            instances,
            start: start_t,
            points,
            interval: INTERVAL,
        },
        7,
    );
    let samples: usize = set.iter().map(|s| s.samples.len()).sum();
    let series_count = set.len();
    // One writer: in a 24 h backfill, parallel writers drift apart by more
    // than the 1 h out-of-order window all three systems enforce.
    let reqs: Vec<Vec<Vec<u8>>> = vec![requests(&set, points, 0, 1)];
    drop(set);
    eprintln!(
        "{series_count} series, {samples} samples in {} requests",
        reqs.iter().map(Vec::len).sum::<usize>()
    );
    // ONLY=<text> keeps the queries whose name contains it (profiling).
    let only = std::env::var("ONLY").ok();
    let queries: Vec<Query> = dashboard()
        .into_iter()
        .filter(|q| only.as_ref().is_none_or(|o| q.name.contains(o.as_str())))
        .collect();
    let work = tempfile::tempdir().expect("tmp");
    let mut outcomes = Vec::new();
    for name in targets.split(',') {
        let name: &'static str = match name.trim() {
            "sightline" => "sightline",
            "victoria-metrics" => "victoria-metrics",
            "prometheus" => "prometheus",
            other => panic!("unknown target {other}"),
        };
        // VictoriaMetrics caches query results; each run must compute.
        let extra: Vec<String> = match name {
            "victoria-metrics" => vec!["-search.disableCache".into(), "-search.latencyOffset=0s".into()],
            _ => vec![],
        };
        let mut t = start(name, work.path(), &extra);
        eprintln!("{name}: loading ...");
        let t0 = Instant::now();
        load(&t, &reqs);
        if name == "victoria-metrics" {
            let _ = reqwest::blocking::get(format!("{}/internal/force_flush", t.url));
        }
        eprintln!("{name}: loaded in {:.1}s; settling", t0.elapsed().as_secs_f64());
        std::thread::sleep(Duration::from_secs(15));
        // HOLD_SECS=<n> pauses here with the system loaded (for inspection).
        if let Some(secs) = std::env::var("HOLD_SECS").ok().and_then(|v| v.parse::<u64>().ok()) {
            eprintln!("{name}: holding {secs}s at {} (pid {})", t.url, t.child.id());
            std::thread::sleep(Duration::from_secs(secs));
        }
        let c = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .expect("client");
        let pid = t.child.id();
        let mut medians = Vec::new();
        let mut series = Vec::new();
        let mut heavy_peak = 0;
        let mut heavy_base = 0;
        for (qi, q) in queries.iter().enumerate() {
            let (_, n) = run_query(&c, &t, q, end);
            if name == "sightline" && qi == 0 {
                // How the data sits: blocks and head, for the notes.
                let m = c
                    .get(format!("{}/metrics", t.url))
                    .send()
                    .and_then(|r| r.text())
                    .unwrap_or_default();
                for l in m.lines().filter(|l| {
                    l.starts_with("sightline_storage_blocks")
                        || l.starts_with("sightline_storage_head_s")
                        || l.starts_with("sightline_storage_compactions")
                }) {
                    eprintln!("{name}: {l}");
                }
            }
            let mut times = Vec::new();
            for _ in 0..repeat {
                if qi == HEAVIEST {
                    heavy_base = heavy_base.max(rss_now(pid));
                    reset_peak(pid);
                }
                times.push(run_query(&c, &t, q, end).0);
                if qi == HEAVIEST {
                    heavy_peak = heavy_peak.max(proc_stat(pid).1);
                }
            }
            let m = median(times);
            eprintln!("{name}: {:<32} {:>8.1} ms  ({n} series)", q.name, m.as_secs_f64() * 1e3);
            medians.push(m);
            series.push(n);
        }
        terminate(&mut t.child);
        outcomes.push(Outcome {
            name,
            medians,
            series,
            heavy_peak,
            heavy_base,
        });
    }
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "\nMachine: {}. Data: {series_count} series, {samples} samples ({hours} h at 15 s). Median of {repeat} runs after one warm-up; one system at a time.\n",
        machine(),
    );
    let names: Vec<&str> = outcomes.iter().map(|o| o.name).collect();
    let _ = writeln!(out, "| query | result series | {} |", names.join(" ms | ") + " ms");
    let _ = writeln!(out, "|---|---|{}", "---|".repeat(names.len()));
    for (qi, q) in queries.iter().enumerate() {
        let cells: Vec<String> = outcomes
            .iter()
            .map(|o| format!("{:.1}", o.medians[qi].as_secs_f64() * 1e3))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            q.name,
            outcomes[0].series[qi],
            cells.join(" | ")
        );
    }
    let overall = |o: &Outcome| median(o.medians.clone()).as_secs_f64() * 1e3;
    let find = |n: &str| outcomes.iter().find(|o| o.name == n);
    let _ = writeln!(
        out,
        "\n| system | median of query medians ms | vs Prometheus | vs VictoriaMetrics | heaviest query peak RSS MB (RSS before) | peak vs Prometheus |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for o in &outcomes {
        let ratio = |other: Option<&Outcome>| other.map_or("-".into(), |p| format!("{:.2}x", overall(o) / overall(p)));
        let peak_ratio = find("prometheus").map_or("-".into(), |p| {
            format!("{:.2}x", o.heavy_peak as f64 / p.heavy_peak as f64)
        });
        let _ = writeln!(
            out,
            "| {} | {:.1} | {} | {} | {:.0} ({:.0}) | {} |",
            o.name,
            overall(o),
            ratio(find("prometheus")),
            ratio(find("victoria-metrics")),
            o.heavy_peak as f64 / 1e6,
            o.heavy_base as f64 / 1e6,
            peak_ratio
        );
    }
}
