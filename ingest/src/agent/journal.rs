//! Reads the systemd journal through `journalctl --output=json --follow`
//! (the journal's own reader, so every journal format and file layout
//! journald writes is read as journald means it).
//!
//! Entries keep their journal time; their stream labels are the
//! configured ones, the node's identity, `unit` (the systemd unit, else
//! the syslog identifier) and `level` (the syslog priority's name). The
//! journal cursor of the last entry in the log buffer is saved beside it,
//! and a restart continues after it, so a restart (or `kill -9`) neither
//! repeats nor skips (the storage drops an entry it already has, which
//! covers a crash between buffering and saving the cursor).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::buffer::DiskBuffer;
use super::{StreamEntries, StreamLabels, encode_streams};
use crate::syslog::SEVERITIES;

/// `journal:` in the agent's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// A journal directory to read (`journalctl --directory`, relative to
    /// the configuration file); default: the system's journal.
    #[serde(default)]
    pub directory: Option<PathBuf>,
    /// At the first start (no saved cursor), how far back to begin
    /// (default `7h`, as Promtail's `max_age`).
    #[serde(default = "default_max_age")]
    pub max_age: String,
    /// Stream labels of every entry (e.g. `job: journal`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_max_age() -> String {
    "7h".into()
}

/// One journal entry as the agent ships it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `__REALTIME_TIMESTAMP`, nanoseconds.
    pub t_ns: i64,
    /// `MESSAGE` (binary messages as lossy UTF-8).
    pub line: String,
    /// `_SYSTEMD_UNIT`, else `SYSLOG_IDENTIFIER`.
    pub unit: Option<String>,
    /// `PRIORITY` by name (`error`, `informational`, …).
    pub level: Option<&'static str>,
    /// `__CURSOR`: where the journal continues after this entry.
    pub cursor: String,
}

/// A field that journalctl writes as a string, or as an array of bytes
/// when it is not valid UTF-8 text.
fn text_field(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(bytes) => {
            let raw: Vec<u8> = bytes.iter().filter_map(|b| b.as_u64().map(|b| b as u8)).collect();
            Some(String::from_utf8_lossy(&raw).into_owned())
        }
        _ => None,
    }
}

/// Parses one line of `journalctl --output=json`; `Ok(None)` for an entry
/// without a message (nothing to ship).
pub fn parse_entry(json: &str) -> Result<Option<Entry>, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("not a journal JSON entry: {e}"))?;
    let cursor = v["__CURSOR"]
        .as_str()
        .ok_or("journal entry without __CURSOR")?
        .to_string();
    let t_us: i64 = v["__REALTIME_TIMESTAMP"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .ok_or("journal entry without a numeric __REALTIME_TIMESTAMP")?;
    let Some(line) = text_field(&v["MESSAGE"]) else {
        return Ok(None);
    };
    let unit = text_field(&v["_SYSTEMD_UNIT"]).or_else(|| text_field(&v["SYSLOG_IDENTIFIER"]));
    let level = v["PRIORITY"]
        .as_str()
        .and_then(|p| p.parse::<usize>().ok())
        .and_then(|p| SEVERITIES.get(p).copied());
    Ok(Some(Entry {
        t_ns: t_us.saturating_mul(1000),
        line,
        unit,
        level,
        cursor,
    }))
}

/// Entries per buffered batch, and the longest a batch waits to fill.
const BATCH_ENTRIES: usize = 1000;
const BATCH_WAIT: Duration = Duration::from_secs(1);

/// Reads the journal into `buffer` for ever, restarting `journalctl` when
/// it exits. Returns only when `journalctl` is not installed (logged: the
/// journal is read where there is one).
pub async fn run(cfg: JournalConfig, labels: Vec<(String, String)>, buffer: Arc<DiskBuffer>, cursor_path: PathBuf) {
    let since = match sightline_storage::parse_duration(&cfg.max_age) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(max_age = %cfg.max_age, error = %e, "journal.max_age is not a duration; reading the last 7h");
            Duration::from_secs(7 * 3600)
        }
    };
    loop {
        let cursor = std::fs::read_to_string(&cursor_path)
            .ok()
            .filter(|c| !c.trim().is_empty());
        let mut cmd = tokio::process::Command::new("journalctl");
        cmd.args([
            "--output=json",
            "--follow",
            "--no-tail",
            "--all",
            "--no-pager",
            "--quiet",
        ]);
        if let Some(dir) = &cfg.directory {
            cmd.arg(format!("--directory={}", dir.display()));
        }
        match &cursor {
            Some(c) => cmd.arg(format!("--after-cursor={}", c.trim())),
            None => {
                let from = sightline_storage::now_ms() / 1000 - since.as_secs() as i64;
                cmd.arg(format!("--since=@{from}"))
            }
        };
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!("journal: journalctl is not installed; the systemd journal is not read");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "journal: cannot start journalctl; retrying in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        if let Some(stdout) = child.stdout.take() {
            follow(BufReader::new(stdout), &labels, &buffer, &cursor_path).await;
        }
        let status = child.wait().await;
        let stderr = match child.stderr.take() {
            Some(mut e) => {
                let mut s = String::new();
                let _ = tokio::io::AsyncReadExt::read_to_string(&mut e, &mut s).await;
                s
            }
            None => String::new(),
        };
        tracing::warn!(status = ?status, stderr = %stderr.trim(), "journal: journalctl ended; starting it again in 5 s");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Reads entries until journalctl's output ends, buffering them in
/// batches and saving the cursor after each.
async fn follow<R: tokio::io::AsyncBufRead + Unpin>(
    mut reader: R,
    labels: &[(String, String)],
    buffer: &DiskBuffer,
    cursor_path: &Path,
) {
    let mut batch: Vec<Entry> = Vec::new();
    let mut last_cursor: Option<String> = None;
    let mut line = String::new();
    loop {
        line.clear();
        let read = if batch.is_empty() {
            reader.read_line(&mut line).await.map(Some)
        } else {
            match tokio::time::timeout(BATCH_WAIT, reader.read_line(&mut line)).await {
                Ok(r) => r.map(Some),
                Err(_) => Ok(None),
            }
        };
        let ended = match read {
            Ok(Some(0)) | Err(_) => true,
            Ok(Some(_)) => {
                match parse_entry(line.trim_end()) {
                    Ok(Some(e)) => batch.push(e),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "journal: skipping a line journalctl wrote"),
                }
                if let Some(c) = cursor_of(line.trim_end()) {
                    last_cursor = Some(c);
                }
                false
            }
            Ok(None) => false,
        };
        let full = batch.len() >= BATCH_ENTRIES;
        let waited = matches!(read, Ok(None));
        if (ended || full || waited) && (!batch.is_empty() || last_cursor.is_some()) {
            if !batch.is_empty() {
                let n = batch.len() as u32;
                if let Err(e) = buffer.push(&encode(labels, &batch), n) {
                    // Not saved: the cursor stays, and a restart reads
                    // these entries again.
                    tracing::error!(error = %e, "journal: cannot write to the log buffer");
                    return;
                }
                batch.clear();
            }
            if let Some(c) = last_cursor.take()
                && let Err(e) = save_cursor(cursor_path, &c)
            {
                tracing::error!(error = %e, "journal: cannot save the cursor");
            }
        }
        if ended {
            return;
        }
    }
}

/// The `__CURSOR` of a journalctl JSON line (entries without a message
/// move the cursor too).
fn cursor_of(json: &str) -> Option<String> {
    serde_json::from_str::<Value>(json)
        .ok()?
        .get("__CURSOR")?
        .as_str()
        .map(str::to_string)
}

/// Writes the cursor atomically (a torn file would restart from max_age).
fn save_cursor(path: &Path, cursor: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, cursor)?;
    std::fs::rename(&tmp, path)
}

/// A Loki push body of `entries`, streams by unit and level.
fn encode(labels: &[(String, String)], entries: &[Entry]) -> Vec<u8> {
    let mut streams: BTreeMap<StreamLabels, StreamEntries> = BTreeMap::new();
    for e in entries {
        let mut l = labels.to_vec();
        if let Some(u) = &e.unit {
            l.push(("unit".into(), u.clone()));
        }
        if let Some(level) = e.level {
            l.push(("level".into(), level.into()));
        }
        l.sort();
        streams.entry(l).or_default().push((e.t_ns, e.line.clone()));
    }
    encode_streams(streams.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_read_as_journalctl_writes_them() {
        let line = r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1700000000123456","MESSAGE":"hello","_SYSTEMD_UNIT":"mail.service","SYSLOG_IDENTIFIER":"postfix","PRIORITY":"3"}"#;
        let e = parse_entry(line).expect("parses").expect("has a message");
        assert_eq!(
            e,
            Entry {
                t_ns: 1_700_000_000_123_456_000,
                line: "hello".into(),
                unit: Some("mail.service".into()),
                level: Some("error"),
                cursor: "s=1;i=2".into(),
            }
        );
        // Binary messages come as byte arrays; no unit: the identifier.
        let line = r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","MESSAGE":[104,105,255],"SYSLOG_IDENTIFIER":"cron"}"#;
        let e = parse_entry(line).expect("parses").expect("message");
        assert_eq!(
            (e.line.as_str(), e.unit.as_deref(), e.level),
            ("hi\u{fffd}", Some("cron"), None)
        );
        // No message: nothing to ship; broken lines name what is wrong.
        assert_eq!(parse_entry(r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1"}"#), Ok(None));
        assert!(
            parse_entry(r#"{"__REALTIME_TIMESTAMP":"1","MESSAGE":"x"}"#)
                .unwrap_err()
                .contains("__CURSOR")
        );
        assert!(parse_entry("{").unwrap_err().contains("not a journal JSON entry"));
    }

    #[tokio::test]
    async fn a_batch_is_buffered_before_its_cursor_is_saved() {
        let dir = tempfile::tempdir().expect("tmp");
        let buffer = DiskBuffer::open(&dir.path().join("buf"), 1 << 20).expect("buffer");
        let cursor = dir.path().join("journal.cursor");
        let input = concat!(
            r#"{"__CURSOR":"a","__REALTIME_TIMESTAMP":"1000","MESSAGE":"one","_SYSTEMD_UNIT":"x.service","PRIORITY":"6"}"#,
            "\n",
            r#"{"__CURSOR":"b","__REALTIME_TIMESTAMP":"2000","MESSAGE":"two","_SYSTEMD_UNIT":"x.service","PRIORITY":"6"}"#,
            "\n",
            r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"3000"}"#,
            "\n",
        );
        let labels = vec![("job".to_string(), "journal".to_string())];
        follow(BufReader::new(input.as_bytes()), &labels, &buffer, &cursor).await;
        assert_eq!(std::fs::read_to_string(&cursor).expect("cursor"), "c");
        let (body, items, _) = buffer.next().await.expect("a batch");
        assert_eq!(items, 2);
        let raw = snap::raw::Decoder::new().decompress_vec(&body).expect("snappy");
        let streams = crate::loki::decode_protobuf(&raw).expect("push body");
        assert_eq!(streams.len(), 1);
        let (labels, entries) = &streams[0];
        assert!(labels.contains(&("unit".into(), "x.service".into())), "{labels:?}");
        assert!(labels.contains(&("level".into(), "informational".into())), "{labels:?}");
        let lines: Vec<(i64, &str)> = entries.iter().map(|e| (e.ts, e.line.as_str())).collect();
        assert_eq!(lines, vec![(1_000_000, "one"), (2_000_000, "two")]);
    }
}
