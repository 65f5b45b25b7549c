//! Tailing log files: globs re-expanded at every poll, each file followed
//! by its identity (device and inode), so a rotated file (renamed, a new
//! one created) is read to its end and the new one from its start, and a
//! truncated file (copytruncate) is read again from its start. Positions
//! are kept in a file beside the buffer so a restarted agent neither
//! skips nor repeats lines.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where reading a file stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Device of the file.
    pub dev: u64,
    /// Inode of the file.
    pub ino: u64,
    /// Bytes consumed (always at a line end).
    pub offset: u64,
    /// A hash of the file's first bytes (up to [`FINGERPRINT_BYTES`], and
    /// not past `offset`): a file truncated and written again past the old
    /// offset (copytruncate) no longer matches and is read from its start.
    #[serde(default)]
    pub fingerprint: u64,
}

/// Bytes at the start of a file that identify its content.
pub const FINGERPRINT_BYTES: u64 = 256;

fn fingerprint(path: &Path, upto: u64) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut buf = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(upto.min(FINGERPRINT_BYTES)).read_to_end(&mut buf);
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    buf.hash(&mut h);
    h.finish()
}

/// Positions of every followed file, by path.
pub type Positions = BTreeMap<PathBuf, Position>;

/// Reads the saved positions (none when the file is missing or bad).
pub fn load_positions(path: &Path) -> Positions {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Saves positions atomically (write, then rename).
pub fn save_positions(path: &Path, p: &Positions) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let body = serde_json::to_vec(p).map_err(|e| format!("cannot encode positions: {e}"))?;
    std::fs::write(&tmp, body).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot rename {}: {e}", tmp.display()))
}

/// Most bytes read from one file per poll.
const MAX_READ: u64 = 4 << 20;

/// New complete lines of the files matching `globs`, with the positions
/// after them (to be saved once the lines are safe). A file seen for the
/// first time is read from its start; a line is only taken once its
/// newline is written.
pub fn poll(globs: &[String], positions: &Positions) -> (Vec<(PathBuf, Vec<String>)>, Positions) {
    let mut out = Vec::new();
    let mut next = Positions::new();
    // A file renamed by rotation keeps its inode: found under its new
    // name, it is read on from where it was, not again from the start.
    let by_inode: BTreeMap<(u64, u64), &Position> = positions.values().map(|p| ((p.dev, p.ino), p)).collect();
    for pattern in globs {
        let Ok(paths) = glob::glob(pattern) else {
            tracing::warn!(pattern = %pattern, "invalid log file pattern");
            continue;
        };
        for path in paths.flatten() {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let (dev, ino, len) = (meta.dev(), meta.ino(), meta.len());
            let known = match positions.get(&path) {
                Some(p) if p.dev == dev && p.ino == ino => Some(p),
                _ => by_inode.get(&(dev, ino)).copied(),
            };
            // Go on where we stopped, unless the file was truncated
            // (copytruncate: shorter, or its first bytes changed) or is
            // new (rotation created it).
            let start = known
                .filter(|p| p.offset <= len && p.fingerprint == fingerprint(&path, p.offset))
                .map_or(0, |p| p.offset);
            let (lines, consumed) = read_lines(&path, start, len).unwrap_or_else(|e| {
                tracing::warn!(file = %path.display(), error = %e, "cannot read log file");
                (Vec::new(), 0)
            });
            let offset = start + consumed;
            next.insert(
                path.clone(),
                Position {
                    dev,
                    ino,
                    offset,
                    fingerprint: fingerprint(&path, offset),
                },
            );
            if !lines.is_empty() {
                out.push((path, lines));
            }
        }
    }
    (out, next)
}

fn read_lines(path: &Path, start: u64, len: u64) -> std::io::Result<(Vec<String>, u64)> {
    if start >= len {
        return Ok((Vec::new(), 0));
    }
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take((len - start).min(MAX_READ)).read_to_end(&mut buf)?;
    let Some(last_nl) = buf.iter().rposition(|b| *b == b'\n') else {
        return Ok((Vec::new(), 0));
    };
    let lines = buf[..last_nl]
        .split(|b| *b == b'\n')
        .map(|l| String::from_utf8_lossy(l.strip_suffix(b"\r").unwrap_or(l)).into_owned())
        .collect();
    Ok((lines, last_nl as u64 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        f.write_all(text.as_bytes()).expect("write");
    }

    #[test]
    fn follows_appends_rotation_and_truncation_without_repeats() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("app.log");
        let globs = vec![dir.path().join("*.log").to_string_lossy().into_owned()];
        append(&log, "one\ntwo\npart");
        let (got, pos) = poll(&globs, &Positions::new());
        assert_eq!(got[0].1, vec!["one", "two"], "an unfinished line waits");
        append(&log, "ial\nthree\n");
        let (got, pos) = poll(&globs, &pos);
        assert_eq!(got[0].1, vec!["partial", "three"]);
        let (got, pos) = poll(&globs, &pos);
        assert!(got.is_empty(), "nothing new, nothing repeated");
        // Rotation within the glob: the renamed file is read on from where
        // it was, the new one from its start.
        append(&log, "late\n");
        std::fs::rename(&log, dir.path().join("app.1.log")).expect("rotate");
        append(&log, "four\n");
        let (got, pos) = poll(&globs, &pos);
        let mut lines: Vec<&str> = got.iter().flat_map(|(_, l)| l.iter().map(String::as_str)).collect();
        lines.sort_unstable();
        assert_eq!(lines, vec!["four", "late"]);
        std::fs::remove_file(dir.path().join("app.1.log")).expect("rm");
        // copytruncate: same inode, shorter.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .and_then(|f| f.set_len(0))
            .expect("truncate");
        append(&log, "five\n");
        let (got, pos) = poll(&globs, &pos);
        assert_eq!(got[0].1, vec!["five"]);
        // Positions survive a restart.
        let saved = dir.path().join("positions.json");
        save_positions(&saved, &pos).expect("save");
        append(&log, "six\n");
        let (got, _) = poll(&globs, &load_positions(&saved));
        assert_eq!(got[0].1, vec!["six"]);
    }
}
