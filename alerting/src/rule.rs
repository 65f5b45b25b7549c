//! Rules at run time: recording rules that rename and label their query's
//! result, and alerting rules with Prometheus' state machine (pending →
//! firing → resolved, `for`, `keep_firing_for`, the 15-minute memory of
//! resolved alerts, `limit`).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::template::{self, Env, Value};

/// A label set, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// A label set as Prometheus prints one: `{a="b", c="d"}`.
pub fn labels_string(l: &Labels) -> String {
    let parts: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(", "))
}

/// One sample of a query result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels (with `__name__` if it has one).
    pub labels: Labels,
    /// The value.
    pub value: f64,
}

/// A boxed future, as the function types below return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Runs a PromQL instant query at a time (ms): how rules reach the query
/// engine without depending on HTTP. Scalars come back as one sample
/// without labels; strings and errors as `Err` with the engine's message.
pub type QueryFn = Arc<dyn Fn(String, i64) -> BoxFuture<Result<Vec<Sample>, String>> + Send + Sync>;

/// One sample a rule writes: recording results, `ALERTS`,
/// `ALERTS_FOR_STATE` and their staleness markers.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSample {
    /// Labels including `__name__`.
    pub labels: Labels,
    /// Timestamp in ms.
    pub t: i64,
    /// Value (a staleness marker is Prometheus' StaleNaN).
    pub v: f64,
}

/// Writes rule output to storage.
pub type AppendFn = Arc<dyn Fn(Vec<OutputSample>) -> BoxFuture<Result<(), String>> + Send + Sync>;

/// Prometheus' staleness marker.
pub const STALE_NAN: f64 = f64::from_bits(0x7ff0_0000_0000_0002);

/// How long a resolved alert is kept (and re-sent as resolved).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// An alert's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Resolved (kept for a while to be sent as resolved).
    Inactive,
    /// Active, waiting out `for`.
    Pending,
    /// Firing.
    Firing,
}

impl AlertState {
    /// Prometheus' word for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert instance of an alerting rule. Times are ms since the epoch;
/// 0 means "not set".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Identifying labels (the sample's, the rule's, `alertname`).
    pub labels: Labels,
    /// Expanded annotations.
    pub annotations: Labels,
    /// State.
    pub state: AlertState,
    /// The query result's value at the last evaluation.
    pub value: f64,
    /// When the condition was first seen.
    pub active_at: i64,
    /// When it started firing.
    pub fired_at: i64,
    /// When it resolved.
    pub resolved_at: i64,
    /// When it was last sent to the notifier.
    pub last_sent_at: i64,
    /// Until when the last notification is valid.
    pub valid_until: i64,
    /// Since when it has been firing only because of `keep_firing_for`.
    pub keep_firing_since: i64,
}

impl Alert {
    /// Whether the notifier should hear of it now: firing alerts every
    /// `resend_delay`, resolved ones once more after resolving.
    pub fn needs_sending(&self, ts: i64, resend_delay: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        if self.last_sent_at == 0 || self.resolved_at > self.last_sent_at {
            return true;
        }
        self.last_sent_at + resend_delay <= ts
    }
}

/// The kind-specific part of a rule.
#[derive(Debug, Clone)]
pub enum RuleKind {
    /// `record: name`.
    Recording,
    /// `alert: name`.
    Alerting {
        /// `for`, ms.
        hold: i64,
        /// `keep_firing_for`, ms.
        keep_firing_for: i64,
        /// Annotation templates.
        annotations: Labels,
    },
}

/// A rule as configured.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    /// The alert name or recorded metric name.
    pub name: String,
    /// The PromQL expression.
    pub expr: String,
    /// Labels (templates for alerting rules), including the group's.
    pub labels: Labels,
    /// Recording or alerting.
    pub kind: RuleKind,
}

/// Health of a rule's last evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not evaluated yet.
    Unknown,
    /// Last evaluation succeeded.
    Good,
    /// Last evaluation failed.
    Bad,
}

impl Health {
    /// Prometheus' word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Good => "ok",
            Health::Bad => "err",
        }
    }
}

/// A rule's changing state.
#[derive(Debug, Clone)]
pub struct RuleState {
    /// Last evaluation's health.
    pub health: Health,
    /// Last evaluation's error.
    pub last_error: String,
    /// When it was last evaluated (ms; 0 never).
    pub last_evaluation: i64,
    /// How long that took, seconds.
    pub evaluation_seconds: f64,
    /// Alert instances by labels (alerting rules).
    pub active: HashMap<Labels, Alert>,
    /// Series written by the previous evaluation (for staleness markers).
    pub previous_series: Vec<Labels>,
}

impl Default for RuleState {
    fn default() -> Self {
        RuleState {
            health: Health::Unknown,
            last_error: String::new(),
            last_evaluation: 0,
            evaluation_seconds: 0.0,
            active: HashMap::new(),
            previous_series: Vec::new(),
        }
    }
}

/// What alert templates need besides the sample.
pub struct TemplateContext<'a> {
    /// `$externalLabels`.
    pub external_labels: &'a Labels,
    /// `$externalURL`.
    pub external_url: &'a str,
    /// Runs `query` inside templates.
    pub env: &'a mut dyn Env,
}

/// A recording rule's output: the samples renamed and labelled.
pub fn record(spec: &RuleSpec, result: Vec<Sample>, t: i64, limit: usize) -> Result<Vec<OutputSample>, String> {
    let mut out = Vec::with_capacity(result.len());
    let mut seen = std::collections::HashSet::new();
    for s in result {
        let mut labels = s.labels;
        labels.insert("__name__".into(), spec.name.clone());
        for (k, v) in &spec.labels {
            labels.insert(k.clone(), v.clone());
        }
        if !seen.insert(labels.clone()) {
            return Err("vector contains metrics with the same labelset after applying rule labels".into());
        }
        out.push(OutputSample { labels, t, v: s.value });
    }
    if limit > 0 && out.len() > limit {
        return Err(format!("exceeded limit of {limit} with {} series", out.len()));
    }
    Ok(out)
}

/// Evaluates an alerting rule's state machine at `ts` on its query result,
/// as Prometheus does; returns the `ALERTS` and `ALERTS_FOR_STATE` samples
/// (at `sample_ts`, which is `ts` minus the query offset).
#[allow(clippy::too_many_arguments)]
pub fn alert_eval(
    spec: &RuleSpec,
    state: &mut RuleState,
    result: Vec<Sample>,
    ts: i64,
    sample_ts: i64,
    limit: usize,
    tctx: &mut TemplateContext<'_>,
) -> Result<Vec<OutputSample>, String> {
    let RuleKind::Alerting {
        hold,
        keep_firing_for,
        annotations,
    } = &spec.kind
    else {
        return Err("not an alerting rule".into());
    };
    let mut fresh: HashMap<Labels, Alert> = HashMap::with_capacity(result.len());
    for s in result {
        let data = template::alert_data(
            s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            tctx.external_labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            tctx.external_url,
            s.value,
        );
        let mut labels = s.labels.clone();
        labels.remove("__name__");
        for (k, v) in &spec.labels {
            labels.insert(k.clone(), template::expand_alert(&spec.name, v, &data, tctx.env));
        }
        labels.insert("alertname".into(), spec.name.clone());
        let annotations: Labels = annotations
            .iter()
            .map(|(k, v)| (k.clone(), template::expand_alert(&spec.name, v, &data, tctx.env)))
            .collect();
        if fresh.contains_key(&labels) {
            return Err("vector contains metrics with the same labelset after applying alert labels".into());
        }
        fresh.insert(
            labels.clone(),
            Alert {
                labels,
                annotations,
                state: AlertState::Pending,
                value: s.value,
                active_at: ts,
                fired_at: 0,
                resolved_at: 0,
                last_sent_at: 0,
                valid_until: 0,
                keep_firing_since: 0,
            },
        );
    }
    let present: std::collections::HashSet<Labels> = fresh.keys().cloned().collect();
    for (k, a) in fresh {
        match state.active.get_mut(&k) {
            Some(old) if old.state != AlertState::Inactive => {
                old.value = a.value;
                old.annotations = a.annotations;
            }
            _ => {
                state.active.insert(k, a);
            }
        }
    }
    let mut out = Vec::new();
    let mut active_or_pending = 0usize;
    let mut remove = Vec::new();
    // Deterministic order for the output.
    let mut keys: Vec<Labels> = state.active.keys().cloned().collect();
    keys.sort();
    for k in keys {
        let Some(a) = state.active.get_mut(&k) else { continue };
        if !present.contains(&k) {
            let mut keep_firing = false;
            if a.state == AlertState::Firing && *keep_firing_for > 0 {
                if a.keep_firing_since == 0 {
                    a.keep_firing_since = ts;
                }
                keep_firing = ts - a.keep_firing_since < *keep_firing_for;
            }
            if a.state == AlertState::Pending || (a.resolved_at != 0 && ts - a.resolved_at > RESOLVED_RETENTION_MS) {
                remove.push(k.clone());
            }
            if a.state != AlertState::Inactive && !keep_firing {
                a.state = AlertState::Inactive;
                a.resolved_at = ts;
            }
            if !keep_firing {
                continue;
            }
        } else {
            a.keep_firing_since = 0;
        }
        active_or_pending += 1;
        if a.state == AlertState::Pending && ts - a.active_at >= *hold {
            a.state = AlertState::Firing;
            a.fired_at = ts;
        }
        let mut alerts = a.labels.clone();
        alerts.insert("__name__".into(), "ALERTS".into());
        alerts.insert("alertstate".into(), a.state.as_str().into());
        out.push(OutputSample {
            labels: alerts,
            t: sample_ts,
            v: 1.0,
        });
        let mut for_state = a.labels.clone();
        for_state.insert("__name__".into(), "ALERTS_FOR_STATE".into());
        out.push(OutputSample {
            labels: for_state,
            t: sample_ts,
            v: (a.active_at / 1000) as f64,
        });
    }
    for k in remove {
        state.active.remove(&k);
    }
    if limit > 0 && active_or_pending > limit {
        state.active.clear();
        return Err(format!("exceeded limit of {limit} with {active_or_pending} alerts"));
    }
    Ok(out)
}

/// Marks the alerts that need sending at `ts` as sent and returns copies,
/// valid until `ts + 4 × max(resend_delay, interval)`.
pub fn due_alerts(state: &mut RuleState, ts: i64, resend_delay: i64, interval: i64) -> Vec<Alert> {
    let mut out = Vec::new();
    for a in state.active.values_mut() {
        if a.needs_sending(ts, resend_delay) {
            a.last_sent_at = ts;
            a.valid_until = ts + 4 * resend_delay.max(interval);
            out.push(a.clone());
        }
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

/// Converts a sample list into template query results.
pub fn samples_to_values(samples: &[Sample]) -> Vec<Value> {
    samples
        .iter()
        .map(|s| Value::sample(s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())), s.value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::NoQueries;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn alert_rule(hold: i64, keep: i64) -> RuleSpec {
        RuleSpec {
            name: "HighLoad".into(),
            expr: "load > 1".into(),
            labels: labels(&[("severity", "page"), ("where", "{{ $labels.instance }}")]),
            kind: RuleKind::Alerting {
                hold,
                keep_firing_for: keep,
                annotations: labels(&[("summary", "load is {{ $value }}")]),
            },
        }
    }

    fn run(spec: &RuleSpec, st: &mut RuleState, ts: i64, result: &[(&str, f64)]) -> Vec<OutputSample> {
        let ext = Labels::new();
        let mut env = NoQueries;
        let mut tctx = TemplateContext {
            external_labels: &ext,
            external_url: "",
            env: &mut env,
        };
        let samples = result
            .iter()
            .map(|(i, v)| Sample {
                labels: labels(&[("__name__", "load"), ("instance", i)]),
                value: *v,
            })
            .collect();
        alert_eval(spec, st, samples, ts, ts, 0, &mut tctx).unwrap()
    }

    fn states(st: &RuleState) -> Vec<(String, AlertState)> {
        let mut v: Vec<(String, AlertState)> = st
            .active
            .values()
            .map(|a| (a.labels["instance"].clone(), a.state))
            .collect();
        v.sort();
        v
    }

    const MIN: i64 = 60_000;

    #[test]
    fn pending_then_firing_then_resolved() {
        let spec = alert_rule(5 * MIN, 0);
        let mut st = RuleState::default();
        let out = run(&spec, &mut st, 0, &[("a", 2.0)]);
        assert_eq!(states(&st), vec![("a".into(), AlertState::Pending)]);
        let a = &st.active.values().next().unwrap();
        assert_eq!(a.labels["where"], "a");
        assert_eq!(a.labels["alertname"], "HighLoad");
        assert!(!a.labels.contains_key("__name__"));
        assert_eq!(a.annotations["summary"], "load is 2");
        assert_eq!(out[0].labels["alertstate"], "pending");
        assert_eq!(out[1].labels["__name__"], "ALERTS_FOR_STATE");
        run(&spec, &mut st, 4 * MIN, &[("a", 3.0)]);
        assert_eq!(states(&st), vec![("a".into(), AlertState::Pending)]);
        assert_eq!(st.active.values().next().unwrap().annotations["summary"], "load is 3");
        let out = run(&spec, &mut st, 5 * MIN, &[("a", 3.0)]);
        assert_eq!(states(&st), vec![("a".into(), AlertState::Firing)]);
        assert_eq!(out[0].labels["alertstate"], "firing");
        let out = run(&spec, &mut st, 6 * MIN, &[]);
        assert!(out.is_empty());
        assert_eq!(states(&st), vec![("a".into(), AlertState::Inactive)]);
        // Kept for 15 minutes, then forgotten.
        run(&spec, &mut st, 21 * MIN, &[]);
        assert_eq!(st.active.len(), 1);
        run(&spec, &mut st, 21 * MIN + 1, &[]);
        assert!(st.active.is_empty());
    }

    #[test]
    fn a_pending_alert_that_clears_is_dropped_and_restarts_its_clock() {
        let spec = alert_rule(5 * MIN, 0);
        let mut st = RuleState::default();
        run(&spec, &mut st, 0, &[("a", 2.0)]);
        run(&spec, &mut st, MIN, &[]);
        assert!(st.active.is_empty());
        run(&spec, &mut st, 2 * MIN, &[("a", 2.0)]);
        run(&spec, &mut st, 6 * MIN, &[("a", 2.0)]);
        assert_eq!(states(&st), vec![("a".into(), AlertState::Pending)]);
        run(&spec, &mut st, 7 * MIN, &[("a", 2.0)]);
        assert_eq!(states(&st), vec![("a".into(), AlertState::Firing)]);
    }

    #[test]
    fn keep_firing_for_holds_a_cleared_alert() {
        let spec = alert_rule(0, 10 * MIN);
        let mut st = RuleState::default();
        run(&spec, &mut st, 0, &[("a", 2.0)]);
        assert_eq!(states(&st), vec![("a".into(), AlertState::Firing)]);
        let out = run(&spec, &mut st, MIN, &[]);
        assert_eq!(states(&st), vec![("a".into(), AlertState::Firing)]);
        assert_eq!(out.len(), 2, "still written as firing");
        assert_eq!(st.active.values().next().unwrap().keep_firing_since, MIN);
        run(&spec, &mut st, 10 * MIN, &[]);
        assert_eq!(states(&st), vec![("a".into(), AlertState::Firing)]);
        // Back before the end: the clock resets.
        run(&spec, &mut st, 10 * MIN + 1, &[("a", 2.0)]);
        assert_eq!(st.active.values().next().unwrap().keep_firing_since, 0);
        run(&spec, &mut st, 12 * MIN, &[]);
        run(&spec, &mut st, 22 * MIN - 1, &[]);
        assert_eq!(states(&st), vec![("a".into(), AlertState::Firing)]);
        run(&spec, &mut st, 22 * MIN, &[]);
        assert_eq!(states(&st), vec![("a".into(), AlertState::Inactive)]);
    }

    #[test]
    fn duplicate_labelsets_and_limits_are_errors() {
        let mut spec = alert_rule(0, 0);
        spec.labels = labels(&[("instance", "same")]);
        let mut st = RuleState::default();
        let ext = Labels::new();
        let mut env = NoQueries;
        let mut tctx = TemplateContext {
            external_labels: &ext,
            external_url: "",
            env: &mut env,
        };
        let two = |a: &str, b: &str| {
            vec![
                Sample {
                    labels: labels(&[("instance", a)]),
                    value: 1.0,
                },
                Sample {
                    labels: labels(&[("instance", b)]),
                    value: 1.0,
                },
            ]
        };
        let err = alert_eval(&spec, &mut st, two("a", "b"), 0, 0, 0, &mut tctx).unwrap_err();
        assert!(err.contains("same labelset"), "{err}");
        let spec = alert_rule(0, 0);
        let err = alert_eval(&spec, &mut st, two("a", "b"), 0, 0, 1, &mut tctx).unwrap_err();
        assert_eq!(err, "exceeded limit of 1 with 2 alerts");
        assert!(st.active.is_empty());
    }

    #[test]
    fn recording_renames_and_labels() {
        let spec = RuleSpec {
            name: "job:up:sum".into(),
            expr: "sum by (job) (up)".into(),
            labels: labels(&[("team", "mail")]),
            kind: RuleKind::Recording,
        };
        let out = record(
            &spec,
            vec![Sample {
                labels: labels(&[("job", "node")]),
                value: 3.0,
            }],
            1000,
            0,
        )
        .unwrap();
        assert_eq!(
            out[0].labels,
            labels(&[("__name__", "job:up:sum"), ("job", "node"), ("team", "mail")])
        );
        assert_eq!((out[0].t, out[0].v), (1000, 3.0));
        let dup = vec![
            Sample {
                labels: labels(&[("__name__", "a")]),
                value: 1.0,
            },
            Sample {
                labels: labels(&[("__name__", "b")]),
                value: 1.0,
            },
        ];
        assert!(record(&spec, dup, 0, 0).unwrap_err().contains("same labelset"));
    }

    #[test]
    fn sending_follows_resend_delay_and_resolution() {
        let spec = alert_rule(0, 0);
        let mut st = RuleState::default();
        let t0 = 1_700_000_000_000;
        run(&spec, &mut st, t0, &[("a", 2.0)]);
        assert_eq!(due_alerts(&mut st, t0, MIN, 15_000).len(), 1);
        run(&spec, &mut st, t0 + 15_000, &[("a", 2.0)]);
        assert!(due_alerts(&mut st, t0 + 15_000, MIN, 15_000).is_empty());
        run(&spec, &mut st, t0 + MIN, &[("a", 2.0)]);
        let sent = due_alerts(&mut st, t0 + MIN, MIN, 15_000);
        assert_eq!(sent[0].valid_until, t0 + MIN + 4 * MIN);
        run(&spec, &mut st, t0 + MIN + 15_000, &[]);
        let sent = due_alerts(&mut st, t0 + MIN + 15_000, MIN, 15_000);
        assert_eq!(sent[0].resolved_at, t0 + MIN + 15_000);
    }
}
