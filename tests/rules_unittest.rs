//! `sightline rules test` against `promtool test rules` (Debian's
//! Prometheus 2.42) on the same files: the same verdict for every file,
//! and the same report for failing alert and expression tests.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::require_tool;

fn test_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("test dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yml")
                && std::fs::read_to_string(p).is_ok_and(|t| t.lines().any(|l| l.starts_with("tests:")))
        })
        .collect();
    files.sort();
    files
}

/// Exit status, stdout and stderr.
fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs both tools on every test file in `dir`; returns (file, passed).
fn compare(dir: &Path, promtool: &Path) -> Vec<(String, bool)> {
    let mut verdicts = Vec::new();
    for f in test_files(dir) {
        let (p_ok, p_out, p_err) = run(Command::new(promtool).args(["test", "rules"]).arg(&f));
        let (s_ok, s_out, s_err) = run(Command::new(env!("CARGO_BIN_EXE_sightline"))
            .args(["rules", "test"])
            .arg(&f));
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert_eq!(
            s_ok, p_ok,
            "{name}: promtool says {p_ok}, sightline says {s_ok}\npromtool:\n{p_out}{p_err}\nsightline:\n{s_out}{s_err}"
        );
        assert_eq!(s_out, p_out, "{name}: progress output differs");
        // Reports of failed alert and expression checks match line by line
        // (rule-file syntax errors are worded by each tool's parser).
        if !p_ok && !p_err.contains("could not parse") {
            assert_eq!(s_err, p_err, "{name}: reports differ");
        }
        verdicts.push((name, s_ok));
    }
    verdicts
}

#[test]
fn same_verdicts_as_promtool() {
    let Some(promtool) = require_tool("promtool", "apt-get install prometheus") else {
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules_unittest");
    let verdicts = compare(&dir, &promtool);
    assert!(verdicts.len() >= 8, "{verdicts:?}");
    for (name, ok) in &verdicts {
        assert_eq!(
            *ok,
            name.starts_with("pass"),
            "{name} should {}",
            if name.starts_with("pass") { "pass" } else { "fail" }
        );
    }
}

#[test]
fn the_shipped_rule_pack_passes_its_tests_in_both_tools() {
    let Some(promtool) = require_tool("promtool", "apt-get install prometheus") else {
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerting/rules");
    let verdicts = compare(&dir, &promtool);
    assert!(!verdicts.is_empty());
    assert!(verdicts.iter().all(|(_, ok)| *ok), "{verdicts:?}");
}

#[test]
fn the_shipped_alertmanager_config_loads_here_and_in_amtool() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerting/rules/alertmanager.yml");
    let text = std::fs::read_to_string(&path).expect("read");
    let cfg = sightline_alerting::am::AmConfig::parse(&text).expect("valid");
    assert_eq!(cfg.inhibit_rules.len(), 2);
    let Some(amtool) = require_tool("amtool", "apt-get install prometheus-alertmanager") else {
        return;
    };
    let out = Command::new(amtool)
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("amtool");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
