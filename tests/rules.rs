//! Rule evaluation end to end against the real binary: recording and
//! alerting rules over remote-written data, `/api/v1/rules` and
//! `/api/v1/alerts`, `ALERTS` in storage, alerts delivered to an
//! Alertmanager (a recording stand-in, and the real one from Debian),
//! reloads that keep the old rules on error, and alert state that
//! survives a restart.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn get_json(server: &Server, path: &str) -> Value {
    let resp = client().get(server.url(path)).send().expect("GET");
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().expect("json")
}

fn write_up(server: &Server, now: i64) {
    let (status, body) = remote_write(
        server,
        vec![
            ts(
                &[("__name__", "up"), ("instance", "a:9100"), ("job", "node")],
                &[(now, 0.0)],
            ),
            ts(
                &[("__name__", "up"), ("instance", "b:9100"), ("job", "node")],
                &[(now, 1.0)],
            ),
        ],
    );
    assert!(status < 300, "{status} {body}");
}

const RULES: &str = r#"groups:
  - name: node
    interval: 1s
    labels: {team: mail}
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: InstanceDown
        expr: up == 0
        for: 2s
        labels: {severity: page}
        annotations:
          summary: '{{ $labels.instance }} of {{ $labels.job }} is down'
          value: '{{ $value | humanize }} ({{ with query "count(up)" }}{{ . | first | value }}{{ end }} targets)'
"#;

fn config(dir: &Path, rules: &str, alertmanager: Option<u16>) -> String {
    std::fs::write(dir.join("rules.yml"), rules).expect("rules");
    let mut cfg = String::from(
        "global:\n  evaluation_interval: 1s\n  external_labels: {site: fra}\nrule_files: [rules.yml]\nrules:\n  resend_delay: 1s\n",
    );
    if let Some(port) = alertmanager {
        cfg.push_str(&format!(
            "alerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
        ));
    }
    let path = dir.join("sightline.yml");
    std::fs::write(&path, cfg).expect("config");
    path.to_string_lossy().into_owned()
}

fn firing(server: &Server) -> Option<Value> {
    let alerts = get_json(server, "/api/v1/alerts");
    alerts["data"]["alerts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["state"] == "firing").cloned())
}

#[test]
fn rules_record_alert_and_notify() {
    let tmp = tempfile::tempdir().expect("tmp");
    let receiver = Receiver::start();
    let cfg = config(tmp.path(), RULES, Some(receiver.port));
    let server = Server::start(&tmp.path().join("data"), &["--config", &cfg]);
    write_up(&server, now_ms());

    // Pending first, then firing after `for`.
    let pending = wait_for("a pending alert", 20, || {
        let a = get_json(&server, "/api/v1/alerts");
        a["data"]["alerts"].as_array().and_then(|l| l.first().cloned())
    });
    assert_eq!(pending["state"], "pending", "{pending}");
    let alert = wait_for("a firing alert", 20, || firing(&server));
    assert_eq!(alert["labels"]["alertname"], "InstanceDown");
    assert_eq!(alert["labels"]["instance"], "a:9100");
    assert_eq!(alert["labels"]["severity"], "page");
    assert_eq!(alert["labels"]["team"], "mail");
    assert_eq!(alert["annotations"]["summary"], "a:9100 of node is down");
    assert_eq!(alert["annotations"]["value"], "0 (2 targets)");
    assert_eq!(alert["value"], "0e+00");

    // /api/v1/rules in Prometheus' shape.
    let rules = get_json(&server, "/api/v1/rules");
    let group = &rules["data"]["groups"][0];
    assert_eq!(group["name"], "node");
    assert_eq!(group["interval"], 1.0);
    assert!(group["file"].as_str().is_some_and(|f| f.ends_with("rules.yml")));
    let rec = &group["rules"][0];
    assert_eq!(rec["type"], "recording");
    assert_eq!(rec["name"], "job:up:sum");
    assert_eq!(rec["health"], "ok");
    let al = &group["rules"][1];
    assert_eq!(al["type"], "alerting");
    assert_eq!(al["state"], "firing");
    assert_eq!(al["duration"], 2.0);
    assert_eq!(al["alerts"].as_array().map(Vec::len), Some(1));
    let only_alerts = get_json(&server, "/api/v1/rules?type=alert&exclude_alerts=true");
    let rules_only = &only_alerts["data"]["groups"][0]["rules"];
    assert_eq!(rules_only.as_array().map(Vec::len), Some(1));
    assert!(rules_only[0].get("alerts").is_none());
    let bad = client()
        .get(server.url("/api/v1/rules?type=bogus"))
        .send()
        .expect("GET");
    assert_eq!(bad.status(), 400);

    // Rule output is stored and queryable.
    let recorded = wait_for("the recorded series", 20, || {
        let q = get_json(&server, "/api/v1/query?query=job:up:sum");
        q["data"]["result"].as_array().filter(|r| !r.is_empty()).cloned()
    });
    assert_eq!(recorded[0]["metric"]["team"], "mail");
    assert_eq!(recorded[0]["value"][1], "1");
    let stored = get_json(&server, "/api/v1/query?query=ALERTS{alertstate=\"firing\"}");
    assert_eq!(stored["data"]["result"][0]["metric"]["alertname"], "InstanceDown");

    // The Alertmanager stand-in got it, with external labels.
    let sent = wait_for("an alert at the Alertmanager", 20, || {
        receiver
            .bodies()
            .into_iter()
            .find(|(p, b)| p == "/api/v2/alerts" && b.contains("InstanceDown"))
    });
    let body: Value = serde_json::from_str(&sent.1).expect("json");
    assert_eq!(body[0]["labels"]["site"], "fra");
    assert_eq!(body[0]["labels"]["instance"], "a:9100");
    assert!(
        body[0]["generatorURL"]
            .as_str()
            .is_some_and(|u| u.contains("/graph?g0.expr=up"))
    );
    let metrics = metrics_text(&server);
    assert!(
        metrics.contains("sightline_rules_last_reload_successful 1"),
        "{metrics}"
    );
}

#[test]
fn a_bad_reload_keeps_the_running_rules() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = config(tmp.path(), RULES, None);
    let server = Server::start(&tmp.path().join("data"), &["--config", &cfg]);
    std::fs::write(
        tmp.path().join("rules.yml"),
        "groups:\n  - name: node\n    rules:\n      - record: x\n        expr: sum(\n",
    )
    .expect("write");
    let resp = client().post(server.url("/-/reload")).send().expect("POST");
    assert_eq!(resp.status(), 500);
    let text = resp.text().expect("text");
    assert!(
        text.contains("rules.yml: 5:15: group \"node\", rule 1, \"x\": could not parse"),
        "{text}"
    );
    let rules = get_json(&server, "/api/v1/rules");
    assert_eq!(rules["data"]["groups"][0]["rules"].as_array().map(Vec::len), Some(2));
    assert!(metrics_text(&server).contains("sightline_rules_last_reload_successful 0"));

    // A good file, loaded by SIGHUP.
    std::fs::write(
        tmp.path().join("rules.yml"),
        "groups:\n  - name: other\n    rules:\n      - record: y\n        expr: vector(1)\n",
    )
    .expect("write");
    let ok = Command::new("kill")
        .arg("-HUP")
        .arg(server.pid().to_string())
        .status()
        .expect("kill");
    assert!(ok.success());
    wait_for("the reloaded group", 20, || {
        let rules = get_json(&server, "/api/v1/rules");
        (rules["data"]["groups"][0]["name"] == "other").then_some(())
    });
    assert!(metrics_text(&server).contains("sightline_rules_last_reload_successful 1"));
}

#[test]
fn bad_rule_files_stop_the_start_with_their_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = config(tmp.path(), "groups:\n  - name: g\n    rules:\n      - alert: A\n", None);
    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["serve", "--config", &cfg, "--data-dir"])
        .arg(tmp.path().join("data"))
        .args(["--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("field 'expr' must be set in rule"), "{err}");
}

#[test]
fn alert_state_survives_a_restart() {
    let tmp = tempfile::tempdir().expect("tmp");
    let rules = r#"groups:
  - name: node
    interval: 1s
    rules:
      - alert: InstanceDown
        expr: up == 0
      - alert: SlowToFire
        expr: up == 0
        for: 1h
"#;
    let cfg = config(tmp.path(), rules, None);
    let data = tmp.path().join("data");
    let mut server = Server::start(&data, &["--config", &cfg]);
    write_up(&server, now_ms());
    let before = wait_for("firing and pending alerts", 20, || {
        let a = get_json(&server, "/api/v1/alerts");
        let list = a["data"]["alerts"].as_array()?.clone();
        (list.len() == 2).then_some(list)
    });
    let active_at = |list: &[Value], name: &str| -> String {
        list.iter()
            .find(|a| a["labels"]["alertname"] == name)
            .map(|a| a["activeAt"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let fired_at_before = active_at(&before, "InstanceDown");
    // Let the pending alert wait a few seconds, then restart.
    std::thread::sleep(Duration::from_secs(3));
    let pending_before = active_at(&before, "SlowToFire");
    let st = server.sigterm();
    assert!(st.success());
    std::thread::sleep(Duration::from_secs(2));
    let server = Server::start_on(&data, server.http, server.grpc, &["--config", &cfg]);
    // Restored before the first evaluation: same activeAt for the firing
    // alert; the pending one keeps the time it had waited (its activeAt
    // moves by the downtime only, not to the restart).
    let after = get_json(&server, "/api/v1/alerts");
    let after = after["data"]["alerts"].as_array().cloned().unwrap_or_default();
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(active_at(&after, "InstanceDown"), fired_at_before);
    let state = |list: &[Value], name: &str| {
        list.iter()
            .find(|a| a["labels"]["alertname"] == name)
            .map(|a| a["state"].clone())
    };
    assert_eq!(state(&after, "InstanceDown"), Some(Value::from("firing")));
    assert_eq!(state(&after, "SlowToFire"), Some(Value::from("pending")));
    let parse = |s: &str| chrono_like_ms(s).unwrap_or_else(|| panic!("bad time {s}"));
    let moved = parse(&active_at(&after, "SlowToFire")) - parse(&pending_before);
    assert!(
        (1_000..=15_000).contains(&moved),
        "pending activeAt moved by {moved} ms (downtime ~2-4 s); before {pending_before}, after {after:?}"
    );
}

/// Milliseconds of an RFC 3339 UTC time such as `2026-11-26T12:00:01.5Z`.
fn chrono_like_ms(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (h, mi, sec) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let ms: i64 = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) * 1000) + ms)
}

#[test]
fn real_alertmanager_receives_and_routes_alerts() {
    let Some(alertmanager) = require_tool("prometheus-alertmanager", "apt-get install prometheus-alertmanager") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let webhook = Receiver::start();
    let am_port = free_port();
    let am_cluster = free_port();
    let am_cfg = tmp.path().join("alertmanager.yml");
    std::fs::write(
        &am_cfg,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:{}/hook\n",
            webhook.port
        ),
    )
    .expect("am config");
    let mut cmd = Command::new(alertmanager);
    cmd.arg(format!("--config.file={}", am_cfg.display()))
        .arg(format!("--storage.path={}", tmp.path().join("am").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
        .arg(format!("--cluster.listen-address=127.0.0.1:{am_cluster}"));
    let mut am = Proc::spawn(cmd, &tmp.path().join("am.log"));
    wait_http_ok(&format!("http://127.0.0.1:{am_port}/-/ready"));

    let cfg = config(tmp.path(), RULES, Some(am_port));
    let server = Server::start(&tmp.path().join("data"), &["--config", &cfg]);
    write_up(&server, now_ms());
    let hook = wait_for("the webhook notification", 40, || {
        webhook.bodies().into_iter().find(|(p, _)| p == "/hook")
    });
    let body: Value = serde_json::from_str(&hook.1).expect("json");
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    let alert = &body["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "InstanceDown");
    assert_eq!(alert["labels"]["site"], "fra");
    assert_eq!(alert["annotations"]["summary"], "a:9100 of node is down");
    drop(server);
    am.terminate();
}
