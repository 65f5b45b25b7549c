//! The logs WAL record: one record per accepted push, holding only the
//! entries that were stored (after validation and de-duplication).
//! Framing, checksums and replay are the metrics WAL's (`crate::wal`);
//! the payload layout is in `storage/FORMAT.md`.

use crate::labels::Labels;
use crate::wal::{Reader, frame, put_bytes, put_uvarint, unzigzag, zigzag};

use super::model::{LogEntry, StreamKey};

/// Record type of a logs push record.
pub const TYPE_LOG_PUSH: u8 = 16;

/// Appends one framed push record: `streams` are (key, entries) pairs.
pub fn encode_push(out: &mut Vec<u8>, streams: &[(&StreamKey, Vec<&LogEntry>)]) {
    frame(out, TYPE_LOG_PUSH, |p| {
        put_uvarint(p, streams.len() as u64);
        for (key, entries) in streams {
            put_bytes(p, key.tenant.as_bytes());
            put_uvarint(p, key.labels.len() as u64);
            for l in key.labels.iter() {
                put_bytes(p, l.name.as_bytes());
                put_bytes(p, l.value.as_bytes());
            }
            put_uvarint(p, entries.len() as u64);
            let mut prev = 0i64;
            for e in entries {
                put_uvarint(p, zigzag(e.ts.wrapping_sub(prev)));
                prev = e.ts;
                put_bytes(p, e.line.as_bytes());
                put_uvarint(p, e.metadata.len() as u64);
                for (k, v) in &e.metadata {
                    put_bytes(p, k.as_bytes());
                    put_bytes(p, v.as_bytes());
                }
            }
        }
    });
}

/// Decodes a push record's payload; `None` when it is malformed.
pub fn decode_push(payload: &[u8]) -> Option<Vec<(StreamKey, Vec<LogEntry>)>> {
    let mut r = Reader::new(payload);
    let limit = payload.len() as u64;
    let n = r.uvarint()?;
    if n > limit {
        return None;
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let tenant = r.string()?;
        let nl = r.uvarint()?;
        if nl > limit {
            return None;
        }
        let mut pairs = Vec::with_capacity(nl as usize);
        for _ in 0..nl {
            pairs.push((r.string()?, r.string()?));
        }
        let labels = Labels::from_pairs(pairs);
        let ne = r.uvarint()?;
        if ne > limit {
            return None;
        }
        let mut entries = Vec::with_capacity(ne as usize);
        let mut ts = 0i64;
        for _ in 0..ne {
            ts = ts.wrapping_add(unzigzag(r.uvarint()?));
            let line = r.string()?;
            let nm = r.uvarint()?;
            if nm > limit {
                return None;
            }
            let mut metadata = Vec::with_capacity(nm as usize);
            for _ in 0..nm {
                metadata.push((r.string()?, r.string()?));
            }
            entries.push(LogEntry { ts, line, metadata });
        }
        out.push((StreamKey { tenant, labels }, entries));
    }
    (r.remaining() == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_record_round_trips() {
        let key = StreamKey {
            tenant: "team-a".into(),
            labels: Labels::from_pairs([("app", "mail"), ("site", "dc1")]),
        };
        let a = LogEntry::new(1_700_000_000_000_000_001, "first line");
        let mut b = LogEntry::new(1_700_000_000_000_000_000, "second ✓");
        b.metadata = vec![("trace_id".into(), "abc".into())];
        let mut buf = Vec::new();
        encode_push(&mut buf, &[(&key, vec![&a, &b])]);
        // Skip the 8-byte frame header and the type byte.
        assert_eq!(buf[8], TYPE_LOG_PUSH);
        let got = decode_push(&buf[9..]).expect("decodes");
        assert_eq!(got, vec![(key, vec![a, b])]);
        assert!(
            decode_push(&buf[9..buf.len() - 1]).is_none(),
            "a truncated record is refused"
        );
    }
}
