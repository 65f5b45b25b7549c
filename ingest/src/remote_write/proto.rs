//! Wire types of Prometheus remote write 1.0 (`prometheus.WriteRequest`)
//! and 2.0 (`io.prometheus.write.v2.Request`). Fields Sightline does not
//! store yet (exemplars, native histograms) are kept as raw bytes so their
//! presence can be reported without decoding them.

/// Remote write 1.0 request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// Metric metadata (type, help, unit).
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// Remote write 1.0 series.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels, sorted by name.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Float samples, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Exemplars (not stored yet).
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub exemplars: Vec<Vec<u8>>,
    /// Native histograms (not stored yet).
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub histograms: Vec<Vec<u8>>,
}

/// A label pair.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// A float sample.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Sample {
    /// Value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
    /// Remote write 2.0: when the counter started (ms), 0 when unknown.
    #[prost(int64, tag = "3")]
    pub start_timestamp: i64,
}

/// Remote write 1.0 metric metadata.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// Metric type (counter, gauge, ...).
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// Metric family name.
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// Help text.
    #[prost(string, tag = "4")]
    pub help: String,
    /// Unit.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// Remote write 2.0 request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestV2 {
    /// String table; `symbols[0]` must be the empty string.
    #[prost(string, repeated, tag = "4")]
    pub symbols: Vec<String>,
    /// The series.
    #[prost(message, repeated, tag = "5")]
    pub timeseries: Vec<TimeSeriesV2>,
}

/// Remote write 2.0 series.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeriesV2 {
    /// Pairs of indexes into `symbols`: name, value, name, value, ...
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    /// Float samples.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Native histograms (not stored yet).
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub histograms: Vec<Vec<u8>>,
    /// Exemplars (not stored yet).
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub exemplars: Vec<Vec<u8>>,
    /// Metadata.
    #[prost(message, optional, tag = "5")]
    pub metadata: Option<MetadataV2>,
    /// Created timestamp (ms), 0 when unset: remote write 2.0 before the
    /// per-sample `start_timestamp` (Prometheus 3.0–3.x senders).
    #[prost(int64, tag = "6")]
    pub created_timestamp: i64,
}

/// Remote write 2.0 metadata.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetadataV2 {
    /// Metric type.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// Help text as a symbol reference.
    #[prost(uint32, tag = "3")]
    pub help_ref: u32,
    /// Unit as a symbol reference.
    #[prost(uint32, tag = "4")]
    pub unit_ref: u32,
}
