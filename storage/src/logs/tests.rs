//! LogDb tests: durability, limits, and index-served reads agreeing with
//! scans.

use super::test_rng::TestRng;
use super::*;
use crate::matcher::{MatchOp, Matcher};

fn opts(dir: &std::path::Path) -> LogDbOptions {
    let mut o = LogDbOptions::new(dir);
    o.wal_fsync = false;
    o
}

fn push(tenant: &str, labels: &[(&str, &str)], entries: Vec<LogEntry>) -> LogPush {
    LogPush {
        tenant: tenant.into(),
        streams: vec![(
            labels.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
            entries,
        )],
    }
}

fn all(db: &LogDb, tenant: &str) -> Vec<(String, Vec<(i64, String)>)> {
    let q = LogSelect::new(tenant, vec![], 0, i64::MAX);
    flat(db.select(&q).expect("select"))
}

fn flat(streams: Vec<LogStream>) -> Vec<(String, Vec<(i64, String)>)> {
    streams
        .into_iter()
        .map(|s| {
            (
                s.key.labels.to_string(),
                s.entries.into_iter().map(|e| (e.ts, e.line)).collect(),
            )
        })
        .collect()
}

fn t0() -> i64 {
    now_ns() - 3_600_000_000_000
}

#[test]
fn pushes_are_read_back_from_head_blocks_and_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = t0();
    let expected;
    {
        let db = LogDb::open(opts(dir.path())).expect("open");
        let r = db
            .push_blocking(push(
                "t1",
                &[("app", "mail"), ("site", "dc1")],
                vec![LogEntry::new(base + 2, "second"), LogEntry::new(base + 1, "first")],
            ))
            .expect("push");
        assert_eq!((r.stored, r.rejected), (2, 0));
        db.push_blocking(push(
            "t2",
            &[("app", "mail")],
            vec![LogEntry::new(base, "other tenant")],
        ))
        .expect("push");
        expected = all(&db, "t1");
        assert_eq!(
            expected,
            vec![(
                "{app=\"mail\", site=\"dc1\"}".to_string(),
                vec![(base + 1, "first".into()), (base + 2, "second".into())]
            )]
        );
        db.flush().expect("flush");
        assert_eq!(all(&db, "t1"), expected, "same answer from a block");
        db.push_blocking(push(
            "t1",
            &[("app", "mail"), ("site", "dc1")],
            vec![LogEntry::new(base + 3, "third")],
        ))
        .expect("push");
    }
    // Dropped without close: the third line lives only in the WAL.
    let db = LogDb::open(opts(dir.path())).expect("reopen");
    let mut want = expected[0].1.clone();
    want.push((base + 3, "third".into()));
    assert_eq!(all(&db, "t1")[0].1, want);
    assert_eq!(all(&db, "t2")[0].1, vec![(base, "other tenant".into())]);
}

#[test]
fn a_retried_push_is_stored_once_even_after_a_flush_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = t0();
    let p = push(
        "t",
        &[("app", "a")],
        vec![
            LogEntry::new(base, "x"),
            LogEntry::new(base, "x"),
            LogEntry::new(base, "y"),
        ],
    );
    let db = LogDb::open(opts(dir.path())).expect("open");
    let r = db.push_blocking(p.clone()).expect("push");
    assert_eq!((r.stored, r.duplicates), (2, 1));
    let r = db.push_blocking(p.clone()).expect("retry");
    assert_eq!((r.stored, r.duplicates), (0, 3));
    db.flush().expect("flush");
    db.push_blocking(p).expect("retry after flush");
    drop(db);
    let db = LogDb::open(opts(dir.path())).expect("reopen");
    assert_eq!(all(&db, "t")[0].1, vec![(base, "x".into()), (base, "y".into())]);
}

#[test]
fn invalid_entries_are_refused_with_reasons_and_valid_ones_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = opts(dir.path());
    o.limits.max_line_bytes = 10;
    o.limits.max_streams_per_tenant = 2;
    let db = LogDb::open(o).expect("open");
    let now = now_ns();
    let r = db
        .push_blocking(push(
            "t",
            &[("app", "a")],
            vec![
                LogEntry::new(now, "ok"),
                LogEntry::new(now, "this line is too long"),
                LogEntry::new(now - 8 * 24 * 3_600_000_000_000, "old"),
                LogEntry::new(now + 3_600_000_000_000, "future"),
            ],
        ))
        .expect("push");
    assert_eq!((r.stored, r.rejected), (1, 3));
    let why = r.first_rejection.expect("a reason");
    assert!(why.contains("max entry size '10' bytes exceeded"), "{why}");
    let r = db
        .push_blocking(push("t", &[("bad-name", "x")], vec![LogEntry::new(now, "x")]))
        .expect("push");
    assert!(
        r.first_rejection
            .expect("reason")
            .contains("invalid label name \"bad-name\"")
    );
    let r = db
        .push_blocking(push("t", &[], vec![LogEntry::new(now, "x")]))
        .expect("push");
    assert!(r.first_rejection.expect("reason").contains("at least one label"));
    let r = db
        .push_blocking(push(
            "t",
            &[("app", "old")],
            vec![LogEntry::new(now - 8 * 24 * 3_600_000_000_000, "x")],
        ))
        .expect("push");
    assert!(r.first_rejection.expect("reason").contains("timestamp too old"));
    db.push_blocking(push("t", &[("app", "b")], vec![LogEntry::new(now, "x")]))
        .expect("push");
    let r = db
        .push_blocking(push("t", &[("app", "c")], vec![LogEntry::new(now, "x")]))
        .expect("push");
    assert!(r.first_rejection.expect("reason").contains("max_streams_per_tenant"));
    assert_eq!(all(&db, "t").len(), 2);
}

#[test]
fn selectors_and_time_ranges_narrow_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = LogDb::open(opts(dir.path())).expect("open");
    let base = t0();
    for (app, n) in [("a", 3), ("b", 2)] {
        let entries = (0..n).map(|i| LogEntry::new(base + i, format!("{app} {i}"))).collect();
        db.push_blocking(push("t", &[("app", app)], entries)).expect("push");
    }
    db.flush().expect("flush");
    let m = Matcher::new(MatchOp::Regex, "app", "a|z").expect("matcher");
    let q = LogSelect::new("t", vec![m], base + 1, base + 3);
    let got = flat(db.select(&q).expect("select"));
    assert_eq!(
        got,
        vec![(
            "{app=\"a\"}".into(),
            vec![(base + 1, "a 1".into()), (base + 2, "a 2".into())]
        )]
    );
    let keys = db.stream_keys(&LogSelect::new("t", vec![], base, base + 10));
    assert_eq!(keys.len(), 2);
}

/// Lines in the shapes real logs have, from a small vocabulary so that
/// needles hit often, and a third with an id or number of their own (the
/// block's rare terms).
fn random_line(rng: &mut TestRng) -> String {
    const WORDS: &[&str] = &[
        "error",
        "Error",
        "timeout",
        "user=alice",
        "user=bob",
        "id=42",
        "id=421",
        "GET",
        "/api/v1/push",
        "200",
        "503",
        "conn",
        "connection",
        "reset",
        "by",
        "peer",
        "ß",
        "ünïcode",
        "a1b2c3",
        "x",
        "::1",
        "[warn]",
    ];
    let n = 1 + rng.below(8);
    let mut words: Vec<String> = (0..n).map(|_| WORDS[rng.below(WORDS.len())].to_string()).collect();
    if rng.below(50) == 0 {
        words.push("z".repeat(200)); // a token too long to index
    }
    let at = rng.below(words.len() + 1);
    match rng.below(6) {
        0 => words.insert(at, format!("msg{:x}", rng.below(usize::MAX))),
        1 => words.insert(at, format!("{}", rng.below(100_000_000))),
        _ => {}
    }
    let sep = [" ", " ", "=", ",", "-"][rng.below(5)];
    words.join(sep)
}

#[test]
fn index_served_line_filters_agree_with_a_scan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = LogDb::open(opts(dir.path())).expect("open");
    let mut rng = TestRng::new(0x9e37_79b9_7f4a_7c15);
    let base = t0();
    let mut lines = Vec::new();
    for s in 0..5 {
        let entries: Vec<LogEntry> = (0..700)
            .map(|i| {
                let line = random_line(&mut rng);
                lines.push(line.clone());
                LogEntry::new(base + i, line)
            })
            .collect();
        db.push_blocking(push("t", &[("stream", &s.to_string())], entries))
            .expect("push");
    }
    db.flush().expect("flush");
    // The ids are rare terms, out of the index: the lookups below go to
    // the rare terms file.
    let mut rare = 0;
    for block in std::fs::read_dir(dir.path().join("blocks")).expect("ls") {
        let path = block.expect("entry").path().join(super::rare_terms::RARE_TERMS_FILE);
        let terms = super::rare_terms::RareTerms::open(&path)
            .expect("open")
            .expect("written");
        terms.for_each(|_, _| rare += 1).expect("read");
    }
    assert!(rare > 500, "{rare} rare terms");
    let everything = db.select(&LogSelect::new("t", vec![], 0, i64::MAX)).expect("select");
    let mut needles: Vec<String> = vec![
        "error".into(),
        "rror".into(),
        "user=alice".into(),
        "id=42 ".into(),
        "=42".into(),
        "a1b2".into(),
        "zzzzz".into(),
        "ÜNÏ".into(),
        "ünïcode".into(),
        "peer".into(),
        " by ".into(),
        "nothing-like-this".into(),
    ];
    // Every id or number with the line it is in.
    let ids: Vec<(&str, &str)> = lines
        .iter()
        .flat_map(|l| l.split([' ', '=', ',', '-']).map(move |w| (w, l.as_str())))
        .filter(|(w, _)| {
            w.len() >= 6 && w.bytes().all(|b| b.is_ascii_alphanumeric()) && w.bytes().any(|b| b.is_ascii_digit())
        })
        .collect();
    assert!(ids.len() > 500, "{} ids", ids.len());
    for _ in 0..40 {
        // An id or number whole, with what is around it in its line
        // (a whole token), its start, its end, its middle, and bounded by
        // separators.
        let (id, line) = ids[rng.below(ids.len())];
        let at = line.find(id).expect("in its line");
        let (from, to) = (at.saturating_sub(1), (at + id.len() + 1).min(line.len()));
        if line.is_char_boundary(from) && line.is_char_boundary(to) {
            needles.push(line[from..to].to_string());
        }
        let cut = 1 + rng.below(id.len() - 2);
        needles.extend([
            id.to_string(),
            id[..cut].to_string(),
            id[cut..].to_string(),
            id[1..id.len() - 1].to_string(),
            format!(" {id}"),
            format!("{} ", &id[..cut]),
            id.to_uppercase(),
        ]);
    }
    for _ in 0..60 {
        // Random substrings of real lines, cut at char boundaries.
        let l = &lines[rng.below(lines.len())];
        let chars: Vec<char> = l.chars().collect();
        let a = rng.below(chars.len());
        let b = a + 1 + rng.below(chars.len() - a);
        needles.push(chars[a..b].iter().collect());
    }
    for needle in needles {
        let mut q = LogSelect::new("t", vec![], 0, i64::MAX);
        q.contains = vec![needle.clone()];
        let served = flat(db.select(&q).expect("select"));
        let scanned: Vec<(String, Vec<(i64, String)>)> = flat(
            everything
                .iter()
                .map(|s| LogStream {
                    key: s.key.clone(),
                    entries: s.entries.iter().filter(|e| e.line.contains(&needle)).cloned().collect(),
                })
                .filter(|s| !s.entries.is_empty())
                .collect(),
        );
        assert_eq!(served, scanned, "needle {needle:?}");
    }
}

#[test]
fn small_blocks_are_merged_and_old_ones_expire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = opts(dir.path());
    o.compaction_fan_in = 3;
    let db = LogDb::open(o.clone()).expect("open");
    let base = t0();
    for i in 0..3 {
        db.push_blocking(push(
            "t",
            &[("app", "a")],
            vec![LogEntry::new(base + i, format!("line {i}"))],
        ))
        .expect("push");
        db.flush().expect("flush");
    }
    let before = all(&db, "t");
    assert_eq!(db.block_metas().len(), 3);
    db.compact().expect("compact");
    let metas = db.block_metas();
    assert_eq!(metas.len(), 1, "merged");
    assert_eq!(metas[0].sources.len(), 3);
    assert_eq!(all(&db, "t"), before);
    assert_eq!(
        std::fs::read_dir(dir.path().join("blocks")).expect("ls").count(),
        1,
        "sources deleted"
    );
    drop(db);
    o.retention = Duration::from_secs(60);
    let db = LogDb::open(o).expect("reopen");
    db.maintain().expect("maintain");
    assert!(
        db.block_metas().is_empty(),
        "an hour-old block is past a minute's retention"
    );
    assert!(all(&db, "t").is_empty());
}

/// Merged blocks are written at `compaction_zstd_level`, not at the
/// level of the blocks cut from the head.
#[test]
fn merged_blocks_are_written_at_the_compaction_level() {
    let merged_data_bytes = |level: i32| {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut o = opts(dir.path());
        o.compaction_fan_in = 2;
        o.zstd_level = 3;
        o.compaction_zstd_level = level;
        let db = LogDb::open(o).expect("open");
        let mut x: u64 = 42;
        for part in 0..2i64 {
            let entries = (0..4000i64)
                .map(|i| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    LogEntry::new(
                        t0() + part * 10_000 + i,
                        format!(
                            "user=u{} action=login latency={}ms id={:08x}",
                            x % 97,
                            (x >> 20) % 1000,
                            x >> 40
                        ),
                    )
                })
                .collect();
            db.push_blocking(push("t", &[("app", "a")], entries)).expect("push");
            db.flush().expect("flush");
        }
        db.compact().expect("compact");
        let metas = db.block_metas();
        assert_eq!(metas.len(), 1, "merged");
        let data = dir.path().join("blocks").join(&metas[0].id).join("data.parquet");
        std::fs::metadata(data).expect("data file").len()
    };
    // (Timestamps follow the clock, so equal levels differ by ~0.5 %;
    // levels 1 and 19 by ~11 %.)
    let (fast, strong) = (merged_data_bytes(1), merged_data_bytes(19));
    assert!(
        (strong as f64) < fast as f64 * 0.95,
        "level 19 gave {strong} bytes, level 1 {fast}"
    );
}

/// Makes block writes fail: staging becomes a file.
fn block_staging(staging: &std::path::Path) {
    std::fs::remove_dir_all(staging).expect("rm staging");
    std::fs::write(staging, b"not a dir").expect("block staging");
}

#[test]
fn a_failed_block_write_keeps_the_lines_readable_and_in_the_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = t0();
    let staging = dir.path().join("staging");
    {
        let db = LogDb::open(opts(dir.path())).expect("open");
        db.push_blocking(push("t", &[("app", "a")], vec![LogEntry::new(base, "first")]))
            .expect("push");
        block_staging(&staging);
        assert!(db.flush().is_err(), "the block cannot be written");
        assert_eq!(all(&db, "t")[0].1, vec![(base, "first".into())], "still readable");
        db.push_blocking(push("t", &[("app", "a")], vec![LogEntry::new(base + 1, "second")]))
            .expect("push");
        assert!(db.flush().is_err(), "still failing");
        // A crash now: both lines must come back from the WAL.
    }
    std::fs::remove_file(&staging).expect("unblock staging");
    let db = LogDb::open(opts(dir.path())).expect("reopen");
    let want = vec![(base, "first".to_string()), (base + 1, "second".to_string())];
    assert_eq!(all(&db, "t")[0].1, want);
    db.flush().expect("flush");
    drop(db);
    let db = LogDb::open(opts(dir.path())).expect("reopen");
    assert_eq!(all(&db, "t")[0].1, want);
}

#[test]
fn a_later_cut_retries_an_earlier_failed_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = t0();
    let staging = dir.path().join("staging");
    let db = LogDb::open(opts(dir.path())).expect("open");
    db.push_blocking(push("t", &[("app", "a")], vec![LogEntry::new(base, "first")]))
        .expect("push");
    block_staging(&staging);
    assert!(db.flush().is_err());
    std::fs::remove_file(&staging).expect("unblock");
    std::fs::create_dir(&staging).expect("staging");
    db.push_blocking(push("t", &[("app", "a")], vec![LogEntry::new(base + 1, "second")]))
        .expect("push");
    db.flush().expect("both heads written");
    assert_eq!(db.block_metas().len(), 2);
    drop(db);
    let db = LogDb::open(opts(dir.path())).expect("reopen");
    assert_eq!(
        all(&db, "t")[0].1,
        vec![(base, "first".into()), (base + 1, "second".into())]
    );
}

/// Blocks of a line-filtered read are read in parallel: every block's
/// entries come back, merged per stream in time order, and the byte limit
/// counts all blocks' lines together.
#[test]
fn reads_across_blocks_are_complete_and_share_the_byte_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = LogDb::open(opts(dir.path())).expect("open");
    let base = t0();
    // Four blocks, each with lines of both streams.
    for block in 0..4i64 {
        for app in ["a", "b"] {
            let entries = (0..10)
                .map(|i| LogEntry::new(base + block * 10 + i, format!("{app} line {:02}", block * 10 + i)))
                .collect();
            db.push_blocking(push("t", &[("app", app)], entries)).expect("push");
        }
        db.flush().expect("flush");
    }
    // A line filter every line passes: the parallel read.
    let mut q = LogSelect::new("t", vec![], base, base + 100);
    q.contains = vec![" line ".into()];
    let got = flat(db.select(&q).expect("select"));
    assert_eq!(got.len(), 2);
    for (i, (_, entries)) in got.iter().enumerate() {
        let app = ["a", "b"][i];
        let want: Vec<(i64, String)> = (0..40).map(|k| (base + k, format!("{app} line {k:02}"))).collect();
        assert_eq!(entries, &want, "stream {app}");
    }
    // 80 lines of 9 bytes, 720 in all: no single block reads more than
    // 180, so only a count shared by the blocks passes a limit of 700.
    let mut limited = q.clone();
    limited.max_bytes = 700;
    let err = db.select(&limited).expect_err("over the limit");
    assert!(matches!(err, crate::StorageError::LimitExceeded(_)), "{err}");
    limited.max_bytes = 720;
    assert_eq!(flat(db.select(&limited).expect("within the limit")), got);
    // Without line filters (read one block at a time): the same entries.
    let unfiltered = LogSelect::new("t", vec![], base, base + 100);
    assert_eq!(flat(db.select(&unfiltered).expect("select")), got);
}
