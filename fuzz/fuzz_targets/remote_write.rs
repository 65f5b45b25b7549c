//! Remote-write decoding: snappy, then the zero-copy 1.0 decoder and the
//! 2.0 conversion, must never panic and must agree with prost about which
//! bodies are valid 1.0 messages and what their series labels are.
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
        let with_samples: Vec<&proto::TimeSeries> = req.timeseries.iter().filter(|t| !t.samples.is_empty()).collect();
        assert_eq!(batch.len(), with_samples.len());
        // Every series decodes to prost's labels (deferred or not),
        // wherever its label fields lie and whatever their bytes.
        for (i, ts) in with_samples.iter().enumerate() {
            let want: Vec<(&str, &str)> = ts.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
            let ours = batch.labels(i);
            assert_eq!(ours.as_deref().ok(), Some(want.as_slice()), "series {i}: {ours:?}");
            assert_eq!(batch.samples(i).len(), ts.samples.len(), "series {i}");
        }
    }
    if let Ok(req) = proto::RequestV2::decode(data) {
        let mut batch = WriteBatch::new();
        let _ = convert_v2(&req, &mut batch, &mut Vec::new());
    }
});
