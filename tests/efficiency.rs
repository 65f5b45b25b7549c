//! Efficiency reports end to end: the built-in sample day (Kubernetes pods
//! scan 20 % more messages per CPU-second than VMs) is remote-written to a
//! running Sightline; `sightline report efficiency --config` asks it for a
//! report from a YAML file and must find the gain within its interval,
//! with the same figures as the same data evaluated in-process
//! (`--sample gain20`); the GET API answers in Markdown; bad input is 400.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;
use sightline_query::efficiency::sample::{self, SampleKind};
use sightline_storage::{MatchOp, Matcher, SeriesReader};

const HALF_HOUR: i64 = 1_800_000;

/// Writes the sample day ending at `end` to the server, oldest half hour
/// first (as a collector would have sent it).
fn write_sample_day(srv: &Server, end: i64) {
    let (data, _) = sample::build_ending(SampleKind::Gain20, end);
    let everything = Matcher::new(MatchOp::Regex, "__name__", ".+").expect("matcher");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let series = rt
        .block_on(data.select(&[everything], i64::MIN, i64::MAX))
        .expect("sample series");
    let mut from = end - sample::SPAN_MS;
    while from < end {
        let batch: Vec<_> = series
            .iter()
            .map(|s| {
                let labels: Vec<(&str, &str)> = s.labels.iter().map(|l| (l.name, l.value)).collect();
                let samples: Vec<(i64, f64)> = s
                    .timestamps
                    .iter()
                    .zip(&s.values)
                    .filter(|(t, _)| (from..from + HALF_HOUR).contains(*t))
                    .map(|(t, v)| (*t, *v))
                    .collect();
                ts(&labels, &samples)
            })
            .collect();
        let (code, body) = remote_write(srv, batch);
        assert!((200..300).contains(&code), "remote write: {code} {body}");
        from += HALF_HOUR;
    }
}

fn sightline(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(args)
        .output()
        .expect("run sightline")
}

fn json_of(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

#[test]
fn a_known_gain_is_found_through_the_server_and_the_cli() {
    let tmp = tempfile::tempdir().expect("tmp");
    let srv = Server::start(&tmp.path().join("data"), &[]);
    let end = now_ms() / 60_000 * 60_000;
    write_sample_day(&srv, end);

    let (start, end_s) = ((end - sample::SPAN_MS + 300_000) / 1000, end / 1000);
    let config = tmp.path().join("report.yaml");
    std::fs::write(
        &config,
        format!(
            r#"title: Spam scanner, Kubernetes against VMs
work:
  name: messages scanned per second
  query: sum(rate(messages_scanned_total{{job="spam-scanner"}}[5m]))
resource:
  name: CPU-second
  query: sum(rate(process_cpu_seconds_total{{job="spam-scanner"}}[5m]))
latency: scan_duration_seconds_bucket{{job="spam-scanner"}}
step: 5m
baseline:
  name: vm
  matchers: '{{platform="vm"}}'
  start: {start}
  end: {end_s}
candidate:
  name: k8s
  matchers: '{{platform="k8s"}}'
  start: {start}
  end: {end_s}
"#
        ),
    )
    .expect("write config");
    let config = config.to_string_lossy().to_string();
    let url = srv.url("");
    let report = json_of(&sightline(&[
        "report",
        "efficiency",
        "--config",
        &config,
        "--url",
        &url,
        "--format",
        "json",
    ]));
    let change = &report["change"];
    let (lo, hi) = (change["interval"][0].as_f64(), change["interval"][1].as_f64());
    let (lo, hi) = (lo.expect("low"), hi.expect("high"));
    assert_eq!(change["significant"], true, "{report:#}");
    assert!(lo <= 0.2 && 0.2 <= hi, "20 % outside [{lo}, {hi}]");
    assert_eq!(report["cohorts"][0]["windows"], 288);
    assert!(report["cohorts"][1]["latency"]["p99"].as_f64().is_some(), "{report:#}");

    // The same data evaluated in-process gives the same figures: one
    // engine behind the API and the CLI.
    let local = json_of(&sightline(&[
        "report",
        "efficiency",
        "--sample",
        "gain20",
        "--format",
        "json",
    ]));
    for path in [["change", "relative"], ["cohorts", "0"]] {
        let (a, b) = (&report[path[0]], &local[path[0]]);
        let (a, b) = if path[1] == "0" {
            (&a[0]["efficiency"], &b[0]["efficiency"])
        } else {
            (&a[path[1]], &b[path[1]])
        };
        let (a, b) = (a.as_f64().expect("number"), b.as_f64().expect("number"));
        assert!((a - b).abs() <= 1e-9 * a.abs(), "server {a} vs in-process {b}");
    }

    // Markdown from the GET API, with the cohorts as parameters.
    let get = |extra: &[(&str, &str)]| {
        let mut params: Vec<(&str, String)> = vec![
            ("work", "sum(rate(messages_scanned_total[5m]))".into()),
            ("resource", "sum(rate(process_cpu_seconds_total[5m]))".into()),
            ("baseline.matchers", r#"{platform="vm"}"#.into()),
            ("candidate.name", "k8s".into()),
            ("candidate.matchers", r#"{platform="k8s"}"#.into()),
            ("format", "markdown".into()),
        ];
        for key in ["baseline.start", "candidate.start"] {
            params.push((key, start.to_string()));
        }
        for key in ["baseline.end", "candidate.end"] {
            params.push((key, end_s.to_string()));
        }
        for (k, v) in extra {
            params.retain(|(n, _)| n != k);
            if !v.is_empty() {
                params.push((k, v.to_string()));
            }
        }
        let r = client()
            .get(srv.url("/api/v1/efficiency"))
            .query(&params)
            .send()
            .expect("GET efficiency");
        (r.status().as_u16(), r.text().unwrap_or_default())
    };
    let (code, md) = get(&[]);
    assert_eq!(code, 200, "{md}");
    assert!(md.contains("**k8s does 2"), "{md}");
    assert!(md.contains("| baseline | `{platform=\"vm\"}` |"), "{md}");

    // Bad input: named in a 400, nothing else happens.
    let (code, body) = get(&[("work", "")]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("missing parameter \\\"work\\\""), "{body}");
    let (code, body) = get(&[("step", "often")]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("step \\\"often\\\""), "{body}");
    let r = client()
        .post(srv.url("/api/v1/efficiency"))
        .body("work: [unclosed")
        .send()
        .expect("POST efficiency");
    assert_eq!(r.status().as_u16(), 400);
    let out = sightline(&["report", "efficiency", "--config", "/nonexistent.yaml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent.yaml"));
}

#[test]
fn no_change_is_not_reported_as_a_gain() {
    let out = sightline(&["report", "efficiency", "--sample", "none"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("**no significant change: k8s against vm"), "{md}");
    assert!(md.contains(", not significant."), "{md}");
}
