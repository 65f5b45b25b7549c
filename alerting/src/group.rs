//! Rule groups: loading them from rule files, and evaluating one group at
//! one timestamp — every rule in order, output and staleness markers
//! written, due alerts handed to the notifier.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::rule::{
    Alert, AppendFn, Health, Labels, OutputSample, QueryFn, RuleKind, RuleSpec, RuleState, STALE_NAN, TemplateContext,
    alert_eval, due_alerts, record, samples_to_values,
};
use crate::rules::RuleFile;
use crate::template::{Env, Value};

/// A group as configured.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// The rule file it came from.
    pub file: String,
    /// Its name, unique within the file.
    pub name: String,
    /// Evaluation interval, ms.
    pub interval: i64,
    /// How far back rules are evaluated, ms.
    pub query_offset: i64,
    /// Most series or alerts per rule (0: no limit).
    pub limit: usize,
    /// The rules, in order.
    pub rules: Vec<RuleSpec>,
    /// The language of the rules' expressions.
    pub lang: crate::rules::Lang,
}

impl GroupSpec {
    /// `file;name`, the group's identity across reloads.
    pub fn key(&self) -> String {
        format!("{};{}", self.file, self.name)
    }
}

/// Settings shared by every group.
#[derive(Debug, Clone)]
pub struct GroupDefaults {
    /// `global.evaluation_interval`, ms.
    pub interval: i64,
    /// `global.rule_query_offset`, ms.
    pub query_offset: i64,
}

fn duration_ms(s: &str) -> Option<i64> {
    sightline_query::params::parse_duration_ms(s)
}

/// Reads and validates rule files; any problem in any file fails the whole
/// load with every problem listed (`file: line:col: message`).
pub fn load_files(files: &[impl AsRef<Path>], defaults: &GroupDefaults) -> Result<Vec<GroupSpec>, String> {
    load_files_lang(files, defaults, crate::rules::Lang::Promql)
}

/// [`load_files`] for rule files whose expressions are in `lang` (Loki
/// ruler files hold LogQL).
pub fn load_files_lang(
    files: &[impl AsRef<Path>],
    defaults: &GroupDefaults,
    lang: crate::rules::Lang,
) -> Result<Vec<GroupSpec>, String> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        let f = f.as_ref();
        let shown = f.display().to_string();
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{shown}: cannot read: {e}"));
                continue;
            }
        };
        match crate::rules::check_lang(&text, lang) {
            Ok((file, _)) => out.extend(groups_of(&shown, file, defaults, lang)),
            Err(problems) => errors.extend(problems.into_iter().map(|p| format!("{shown}: {p}"))),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors.join("\n"))
    }
}

fn groups_of(file_name: &str, file: RuleFile, defaults: &GroupDefaults, lang: crate::rules::Lang) -> Vec<GroupSpec> {
    file.groups
        .into_iter()
        .map(|g| {
            let g = g.value;
            let rules = g
                .rules
                .into_iter()
                .map(|r| {
                    let r = r.value;
                    let mut labels = g.labels.clone();
                    labels.extend(r.labels.clone());
                    let expr = r.expr.as_ref().map(|e| e.value.as_string()).unwrap_or_default();
                    match &r.alert {
                        Some(name) => RuleSpec {
                            name: name.clone(),
                            expr,
                            labels,
                            kind: RuleKind::Alerting {
                                hold: r.for_.as_deref().and_then(duration_ms).unwrap_or(0),
                                keep_firing_for: r.keep_firing_for.as_deref().and_then(duration_ms).unwrap_or(0),
                                annotations: r.annotations.clone(),
                            },
                        },
                        None => RuleSpec {
                            name: r.record.clone().unwrap_or_default(),
                            expr,
                            labels,
                            kind: RuleKind::Recording,
                        },
                    }
                })
                .collect();
            GroupSpec {
                file: file_name.to_string(),
                interval: g
                    .interval
                    .as_deref()
                    .and_then(duration_ms)
                    .filter(|d| *d > 0)
                    .unwrap_or(defaults.interval),
                query_offset: g
                    .query_offset
                    .as_deref()
                    .and_then(duration_ms)
                    .unwrap_or(defaults.query_offset),
                limit: g.limit.unwrap_or(0) as usize,
                name: g.name,
                rules,
                lang,
            }
        })
        .collect()
}

/// Timing of a group's last evaluation.
#[derive(Debug, Clone, Default)]
pub struct GroupStats {
    /// When (ms; 0 never).
    pub last_evaluation: i64,
    /// How long it took, seconds.
    pub evaluation_seconds: f64,
}

/// A group at run time: its spec and each rule's state.
#[derive(Debug)]
pub struct Group {
    /// As configured.
    pub spec: GroupSpec,
    /// One state per rule, same order as `spec.rules`.
    pub states: Vec<Mutex<RuleState>>,
    /// Timing.
    pub stats: Mutex<GroupStats>,
}

impl Group {
    /// A group with fresh state.
    pub fn new(spec: GroupSpec) -> Self {
        let states = spec.rules.iter().map(|_| Mutex::new(RuleState::default())).collect();
        Group {
            spec,
            states,
            stats: Mutex::new(GroupStats::default()),
        }
    }

    /// A key per rule that survives reloads (name and labels, numbered when
    /// a group repeats them), as Prometheus matches rules to copy state.
    pub fn rule_keys(&self) -> Vec<String> {
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        self.spec
            .rules
            .iter()
            .map(|r| {
                let base = format!(
                    "{}{}{:?}",
                    if matches!(r.kind, RuleKind::Alerting { .. }) {
                        "alert:"
                    } else {
                        "record:"
                    },
                    r.name,
                    r.labels
                );
                let n = seen.entry(base.clone()).or_insert(0);
                *n += 1;
                format!("{base}#{n}")
            })
            .collect()
    }
}

/// An alert on its way to Alertmanager, in its API's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyAlert {
    /// Labels, external labels added.
    pub labels: Labels,
    /// Annotations.
    pub annotations: Labels,
    /// When it started firing (ms).
    pub starts_at: i64,
    /// When it resolved, or until when it is valid (ms).
    pub ends_at: i64,
    /// Link to the expression.
    pub generator_url: String,
}

/// Receives due alerts.
pub type NotifyFn = Arc<dyn Fn(Vec<NotifyAlert>) + Send + Sync>;

/// What evaluation needs from the outside.
#[derive(Clone)]
pub struct EvalDeps {
    /// The query engine.
    pub query: QueryFn,
    /// The LogQL engine, for Loki ruler groups (none: such groups fail).
    pub log_query: Option<QueryFn>,
    /// Storage for rule output.
    pub append: AppendFn,
    /// Where due alerts go.
    pub notify: NotifyFn,
    /// `global.external_labels`.
    pub external_labels: Labels,
    /// The external URL of this server.
    pub external_url: String,
    /// Minimum time between re-sending a firing alert, ms.
    pub resend_delay: i64,
}

/// Template environment whose `query` runs through the engine. Templates
/// are synchronous, so a query blocks this worker thread (allowed on the
/// multi-threaded runtime); elsewhere `query` is unavailable.
struct QueryEnv {
    query: QueryFn,
    t: i64,
    external_url: String,
}

impl Env for QueryEnv {
    fn query(&mut self, q: &str) -> Result<Vec<Value>, String> {
        let handle = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return Err("query() needs the multi-threaded runtime".into());
        }
        let fut = (self.query)(q.to_string(), self.t);
        let samples = tokio::task::block_in_place(|| handle.block_on(fut))?;
        Ok(samples_to_values(&samples))
    }

    fn external_url(&self) -> String {
        self.external_url.clone()
    }

    fn path_prefix(&self) -> String {
        self.external_url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
            .unwrap_or_default()
    }
}

fn generator_url(external_url: &str, expr: &str) -> String {
    let q: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    format!("{}/graph?g0.expr={q}&g0.tab=1", external_url.trim_end_matches('/'))
}

/// Converts a rule's due alerts into notifications.
pub fn to_notifications(alerts: Vec<Alert>, expr: &str, deps: &EvalDeps) -> Vec<NotifyAlert> {
    alerts
        .into_iter()
        .map(|a| {
            let mut labels = a.labels;
            for (k, v) in &deps.external_labels {
                labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
            NotifyAlert {
                labels,
                annotations: a.annotations,
                starts_at: a.fired_at,
                ends_at: if a.resolved_at != 0 {
                    a.resolved_at
                } else {
                    a.valid_until
                },
                generator_url: generator_url(&deps.external_url, expr),
            }
        })
        .collect()
}

/// Evaluates every rule of `group` at `ts` (ms) in order. A failing rule
/// is marked unhealthy and the others still run; its earlier series are
/// not marked stale (as in Prometheus).
pub async fn eval_group(group: &Group, ts: i64, deps: &EvalDeps) {
    let started = Instant::now();
    let spec = &group.spec;
    let sample_ts = ts - spec.query_offset;
    let mut pending_notifications = Vec::new();
    for (rule, state) in spec.rules.iter().zip(&group.states) {
        let rule_started = Instant::now();
        let result = match (spec.lang, &deps.log_query) {
            (crate::rules::Lang::Promql, _) => (deps.query)(rule.expr.clone(), sample_ts).await,
            (crate::rules::Lang::Logql, Some(q)) => q(rule.expr.clone(), sample_ts).await,
            (crate::rules::Lang::Logql, None) => Err("LogQL rules need log storage on this node".to_string()),
        };
        let mut notifications: Vec<NotifyAlert> = Vec::new();
        let output: Result<Vec<OutputSample>, String> = {
            let mut st = state.lock();
            let out = result.and_then(|samples| match &rule.kind {
                RuleKind::Recording => record(rule, samples, sample_ts, spec.limit),
                RuleKind::Alerting { .. } => {
                    let mut env = QueryEnv {
                        query: deps.query.clone(),
                        t: sample_ts,
                        external_url: deps.external_url.clone(),
                    };
                    let mut tctx = TemplateContext {
                        external_labels: &deps.external_labels,
                        external_url: &deps.external_url,
                        env: &mut env,
                    };
                    alert_eval(rule, &mut st, samples, ts, sample_ts, spec.limit, &mut tctx)
                }
            });
            let out = out.map(|mut samples| {
                let current: Vec<Labels> = samples.iter().map(|s| s.labels.clone()).collect();
                let now: std::collections::HashSet<&Labels> = current.iter().collect();
                for old in &st.previous_series {
                    if !now.contains(old) {
                        samples.push(OutputSample {
                            labels: old.clone(),
                            t: sample_ts,
                            v: STALE_NAN,
                        });
                    }
                }
                st.previous_series = current;
                samples
            });
            match &out {
                Ok(_) => {
                    st.health = Health::Good;
                    st.last_error.clear();
                }
                Err(e) => {
                    st.health = Health::Bad;
                    st.last_error = e.clone();
                    tracing::warn!(group = %spec.name, rule = %rule.name, error = %e, "rule evaluation failed");
                }
            }
            st.last_evaluation = ts;
            st.evaluation_seconds = rule_started.elapsed().as_secs_f64();
            if matches!(rule.kind, RuleKind::Alerting { .. }) {
                let due = due_alerts(&mut st, ts, deps.resend_delay, spec.interval);
                notifications = to_notifications(due, &rule.expr, deps);
            }
            out
        };
        if let Ok(samples) = output
            && !samples.is_empty()
            && let Err(e) = (deps.append)(samples).await
        {
            tracing::warn!(group = %spec.name, rule = %rule.name, error = %e, "writing rule output failed");
        }
        pending_notifications.extend(notifications);
    }
    // One hand-over per evaluation, so a receiver never sees a group's
    // alerts half updated (say, a cluster alert resolved but the node
    // alerts it inhibited not yet).
    if !pending_notifications.is_empty() {
        (deps.notify)(pending_notifications);
    }
    let mut stats = group.stats.lock();
    stats.last_evaluation = ts;
    stats.evaluation_seconds = started.elapsed().as_secs_f64();
}

/// The group's evaluation offset within its interval (stable per group,
/// so groups spread over the interval instead of all running at once).
pub fn eval_offset(spec: &GroupSpec) -> i64 {
    let h = xxhash_rust::xxh64::xxh64(spec.key().as_bytes(), 0);
    (h % spec.interval.max(1) as u64) as i64
}

/// The first evaluation time after `now` on the group's grid.
pub fn next_eval(spec: &GroupSpec, now: i64) -> i64 {
    let interval = spec.interval.max(1);
    let offset = eval_offset(spec);
    let base = (now - offset).div_euclid(interval) * interval + offset;
    if base > now { base } else { base + interval }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::RuleSpec;

    fn defaults() -> GroupDefaults {
        GroupDefaults {
            interval: 60_000,
            query_offset: 0,
        }
    }

    fn deps(
        answers: Arc<Mutex<Vec<crate::rule::Sample>>>,
        written: Arc<Mutex<Vec<OutputSample>>>,
        sent: Arc<Mutex<Vec<NotifyAlert>>>,
    ) -> EvalDeps {
        EvalDeps {
            log_query: None,
            query: Arc::new(move |q: String, _t| {
                let answers = answers.clone();
                Box::pin(async move {
                    if q.contains("broken") {
                        return Err("bad query".into());
                    }
                    Ok(answers.lock().clone())
                })
            }),
            append: Arc::new(move |s| {
                written.lock().extend(s);
                Box::pin(async { Ok(()) })
            }),
            notify: Arc::new(move |a| sent.lock().extend(a)),
            external_labels: [("site".to_string(), "fra".to_string())].into_iter().collect(),
            external_url: "http://sightline:9780".into(),
            resend_delay: 60_000,
        }
    }

    const FILE: &str = "groups:
  - name: g
    interval: 15s
    labels: {team: mail}
    rules:
      - record: instance:up
        expr: up
      - alert: Down
        expr: up == 0
        labels: {severity: page}
        annotations: {summary: '{{ $labels.instance }} down'}
      - record: broken:rule
        expr: broken
";

    #[tokio::test]
    async fn a_group_records_alerts_and_marks_vanished_series_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.yml");
        std::fs::write(&path, FILE).unwrap();
        let specs = load_files(&[&path], &defaults()).unwrap();
        assert_eq!(specs[0].interval, 15_000);
        assert_eq!(specs[0].rules[0].labels["team"], "mail");
        let group = Group::new(specs[0].clone());
        let answers = Arc::new(Mutex::new(vec![crate::rule::Sample {
            labels: [("__name__", "up"), ("instance", "a")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: 0.0,
        }]));
        let written = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let d = deps(answers.clone(), written.clone(), sent.clone());
        let t0 = 1_700_000_000_000;
        eval_group(&group, t0, &d).await;
        let names: Vec<String> = written.lock().iter().map(|s| s.labels["__name__"].clone()).collect();
        assert_eq!(names, vec!["instance:up", "ALERTS", "ALERTS_FOR_STATE"]);
        assert_eq!(sent.lock().len(), 1);
        let n = sent.lock()[0].clone();
        assert_eq!(n.labels["site"], "fra");
        assert_eq!(n.annotations["summary"], "a down");
        assert_eq!(n.starts_at, t0);
        assert_eq!(n.ends_at, t0 + 4 * 60_000);
        assert!(
            n.generator_url
                .starts_with("http://sightline:9780/graph?g0.expr=up+%3D%3D+0")
        );
        assert_eq!(group.states[2].lock().health, Health::Bad);
        assert_eq!(group.states[2].lock().last_error, "bad query");

        // The series vanishes: staleness markers, alert resolved and sent.
        answers.lock().clear();
        written.lock().clear();
        eval_group(&group, t0 + 15_000, &d).await;
        let w = written.lock().clone();
        assert_eq!(w.len(), 3);
        assert!(
            w.iter()
                .all(|s| s.v.to_bits() == STALE_NAN.to_bits() && s.t == t0 + 15_000)
        );
        let s = sent.lock().clone();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].ends_at, t0 + 15_000);
    }

    #[tokio::test]
    async fn query_offset_moves_the_query_and_the_output_back() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let written = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let mut d = deps(
            Arc::new(Mutex::new(Vec::new())),
            written.clone(),
            Arc::new(Mutex::new(Vec::new())),
        );
        d.query = Arc::new(move |_q, t| {
            s2.lock().push(t);
            Box::pin(async {
                Ok(vec![crate::rule::Sample {
                    labels: Labels::new(),
                    value: 1.0,
                }])
            })
        });
        let spec = GroupSpec {
            file: "f".into(),
            name: "g".into(),
            interval: 15_000,
            query_offset: 30_000,
            limit: 0,
            lang: Default::default(),
            rules: vec![RuleSpec {
                name: "r".into(),
                expr: "vector(1)".into(),
                labels: Labels::new(),
                kind: RuleKind::Recording,
            }],
        };
        eval_group(&Group::new(spec), 1_700_000_000_000, &d).await;
        assert_eq!(*seen.lock(), vec![1_699_999_970_000]);
        assert_eq!(written.lock()[0].t, 1_699_999_970_000);
    }

    #[test]
    fn bad_files_fail_the_whole_load() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.yml");
        let bad = dir.path().join("bad.yml");
        std::fs::write(&good, FILE).unwrap();
        std::fs::write(
            &bad,
            "groups:\n  - name: x\n    rules:\n      - record: a\n        expr: sum(\n",
        )
        .unwrap();
        let err = load_files(&[&good, &bad], &defaults()).unwrap_err();
        assert!(
            err.contains("bad.yml: 5:15: group \"x\", rule 1, \"a\": could not parse"),
            "{err}"
        );
        let err = load_files(&[dir.path().join("missing.yml")], &defaults()).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
    }

    #[test]
    fn evaluation_times_sit_on_a_stable_grid() {
        let spec = GroupSpec {
            file: "f".into(),
            name: "g".into(),
            interval: 15_000,
            query_offset: 0,
            limit: 0,
            lang: Default::default(),
            rules: Vec::new(),
        };
        let now = 1_700_000_000_123;
        let t = next_eval(&spec, now);
        assert!(t > now && t <= now + 15_000);
        assert_eq!((t - eval_offset(&spec)) % 15_000, 0);
        assert_eq!(next_eval(&spec, t), t + 15_000);
    }
}
