//! The built-in web UI in a real browser: `tests/browser/ui.mjs` drives
//! Debian's headless Chromium (through playwright-core) against the real
//! binary holding the dashboards' sample data, a firing rule and the
//! built-in Alertmanager. Screenshots of every page are kept in
//! `target/tmp/ui-screenshots/` (or `$SIGHTLINE_UI_SCREENSHOTS`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::sample_data::load_sample_data;
use common::*;

/// The node_exporter scrape of `../shared`, or None (skipped unless CI).
fn node_scrape() -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/metrics/node_exporter.prom");
    match std::fs::read_to_string(&path) {
        Ok(s) => Some(s),
        Err(_) => {
            assert!(
                std::env::var_os("SIGHTLINE_REQUIRE_CONFORMANCE").is_none(),
                "{} is missing",
                path.display()
            );
            eprintln!("SKIPPED: {} is missing", path.display());
            None
        }
    }
}

#[test]
fn the_ui_works_in_a_real_browser() {
    let Some(node) = require_tool("node", "apt-get install nodejs") else {
        return;
    };
    let Some(chromium) = require_tool("chromium", "apt-get install chromium") else {
        return;
    };
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !require_path(
        &browser_dir.join("node_modules/playwright-core"),
        "run `npm ci` in tests/browser",
    ) {
        return;
    }
    let Some(scrape) = node_scrape() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::write(
        dir.join("alertmanager.yml"),
        "route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n",
    )
    .expect("am config");
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n  - name: ui-test\n    rules:\n      - alert: NodeDown\n        expr: up == 0\n        labels:\n          severity: page\n        annotations:\n          summary: '{{ $labels.instance }} is down'\n",
    )
    .expect("rules");
    let cfg = dir.join("sightline.yml");
    std::fs::write(
        &cfg,
        "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalertmanager_config: alertmanager.yml\n",
    )
    .expect("config");
    let srv = Server::start(&dir.join("data"), &["--config", &cfg.to_string_lossy()]);
    let now = load_sample_data(&srv, &scrape);
    // A node that stopped reporting ten minutes ago: silent in the fleet.
    let labels = [
        ("__name__", "up"),
        ("cluster", "dc1-c2"),
        ("instance", "dc1-c2-n4:9100"),
        ("job", "node"),
        ("site", "dc1"),
    ];
    let samples: Vec<(i64, f64)> = (0..40).map(|k| (now - 30 * 60_000 + k * 15_000, 1.0)).collect();
    let (code, body) = remote_write(&srv, vec![ts(&labels, &samples)]);
    assert!((200..300).contains(&code), "remote write: {code} {body}");

    let shots = std::env::var_os("SIGHTLINE_UI_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots"));
    let out = Command::new(node)
        .arg(browser_dir.join("ui.mjs"))
        .env("SIGHTLINE_URL", format!("http://{}", srv.http))
        .env("SCREENSHOT_DIR", &shots)
        .env("CHROMIUM", chromium)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "browser checks failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        out.status,
        srv.log_text().lines().rev().take(30).collect::<Vec<_>>().join("\n")
    );
    // Every page left its picture.
    for name in [
        "explore-graph",
        "explore-logs",
        "dashboard-sightline-fleet",
        "fleet",
        "status",
        "alerts-silenced",
        "alerts-expired",
        "efficiency",
    ] {
        let png = shots.join(format!("{name}.png"));
        let len = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "{} is missing or empty", png.display());
    }
}
