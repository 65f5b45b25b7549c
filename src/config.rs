//! The configuration file (`--config`, YAML) and its validation.
//!
//! Every section has defaults, so an empty file is valid; unknown keys are
//! errors so a typo never silently falls back to a default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use sightline_ingest::otlp::OtlpOptions;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Listen addresses and data directory.
    pub server: ServerSection,
    /// Storage settings.
    pub storage: StorageSection,
    /// Ingest limits.
    pub ingest: IngestSection,
    /// OTLP translation, spelled as in Prometheus' `otlp:` block.
    pub otlp: OtlpOptions,
    /// PromQL engine limits (Prometheus' `--query.*` flags).
    pub query: QuerySection,
    /// Rule evaluation defaults, spelled as in Prometheus.
    pub global: GlobalSection,
    /// Globs of Prometheus-format rule files, relative to this file.
    pub rule_files: Vec<String>,
    /// External Alertmanagers to send alerts to, as in Prometheus.
    pub alerting: AlertingSection,
    /// An Alertmanager-format file for the built-in notification routing.
    pub alertmanager_config: Option<PathBuf>,
    /// Alert state restoration and re-sending (Prometheus'
    /// `--rules.alert.*` flags).
    pub rules: RulesSection,
    /// The memory of what should be reporting.
    pub inventory: InventorySection,
    /// Log storage, ingest limits and LogQL limits.
    pub logs: LogsSection,
    /// This node's site and the peer sites its queries span.
    pub site: SiteSection,
}

/// `site:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteSection {
    /// This site's name, e.g. `dc1`.
    pub name: Option<String>,
    /// The other sites, each `{name, url}`: queries here span them.
    pub peers: Vec<PeerSection>,
    /// How long a peer may take to answer a read before it is left out
    /// with a warning (default `1s`).
    pub peer_timeout: Option<String>,
    /// How long each site waits per position (sites sorted by name) before
    /// sending a notification the sites before it may have sent (default
    /// `15s`, as Alertmanager's `--cluster.peer-timeout`).
    pub peer_wait: Option<String>,
    /// How often the peers are probed (recorded as `sightline_peer_up`;
    /// default `5s`).
    pub probe_interval: Option<String>,
}

/// One entry of `site.peers`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeerSection {
    /// The peer site's name, used in warnings.
    pub name: String,
    /// Its HTTP base URL, e.g. `http://10.2.0.7:9780`.
    pub url: String,
}

/// `logs:` (Loki's limit names in parentheses).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsSection {
    /// How long log blocks are kept (default: `storage.retention`).
    pub retention: Option<String>,
    /// fsync the logs WAL before acknowledging (default true).
    pub wal_fsync: Option<bool>,
    /// Bytes of lines in memory that trigger a cut to a block.
    pub head_max_bytes: Option<u64>,
    /// Head age that triggers a cut, e.g. `15m`.
    pub head_max_age: Option<String>,
    /// zstd level of log blocks cut from the head (default 1).
    pub zstd_level: Option<i32>,
    /// zstd level of merged log blocks (default 6).
    pub compaction_zstd_level: Option<i32>,
    /// Blocks holding fewer bytes of lines than this are merged (default
    /// 256 MiB; 0 merges none).
    pub compaction_max_block_bytes: Option<u64>,
    /// Longest line accepted (`max_line_size`).
    pub max_line_bytes: Option<usize>,
    /// Labels per stream (`max_label_names_per_series`).
    pub max_labels_per_stream: Option<usize>,
    /// Active streams per tenant (`max_global_streams_per_user`).
    pub max_streams_per_tenant: Option<usize>,
    /// Entries older than this are refused (`reject_old_samples_max_age`).
    pub reject_older_than: Option<String>,
    /// Entries this far ahead of the clock are refused (`creation_grace_period`).
    pub future_tolerance: Option<String>,
    /// Sustained bytes/s per tenant, 0 for none (`ingestion_rate_mb`).
    pub ingestion_rate_bytes: Option<u64>,
    /// Burst bytes per tenant (`ingestion_burst_size_mb`).
    pub ingestion_burst_bytes: Option<u64>,
    /// Largest push body in bytes.
    pub max_request_bytes: Option<usize>,
    /// Largest `limit` of a log query (`max_entries_limit_per_query`).
    pub max_entries_per_query: Option<usize>,
    /// Series one metric query may produce (`max_query_series`).
    pub max_series_per_query: Option<usize>,
    /// Series a range aggregation may build before aggregating.
    pub max_inner_series_per_query: Option<usize>,
    /// Bytes of lines one query may read, 0 for no limit.
    pub max_bytes_scanned: Option<u64>,
    /// Longest a LogQL query may run, e.g. `2m`.
    pub query_timeout: Option<String>,
    /// OTLP resource attributes that become stream labels (default:
    /// Loki's list, `service.name`, `k8s.pod.name`, ...).
    pub otlp_stream_attributes: Option<Vec<String>>,
    /// Syslog listeners (off unless an address is given).
    pub syslog: SyslogSection,
    /// Globs of Loki ruler files (rules with LogQL expressions), relative
    /// to this file; evaluated and routed like `rule_files`.
    pub rule_files: Vec<String>,
    /// Tenant whose logs those rules read (default `fake`).
    pub rules_tenant: Option<String>,
}

/// `logs.syslog:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogSection {
    /// TCP address (RFC 6587 octet-counted or newline framing).
    pub listen_tcp: Option<String>,
    /// UDP address.
    pub listen_udp: Option<String>,
    /// The `job` label of syslog streams (default `syslog`).
    pub job: Option<String>,
    /// Tenant of syslog entries (default `fake`).
    pub tenant: Option<String>,
}

/// `inventory:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InventorySection {
    /// Selector whose series mean "reporting" (default `up`).
    pub source: Option<String>,
    /// Labels identifying a target (default site, cluster, instance).
    pub labels: Option<Vec<String>>,
    /// How often to look (default: global.evaluation_interval).
    pub interval: Option<String>,
    /// Forget targets silent this long (default 7d).
    pub retention: Option<String>,
}

/// `global:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalSection {
    /// How often rule groups are evaluated by default, e.g. `1m`.
    pub evaluation_interval: Option<String>,
    /// How far back rules evaluate by default, e.g. `30s`.
    pub rule_query_offset: Option<String>,
    /// Labels added to alerts sent out (not to stored series).
    pub external_labels: BTreeMap<String, String>,
}

/// `alerting:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingSection {
    /// The Alertmanagers every alert is sent to.
    pub alertmanagers: Vec<AlertmanagerSection>,
}

/// One entry of `alerting.alertmanagers`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerSection {
    /// `http` (default) or `https`.
    pub scheme: Option<String>,
    /// Path prefix of the Alertmanager's API.
    pub path_prefix: Option<String>,
    /// Per-request timeout, e.g. `10s`.
    pub timeout: Option<String>,
    /// Only `v2` is spoken.
    pub api_version: Option<String>,
    /// `host:port` targets.
    pub static_configs: Vec<StaticConfig>,
}

/// `static_configs` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaticConfig {
    /// `host:port` of each Alertmanager.
    pub targets: Vec<String>,
}

/// `rules:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesSection {
    /// Saved alert state older than this is not restored (default 1h).
    pub for_outage_tolerance: Option<String>,
    /// A restored pending alert waits at least this long (default 10m).
    pub for_grace_period: Option<String>,
    /// Least time between re-sending a firing alert (default 1m).
    pub resend_delay: Option<String>,
    /// URL this server is reached at, for links in alerts.
    pub external_url: Option<String>,
}

/// `query:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuerySection {
    /// How far back an instant selector looks, e.g. `5m`.
    pub lookback_delta: Option<String>,
    /// Longest a query may run, e.g. `2m`.
    pub timeout: Option<String>,
    /// Most samples one query may read.
    pub max_samples: Option<usize>,
    /// Most queries evaluated at once; more wait.
    pub max_concurrency: Option<usize>,
}

/// `server:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Data directory (flag `--data-dir` wins).
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address (flag `--http-listen` wins).
    pub http_listen: Option<String>,
    /// OTLP gRPC listen address (flag `--grpc-listen` wins).
    pub grpc_listen: Option<String>,
}

/// `storage:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// How long blocks are kept, e.g. `15d` (flag `--retention` wins).
    pub retention: Option<String>,
    /// How far behind the newest sample writes are still accepted.
    pub out_of_order_window: Option<String>,
    /// How far ahead of the clock writes are accepted.
    pub future_tolerance: Option<String>,
    /// fsync the WAL before acknowledging (default true).
    pub wal_fsync: Option<bool>,
    /// WAL segment size in bytes.
    pub wal_segment_bytes: Option<u64>,
    /// Head samples that trigger a flush to blocks.
    pub head_max_samples: Option<u64>,
    /// Head age that triggers a flush, e.g. `15m`.
    pub head_max_age: Option<String>,
    /// Block time partition, e.g. `2h`.
    pub block_duration: Option<String>,
    /// zstd level of block files (1-22).
    pub zstd_level: Option<i32>,
}

/// `ingest:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSection {
    /// Largest request body in bytes.
    pub max_request_bytes: Option<usize>,
    /// Largest decompressed body in bytes.
    pub max_decoded_bytes: Option<usize>,
    /// Concurrent write requests; more get 429.
    pub max_inflight_requests: Option<usize>,
    /// Labels per series.
    pub max_labels_per_series: Option<usize>,
    /// Bytes per label name or value.
    pub max_label_bytes: Option<usize>,
}

/// Command-line values that override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--data-dir`
    pub data_dir: Option<PathBuf>,
    /// `--http-listen`
    pub http_listen: Option<String>,
    /// `--grpc-listen`
    pub grpc_listen: Option<String>,
    /// `--retention`
    pub retention: Option<String>,
}

/// The checked configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data directory.
    pub data_dir: PathBuf,
    /// HTTP listen address.
    pub http_listen: SocketAddr,
    /// gRPC listen address.
    pub grpc_listen: SocketAddr,
    /// Storage options.
    pub storage: sightline_storage::DbOptions,
    /// Ingest options.
    pub ingest: sightline_ingest::IngestOptions,
    /// Query engine options.
    pub query: sightline_query::promql::EngineOptions,
    /// Rules and alert delivery.
    pub rules: RulesConfig,
    /// Logs.
    pub logs: LogsConfig,
    /// This site and its peers.
    pub site: SiteConfig,
}

/// Site settings, checked.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// This site's name (`local` when unset).
    pub name: String,
    /// The peer sites.
    pub peers: Vec<sightline_query::fanout::Peer>,
    /// Per-read timeout of a peer.
    pub peer_timeout: Duration,
    /// Notification wait per position.
    pub peer_wait: Duration,
    /// Peer probe interval.
    pub probe_interval: Duration,
}

impl SiteConfig {
    /// This site's position among all sites sorted by name.
    pub fn position(&self) -> usize {
        self.peers.iter().filter(|p| p.name < self.name).count()
    }
}

/// Log settings, checked.
#[derive(Debug, Clone)]
pub struct LogsConfig {
    /// Storage.
    pub db: sightline_storage::logs::LogDbOptions,
    /// Push limits.
    pub ingest: sightline_ingest::logstore::LogIngestOptions,
    /// Query limits.
    pub query: sightline_query::logql::LogqlLimits,
    /// Syslog listeners, when configured.
    pub syslog: Option<sightline_ingest::syslog::SyslogOptions>,
}

/// Rule evaluation settings, checked.
#[derive(Debug, Clone)]
pub struct RulesConfig {
    /// Rule file globs, made absolute against the config file's directory.
    pub files: Vec<String>,
    /// Loki ruler file globs (LogQL expressions), likewise absolute.
    pub log_files: Vec<String>,
    /// Tenant whose logs LogQL rules read.
    pub log_tenant: String,
    /// Group defaults.
    pub defaults: sightline_alerting::group::GroupDefaults,
    /// Added to alerts sent out.
    pub external_labels: BTreeMap<String, String>,
    /// For links in alerts.
    pub external_url: String,
    /// Least time between re-sending a firing alert, ms.
    pub resend_delay: i64,
    /// Restoring alert state after a restart.
    pub restore: sightline_alerting::manager::RestoreOptions,
    /// External Alertmanagers.
    pub alertmanagers: Vec<sightline_alerting::notifier::AlertmanagerTarget>,
    /// The built-in Alertmanager's configuration file, if any.
    pub alertmanager_config: Option<PathBuf>,
    /// The inventory.
    pub inventory: sightline_alerting::inventory::InventoryOptions,
}

impl RulesConfig {
    /// The rule files the globs match now, sorted, each once.
    pub fn expand_files(&self) -> anyhow::Result<Vec<PathBuf>> {
        expand_globs(&self.files, "rule_files")
    }

    /// The Loki ruler files the `logs.rule_files` globs match now.
    pub fn expand_log_files(&self) -> anyhow::Result<Vec<PathBuf>> {
        expand_globs(&self.log_files, "logs.rule_files")
    }
}

fn expand_globs(patterns: &[String], setting: &str) -> anyhow::Result<Vec<PathBuf>> {
    {
        let mut out = std::collections::BTreeSet::new();
        for pattern in patterns {
            let paths = glob::glob(pattern).with_context(|| format!("{setting}: invalid pattern {pattern:?}"))?;
            for p in paths {
                out.insert(p.with_context(|| format!("{setting}: cannot read a match of {pattern:?}"))?);
            }
        }
        Ok(out.into_iter().collect())
    }
}

/// Parses a Prometheus duration such as `15d`, `1h30m`, `500ms`.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    sightline_storage::parse_duration(s).map_err(anyhow::Error::msg)
}

fn addr(what: &str, s: &str) -> anyhow::Result<SocketAddr> {
    s.parse()
        .with_context(|| format!("invalid {what} address {s:?}: expected HOST:PORT such as 127.0.0.1:9780"))
}

impl Config {
    /// Reads the file (if any), applies flag overrides and validates.
    pub fn load(path: Option<&std::path::Path>, flags: &Overrides) -> anyhow::Result<Config> {
        let file = match path {
            None => FileConfig::default(),
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("cannot read config file {}", p.display()))?;
                Self::parse(&text).with_context(|| format!("invalid config file {}", p.display()))?
            }
        };
        let base = path
            .and_then(|p| p.parent())
            .map(|d| {
                if d.as_os_str().is_empty() {
                    std::path::Path::new(".")
                } else {
                    d
                }
            })
            .unwrap_or(std::path::Path::new("."));
        let mut cfg = Self::resolve(file, flags)?;
        let absolute = |files: &[String]| -> Vec<String> {
            files
                .iter()
                .map(|f| {
                    if std::path::Path::new(f).is_absolute() {
                        f.clone()
                    } else {
                        base.join(f).to_string_lossy().into_owned()
                    }
                })
                .collect()
        };
        cfg.rules.files = absolute(&cfg.rules.files);
        cfg.rules.log_files = absolute(&cfg.rules.log_files);
        cfg.rules.alertmanager_config = cfg
            .rules
            .alertmanager_config
            .take()
            .map(|p| if p.is_absolute() { p } else { base.join(p) });
        Ok(cfg)
    }

    /// Parses YAML text.
    pub fn parse(text: &str) -> anyhow::Result<FileConfig> {
        if text.trim().is_empty() {
            return Ok(FileConfig::default());
        }
        Ok(serde_saphyr::from_str(text)?)
    }

    /// Merges file and flags into a checked configuration.
    pub fn resolve(file: FileConfig, flags: &Overrides) -> anyhow::Result<Config> {
        let data_dir = flags
            .data_dir
            .clone()
            .or(file.server.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let http_listen = addr(
            "HTTP listen",
            flags
                .http_listen
                .as_deref()
                .or(file.server.http_listen.as_deref())
                .unwrap_or("127.0.0.1:9780"),
        )?;
        let grpc_listen = addr(
            "gRPC listen",
            flags
                .grpc_listen
                .as_deref()
                .or(file.server.grpc_listen.as_deref())
                .unwrap_or("127.0.0.1:4317"),
        )?;
        let mut storage = sightline_storage::DbOptions::new(data_dir.clone());
        let st = file.storage;
        let dur = |name: &str, v: Option<&str>, d: Duration| -> anyhow::Result<Duration> {
            v.map_or(Ok(d), |s| parse_duration(s).with_context(|| format!("storage.{name}")))
        };
        storage.retention = dur(
            "retention",
            flags.retention.as_deref().or(st.retention.as_deref()),
            storage.retention,
        )?;
        storage.out_of_order_window = dur(
            "out_of_order_window",
            st.out_of_order_window.as_deref(),
            storage.out_of_order_window,
        )?;
        storage.future_tolerance = dur(
            "future_tolerance",
            st.future_tolerance.as_deref(),
            storage.future_tolerance,
        )?;
        storage.head_max_age = dur("head_max_age", st.head_max_age.as_deref(), storage.head_max_age)?;
        storage.partition = dur("block_duration", st.block_duration.as_deref(), storage.partition)?;
        storage.wal_fsync = st.wal_fsync.unwrap_or(storage.wal_fsync);
        storage.wal_segment_bytes = st.wal_segment_bytes.unwrap_or(storage.wal_segment_bytes);
        storage.head_max_samples = st.head_max_samples.unwrap_or(storage.head_max_samples);
        storage.zstd_level = st.zstd_level.unwrap_or(storage.zstd_level);
        if storage.retention.is_zero() {
            bail!("storage.retention must be positive");
        }
        if storage.partition < Duration::from_secs(60) {
            bail!("storage.block_duration must be at least 1m");
        }
        if !(1..=22).contains(&storage.zstd_level) {
            bail!(
                "storage.zstd_level must be between 1 and 22, got {}",
                storage.zstd_level
            );
        }
        if storage.head_max_samples == 0 {
            bail!("storage.head_max_samples must be positive");
        }
        let mut ingest = sightline_ingest::IngestOptions::default();
        let ing = file.ingest;
        ingest.max_request_bytes = ing.max_request_bytes.unwrap_or(ingest.max_request_bytes);
        ingest.max_decoded_bytes = ing.max_decoded_bytes.unwrap_or(ingest.max_decoded_bytes);
        ingest.max_inflight_requests = ing.max_inflight_requests.unwrap_or(ingest.max_inflight_requests);
        ingest.label_limits.max_labels = ing.max_labels_per_series.unwrap_or(ingest.label_limits.max_labels);
        ingest.label_limits.max_label_bytes = ing.max_label_bytes.unwrap_or(ingest.label_limits.max_label_bytes);
        ingest.otlp = file.otlp;
        storage.label_limits = ingest.label_limits;
        if ingest.max_request_bytes == 0 || ingest.max_inflight_requests == 0 {
            bail!("ingest.max_request_bytes and ingest.max_inflight_requests must be positive");
        }
        let mut query = sightline_query::promql::EngineOptions::default();
        let q = file.query;
        let qdur = |name: &str, v: Option<&str>, d: Duration| -> anyhow::Result<Duration> {
            v.map_or(Ok(d), |s| parse_duration(s).with_context(|| format!("query.{name}")))
        };
        query.lookback_delta = qdur("lookback_delta", q.lookback_delta.as_deref(), query.lookback_delta)?;
        query.timeout = qdur("timeout", q.timeout.as_deref(), query.timeout)?;
        query.max_samples = q.max_samples.unwrap_or(query.max_samples);
        query.max_concurrent = q.max_concurrency.unwrap_or(query.max_concurrent);
        if query.lookback_delta.is_zero() || query.timeout.is_zero() {
            bail!("query.lookback_delta and query.timeout must be positive");
        }
        if query.max_samples == 0 || query.max_concurrent == 0 {
            bail!("query.max_samples and query.max_concurrency must be positive");
        }
        let rules = resolve_rules(
            &file.global,
            file.rule_files,
            &file.alerting,
            file.alertmanager_config.as_deref(),
            &file.rules,
            &file.inventory,
            http_listen,
        )?;
        let logs = resolve_logs(&file.logs, &data_dir, storage.retention)?;
        let site = resolve_site(&file.site)?;
        let mut rules = rules;
        rules.log_files = file.logs.rule_files.clone();
        if let Some(t) = &file.logs.rules_tenant {
            sightline_ingest::logstore::check_tenant(t).map_err(|e| anyhow::anyhow!("logs.rules_tenant: {e}"))?;
            rules.log_tenant = t.clone();
        }
        Ok(Config {
            data_dir,
            http_listen,
            grpc_listen,
            storage,
            ingest,
            query,
            rules,
            logs,
            site,
        })
    }
}

fn resolve_site(s: &SiteSection) -> anyhow::Result<SiteConfig> {
    let name = s.name.clone().unwrap_or_else(|| "local".into());
    let peer_timeout = match &s.peer_timeout {
        Some(t) => parse_duration(t).context("site.peer_timeout")?,
        None => Duration::from_secs(1),
    };
    if peer_timeout.is_zero() {
        bail!("site.peer_timeout must be positive");
    }
    let peer_wait = match &s.peer_wait {
        Some(t) => parse_duration(t).context("site.peer_wait")?,
        None => Duration::from_secs(15),
    };
    let probe_interval = match &s.probe_interval {
        Some(t) => parse_duration(t).context("site.probe_interval")?,
        None => Duration::from_secs(5),
    };
    if probe_interval.is_zero() {
        bail!("site.probe_interval must be positive");
    }
    let mut peers = Vec::new();
    for (i, p) in s.peers.iter().enumerate() {
        if p.name.is_empty() || p.name == name {
            bail!("site.peers[{i}].name must be set and differ from site.name ({name:?})");
        }
        if !(p.url.starts_with("http://") || p.url.starts_with("https://")) {
            bail!("site.peers[{i}].url {:?} must be an http:// or https:// URL", p.url);
        }
        peers.push(sightline_query::fanout::Peer {
            name: p.name.clone(),
            url: p.url.clone(),
        });
    }
    Ok(SiteConfig {
        name,
        peers,
        peer_timeout,
        peer_wait,
        probe_interval,
    })
}

fn resolve_logs(l: &LogsSection, data_dir: &std::path::Path, retention: Duration) -> anyhow::Result<LogsConfig> {
    let dur = |name: &str, v: Option<&str>, d: Duration| -> anyhow::Result<Duration> {
        v.map_or(Ok(d), |s| parse_duration(s).with_context(|| format!("logs.{name}")))
    };
    let mut db = sightline_storage::logs::LogDbOptions::new(data_dir.join("logs"));
    db.retention = dur("retention", l.retention.as_deref(), retention)?;
    db.wal_fsync = l.wal_fsync.unwrap_or(db.wal_fsync);
    db.head_max_bytes = l.head_max_bytes.unwrap_or(db.head_max_bytes);
    db.head_max_age = dur("head_max_age", l.head_max_age.as_deref(), db.head_max_age)?;
    db.zstd_level = l.zstd_level.unwrap_or(db.zstd_level);
    db.compaction_zstd_level = l.compaction_zstd_level.unwrap_or(db.compaction_zstd_level);
    db.compaction_max_block_bytes = l.compaction_max_block_bytes.unwrap_or(db.compaction_max_block_bytes);
    for (name, level) in [
        ("zstd_level", db.zstd_level),
        ("compaction_zstd_level", db.compaction_zstd_level),
    ] {
        if !(1..=22).contains(&level) {
            bail!("logs.{name} must be between 1 and 22, got {level}");
        }
    }
    let lim = &mut db.limits;
    lim.max_line_bytes = l.max_line_bytes.unwrap_or(lim.max_line_bytes);
    lim.max_labels_per_stream = l.max_labels_per_stream.unwrap_or(lim.max_labels_per_stream);
    lim.max_streams_per_tenant = l.max_streams_per_tenant.unwrap_or(lim.max_streams_per_tenant);
    lim.max_age = dur("reject_older_than", l.reject_older_than.as_deref(), lim.max_age)?;
    lim.future_tolerance = dur("future_tolerance", l.future_tolerance.as_deref(), lim.future_tolerance)?;
    if db.retention.is_zero() || db.head_max_bytes == 0 || lim.max_line_bytes == 0 {
        bail!("logs.retention, logs.head_max_bytes and logs.max_line_bytes must be positive");
    }
    let mut ingest = sightline_ingest::logstore::LogIngestOptions::default();
    ingest.rate_bytes_per_sec = l.ingestion_rate_bytes.unwrap_or(ingest.rate_bytes_per_sec);
    ingest.burst_bytes = l.ingestion_burst_bytes.unwrap_or(ingest.burst_bytes);
    ingest.max_request_bytes = l.max_request_bytes.unwrap_or(ingest.max_request_bytes);
    if let Some(a) = &l.otlp_stream_attributes {
        ingest.otlp_stream_attributes = a.clone();
    }
    if ingest.max_request_bytes == 0 {
        bail!("logs.max_request_bytes must be positive");
    }
    let mut query = sightline_query::logql::LogqlLimits::default();
    query.max_entries = l.max_entries_per_query.unwrap_or(query.max_entries);
    query.max_series = l.max_series_per_query.unwrap_or(query.max_series);
    query.max_inner_series = l.max_inner_series_per_query.unwrap_or(query.max_inner_series);
    query.max_bytes_scanned = l.max_bytes_scanned.unwrap_or(query.max_bytes_scanned);
    query.timeout = dur("query_timeout", l.query_timeout.as_deref(), query.timeout)?;
    if query.timeout.is_zero() {
        bail!("logs.query_timeout must be positive");
    }
    let sl = &l.syslog;
    let tcp = sl
        .listen_tcp
        .as_deref()
        .map(|a| addr("logs.syslog.listen_tcp", a))
        .transpose()?;
    let udp = sl
        .listen_udp
        .as_deref()
        .map(|a| addr("logs.syslog.listen_udp", a))
        .transpose()?;
    let syslog = (tcp.is_some() || udp.is_some()).then(|| sightline_ingest::syslog::SyslogOptions {
        tcp,
        udp,
        job: sl.job.clone().unwrap_or_else(|| "syslog".into()),
        tenant: sl
            .tenant
            .clone()
            .unwrap_or_else(|| sightline_storage::logs::DEFAULT_TENANT.into()),
    });
    if let Some(t) = &sl.tenant {
        sightline_ingest::logstore::check_tenant(t).map_err(|e| anyhow::anyhow!("logs.syslog.tenant: {e}"))?;
    }
    Ok(LogsConfig {
        db,
        ingest,
        query,
        syslog,
    })
}

fn resolve_rules(
    global: &GlobalSection,
    files: Vec<String>,
    alerting: &AlertingSection,
    alertmanager_config: Option<&std::path::Path>,
    rules: &RulesSection,
    inventory: &InventorySection,
    http_listen: SocketAddr,
) -> anyhow::Result<RulesConfig> {
    let ms = |name: &str, v: Option<&str>, d: Duration| -> anyhow::Result<i64> {
        let d = v.map_or(Ok(d), |s| parse_duration(s).with_context(|| name.to_string()))?;
        Ok(d.as_millis() as i64)
    };
    let interval = ms(
        "global.evaluation_interval",
        global.evaluation_interval.as_deref(),
        Duration::from_secs(60),
    )?;
    if interval <= 0 {
        bail!("global.evaluation_interval must be positive");
    }
    for k in global.external_labels.keys() {
        if !sightline_storage::labels::is_valid_label_name(k) {
            bail!("global.external_labels: invalid label name {k:?}");
        }
    }
    let mut alertmanagers = Vec::new();
    for (i, am) in alerting.alertmanagers.iter().enumerate() {
        let scheme = am.scheme.as_deref().unwrap_or("http");
        if scheme != "http" {
            bail!("alerting.alertmanagers[{i}].scheme: only http is supported, got {scheme:?}");
        }
        if let Some(v) = am.api_version.as_deref()
            && v != "v2"
        {
            bail!("alerting.alertmanagers[{i}].api_version: only v2 is supported, got {v:?}");
        }
        let timeout = am
            .timeout
            .as_deref()
            .map_or(Ok(Duration::from_secs(10)), parse_duration)
            .with_context(|| format!("alerting.alertmanagers[{i}].timeout"))?;
        let prefix = am.path_prefix.as_deref().unwrap_or("").trim_end_matches('/');
        for sc in &am.static_configs {
            for t in &sc.targets {
                if t.is_empty() || t.contains('/') {
                    bail!("alerting.alertmanagers[{i}]: invalid target {t:?}, expected host:port");
                }
                let prefix = if prefix.is_empty() || prefix.starts_with('/') {
                    prefix.to_string()
                } else {
                    format!("/{prefix}")
                };
                alertmanagers.push(sightline_alerting::notifier::AlertmanagerTarget {
                    base_url: format!("{scheme}://{t}{prefix}"),
                    timeout,
                });
            }
        }
    }
    Ok(RulesConfig {
        files,
        log_files: Vec::new(),
        log_tenant: sightline_storage::logs::DEFAULT_TENANT.to_string(),
        defaults: sightline_alerting::group::GroupDefaults {
            interval,
            query_offset: ms(
                "global.rule_query_offset",
                global.rule_query_offset.as_deref(),
                Duration::ZERO,
            )?,
        },
        external_labels: global.external_labels.clone(),
        external_url: rules
            .external_url
            .clone()
            .unwrap_or_else(|| format!("http://{http_listen}")),
        resend_delay: ms(
            "rules.resend_delay",
            rules.resend_delay.as_deref(),
            Duration::from_secs(60),
        )?,
        restore: sightline_alerting::manager::RestoreOptions {
            outage_tolerance: ms(
                "rules.for_outage_tolerance",
                rules.for_outage_tolerance.as_deref(),
                Duration::from_secs(3600),
            )?,
            for_grace_period: ms(
                "rules.for_grace_period",
                rules.for_grace_period.as_deref(),
                Duration::from_secs(600),
            )?,
        },
        alertmanagers,
        alertmanager_config: alertmanager_config.map(std::path::Path::to_path_buf),
        inventory: resolve_inventory(inventory, interval)?,
    })
}

fn resolve_inventory(
    s: &InventorySection,
    default_interval: i64,
) -> anyhow::Result<sightline_alerting::inventory::InventoryOptions> {
    let mut o = sightline_alerting::inventory::InventoryOptions {
        interval: default_interval,
        ..Default::default()
    };
    if let Some(src) = &s.source {
        sightline_query::promql::parse(src).map_err(|e| anyhow::anyhow!("inventory.source: {e}"))?;
        o.source = src.clone();
    }
    if let Some(l) = &s.labels {
        if l.is_empty() || l.iter().any(|n| !sightline_storage::labels::is_valid_label_name(n)) {
            bail!("inventory.labels: give one or more valid label names, e.g. [site, cluster, instance]");
        }
        o.labels = l.clone();
    }
    if let Some(i) = &s.interval {
        o.interval = parse_duration(i).context("inventory.interval")?.as_millis() as i64;
    }
    if let Some(r) = &s.retention {
        o.retention = parse_duration(r).context("inventory.retention")?.as_millis() as i64;
    }
    if o.interval <= 0 || o.retention <= 0 {
        bail!("inventory.interval and inventory.retention must be positive");
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_prometheus() {
        assert_eq!(parse_duration("15d").ok(), Some(Duration::from_secs(15 * 86400)));
        assert_eq!(parse_duration("1h30m").ok(), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms").ok(), Some(Duration::from_millis(500)));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn example_config_loads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sightline.example.yml");
        let cfg = Config::load(Some(&path), &Overrides::default()).expect("example config is valid");
        assert_eq!(cfg.storage.retention, Duration::from_secs(15 * 86400));
        assert_eq!(
            cfg.ingest.otlp.promote_resource_attributes,
            vec!["k8s.cluster.name", "k8s.namespace.name"]
        );
        assert_eq!(cfg.query.lookback_delta, Duration::from_secs(300));
        assert_eq!(cfg.query.max_samples, 50_000_000);
        assert_eq!(cfg.rules.defaults.interval, 60_000);
        assert_eq!(cfg.rules.external_labels["site"], "fra1");
        assert!(cfg.rules.files[0].ends_with("rules/*.yml"), "{:?}", cfg.rules.files);
        assert!(std::path::Path::new(&cfg.rules.files[0]).is_absolute());
        assert_eq!(cfg.rules.resend_delay, 60_000);
        assert_eq!((cfg.logs.db.head_max_bytes, cfg.logs.db.zstd_level), (64 << 20, 1));
        assert_eq!(cfg.logs.db.compaction_max_block_bytes, 256 << 20);
    }

    #[test]
    fn alerting_sections_are_checked() {
        let cfg = Config::resolve(
            Config::parse(
                "alerting:\n  alertmanagers:\n    - path_prefix: am\n      static_configs: [{targets: ['127.0.0.1:9093']}]\n",
            )
            .expect("parse"),
            &Overrides::default(),
        )
        .expect("resolve");
        assert_eq!(cfg.rules.alertmanagers[0].base_url, "http://127.0.0.1:9093/am");
        for (bad, word) in [
            ("alerting:\n  alertmanagers:\n    - scheme: ftp\n", "scheme"),
            ("alerting:\n  alertmanagers:\n    - api_version: v1\n", "api_version"),
            ("global:\n  evaluation_interval: 0s\n", "evaluation_interval"),
            ("global:\n  external_labels: {'bad-name': x}\n", "external_labels"),
        ] {
            let err = Config::resolve(Config::parse(bad).expect("parse"), &Overrides::default()).expect_err(bad);
            assert!(format!("{err:#}").contains(word), "{bad}: {err:#}");
        }
    }

    #[test]
    fn query_limits_are_read_and_checked() {
        let cfg = Config::resolve(
            Config::parse("query:\n  lookback_delta: 10m\n  max_samples: 1000\n").expect("parse"),
            &Overrides::default(),
        )
        .expect("resolve");
        assert_eq!(cfg.query.lookback_delta, Duration::from_secs(600));
        assert_eq!(cfg.query.max_samples, 1000);
        let err = Config::resolve(
            Config::parse("query:\n  max_concurrency: 0\n").expect("parse"),
            &Overrides::default(),
        )
        .expect_err("zero");
        assert!(format!("{err:#}").contains("max_concurrency"), "{err:#}");
    }

    #[test]
    fn sites_and_peers_are_read_and_checked() {
        let cfg = Config::resolve(
            Config::parse("site:\n  name: dc1\n  peers:\n    - {name: dc2, url: 'http://10.0.0.2:9780'}\n")
                .expect("parse"),
            &Overrides::default(),
        )
        .expect("resolve");
        assert_eq!(cfg.site.name, "dc1");
        assert_eq!(cfg.site.peers[0].url, "http://10.0.0.2:9780");
        assert_eq!(cfg.site.peer_timeout, Duration::from_secs(1));
        assert_eq!(cfg.site.peer_wait, Duration::from_secs(15));
        assert_eq!(cfg.site.position(), 0);
        for (bad, word) in [
            (
                "site:\n  name: dc1\n  peers: [{name: dc1, url: 'http://x'}]\n",
                "differ from site.name",
            ),
            (
                "site:\n  peers: [{name: dc2, url: '10.0.0.2:9780'}]\n",
                "http:// or https://",
            ),
            ("site:\n  peer_timeout: 0s\n", "peer_timeout"),
        ] {
            let err = Config::resolve(Config::parse(bad).expect("parse"), &Overrides::default()).expect_err(bad);
            assert!(format!("{err:#}").contains(word), "{bad}: {err:#}");
        }
    }

    #[test]
    fn flags_override_the_file_and_unknown_keys_fail() {
        let file = Config::parse("storage:\n  retention: 30d\n").expect("parse");
        let flags = Overrides {
            retention: Some("2d".into()),
            ..Default::default()
        };
        let cfg = Config::resolve(file, &flags).expect("resolve");
        assert_eq!(cfg.storage.retention, Duration::from_secs(2 * 86400));
        let err = Config::parse("storage:\n  retension: 30d\n").expect_err("typo");
        assert!(format!("{err:#}").contains("retension"), "{err:#}");
        let err = Config::resolve(
            Config::parse("storage:\n  zstd_level: 40\n").expect("parse"),
            &Overrides::default(),
        )
        .expect_err("bad level");
        assert!(err.to_string().contains("zstd_level"));
        let err = Config::resolve(
            Config::parse("logs:\n  compaction_zstd_level: 0\n").expect("parse"),
            &Overrides::default(),
        )
        .expect_err("bad logs level");
        assert!(
            format!("{err:#}").contains("logs.compaction_zstd_level must be between 1 and 22, got 0"),
            "{err:#}"
        );
    }
}
