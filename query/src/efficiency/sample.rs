//! Built-in sample data with a known answer: a spam scanner on six VMs
//! and six Kubernetes pods for a day, with diurnal load, per-host speed,
//! slowly drifting efficiency (so neighbouring windows are alike) and
//! white noise. On Kubernetes every CPU-second scans 20 % more messages
//! ([`SampleKind::Gain20`]) or exactly as many ([`SampleKind::NoChange`]);
//! a report over it must find the gain within its interval, or no
//! significant change.

use sightline_storage::{Labels, MemorySeries};

use super::{Cohort, Measure, ReportConfig, TimeSpec};

/// Which sample data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// Kubernetes scans 20 % more messages per CPU-second.
    Gain20,
    /// Both platforms are equally efficient.
    NoChange,
}

impl SampleKind {
    /// The data set named `gain20` or `none`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "gain20" => Some(SampleKind::Gain20),
            "none" => Some(SampleKind::NoChange),
            _ => None,
        }
    }

    /// Messages per CPU-second on Kubernetes relative to VMs.
    pub fn true_ratio(self) -> f64 {
        match self {
            SampleKind::Gain20 => 1.2,
            SampleKind::NoChange => 1.0,
        }
    }
}

/// The data ends here: 2026-01-02T00:00:00Z.
pub const END_MS: i64 = 1_767_312_000_000;
/// One day of data.
pub const SPAN_MS: i64 = 86_400_000;
const SCRAPE_MS: i64 = 15_000;
const HOSTS_PER_PLATFORM: usize = 6;
/// Messages scanned per CPU-second on VMs.
const VM_EFFICIENCY: f64 = 1000.0;
/// Latency histogram bucket bounds (seconds).
const BOUNDS: [f64; 9] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// The sample series, ending at [`END_MS`], and a report configuration
/// comparing the platforms.
pub fn build(kind: SampleKind) -> (MemorySeries, ReportConfig) {
    build_ending(kind, END_MS)
}

/// [`build`] with the day of data ending at `end_ms` (the same values,
/// shifted in time).
pub fn build_ending(kind: SampleKind, end_ms: i64) -> (MemorySeries, ReportConfig) {
    let seed = match kind {
        SampleKind::Gain20 => 20,
        SampleKind::NoChange => 0,
    };
    build_seeded(kind, end_ms, seed)
}

/// [`build_ending`] with other noise: the generator seeded by `seed`
/// (for checking that intervals cover the truth as often as they claim).
pub fn build_seeded(kind: SampleKind, end_ms: i64, seed: u64) -> (MemorySeries, ReportConfig) {
    let mut data = MemorySeries::new();
    let mut rng = fastrand::Rng::with_seed(seed);
    for (platform, efficiency, median_latency) in [
        ("vm", VM_EFFICIENCY, 0.040),
        ("k8s", VM_EFFICIENCY * kind.true_ratio(), 0.034),
    ] {
        for host in 0..HOSTS_PER_PLATFORM {
            add_host(
                &mut data,
                &mut rng,
                end_ms,
                (platform, host),
                efficiency,
                median_latency,
            );
        }
    }
    let cohort = |name: &str| Cohort {
        name: name.into(),
        matchers: format!("{{platform=\"{name}\"}}"),
        // The first window needs 5 minutes of data behind it.
        start: TimeSpec::Seconds((end_ms - SPAN_MS + 300_000) as f64 / 1000.0),
        end: TimeSpec::Seconds(end_ms as f64 / 1000.0),
    };
    let config = ReportConfig {
        title: "Spam scanner: Kubernetes against VMs (sample data)".into(),
        work: Measure {
            name: "messages scanned per second".into(),
            query: r#"sum(rate(messages_scanned_total{job="spam-scanner"}[5m]))"#.into(),
        },
        resource: Measure {
            name: "CPU-second".into(),
            query: r#"sum(rate(process_cpu_seconds_total{job="spam-scanner"}[5m]))"#.into(),
        },
        latency: Some(r#"scan_duration_seconds_bucket{job="spam-scanner"}"#.into()),
        step: "5m".into(),
        confidence: 0.95,
        iterations: 2000,
        seed: 1,
        baseline: cohort("vm"),
        candidate: cohort("k8s"),
    };
    (data, config)
}

/// One host's counters for the day.
fn add_host(
    data: &mut MemorySeries,
    rng: &mut fastrand::Rng,
    end_ms: i64,
    (platform, host): (&str, usize),
    efficiency: f64,
    median_latency: f64,
) {
    let instance = format!("{platform}-{host}");
    let labels = |name: &str, extra: Option<(&str, String)>| {
        let mut pairs = vec![
            ("__name__".to_string(), name.to_string()),
            ("job".to_string(), "spam-scanner".to_string()),
            ("platform".to_string(), platform.to_string()),
            ("instance".to_string(), instance.clone()),
        ];
        if let Some((n, v)) = extra {
            pairs.push((n.to_string(), v));
        }
        Labels::from_pairs(pairs)
    };
    let speed = 0.8 + 0.4 * rng.f64();
    // Efficiency drifts: an AR(1) process with unit variance and a
    // correlation time of ~25 minutes.
    let phi: f64 = 0.99;
    let mut drift = 0.0;
    let (mut cpu, mut scanned) = (0.0, 0.0);
    let mut buckets = [0.0; BOUNDS.len() + 1];
    let steps = (SPAN_MS / SCRAPE_MS) as usize;
    let mut cpu_s = Vec::with_capacity(steps);
    let mut scanned_s = Vec::with_capacity(steps);
    let mut bucket_s: Vec<Vec<(i64, f64)>> = vec![Vec::with_capacity(steps); BOUNDS.len() + 1];
    let white = |rng: &mut fastrand::Rng| (rng.f64() * 2.0 - 1.0) * 3f64.sqrt();
    for k in 0..steps {
        let t = end_ms - SPAN_MS + k as i64 * SCRAPE_MS;
        let day = (k as i64 * SCRAPE_MS) as f64 / SPAN_MS as f64;
        let load = 1.0 + 0.5 * (std::f64::consts::TAU * day).sin();
        drift = phi * drift + (1.0 - phi * phi).sqrt() * white(rng);
        let cores = 0.5 * load * speed * (1.0 + 0.05 * white(rng));
        let messages = cores * efficiency * (1.0 + 0.1 * drift) * 15.0;
        cpu += cores * 15.0;
        scanned += messages;
        // Log-logistic latencies (shape 4) around the platform's median.
        for (i, le) in BOUNDS.iter().enumerate() {
            buckets[i] += messages / (1.0 + (le / median_latency).powi(-4));
        }
        buckets[BOUNDS.len()] += messages;
        cpu_s.push((t, cpu));
        scanned_s.push((t, scanned));
        for (i, b) in buckets.iter().enumerate() {
            bucket_s[i].push((t, *b));
        }
    }
    data.add(labels("process_cpu_seconds_total", None), cpu_s);
    data.add(labels("messages_scanned_total", None), scanned_s);
    for (i, samples) in bucket_s.into_iter().enumerate() {
        let le = BOUNDS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
        data.add(labels("scan_duration_seconds_bucket", Some(("le", le))), samples);
    }
}
