//! OTLP metrics decoding and translation must never panic, for protobuf
//! and JSON bodies alike.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use sightline_ingest::otlp::{translate::translate, OtlpOptions};

fuzz_target!(|data: &[u8]| {
    let opts = OtlpOptions {
        promote_resource_attributes: vec!["k8s.cluster.name".into()],
    };
    if let Ok(req) = ExportMetricsServiceRequest::decode(data) {
        let t = translate(req, &opts);
        let _ = t.batch();
    }
    if let Ok(req) = serde_json::from_slice::<ExportMetricsServiceRequest>(data) {
        let _ = translate(req, &opts).batch();
    }
});
