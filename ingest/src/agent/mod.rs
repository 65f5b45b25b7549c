//! The collector agent (`sightline agent --config FILE`): scrapes the
//! Prometheus targets of its node (static and `file_sd` targets, with
//! relabelling), adds the node's identity labels, and ships the samples to
//! its site's ingest, failing over to the next site in its list when one
//! does not answer, or to the first two sites at once (`replication_factor`).
//!
//! Scraped batches go through a bounded on-disk buffer ([`buffer`]) so a
//! site outage or an agent restart loses nothing within its size limit.
//! Log files are tailed ([`tail`]) and shipped the same way. Two
//! transports: `sites` (one gRPC stream per site carrying metrics and
//! logs, each batch acknowledged once durable: [`crate::ship`]), or
//! `remote_write` and `loki_push` URLs (plain HTTP, to Sightline or to
//! Prometheus and Loki themselves).

pub mod buffer;
pub mod journal;
pub mod tail;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prost::Message;
use serde::Deserialize;
use sightline_storage::logs::now_ns;
use sightline_storage::{now_ms, parse_duration};
use tokio::sync::mpsc;

use crate::remote_write::proto;
use crate::scrape::relabel::{Relabel, RelabelConfig};
use crate::scrape::target::{self, Sample, ScrapeState, Target, TargetSpec};
use crate::ship::Kind;
use crate::ship::client::{ShipError, SiteStream};
use buffer::DiskBuffer;

/// The agent's configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Labels naming this node (e.g. `site`, `cluster`), added to every
    /// series that does not have them, as Prometheus' external labels.
    #[serde(default)]
    pub identity: BTreeMap<String, String>,
    /// Defaults for every scrape config.
    #[serde(default)]
    pub global: GlobalConfig,
    /// What to scrape, in Prometheus' spelling.
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
    /// The sites to ship metrics and logs to over one gRPC stream each
    /// (their `--grpc-listen`), in order of preference (own site first).
    #[serde(default)]
    pub sites: Vec<SiteConfig>,
    /// Where to ship metrics by HTTP remote write instead, in order of
    /// preference (the node's own site first).
    #[serde(default)]
    pub remote_write: Vec<RemoteWriteConfig>,
    /// The on-disk buffer of unshipped data.
    #[serde(default)]
    pub buffer: BufferConfig,
    /// Log files to tail.
    #[serde(default)]
    pub log_files: Vec<LogFilesConfig>,
    /// The systemd journal, where the node has one.
    #[serde(default)]
    pub journal: Option<journal::JournalConfig>,
    /// Where to push logs (Loki push API URLs), own site first.
    #[serde(default)]
    pub loki_push: Vec<RemoteWriteConfig>,
    /// How many sites must hold each batch (metrics and logs) before it
    /// leaves the buffer: 1 (default) ships to the first site that
    /// answers; 2 to the first two, so losing a site loses nothing.
    #[serde(default = "default_replication")]
    pub replication_factor: usize,
}

fn default_replication() -> usize {
    1
}

/// A `log_files` entry: files and the stream labels of their lines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFilesConfig {
    /// Globs (relative to the config file). Keep rotated names inside the
    /// glob (`app.log*`) so a rotated file is read to its end.
    pub paths: Vec<String>,
    /// Stream labels; `filename` (the path) is added, and the identity.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `buffer:` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// Directory (relative to the config file); default `agent-buffer`.
    pub path: Option<PathBuf>,
    /// Most bytes kept; beyond, the oldest data is dropped and counted
    /// in `sightline_agent_dropped_samples_total`. Default 256 MiB.
    pub max_bytes: Option<u64>,
}

/// `global:` defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// Default scrape interval (Prometheus: 1m; here 15s, the fleet's).
    #[serde(default = "default_interval")]
    pub scrape_interval: String,
    /// Default scrape timeout.
    #[serde(default = "default_timeout")]
    pub scrape_timeout: String,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: default_interval(),
            scrape_timeout: default_timeout(),
        }
    }
}

fn default_interval() -> String {
    "15s".into()
}

fn default_timeout() -> String {
    "10s".into()
}

/// One `scrape_configs` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The `job` label.
    pub job_name: String,
    /// Overrides `global.scrape_interval`.
    pub scrape_interval: Option<String>,
    /// Overrides `global.scrape_timeout`.
    pub scrape_timeout: Option<String>,
    /// Default `/metrics`.
    #[serde(default = "default_path")]
    pub metrics_path: String,
    /// Default `http`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// Fixed target groups.
    #[serde(default)]
    pub static_configs: Vec<TargetGroup>,
    /// Target groups read from JSON or YAML files, re-read when they change.
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Target relabelling.
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Sample relabelling.
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

fn default_path() -> String {
    "/metrics".into()
}

fn default_scheme() -> String {
    "http".into()
}

/// A group of targets sharing labels (static config or file_sd entry).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    /// `host:port` addresses.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Labels of every target of the group.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A `file_sd_configs` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// Files (globs) holding target groups, JSON or YAML; re-read at
    /// every scrape interval, so a change takes effect at the next scrape.
    pub files: Vec<String>,
}

/// A `sites` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// The site's gRPC address, e.g. `http://ingest.ams:4317`.
    pub url: String,
}

/// A `remote_write` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// e.g. `http://ingest.ams:9780/api/v1/write`.
    pub url: String,
}

impl AgentConfig {
    /// Reads and checks a configuration file; errors name the setting.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let cfg: AgentConfig =
            serde_saphyr::from_str(&text).map_err(|e| format!("invalid agent config {}: {e}", path.display()))?;
        let sites = if cfg.sites.is_empty() {
            if cfg.remote_write.is_empty() {
                return Err("sites: name at least one site's gRPC address (or remote_write: an ingest URL)".into());
            }
            if (!cfg.log_files.is_empty() || cfg.journal.is_some()) && cfg.loki_push.is_empty() {
                return Err(
                    "log_files and journal need loki_push: name at least one site's /loki/api/v1/push URL".into(),
                );
            }
            cfg.remote_write.len().min(if cfg.loki_push.is_empty() {
                usize::MAX
            } else {
                cfg.loki_push.len()
            })
        } else {
            if !cfg.remote_write.is_empty() || !cfg.loki_push.is_empty() {
                return Err(
                    "sites carries metrics and logs; remote_write and loki_push are for shipping over HTTP instead: set one or the other".into(),
                );
            }
            for (i, s) in cfg.sites.iter().enumerate() {
                if s.url.starts_with("https://") {
                    return Err(format!(
                        "sites[{i}].url {:?}: TLS to a site is not supported yet; use http:// on the site's network",
                        s.url
                    ));
                }
                if !s.url.starts_with("http://") {
                    return Err(format!(
                        "sites[{i}].url {:?} must be http://host:port (the site's --grpc-listen)",
                        s.url
                    ));
                }
            }
            cfg.sites.len()
        };
        if cfg.replication_factor == 0 || cfg.replication_factor > sites {
            return Err(format!(
                "replication_factor {} must be between 1 and the number of sites ({sites})",
                cfg.replication_factor
            ));
        }
        for (i, sc) in cfg.scrape_configs.iter().enumerate() {
            cfg.durations(sc)
                .map_err(|e| format!("scrape_configs[{i}] ({}): {e}", sc.job_name))?;
            for r in sc.relabel_configs.iter().chain(&sc.metric_relabel_configs) {
                Relabel::new(r.clone()).map_err(|e| format!("scrape_configs[{i}] ({}): {e}", sc.job_name))?;
            }
        }
        Ok(cfg)
    }

    fn durations(&self, sc: &ScrapeConfig) -> Result<(Duration, Duration), String> {
        let interval = parse_duration(sc.scrape_interval.as_deref().unwrap_or(&self.global.scrape_interval))
            .map_err(|e| format!("scrape_interval: {e}"))?;
        let timeout = parse_duration(sc.scrape_timeout.as_deref().unwrap_or(&self.global.scrape_timeout))
            .map_err(|e| format!("scrape_timeout: {e}"))?;
        if interval.is_zero() {
            return Err("scrape_interval must be positive".into());
        }
        // As Prometheus: a timeout set on the job may not exceed its
        // interval; the global one is capped at it.
        if sc.scrape_timeout.is_some() && timeout > interval {
            return Err(format!(
                "scrape_timeout {timeout:?} is longer than scrape_interval {interval:?}"
            ));
        }
        Ok((interval, timeout.min(interval)))
    }
}

/// The targets of one scrape config now: static groups plus the file_sd
/// files as they read at this moment (an unreadable file keeps nothing
/// and is logged, as Prometheus does).
fn discover(sc: &ScrapeConfig, base: &Path) -> Vec<TargetGroup> {
    let mut groups = sc.static_configs.clone();
    for fsd in &sc.file_sd_configs {
        for pattern in &fsd.files {
            let pattern = if Path::new(pattern).is_absolute() {
                PathBuf::from(pattern)
            } else {
                base.join(pattern)
            };
            let Ok(paths) = glob::glob(&pattern.to_string_lossy()) else {
                tracing::warn!(pattern = %pattern.display(), "invalid file_sd pattern");
                continue;
            };
            for path in paths.flatten() {
                match std::fs::read_to_string(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|t| parse_sd_file(&path, &t))
                {
                    Ok(g) => groups.extend(g),
                    Err(e) => tracing::warn!(file = %path.display(), error = %e, "cannot read file_sd file"),
                }
            }
        }
    }
    groups
}

fn parse_sd_file(path: &Path, text: &str) -> Result<Vec<TargetGroup>, String> {
    if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(text).map_err(|e| e.to_string())
    } else {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }
}

/// What the agent counts about itself, shipped as `sightline_agent_*`.
#[derive(Debug, Default)]
struct AgentStats {
    sent_samples: AtomicU64,
    sent_log_lines: AtomicU64,
    send_failures: AtomicU64,
}

/// Runs the agent until `shutdown` resolves.
pub async fn run(
    cfg: AgentConfig,
    base_dir: PathBuf,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let buffer_dir = base_dir.join(cfg.buffer.path.clone().unwrap_or_else(|| PathBuf::from("agent-buffer")));
    let buffer = Arc::new(DiskBuffer::open(
        &buffer_dir,
        cfg.buffer.max_bytes.unwrap_or(DEFAULT_BUFFER_BYTES),
    )?);
    let stats = Arc::new(AgentStats::default());
    let (tx, mut rx) = mpsc::channel::<Vec<Sample>>(SHIP_QUEUE_BATCHES);
    let identity: Arc<Vec<(String, String)>> = Arc::new(cfg.identity.clone().into_iter().collect());
    let mut tasks = tokio::task::JoinSet::new();
    for sc in cfg.scrape_configs.clone() {
        let (interval, timeout) = cfg.durations(&sc)?;
        let relabel: Vec<Relabel> = sc
            .relabel_configs
            .iter()
            .cloned()
            .map(Relabel::new)
            .collect::<Result<_, _>>()?;
        let metric_relabel: Arc<Vec<Relabel>> = Arc::new(
            sc.metric_relabel_configs
                .iter()
                .cloned()
                .map(Relabel::new)
                .collect::<Result<_, _>>()?,
        );
        let (client, tx, identity, base) = (client.clone(), tx.clone(), identity.clone(), base_dir.clone());
        tasks.spawn(async move {
            let mut states: BTreeMap<String, ScrapeState> = BTreeMap::new();
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // Targets are rediscovered every interval, so file_sd
                // changes take effect at the next scrape.
                let mut targets = Vec::new();
                for g in discover(&sc, &base) {
                    let group_labels: Vec<(String, String)> = g.labels.into_iter().collect();
                    for address in &g.targets {
                        let spec = TargetSpec {
                            job: &sc.job_name,
                            address,
                            scheme: &sc.scheme,
                            metrics_path: &sc.metrics_path,
                            group_labels: &group_labels,
                            relabel: &relabel,
                        };
                        if let Some((url, labels)) = target::build_labels(&spec) {
                            targets.push(Target {
                                url,
                                labels,
                                timeout,
                                metric_relabel: metric_relabel.clone(),
                                identity: identity.clone(),
                            });
                        }
                    }
                }
                let now_ms = now_ms();
                let scrapes = targets.iter().map(|t| {
                    let key = format!("{}|{:?}", t.url, t.labels);
                    let mut state = states.remove(&key).unwrap_or_default();
                    let client = client.clone();
                    async move {
                        let samples = target::scrape(&client, t, &mut state, now_ms).await;
                        (key, state, samples)
                    }
                });
                let done = futures::future::join_all(scrapes).await;
                // Targets that disappeared mark their series stale, as
                // Prometheus does when a target goes away.
                let gone: Vec<Sample> = states.values().flat_map(|s| s.stale_markers(now_ms)).collect();
                states.clear();
                if !gone.is_empty() && tx.send(gone).await.is_err() {
                    return;
                }
                for (key, state, samples) in done {
                    states.insert(key, state);
                    if tx.send(samples).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    // The agent's own health, every global interval.
    {
        let (tx, identity, buffer, stats) = (tx.clone(), identity.clone(), buffer.clone(), stats.clone());
        let interval =
            parse_duration(&cfg.global.scrape_interval).map_err(|e| format!("global.scrape_interval: {e}"))?;
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(interval.max(Duration::from_secs(1)));
            loop {
                tick.tick().await;
                let t = now_ms();
                let samples = [
                    ("sightline_agent_buffer_bytes", buffer.bytes() as f64),
                    (
                        "sightline_agent_dropped_samples_total",
                        buffer.dropped_samples.load(Ordering::Relaxed) as f64,
                    ),
                    (
                        "sightline_agent_sent_samples_total",
                        stats.sent_samples.load(Ordering::Relaxed) as f64,
                    ),
                    (
                        "sightline_agent_sent_log_lines_total",
                        stats.sent_log_lines.load(Ordering::Relaxed) as f64,
                    ),
                    (
                        "sightline_agent_send_failures_total",
                        stats.send_failures.load(Ordering::Relaxed) as f64,
                    ),
                ]
                .into_iter()
                .map(|(name, v)| {
                    let mut labels: Vec<(String, String)> = identity.iter().cloned().collect();
                    labels.push(("__name__".into(), name.into()));
                    labels.push(("job".into(), "sightline-agent".into()));
                    labels.sort();
                    Sample { labels, t, v }
                })
                .collect();
                if tx.send(samples).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    // Scrapes go to disk first; the shipper sends from there.
    let spool = {
        let buffer = buffer.clone();
        async move {
            while let Some(batch) = rx.recv().await {
                for chunk in batch.chunks(MAX_SAMPLES_PER_SEND) {
                    if let Err(e) = buffer.push(&encode(chunk), chunk.len() as u32) {
                        tracing::error!(error = %e, "cannot write to the agent buffer; batch lost");
                    }
                }
            }
        }
    };
    // With `sites`, one stream per site carries both metrics and logs.
    let streams: Option<Vec<Arc<SiteStream>>> =
        (!cfg.sites.is_empty()).then(|| cfg.sites.iter().map(|s| Arc::new(SiteStream::new(&s.url))).collect());
    let log_shipper = if cfg.log_files.is_empty() && cfg.journal.is_none() {
        None
    } else {
        let log_buffer = Arc::new(DiskBuffer::open(
            &buffer_dir.join("logs"),
            cfg.buffer.max_bytes.unwrap_or(DEFAULT_BUFFER_BYTES),
        )?);
        let sources: Vec<TailSource> = cfg
            .log_files
            .iter()
            .map(|lf| {
                let paths = lf
                    .paths
                    .iter()
                    .map(|p| base_dir.join(p).to_string_lossy().into_owned())
                    .collect();
                let labels = with_identity(&lf.labels, &identity);
                TailSource { paths, labels }
            })
            .collect();
        if let Some(mut jc) = cfg.journal.clone() {
            jc.directory = jc.directory.map(|d| base_dir.join(d));
            let labels = with_identity(&jc.labels, &identity);
            let cursor = buffer_dir.join("logs").join("journal.cursor");
            tasks.spawn(journal::run(jc, labels, log_buffer.clone(), cursor));
        }
        let positions_path = buffer_dir.join("logs").join("positions.json");
        let tail_buffer = log_buffer.clone();
        tasks.spawn(async move {
            let mut positions = tail::load_positions(&positions_path);
            let mut tick = tokio::time::interval(TAIL_POLL);
            loop {
                tick.tick().await;
                let mut all = tail::Positions::new();
                let mut pushed = true;
                for TailSource { paths, labels } in &sources {
                    let (found, next) = tail::poll(paths, &positions);
                    all.extend(next);
                    if found.is_empty() {
                        continue;
                    }
                    let lines: u32 = found.iter().map(|(_, l)| l.len() as u32).sum();
                    if let Err(e) = tail_buffer.push(&encode_logs(labels, &found, now_ns()), lines) {
                        tracing::error!(error = %e, "cannot write to the agent's log buffer; will read again");
                        pushed = false;
                    }
                }
                // Positions move only once the lines are in the buffer.
                if pushed {
                    positions = all;
                    if let Err(e) = tail::save_positions(&positions_path, &positions) {
                        tracing::error!(error = %e, "cannot save log positions");
                    }
                }
            }
        });
        Some(ship(
            client.clone(),
            Destinations {
                sites: match &streams {
                    Some(s) => s.iter().cloned().map(Site::Stream).collect(),
                    None => cfg.loki_push.iter().map(|r| Site::Http(r.url.clone())).collect(),
                },
                replicas: cfg.replication_factor,
            },
            log_buffer,
            stats.clone(),
            Payload::LokiPush,
        ))
    };
    let shipper = ship(
        client,
        Destinations {
            sites: match &streams {
                Some(s) => s.iter().cloned().map(Site::Stream).collect(),
                None => cfg.remote_write.iter().map(|r| Site::Http(r.url.clone())).collect(),
            },
            replicas: cfg.replication_factor,
        },
        buffer,
        stats,
        Payload::RemoteWrite,
    );
    let logs = async {
        match log_shipper {
            Some(s) => s.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = shutdown => {}
        () = spool => {}
        r = shipper => r?,
        r = logs => r?,
    }
    tasks.abort_all();
    Ok(())
}

/// Stream labels: `labels`, plus the identity labels they lack.
fn with_identity(labels: &BTreeMap<String, String>, identity: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = labels.clone().into_iter().collect();
    for (k, v) in identity {
        if !labels.contains_key(k) {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

/// One `log_files` entry ready to poll: absolute globs and the stream
/// labels (identity included).
struct TailSource {
    paths: Vec<String>,
    labels: Vec<(String, String)>,
}

/// How often log files are checked for new lines.
const TAIL_POLL: Duration = Duration::from_millis(250);

/// A Loki push request (protobuf, snappy) for lines of files, one stream
/// per file; lines get increasing timestamps from `now_ns`.
fn encode_logs(labels: &[(String, String)], found: &[(PathBuf, Vec<String>)], now_ns: i64) -> Vec<u8> {
    let mut t = now_ns;
    let streams = found
        .iter()
        .map(|(path, lines)| {
            let mut l: Vec<(String, String)> = labels.to_vec();
            l.push(("filename".into(), path.to_string_lossy().into_owned()));
            l.sort();
            let entries = lines
                .iter()
                .map(|line| {
                    t += 1;
                    (t, line.clone())
                })
                .collect();
            (l, entries)
        })
        .collect();
    encode_streams(streams)
}

/// Sorted stream labels.
type StreamLabels = Vec<(String, String)>;
/// A stream's entries: `(nanoseconds, line)`.
type StreamEntries = Vec<(i64, String)>;

/// A Loki push body (protobuf, snappy) of streams.
fn encode_streams(streams: Vec<(StreamLabels, StreamEntries)>) -> Vec<u8> {
    let streams = streams
        .into_iter()
        .map(|(labels, entries)| {
            let text = labels
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            crate::loki::proto::StreamAdapter {
                labels: format!("{{{text}}}"),
                entries: entries
                    .into_iter()
                    .map(|(t, line)| crate::loki::proto::EntryAdapter {
                        timestamp: Some(crate::loki::proto::Timestamp {
                            seconds: t.div_euclid(1_000_000_000),
                            nanos: t.rem_euclid(1_000_000_000) as i32,
                        }),
                        line,
                        structured_metadata: Vec::new(),
                    })
                    .collect(),
                hash: 0,
            }
        })
        .collect();
    let req = crate::loki::proto::PushRequest { streams };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap_or_default()
}

/// What a buffer holds, which decides how it is sent.
#[derive(Debug, Clone, Copy)]
enum Payload {
    /// Remote write 1.0 requests.
    RemoteWrite,
    /// Loki push requests (protobuf, snappy).
    LokiPush,
}

/// The buffer's default size limit.
const DEFAULT_BUFFER_BYTES: u64 = 256 << 20;

/// Batches of samples waiting to be shipped (one per target scrape).
const SHIP_QUEUE_BATCHES: usize = 1024;

/// Most samples in one remote-write request.
const MAX_SAMPLES_PER_SEND: usize = 2000;

/// One site a buffer ships to.
enum Site {
    /// A remote write or Loki push URL.
    Http(String),
    /// The site's ship stream (shared by metrics and logs).
    Stream(Arc<SiteStream>),
}

impl Site {
    fn name(&self) -> &str {
        match self {
            Site::Http(url) => url,
            Site::Stream(s) => s.url(),
        }
    }
}

/// The sites a buffer ships to, in order of preference (own site first),
/// and how many must hold each batch.
struct Destinations {
    sites: Vec<Site>,
    replicas: usize,
}

/// Ships the buffer's batches, oldest first: each to the first `replicas`
/// sites (own site first) that accept it, retrying with backoff the sites
/// still missing while fewer have it; a batch leaves the buffer only once
/// enough sites acknowledged it. A site that refuses a batch as bad (4xx)
/// counts as done for it: resending would not help.
async fn ship(
    client: reqwest::Client,
    dest: Destinations,
    buffer: Arc<DiskBuffer>,
    stats: Arc<AgentStats>,
    payload: Payload,
) -> Result<(), String> {
    loop {
        let (body, items, next) = buffer.next().await?;
        let mut delay = Duration::from_millis(200);
        // Sites done with this batch (acknowledged or refused for good).
        let mut done: Vec<usize> = Vec::with_capacity(dest.replicas);
        'sent: loop {
            for (i, site) in dest.sites.iter().enumerate() {
                if done.contains(&i) {
                    continue;
                }
                let url = site.name();
                let sent = match site {
                    Site::Http(url) => send(&client, url, &body, payload).await,
                    Site::Stream(stream) => {
                        let kind = match payload {
                            Payload::RemoteWrite => Kind::RemoteWrite,
                            Payload::LokiPush => Kind::LokiPush,
                        };
                        stream.send(kind, body.clone()).await.map_err(|e| match e {
                            ShipError::Retry(m) => Retry::Yes(m),
                            ShipError::Refused(m) => Retry::No(m),
                        })
                    }
                };
                match sent {
                    Ok(()) => done.push(i),
                    Err(Retry::No(e)) => {
                        tracing::warn!(url = %url, error = %e, "a site refused a batch; not resending it there");
                        done.push(i);
                    }
                    Err(Retry::Yes(e)) => {
                        stats.send_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(url = %url, error = %e, "sending failed; trying the next site");
                    }
                }
                if done.len() >= dest.replicas {
                    break 'sent;
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
        let counter = match payload {
            Payload::RemoteWrite => &stats.sent_samples,
            Payload::LokiPush => &stats.sent_log_lines,
        };
        counter.fetch_add(u64::from(items), Ordering::Relaxed);
        buffer.ack(next)?;
    }
}

enum Retry {
    Yes(String),
    No(String),
}

async fn send(client: &reqwest::Client, url: &str, body: &[u8], payload: Payload) -> Result<(), Retry> {
    let req = client.post(url).header("Content-Type", "application/x-protobuf");
    // Loki's push API takes the snappy block without a Content-Encoding.
    let req = match payload {
        Payload::RemoteWrite => req
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0"),
        Payload::LokiPush => req,
    };
    let resp = req
        .timeout(Duration::from_secs(30))
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| Retry::Yes(e.to_string()))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    if status.is_server_error() || status.as_u16() == 429 {
        Err(Retry::Yes(format!("HTTP {status}: {text}")))
    } else {
        Err(Retry::No(format!("HTTP {status}: {text}")))
    }
}

/// A remote write 1.0 request body (snappy block format) for `samples`.
pub fn encode(samples: &[Sample]) -> Vec<u8> {
    let mut by_series: BTreeMap<&[(String, String)], Vec<proto::Sample>> = BTreeMap::new();
    for s in samples {
        by_series.entry(&s.labels).or_default().push(proto::Sample {
            value: s.v,
            timestamp: s.t,
            start_timestamp: 0,
        });
    }
    let req = proto::WriteRequest {
        timeseries: by_series
            .into_iter()
            .map(|(labels, samples)| proto::TimeSeries {
                labels: labels
                    .iter()
                    .map(|(n, v)| proto::Label {
                        name: n.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                samples,
                exemplars: Vec::new(),
                histograms: Vec::new(),
            })
            .collect(),
        metadata: Vec::new(),
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_checked_with_the_setting_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("agent.yml");
        std::fs::write(&p, "scrape_configs: []\nremote_write: []\n").expect("write");
        assert!(
            AgentConfig::load(&p)
                .unwrap_err()
                .contains("sites: name at least one site")
        );
        std::fs::write(
            &p,
            "remote_write: [{url: 'http://x/api/v1/write'}]\nscrape_configs:\n  - job_name: n\n    scrape_interval: 5s\n    scrape_timeout: 10s\n",
        )
        .expect("write");
        assert!(
            AgentConfig::load(&p)
                .unwrap_err()
                .contains("longer than scrape_interval")
        );
        std::fs::write(&p, "remote_write: [{url: 'u'}]\nbogus: 1\n").expect("write");
        assert!(AgentConfig::load(&p).unwrap_err().contains("bogus"));
        std::fs::write(&p, "remote_write: [{url: 'u'}]\nreplication_factor: 2\n").expect("write");
        assert!(AgentConfig::load(&p).unwrap_err().contains("replication_factor 2"));
        std::fs::write(&p, "remote_write: [{url: 'u'}, {url: 'v'}]\nreplication_factor: 2\n").expect("write");
        assert_eq!(AgentConfig::load(&p).expect("two sites").replication_factor, 2);
        // sites carry logs too; HTTP URLs beside them would be ambiguous.
        let refused = |yaml: &str| {
            std::fs::write(&p, yaml).expect("write");
            AgentConfig::load(&p).expect_err("refused")
        };
        let e = refused("sites: [{url: 'http://a:4317'}]\nremote_write: [{url: 'http://a/api/v1/write'}]\n");
        assert!(e.contains("set one or the other"), "{e}");
        let e = refused("sites: [{url: 'a:4317'}]\n");
        assert!(e.contains("sites[0].url \"a:4317\""), "{e}");
        let e = refused("sites: [{url: 'https://a:4317'}]\n");
        assert!(e.contains("TLS to a site is not supported yet"), "{e}");
        std::fs::write(
            &p,
            "sites: [{url: 'http://a:4317'}, {url: 'http://b:4317'}]\nreplication_factor: 2\nlog_files: [{paths: ['x.log']}]\n",
        )
        .expect("write");
        assert_eq!(AgentConfig::load(&p).expect("sites with logs").sites.len(), 2);
    }

    #[test]
    fn file_sd_groups_are_read_from_json_and_yaml() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(
            dir.path().join("a.json"),
            r#"[{"targets":["h1:9100"],"labels":{"rack":"r1"}}]"#,
        )
        .expect("write");
        std::fs::write(dir.path().join("b.yml"), "- targets: [h2:9100, h3:9100]\n").expect("write");
        let sc = ScrapeConfig {
            job_name: "node".into(),
            scrape_interval: None,
            scrape_timeout: None,
            metrics_path: default_path(),
            scheme: default_scheme(),
            static_configs: Vec::new(),
            file_sd_configs: vec![FileSdConfig {
                files: vec!["*.json".into(), "*.yml".into()],
            }],
            relabel_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
        };
        let groups = discover(&sc, dir.path());
        let targets: Vec<&str> = groups
            .iter()
            .flat_map(|g| g.targets.iter().map(String::as_str))
            .collect();
        assert_eq!(targets, vec!["h1:9100", "h2:9100", "h3:9100"]);
        assert_eq!(groups[0].labels.get("rack").map(String::as_str), Some("r1"));
    }
}

#[cfg(test)]
mod example_tests {
    #[test]
    fn the_example_config_loads() {
        let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../agent.example.yml"));
        let cfg = super::AgentConfig::load(path).expect("agent.example.yml loads");
        assert_eq!(cfg.scrape_configs.len(), 2);
        assert_eq!(cfg.sites.len(), 2);
    }
}
