//! `sightline rules check` against `promtool check rules` (Debian
//! `prometheus` package): the same verdict for each file, and problems
//! reported with file, line and column.

mod common;

use std::process::Command;

use common::require_tool;

/// (file name, content, valid?). Only fields Debian's Prometheus 2.42
/// knows (group `labels` and `query_offset` came later).
const CASES: &[(&str, &str, bool)] = &[
    (
        "good.yml",
        "groups:
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
          summary: '{{ $labels.instance }} down'
      - record: one
        expr: 1
",
        true,
    ),
    ("empty.yml", "groups: []\n", true),
    (
        "template_unknown_function.yml",
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        annotations:\n          summary: '{{ $value | humanise }}'\n",
        false,
    ),
    (
        "template_unclosed.yml",
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        labels:\n          team: '{{ if $labels.job }}x'\n",
        false,
    ),
    (
        "template_good.yml",
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        annotations:\n          summary: '{{ with query \"count(up)\" }}{{ . | first | value | humanize }}{{ end }} {{ $labels.instance | stripPort }} {{ printf \"%.1f\" $value }}'\n",
        true,
    ),
    (
        "bad_expr.yml",
        "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: sum(rate(x[5m])\n",
        false,
    ),
    (
        "both.yml",
        "groups:\n  - name: g\n    rules:\n      - record: r\n        alert: A\n        expr: up\n",
        false,
    ),
    (
        "neither.yml",
        "groups:\n  - name: g\n    rules:\n      - expr: up\n",
        false,
    ),
    (
        "no_expr.yml",
        "groups:\n  - name: g\n    rules:\n      - alert: A\n",
        false,
    ),
    (
        "record_name.yml",
        "groups:\n  - name: g\n    rules:\n      - record: bad-name\n        expr: up\n",
        false,
    ),
    (
        "record_annotations.yml",
        "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up\n        annotations:\n          a: b\n",
        false,
    ),
    (
        "dup_group.yml",
        "groups:\n  - name: g\n    rules: []\n  - name: g\n    rules: []\n",
        false,
    ),
    ("unknown_key.yml", "groups:\n  - name: g\n    rulez: []\n", false),
    (
        "bad_label.yml",
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        labels:\n          0bad: x\n",
        false,
    ),
    ("not_yaml.yml", "groups: [\n", false),
];

#[test]
fn verdicts_match_promtool() {
    let dir = tempfile::tempdir().expect("tmp");
    for (name, text, _) in CASES {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    let promtool = require_tool("promtool", "apt-get install prometheus").is_some();
    for (name, _, valid) in CASES {
        let path = dir.path().join(name);
        let ours = Command::new(env!("CARGO_BIN_EXE_sightline"))
            .args(["rules", "check"])
            .arg(&path)
            .output()
            .expect("run sightline");
        let out = String::from_utf8_lossy(&ours.stdout);
        assert_eq!(ours.status.success(), *valid, "{name}: sightline said\n{out}");
        if !valid && *name != "not_yaml.yml" && *name != "unknown_key.yml" {
            // Problems carry file:line:column.
            let prefix = format!("{}: ", path.display());
            let line = out
                .lines()
                .find(|l| l.starts_with(&prefix))
                .unwrap_or_else(|| panic!("{name}: {out}"));
            let pos = line[prefix.len()..].split(':').take(2).collect::<Vec<_>>();
            assert!(
                pos.len() == 2 && pos.iter().all(|p| p.parse::<u64>().is_ok_and(|n| n > 0)),
                "{name}: no line:column in {line:?}"
            );
        }
        if promtool {
            let theirs = Command::new("promtool")
                .args(["check", "rules"])
                .arg(&path)
                .output()
                .expect("run promtool");
            assert_eq!(
                theirs.status.success(),
                *valid,
                "{name}: promtool disagrees with the expected verdict: {}{}",
                String::from_utf8_lossy(&theirs.stdout),
                String::from_utf8_lossy(&theirs.stderr)
            );
        }
    }
}

#[test]
fn logql_rule_files_are_checked_with_lang_logql() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = dir.path().join("good.yml");
    std::fs::write(
        &good,
        r#"groups:
  - name: mail
    rules:
      - alert: MailErrors
        expr: sum by (host) (rate({job="mail"} |= "error" [5m])) > 1
        for: 5m
      - record: host:mail_lines:rate5m
        expr: sum by (host) (rate({job="mail"}[5m]))
"#,
    )
    .expect("write");
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        r#"groups:
  - name: mail
    rules:
      - alert: MailErrors
        expr: sum by (host) (rate({job="mail"} |= [5m]))
"#,
    )
    .expect("write");
    let run = |lang: &str, path: &std::path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
            .args(["rules", "check", "--lang", lang])
            .arg(path)
            .output()
            .expect("run sightline");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (ok, out) = run("logql", &good);
    assert!(ok && out.contains("SUCCESS: 2 rules found"), "{out}");
    let (ok, out) = run("logql", &bad);
    assert!(!ok, "{out}");
    let prefix = format!("{}: 5:", bad.display());
    assert!(
        out.lines().any(|l| l.starts_with(&prefix)),
        "problem with its line: {out}"
    );
    // The same good file is not PromQL.
    let (ok, out) = run("promql", &good);
    assert!(!ok, "{out}");
}
