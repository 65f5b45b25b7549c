//! Remote-write decoding: snappy, then the zero-copy 1.0 decoder and the
//! 2.0 conversion, must never panic and must agree with prost about which
//! bodies are valid 1.0 messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sightline_ingest::remote_write::{convert_v1, convert_v2, decompress, proto};
use sightline_storage::WriteBatch;

fuzz_target!(|data: &[u8]| {
    let _ = decompress(data, 1 << 20);
    let mut batch = WriteBatch::new();
    let ours = convert_v1(data, &mut batch, &mut Vec::new());
    if let Ok(req) = proto::WriteRequest::decode(data) {
        assert!(ours.is_ok(), "prost accepts a body our decoder refuses: {ours:?}");
        let with_samples = req.timeseries.iter().filter(|t| !t.samples.is_empty()).count();
        assert_eq!(batch.len(), with_samples);
    }
    if let Ok(req) = proto::RequestV2::decode(data) {
        let mut batch = WriteBatch::new();
        let _ = convert_v2(&req, &mut batch, &mut Vec::new());
    }
});
