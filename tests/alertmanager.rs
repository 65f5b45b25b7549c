//! The built-in Alertmanager end to end against the real binary:
//! `amtool` (Debian's prometheus-alertmanager 0.25) managing silences and
//! alerts, grouping with inhibition, retries until the receiver recovers,
//! and notifications that survive `kill -9`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn start(dir: &Path, am_yaml: &str, rules: Option<&str>) -> (Server, String) {
    std::fs::write(dir.join("alertmanager.yml"), am_yaml).expect("am config");
    let mut cfg = String::from("global:\n  evaluation_interval: 1s\nalertmanager_config: alertmanager.yml\n");
    if let Some(r) = rules {
        std::fs::write(dir.join("rules.yml"), r).expect("rules");
        cfg.push_str("rule_files: [rules.yml]\nrules:\n  resend_delay: 1s\n");
    }
    let path = dir.join("sightline.yml");
    std::fs::write(&path, cfg).expect("config");
    let path = path.to_string_lossy().into_owned();
    (Server::start(&dir.join("data"), &["--config", &path]), path)
}

fn hook_config(port: u16, extra: &str) -> String {
    format!(
        "route:\n  receiver: hook\n  group_by: [cluster]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:{port}/hook\n{extra}"
    )
}

fn post_alerts(server: &Server, alerts: Value) -> u16 {
    client()
        .post(server.url("/api/v2/alerts"))
        .json(&alerts)
        .send()
        .expect("POST")
        .status()
        .as_u16()
}

fn hooks(r: &Receiver) -> Vec<Value> {
    r.bodies()
        .into_iter()
        .filter(|(p, _)| p == "/hook")
        .map(|(_, b)| serde_json::from_str(&b).expect("json"))
        .collect()
}

#[test]
fn amtool_manages_silences_and_alerts() {
    let Some(amtool) = require_tool("amtool", "apt-get install prometheus-alertmanager") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let receiver = Receiver::start();
    let (server, _) = start(tmp.path(), &hook_config(receiver.port, ""), None);
    let url = format!("--alertmanager.url=http://{}", server.http);
    let run = |args: &[&str]| {
        let out = Command::new(&amtool).arg(&url).args(args).output().expect("amtool");
        assert!(
            out.status.success(),
            "amtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let id = run(&[
        "silence",
        "add",
        "alertname=NodeDown",
        "cluster=~c1|c2",
        "--comment=maintenance",
        "--author=ops",
        "--duration=1h",
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 36, "{id}");
    let listed = run(&["silence", "query"]);
    assert!(
        listed.contains(&id) && listed.contains("maintenance") && listed.contains("ops"),
        "{listed}"
    );
    let quiet = run(&["silence", "query", "-q", "alertname=NodeDown"]);
    assert_eq!(quiet.trim(), id);

    // An alert added with amtool shows as silenced.
    run(&[
        "alert",
        "add",
        "alertname=NodeDown",
        "cluster=c1",
        "instance=n1",
        "--annotation=summary=down",
    ]);
    let alerts = run(&["alert", "query", "--silenced", "alertname=NodeDown"]);
    assert!(alerts.contains("NodeDown"), "{alerts}");
    let api: Value = client()
        .get(server.url("/api/v2/alerts"))
        .send()
        .expect("GET")
        .json()
        .expect("json");
    assert_eq!(api[0]["status"]["state"], "suppressed");
    assert_eq!(api[0]["status"]["silencedBy"][0], id.as_str());

    run(&["silence", "expire", &id]);
    let listed = run(&["silence", "query", "-q"]);
    assert!(listed.trim().is_empty(), "{listed}");
    let expired = run(&["silence", "query", "--expired", "-q"]);
    assert_eq!(expired.trim(), id);
    // Now unsilenced, it is notified.
    let n = wait_for("the notification", 20, || hooks(&receiver).into_iter().next());
    assert_eq!(n["alerts"][0]["labels"]["instance"], "n1");

    // Bad input gets 400 with a reason.
    let resp = client()
        .post(server.url("/api/v2/silences"))
        .json(&json!({"matchers": [], "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z", "createdBy": "x", "comment": "y"}))
        .send()
        .expect("POST");
    assert_eq!(resp.status(), 400);
    assert!(resp.text().expect("text").contains("matcher"));
    assert_eq!(post_alerts(&server, json!([{"labels": {}}])), 400);
    let missing = client()
        .delete(server.url("/api/v2/silence/nope"))
        .send()
        .expect("DELETE");
    assert_eq!(missing.status(), 404);
}

#[test]
fn grouping_inhibition_and_resolution() {
    let tmp = tempfile::tempdir().expect("tmp");
    let receiver = Receiver::start();
    let inhibit = "inhibit_rules:\n  - source_matchers: [alertname=ClusterDown]\n    target_matchers: [alertname=NodeDown]\n    equal: [cluster]\n";
    let (server, _) = start(tmp.path(), &hook_config(receiver.port, inhibit), None);
    let mut alerts = vec![json!({"labels": {"alertname": "ClusterDown", "cluster": "c1"}})];
    for i in 0..20 {
        alerts.push(json!({"labels": {"alertname": "NodeDown", "cluster": "c1", "instance": format!("n{i}")}}));
    }
    alerts.push(json!({"labels": {"alertname": "NodeDown", "cluster": "c2", "instance": "m1"}}));
    assert_eq!(post_alerts(&server, Value::Array(alerts)), 200);
    wait_for("two notifications", 20, || (hooks(&receiver).len() >= 2).then_some(()));
    std::thread::sleep(Duration::from_secs(3));
    let got = hooks(&receiver);
    assert_eq!(got.len(), 2, "one per cluster group, no repeats: {got:?}");
    let c1 = got.iter().find(|h| h["groupLabels"]["cluster"] == "c1").expect("c1");
    assert_eq!(
        c1["alerts"].as_array().map(Vec::len),
        Some(1),
        "node alerts inhibited: {c1}"
    );
    assert_eq!(c1["alerts"][0]["labels"]["alertname"], "ClusterDown");
    assert_eq!(c1["version"], "4");
    assert_eq!(c1["status"], "firing");
    let api: Value = client()
        .get(server.url("/api/v2/alerts?filter=instance%3D%22n3%22"))
        .send()
        .expect("GET")
        .json()
        .expect("json");
    assert_eq!(api[0]["status"]["state"], "suppressed");
    assert_eq!(api[0]["status"]["inhibitedBy"].as_array().map(Vec::len), Some(1));

    // The cluster comes back: one resolved notification for its group,
    // the node alerts resolved with it are not sent as firing.
    let mut resolved = vec![
        json!({"labels": {"alertname": "ClusterDown", "cluster": "c1"}, "endsAt": "2000-01-01T00:00:00Z", "startsAt": "1999-01-01T00:00:00Z"}),
    ];
    for i in 0..20 {
        resolved.push(json!({"labels": {"alertname": "NodeDown", "cluster": "c1", "instance": format!("n{i}")}, "startsAt": "1999-01-01T00:00:00Z", "endsAt": "2000-01-01T00:00:00Z"}));
    }
    assert_eq!(post_alerts(&server, Value::Array(resolved)), 200);
    wait_for("the resolved notification", 20, || {
        (hooks(&receiver).len() >= 3).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let got = hooks(&receiver);
    assert_eq!(got.len(), 3, "{got:?}");
    let last = &got[2];
    assert_eq!(last["status"], "resolved");
    assert_eq!(last["groupLabels"]["cluster"], "c1");
}

#[test]
fn delivery_is_retried_until_the_receiver_recovers() {
    let tmp = tempfile::tempdir().expect("tmp");
    let receiver = Receiver::start();
    receiver.fail_next.store(12, std::sync::atomic::Ordering::SeqCst);
    let (server, _) = start(tmp.path(), &hook_config(receiver.port, ""), None);
    assert_eq!(
        post_alerts(&server, json!([{"labels": {"alertname": "A", "cluster": "c1"}}])),
        200
    );
    let n = wait_for("delivery after 12 failures", 60, || hooks(&receiver).into_iter().next());
    assert_eq!(n["alerts"][0]["labels"]["alertname"], "A");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(hooks(&receiver).len(), 1, "delivered once");
    assert!(metrics_text(&server).contains("sightline_alertmanager_notifications_failed_total"));
}

#[test]
fn kill_9_loses_no_notification() {
    let tmp = tempfile::tempdir().expect("tmp");
    let receiver = Receiver::start();
    // Every third delivery attempt fails.
    receiver.fail_every.store(3, std::sync::atomic::Ordering::SeqCst);
    let (mut server, cfg) = start(tmp.path(), &hook_config(receiver.port, ""), None);
    let data = tmp.path().join("data");
    let mut rng = 0x9e3779b97f4a7c15u64;
    let rounds = 12;
    for round in 0..rounds {
        let status = post_alerts(
            &server,
            json!([{"labels": {"alertname": format!("Round{round}"), "cluster": format!("c{round}")}}]),
        );
        assert_eq!(status, 200);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(rng % 1500));
        let (http, grpc) = (server.http, server.grpc);
        server.kill9();
        server = Server::start_on(&data, http, grpc, &["--config", &cfg]);
    }
    let names = || -> std::collections::BTreeSet<String> {
        hooks(&receiver)
            .iter()
            .flat_map(|h| h["alerts"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_string))
            .collect()
    };
    wait_for("every round's alert delivered", 60, || {
        (names().len() == rounds).then_some(())
    });
}

#[test]
fn rule_alerts_reach_the_builtin_alertmanager() {
    let tmp = tempfile::tempdir().expect("tmp");
    let receiver = Receiver::start();
    let rules = "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: AlwaysOn\n        expr: vector(1)\n        labels: {cluster: c9}\n";
    let (_server, _) = start(tmp.path(), &hook_config(receiver.port, ""), Some(rules));
    let n = wait_for("the rule's alert at the webhook", 30, || {
        hooks(&receiver).into_iter().next()
    });
    assert_eq!(n["alerts"][0]["labels"]["alertname"], "AlwaysOn");
    assert_eq!(n["groupLabels"]["cluster"], "c9");
}

#[test]
fn group_wait_group_interval_and_repeat_interval() {
    let tmp = tempfile::tempdir().expect("tmp");
    let receiver = Receiver::start();
    let cfg = format!(
        "route:\n  receiver: hook\n  group_by: [cluster]\n  group_wait: 1s\n  group_interval: 3s\n  repeat_interval: 8s\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:{}/hook\n",
        receiver.port
    );
    let (server, _) = start(tmp.path(), &cfg, None);
    let t0 = std::time::Instant::now();
    assert_eq!(
        post_alerts(&server, json!([{"labels": {"alertname": "A", "cluster": "c1"}}])),
        200
    );
    wait_for("the first notification (group_wait)", 10, || {
        hooks(&receiver).into_iter().next()
    });
    let first = t0.elapsed();
    assert!(
        first >= Duration::from_millis(900) && first < Duration::from_millis(2500),
        "{first:?}"
    );
    // A second alert joins the group: sent with the first at the next
    // group_interval, not before.
    assert_eq!(
        post_alerts(&server, json!([{"labels": {"alertname": "B", "cluster": "c1"}}])),
        200
    );
    wait_for("the update (group_interval)", 10, || {
        (hooks(&receiver).len() >= 2).then_some(())
    });
    let second = t0.elapsed();
    assert!(
        second >= first + Duration::from_millis(2500),
        "update after {second:?}, first {first:?}"
    );
    assert_eq!(hooks(&receiver)[1]["alerts"].as_array().map(Vec::len), Some(2));
    // Nothing changes: repeated after repeat_interval, not at every interval.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(hooks(&receiver).len(), 2, "no repeat before repeat_interval");
    wait_for("the repeat (repeat_interval)", 15, || {
        (hooks(&receiver).len() >= 3).then_some(())
    });
    let third = t0.elapsed();
    assert!(
        third >= second + Duration::from_secs(7),
        "repeat after {third:?}, update {second:?}"
    );
}

#[test]
fn inhibition_holds_right_after_a_restart() {
    // Alertmanager #4064: after a restart the target alerts can arrive
    // before their source and get sent. Here the source is remembered.
    let tmp = tempfile::tempdir().expect("tmp");
    let receiver = Receiver::start();
    let inhibit = "inhibit_rules:\n  - source_matchers: [alertname=ClusterDown]\n    target_matchers: [alertname=NodeDown]\n    equal: [cluster]\n";
    let (mut server, cfg) = start(tmp.path(), &hook_config(receiver.port, inhibit), None);
    let far = "2099-01-01T00:00:00Z";
    assert_eq!(
        post_alerts(
            &server,
            json!([{"labels": {"alertname": "ClusterDown", "cluster": "c1"}, "endsAt": far}])
        ),
        200
    );
    wait_for("the cluster page", 20, || hooks(&receiver).into_iter().next());
    let (http, grpc) = (server.http, server.grpc);
    server.kill9();
    let server = Server::start_on(&tmp.path().join("data"), http, grpc, &["--config", &cfg]);
    // Node alerts arrive first after the restart.
    let nodes: Vec<Value> = (0..5)
        .map(|i| json!({"labels": {"alertname": "NodeDown", "cluster": "c1", "instance": format!("n{i}")}}))
        .collect();
    assert_eq!(post_alerts(&server, Value::Array(nodes)), 200);
    std::thread::sleep(Duration::from_secs(4));
    let got = hooks(&receiver);
    assert!(
        got.iter()
            .all(|h| h.to_string().contains("ClusterDown") && !h.to_string().contains("NodeDown")),
        "{got:?}"
    );
}

#[test]
fn pagerduty_and_slack_receivers() {
    let tmp = tempfile::tempdir().expect("tmp");
    let receiver = Receiver::start();
    let cfg = format!(
        "route:\n  receiver: page\n  group_by: [cluster]\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: page\n    pagerduty_configs:\n      - routing_key: k123\n        url: http://127.0.0.1:{p}/pd\n        severity: critical\n    slack_configs:\n      - api_url: http://127.0.0.1:{p}/slack\n        channel: '#ops'\n",
        p = receiver.port
    );
    let (server, _) = start(tmp.path(), &cfg, None);
    assert_eq!(
        post_alerts(
            &server,
            json!([{"labels": {"alertname": "ClusterDown", "cluster": "c1"}}])
        ),
        200
    );
    let at = |path: &str| -> Vec<Value> {
        receiver
            .bodies()
            .into_iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| serde_json::from_str(&b).expect("json"))
            .collect()
    };
    wait_for("PagerDuty and Slack", 20, || {
        (!at("/pd").is_empty() && !at("/slack").is_empty()).then_some(())
    });
    let trigger = at("/pd")[0].clone();
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["routing_key"], "k123");
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["summary"], "[FIRING:1] c1 (ClusterDown)");
    let slack = at("/slack")[0].clone();
    assert_eq!(slack["channel"], "#ops");
    assert_eq!(slack["attachments"][0]["color"], "danger");
    // Resolved: PagerDuty resolves the same incident; Slack (send_resolved
    // false by default, as in Alertmanager) stays quiet.
    assert_eq!(
        post_alerts(
            &server,
            json!([{"labels": {"alertname": "ClusterDown", "cluster": "c1"}, "startsAt": "2000-01-01T00:00:00Z", "endsAt": "2000-01-01T00:00:01Z"}])
        ),
        200
    );
    wait_for("the PagerDuty resolve", 20, || (at("/pd").len() >= 2).then_some(()));
    let resolve = at("/pd")[1].clone();
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(at("/slack").len(), 1);
}

#[test]
fn prometheus_sends_its_alerts_to_the_builtin_alertmanager() {
    let Some(prometheus) = require_tool("prometheus", "apt-get install prometheus") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let receiver = Receiver::start();
    let (server, _) = start(tmp.path(), &hook_config(receiver.port, ""), None);
    std::fs::write(
        tmp.path().join("prom-rules.yml"),
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: FromPrometheus\n        expr: vector(1)\n        labels: {cluster: p1}\n        annotations: {summary: sent by Prometheus}\n",
    )
    .expect("rules");
    std::fs::write(
        tmp.path().join("prometheus.yml"),
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: [prom-rules.yml]\nalerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['{}']}}]\n",
            server.http
        ),
    )
    .expect("config");
    let port = free_port();
    let mut cmd = Command::new(prometheus);
    cmd.arg(format!("--config.file={}", tmp.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", tmp.path().join("prom").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // Its first send can come before it has found the Alertmanager.
        .arg("--rules.alert.resend-delay=1s");
    let mut prom = Proc::spawn(cmd, &tmp.path().join("prometheus.log"));
    let n = wait_for("Prometheus' alert at the webhook", 60, || {
        hooks(&receiver).into_iter().next()
    });
    assert_eq!(n["alerts"][0]["labels"]["alertname"], "FromPrometheus");
    assert_eq!(n["alerts"][0]["annotations"]["summary"], "sent by Prometheus");
    prom.terminate();
}

#[test]
fn client_errors_are_not_retried_until_the_next_group_interval() {
    let tmp = tempfile::tempdir().expect("tmp");
    let receiver = Receiver::start();
    receiver.fail_status.store(400, std::sync::atomic::Ordering::SeqCst);
    receiver.fail_next.store(1, std::sync::atomic::Ordering::SeqCst);
    let cfg = format!(
        "route:\n  receiver: hook\n  group_wait: 1s\n  group_interval: 3s\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:{}/hook\n",
        receiver.port
    );
    let (server, _) = start(tmp.path(), &cfg, None);
    assert_eq!(post_alerts(&server, json!([{"labels": {"alertname": "A"}}])), 200);
    wait_for("delivery after the 400", 20, || hooks(&receiver).into_iter().next());
    let arrivals = receiver.arrivals.lock().expect("lock").clone();
    assert_eq!(arrivals.len(), 2, "one refused attempt, one delivery: {arrivals:?}");
    // A 400 is not retried at once (a 5xx would be, within ~250 ms): the
    // second attempt waits for the group's next flush.
    assert!(arrivals[1] - arrivals[0] >= 2_500, "{arrivals:?}");
}

#[test]
fn silences_survive_kill_9() {
    let tmp = tempfile::tempdir().expect("tmp");
    let receiver = Receiver::start();
    let (mut server, cfg) = start(tmp.path(), &hook_config(receiver.port, ""), None);
    let resp: Value = client()
        .post(server.url("/api/v2/silences"))
        .json(&json!({"matchers": [{"name": "cluster", "value": "c1", "isRegex": false, "isEqual": true}],
            "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z", "createdBy": "ops", "comment": "maintenance"}))
        .send()
        .expect("POST")
        .json()
        .expect("json");
    let id = resp["silenceID"].as_str().expect("id").to_string();
    let (http, grpc) = (server.http, server.grpc);
    server.kill9();
    let server = Server::start_on(&tmp.path().join("data"), http, grpc, &["--config", &cfg]);
    let got: Value = client()
        .get(server.url(&format!("/api/v2/silence/{id}")))
        .send()
        .expect("GET")
        .json()
        .expect("json");
    assert_eq!(got["status"]["state"], "active");
    assert_eq!(got["comment"], "maintenance");
    // And it still mutes.
    assert_eq!(
        post_alerts(&server, json!([{"labels": {"alertname": "A", "cluster": "c1"}}])),
        200
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(hooks(&receiver).is_empty());
}
