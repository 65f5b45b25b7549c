//! Three sites on loopback, each `sightline serve` with the other two as
//! peers (shared by `tests/sites.rs` and `tests/geo.rs`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Receiver, Server, client, free_port};

/// The sites' names, in the order of their ports and data directories.
pub const SITES: [&str; 3] = ["dc1", "dc2", "dc3"];

/// A free loopback address.
pub fn addr() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().expect("addr")
}

/// Writes site `i`'s configuration naming the other two as peers, with
/// `extra` YAML appended.
pub fn site_config(dir: &Path, i: usize, http: &[SocketAddr; 3], extra: &str) -> String {
    let peers: String = (0..3)
        .filter(|j| *j != i)
        .map(|j| format!("    - {{name: {}, url: \"http://{}\"}}\n", SITES[j], http[j]))
        .collect();
    let path = dir.join(format!("{}.yml", SITES[i]));
    std::fs::write(
        &path,
        format!(
            "site:\n  name: {}\n  peer_timeout: 500ms\n  peer_wait: 2s\n  probe_interval: 1s\n  peers:\n{peers}{extra}",
            SITES[i]
        ),
    )
    .expect("config");
    path.to_string_lossy().to_string()
}

/// Starts the three sites with `extra` configuration each.
pub fn start_sites(dir: &Path, extra: &str) -> (Vec<Server>, impl Fn(usize) -> Server) {
    let http = [addr(), addr(), addr()];
    let grpc = [addr(), addr(), addr()];
    let configs: Vec<String> = (0..3).map(|i| site_config(dir, i, &http, extra)).collect();
    let dir = dir.to_path_buf();
    let start = move |i: usize| {
        Server::start_on(
            &dir.join(SITES[i]),
            http[i],
            grpc[i],
            &["--config", configs[i].as_str()],
        )
    };
    ((0..3).map(&start).collect(), start)
}

/// An instant query on `srv`: status, result and warnings, and how long
/// the answer took.
pub fn query(srv: &Server, q: &str, extra: &[(&str, &str)]) -> (u16, Value, Duration) {
    let started = Instant::now();
    let mut params = vec![("query", q)];
    params.extend_from_slice(extra);
    let r = client()
        .get(srv.url("/api/v1/query"))
        .query(&params)
        .send()
        .expect("query");
    let status = r.status().as_u16();
    let body: Value = r.json().expect("json");
    (status, body, started.elapsed())
}

/// Starts the three sites evaluating one alert rule (`expr` true `for`
/// long) every second, each with a built-in Alertmanager paging one
/// webhook (`/page`), grouped by `group_by`.
pub fn start_alerting_sites(
    dir: &Path,
    alert: &str,
    (expr, for_): (&str, &str),
    group_by: &str,
) -> (Vec<Server>, Receiver) {
    let webhook = Receiver::start();
    std::fs::write(
        dir.join("rules.yml"),
        format!(
            "groups:\n  - name: fleet\n    rules:\n      - alert: {alert}\n        expr: {expr}\n        for: {for_}\n"
        ),
    )
    .expect("rules");
    std::fs::write(
        dir.join("am.yml"),
        format!(
            "route:\n  receiver: pager\n  group_by: [{group_by}]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: pager\n    webhook_configs:\n      - url: http://127.0.0.1:{}/page\n",
            webhook.port
        ),
    )
    .expect("am config");
    let extra = "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalertmanager_config: am.yml\n";
    let (sites, _) = start_sites(dir, extra);
    (sites, webhook)
}
