//! `sightline rules test`: unit tests for rule files in the format of
//! `promtool test rules` — input series in the PromQL test notation,
//! expected firing alerts at given times, expected query results — run
//! through Sightline's own rule evaluation and PromQL engine over an
//! in-memory store.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use serde::Deserialize;
use sightline_alerting::group::{EvalDeps, Group, GroupDefaults, eval_group, load_files};
use sightline_alerting::rule::{AppendFn, Health, Labels, OutputSample, RuleKind, labels_string};
use sightline_alerting::rules::Text;
use sightline_query::promql::{Engine, EngineOptions};
use sightline_query::series_notation::{parse_metric, parse_series_line};
use sightline_storage::MemorySeries;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<String>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, Text>,
    #[serde(default)]
    external_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    #[serde(default)]
    values: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    eval_time: Text,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, Text>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: String,
    eval_time: Text,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    labels: String,
    value: f64,
}

fn duration(what: &str, t: &Text) -> Result<i64, String> {
    let s = t.as_string();
    sightline_query::params::parse_duration_ms(&s).ok_or_else(|| format!("{what}: not a duration: {s:?}"))
}

/// Go's `time.Duration` printing of whole milliseconds (`10m0s`, `1h5m`…).
fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    if rest % 1000 == 0 {
        let _ = write!(out, "{}s", rest / 1000);
    } else {
        let _ = write!(out, "{}s", rest as f64 / 1000.0);
    }
    out
}

/// Prometheus' duration printing (`model.Duration`): `10m`, `1h30m`, `0s`.
fn prom_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, size) in [
        ("y", 31_536_000_000),
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if rest >= size {
            let _ = write!(out, "{}{unit}", rest / size);
            rest %= size;
        }
    }
    out
}

type AlertPair = (Labels, Labels);

fn alerts_string(list: &[AlertPair], indent: &str) -> String {
    if list.is_empty() {
        return "[]".into();
    }
    let items: Vec<String> = list
        .iter()
        .enumerate()
        .map(|(i, (l, a))| {
            format!(
                "{indent}{i}:\n{indent}  Labels:{}\n{indent}  Annotations:{}",
                labels_string(l),
                labels_string(a)
            )
        })
        .collect();
    format!("[\n{}\n{indent}]", items.join(",\n"))
}

/// promtool's sample list: `{labels} 5E+01, …`, or `nil`.
fn samples_string(list: &[(Labels, f64)]) -> String {
    if list.is_empty() {
        return "nil".into();
    }
    let parts: Vec<String> = list
        .iter()
        .map(|(l, v)| format!("{} {}", labels_string(l), float_e(*v)))
        .collect();
    parts.join(", ")
}

fn float_e(v: f64) -> String {
    sightline_alerting::timefmt::float_e(v, true)
}

fn append_fn(store: Arc<RwLock<MemorySeries>>) -> AppendFn {
    Arc::new(move |samples: Vec<OutputSample>| {
        let mut st = store.write();
        for s in samples {
            let labels = sightline_storage::Labels::from_pairs(s.labels.into_iter().collect::<Vec<_>>());
            st.add(labels, [(s.t, s.v)]);
        }
        Box::pin(async { Ok(()) })
    })
}

/// Runs one test file; returns the problems (empty: it passed).
pub async fn run_file(path: &Path) -> Vec<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return vec![format!("cannot read {}: {e}", path.display())],
    };
    let file: TestFile = match serde_saphyr::from_str(&text) {
        Ok(f) => f,
        Err(e) => return vec![e.to_string()],
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut rule_files: Vec<PathBuf> = Vec::new();
    for pattern in &file.rule_files {
        let full = base.join(pattern);
        match glob::glob(&full.to_string_lossy()) {
            Ok(paths) => {
                let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
                if found.is_empty() {
                    found.push(full);
                }
                rule_files.extend(found);
            }
            Err(e) => return vec![format!("rule_files: invalid pattern {pattern:?}: {e}")],
        }
    }
    let eval_interval = match file.evaluation_interval.as_deref() {
        Some(s) => match sightline_query::params::parse_duration_ms(s) {
            Some(d) if d > 0 => d,
            _ => return vec![format!("evaluation_interval: not a duration: {s:?}")],
        },
        None => 60_000,
    };
    let defaults = GroupDefaults {
        interval: eval_interval,
        query_offset: 0,
    };
    let specs = match load_files(&rule_files, &defaults) {
        Ok(s) => s,
        Err(e) => return e.lines().map(str::to_string).collect(),
    };
    let mut specs = specs;
    if !file.group_eval_order.is_empty() {
        let mut ordered = Vec::new();
        for name in &file.group_eval_order {
            match specs.iter().position(|g| &g.name == name) {
                Some(i) => ordered.push(specs.remove(i)),
                None => return vec![format!("group {name:?} in group_eval_order not found")],
            }
        }
        if let Some(g) = specs.first() {
            return vec![format!("group {:?} is missing from group_eval_order", g.name)];
        }
        specs = ordered;
    }
    let mut problems = Vec::new();
    for tg in &file.tests {
        match run_group_test(tg, &specs, eval_interval).await {
            Ok(p) => problems.extend(p),
            Err(e) => problems.push(e),
        }
    }
    problems
}

async fn run_group_test(
    tg: &TestGroup,
    specs: &[sightline_alerting::group::GroupSpec],
    eval_interval: i64,
) -> Result<Vec<String>, String> {
    let interval = match &tg.interval {
        Some(s) => sightline_query::params::parse_duration_ms(s)
            .filter(|d| *d > 0)
            .ok_or_else(|| format!("interval: not a duration: {s:?}"))?,
        None => eval_interval,
    };
    let store = Arc::new(RwLock::new(MemorySeries::new()));
    for s in &tg.input_series {
        let line = format!(
            "{} {}",
            s.series,
            s.values.as_ref().map(Text::as_string).unwrap_or_default()
        );
        let (labels, values) = parse_series_line(&line).map_err(|e| format!("input series {:?}: {e}", s.series))?;
        let samples: Vec<(i64, f64)> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i as i64 * interval, v)))
            .collect();
        store.write().add(labels, samples);
    }
    let engine = Arc::new(Engine::new(EngineOptions::default()));
    let deps = EvalDeps {
        query: crate::rules::query_fn(engine.clone(), store.clone()),
        log_query: None,
        append: append_fn(store.clone()),
        notify: Arc::new(|_| {}),
        external_labels: tg
            .external_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.as_string()))
            .collect(),
        external_url: tg.external_url.clone().unwrap_or_default(),
        resend_delay: 60_000,
    };
    let groups: Vec<Group> = specs.iter().cloned().map(Group::new).collect();
    let name_line = tg
        .name
        .as_ref()
        .map(|n| format!("    name: {n},\n"))
        .unwrap_or_default();

    let mut alert_tests: BTreeMap<i64, Vec<&AlertTest>> = BTreeMap::new();
    for at in &tg.alert_rule_test {
        if at.alertname.is_empty() {
            return Err("alert name missing in alert_rule_test".into());
        }
        alert_tests
            .entry(duration("eval_time", &at.eval_time)?)
            .or_default()
            .push(at);
    }
    let mut max_t = alert_tests.keys().next_back().copied().unwrap_or(0);
    for et in &tg.promql_expr_test {
        max_t = max_t.max(duration("eval_time", &et.eval_time)?);
    }
    let mut problems = Vec::new();
    let mut pending_checks = alert_tests.into_iter().peekable();
    let mut ts = 0i64;
    while ts <= max_t {
        for g in &groups {
            eval_group(g, ts, &deps).await;
        }
        let mut eval_errors = Vec::new();
        for g in &groups {
            for (rule, st) in g.spec.rules.iter().zip(&g.states) {
                let st = st.lock();
                if st.health == Health::Bad {
                    eval_errors.push(format!(
                        "    rule: {}, time: {}, err: {}",
                        rule.name,
                        go_duration(ts),
                        st.last_error
                    ));
                }
            }
        }
        if !eval_errors.is_empty() {
            problems.extend(eval_errors);
            return Ok(problems);
        }
        while let Some((t, _)) = pending_checks.peek() {
            if !(ts <= *t && *t < ts + eval_interval) {
                break;
            }
            let Some((t, tests)) = pending_checks.next() else { break };
            for at in tests {
                let mut got: Vec<AlertPair> = Vec::new();
                for g in &groups {
                    for (rule, st) in g.spec.rules.iter().zip(&g.states) {
                        if rule.name != at.alertname || !matches!(rule.kind, RuleKind::Alerting { .. }) {
                            continue;
                        }
                        got.extend(
                            st.lock()
                                .active
                                .values()
                                .filter(|a| {
                                    a.resolved_at == 0 && a.state == sightline_alerting::rule::AlertState::Firing
                                })
                                .map(|a| (a.labels.clone(), a.annotations.clone())),
                        );
                    }
                }
                let mut exp: Vec<AlertPair> = at
                    .exp_alerts
                    .iter()
                    .map(|e| {
                        let mut l: Labels = e.exp_labels.iter().map(|(k, v)| (k.clone(), v.as_string())).collect();
                        l.insert("alertname".into(), at.alertname.clone());
                        let a: Labels = e
                            .exp_annotations
                            .iter()
                            .map(|(k, v)| (k.clone(), v.as_string()))
                            .collect();
                        (l, a)
                    })
                    .collect();
                got.sort();
                exp.sort();
                if got != exp {
                    problems.push(format!(
                        "{name_line}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
                        at.alertname,
                        prom_duration(t),
                        alerts_string(&exp, "            "),
                        alerts_string(&got, "            ")
                    ));
                }
            }
        }
        ts += eval_interval;
    }

    for et in &tg.promql_expr_test {
        let t = duration("eval_time", &et.eval_time)?;
        let got = match (deps.query)(et.expr.clone(), t).await {
            Ok(g) => g,
            Err(e) => {
                problems.push(format!("    expr: {:?}, time: {}, err: {e}", et.expr, prom_duration(t)));
                continue;
            }
        };
        let mut got: Vec<(Labels, f64)> = got.into_iter().map(|s| (s.labels, s.value)).collect();
        let mut exp = Vec::new();
        let mut bad = None;
        for s in &et.exp_samples {
            match parse_metric(s.labels.trim()) {
                Ok(l) => exp.push((
                    l.iter()
                        .map(|l| (l.name.to_string(), l.value.to_string()))
                        .collect::<Labels>(),
                    s.value,
                )),
                Err(e) => {
                    bad = Some(format!(
                        "    expr: {:?}, time: {}, err: labels {:?}: {e}",
                        et.expr,
                        prom_duration(t),
                        s.labels
                    ));
                    break;
                }
            }
        }
        if let Some(b) = bad {
            problems.push(b);
            continue;
        }
        let by_labels = |a: &(Labels, f64), b: &(Labels, f64)| a.0.cmp(&b.0);
        got.sort_by(by_labels);
        exp.sort_by(by_labels);
        let equal = got.len() == exp.len() && got.iter().zip(&exp).all(|(g, e)| g.0 == e.0 && g.1 == e.1);
        if !equal {
            problems.push(format!(
                "    expr: {:?}, time: {},\n        exp: {}\n        got: {}",
                et.expr,
                prom_duration(t),
                samples_string(&exp),
                samples_string(&got)
            ));
        }
    }
    Ok(problems)
}

/// `sightline rules test`: runs every file, prints promtool's report;
/// true when all passed.
pub fn run(files: &[PathBuf]) -> bool {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return false;
        }
    };
    let mut ok = true;
    for f in files {
        println!("Unit Testing:  {}", f.display());
        let problems = rt.block_on(run_file(f));
        if problems.is_empty() {
            println!("  SUCCESS");
        } else {
            ok = false;
            // As promtool: the report on stderr, the progress on stdout.
            eprintln!("  FAILED:");
            for p in problems {
                eprintln!("{p}");
                println!();
            }
        }
        println!();
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go_and_prometheus() {
        assert_eq!(go_duration(600_000), "10m0s");
        assert_eq!(go_duration(3_900_000), "1h5m0s");
        assert_eq!(go_duration(1_500), "1.5s");
        assert_eq!(prom_duration(600_000), "10m");
        assert_eq!(prom_duration(5_400_000), "1h30m");
        assert_eq!(prom_duration(0), "0s");
        assert_eq!(float_e(50.0), "5E+01");
        assert_eq!(float_e(0.25), "2.5E-01");
    }
}
