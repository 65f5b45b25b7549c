//! The write-ahead log: every accepted sample is written here, and (unless
//! configured otherwise) fsynced, before the write is acknowledged.
//!
//! One background thread owns the open segment. Writers hand it encoded
//! records over a bounded channel and wait for an acknowledgement; the
//! thread writes everything that queued up meanwhile and fsyncs once for
//! the whole group (group commit). See `storage/FORMAT.md` for the bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use tokio::sync::oneshot;

use crate::error::{Result, StorageError};
use crate::labels::{Label, Labels};
use crate::sample::Sample;
use crate::stats::StorageStats;

/// Magic bytes at the start of every segment.
pub const SEGMENT_MAGIC: &[u8; 5] = b"SLWAL";
/// Segment format version written in every header.
pub const SEGMENT_VERSION: u8 = 1;
const HEADER_LEN: usize = 8;
const RECORD_HEADER_LEN: usize = 8;
/// Largest record accepted on replay; anything larger is corruption.
const MAX_RECORD_LEN: u32 = 256 << 20;

const TYPE_SERIES: u8 = 1;
const TYPE_SAMPLES: u8 = 2;
/// Samples of which some have start timestamps: as [`TYPE_SAMPLES`], each
/// sample followed by its start timestamp's change from the previous one.
const TYPE_SAMPLES_WITH_START: u8 = 3;

/// How the WAL behaves.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Directory holding the segments.
    pub dir: PathBuf,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// fsync before acknowledging (the durable default). When false, a
    /// crash of the machine (not of the process) may lose recent writes.
    pub fsync: bool,
}

/// A decoded WAL record.
#[derive(Debug, Clone, PartialEq)]
pub enum WalEntry {
    /// Series definitions: reference and labels.
    Series(Vec<(u64, Labels)>),
    /// Samples, each for a series defined earlier in the log.
    Samples(Vec<(u64, Sample)>),
}

/// Appends a framed series record to `out`.
pub fn encode_series(out: &mut Vec<u8>, series: &[(u64, &Labels)]) {
    frame(out, TYPE_SERIES, |p| {
        put_uvarint(p, series.len() as u64);
        for (r, labels) in series {
            put_uvarint(p, *r);
            put_uvarint(p, labels.len() as u64);
            for l in labels.iter() {
                put_bytes(p, l.name.as_bytes());
                put_bytes(p, l.value.as_bytes());
            }
        }
    });
}

/// Appends a framed samples record to `out`.
pub fn encode_samples(out: &mut Vec<u8>, samples: &[(u64, Sample)]) {
    if samples.is_empty() {
        return;
    }
    let with_start = samples.iter().any(|(_, s)| s.st != 0);
    let kind = if with_start {
        TYPE_SAMPLES_WITH_START
    } else {
        TYPE_SAMPLES
    };
    frame(out, kind, |p| {
        put_uvarint(p, samples.len() as u64);
        let (mut prev_t, mut prev_st) = (0i64, 0i64);
        for (r, s) in samples {
            put_uvarint(p, *r);
            put_uvarint(p, zigzag(s.t.wrapping_sub(prev_t)));
            prev_t = s.t;
            p.extend_from_slice(&s.v.to_bits().to_le_bytes());
            if with_start {
                put_uvarint(p, zigzag(s.st.wrapping_sub(prev_st)));
                prev_st = s.st;
            }
        }
    });
}

/// Appends one framed record of type `kind` whose payload `body` writes.
///
/// Record types below 16 belong to the metrics WAL; the logs WAL uses its
/// own types (see `storage/FORMAT.md`).
pub fn frame(out: &mut Vec<u8>, kind: u8, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
    out.push(kind);
    body(out);
    let len = u32::try_from(out.len() - start - RECORD_HEADER_LEN).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(&out[start + RECORD_HEADER_LEN..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Maps a signed integer to an unsigned one, small magnitudes first.
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The inverse of [`zigzag`].
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `b` prefixed by its length as a varint.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A cursor over a record payload; every read fails cleanly on truncation.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// Reads an unsigned varint.
    pub fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            if shift >= 64 {
                return None;
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
            shift += 7;
        }
    }
    /// Reads a length-prefixed byte string.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.uvarint()?).ok()?;
        let end = self.pos.checked_add(n)?;
        let b = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(b)
    }
    /// Reads a length-prefixed UTF-8 string.
    pub fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    /// Reads a little-endian u64.
    pub fn u64_le(&mut self) -> Option<u64> {
        let b = self.buf.get(self.pos..self.pos + 8)?;
        self.pos += 8;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
}

fn decode_payload(kind: u8, payload: &[u8]) -> Option<WalEntry> {
    let mut r = Reader { buf: payload, pos: 0 };
    let n = r.uvarint()?;
    // Each entry takes at least two bytes: reject absurd counts early.
    if n > payload.len() as u64 {
        return None;
    }
    match kind {
        TYPE_SERIES => {
            let mut out = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let sref = r.uvarint()?;
                let nl = r.uvarint()?;
                if nl > payload.len() as u64 {
                    return None;
                }
                let mut labels = Vec::with_capacity(nl as usize);
                for _ in 0..nl {
                    labels.push(Label::new(r.string()?, r.string()?));
                }
                out.push((sref, Labels::from_pairs(labels.into_iter().map(|l| (l.name, l.value)))));
            }
            Some(WalEntry::Series(out))
        }
        TYPE_SAMPLES | TYPE_SAMPLES_WITH_START => {
            let mut out = Vec::with_capacity(n as usize);
            let (mut t, mut st) = (0i64, 0i64);
            for _ in 0..n {
                let sref = r.uvarint()?;
                t = t.wrapping_add(unzigzag(r.uvarint()?));
                let v = f64::from_bits(r.u64_le()?);
                if kind == TYPE_SAMPLES_WITH_START {
                    st = st.wrapping_add(unzigzag(r.uvarint()?));
                }
                out.push((sref, Sample::with_start(t, v, st)));
            }
            Some(WalEntry::Samples(out))
        }
        _ => None,
    }
}

/// Segment file name for number `n`.
fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:010}.wal"))
}

/// The numbers of the segments in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StorageError::io("read dir", dir, e)),
    };
    for entry in rd {
        let entry = entry.map_err(|e| StorageError::io("read dir", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(num) = name.strip_suffix(".wal").and_then(|s| s.parse::<u64>().ok()) {
            out.push(num);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// What replay found.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayReport {
    /// Records applied.
    pub records: u64,
    /// Corrupt or torn regions cut off.
    pub corruptions: u64,
    /// Highest segment number seen.
    pub last_segment: Option<u64>,
}

/// Reads every segment in order and hands each record to `apply`.
///
/// A torn or corrupt record ends its segment: in the last segment the
/// file is truncated there (a crash mid-write leaves exactly that), in an
/// earlier one the rest of that segment is skipped. Both are logged as
/// warnings; neither stops the start-up.
pub fn replay(dir: &Path, mut apply: impl FnMut(WalEntry)) -> Result<ReplayReport> {
    replay_raw(dir, |kind, payload| match decode_payload(kind, payload) {
        Some(entry) => {
            apply(entry);
            true
        }
        None => false,
    })
}

/// Like [`replay`], for any record types: `apply` gets each record's type
/// and payload and answers whether it could decode it (a record it cannot
/// decode is treated as corruption).
pub fn replay_raw(dir: &Path, mut apply: impl FnMut(u8, &[u8]) -> bool) -> Result<ReplayReport> {
    let segments = list_segments(dir)?;
    let mut report = ReplayReport {
        last_segment: segments.last().copied(),
        ..Default::default()
    };
    for (i, &num) in segments.iter().enumerate() {
        let path = segment_path(dir, num);
        let data = fs::read(&path).map_err(|e| StorageError::io("read", &path, e))?;
        let is_last = i + 1 == segments.len();
        let good_end = replay_segment(&data, &path, &mut apply, &mut report);
        if good_end < data.len() {
            report.corruptions += 1;
            if is_last {
                tracing::warn!(segment = %path.display(), offset = good_end, size = data.len(),
                    "wal: cutting off torn or corrupt tail");
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| StorageError::io("open", &path, e))?;
                f.set_len(good_end as u64)
                    .map_err(|e| StorageError::io("truncate", &path, e))?;
                f.sync_all().map_err(|e| StorageError::io("fsync", &path, e))?;
            } else {
                tracing::warn!(segment = %path.display(), offset = good_end, size = data.len(),
                    "wal: corrupt record in a closed segment; skipping the rest of it");
            }
        }
    }
    Ok(report)
}

/// Applies the valid records of one segment; returns the offset where the
/// valid data ends.
fn replay_segment(
    data: &[u8],
    path: &Path,
    apply: &mut impl FnMut(u8, &[u8]) -> bool,
    report: &mut ReplayReport,
) -> usize {
    if data.len() < HEADER_LEN || &data[..5] != SEGMENT_MAGIC {
        tracing::warn!(segment = %path.display(), "wal: segment has no valid header");
        return 0;
    }
    if data[5] != SEGMENT_VERSION {
        tracing::warn!(segment = %path.display(), version = data[5], "wal: unknown segment version");
        return 0;
    }
    let mut pos = HEADER_LEN;
    while pos + RECORD_HEADER_LEN <= data.len() {
        let len = u32::from_le_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]);
        let crc = u32::from_le_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]]);
        if len == 0 || len > MAX_RECORD_LEN {
            return pos;
        }
        let body_start = pos + RECORD_HEADER_LEN;
        let Some(body) = data.get(body_start..body_start + len as usize) else {
            return pos;
        };
        if crc32fast::hash(body) != crc {
            return pos;
        }
        if !apply(body[0], &body[1..]) {
            return pos;
        }
        report.records += 1;
        pos = body_start + len as usize;
    }
    pos
}

enum Msg {
    Write {
        bytes: Vec<u8>,
        ack: oneshot::Sender<Result<(), String>>,
    },
    /// Start a new segment whose first record is `checkpoint`; answers the
    /// new segment's number. Segments below it may be deleted once the data
    /// they hold is durable elsewhere.
    Rotate {
        checkpoint: Vec<u8>,
        ack: oneshot::Sender<Result<u64, String>>,
    },
}

/// Handle to the WAL writer thread. Cloning shares the same writer.
#[derive(Clone)]
pub struct Wal {
    tx: Sender<Msg>,
    dir: PathBuf,
}

/// A pending acknowledgement for a write: resolves once the record is
/// written (and fsynced, when configured).
pub struct WalAck(oneshot::Receiver<Result<(), String>>);

impl WalAck {
    /// Waits for durability.
    pub async fn wait(self) -> Result<()> {
        match self.0.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StorageError::WalUnavailable(e)),
            Err(_) => Err(StorageError::WalUnavailable("wal writer stopped".into())),
        }
    }

    /// Blocking variant of [`WalAck::wait`] for non-async callers.
    pub fn wait_blocking(self) -> Result<()> {
        match self.0.blocking_recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StorageError::WalUnavailable(e)),
            Err(_) => Err(StorageError::WalUnavailable("wal writer stopped".into())),
        }
    }
}

impl Wal {
    /// Starts the writer thread on a fresh segment numbered `first_segment`.
    pub fn start(opts: WalOptions, first_segment: u64, stats: Arc<StorageStats>) -> Result<Self> {
        fs::create_dir_all(&opts.dir).map_err(|e| StorageError::io("create dir", &opts.dir, e))?;
        let segment = Segment::create(&opts.dir, first_segment)?;
        let (tx, rx) = crossbeam_channel::bounded(4096);
        let dir = opts.dir.clone();
        std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || writer_loop(opts, segment, rx, stats))
            .map_err(|e| StorageError::io("spawn wal thread", &dir, e))?;
        Ok(Wal { tx, dir })
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queues already-framed records; the returned ack resolves when they
    /// are durable. Blocks while the queue is full (backpressure).
    pub fn write(&self, bytes: Vec<u8>) -> WalAck {
        let (ack, rx) = oneshot::channel();
        if let Err(crossbeam_channel::SendError(Msg::Write { ack, .. })) = self.tx.send(Msg::Write { bytes, ack }) {
            let _ = ack.send(Err("wal writer stopped".into()));
        }
        WalAck(rx)
    }

    /// Queues nothing; the ack resolves once every record queued before
    /// this call is durable.
    pub fn sync(&self) -> WalAck {
        self.write(Vec::new())
    }

    /// Closes the current segment and starts a new one beginning with
    /// `checkpoint` (framed series records); returns the new number.
    pub fn rotate(&self, checkpoint: Vec<u8>) -> oneshot::Receiver<Result<u64, String>> {
        let (ack, rx) = oneshot::channel();
        if let Err(crossbeam_channel::SendError(Msg::Rotate { ack, .. })) =
            self.tx.send(Msg::Rotate { checkpoint, ack })
        {
            let _ = ack.send(Err("wal writer stopped".into()));
        }
        rx
    }

    /// Deletes every segment numbered below `segment`.
    pub fn remove_segments_before(&self, segment: u64) -> Result<()> {
        for n in list_segments(&self.dir)? {
            if n < segment {
                let p = segment_path(&self.dir, n);
                fs::remove_file(&p).map_err(|e| StorageError::io("remove", &p, e))?;
            }
        }
        Ok(())
    }

    /// Total bytes of segment files.
    pub fn disk_bytes(&self) -> u64 {
        list_segments(&self.dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| fs::metadata(segment_path(&self.dir, n)).ok())
            .map(|m| m.len())
            .sum()
    }
}

struct Segment {
    number: u64,
    path: PathBuf,
    out: BufWriter<File>,
    size: u64,
}

impl Segment {
    fn create(dir: &Path, number: u64) -> Result<Self> {
        let path = segment_path(dir, number);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|e| StorageError::io("create", &path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut header = [0u8; HEADER_LEN];
        header[..5].copy_from_slice(SEGMENT_MAGIC);
        header[5] = SEGMENT_VERSION;
        out.write_all(&header)
            .map_err(|e| StorageError::io("write", &path, e))?;
        out.flush().map_err(|e| StorageError::io("write", &path, e))?;
        out.get_ref()
            .sync_all()
            .map_err(|e| StorageError::io("fsync", &path, e))?;
        sync_dir(dir)?;
        Ok(Segment {
            number,
            path,
            out,
            size: HEADER_LEN as u64,
        })
    }

    fn append(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.out.write_all(b)?;
        self.size += b.len() as u64;
        Ok(())
    }

    fn commit(&mut self, fsync: bool, stats: &StorageStats) -> std::io::Result<()> {
        self.out.flush()?;
        if fsync {
            let start = Instant::now();
            self.out.get_ref().sync_data()?;
            stats.wal_fsync_seconds.observe(start.elapsed());
        }
        Ok(())
    }
}

/// fsyncs a directory so that new or renamed entries in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("fsync dir", dir, e))
}

fn writer_loop(opts: WalOptions, mut seg: Segment, rx: Receiver<Msg>, stats: Arc<StorageStats>) {
    // Once a write fails the log is poisoned: later writes are refused
    // rather than acknowledged on top of a hole.
    let mut failed: Option<String> = None;
    let mut pending: Vec<oneshot::Sender<Result<(), String>>> = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        let mut drained = 0usize;
        while let Some(msg) = next.take() {
            match msg {
                Msg::Write { bytes, ack } => {
                    if failed.is_none() {
                        if let Err(e) = seg.append(&bytes) {
                            failed = Some(format!("write {}: {e}", seg.path.display()));
                        } else {
                            stats.wal_bytes_written.add(bytes.len() as u64);
                        }
                    }
                    pending.push(ack);
                }
                Msg::Rotate { checkpoint, ack } => {
                    commit_group(&mut seg, &opts, &stats, &mut failed, &mut pending);
                    let result = match &failed {
                        Some(e) => Err(e.clone()),
                        None => rotate(&opts, &mut seg, &checkpoint, &stats).map_err(|e| e.to_string()),
                    };
                    if let Err(e) = &result {
                        failed.get_or_insert_with(|| e.clone());
                    }
                    let _ = ack.send(result);
                }
            }
            drained += 1;
            if drained < 1024 {
                next = rx.try_recv().ok();
            }
        }
        commit_group(&mut seg, &opts, &stats, &mut failed, &mut pending);
        if failed.is_none() && seg.size >= opts.segment_bytes {
            // Size-based cut: earlier segments stay until a head flush, so
            // the new segment needs no series checkpoint.
            match Segment::create(&opts.dir, seg.number + 1) {
                Ok(s) => seg = s,
                Err(e) => failed = Some(e.to_string()),
            }
        }
    }
    let _ = seg.commit(opts.fsync, &stats);
}

fn commit_group(
    seg: &mut Segment,
    opts: &WalOptions,
    stats: &StorageStats,
    failed: &mut Option<String>,
    pending: &mut Vec<oneshot::Sender<Result<(), String>>>,
) {
    if pending.is_empty() {
        return;
    }
    if failed.is_none()
        && let Err(e) = seg.commit(opts.fsync, stats)
    {
        *failed = Some(format!("commit {}: {e}", seg.path.display()));
    }
    if let Some(e) = failed {
        tracing::error!(error = %e, "wal: write failed; refusing writes until restart");
    }
    for ack in pending.drain(..) {
        let _ = ack.send(match failed {
            None => Ok(()),
            Some(e) => Err(e.clone()),
        });
    }
}

fn rotate(opts: &WalOptions, seg: &mut Segment, checkpoint: &[u8], stats: &StorageStats) -> Result<u64> {
    let mut next = Segment::create(&opts.dir, seg.number + 1)?;
    next.append(checkpoint)
        .and_then(|_| next.commit(true, stats))
        .map_err(|e| StorageError::io("write", &next.path, e))?;
    *seg = next;
    Ok(seg.number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path) -> WalOptions {
        WalOptions {
            dir: dir.to_path_buf(),
            segment_bytes: 1 << 20,
            fsync: true,
        }
    }

    fn read_all(dir: &Path) -> (Vec<WalEntry>, ReplayReport) {
        let mut got = Vec::new();
        let rep = replay(dir, |e| got.push(e)).expect("replay");
        (got, rep)
    }

    #[test]
    fn records_round_trip_through_a_segment() {
        let tmp = tempfile::tempdir().expect("tmp");
        let stats = Arc::new(StorageStats::default());
        let wal = Wal::start(opts(tmp.path()), 1, stats).expect("start");
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "x")]);
        let mut buf = Vec::new();
        encode_series(&mut buf, &[(7, &labels)]);
        let stale = f64::from_bits(crate::sample::STALE_NAN_BITS);
        encode_samples(&mut buf, &[(7, Sample::new(1000, 1.5)), (7, Sample::new(-5, stale))]);
        let with_start = [(7, Sample::with_start(2000, 2.5, 100)), (8, Sample::new(2000, 1.0))];
        encode_samples(&mut buf, &with_start);
        wal.write(buf).wait_blocking().expect("ack");
        drop(wal);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (got, rep) = read_all(tmp.path());
        assert_eq!(rep.corruptions, 0);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], WalEntry::Series(vec![(7, labels)]));
        let WalEntry::Samples(s) = &got[1] else {
            panic!("samples")
        };
        assert_eq!(s[0], (7, Sample::new(1000, 1.5)));
        assert_eq!(s[1].1.t, -5);
        assert_eq!(s[1].1.v.to_bits(), crate::sample::STALE_NAN_BITS);
        assert_eq!(got[2], WalEntry::Samples(with_start.to_vec()));
    }

    #[test]
    fn torn_tail_is_cut_off_and_earlier_records_survive() {
        let tmp = tempfile::tempdir().expect("tmp");
        let stats = Arc::new(StorageStats::default());
        let wal = Wal::start(opts(tmp.path()), 3, stats).expect("start");
        for i in 0..10 {
            let mut buf = Vec::new();
            encode_samples(&mut buf, &[(1, Sample::new(i, i as f64))]);
            wal.write(buf).wait_blocking().expect("ack");
        }
        drop(wal);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let path = segment_path(tmp.path(), 3);
        let full = fs::metadata(&path).expect("meta").len();
        // Tear the last record in half, then corrupt a byte of the 9th.
        let f = OpenOptions::new().write(true).open(&path).expect("open");
        f.set_len(full - 5).expect("truncate");
        drop(f);
        let (got, rep) = read_all(tmp.path());
        assert_eq!(got.len(), 9);
        assert_eq!(rep.corruptions, 1);
        // The file was cut back to the last good record: a second replay is clean.
        let (got2, rep2) = read_all(tmp.path());
        assert_eq!(got2.len(), 9);
        assert_eq!(rep2.corruptions, 0);

        let mut data = fs::read(&path).expect("read");
        let n = data.len();
        data[n - 3] ^= 0xff;
        fs::write(&path, &data).expect("write");
        let (got3, rep3) = read_all(tmp.path());
        assert_eq!(got3.len(), 8);
        assert_eq!(rep3.corruptions, 1);
    }

    #[test]
    fn garbage_segment_is_skipped_without_error() {
        let tmp = tempfile::tempdir().expect("tmp");
        fs::write(segment_path(tmp.path(), 1), b"not a wal at all").expect("write");
        let (got, rep) = read_all(tmp.path());
        assert!(got.is_empty());
        assert_eq!(rep.corruptions, 1);
    }

    #[test]
    fn rotation_starts_with_checkpoint_and_old_segments_can_go() {
        let tmp = tempfile::tempdir().expect("tmp");
        let stats = Arc::new(StorageStats::default());
        let wal = Wal::start(opts(tmp.path()), 1, stats).expect("start");
        let labels = Labels::from_pairs([("__name__", "up")]);
        let mut cp = Vec::new();
        encode_series(&mut cp, &[(1, &labels)]);
        let n = wal.rotate(cp).blocking_recv().expect("ack").expect("rotate");
        assert_eq!(n, 2);
        wal.remove_segments_before(n).expect("remove");
        assert_eq!(list_segments(tmp.path()).expect("list"), vec![2]);
        let (got, _) = read_all(tmp.path());
        assert_eq!(got, vec![WalEntry::Series(vec![(1, labels)])]);
    }
}
