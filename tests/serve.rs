//! The `sightline serve` contract: readiness, health, self-metrics, remote
//! write in and export out, SIGTERM flushing everything to blocks, and the
//! data still there after a restart.

mod common;

use common::*;

#[test]
fn serve_accepts_writes_flushes_on_sigterm_and_keeps_data_across_restart() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/sightline.example.yml");
    let mut srv = Server::start(&data, &["--config", config, "--retention", "30d"]);
    let c = client();
    assert_eq!(c.get(srv.url("/-/ready")).send().expect("ready").status(), 200);
    assert_eq!(c.get(srv.url("/-/healthy")).send().expect("healthy").status(), 200);

    // Three samples 15 s apart, all in one 2 h partition (the test counts
    // blocks): a minute ago, or earlier if a partition starts in between.
    let part = 2 * 3600 * 1000;
    let minute_ago = now_ms() - 60_000;
    let last_partition_start = (minute_ago + 30_000).div_euclid(part) * part;
    let t = if last_partition_start > minute_ago {
        last_partition_start - 30_001
    } else {
        minute_ago
    };
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    let series: Vec<_> = (0..50)
        .map(|i| {
            let inst = format!("host-{i:02}:9100");
            ts(
                &[("__name__", "node_load1"), ("instance", &inst), ("job", "node")],
                &[(t, i as f64 * 0.25), (t + 15_000, 1e-9 * i as f64), (t + 30_000, stale)],
            )
        })
        .collect();
    let (code, body) = remote_write(&srv, series);
    assert_eq!(code, 204, "{body}");

    let before = export(&srv, "node_load1");
    assert_eq!(before.len(), 50);
    assert_eq!(
        before[3].values,
        vec![
            serde_json::json!(0.75),
            serde_json::json!(1e-9 * 3.0),
            serde_json::json!("StaleNaN")
        ]
    );
    assert_eq!(before[3].timestamps, vec![t, t + 15_000, t + 30_000]);

    let metrics = metrics_text(&srv);
    assert!(
        metrics.contains("sightline_ingest_samples_accepted_total 150"),
        "{metrics}"
    );
    assert!(metrics.contains("sightline_storage_head_series 50"), "{metrics}");
    assert!(
        metrics.contains("sightline_storage_wal_fsync_duration_seconds_count"),
        "{metrics}"
    );
    assert!(metrics.contains("process_resident_memory_bytes"), "{metrics}");
    // The allocator's own figures: the server holds memory, and never more
    // than is resident for the allocator.
    #[cfg(feature = "jemalloc")]
    {
        let gauge = |name: &str| -> f64 {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {metrics}"))
        };
        let allocated = gauge("sightline_allocator_allocated_bytes");
        assert!(allocated > 0.0, "{metrics}");
        assert!(allocated <= gauge("sightline_allocator_resident_bytes"), "{metrics}");
    }

    let status = srv.sigterm();
    assert!(status.success(), "exit status {status}: {}", srv.log_text());
    let blocks: Vec<_> = std::fs::read_dir(data.join("blocks")).expect("blocks").collect();
    assert_eq!(blocks.len(), 1, "the head was flushed to one block on SIGTERM");
    assert!(
        wal_bytes(&data) < 10_000,
        "the WAL holds only the series checkpoint after a clean stop"
    );

    let srv = Server::start(&data, &[]);
    assert_eq!(export(&srv, "node_load1"), before);
    let metrics = metrics_text(&srv);
    assert!(metrics.contains("sightline_storage_blocks 1"), "{metrics}");
}

#[test]
fn bad_requests_get_clear_errors_over_the_wire() {
    let tmp = tempfile::tempdir().expect("tmp");
    let srv = Server::start(&tmp.path().join("data"), &[]);
    let c = client();
    let r = c
        .post(srv.url("/api/v1/write"))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .expect("send");
    assert_eq!(r.status(), 415);
    assert!(r.text().expect("text").contains("Content-Type"));
    let (code, body) = remote_write(
        &srv,
        vec![
            ts(&[("__name__", "fine")], &[(now_ms(), 1.0)]),
            ts(&[("__name__", "bad metric")], &[(now_ms(), 1.0)]),
        ],
    );
    assert_eq!(code, 400);
    assert!(
        body.contains("invalid metric name") && body.contains("bad metric"),
        "{body}"
    );
    assert_eq!(export(&srv, "fine").len(), 1, "the valid series of the request is kept");
    let metrics = metrics_text(&srv);
    assert!(
        metrics.contains("sightline_ingest_samples_rejected_total{reason=\"invalid_series\"} 1"),
        "{metrics}"
    );
}

#[test]
fn bad_config_is_refused_at_start_with_the_key_named() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("bad.yml");
    std::fs::write(&cfg, "storage:\n  retension: 3d\n").expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(tmp.path().join("d"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("retension"), "{err}");
}
