//! `GET /metrics`: Sightline's own metrics in the Prometheus text format,
//! named `sightline_<area>_<name>_<unit>`.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use sightline_ingest::stats::{IngestStats, Protocol, RejectReason};
use sightline_storage::stats::{LatencyHistogram, StorageStats};

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Log ingest and log storage figures.
fn render_logs(out: &mut String, logs: &sightline_ingest::logstore::LogIngest) {
    let st = logs.db.stats();
    let ing = &logs.stats;
    let counters: [(&str, &str, u64); 10] = [
        (
            "sightline_logs_entries_stored_total",
            "Log entries stored.",
            st.entries_stored.get(),
        ),
        (
            "sightline_logs_bytes_stored_total",
            "Bytes of log lines and metadata stored.",
            st.bytes_stored.get(),
        ),
        (
            "sightline_logs_entries_duplicate_total",
            "Log entries pushed again (retries) and stored once.",
            st.entries_duplicate.get(),
        ),
        (
            "sightline_logs_entries_rejected_total",
            "Log entries refused by validation or limits.",
            st.entries_rejected.get(),
        ),
        (
            "sightline_logs_entries_rate_limited_total",
            "Log entries refused by the per-tenant rate limit.",
            ing.rate_limited_entries.load(Ordering::Relaxed),
        ),
        (
            "sightline_logs_push_requests_total",
            "Log push requests answered 2xx.",
            ing.requests_ok.load(Ordering::Relaxed),
        ),
        (
            "sightline_logs_push_requests_failed_total",
            "Log push requests answered with an error.",
            ing.requests_failed.load(Ordering::Relaxed),
        ),
        (
            "sightline_logs_head_flushes_total",
            "Log heads cut into blocks.",
            st.head_flushes.get(),
        ),
        (
            "sightline_logs_compactions_total",
            "Log block merges.",
            st.compactions.get(),
        ),
        (
            "sightline_logs_retention_deletions_total",
            "Log blocks deleted by retention.",
            st.retention_deletions.get(),
        ),
    ];
    for (name, help, v) in counters {
        single(out, name, "counter", help, v);
    }
    let gauges: [(&str, &str, u64); 5] = [
        (
            "sightline_logs_head_entries",
            "Log entries in memory.",
            st.head_entries.get(),
        ),
        (
            "sightline_logs_head_bytes",
            "Bytes of log lines in memory.",
            st.head_bytes.get(),
        ),
        ("sightline_logs_blocks", "Log blocks open.", st.blocks.get()),
        (
            "sightline_logs_block_bytes",
            "Bytes of log block files (data and index).",
            st.block_bytes.get(),
        ),
        (
            "sightline_logs_wal_bytes",
            "Bytes of logs WAL segments.",
            st.wal.wal_bytes.get(),
        ),
    ];
    for (name, help, v) in gauges {
        single(out, name, "gauge", help, v);
    }
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, v: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {v}");
}

fn histogram(out: &mut String, name: &str, help: &str, h: &LatencyHistogram) {
    family(out, name, "histogram", help);
    let (buckets, count, sum) = h.snapshot();
    for (le, c) in buckets {
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {c}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {count}");
}

/// Resident memory and CPU time of this process, from /proc.
fn process_metrics(out: &mut String) {
    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm")
        && let Some(pages) = statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok())
    {
        single(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            pages * 4096,
        );
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may hold spaces) start at ')'.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            if let (Some(u), Some(s)) = (f.get(11), f.get(12)) {
                let ticks = u.parse::<f64>().unwrap_or(0.0) + s.parse::<f64>().unwrap_or(0.0);
                single(
                    out,
                    "process_cpu_seconds_total",
                    "counter",
                    "Total user and system CPU time spent in seconds.",
                    ticks / 100.0,
                );
            }
        }
    }
}

/// Rule evaluation and alert delivery.
fn rule_metrics(out: &mut String, rules: &crate::rules::Rules) {
    let status = rules.manager.status();
    single(
        out,
        "sightline_rules_last_reload_successful",
        "gauge",
        "Whether the last rule (re)load worked (1) or failed and the previous rules kept running (0).",
        u8::from(status.success),
    );
    let groups = rules.manager.groups();
    family(
        out,
        "sightline_rule_group_last_evaluation_timestamp_seconds",
        "gauge",
        "When each rule group was last evaluated.",
    );
    for g in &groups {
        let _ = writeln!(
            out,
            "sightline_rule_group_last_evaluation_timestamp_seconds{{rule_group=\"{}\"}} {}",
            escape(&g.spec.key()),
            g.stats.lock().last_evaluation as f64 / 1000.0
        );
    }
    family(
        out,
        "sightline_rule_group_rules_failing",
        "gauge",
        "Rules of each group whose last evaluation failed.",
    );
    for g in &groups {
        let failing = g
            .states
            .iter()
            .filter(|s| s.lock().health == sightline_alerting::rule::Health::Bad)
            .count();
        let _ = writeln!(
            out,
            "sightline_rule_group_rules_failing{{rule_group=\"{}\"}} {failing}",
            escape(&g.spec.key())
        );
    }
    let n = &rules.notifier.stats;
    single(
        out,
        "sightline_notifications_sent_total",
        "counter",
        "Alerts delivered to Alertmanagers.",
        n.sent.load(Ordering::Relaxed),
    );
    single(
        out,
        "sightline_notifications_errors_total",
        "counter",
        "Alerts not delivered to an Alertmanager after retries.",
        n.errors.load(Ordering::Relaxed),
    );
    single(
        out,
        "sightline_notifications_dropped_total",
        "counter",
        "Alerts dropped because the send queue was full.",
        n.dropped.load(Ordering::Relaxed),
    );
}

/// The built-in Alertmanager's counters (when it runs).
fn alertmanager_metrics(out: &mut String, rules: &crate::rules::Rules) {
    let Some(am) = &rules.alertmanager else { return };
    let s = &am.stats;
    single(
        out,
        "sightline_alertmanager_alerts_received_total",
        "counter",
        "Alerts received by the built-in Alertmanager (from rules and the API).",
        s.received.load(Ordering::Relaxed),
    );
    single(
        out,
        "sightline_alertmanager_notifications_total",
        "counter",
        "Notifications delivered to receivers.",
        s.notifications.load(Ordering::Relaxed),
    );
    single(
        out,
        "sightline_alertmanager_notifications_failed_total",
        "counter",
        "Notification deliveries that failed after retries (retried at the next group interval).",
        s.failed.load(Ordering::Relaxed),
    );
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Renders every metric.
pub fn render(
    storage: &StorageStats,
    ingest: &IngestStats,
    rules: &crate::rules::Rules,
    logs: &sightline_ingest::logstore::LogIngest,
) -> String {
    let mut out = String::with_capacity(8192);
    render_logs(&mut out, logs);
    family(
        &mut out,
        "sightline_ingest_samples_rejected_total",
        "counter",
        "Samples refused at ingest, by reason.",
    );
    for r in RejectReason::ALL {
        let _ = writeln!(
            out,
            "sightline_ingest_samples_rejected_total{{reason=\"{}\"}} {}",
            r.as_str(),
            ingest.rejected(r)
        );
    }
    single(
        &mut out,
        "sightline_ingest_samples_accepted_total",
        "counter",
        "Samples acknowledged to writers (new or already stored).",
        ingest.samples_accepted.load(Ordering::Relaxed),
    );
    family(
        &mut out,
        "sightline_ingest_requests_total",
        "counter",
        "Write requests, by protocol.",
    );
    for p in Protocol::ALL {
        let _ = writeln!(
            out,
            "sightline_ingest_requests_total{{protocol=\"{}\"}} {}",
            p.as_str(),
            ingest.requests[p as usize].load(Ordering::Relaxed)
        );
    }
    single(
        &mut out,
        "sightline_ingest_requests_failed_total",
        "counter",
        "Write requests answered with an error or partial rejection.",
        ingest.requests_failed.load(Ordering::Relaxed),
    );
    let s = storage;
    single(
        &mut out,
        "sightline_storage_samples_appended_total",
        "counter",
        "Samples stored in the head.",
        s.samples_appended.get(),
    );
    single(
        &mut out,
        "sightline_storage_samples_duplicate_total",
        "counter",
        "Identical samples written again and stored once.",
        s.samples_duplicate.get(),
    );
    single(
        &mut out,
        "sightline_storage_series_created_total",
        "counter",
        "Series created in the head.",
        s.series_created.get(),
    );
    single(
        &mut out,
        "sightline_storage_head_series",
        "gauge",
        "Series in the head.",
        s.head_series.get(),
    );
    single(
        &mut out,
        "sightline_storage_head_samples",
        "gauge",
        "Samples held in memory.",
        s.head_samples.get(),
    );
    histogram(
        &mut out,
        "sightline_storage_wal_fsync_duration_seconds",
        "WAL fsync latency.",
        &s.wal_fsync_seconds,
    );
    single(
        &mut out,
        "sightline_storage_wal_written_bytes_total",
        "counter",
        "Bytes written to the WAL.",
        s.wal_bytes_written.get(),
    );
    single(
        &mut out,
        "sightline_storage_wal_corruptions_total",
        "counter",
        "Torn or corrupt WAL regions cut off at start-up.",
        s.wal_corruptions.get(),
    );
    single(
        &mut out,
        "sightline_storage_wal_bytes",
        "gauge",
        "Bytes of WAL segments on disk.",
        s.wal_bytes.get(),
    );
    single(
        &mut out,
        "sightline_storage_head_flushes_total",
        "counter",
        "Head flushes to blocks.",
        s.head_flushes.get(),
    );
    single(
        &mut out,
        "sightline_storage_compactions_total",
        "counter",
        "Block compactions.",
        s.compactions.get(),
    );
    single(
        &mut out,
        "sightline_storage_retention_deleted_blocks_total",
        "counter",
        "Blocks deleted by retention.",
        s.retention_deletions.get(),
    );
    single(
        &mut out,
        "sightline_storage_blocks",
        "gauge",
        "Blocks loaded.",
        s.blocks.get(),
    );
    single(
        &mut out,
        "sightline_storage_block_bytes",
        "gauge",
        "Bytes of block files.",
        s.block_bytes.get(),
    );
    rule_metrics(&mut out, rules);
    alertmanager_metrics(&mut out, rules);
    process_metrics(&mut out);
    #[cfg(feature = "jemalloc")]
    allocator_metrics(&mut out);
    out
}

/// What the memory allocator holds: the gap between allocated and
/// resident is fragmentation and memory kept for reuse. Only jemalloc
/// has such figures.
#[cfg(feature = "jemalloc")]
fn allocator_metrics(out: &mut String) {
    let Some(s) = crate::allocator::stats() else {
        return;
    };
    for (name, help, v) in [
        (
            "sightline_allocator_allocated_bytes",
            "Bytes the program holds in allocations.",
            s.allocated,
        ),
        (
            "sightline_allocator_active_bytes",
            "Bytes in pages the allocator keeps active for those allocations.",
            s.active,
        ),
        (
            "sightline_allocator_resident_bytes",
            "Bytes resident for the allocator, its metadata and pages kept for reuse included.",
            s.resident,
        ),
    ] {
        single(out, name, "gauge", help, v);
    }
}
