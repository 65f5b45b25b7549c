//! The outage scenario end to end, with the shipped rule pack and
//! Alertmanager configuration: 3 sites × 3 clusters × 20 nodes write
//! `up`; one whole cluster stops, later a whole site. The on-call
//! receiver must get exactly one page per outage, no node notifications
//! for what the outage covers, and exactly one "resolved" when it returns.
//!
//! Only the clock is compressed: the pack's `for` durations and the
//! Alertmanager timers are scaled down (minutes to seconds) and the query
//! lookback is 5 s, so the scenario runs in about a minute.

mod common;
#[path = "common/fleet.rs"]
mod fleet;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use fleet::{CLUSTERS, NODES, SITES};
use serde_json::Value;

/// Scaled `for` of ClusterDown and SiteDown, the lookback, group_wait and
/// the evaluation interval (seconds).
const CLUSTER_FOR: u64 = 6;
const SITE_FOR: u64 = 4;
const LOOKBACK: u64 = 5;
const GROUP_WAIT: u64 = 2;
const EVAL: u64 = 1;

/// Writes `up` = 1 every second for every node whose site/cluster is not
/// in `dark`.
fn writer(
    server_url: String,
    dark: Arc<Mutex<BTreeSet<String>>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let off = dark.lock().expect("lock").clone();
            let series = fleet::up_series(&off, now_ms());
            if !series.is_empty() {
                let (status, body) = remote_write_to(&server_url, series);
                assert!(status == 0 || status < 300, "remote write refused: {status} {body}");
            }
            std::thread::sleep(Duration::from_millis(1000));
        }
    })
}

fn notifications(r: &Receiver, path: &str) -> Vec<Value> {
    r.bodies()
        .into_iter()
        .filter(|(p, _)| p == path)
        .map(|(_, b)| serde_json::from_str(&b).expect("json"))
        .collect()
}

/// (status, alertname, site/cluster) of every on-call notification.
fn pages(r: &Receiver) -> Vec<(String, String, String)> {
    notifications(r, "/oncall").iter().map(fleet::summary).collect()
}

fn tickets_for(r: &Receiver, needle: &str) -> usize {
    notifications(r, "/tickets")
        .iter()
        .filter(|n| n.to_string().contains(needle))
        .count()
}

#[test]
fn a_dark_cluster_and_a_dark_site_page_once_each() {
    let tmp = tempfile::tempdir().expect("tmp");
    let receiver = Receiver::start();
    let cfg = fleet::write_sightline_setup(tmp.path(), receiver.port);
    let server = Server::start(&tmp.path().join("data"), &["--config", &cfg]);
    let dark = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(server.url(""), dark.clone(), stop.clone());

    // Everything reports; the inventory learns all 180 nodes.
    let known = || -> usize {
        client()
            .get(server.url("/api/v1/inventory"))
            .send()
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .and_then(|v| v["data"].as_array().map(Vec::len))
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while known() != SITES.len() * CLUSTERS * NODES {
        assert!(
            Instant::now() < deadline,
            "the inventory knows {} nodes; log:\n{}",
            known(),
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        pages(&receiver).is_empty(),
        "no page while all is well: {:?}",
        pages(&receiver)
    );
    assert!(
        !notifications(&receiver, "/watchdog").is_empty(),
        "the watchdog notifies"
    );

    // A whole cluster stops.
    dark.lock().expect("lock").insert("fra-c1".to_string());
    let stopped = Instant::now();
    let budget = Duration::from_secs(LOOKBACK + CLUSTER_FOR + GROUP_WAIT + 2 * EVAL);
    wait_for("the cluster-down page", 60, || {
        (!pages(&receiver).is_empty()).then_some(())
    });
    let took = stopped.elapsed();
    assert!(
        took <= budget + Duration::from_secs(2),
        "paged after {took:?}, budget {budget:?}"
    );
    // Long enough for node alerts (for: 10s) to fire and be inhibited.
    std::thread::sleep(Duration::from_secs(16));
    let p = pages(&receiver);
    assert_eq!(
        p,
        vec![("firing".into(), "ClusterDown".into(), "fra/fra-c1".into())],
        "exactly one page"
    );
    assert_eq!(
        tickets_for(&receiver, "fra-c1"),
        0,
        "no node notification for the dark cluster"
    );

    // It comes back: exactly one resolved.
    dark.lock().expect("lock").clear();
    wait_for("the resolved notification", 60, || {
        (pages(&receiver).len() >= 2).then_some(())
    });
    std::thread::sleep(Duration::from_secs(6));
    let p = pages(&receiver);
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[1], ("resolved".into(), "ClusterDown".into(), "fra/fra-c1".into()));
    assert_eq!(
        tickets_for(&receiver, "fra-c1"),
        0,
        "no node notification when it returns either"
    );

    // A whole site stops: one site-down page, nothing for its clusters
    // and nodes.
    dark.lock().expect("lock").insert("ams".to_string());
    let stopped = Instant::now();
    let budget = Duration::from_secs(LOOKBACK + SITE_FOR + GROUP_WAIT + 2 * EVAL);
    wait_for("the site-down page", 60, || (pages(&receiver).len() >= 3).then_some(()));
    let took = stopped.elapsed();
    assert!(
        took <= budget + Duration::from_secs(2),
        "paged after {took:?}, budget {budget:?}"
    );
    std::thread::sleep(Duration::from_secs(16));
    let p = pages(&receiver);
    assert_eq!(p.len(), 3, "{p:?}");
    assert_eq!(p[2], ("firing".into(), "SiteDown".into(), "ams/".into()));
    assert_eq!(
        tickets_for(&receiver, "\"ams\""),
        0,
        "no node notification for the dark site"
    );
    // While dark, the node alerts keep firing (muted) instead of vanishing
    // with their data.
    let alerts: Value = client()
        .get(server.url("/api/v1/alerts"))
        .send()
        .expect("GET")
        .json()
        .expect("json");
    let ams_nodes = alerts["data"]["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["labels"]["alertname"] == "NodeDown" && x["labels"]["site"] == "ams")
                .count()
        })
        .unwrap_or(0);
    assert_eq!(ams_nodes, CLUSTERS * NODES);

    dark.lock().expect("lock").clear();
    wait_for("the site's resolved notification", 60, || {
        (pages(&receiver).len() >= 4).then_some(())
    });
    std::thread::sleep(Duration::from_secs(6));
    let p = pages(&receiver);
    assert_eq!(p.len(), 4, "{p:?}");
    assert_eq!(p[3], ("resolved".into(), "SiteDown".into(), "ams/".into()));
    assert_eq!(tickets_for(&receiver, "\"ams\""), 0);
    stop.store(true, Ordering::SeqCst);
    let _ = w.join();
}
