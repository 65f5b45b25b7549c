//! The agent's on-disk buffer: what it scraped but no site has
//! acknowledged yet, so a site outage (or an agent restart) loses nothing
//! within the size limit.
//!
//! Records (one remote-write request body each) are appended to segment
//! files `NNNNNNNNNNNNNNNNNNNN.seg`: `len u32 | samples u32 | crc32 u32 |
//! body`, little-endian. A cursor file (`cursor`, replaced atomically)
//! holds the segment and offset of the first record not yet acknowledged;
//! a fully acknowledged segment is deleted. When the buffer would exceed
//! its size limit, the oldest segment is dropped and its samples counted
//! (`dropped_samples`), never silently. A torn record at the end of the
//! last segment (a crash mid-append) is cut off at open. Delivery is at
//! least once: a record sent but not yet acknowledged when the agent
//! dies is sent again, and the ingest side stores a repeated sample once.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

const HEADER: usize = 12;
const CURSOR_FILE: &str = "cursor";

/// A position in the buffer: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    /// Segment number.
    pub segment: u64,
    /// Byte offset of a record in the segment.
    pub offset: u64,
}

#[derive(Debug)]
struct Segment {
    id: u64,
    bytes: u64,
    samples: u64,
}

#[derive(Debug)]
struct State {
    segments: VecDeque<Segment>,
    writer: Option<File>,
    read: Cursor,
}

/// A bounded, persistent FIFO of encoded batches.
#[derive(Debug)]
pub struct DiskBuffer {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    state: Mutex<State>,
    notify: Notify,
    /// Samples dropped because the buffer was full.
    pub dropped_samples: AtomicU64,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

impl DiskBuffer {
    /// Opens (or creates) the buffer in `dir`, holding at most `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| io_err("cannot create", dir, e))?;
        let mut ids: Vec<u64> = std::fs::read_dir(dir)
            .map_err(|e| io_err("cannot list", dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
            .collect();
        ids.sort_unstable();
        let read = read_cursor(dir).unwrap_or(Cursor {
            segment: ids.first().copied().unwrap_or(0),
            offset: 0,
        });
        let mut segments = VecDeque::new();
        for (i, id) in ids.iter().copied().enumerate() {
            let path = segment_path(dir, id);
            if id < read.segment {
                // Acknowledged before a crash, not yet deleted.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let (valid, samples) = scan(&path)?;
            let len = std::fs::metadata(&path)
                .map_err(|e| io_err("cannot stat", &path, e))?
                .len();
            if valid < len {
                let last = i + 1 == ids.len();
                tracing::warn!(
                    segment = %path.display(),
                    kept = valid,
                    cut = len - valid,
                    last,
                    "agent buffer: torn or corrupt record cut off"
                );
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| io_err("cannot open", &path, e))?;
                f.set_len(valid).map_err(|e| io_err("cannot truncate", &path, e))?;
            }
            segments.push_back(Segment {
                id,
                bytes: valid,
                samples,
            });
        }
        let max_bytes = max_bytes.max(1 << 16);
        Ok(DiskBuffer {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(1 << 14, 64 << 20),
            state: Mutex::new(State {
                segments,
                writer: None,
                read,
            }),
            notify: Notify::new(),
            dropped_samples: AtomicU64::new(0),
        })
    }

    /// Bytes held on disk.
    pub fn bytes(&self) -> u64 {
        self.state.lock().segments.iter().map(|s| s.bytes).sum()
    }

    /// Appends one batch (`samples` samples); drops the oldest segments
    /// when the buffer is over its limit.
    pub fn push(&self, body: &[u8], samples: u32) -> Result<(), String> {
        let mut st = self.state.lock();
        let need_new = match st.segments.back() {
            None => true,
            Some(s) => s.bytes + (HEADER + body.len()) as u64 > self.segment_bytes && s.bytes > 0,
        };
        if need_new || st.writer.is_none() {
            let id = if need_new {
                st.segments.back().map_or(st.read.segment, |s| s.id + 1)
            } else {
                st.segments.back().map_or(0, |s| s.id)
            };
            let path = segment_path(&self.dir, id);
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| io_err("cannot open", &path, e))?;
            st.writer = Some(f);
            if need_new {
                st.segments.push_back(Segment {
                    id,
                    bytes: 0,
                    samples: 0,
                });
            }
        }
        let len = u32::try_from(body.len()).map_err(|_| "batch too large for the buffer".to_string())?;
        let mut rec = Vec::with_capacity(HEADER + body.len());
        rec.extend_from_slice(&len.to_le_bytes());
        rec.extend_from_slice(&samples.to_le_bytes());
        rec.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        rec.extend_from_slice(body);
        if let Some(w) = st.writer.as_mut() {
            w.write_all(&rec)
                .map_err(|e| format!("cannot append to the agent buffer: {e}"))?;
        }
        if let Some(s) = st.segments.back_mut() {
            s.bytes += rec.len() as u64;
            s.samples += u64::from(samples);
        }
        // Over the limit: the oldest segment goes (never the one written).
        while st.segments.iter().map(|s| s.bytes).sum::<u64>() > self.max_bytes && st.segments.len() > 1 {
            if let Some(old) = st.segments.pop_front() {
                let unsent = if old.id == st.read.segment && st.read.offset > 0 {
                    // Part of it was sent already; count what was not.
                    count_from(&segment_path(&self.dir, old.id), st.read.offset).unwrap_or(old.samples)
                } else {
                    old.samples
                };
                self.dropped_samples.fetch_add(unsent, Ordering::Relaxed);
                let _ = std::fs::remove_file(segment_path(&self.dir, old.id));
                if st.read.segment <= old.id {
                    st.read = Cursor {
                        segment: old.id + 1,
                        offset: 0,
                    };
                }
                tracing::warn!(
                    segment = old.id,
                    samples = unsent,
                    "agent buffer full: oldest data dropped"
                );
            }
        }
        drop(st);
        self.notify.notify_one();
        Ok(())
    }

    /// The oldest unacknowledged batch, its item count and where the next
    /// one starts; waits until there is one.
    pub async fn next(&self) -> Result<(Vec<u8>, u32, Cursor), String> {
        loop {
            let notified = self.notify.notified();
            if let Some(found) = self.peek()? {
                return Ok(found);
            }
            notified.await;
        }
    }

    fn peek(&self) -> Result<Option<(Vec<u8>, u32, Cursor)>, String> {
        let mut st = self.state.lock();
        loop {
            let read = st.read;
            let Some(seg) = st.segments.iter().find(|s| s.id == read.segment) else {
                // The cursor points past the segments (all sent, or dropped).
                match st.segments.iter().find(|s| s.id > read.segment) {
                    Some(s) => {
                        st.read = Cursor {
                            segment: s.id,
                            offset: 0,
                        };
                        continue;
                    }
                    None => return Ok(None),
                }
            };
            if read.offset < seg.bytes {
                let path = segment_path(&self.dir, seg.id);
                let (body, items, next) = read_record(&path, read.offset)?;
                return Ok(Some((
                    body,
                    items,
                    Cursor {
                        segment: seg.id,
                        offset: next,
                    },
                )));
            }
            let is_last = st.segments.back().is_some_and(|s| s.id == seg.id);
            if is_last {
                return Ok(None);
            }
            // This segment is done: move on (it is deleted at the ack).
            st.read = Cursor {
                segment: seg.id + 1,
                offset: 0,
            };
        }
    }

    /// Marks everything before `upto` delivered: saves the cursor and
    /// deletes segments that are fully delivered.
    pub fn ack(&self, upto: Cursor) -> Result<(), String> {
        let mut st = self.state.lock();
        if upto > st.read {
            st.read = upto;
        }
        write_cursor(&self.dir, st.read)?;
        while let Some(front) = st.segments.front() {
            let done = front.id < st.read.segment
                || (front.id == st.read.segment && st.read.offset >= front.bytes && st.segments.len() > 1);
            if !done {
                break;
            }
            let id = front.id;
            st.segments.pop_front();
            let _ = std::fs::remove_file(segment_path(&self.dir, id));
        }
        Ok(())
    }
}

/// Valid bytes and samples of a segment (stops at the first bad record).
fn scan(path: &Path) -> Result<(u64, u64), String> {
    let data = std::fs::read(path).map_err(|e| io_err("cannot read", path, e))?;
    Ok(scan_bytes(&data))
}

/// Samples in the records of a segment from `offset` on.
fn count_from(path: &Path, offset: u64) -> Result<u64, String> {
    let data = std::fs::read(path).map_err(|e| io_err("cannot read", path, e))?;
    Ok(scan_bytes(data.get(offset as usize..).unwrap_or_default()).1)
}

/// Length and samples of the valid records at the start of `data`.
fn scan_bytes(data: &[u8]) -> (u64, u64) {
    let word = |at: usize| u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
    let (mut pos, mut samples) = (0usize, 0u64);
    while pos + HEADER <= data.len() {
        let (len, n, crc) = (word(pos) as usize, word(pos + 4), word(pos + 8));
        let Some(body) = data.get(pos + HEADER..pos + HEADER + len) else {
            break;
        };
        if crc32fast::hash(body) != crc {
            break;
        }
        samples += u64::from(n);
        pos += HEADER + len;
    }
    (pos as u64, samples)
}

fn read_record(path: &Path, offset: u64) -> Result<(Vec<u8>, u32, u64), String> {
    let mut f = File::open(path).map_err(|e| io_err("cannot open", path, e))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| io_err("cannot seek", path, e))?;
    let mut head = [0u8; HEADER];
    f.read_exact(&mut head).map_err(|e| io_err("cannot read", path, e))?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    let mut body = vec![0u8; len];
    f.read_exact(&mut body).map_err(|e| io_err("cannot read", path, e))?;
    if crc32fast::hash(&body) != crc {
        return Err(format!("agent buffer record at {}:{offset} is corrupt", path.display()));
    }
    let items = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    Ok((body, items, offset + (HEADER + len) as u64))
}

fn read_cursor(dir: &Path) -> Option<Cursor> {
    let text = std::fs::read_to_string(dir.join(CURSOR_FILE)).ok()?;
    let (s, o) = text.trim().split_once(' ')?;
    Some(Cursor {
        segment: s.parse().ok()?,
        offset: o.parse().ok()?,
    })
}

fn write_cursor(dir: &Path, c: Cursor) -> Result<(), String> {
    let tmp = dir.join("cursor.tmp");
    std::fs::write(&tmp, format!("{} {}\n", c.segment, c.offset)).map_err(|e| io_err("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, dir.join(CURSOR_FILE)).map_err(|e| io_err("cannot rename", &tmp, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_come_out_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        let b = DiskBuffer::open(dir.path(), 1 << 20).expect("open");
        for i in 0..5u8 {
            b.push(&[i; 100], 10).expect("push");
        }
        let (first, _, c1) = b.next().await.expect("next");
        assert_eq!(first, vec![0u8; 100]);
        b.ack(c1).expect("ack");
        let (second, _, _) = b.next().await.expect("next");
        assert_eq!(second, vec![1u8; 100]);
        drop(b);
        // Not acknowledged: the second batch comes again after a restart.
        let b = DiskBuffer::open(dir.path(), 1 << 20).expect("reopen");
        let mut got = Vec::new();
        for _ in 0..4 {
            let (body, _, c) = b.next().await.expect("next");
            got.push(body[0]);
            b.ack(c).expect("ack");
        }
        assert_eq!(got, vec![1, 2, 3, 4]);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), b.next())
                .await
                .is_err(),
            "nothing left"
        );
    }

    #[tokio::test]
    async fn a_full_buffer_drops_the_oldest_and_counts_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let b = DiskBuffer::open(dir.path(), 1 << 16).expect("open");
        for i in 0..40u32 {
            b.push(&[(i % 251) as u8; 4000], 7).expect("push");
        }
        assert!(b.bytes() <= 1 << 16, "{} bytes", b.bytes());
        let dropped = b.dropped_samples.load(Ordering::Relaxed);
        assert!(dropped > 0 && dropped.is_multiple_of(7), "{dropped}");
        // What is left is the newest data, in order.
        let (body, _, _) = b.next().await.expect("next");
        let first_kept = u64::from(body[0]);
        assert_eq!(first_kept, dropped / 7, "the oldest batches went first");
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().expect("tmp");
        let b = DiskBuffer::open(dir.path(), 1 << 20).expect("open");
        b.push(b"whole", 1).expect("push");
        drop(b);
        let seg = segment_path(dir.path(), 0);
        let mut f = OpenOptions::new().append(true).open(&seg).expect("open");
        f.write_all(&[200, 0, 0, 0, 1, 0]).expect("torn header");
        drop(f);
        let b = DiskBuffer::open(dir.path(), 1 << 20).expect("reopen");
        let (body, _, c) = b.next().await.expect("next");
        assert_eq!(body, b"whole");
        b.ack(c).expect("ack");
        b.push(b"after", 1).expect("push");
        let (body, _, _) = b.next().await.expect("next");
        assert_eq!(body, b"after");
    }
}
