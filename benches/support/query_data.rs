//! A deterministic data set in the shapes dashboards query: request
//! counters by job/instance/method/code (with a counter reset), CPU
//! seconds per core and mode, memory gauges doing a random walk, `up`
//! with an outage gap, a latency histogram (`le` buckets, `_sum`,
//! `_count`) and a temperature gauge with negatives and one NaN.
//!
//! Shared by the PromQL differential test (small) and the query benchmark
//! (large); also written as OpenMetrics for `promtool tsdb
//! create-blocks-from openmetrics`.
#![allow(dead_code)]

use std::fmt::Write as _;

use super::rng::Rng;

/// One series: labels (sorted, `__name__` included) and samples.
pub struct GenSeries {
    /// Label pairs sorted by name.
    pub labels: Vec<(String, String)>,
    /// (ms, value), ascending.
    pub samples: Vec<(i64, f64)>,
}

/// Size of the generated set.
#[derive(Clone, Copy)]
pub struct Shape {
    /// Instances per job (three jobs).
    pub instances: usize,
    /// First sample time (ms).
    pub start: i64,
    /// Number of samples per series.
    pub points: usize,
    /// Scrape interval (ms).
    pub interval: i64,
}

fn series(pairs: &[(&str, &str)], samples: Vec<(i64, f64)>) -> GenSeries {
    let mut labels: Vec<(String, String)> = pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    labels.sort();
    GenSeries { labels, samples }
}

/// Generates the set; the same `seed` and shape give the same data.
pub fn generate(shape: Shape, seed: u64) -> Vec<GenSeries> {
    let mut rng = Rng::new(seed);
    let times: Vec<i64> = (0..shape.points)
        .map(|i| shape.start + i as i64 * shape.interval)
        .collect();
    let secs = shape.interval as f64 / 1000.0;
    let mut out = Vec::new();
    let jobs = ["api", "web", "db"];
    for job in jobs {
        for i in 0..shape.instances {
            let instance = format!("10.0.{}.{}:9100", jobs.iter().position(|j| *j == job).unwrap_or(0), i);
            let inst = instance.as_str();
            // Request counters.
            for method in ["GET", "POST"] {
                for code in ["200", "404", "500"] {
                    let base_rate = match code {
                        "200" => 50.0,
                        "404" => 2.0,
                        _ => 0.5,
                    } * if method == "GET" { 1.0 } else { 0.3 }
                        * (1.0 + i as f64 * 0.1);
                    let reset_at = if i == 1 && code == "200" {
                        shape.points / 2
                    } else {
                        usize::MAX
                    };
                    let mut v = rng.below(1000) as f64;
                    let samples = times
                        .iter()
                        .enumerate()
                        .map(|(k, t)| {
                            if k == reset_at {
                                v = 0.0;
                            }
                            v += (base_rate * secs * (0.5 + rng.unit())).round();
                            (*t, v)
                        })
                        .collect();
                    out.push(series(
                        &[
                            ("__name__", "http_requests_total"),
                            ("code", code),
                            ("instance", inst),
                            ("job", job),
                            ("method", method),
                        ],
                        samples,
                    ));
                }
            }
            // CPU seconds.
            for cpu in ["0", "1"] {
                for (mode, share) in [("user", 0.3), ("system", 0.1), ("idle", 0.6)] {
                    let mut v = 1000.0 * rng.unit();
                    let samples = times
                        .iter()
                        .map(|t| {
                            v += secs * share * (0.8 + 0.4 * rng.unit());
                            (*t, (v * 100.0).round() / 100.0)
                        })
                        .collect();
                    out.push(series(
                        &[
                            ("__name__", "node_cpu_seconds_total"),
                            ("cpu", cpu),
                            ("instance", inst),
                            ("job", job),
                            ("mode", mode),
                        ],
                        samples,
                    ));
                }
            }
            // Memory gauge.
            let mut m = 1e9 + rng.below(1_000_000_000) as f64;
            let samples = times
                .iter()
                .map(|t| {
                    m += (rng.unit() - 0.48) * 1e7;
                    (*t, m.round())
                })
                .collect();
            out.push(series(
                &[("__name__", "memory_usage_bytes"), ("instance", inst), ("job", job)],
                samples,
            ));
            // up, with a 10-minute gap for the third instance.
            let gap = if i == 2 {
                (shape.points / 3, shape.points / 3 + (600_000 / shape.interval) as usize)
            } else {
                (usize::MAX, usize::MAX)
            };
            let samples = times
                .iter()
                .enumerate()
                .filter(|(k, _)| *k < gap.0 || *k >= gap.1)
                .map(|(k, t)| (*t, if k + 1 == gap.0 { 0.0 } else { 1.0 }))
                .collect();
            out.push(series(&[("__name__", "up"), ("instance", inst), ("job", job)], samples));
            // Latency histogram.
            let bounds = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"];
            let mut counts = [0f64; 8];
            let mut sum = 0.0;
            let mut per_time: Vec<([f64; 8], f64)> = Vec::with_capacity(times.len());
            for _ in &times {
                let n = 20 + rng.below(40);
                for _ in 0..n {
                    let x = rng.unit() * rng.unit() * 3.0;
                    sum += x;
                    for (b, bound) in bounds.iter().enumerate() {
                        let le: f64 = if *bound == "+Inf" {
                            f64::INFINITY
                        } else {
                            bound.parse().unwrap_or(0.0)
                        };
                        if x <= le {
                            counts[b] += 1.0;
                        }
                    }
                }
                per_time.push((counts, (sum * 1000.0).round() / 1000.0));
            }
            for (b, bound) in bounds.iter().enumerate() {
                let samples = times.iter().zip(&per_time).map(|(t, (c, _))| (*t, c[b])).collect();
                out.push(series(
                    &[
                        ("__name__", "request_duration_seconds_bucket"),
                        ("instance", inst),
                        ("job", job),
                        ("le", bound),
                    ],
                    samples,
                ));
            }
            out.push(series(
                &[
                    ("__name__", "request_duration_seconds_sum"),
                    ("instance", inst),
                    ("job", job),
                ],
                times.iter().zip(&per_time).map(|(t, (_, s))| (*t, *s)).collect(),
            ));
            out.push(series(
                &[
                    ("__name__", "request_duration_seconds_count"),
                    ("instance", inst),
                    ("job", job),
                ],
                times.iter().zip(&per_time).map(|(t, (c, _))| (*t, c[7])).collect(),
            ));
        }
    }
    // Temperatures: negatives and one NaN.
    for room in ["cellar", "office", "roof"] {
        let mut v = match room {
            "cellar" => 12.0,
            "office" => 21.0,
            _ => -3.0,
        };
        let samples = times
            .iter()
            .enumerate()
            .map(|(k, t)| {
                v += (rng.unit() - 0.5) * 0.4;
                let x = if room == "roof" && k == shape.points / 4 {
                    f64::NAN
                } else {
                    (v * 10.0).round() / 10.0
                };
                (*t, x)
            })
            .collect();
        out.push(series(&[("__name__", "temperature_celsius"), ("room", room)], samples));
    }
    out
}

/// The set as OpenMetrics text (no `# TYPE` lines: every family is
/// `unknown`), samples in series order, timestamps in seconds.
pub fn openmetrics(set: &[GenSeries]) -> String {
    let mut out = String::new();
    for s in set {
        let name = s
            .labels
            .iter()
            .find(|(n, _)| n == "__name__")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let labels: Vec<String> = s
            .labels
            .iter()
            .filter(|(n, _)| n != "__name__")
            .map(|(n, v)| format!("{n}=\"{v}\""))
            .collect();
        let head = format!("{name}{{{}}}", labels.join(","));
        for (t, v) in &s.samples {
            let val = if v.is_nan() { "NaN".to_string() } else { format!("{v}") };
            let _ = writeln!(out, "{head} {val} {}.{:03}", t / 1000, t % 1000);
        }
    }
    out.push_str("# EOF\n");
    out
}
