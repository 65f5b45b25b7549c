//! Wiring the rule engine to this node: PromQL through the local engine,
//! rule output into local storage, alerts to the configured
//! Alertmanagers, and reloading the rule files.

use std::path::PathBuf;
use std::sync::Arc;

use sightline_alerting::am::store::AmAlert;
use sightline_alerting::am::{Alertmanager, AmConfig};
use sightline_alerting::group::{EvalDeps, NotifyAlert, load_files, load_files_lang};
use sightline_alerting::inventory::Inventory;
use sightline_alerting::manager::RuleManager;
use sightline_alerting::notifier::Notifier;
use sightline_alerting::rule::{AppendFn, OutputSample, QueryFn, Sample};
use sightline_alerting::rules::Lang;
use sightline_query::promql::Engine;
use sightline_query::promql::value::QueryValue;
use sightline_storage::{Db, SeriesReader, WriteBatch};

use crate::config::{Config, Overrides, RulesConfig};

/// PromQL instant queries through `engine` against `reader` (the local
/// database, or in-memory series in rule unit tests).
pub fn query_fn<R: SeriesReader>(engine: Arc<Engine>, reader: Arc<R>) -> QueryFn {
    Arc::new(move |expr: String, t: i64| {
        let (engine, reader) = (engine.clone(), reader.clone());
        Box::pin(async move {
            let result = engine.instant(&*reader, &expr, t).await.map_err(|e| e.to_string())?;
            match result.value {
                QueryValue::Vector(v) => Ok(v
                    .into_iter()
                    .map(|(labels, p)| Sample {
                        labels: labels.0.into_iter().collect(),
                        value: p.v,
                    })
                    .collect()),
                QueryValue::Scalar(p) => Ok(vec![Sample {
                    labels: Default::default(),
                    value: p.v,
                }]),
                _ => Err("rule result is not a vector or scalar".into()),
            }
        })
    })
}

/// LogQL instant metric queries (Loki ruler rules) over `logs` as
/// `tenant`, within `limits`; times in ms as the rule engine uses them.
pub fn logql_query_fn(
    logs: Arc<dyn sightline_storage::logs::LogReader>,
    limits: Arc<sightline_query::logql::LogqlLimits>,
    tenant: String,
) -> QueryFn {
    use sightline_query::logql::{self, Context, Expr, Steps};
    Arc::new(move |expr: String, t: i64| {
        let (logs, limits, tenant) = (logs.clone(), limits.clone(), tenant.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let Expr::Metric(m) = logql::parse(&expr)? else {
                    return Err("a LogQL rule needs a metric query".to_string());
                };
                let mut ctx = Context {
                    reader: logs.as_ref(),
                    tenant: &tenant,
                    limits: &limits,
                    started: std::time::Instant::now(),
                    stats: Default::default(),
                };
                let at = t.saturating_mul(1_000_000);
                let series = logql::eval_metric(
                    &mut ctx,
                    &m,
                    Steps {
                        start: at,
                        end: at,
                        step: 1,
                    },
                )
                .map_err(|e| e.message)?;
                Ok(series
                    .into_iter()
                    .filter_map(|s| {
                        let v = s.points.first()?.1;
                        Some(Sample {
                            labels: s.labels.into_iter().collect(),
                            value: v,
                        })
                    })
                    .collect())
            })
            .await
            .map_err(|e| format!("LogQL rule task failed: {e}"))?
        })
    })
}

/// Writes rule output into the local database.
pub fn append_fn(db: Db) -> AppendFn {
    Arc::new(move |samples: Vec<OutputSample>| {
        let db = db.clone();
        Box::pin(async move {
            let mut batch = WriteBatch::with_capacity(samples.len(), 8);
            for s in &samples {
                for (k, v) in &s.labels {
                    batch.push_label(k, v);
                }
                batch.push_sample(sightline_storage::Sample::new(s.t, s.v));
                batch.finish_series();
            }
            let report = db.append(&batch).await.map_err(|e| e.to_string())?;
            let refused = report.invalid + report.too_old + report.too_new + report.conflicts;
            if refused > 0 {
                return Err(format!(
                    "storage refused {refused} of {} rule output samples",
                    samples.len()
                ));
            }
            Ok(())
        })
    })
}

/// The node's rule engine, its built-in Alertmanager, and the reload
/// entry point.
pub struct Rules {
    /// The running groups.
    pub manager: Arc<RuleManager>,
    /// Delivery to external Alertmanagers.
    pub notifier: Arc<Notifier>,
    /// The built-in Alertmanager, when `alertmanager_config` is set.
    pub alertmanager: Option<Arc<Alertmanager>>,
    /// What should be reporting.
    pub inventory: Arc<Inventory>,
    query: QueryFn,
    append: AppendFn,
    config_path: Option<PathBuf>,
    flags: Overrides,
}

fn read_am_config(path: &std::path::Path) -> Result<AmConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    AmConfig::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// An alert from the rule engine in Alertmanager's terms.
fn to_am_alert(a: NotifyAlert) -> AmAlert {
    AmAlert {
        labels: a.labels,
        annotations: a.annotations,
        starts_at: a.starts_at,
        ends_at: a.ends_at,
        generator_url: a.generator_url,
        updated_at: 0,
        timeout: false,
    }
}

impl Rules {
    /// Starts rule evaluation with the configured files; a bad rule file
    /// fails the start, as in Prometheus.
    pub fn start<R: SeriesReader>(
        cfg: &Config,
        engine: Arc<Engine>,
        reader: Arc<R>,
        db: Db,
        logs: Option<(
            Arc<dyn sightline_storage::logs::LogReader>,
            Arc<sightline_query::logql::LogqlLimits>,
        )>,
        config_path: Option<PathBuf>,
        flags: Overrides,
    ) -> anyhow::Result<Self> {
        let rc = &cfg.rules;
        let notifier = Notifier::new(rc.alertmanagers.clone());
        let alertmanager = match &rc.alertmanager_config {
            Some(p) => Some(Alertmanager::new(
                read_am_config(p).map_err(|e| anyhow::anyhow!("alertmanager_config: {e}"))?,
                Some(cfg.data_dir.join("alertmanager").join("state.json")),
                rc.external_url.clone(),
            )),
            None => None,
        };
        if let Some(am) = alertmanager.as_ref().filter(|_| !cfg.site.peers.is_empty()) {
            am.set_cluster(sightline_alerting::am::Cluster {
                position: cfg.site.position(),
                peers: cfg.site.peers.iter().map(|p| p.url.clone()).collect(),
                wait: cfg.site.peer_wait,
            });
        }
        let (n, am) = (notifier.clone(), alertmanager.clone());
        // Rules read what queries read: with peer sites, the whole fleet.
        let (query, append) = (query_fn(engine, reader), append_fn(db));
        let log_query = logs.map(|(l, limits)| logql_query_fn(l, limits, rc.log_tenant.clone()));
        let deps = EvalDeps {
            query: query.clone(),
            log_query: log_query.clone(),
            append: append.clone(),
            notify: Arc::new(move |alerts: Vec<NotifyAlert>| {
                if let Some(am) = &am {
                    am.put(alerts.iter().cloned().map(to_am_alert).collect());
                }
                n.send(alerts);
            }),
            external_labels: rc.external_labels.clone(),
            external_url: rc.external_url.clone(),
            resend_delay: rc.resend_delay,
        };
        let manager = RuleManager::new(
            deps,
            rc.restore.clone(),
            Some(cfg.data_dir.join("rules").join("state.json")),
        );
        let inventory = Arc::new(Inventory::new(
            rc.inventory.clone(),
            Some(cfg.data_dir.join("rules").join("inventory.json")),
        ));
        let rules = Rules {
            manager,
            notifier,
            alertmanager,
            inventory,
            query,
            append,
            config_path,
            flags,
        };
        rules
            .load(rc)
            .map_err(|e| anyhow::anyhow!("cannot load rule files:\n{e}"))?;
        Ok(rules)
    }

    fn load(&self, rc: &RulesConfig) -> Result<usize, String> {
        let files = rc.expand_files().map_err(|e| format!("{e:#}"))?;
        let mut groups = load_files(&files, &rc.defaults)?;
        let log_files = rc.expand_log_files().map_err(|e| format!("{e:#}"))?;
        groups.extend(load_files_lang(&log_files, &rc.defaults, Lang::Logql)?);
        // Check everything before changing anything.
        let am_config = match (&rc.alertmanager_config, &self.alertmanager) {
            (Some(p), Some(_)) => Some(read_am_config(p).map_err(|e| format!("alertmanager_config: {e}"))?),
            (None, None) => None,
            _ => return Err("adding or removing alertmanager_config needs a restart".into()),
        };
        let n = groups.len();
        self.manager.apply(groups);
        if let (Some(am), Some(c)) = (&self.alertmanager, am_config) {
            am.set_config(c);
        }
        Ok(n)
    }

    /// Refreshes the inventory every interval until `stop`.
    pub async fn run_inventory(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let interval = self.inventory.options().interval.max(1);
        loop {
            let now = sightline_storage::now_ms();
            let next = (now / interval + 1) * interval;
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis((next - now).max(0) as u64)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.inventory.refresh(next, &self.query, &self.append).await {
                tracing::warn!(error = %e, "inventory refresh failed");
            }
        }
    }

    /// Re-reads the config file and the rule files. On any error the
    /// running rules stay and the error is returned (and kept for
    /// `/metrics`). Only the rule files and groups are reloaded; other
    /// settings need a restart.
    pub fn reload(&self) -> Result<String, String> {
        let result = Config::load(self.config_path.as_deref(), &self.flags)
            .map_err(|e| format!("{e:#}"))
            .and_then(|cfg| self.load(&cfg.rules));
        match result {
            Ok(n) => {
                tracing::info!(groups = n, "rules reloaded");
                Ok(format!("reloaded {n} rule groups\n"))
            }
            Err(e) => {
                tracing::error!(error = %e, "reload failed; the previous rules keep running");
                self.manager.reload_failed(e.clone());
                Err(e)
            }
        }
    }
}
