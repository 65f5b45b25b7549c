//! Three sites on loopback, each `sightline serve` with the other two as
//! peers: a query on any site spans all three, a series shipped to two
//! sites counts once, and when a site is killed with `kill -9` the
//! survivors answer within 2 s with a warning naming it (or 503 for a
//! strict request); once it is back, so are its data.

mod common;

use std::time::Duration;

use common::sites::{SITES, query, start_alerting_sites, start_sites};
use common::*;
use serde_json::Value;

/// Pushes `n` lines of stream `{job="mail", host}` to `srv` (the same
/// times and lines wherever it is pushed).
fn push_lines(srv: &Server, host: &str, n: i64, now_ns: i64) {
    let values: Vec<[String; 2]> = (0..n)
        .map(|k| {
            [
                (now_ns - (n - k) * 1_000_000_000).to_string(),
                format!("line {k} from {host}"),
            ]
        })
        .collect();
    let r = client()
        .post(srv.url("/loki/api/v1/push"))
        .json(&serde_json::json!({"streams": [{"stream": {"job": "mail", "host": host}, "values": values}]}))
        .send()
        .expect("push");
    assert!(r.status().is_success(), "push: {}", r.text().unwrap_or_default());
}

/// A Loki range query on `srv`: status, lines per host, the body.
fn log_lines(srv: &Server, extra: &[(&str, &str)]) -> (u16, std::collections::BTreeMap<String, usize>, Value) {
    let now_ns = now_ms() * 1_000_000;
    let mut params = vec![
        ("query", "{job=\"mail\"}".to_string()),
        ("start", (now_ns - 600_000_000_000).to_string()),
        ("end", (now_ns + 1_000_000_000).to_string()),
        ("limit", "1000".to_string()),
    ];
    params.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let r = client()
        .get(srv.url("/loki/api/v1/query_range"))
        .query(&params)
        .send()
        .expect("loki query");
    let status = r.status().as_u16();
    let body: Value = serde_json::from_str(&r.text().unwrap_or_default()).unwrap_or(Value::Null);
    let mut per_host = std::collections::BTreeMap::new();
    for s in body["data"]["result"].as_array().into_iter().flatten() {
        let host = s["stream"]["host"].as_str().unwrap_or("").to_string();
        *per_host.entry(host).or_default() += s["values"].as_array().map_or(0, Vec::len);
    }
    (status, per_host, body)
}

fn scalar(body: &Value) -> f64 {
    body["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no value in {body}"))
}

#[test]
fn queries_span_sites_count_dual_shipped_data_once_and_survive_a_lost_site() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut sites, start) = start_sites(tmp.path(), "");

    // Each site's own node reports up; one counter is dual shipped to dc1
    // and dc2 (same series, same samples).
    let now = now_ms();
    for (i, srv) in sites.iter().enumerate() {
        let instance = format!("node-{}", SITES[i]);
        let mut series = vec![ts(
            &[("__name__", "up"), ("instance", &instance), ("site", SITES[i])],
            &[(now - 30_000, 1.0), (now - 15_000, 1.0)],
        )];
        if i < 2 {
            series.push(ts(
                &[("__name__", "mails_total"), ("instance", "mx-1")],
                &[(now - 30_000, 10.0), (now - 15_000, 25.0)],
            ));
        }
        let (code, body) = remote_write(srv, series);
        assert!((200..300).contains(&code), "{code} {body}");
    }

    // Logs: a stream per site, one dual shipped to dc1 and dc2.
    let now_ns = now * 1_000_000;
    push_lines(&sites[0], "a", 10, now_ns);
    push_lines(&sites[0], "dual", 10, now_ns);
    push_lines(&sites[1], "dual", 10, now_ns);
    push_lines(&sites[2], "c", 5, now_ns);
    let (code, per_host, body) = log_lines(&sites[1], &[]);
    assert_eq!(code, 200, "{body}");
    let want: std::collections::BTreeMap<String, usize> =
        [("a".to_string(), 10), ("c".to_string(), 5), ("dual".to_string(), 10)].into();
    assert_eq!(per_host, want, "each line once: {body}");

    // Any site answers for all three.
    for srv in &sites {
        let (code, body, _) = query(srv, "count(up)", &[]);
        assert_eq!(code, 200, "{body}");
        assert_eq!(scalar(&body), 3.0, "{body}");
        assert!(body.get("warnings").is_none(), "{body}");
    }
    // Dual shipped: one series, each sample once.
    let (_, body, _) = query(&sites[2], "count_over_time(mails_total[1m])", &[]);
    assert_eq!(body["data"]["result"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(scalar(&body), 2.0, "{body}");
    let (_, body, _) = query(&sites[0], "sum(mails_total)", &[]);
    assert_eq!(scalar(&body), 25.0, "{body}");
    // The metadata APIs span the sites too.
    let values: Value = client()
        .get(sites[1].url("/api/v1/label/site/values"))
        .send()
        .and_then(|r| r.json())
        .expect("label values");
    assert_eq!(values["data"], serde_json::json!(["dc1", "dc2", "dc3"]), "{values}");

    // dc3 dies: the survivors answer quickly, without it, and say so.
    sites[2].kill9();
    for srv in &sites[..2] {
        let (code, body, took) = query(srv, "count(up)", &[]);
        assert_eq!(code, 200, "{body}");
        assert_eq!(scalar(&body), 2.0, "{body}");
        assert!(took < Duration::from_secs(2), "answer took {took:?}");
        let warnings = body["warnings"].to_string();
        assert!(warnings.contains(r#"site \"dc3\" is missing"#), "{body}");
        // A strict caller gets an error naming the site instead.
        let (code, body, _) = query(srv, "count(up)", &[("partial_response", "false")]);
        assert_eq!(code, 503, "{body}");
        assert!(body["error"].as_str().unwrap_or("").contains("dc3"), "{body}");
    }
    // Log queries too.
    let (code, per_host, body) = log_lines(&sites[0], &[]);
    assert_eq!(code, 200, "{body}");
    assert_eq!(per_host.get("c"), None, "{body}");
    assert_eq!(per_host.get("dual"), Some(&10), "{body}");
    assert!(body["warnings"].to_string().contains("dc3"), "{body}");
    let (code, _, body) = log_lines(&sites[0], &[("partial_response", "false")]);
    assert_eq!(code, 504, "{body}");
    let series: Value = client()
        .get(sites[0].url("/api/v1/series"))
        .query(&[("match[]", "up")])
        .send()
        .and_then(|r| r.json())
        .expect("series");
    assert_eq!(series["data"].as_array().map(Vec::len), Some(2), "{series}");
    assert!(series["warnings"].to_string().contains("dc3"), "{series}");

    // dc3 comes back with what it had acknowledged.
    sites[2] = start(2);
    let back = wait_for("dc3 back in dc1's answers", 20, || {
        let (_, body, _) = query(&sites[0], "count(up)", &[]);
        (scalar(&body) == 3.0).then_some(body)
    });
    assert!(back.get("warnings").is_none(), "{back}");
}

/// Every site evaluates the fleet's rules over the fleet's data and has
/// the same Alertmanager configuration; the receiver must see each change
/// of an alert group once, also after the first site is killed.
#[test]
fn fleet_alerts_page_once_from_three_sites_and_after_one_is_lost() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut sites, webhook) = start_alerting_sites(tmp.path(), "NodeDown", ("up == 0", "0s"), "alertname");
    let pages = || webhook.bodies().into_iter().filter(|(p, _)| p == "/page").count();
    let firing = |body: &str| -> Vec<String> {
        let v: Value = serde_json::from_str(body).expect("webhook json");
        let mut list: Vec<String> = v["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["status"] == "firing")
            .map(|a| a["labels"]["instance"].as_str().unwrap_or("").to_string())
            .collect();
        list.sort();
        list
    };

    // node-1 is down; its samples reached dc1 and dc2 (dual shipping).
    let down = |srv: &Server, instance: &str| {
        let series = vec![ts(&[("__name__", "up"), ("instance", instance)], &[(now_ms(), 0.0)])];
        let (code, body) = remote_write(srv, series);
        assert!((200..300).contains(&code), "{code} {body}");
    };
    down(&sites[0], "node-1");
    down(&sites[1], "node-1");
    wait_for("the first page", 30, || (pages() >= 1).then_some(()));
    // dc2 and dc3 fire too, but wait their turn (2 s, 4 s) and find dc1's
    // notification in the replicated log.
    std::thread::sleep(Duration::from_secs(7));
    let bodies: Vec<String> = webhook.bodies().into_iter().map(|(_, b)| b).collect();
    assert_eq!(bodies.len(), 1, "paged more than once: {bodies:#?}");
    assert_eq!(firing(&bodies[0]), ["node-1"]);

    // dc1 (the first to page) is lost; node-2 goes down, seen by dc2.
    sites[0].kill9();
    down(&sites[1], "node-1");
    down(&sites[1], "node-2");
    wait_for("the page for node-2", 40, || (pages() >= 2).then_some(()));
    std::thread::sleep(Duration::from_secs(7));
    let bodies: Vec<String> = webhook.bodies().into_iter().map(|(_, b)| b).collect();
    assert_eq!(bodies.len(), 2, "the change paged more than once: {bodies:#?}");
    assert_eq!(firing(&bodies[1]), ["node-1", "node-2"]);
}

/// Each site probes its peers into `sightline_peer_up`; when a site dies,
/// the survivors' rule (the rule pack's expression) pages once.
#[test]
fn a_site_no_other_site_reaches_pages_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut sites, webhook) = start_alerting_sites(
        tmp.path(),
        "SightlineSiteUnreachable",
        // A few seconds, so a site still starting when first probed does
        // not page.
        ("max by (peer) (sightline_peer_up) == 0", "3s"),
        "alertname, peer",
    );
    // Every site has probed both of its peers.
    wait_for("six probe series", 20, || {
        let (_, body, _) = query(&sites[0], "count(sightline_peer_up == 1)", &[]);
        (body["data"]["result"][0]["value"][1] == "6").then_some(())
    });
    assert!(webhook.bodies().is_empty(), "paged while every site was up");
    sites[2].kill9();
    wait_for("the page for dc3", 30, || (!webhook.bodies().is_empty()).then_some(()));
    // dc2 waits its turn (2 s) and finds dc1's notification.
    std::thread::sleep(Duration::from_secs(6));
    let bodies = webhook.bodies();
    assert_eq!(bodies.len(), 1, "paged more than once: {bodies:#?}");
    let page: Value = serde_json::from_str(&bodies[0].1).expect("json");
    assert_eq!(page["alerts"][0]["labels"]["peer"], "dc3", "{page}");
    assert_eq!(page["alerts"][0]["labels"]["alertname"], "SightlineSiteUnreachable");
}
