//! One scrape target: how its labels are built from its scrape config
//! (Prometheus' target relabelling), and what one scrape records — the
//! samples, `up`, `scrape_duration_seconds`, `scrape_samples_*`,
//! `scrape_series_added`, and staleness markers for series that went away.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_storage::STALE_NAN_BITS;

use super::expfmt;
use super::relabel::{self, Relabel};

/// One series' sample as the agent ships it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Labels, sorted by name, `__name__` included.
    pub labels: Vec<(String, String)>,
    /// Milliseconds since the epoch.
    pub t: i64,
    /// The value; a stale marker is Prometheus' staleness NaN.
    pub v: f64,
}

/// A target ready to scrape.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL scraped.
    pub url: String,
    /// The target's labels after relabelling (`job`, `instance`, …).
    pub labels: Vec<(String, String)>,
    /// How long a scrape may take.
    pub timeout: Duration,
    /// `metric_relabel_configs`, applied to every scraped sample.
    pub metric_relabel: Arc<Vec<Relabel>>,
    /// Labels added to every series unless it has them (the node's
    /// identity: site, cluster, …), as Prometheus' external labels.
    pub identity: Arc<Vec<(String, String)>>,
}

/// The settings a target is built from.
#[derive(Debug, Clone)]
pub struct TargetSpec<'a> {
    /// `job_name`.
    pub job: &'a str,
    /// `host:port`.
    pub address: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// e.g. `/metrics`.
    pub metrics_path: &'a str,
    /// Labels of the static config or file_sd group.
    pub group_labels: &'a [(String, String)],
    /// `relabel_configs`.
    pub relabel: &'a [Relabel],
}

/// Builds a target as Prometheus does: the `__address__`, `__scheme__`,
/// `__metrics_path__` and `job` labels plus the group's, relabelled;
/// `instance` defaults to the address; `__`-prefixed labels are then
/// dropped. `None` when relabelling drops the target.
pub fn build_labels(spec: &TargetSpec<'_>) -> Option<(String, Vec<(String, String)>)> {
    let mut labels: Vec<(String, String)> = vec![
        ("__address__".into(), spec.address.into()),
        ("__scheme__".into(), spec.scheme.into()),
        ("__metrics_path__".into(), spec.metrics_path.into()),
        ("job".into(), spec.job.into()),
    ];
    for (k, v) in spec.group_labels {
        match labels.iter_mut().find(|(n, _)| n == k) {
            Some(l) => l.1 = v.clone(),
            None => labels.push((k.clone(), v.clone())),
        }
    }
    let labels = relabel::apply(spec.relabel, labels)?;
    let get = |n: &str| labels.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let address = get("__address__")?;
    let url = format!(
        "{}://{}{}",
        get("__scheme__").unwrap_or_else(|| "http".into()),
        address,
        get("__metrics_path__").unwrap_or_else(|| "/metrics".into())
    );
    let mut out: Vec<(String, String)> = labels.into_iter().filter(|(k, _)| !k.starts_with("__")).collect();
    if !out.iter().any(|(k, _)| k == "instance") {
        out.push(("instance".into(), address));
    }
    out.sort();
    Some((url, out))
}

/// What a target remembers between scrapes: the series it reported last
/// time, for staleness markers and `scrape_series_added`.
#[derive(Debug, Default)]
pub struct ScrapeState {
    previous: HashMap<u64, Vec<(String, String)>>,
    seen_ever: HashSet<u64>,
}

impl ScrapeState {
    /// Staleness markers at `t` for every series of the last scrape (the
    /// target went away).
    pub fn stale_markers(&self, t: i64) -> Vec<Sample> {
        self.previous
            .values()
            .map(|labels| Sample {
                labels: labels.clone(),
                t,
                v: f64::from_bits(STALE_NAN_BITS),
            })
            .collect()
    }
}

fn series_key(labels: &[(String, String)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    labels.hash(&mut h);
    h.finish()
}

/// Scrapes `target` once at `now_ms`; returns every sample to ship.
pub async fn scrape(client: &reqwest::Client, target: &Target, state: &mut ScrapeState, now_ms: i64) -> Vec<Sample> {
    let started = Instant::now();
    let fetched = fetch(client, target).await;
    let duration = started.elapsed().as_secs_f64();
    let mut out = Vec::new();
    let mut current: HashMap<u64, Vec<(String, String)>> = HashMap::new();
    let (up, scraped) = match fetched {
        Ok(samples) => {
            let scraped = samples.len();
            for s in samples {
                let Some(labels) = sample_labels(target, s.labels) else {
                    continue;
                };
                let key = series_key(&labels);
                if current.contains_key(&key) {
                    // A duplicate series in one scrape: Prometheus keeps the first.
                    continue;
                }
                out.push(Sample {
                    labels: labels.clone(),
                    t: s.timestamp.unwrap_or(now_ms),
                    v: s.value,
                });
                current.insert(key, labels);
            }
            (1.0, scraped)
        }
        Err(e) => {
            tracing::debug!(url = %target.url, error = %e, "scrape failed");
            (0.0, 0)
        }
    };
    let added = current.keys().filter(|k| !state.seen_ever.contains(k)).count();
    // Series gone since the last scrape (all of them when it failed).
    for (key, labels) in &state.previous {
        if !current.contains_key(key) {
            out.push(Sample {
                labels: labels.clone(),
                t: now_ms,
                v: f64::from_bits(STALE_NAN_BITS),
            });
        }
    }
    let post_relabel = current.len();
    state.seen_ever.extend(current.keys().copied());
    state.previous = current;
    for (name, v) in [
        ("up", up),
        ("scrape_duration_seconds", duration),
        ("scrape_samples_scraped", scraped as f64),
        ("scrape_samples_post_metric_relabeling", post_relabel as f64),
        ("scrape_series_added", added as f64),
    ] {
        let mut labels = target.labels.clone();
        labels.push(("__name__".into(), name.into()));
        add_identity(&mut labels, &target.identity);
        labels.sort();
        out.push(Sample { labels, t: now_ms, v });
    }
    out
}

async fn fetch(client: &reqwest::Client, target: &Target) -> Result<Vec<expfmt::ScrapedSample>, String> {
    let resp = client
        .get(&target.url)
        .header("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
        .timeout(target.timeout)
        .send()
        .await
        .map_err(|e| format!("GET {}: {e}", target.url))?;
    if !resp.status().is_success() {
        return Err(format!("GET {}: HTTP {}", target.url, resp.status()));
    }
    let text = resp.text().await.map_err(|e| format!("GET {}: {e}", target.url))?;
    expfmt::parse(&text)
}

/// A scraped sample's labels: the target's labels win over scraped ones
/// of the same name, which are kept as `exported_<name>` (Prometheus'
/// `honor_labels: false`); then metric relabelling and identity labels.
fn sample_labels(target: &Target, scraped: Vec<(String, String)>) -> Option<Vec<(String, String)>> {
    let mut labels: Vec<(String, String)> = Vec::with_capacity(scraped.len() + target.labels.len() + 2);
    for (k, v) in scraped {
        if target.labels.iter().any(|(n, _)| *n == k) {
            labels.push((format!("exported_{k}"), v));
        } else {
            labels.push((k, v));
        }
    }
    labels.extend(target.labels.iter().cloned());
    let mut labels = relabel::apply(&target.metric_relabel, labels)?;
    add_identity(&mut labels, &target.identity);
    labels.sort();
    Some(labels)
}

fn add_identity(labels: &mut Vec<(String, String)>, identity: &[(String, String)]) {
    for (k, v) in identity {
        if !labels.iter().any(|(n, _)| n == k) {
            labels.push((k.clone(), v.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_labels_follow_prometheus() {
        let group = vec![("env".to_string(), "prod".to_string())];
        let spec = TargetSpec {
            job: "node",
            address: "10.0.0.7:9100",
            scheme: "http",
            metrics_path: "/metrics",
            group_labels: &group,
            relabel: &[],
        };
        let (url, labels) = build_labels(&spec).expect("target");
        assert_eq!(url, "http://10.0.0.7:9100/metrics");
        assert_eq!(
            labels,
            vec![
                ("env".to_string(), "prod".to_string()),
                ("instance".into(), "10.0.0.7:9100".into()),
                ("job".into(), "node".into())
            ]
        );
    }

    #[test]
    fn scraped_labels_clashing_with_target_labels_are_exported() {
        let target = Target {
            url: String::new(),
            labels: vec![("instance".into(), "a:1".into()), ("job".into(), "node".into())],
            timeout: Duration::from_secs(1),
            metric_relabel: Arc::new(Vec::new()),
            identity: Arc::new(vec![("site".into(), "ams".into()), ("job".into(), "ignored".into())]),
        };
        let got = sample_labels(
            &target,
            vec![("__name__".into(), "x".into()), ("job".into(), "inner".into())],
        )
        .expect("kept");
        assert_eq!(
            got,
            vec![
                ("__name__".to_string(), "x".to_string()),
                ("exported_job".into(), "inner".into()),
                ("instance".into(), "a:1".into()),
                ("job".into(), "node".into()),
                ("site".into(), "ams".into())
            ]
        );
    }
}
