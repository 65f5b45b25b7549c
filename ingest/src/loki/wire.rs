//! A decoder of `logproto.PushRequest` (see [`super::proto`]) straight
//! into stored entries: each stream's entries are counted first and
//! allocated once, and none of the structs prost would build in between
//! (an `EntryAdapter` per entry, its vectors grown entry by entry) is.
//! Decoding with prost was 8 % of the logs ingest's CPU.

use sightline_storage::logs::LogEntry;

use crate::wire::{Cursor, DecodeError};

/// The streams of a push: each stream's label text (`{app="mail"}`, not
/// parsed yet) and its entries, in the order the body holds them.
pub(crate) fn decode_push(buf: &[u8]) -> Result<Vec<(&str, Vec<LogEntry>)>, DecodeError> {
    let mut c = Cursor::new(buf, 0);
    let mut out = Vec::new();
    while !c.done() {
        match c.key()? {
            (1, 2) => {
                let (b, at) = c.bytes()?;
                out.push(decode_stream(b, at)?);
            }
            (f, w) => c.skip(f, w)?,
        }
    }
    Ok(out)
}

fn utf8<'a>(b: &'a [u8], what: &'static str) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(b).map_err(|_| DecodeError::NotUtf8(what))
}

/// One `StreamAdapter` (its `hash` is ignored: Sightline keys streams by
/// their labels).
fn decode_stream(buf: &[u8], base: usize) -> Result<(&str, Vec<LogEntry>), DecodeError> {
    let mut c = Cursor::new(buf, base);
    let mut labels = "";
    let mut count = 0usize;
    while !c.done() {
        match c.key()? {
            (1, 2) => labels = utf8(c.bytes()?.0, "stream labels")?,
            (2, 2) => {
                c.bytes()?;
                count += 1;
            }
            (f, w) => c.skip(f, w)?,
        }
    }
    let mut entries = Vec::with_capacity(count);
    let mut c = Cursor::new(buf, base);
    while !c.done() {
        match c.key()? {
            (2, 2) => {
                let (b, at) = c.bytes()?;
                entries.push(decode_entry(b, at)?);
            }
            (f, w) => c.skip(f, w)?,
        }
    }
    Ok((labels, entries))
}

/// One `EntryAdapter`: a missing timestamp is 0 (as prost decodes it);
/// a repeated one is merged field by field, as protobuf merges messages.
fn decode_entry(buf: &[u8], base: usize) -> Result<LogEntry, DecodeError> {
    let mut c = Cursor::new(buf, base);
    let (mut seconds, mut nanos) = (0i64, 0i32);
    let mut line: &[u8] = b"";
    let mut metadata = Vec::new();
    while !c.done() {
        match c.key()? {
            (1, 2) => {
                let (b, at) = c.bytes()?;
                let mut t = Cursor::new(b, at);
                while !t.done() {
                    match t.key()? {
                        // int64 and int32 are two's complement varints.
                        (1, 0) => seconds = t.varint()? as i64,
                        (2, 0) => nanos = t.varint()? as i32,
                        (f, w) => t.skip(f, w)?,
                    }
                }
            }
            (2, 2) => line = c.bytes()?.0,
            (3, 2) => {
                let (b, at) = c.bytes()?;
                metadata.push(decode_pair(b, at)?);
            }
            (f, w) => c.skip(f, w)?,
        }
    }
    Ok(LogEntry {
        ts: seconds.saturating_mul(1_000_000_000).saturating_add(i64::from(nanos)),
        line: utf8(line, "line")?.to_owned(),
        metadata,
    })
}

/// One `LabelPairAdapter` of structured metadata.
fn decode_pair(buf: &[u8], base: usize) -> Result<(String, String), DecodeError> {
    let mut c = Cursor::new(buf, base);
    let (mut name, mut value): (&[u8], &[u8]) = (b"", b"");
    while !c.done() {
        match c.key()? {
            (1, 2) => name = c.bytes()?.0,
            (2, 2) => value = c.bytes()?.0,
            (f, w) => c.skip(f, w)?,
        }
    }
    Ok((
        utf8(name, "structured metadata name")?.to_owned(),
        utf8(value, "structured metadata value")?.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::super::proto;
    use super::*;

    /// A small deterministic generator (xorshift).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }

        fn text(&mut self) -> String {
            let alphabet = ["a", "B", "7", " ", "=", "é", "日本", "\"", "\n"];
            (0..self.below(12)).map(|_| alphabet[self.below(9) as usize]).collect()
        }
    }

    /// What prost decodes, as this decoder gives it.
    fn by_prost(body: &[u8]) -> Vec<(String, Vec<LogEntry>)> {
        proto::PushRequest::decode(body)
            .expect("prost decodes")
            .streams
            .into_iter()
            .map(|s| {
                let entries = s
                    .entries
                    .into_iter()
                    .map(|e| LogEntry {
                        ts: e.timestamp.map_or(0, |t| {
                            t.seconds
                                .saturating_mul(1_000_000_000)
                                .saturating_add(i64::from(t.nanos))
                        }),
                        line: e.line,
                        metadata: e.structured_metadata.into_iter().map(|p| (p.name, p.value)).collect(),
                    })
                    .collect();
                (s.labels, entries)
            })
            .collect()
    }

    /// Random requests (negative, huge and missing timestamps, empty
    /// and non-ASCII strings, metadata or none, an unknown field the
    /// decoder must skip): the same streams and entries as prost's.
    #[test]
    fn decodes_what_prost_decodes() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..300 {
            let req = proto::PushRequest {
                streams: (0..rng.below(4))
                    .map(|_| proto::StreamAdapter {
                        labels: format!("{{app=\"{}\"}}", rng.below(5)),
                        entries: (0..rng.below(6))
                            .map(|_| proto::EntryAdapter {
                                timestamp: match rng.below(4) {
                                    0 => None,
                                    1 => Some(proto::Timestamp {
                                        seconds: -(rng.below(1 << 40) as i64),
                                        nanos: -(rng.below(1_000_000_000) as i32),
                                    }),
                                    2 => Some(proto::Timestamp {
                                        seconds: i64::MAX - rng.below(3) as i64,
                                        nanos: 999_999_999,
                                    }),
                                    _ => Some(proto::Timestamp {
                                        seconds: 1_700_000_000 + rng.below(1 << 20) as i64,
                                        nanos: rng.below(1_000_000_000) as i32,
                                    }),
                                },
                                line: rng.text(),
                                structured_metadata: (0..rng.below(3))
                                    .map(|_| proto::LabelPairAdapter {
                                        name: rng.text(),
                                        value: rng.text(),
                                    })
                                    .collect(),
                            })
                            .collect(),
                        hash: rng.below(u64::MAX),
                    })
                    .collect(),
            };
            let mut body = req.encode_to_vec();
            if rng.below(3) == 0 {
                // Field 9 (unknown), a varint, then a length-delimited one.
                body.extend_from_slice(&[9 << 3, 0x96, 0x01, (10 << 3) | 2, 2, b'x', b'y']);
            }
            let want = by_prost(&body);
            let got: Vec<(String, Vec<LogEntry>)> = decode_push(&body)
                .expect("decodes")
                .into_iter()
                .map(|(labels, entries)| (labels.to_string(), entries))
                .collect();
            assert_eq!(got, want);
            // Every cut of a body is refused or decoded, never a panic.
            let cut = rng.below(body.len() as u64 + 1) as usize;
            let _ = decode_push(&body[..cut]);
        }
    }

    /// Protobuf's merge rules: of a field given twice the last wins, and a
    /// message given twice (the timestamp) is merged field by field.
    #[test]
    fn later_fields_win_and_timestamps_merge() {
        let entry = [
            &[(1 << 3) | 2, 2, 1 << 3, 7][..], // timestamp { seconds: 7 }
            &[(1 << 3) | 2, 2, 2 << 3, 9],     // timestamp { nanos: 9 }
            &[(2 << 3) | 2, 1, b'a'],          // line "a"
            &[(2 << 3) | 2, 1, b'b'],          // line "b"
        ]
        .concat();
        let stream = [
            &[(1 << 3) | 2, 1, b'x'][..],
            &[(1 << 3) | 2, 1, b'y'],
            &[(2 << 3) | 2, entry.len() as u8],
            &entry,
        ]
        .concat();
        let body = [&[(1 << 3) | 2, stream.len() as u8][..], &stream].concat();
        let got = decode_push(&body).expect("decodes");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "y");
        assert_eq!(got[0].1, vec![LogEntry::new(7_000_000_009, "b")]);
    }

    #[test]
    fn refuses_what_is_not_a_push() {
        let line_not_utf8 = [(1 << 3) | 2, 5, (2 << 3) | 2, 3, (2 << 3) | 2, 1, 0xff];
        assert_eq!(decode_push(&line_not_utf8).err(), Some(DecodeError::NotUtf8("line")));
        assert!(matches!(decode_push(b"\x0a\x05\x12"), Err(DecodeError::Truncated(_))));
        assert!(matches!(decode_push(b"\x0f"), Err(DecodeError::BadWireType(7, _))));
    }
}
