//! Loki push decoding: the hand-written decoder must never panic, and must
//! give prost's streams and entries for every body prost accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sightline_ingest::loki::{decode_protobuf, labels::parse_label_string, proto};

fuzz_target!(|data: &[u8]| {
    let ours = decode_protobuf(data);
    let Ok(req) = proto::PushRequest::decode(data) else {
        return;
    };
    if req.streams.iter().any(|s| parse_label_string(&s.labels).is_err()) {
        assert!(ours.is_err(), "labels prost's path refuses were accepted");
        return;
    }
    let ours = ours.expect("prost accepts a body our decoder refuses");
    assert_eq!(ours.len(), req.streams.len());
    for (got, want) in ours.iter().zip(&req.streams) {
        assert_eq!(got.1.len(), want.entries.len());
        for (g, w) in got.1.iter().zip(&want.entries) {
            let ts = w
                .timestamp
                .map_or(0, |t| t.seconds.saturating_mul(1_000_000_000).saturating_add(i64::from(t.nanos)));
            assert_eq!(g.ts, ts);
            assert_eq!(g.line, w.line);
            let md: Vec<(String, String)> =
                w.structured_metadata.iter().map(|p| (p.name.clone(), p.value.clone())).collect();
            assert_eq!(g.metadata, md);
        }
    }
});
