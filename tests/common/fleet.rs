//! The outage scenario's fleet and compressed configuration, shared by
//! `tests/outage.rs` and `benches/outage_compare.rs` (through `#[path]`).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use sightline_ingest::remote_write::proto;

/// Sites of the fleet.
pub const SITES: [&str; 3] = ["fra", "ams", "lon"];
/// Clusters per site.
pub const CLUSTERS: usize = 3;
/// Nodes per cluster.
pub const NODES: usize = 20;

/// `up` = 1 at `now` for every node whose site or cluster (`fra-c1`) is
/// not in `dark`; labels sorted as remote write requires.
pub fn up_series(dark: &BTreeSet<String>, now: i64) -> Vec<proto::TimeSeries> {
    let mut out = Vec::new();
    for site in SITES {
        for cl in 0..CLUSTERS {
            let cluster = format!("{site}-c{cl}");
            if dark.contains(site) || dark.contains(&cluster) {
                continue;
            }
            for n in 0..NODES {
                let labels = [
                    ("__name__", "up".to_string()),
                    ("cluster", cluster.clone()),
                    ("instance", format!("{cluster}-n{n:02}:9100")),
                    ("job", "node".to_string()),
                    ("site", site.to_string()),
                ];
                out.push(proto::TimeSeries {
                    labels: labels
                        .into_iter()
                        .map(|(name, value)| proto::Label {
                            name: name.to_string(),
                            value,
                        })
                        .collect(),
                    samples: vec![proto::Sample {
                        value: 1.0,
                        timestamp: now,
                        start_timestamp: 0,
                    }],
                    exemplars: vec![],
                    histograms: vec![],
                });
            }
        }
    }
    out
}

/// The shipped Alertmanager config with timers compressed (group_wait and
/// group_interval 2 s) and the receivers replaced by webhooks to
/// `127.0.0.1:port` at `/oncall`, `/tickets` and `/watchdog`.
pub fn alertmanager_config(port: u16) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerting/rules");
    let am = std::fs::read_to_string(root.join("alertmanager.yml"))
        .expect("shipped alertmanager.yml")
        .replace("group_wait: 30s", "group_wait: 2s")
        .replace("group_interval: 5m", "group_interval: 2s");
    am[..am.find("receivers:").expect("receivers")].to_string()
        + &format!(
            "receivers:\n  - name: oncall\n    webhook_configs: [{{url: 'http://127.0.0.1:{port}/oncall'}}]\n  - name: tickets\n    webhook_configs: [{{url: 'http://127.0.0.1:{port}/tickets'}}]\n  - name: deadmansswitch\n    webhook_configs: [{{url: 'http://127.0.0.1:{port}/watchdog'}}]\n"
        )
}

/// The shipped rule pack with its `for` durations compressed 30×
/// (2m/3m/5m → 4s/6s/10s).
pub fn rule_pack() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerting/rules");
    let rules = std::fs::read_to_string(root.join("fleet.yml"))
        .expect("shipped fleet.yml")
        .replace("for: 2m", "for: 4s")
        .replace("for: 3m", "for: 6s")
        .replace("for: 5m", "for: 10s");
    assert!(
        rules.contains("for: 6s"),
        "the pack's durations changed; update the compression"
    );
    rules
}

/// Writes the compressed pack, Alertmanager config and a Sightline config
/// (1 s evaluation and inventory, 5 s lookback) into `dir`; returns the
/// config's path.
pub fn write_sightline_setup(dir: &Path, receiver_port: u16) -> String {
    std::fs::write(dir.join("fleet.yml"), rule_pack()).expect("rules");
    std::fs::write(dir.join("alertmanager.yml"), alertmanager_config(receiver_port)).expect("am");
    let path = dir.join("sightline.yml");
    std::fs::write(
        &path,
        "global:\n  evaluation_interval: 1s\nquery:\n  lookback_delta: 5s\nrule_files: [fleet.yml]\nalertmanager_config: alertmanager.yml\ninventory:\n  interval: 1s\nrules:\n  resend_delay: 2s\n",
    )
    .expect("config");
    path.to_string_lossy().into_owned()
}

/// (status, alertname, `site/cluster`) of a webhook notification.
pub fn summary(n: &Value) -> (String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    (
        s(&n["status"]),
        s(&n["groupLabels"]["alertname"]),
        format!("{}/{}", s(&n["commonLabels"]["site"]), s(&n["commonLabels"]["cluster"])),
    )
}
