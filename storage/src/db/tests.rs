use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::matcher::Matcher;
use crate::read::{SeriesData, SeriesReader};

fn opts(dir: &std::path::Path) -> DbOptions {
    let mut o = DbOptions::new(dir);
    o.wal_fsync = false;
    o
}

/// A start time about `ago` ms before now such that `[t0, t0 + span]`
/// lies in one partition of the default options: a test that counts
/// blocks must not see its samples split at a partition boundary, which
/// `now - ago` alone would do whenever the clock is just past one.
fn t0_in_one_partition(ago: i64, span: i64) -> i64 {
    let part = DbOptions::new("unused").partition.as_millis() as i64;
    let t0 = now_ms() - ago;
    let end_of_partition = (t0.div_euclid(part) + 1) * part;
    // Moved to the next partition, the samples still end by now.
    assert!(
        2 * span <= ago && span < part,
        "a span of {span} ms does not fit {ago} ms ago"
    );
    if t0 + span < end_of_partition {
        t0
    } else {
        end_of_partition
    }
}

struct Series {
    labels: Vec<crate::Label>,
    samples: Vec<Sample>,
}

fn series(name: &str, host: &str, samples: &[(i64, f64)]) -> Series {
    Series {
        labels: Labels::from_pairs([("__name__", name), ("host", host)]).to_vec(),
        samples: samples.iter().map(|(t, v)| Sample::new(*t, *v)).collect(),
    }
}

/// Appends owned series through a write batch, as ingest does.
trait AppendOwned {
    async fn append_all(&self, list: &[Series]) -> Result<AppendReport>;
}

impl AppendOwned for Db {
    async fn append_all(&self, list: &[Series]) -> Result<AppendReport> {
        let mut b = crate::WriteBatch::new();
        for s in list {
            b.add_series(&s.labels, &s.samples);
        }
        self.append(&b).await
    }
}

async fn read_all(db: &Db, name: &str) -> Vec<(String, Vec<(i64, f64)>)> {
    db.select(&[Matcher::equal("__name__", name)], i64::MIN, i64::MAX)
        .await
        .expect("select")
        .into_iter()
        .map(|s| {
            (
                s.labels.get("host").unwrap_or_default().to_string(),
                s.timestamps.into_iter().zip(s.values).collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn samples_survive_flush_compaction_and_reopen() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t0 = t0_in_one_partition(30 * 60_000, 45_000);
    let db = Db::open(opts(tmp.path())).await.expect("open");
    let stale = f64::from_bits(crate::STALE_NAN_BITS);
    let rep = db
        .append_all(&[
            series("cpu", "a", &[(t0, 1.5), (t0 + 15_000, 2.25), (t0 + 30_000, stale)]),
            series("cpu", "b", &[(t0, 1e300), (t0 + 15_000, -0.0)]),
        ])
        .await
        .expect("append");
    assert_eq!(rep.stored, 5);
    let before = read_all(&db, "cpu").await;
    db.flush_head().await.expect("flush");
    assert_eq!(db.blocks().len(), 1);
    db.append_all(&[series("cpu", "a", &[(t0 + 45_000, 3.0)])])
        .await
        .expect("append");
    db.flush_head().await.expect("flush");
    assert_eq!(db.blocks().len(), 2);
    let mut expected = before.clone();
    expected[0].1.push((t0 + 45_000, 3.0));
    let check = |got: Vec<(String, Vec<(i64, f64)>)>| {
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g.0, e.0);
            let gb: Vec<(i64, u64)> = g.1.iter().map(|(t, v)| (*t, v.to_bits())).collect();
            let eb: Vec<(i64, u64)> = e.1.iter().map(|(t, v)| (*t, v.to_bits())).collect();
            assert_eq!(gb, eb);
        }
    };
    check(read_all(&db, "cpu").await);
    drop(db);

    // Reopen: blocks load from disk, the partition is still open so it
    // merges only at fan-in; force a merge by lowering the fan-in.
    let mut o = opts(tmp.path());
    o.compaction_fan_in = 2;
    let db = Db::open(o).await.expect("reopen");
    check(read_all(&db, "cpu").await);
    db.compact().await.expect("compact");
    assert_eq!(db.blocks().len(), 1);
    assert_eq!(db.blocks()[0].meta.level, 1);
    check(read_all(&db, "cpu").await);
    let files = std::fs::read_dir(tmp.path().join("blocks")).expect("dir").count();
    assert_eq!(files, 1, "source blocks are deleted after compaction");
}

#[tokio::test]
async fn unflushed_samples_are_replayed_from_the_wal() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t0 = now_ms() - 60_000;
    {
        let db = Db::open(opts(tmp.path())).await.expect("open");
        db.append_all(&[series("up", "a", &[(t0, 1.0), (t0 + 1, 0.0)])])
            .await
            .expect("append");
        db.flush_head().await.expect("flush");
        db.append_all(&[series("up", "a", &[(t0 + 2, 1.0)]), series("up", "b", &[(t0, 7.0)])])
            .await
            .expect("append");
        // Dropped without close(): as after kill -9.
    }
    let db = Db::open(opts(tmp.path())).await.expect("reopen");
    let got = read_all(&db, "up").await;
    assert_eq!(
        got,
        vec![
            ("a".to_string(), vec![(t0, 1.0), (t0 + 1, 0.0), (t0 + 2, 1.0)]),
            ("b".to_string(), vec![(t0, 7.0)])
        ]
    );
}

#[tokio::test]
async fn retried_writes_are_stored_once_even_across_a_flush() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t0 = now_ms() - 60_000;
    let mut o = opts(tmp.path());
    o.compaction_fan_in = 2;
    let db = Db::open(o).await.expect("open");
    let req = || vec![series("req", "a", &[(t0, 1.0), (t0 + 10, 2.0)])];
    assert_eq!(db.append_all(&req()).await.expect("append").stored, 2);
    let again = db.append_all(&req()).await.expect("append");
    assert_eq!((again.stored, again.duplicates), (0, 2));
    db.flush_head().await.expect("flush");
    assert_eq!(
        db.append_all(&req()).await.expect("append").stored,
        2,
        "head no longer has them"
    );
    db.flush_head().await.expect("flush");
    assert_eq!(read_all(&db, "req").await[0].1, vec![(t0, 1.0), (t0 + 10, 2.0)]);
    db.compact().await.expect("compact");
    assert_eq!(db.blocks().len(), 1);
    assert_eq!(db.blocks()[0].meta.num_samples, 2);
}

#[tokio::test]
async fn out_of_window_and_conflicting_samples_are_rejected_others_kept() {
    let tmp = tempfile::tempdir().expect("tmp");
    let now = now_ms();
    let db = Db::open(opts(tmp.path())).await.expect("open");
    db.append_all(&[series("x", "a", &[(now, 1.0)])]).await.expect("append");
    let rep = db
        .append_all(&[
            series("x", "a", &[(now - 2 * 3600 * 1000, 1.0), (now - 1000, 2.0)]),
            series("x", "b", &[(now + 3600 * 1000, 1.0)]),
            series("x", "a", &[(now, 5.0)]),
        ])
        .await
        .expect("append");
    assert_eq!(rep.stored, 1);
    assert_eq!(rep.rejected(), 3);
    assert!(matches!(rep.first_rejection, Some((0, Rejection::TooOld { .. }))));
    assert_eq!(db.stats().samples_too_old.get(), 1);
    assert_eq!(db.stats().samples_too_new.get(), 1);
    assert_eq!(db.stats().samples_conflicting.get(), 1);
    assert_eq!(read_all(&db, "x").await[0].1, vec![(now - 1000, 2.0), (now, 1.0)]);
}

#[tokio::test]
async fn settled_partitions_merge_and_retention_drops_old_blocks() {
    let tmp = tempfile::tempdir().expect("tmp");
    let day = 24 * 3600 * 1000;
    let old = now_ms() - 25 * day;
    let recent = now_ms() - 10 * day;
    // Write with a 30-day out-of-order window and 40-day retention ...
    let mut backfill = opts(tmp.path());
    backfill.out_of_order_window = Duration::from_secs(24 * 3600 * 30);
    backfill.retention = Duration::from_secs(24 * 3600 * 40);
    let db = Db::open(backfill).await.expect("open");
    for t in [recent, recent + 1000, old, now_ms()] {
        db.append_all(&[series("m", "a", &[(t, 1.0)])]).await.expect("append");
        db.flush_head().await.expect("flush");
    }
    drop(db);
    // ... then run with the defaults (1 h window) and 20 days retention.
    let mut o = opts(tmp.path());
    o.retention = Duration::from_secs(24 * 3600 * 20);
    let db = Db::open(o).await.expect("open");
    assert_eq!(db.blocks().len(), 4);
    db.compact().await.expect("compact");
    assert_eq!(db.blocks().len(), 3, "the settled partition merged into one block");
    db.apply_retention().await.expect("retention");
    assert_eq!(db.blocks().len(), 2);
    assert_eq!(db.stats().retention_deletions.get(), 1);
    assert_eq!(read_all(&db, "m").await[0].1.len(), 3);
}

#[tokio::test]
async fn label_apis_see_head_and_blocks() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t0 = now_ms() - 60_000;
    let db = Db::open(opts(tmp.path())).await.expect("open");
    db.append_all(&[series("a", "h1", &[(t0, 1.0)])]).await.expect("append");
    db.flush_head().await.expect("flush");
    db.append_all(&[series("b", "h2", &[(t0 + 5, 1.0)])])
        .await
        .expect("append");
    let names = db
        .label_values("__name__", &[], i64::MIN, i64::MAX)
        .await
        .expect("values");
    assert_eq!(names, vec!["a", "b"]);
    let hosts = db
        .label_values("host", &[Matcher::equal("__name__", "a")], i64::MIN, i64::MAX)
        .await
        .expect("values");
    assert_eq!(hosts, vec!["h1"]);
    assert_eq!(
        db.label_names(&[], i64::MIN, i64::MAX).await.expect("names"),
        vec!["__name__", "host"]
    );
    let s = db.series(&[], t0 + 1, t0 + 10).await.expect("series");
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].metric_name(), Some("b"));
}

/// All batches of a batched read, concatenated.
async fn read_batched(db: &Db, matchers: &[Matcher], start: i64, end: i64, batch: usize) -> (Vec<SeriesData>, usize) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let (read, got) = tokio::join!(db.select_batches(matchers, start, end, batch, tx), async {
        let mut all = Vec::new();
        let mut batches = 0;
        while let Some(b) = rx.recv().await {
            assert!(!b.is_empty(), "no empty batches");
            batches += 1;
            all.extend(b);
        }
        (all, batches)
    });
    read.expect("batched read");
    got
}

#[tokio::test]
async fn batched_reads_equal_whole_reads_across_blocks_and_head() {
    let tmp = tempfile::tempdir().expect("tmp");
    // Samples up to t0 + 60 scrapes of 15 s.
    let t0 = t0_in_one_partition(30 * 60_000, 60 * 15_000);
    let db = Db::open(opts(tmp.path())).await.expect("open");
    let hosts: Vec<String> = (0..40).map(|i| format!("h{i:02}")).collect();
    // Three sources per series: two blocks and the head, the second
    // block rewriting one timestamp of the first (newest wins), and a
    // series only in the head.
    for (round, shift) in [(0, 0), (1, 20)] {
        let list: Vec<Series> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let s: Vec<(i64, f64)> = (0..25)
                    .map(|k| (t0 + (shift + k) * 15_000, (round * 1000 + i * 10 + k as usize) as f64))
                    .collect();
                series("up", h, &s)
            })
            .collect();
        db.append_all(&list).await.expect("append");
        db.flush_head().await.expect("flush");
    }
    db.append_all(&[
        series("up", "h03", &[(t0 + 60 * 15_000, 7.0)]),
        series("up", "zz-head-only", &[(t0, 1.0)]),
    ])
    .await
    .expect("append");
    assert_eq!(db.blocks().len(), 2);
    let m = [Matcher::equal("__name__", "up")];
    let whole = db.select(&m, i64::MIN, i64::MAX).await.expect("select");
    assert_eq!(whole.len(), 41);
    for batch in [1, 30, 100, 1_000_000] {
        let (got, batches) = read_batched(&db, &m, i64::MIN, i64::MAX, batch).await;
        assert_eq!(got, whole, "batch size {batch}");
        if batch == 1 {
            assert_eq!(batches, 41, "one series per batch");
        }
        if batch == 1_000_000 {
            assert_eq!(batches, 1);
        }
    }
    // A time range cutting through both blocks.
    let (lo, hi) = (t0 + 10 * 15_000, t0 + 30 * 15_000);
    let whole = db.select(&m, lo, hi).await.expect("select");
    assert_eq!(read_batched(&db, &m, lo, hi, 50).await.0, whole);
    // A receiver that goes away ends the read without an error.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(rx);
    db.select_batches(&m, i64::MIN, i64::MAX, 1, tx)
        .await
        .expect("ends quietly");
}

#[tokio::test]
async fn compaction_waits_for_a_streamed_read_before_deleting_its_blocks() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t0 = now_ms() - 30 * 60_000;
    let mut o = opts(tmp.path());
    o.compaction_fan_in = 2;
    let db = Db::open(o).await.expect("open");
    let hosts: Vec<String> = (0..10).map(|i| format!("h{i}")).collect();
    for round in 0..2i64 {
        let list: Vec<Series> = hosts
            .iter()
            .map(|h| series("up", h, &[(t0 + round * 15_000, round as f64)]))
            .collect();
        db.append_all(&list).await.expect("append");
        db.flush_head().await.expect("flush");
    }
    assert_eq!(db.blocks().len(), 2);
    let m = [Matcher::equal("__name__", "up")];
    let whole = db.select(&m, i64::MIN, i64::MAX).await.expect("select");
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let reader = {
        let db = db.clone();
        tokio::spawn(async move { db.select_batches(&m, i64::MIN, i64::MAX, 1, tx).await })
    };
    let mut got = rx.recv().await.expect("first batch");
    // The blocks are merged and swapped out while the read is under way.
    let compaction = {
        let db = db.clone();
        tokio::spawn(async move { db.compact().await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    while let Some(b) = rx.recv().await {
        got.extend(b);
    }
    reader.await.expect("join").expect("the read never loses its blocks");
    compaction.await.expect("join").expect("compact");
    assert_eq!(got, whole);
    assert_eq!(db.blocks().len(), 1);
    let files = std::fs::read_dir(tmp.path().join("blocks")).expect("dir").count();
    assert_eq!(files, 1, "the merged sources are deleted once the read is done");
}

#[tokio::test]
async fn start_timestamps_survive_wal_replay_blocks_and_compaction() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t0 = now_ms() - 30 * 60_000;
    let counter = |k: i64| Sample::with_start(t0 + k * 15_000, k as f64, t0 - 1_000);
    let labels = Labels::from_pairs([("__name__", "requests_total"), ("host", "a")]).to_vec();
    let written: Vec<Sample> = (0..8).map(counter).collect();
    let starts = |db: &Db| {
        let db = db.clone();
        async move {
            let got = db
                .select(&[Matcher::equal("__name__", "requests_total")], i64::MIN, i64::MAX)
                .await
                .expect("select");
            assert_eq!(got.len(), 1);
            (got[0].timestamps.clone(), got[0].start_timestamps.clone())
        }
    };
    let want = (
        written.iter().map(|s| s.t).collect::<Vec<_>>(),
        written.iter().map(|s| s.st).collect::<Vec<_>>(),
    );
    // Series without start timestamps sort before and after the counter
    // in the block: the st column must stay null for them.
    let before = Labels::from_pairs([("__name__", "a_plain")]).to_vec();
    let after = Labels::from_pairs([("__name__", "z_plain")]).to_vec();
    {
        let db = Db::open(opts(tmp.path())).await.expect("open");
        let mut b = crate::WriteBatch::new();
        b.add_series(&before, &[Sample::new(t0, 1.0)]);
        b.add_series(&labels, &written[..4]);
        b.add_series(&after, &[Sample::new(t0, 2.0)]);
        db.append(&b).await.expect("append");
        db.flush_head().await.expect("flush");
        let mut b = crate::WriteBatch::new();
        b.add_series(&labels, &written[4..]);
        db.append(&b).await.expect("append");
        // Half in a block, half only in the WAL; dropped as after kill -9.
    }
    let db = Db::open(opts(tmp.path())).await.expect("reopen");
    assert_eq!(starts(&db).await, want);
    db.flush_head().await.expect("flush");
    let mut o = opts(tmp.path());
    o.compaction_fan_in = 2;
    drop(db);
    let db = Db::open(o).await.expect("reopen");
    db.compact().await.expect("compact");
    assert_eq!(db.blocks().len(), 1);
    assert_eq!(starts(&db).await, want);
    for name in ["a_plain", "z_plain"] {
        let got = db
            .select(&[Matcher::equal("__name__", name)], i64::MIN, i64::MAX)
            .await
            .expect("select");
        assert_eq!(got[0].timestamps, [t0], "{name}");
        assert!(got[0].start_timestamps.is_empty(), "{name}");
    }
    // A series without start timestamps reads back without any.
    let mut b = crate::WriteBatch::new();
    let plain = Labels::from_pairs([("__name__", "up")]).to_vec();
    b.add_series(&plain, &[Sample::new(t0, 1.0)]);
    db.append(&b).await.expect("append");
    let got = db
        .select(&[Matcher::equal("__name__", "up")], i64::MIN, i64::MAX)
        .await
        .expect("select");
    assert!(got[0].start_timestamps.is_empty());
}

#[tokio::test]
async fn a_series_found_by_its_wire_key_is_the_series_of_its_labels() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t0 = now_ms() - 60_000;
    let labels = Labels::from_pairs([("__name__", "keyed"), ("host", "a")]).to_vec();
    let other = Labels::from_pairs([("__name__", "keyed"), ("host", "b")]).to_vec();
    let one = |t: i64| vec![Sample::new(t, t as f64)];
    {
        let db = Db::open(opts(tmp.path())).await.expect("open");
        // First seen without a key, then with one (learned from its labels),
        // then found by the key alone; a second series has its own key.
        for (key, t) in [(0, t0), (7, t0 + 1), (7, t0 + 2)] {
            assert_eq!(
                db.append(&keyed(&labels, &one(t), key)).await.expect("append").stored,
                1
            );
        }
        assert_eq!(db.append(&keyed(&other, &one(t0), 8)).await.expect("append").stored, 1);
        // A head cut forgets no key of a live series.
        db.flush_head().await.expect("flush");
        assert_eq!(
            db.append(&keyed(&labels, &one(t0 + 3), 7))
                .await
                .expect("append")
                .stored,
            1
        );
        assert!(db.inner.registry.read().lookup_key(7).is_some());
    }
    // Reopened (the WAL replayed), the keys are unknown again and are
    // learned from the labels once more.
    let db = Db::open(opts(tmp.path())).await.expect("reopen");
    assert_eq!(db.inner.registry.read().lookup_key(7), None);
    assert_eq!(
        db.append(&keyed(&labels, &one(t0 + 4), 7))
            .await
            .expect("append")
            .stored,
        1
    );
    let got = read_all(&db, "keyed").await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, "a");
    assert_eq!(
        got[0].1.iter().map(|(t, _)| t - t0).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(got[1].1.len(), 1);
}

#[tokio::test]
async fn a_series_with_an_empty_label_value_is_found_by_its_wire_key_too() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t0 = now_ms() - 60_000;
    let db = Db::open(opts(tmp.path())).await.expect("open");
    // Real exporters send empty values (node_disk_info{model=""}); they are
    // dropped on the way in, and the wire key still names the series.
    let wire = [
        crate::Label::new("__name__", "keyed"),
        crate::Label::new("host", "a"),
        crate::Label::new("model", ""),
    ];
    for t in [t0, t0 + 1] {
        let stored = db
            .append(&keyed(&wire, &[Sample::new(t, 1.0)], 9))
            .await
            .expect("append")
            .stored;
        assert_eq!(stored, 1);
    }
    let r = db.inner.registry.read().lookup_key(9).expect("key learned");
    let stripped = Labels::from_pairs([("__name__", "keyed"), ("host", "a")]);
    assert_eq!(
        db.inner.registry.read().lookup(stripped.stable_hash(), &stripped),
        Some(r)
    );
    let got = read_all(&db, "keyed").await;
    assert_eq!(got, vec![("a".to_string(), vec![(t0, 1.0), (t0 + 1, 1.0)])]);
}

fn keyed<'a>(labels: &'a [crate::Label], samples: &[Sample], key: u128) -> crate::WriteBatch<'a> {
    let mut b = crate::WriteBatch::new();
    for l in labels {
        b.push_label(&l.name, &l.value);
    }
    for s in samples {
        b.push_sample(*s);
    }
    b.finish_series_with_key(key);
    b
}

#[tokio::test]
async fn a_clean_close_leaves_only_blocks_and_an_empty_wal() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t0 = now_ms() - 60_000;
    {
        let db = Db::open(opts(tmp.path())).await.expect("open");
        db.append_all(&[series("up", "a", &[(t0, 1.0)]), series("up", "b", &[(t0, 2.0)])])
            .await
            .expect("append");
        db.flush_head().await.expect("flush");
        db.append_all(&[series("up", "a", &[(t0 + 1, 3.0)])])
            .await
            .expect("append");
        db.close().await.expect("close");
    }
    let wal_bytes: u64 = std::fs::read_dir(tmp.path().join("wal"))
        .expect("wal dir")
        .map(|e| e.expect("entry").metadata().expect("stat").len())
        .sum();
    assert!(
        wal_bytes <= 8,
        "only an empty segment's header is left, found {wal_bytes} bytes"
    );
    let db = Db::open(opts(tmp.path())).await.expect("reopen");
    db.append_all(&[series("up", "b", &[(t0 + 1, 4.0)])])
        .await
        .expect("append");
    assert_eq!(
        read_all(&db, "up").await,
        vec![
            ("a".to_string(), vec![(t0, 1.0), (t0 + 1, 3.0)]),
            ("b".to_string(), vec![(t0, 2.0), (t0 + 1, 4.0)])
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_creating_series_survive_head_cuts_and_replay() {
    const WRITERS: i64 = 8;
    const ROUNDS: i64 = 200;
    const HOSTS: i64 = 12;
    let tmp = tempfile::tempdir().expect("tmp");
    let t0 = now_ms() - 30 * 60_000;
    let mut expected: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    {
        let db = Db::open(opts(tmp.path())).await.expect("open");
        let rounds_done = Arc::new(AtomicI64::new(0));
        // Head cuts while the writers run their first half: each must fall
        // between appends. The second half lives only in the WAL.
        let cutter = {
            let (db, rounds_done) = (db.clone(), rounds_done.clone());
            tokio::spawn(async move {
                let mut cuts = 0;
                while rounds_done.load(Ordering::Relaxed) < WRITERS * ROUNDS / 2 {
                    db.flush_head().await.expect("flush");
                    cuts += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                cuts
            })
        };
        // The writers go round by round together and keep meeting series
        // that are new to the database, each created by whichever writer
        // comes first while the others look for it, so series records and
        // the sample records that need them race.
        let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS as usize));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (db, barrier, rounds_done) = (db.clone(), barrier.clone(), rounds_done.clone());
                tokio::spawn(async move {
                    let mut written = Vec::new();
                    for round in 0..ROUNDS {
                        barrier.wait().await;
                        let t = t0 + round * 1_000 + w;
                        let list: Vec<Series> = (0..HOSTS)
                            .map(|h| {
                                let host = format!("h{}", round / 2 * HOSTS + h);
                                let v = (w * 1_000_000 + round * 100 + h) as f64;
                                written.push((host.clone(), t, v));
                                series("race", &host, &[(t, v)])
                            })
                            .collect();
                        let rep = db.append_all(&list).await.expect("append");
                        assert_eq!(rep.stored, HOSTS as u64);
                        rounds_done.fetch_add(1, Ordering::Relaxed);
                    }
                    written
                })
            })
            .collect();
        for w in writers {
            for (host, t, v) in w.await.expect("writer") {
                expected.entry(host).or_default().push((t, v));
            }
        }
        assert!(cutter.await.expect("cutter") > 0);
        // Dropped without close(): as after kill -9.
    }
    for samples in expected.values_mut() {
        samples.sort_by_key(|(t, _)| *t);
    }
    let db = Db::open(opts(tmp.path())).await.expect("reopen");
    let got: BTreeMap<String, Vec<(i64, f64)>> = read_all(&db, "race").await.into_iter().collect();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "acknowledged samples are missing after replay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::await_holding_lock,
    reason = "the test plays an append in flight, which holds the lock while the retry runs"
)]
async fn a_duplicate_is_acknowledged_only_after_appends_in_flight_queued_theirs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t0 = now_ms() - 60_000;
    let db = Db::open(opts(tmp.path())).await.expect("open");
    db.append_all(&[series("up", "a", &[(t0, 1.0)])]).await.expect("append");
    // An append in flight: it has stored (t0 + 1, 2.0) in the head and
    // holds the lock, its WAL record not yet queued.
    let in_flight = db.inner.append_lock.read();
    let labels = Labels::from_pairs([("__name__", "up"), ("host", "a")]);
    let r = db
        .inner
        .registry
        .read()
        .lookup(labels.stable_hash(), &labels)
        .expect("series");
    let head = db.inner.heads.read().active.clone();
    head.insert(r, &[Sample::new(t0 + 1, 2.0)], |_, outcome| {
        assert_eq!(outcome, InsertOutcome::Stored)
    });
    // A retry of that sample finds it in the head: its acknowledgement
    // must wait for the append in flight.
    let retry = {
        let db = db.clone();
        tokio::spawn(async move { db.append_all(&[series("up", "a", &[(t0 + 1, 2.0)])]).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !retry.is_finished(),
        "a duplicate was acknowledged before its original was queued"
    );
    drop(in_flight);
    let report = retry.await.expect("task").expect("append");
    assert_eq!((report.stored, report.duplicates), (0, 1));
}
