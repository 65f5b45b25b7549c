//! Rule files in Prometheus' format and their validation, with the
//! messages and positions `promtool check rules` gives.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_saphyr::Spanned;
use sightline_query::params::parse_duration_ms;

/// A rule file: `groups: [...]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// The rule groups, evaluated independently.
    #[serde(default)]
    pub groups: Vec<Spanned<RuleGroup>>,
}

/// One group: rules evaluated in order at one interval.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    /// Unique name within the file.
    #[serde(default)]
    pub name: String,
    /// Evaluation interval (default: the global one).
    #[serde(default)]
    pub interval: Option<String>,
    /// How far back in time rules are evaluated.
    #[serde(default)]
    pub query_offset: Option<String>,
    /// Most alerts or series a rule may produce (0: no limit).
    #[serde(default)]
    pub limit: Option<u64>,
    /// Labels added to every rule's output.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<Spanned<RuleDef>>,
}

/// A YAML scalar read as text (`expr: 1` is the query `1`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Text {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl Text {
    /// The scalar as written.
    pub fn as_string(&self) -> String {
        match self {
            Text::Str(s) => s.clone(),
            Text::Int(i) => i.to_string(),
            Text::Float(f) => f.to_string(),
            Text::Bool(b) => b.to_string(),
        }
    }
}

/// A recording rule (`record`) or an alerting rule (`alert`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    /// Name of the series a recording rule writes.
    #[serde(default)]
    pub record: Option<String>,
    /// Name of the alert.
    #[serde(default)]
    pub alert: Option<String>,
    /// The PromQL expression.
    #[serde(default)]
    pub expr: Option<Spanned<Text>>,
    /// How long an alert is pending before it fires.
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
    /// How long an alert keeps firing after its condition cleared.
    #[serde(default)]
    pub keep_firing_for: Option<String>,
    /// Labels added to the output.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Alert annotations (templates).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl RuleDef {
    /// The rule's name: the alert or the recorded series.
    pub fn name(&self) -> &str {
        self.alert.as_deref().or(self.record.as_deref()).unwrap_or("")
    }
}

/// One problem found in a rule file, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
    /// What is wrong, in promtool's words.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// The query language of a rule file's expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// PromQL over metrics (Prometheus rule files).
    #[default]
    Promql,
    /// LogQL metric queries over logs (Loki ruler files).
    Logql,
}

/// Parses and validates a Prometheus rule file. On success returns the
/// file and the number of rules; otherwise every problem found.
pub fn check(text: &str) -> Result<(RuleFile, usize), Vec<Problem>> {
    check_lang(text, Lang::Promql)
}

/// [`check`] for rule files whose expressions are in `lang`.
pub fn check_lang(text: &str, lang: Lang) -> Result<(RuleFile, usize), Vec<Problem>> {
    let file: RuleFile = serde_saphyr::from_str(text).map_err(|e| {
        vec![Problem {
            line: 0,
            column: 0,
            message: e.to_string(),
        }]
    })?;
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    let mut count = 0;
    for g in &file.groups {
        let at = |line: u64, column: u64, message: String| Problem { line, column, message };
        let (gl, gc) = (g.referenced.line(), g.referenced.column());
        let group = &g.value;
        if group.name.is_empty() {
            problems.push(at(gl, gc, "Groupname must not be empty".into()));
        } else if !names.insert(group.name.clone()) {
            problems.push(at(
                gl,
                gc,
                format!("groupname: \"{}\" is repeated in the same file", group.name),
            ));
        }
        for (what, d) in [("interval", &group.interval), ("query_offset", &group.query_offset)] {
            if let Some(d) = d
                && duration(d).is_none()
            {
                problems.push(at(gl, gc, format!("invalid {what} {d:?}: not a duration such as 1m")));
            }
        }
        for k in group.labels.keys() {
            if !valid_label_name(k) || k == "__name__" {
                problems.push(at(gl, gc, format!("invalid label name: {k}")));
            }
        }
        for (i, r) in group.rules.iter().enumerate() {
            count += 1;
            let rule = &r.value;
            let wrap = |line: u64, column: u64, err: String| Problem {
                line,
                column,
                message: format!("group {:?}, rule {}, {:?}: {err}", group.name, i + 1, rule.name()),
            };
            let (rl, rc) = (r.referenced.line(), r.referenced.column());
            for err in validate_rule(rule, lang) {
                let (l, c) = match (&err.1, &rule.expr) {
                    (true, Some(e)) => (e.referenced.line(), e.referenced.column()),
                    _ => (rl, rc),
                };
                problems.push(wrap(l, c, err.0));
            }
        }
    }
    if problems.is_empty() {
        Ok((file, count))
    } else {
        Err(problems)
    }
}

/// The problems of one rule; `true` marks those about its expression.
fn validate_rule(r: &RuleDef, lang: Lang) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let record = r.record.as_deref().unwrap_or("");
    let alert = r.alert.as_deref().unwrap_or("");
    if !record.is_empty() && !alert.is_empty() {
        out.push(("only one of 'record' and 'alert' must be set".into(), false));
    }
    if record.is_empty() && alert.is_empty() {
        out.push(("one of 'record' or 'alert' must be set".into(), false));
    }
    match r.expr.as_ref().map(|e| e.value.as_string()) {
        None => out.push(("field 'expr' must be set in rule".into(), false)),
        Some(e) if e.trim().is_empty() => out.push(("field 'expr' must be set in rule".into(), true)),
        Some(e) => match lang {
            Lang::Promql => {
                if let Err(err) = sightline_query::promql::parse(&e) {
                    out.push((format!("could not parse expression: {err}"), true));
                }
            }
            Lang::Logql => match sightline_query::logql::parse(&e) {
                Err(err) => out.push((format!("could not parse expression: {err}"), true)),
                Ok(sightline_query::logql::Expr::Log(_)) => out.push((
                    "a rule needs a LogQL metric query (e.g. sum(count_over_time({app=\"x\"} |= \"error\" [5m]))), not a log query".into(),
                    true,
                )),
                Ok(_) => {}
            },
        },
    }
    if !record.is_empty() {
        if !r.annotations.is_empty() {
            out.push(("invalid field 'annotations' in recording rule".into(), false));
        }
        if r.for_.as_deref().and_then(duration).is_some_and(|d| d != 0) {
            out.push(("invalid field 'for' in recording rule".into(), false));
        }
        if r.keep_firing_for.as_deref().and_then(duration).is_some_and(|d| d != 0) {
            out.push(("invalid field 'keep_firing_for' in recording rule".into(), false));
        }
        if !valid_metric_name(record) {
            out.push((format!("invalid recording rule name: {record}"), false));
        }
    }
    for (what, d) in [("for", &r.for_), ("keep_firing_for", &r.keep_firing_for)] {
        if let Some(d) = d
            && duration(d).is_none()
        {
            out.push((
                format!("invalid field '{what}': {d:?} is not a duration such as 5m"),
                false,
            ));
        }
    }
    for k in r.labels.keys() {
        if !valid_label_name(k) || k == "__name__" {
            out.push((format!("invalid label name: {k}"), false));
        }
    }
    for k in r.annotations.keys() {
        if !valid_label_name(k) {
            out.push((format!("invalid annotation name: {k}"), false));
        }
    }
    if !alert.is_empty() {
        for (what, map) in [("label", &r.labels), ("annotation", &r.annotations)] {
            for (k, v) in map {
                if let Err(e) = crate::template::check_alert_template(alert, v) {
                    out.push((format!("{what} {k:?}: {e}"), false));
                }
            }
        }
    }
    out
}

/// A Prometheus duration (`5m`, `1h30m`, `0`) in ms; bare numbers other
/// than 0 are not durations in rule files.
fn duration(s: &str) -> Option<i64> {
    if s != "0" && s.parse::<f64>().is_ok() {
        return None;
    }
    parse_duration_ms(s)
}

/// A valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "groups:
  - name: node
    interval: 30s
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: NodeDown
        expr: up == 0
        for: 5m
        keep_firing_for: 10m
        labels:
          severity: page
        annotations:
          summary: '{{ $labels.instance }} is down'
      - record: one
        expr: 1
";

    #[test]
    fn a_valid_file_counts_its_rules() {
        let (file, n) = check(GOOD).expect("valid");
        assert_eq!(n, 3);
        assert_eq!(file.groups[0].value.rules[1].value.name(), "NodeDown");
    }

    #[test]
    fn problems_name_group_rule_and_line() {
        let bad = "groups:
  - name: g
    rules:
      - record: ok
        expr: sum(
      - alert: A
        record: B
        expr: up
      - record: bad-name
        expr: up
        annotations:
          x: y
  - name: g
    rules: []
";
        let problems = check(bad).expect_err("invalid");
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|p| p.starts_with("5:15: group \"g\", rule 1, \"ok\": could not parse expression")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|p| p.contains("rule 2, \"A\": only one of 'record' and 'alert' must be set")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|p| p.contains("invalid recording rule name: bad-name")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|p| p.contains("invalid field 'annotations' in recording rule")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|p| p.contains("groupname: \"g\" is repeated in the same file")),
            "{text:?}"
        );
    }

    #[test]
    fn unknown_keys_and_broken_yaml_are_errors() {
        assert!(check("groups:\n  - name: g\n    rulez: []\n").is_err());
        assert!(check("groups: [").is_err());
    }
}

#[cfg(test)]
mod logql_rule_tests {
    use super::*;

    #[test]
    fn loki_ruler_files_are_checked_with_logql() {
        let good = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(count_over_time({app=\"x\"} |= \"error\" [5m])) > 1\n";
        assert!(check_lang(good, Lang::Logql).is_ok());
        assert!(check(good).is_err(), "not PromQL");
        let log_query =
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: '{app=\"x\"} |= \"error\"'\n";
        let problems = check_lang(log_query, Lang::Logql).expect_err("a log query is no rule");
        assert!(
            problems[0].message.contains("needs a LogQL metric query"),
            "{}",
            problems[0].message
        );
    }
}
