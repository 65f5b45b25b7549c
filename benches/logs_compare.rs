//! Logs benchmark: a generated, realistic corpus (loghub templates
//! refilled, access logs, JSON application logs; 800 hosts, 3 sites) is
//! pushed into Sightline over the Loki push API, then searched. Reported
//! in one run: ingest MB/s and CPU seconds per GB, bytes on disk (data +
//! index) against `zstd -3` of the raw text, and the median latency of a
//! rare-token search, a phrase search, a common-token count and a
//! `sum by (level) (count_over_time(...[5m]))` over everything, against
//! `rg -c` on the raw file (warm cache). Every answer is checked against
//! `rg -c`'s count.
//!
//! Run: `benches/logs_compare.sh`. Knobs (environment): LOG_MB (1024),
//! HOSTS (800), HOURS (24), CONCURRENCY (4), REPEAT (5), SIGHTLINE_CONFIG.

#[path = "support/log_data.rs"]
mod log_data;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/rng.rs"]
mod rng;

use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use peers::{du, machine, proc_stat, start, terminate};
use prost::Message;
use serde_json::Value;
use sightline_ingest::loki::proto;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Push requests of about 1 MiB of lines each, per writer, in time order.
fn build_requests(streams: &[log_data::GenStream], writers: usize) -> Vec<Vec<Vec<u8>>> {
    let mut out = vec![Vec::new(); writers];
    let mut encoder = snap::raw::Encoder::new();
    for (w, reqs) in out.iter_mut().enumerate() {
        let mut order: Vec<(i64, usize, usize)> = Vec::new();
        for (si, s) in streams.iter().enumerate().filter(|(i, _)| i % writers == w) {
            for (ei, e) in s.entries.iter().enumerate() {
                order.push((e.0, si, ei));
            }
        }
        order.sort_unstable();
        let label_text: Vec<String> = streams
            .iter()
            .map(|s| {
                let parts: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                format!("{{{}}}", parts.join(", "))
            })
            .collect();
        let mut cur: std::collections::BTreeMap<usize, Vec<proto::EntryAdapter>> = Default::default();
        let mut bytes = 0usize;
        let mut flush = |cur: &mut std::collections::BTreeMap<usize, Vec<proto::EntryAdapter>>,
                         reqs: &mut Vec<Vec<u8>>| {
            let req = proto::PushRequest {
                streams: std::mem::take(cur)
                    .into_iter()
                    .map(|(si, entries)| proto::StreamAdapter {
                        labels: label_text[si].clone(),
                        entries,
                        hash: 0,
                    })
                    .collect(),
            };
            reqs.push(encoder.compress_vec(&req.encode_to_vec()).expect("snappy"));
        };
        for (_, si, ei) in order {
            let (ts, line, level) = &streams[si].entries[ei];
            bytes += line.len();
            cur.entry(si).or_default().push(proto::EntryAdapter {
                timestamp: Some(proto::Timestamp {
                    seconds: ts / 1_000_000_000,
                    nanos: (ts % 1_000_000_000) as i32,
                }),
                line: line.clone(),
                structured_metadata: vec![proto::LabelPairAdapter {
                    name: "level".into(),
                    value: (*level).into(),
                }],
            });
            if bytes >= 1 << 20 {
                flush(&mut cur, reqs);
                bytes = 0;
            }
        }
        if !cur.is_empty() {
            flush(&mut cur, reqs);
        }
    }
    out
}

/// Sends every request (retrying 429/503 as a shipper does); the wall
/// time, the number of requests that failed, and how many times one was
/// asked to retry (the tenant's rate limit, or the server's backpressure:
/// its blocks written slower than lines came).
fn push_all(url: &str, requests: &[Vec<Vec<u8>>]) -> (Duration, usize, usize) {
    let started = Instant::now();
    let errors = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for reqs in requests {
            let (errors, retries) = (errors.clone(), retries.clone());
            scope.spawn(move || {
                let c = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(300))
                    .build()
                    .expect("client");
                for body in reqs {
                    loop {
                        let r = c
                            .post(format!("{url}/loki/api/v1/push"))
                            .header("Content-Type", "application/x-protobuf")
                            .body(body.clone())
                            .send();
                        match r {
                            Ok(r) if r.status().is_success() => break,
                            Ok(r) if r.status().as_u16() == 429 || r.status().as_u16() == 503 => {
                                retries.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(100));
                            }
                            Ok(r) => {
                                eprintln!("push failed: {} {}", r.status(), r.text().unwrap_or_default());
                                errors.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Err(e) => {
                                eprintln!("push failed: {e}");
                                errors.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    (
        started.elapsed(),
        errors.load(Ordering::Relaxed),
        retries.load(Ordering::Relaxed),
    )
}

/// Asks Sightline over one kept-alive connection, as Grafana's data
/// source does (a new connection per query added its setup to every
/// millisecond-scale search).
fn query(url: &str, path: &str, params: &[(&str, String)]) -> (Duration, Value) {
    static CLIENT: std::sync::OnceLock<reqwest::blocking::Client> = std::sync::OnceLock::new();
    let c = CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .expect("client")
    });
    let t = Instant::now();
    let r = c.get(format!("{url}{path}")).query(params).send().expect("query");
    let status = r.status();
    let text = r.text().unwrap_or_default();
    let took = t.elapsed();
    assert!(status.is_success(), "{params:?}: {status} {text}");
    (took, serde_json::from_str(&text).expect("json"))
}

fn rg_count(needle: &str, file: &std::path::Path) -> (Duration, u64) {
    let t = Instant::now();
    let out = Command::new("rg")
        .args(["-c", "-F", "--", needle])
        .arg(file)
        .output()
        .expect("rg (apt-get install ripgrep)");
    let took = t.elapsed();
    let n = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    (took, n)
}

fn lines_returned(v: &Value) -> u64 {
    v["data"]["result"].as_array().map_or(0, |a| {
        a.iter()
            .map(|s| s["values"].as_array().map_or(0, |x| x.len() as u64))
            .sum()
    })
}

/// `sightline_logs_compactions_total` of the server at `url`: block
/// merges since it started.
fn merges_done(url: &str) -> u64 {
    let text = reqwest::blocking::get(format!("{url}/metrics"))
        .and_then(|r| r.text())
        .unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("sightline_logs_compactions_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Stops the server when the benchmark ends, also by a panic.
struct Stop(std::process::Child);

impl Drop for Stop {
    fn drop(&mut self) {
        terminate(&mut self.0);
    }
}

fn main() {
    sightline_alerting::tls::install_provider();
    let mb = env_u64("LOG_MB", 1024);
    let hosts = env_u64("HOSTS", 800) as usize;
    let hours = env_u64("HOURS", 24);
    let writers = env_u64("CONCURRENCY", 4) as usize;
    let repeat = env_u64("REPEAT", 5) as usize;
    // KEEP_DATA=1 keeps the corpus and Sightline's data, to profile
    // queries on them afterwards.
    let keep = std::env::var_os("KEEP_DATA").is_some();
    let work = tempfile::Builder::new()
        .prefix("logs-bench")
        .disable_cleanup(keep)
        .tempdir()
        .expect("tmp");
    if keep {
        eprintln!("keeping the corpus and data in {}", work.path().display());
    }
    let t = Instant::now();
    let mut streams = log_data::generate(mb << 20, hosts, hours, 42);
    // The needle of the rare-token search: one message id, copied into two
    // other lines of other streams (a message traced across services).
    let mut rng = rng::Rng::new(99);
    let json_streams: Vec<usize> = (0..streams.len())
        .filter(|i| streams[*i].labels[0].1 == "mail-api")
        .collect();
    let js = json_streams[rng.below(json_streams.len() as u64) as usize];
    let je = rng.below(streams[js].entries.len() as u64) as usize;
    let line = streams[js].entries[je].1.clone();
    let id = line
        .split("\"msgid\":\"")
        .nth(1)
        .and_then(|r| r.get(..16))
        .expect("msgid")
        .to_string();
    for _ in 0..2 {
        let si = rng.below(streams.len() as u64) as usize;
        let ei = rng.below(streams[si].entries.len() as u64) as usize;
        streams[si].entries[ei].1.push_str(&format!(" msgid={id}"));
    }
    // The phrase: the start of a random sshd line's message.
    let sshd: Vec<usize> = (0..streams.len())
        .filter(|i| streams[*i].labels[0].1 == "sshd")
        .collect();
    let ss = sshd[rng.below(sshd.len() as u64) as usize];
    let sline = &streams[ss].entries[rng.below(streams[ss].entries.len() as u64) as usize].1;
    let msg = sline.split_once("]: ").map_or(sline.as_str(), |x| x.1);
    let phrase: String = msg.split(' ').take(6).collect::<Vec<_>>().join(" ");
    let raw_path = work.path().join("raw.log");
    let mut raw_bytes = 0u64;
    let mut lines = 0u64;
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&raw_path).expect("raw"));
        for s in &streams {
            for e in &s.entries {
                f.write_all(e.1.as_bytes()).expect("write");
                f.write_all(b"\n").expect("write");
                raw_bytes += e.1.len() as u64 + 1;
                lines += 1;
            }
        }
    }
    let (min_t, max_t) = streams
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| e.0))
        .fold((i64::MAX, i64::MIN), |a, t| (a.0.min(t), a.1.max(t)));
    let requests = build_requests(&streams, writers);
    let n_requests: usize = requests.iter().map(Vec::len).sum();
    drop(streams);
    eprintln!(
        "corpus: {lines} lines, {:.1} MiB, {n_requests} requests, built in {:.1}s; rare id {id}, phrase {phrase:?}",
        raw_bytes as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );

    // zstd -3 of the raw text.
    let zt = Instant::now();
    let zst = work.path().join("raw.log.zst");
    let st = Command::new("zstd")
        .args(["-3", "-q", "-f", "-o"])
        .arg(&zst)
        .arg(&raw_path)
        .status()
        .expect("zstd (apt-get install zstd)");
    assert!(st.success());
    let zstd_bytes = std::fs::metadata(&zst).map(|m| m.len()).unwrap_or(0);
    eprintln!("zstd -3: {zstd_bytes} bytes in {:.1}s", zt.elapsed().as_secs_f64());
    std::fs::remove_file(&zst).ok();

    // The bench measures what one server ingests, so the per-tenant rate
    // limit (64 MiB/s by default, as Loki's `ingestion_rate_mb`; every
    // push here is one tenant's) is lifted, unless SIGHTLINE_CONFIG names
    // a config of its own. Until session 15 it was not: the ingest ran at
    // that limit, its 429s counted as backpressure.
    let bench_config: Vec<String> = if std::env::var_os("SIGHTLINE_CONFIG").is_some() {
        Vec::new()
    } else {
        let path = work.path().join("bench-config.yml");
        std::fs::write(&path, "logs:\n  ingestion_rate_bytes: 0\n").expect("bench config");
        vec!["--config".to_string(), path.display().to_string()]
    };
    let mut target = start("sightline", work.path(), &bench_config);
    let pid = target.child.id();
    let (cpu0, _) = proc_stat(pid);
    let (wall, failed, retries) = push_all(&target.url, &requests);
    let (cpu1, _) = proc_stat(pid);
    drop(requests);
    // Blocks merged while the pushes ran (a merge starts on a 30 s tick,
    // so a shorter ingest may see none): their CPU is inside the ingest
    // figure, the merges after the restart are counted apart below.
    let merges_during_ingest = merges_done(&target.url);
    // Then until everything is in blocks: SIGTERM writes the rest of the
    // head; CPU and RSS are sampled until the process exits.
    let flush_started = Instant::now();
    let last = Arc::new(std::sync::Mutex::new((cpu1, 0u64)));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (last, done) = (last.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                // A process that has exited (a zombie) still shows its CPU
                // time but no memory: keep the last reading with both.
                let (c, r) = proc_stat(pid);
                if c > 0.0
                    && r > 0
                    && let Ok(mut l) = last.lock()
                {
                    *l = (c, r);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    terminate(&mut target.child);
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let flush = flush_started.elapsed();
    let (cpu2, rss_ingest) = *last.lock().expect("sampler");
    assert_eq!(failed, 0, "every push must succeed");
    let ingest_mb_s = raw_bytes as f64 / 1048576.0 / wall.as_secs_f64();
    let durable_mb_s = raw_bytes as f64 / 1048576.0 / (wall + flush).as_secs_f64();
    let cpu_per_gb = (cpu2 - cpu0) / (raw_bytes as f64 / 1073741824.0);
    // The server's cores in use while the pushes ran (the client shares
    // the machine).
    let busy_cores = (cpu1 - cpu0) / wall.as_secs_f64();
    eprintln!(
        "ingest: {:.1}s acknowledged + {:.1}s final flush, {ingest_mb_s:.1} MB/s acknowledged, {durable_mb_s:.1} MB/s into blocks, {cpu_per_gb:.1} CPU s/GB, RSS {} MB; server busy {busy_cores:.2} cores during the pushes, {retries} pushes asked to retry",
        wall.as_secs_f64(),
        flush.as_secs_f64(),
        rss_ingest >> 20
    );
    let logs_dir = target.data_dir.join("logs");
    // INGEST_ONLY=1 stops here: a quicker loop while working on the
    // ingest path (no merges, disk or queries measured).
    if std::env::var_os("INGEST_ONLY").is_some() {
        return;
    }

    // Restart on the same data and query with a warm cache.
    let target = {
        let data_dir = target.data_dir.clone();
        let port = peers::free_port();
        let mut c = Command::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/sightline"));
        c.args(["serve", "--data-dir"])
            .arg(&data_dir)
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--grpc-listen")
            .arg(format!("127.0.0.1:{}", peers::free_port()));
        if let Ok(cfg) = std::env::var("SIGHTLINE_CONFIG") {
            c.arg("--config").arg(cfg);
        }
        c.args(&bench_config);
        let mut child = c
            .stderr(std::fs::File::create(work.path().join("sightline-2.log")).expect("log"))
            .spawn()
            .expect("restart");
        let url = format!("http://127.0.0.1:{port}");
        peers::wait_ready(&format!("{url}/-/ready"), &mut child);
        (child, url)
    };
    let (child, url) = target;
    let child = Stop(child);
    // The blocks written during ingest are merged in the background after
    // the restart (small blocks, 4 at a time, looked for every 30 s); a
    // week of logs being searched is long past that, so queries start
    // once the server has been idle (under 5 % of a core) for 32 s: a
    // whole compaction tick that found nothing to merge.
    let settle = Instant::now();
    let mut idle_for = 0;
    let mut cpu_before = proc_stat(child.0.id()).0;
    let cpu_restarted = cpu_before;
    while idle_for < 32 && settle.elapsed() < Duration::from_secs(900) {
        std::thread::sleep(Duration::from_secs(1));
        let cpu = proc_stat(child.0.id()).0;
        idle_for = if cpu - cpu_before < 0.05 { idle_for + 1 } else { 0 };
        cpu_before = cpu;
    }
    // The restart's CPU until then is the merges of the blocks the
    // ingest cut (opening the blocks costs a few ms): every byte is
    // merged once (a merged block is past the size that is merged
    // again), so ingest + merges is what a steady stream costs.
    let merge_cpu = proc_stat(child.0.id()).0 - cpu_restarted;
    let merges_after = merges_done(&url);
    let merge_cpu_per_gb = merge_cpu / (raw_bytes as f64 / 1073741824.0);
    eprintln!(
        "restarted; background merges settled after {:.1}s: {merges_after} merges, {merge_cpu:.1} CPU s ({merge_cpu_per_gb:.1} s/GB); {merges_during_ingest} merges during ingest",
        settle.elapsed().as_secs_f64()
    );
    // Disk once merged: what a day of logs costs at rest.
    let disk = du(&logs_dir.join("blocks")) + du(&logs_dir.join("wal"));
    let blocks_only = du(&logs_dir.join("blocks"));
    let index_bytes: u64 = std::fs::read_dir(logs_dir.join("blocks"))
        .map(|rd| rd.flatten().map(|e| du(&e.path().join("index"))).sum())
        .unwrap_or(0);
    let (start_ns, end_ns) = ((min_t - 1).to_string(), (max_t + 1).to_string());
    let range_h = (max_t - min_t) / 3_600_000_000_000 + 2;
    let log_q = |needle: &str| {
        vec![
            (
                "query",
                format!("{{site=~\"dc.+\"}} |= {}", serde_json::to_string(needle).expect("json")),
            ),
            ("start", start_ns.clone()),
            ("end", end_ns.clone()),
            ("limit", "5000".to_string()),
        ]
    };
    struct Row {
        name: &'static str,
        query: String,
        ours: f64,
        rg: f64,
        check: String,
    }
    let mut rows = Vec::new();
    for (name, needle) in [
        ("rare token (one message id)", id.clone()),
        ("phrase (6 words of an sshd line)", phrase.clone()),
    ] {
        let params = log_q(&needle);
        let (_, v) = query(&url, "/loki/api/v1/query_range", &params);
        let got = lines_returned(&v);
        // Searches take milliseconds: five times the runs, for a steadier
        // median.
        let times: Vec<f64> = (0..repeat * 5)
            .map(|_| query(&url, "/loki/api/v1/query_range", &params).0.as_secs_f64())
            .collect();
        let _ = rg_count(&needle, &raw_path);
        let rg_times: Vec<(f64, u64)> = (0..repeat * 5)
            .map(|_| {
                let (d, n) = rg_count(&needle, &raw_path);
                (d.as_secs_f64(), n)
            })
            .collect();
        let want = rg_times[0].1;
        assert_eq!(
            got,
            want.min(5000),
            "{name}: Sightline returned {got} lines, rg counts {want}"
        );
        rows.push(Row {
            name,
            query: params[0].1.clone(),
            ours: median(times),
            rg: median(rg_times.iter().map(|x| x.0).collect()),
            check: format!("{got} lines = rg -c"),
        });
    }
    let count_q = format!("sum(count_over_time({{site=~\"dc.+\"}} |= \"error\" [{range_h}h]))");
    let params = vec![("query", count_q.clone()), ("time", end_ns.clone())];
    let (_, v) = query(&url, "/loki/api/v1/query", &params);
    let got: u64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let times: Vec<f64> = (0..repeat)
        .map(|_| query(&url, "/loki/api/v1/query", &params).0.as_secs_f64())
        .collect();
    let rg_times: Vec<(f64, u64)> = (0..repeat)
        .map(|_| {
            let (d, n) = rg_count("error", &raw_path);
            (d.as_secs_f64(), n)
        })
        .collect();
    assert_eq!(
        got, rg_times[0].1,
        "common-token count: Sightline {got}, rg -c {}",
        rg_times[0].1
    );
    rows.push(Row {
        name: "common-token count (\"error\")",
        query: count_q,
        ours: median(times),
        rg: median(rg_times.iter().map(|x| x.0).collect()),
        check: format!("{got} = rg -c"),
    });
    let level_q = "sum by (level) (count_over_time({site=~\"dc.+\"}[5m]))".to_string();
    let params = vec![
        ("query", level_q.clone()),
        ("start", ((min_t / 1_000_000_000) + 300).to_string()),
        ("end", ((max_t / 1_000_000_000) + 1).to_string()),
        ("step", "300".to_string()),
    ];
    let (_, v) = query(&url, "/loki/api/v1/query_range", &params);
    let series = v["data"]["result"].as_array().map_or(0, Vec::len);
    let times: Vec<f64> = (0..repeat)
        .map(|_| query(&url, "/loki/api/v1/query_range", &params).0.as_secs_f64())
        .collect();
    rows.push(Row {
        name: "sum by (level) (count_over_time([5m])) over all",
        query: level_q,
        ours: median(times),
        rg: f64::NAN,
        check: format!("{series} series"),
    });
    let (_, rss_query) = proc_stat(child.0.id());
    drop(child);

    println!("\nMachine: {}", machine());
    println!(
        "Corpus: {lines} lines, {:.1} MiB raw, {hosts} hosts, {hours} h, {writers} writers, {n_requests} push requests (~1 MiB of lines each, protobuf + snappy)\n",
        raw_bytes as f64 / 1048576.0
    );
    println!(
        "| MB/s acknowledged | MB/s into blocks (incl. final flush) | per core of the machine | CPU s / GB | MB per CPU second | server's cores busy (pushes) | pushes asked to retry | peak RSS MB (ingest) | peak RSS MB (queries) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!(
        "| {ingest_mb_s:.1} | {durable_mb_s:.1} | {:.1} | {cpu_per_gb:.1} | {:.1} | {busy_cores:.2} | {retries} | {} | {} |\n",
        durable_mb_s / cores,
        1024.0 / cpu_per_gb,
        rss_ingest >> 20,
        rss_query >> 20
    );
    let steady = cpu_per_gb + merge_cpu_per_gb;
    println!(
        "| merges during ingest | merges after the restart: CPU s / GB | ingest + merges: CPU s / GB | MB/s per core at that cost |"
    );
    println!("|---|---|---|---|");
    println!(
        "| {merges_during_ingest} | {merges_after} merges, {merge_cpu_per_gb:.1} | {steady:.1} | {:.1} |\n",
        1024.0 / steady
    );
    println!("| bytes | MB | vs zstd -3 |");
    println!("|---|---|---|");
    println!(
        "| raw text | {:.1} | {:.2}x |",
        raw_bytes as f64 / 1e6,
        raw_bytes as f64 / zstd_bytes as f64
    );
    println!("| zstd -3 of raw | {:.1} | 1.00x |", zstd_bytes as f64 / 1e6);
    println!(
        "| Sightline data + index (blocks + WAL) | {:.1} | {:.2}x |",
        disk as f64 / 1e6,
        disk as f64 / zstd_bytes as f64
    );
    println!(
        "| of which tantivy index | {:.1} | {:.2}x |",
        index_bytes as f64 / 1e6,
        index_bytes as f64 / zstd_bytes as f64
    );
    println!(
        "| of which other block files | {:.1} | {:.2}x |\n",
        (blocks_only - index_bytes) as f64 / 1e6,
        (blocks_only - index_bytes) as f64 / zstd_bytes as f64
    );
    println!("| query | Sightline median ms | rg -c median ms | speed-up | check |");
    println!("|---|---|---|---|---|");
    for r in rows {
        let speed = if r.rg.is_nan() {
            "—".to_string()
        } else {
            format!("{:.1}x", r.rg / r.ours)
        };
        let rg = if r.rg.is_nan() {
            "—".to_string()
        } else {
            format!("{:.1}", r.rg * 1e3)
        };
        println!(
            "| {} `{}` | {:.1} | {rg} | {speed} | {} |",
            r.name,
            r.query.replace('|', "\\|"),
            r.ours * 1e3,
            r.check
        );
    }
}
