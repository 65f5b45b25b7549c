//! A zero-copy decoder for `prometheus.WriteRequest`: label names and
//! values are borrowed from the decompressed body straight into a
//! [`WriteBatch`], so a request of known series allocates almost nothing.
//! (prost would allocate two `String`s per label.)

use sightline_storage::{MetricMetadata, Sample, WriteBatch, series_key};

use crate::wire::Cursor;
pub use crate::wire::DecodeError;

/// What the decoder saw besides float samples.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Extras {
    /// Native histogram samples (not stored yet), and the index in the
    /// batch order of the first series that had them.
    pub histograms: u64,
    /// Index (in the request) of the first series with histograms.
    pub first_histogram_series: Option<usize>,
    /// Metric metadata the request carried: (metric family, metadata).
    pub metadata: Vec<(String, MetricMetadata)>,
}

/// Prometheus' API name of a `MetricMetadata.MetricType` value.
pub fn metric_type_name(t: i32) -> &'static str {
    match t {
        1 => "counter",
        2 => "gauge",
        3 => "histogram",
        4 => "gaugehistogram",
        5 => "summary",
        6 => "info",
        7 => "stateset",
        _ => "unknown",
    }
}

fn decode_metadata(buf: &[u8], base: usize) -> Result<(String, MetricMetadata), DecodeError> {
    let mut c = Cursor::new(buf, base);
    let (mut t, mut name, mut help, mut unit) = (0i32, "", "", "");
    fn text(b: &[u8]) -> Result<&str, DecodeError> {
        std::str::from_utf8(b).map_err(|_| DecodeError::NotUtf8("metric metadata"))
    }
    while !c.done() {
        match c.key()? {
            (1, 0) => t = c.varint()? as i32,
            (2, 2) => name = text(c.bytes()?.0)?,
            (4, 2) => help = text(c.bytes()?.0)?,
            (5, 2) => unit = text(c.bytes()?.0)?,
            (f, w) => c.skip(f, w)?,
        }
    }
    Ok((
        name.to_string(),
        MetricMetadata {
            metric_type: metric_type_name(t).to_string(),
            help: help.to_string(),
            unit: unit.to_string(),
        },
    ))
}

/// Decodes a `prometheus.WriteRequest` into `batch`. The labels of a
/// series are left undecoded in `buf` (their bytes hashed into the series'
/// key) while they are back to back, as every encoder writes them; storage
/// decodes them with [`decode_wire_labels`] only for a series it does not
/// know, so an undecodable label refuses its series, not the request.
pub fn decode_write_request<'a>(buf: &'a [u8], batch: &mut WriteBatch<'a>) -> Result<Extras, DecodeError> {
    batch.defer_labels_to(buf, decode_wire_labels);
    let mut extras = Extras::default();
    let mut c = Cursor::new(buf, 0);
    let mut index = 0usize;
    while !c.done() {
        let (field, wire) = c.key()?;
        if field == 1 && wire == 2 {
            let (ts, base) = c.bytes()?;
            if let Err(e) = decode_series(ts, base, batch, &mut extras, index) {
                batch.abandon_series();
                return Err(e);
            }
            index += 1;
        } else if field == 3 && wire == 2 {
            let (md, base) = c.bytes()?;
            extras.metadata.push(decode_metadata(md, base)?);
        } else {
            c.skip(field, wire)?;
        }
    }
    Ok(extras)
}

fn decode_series<'a>(
    buf: &'a [u8],
    base: usize,
    batch: &mut WriteBatch<'a>,
    extras: &mut Extras,
    index: usize,
) -> Result<(), DecodeError> {
    let mut c = Cursor::new(buf, base);
    // The label fields' bytes, while they are back to back (as every
    // encoder writes them): their hash is the series' key.
    let mut labels_wire: Option<(usize, usize)> = None;
    let mut contiguous = true;
    while !c.done() {
        let field_start = c.pos();
        let (field, wire) = c.key()?;
        match (field, wire) {
            (1, 2) => {
                c.bytes()?;
                labels_wire = match labels_wire {
                    None => Some((field_start, c.pos())),
                    Some((start, end)) => {
                        contiguous &= end == field_start;
                        Some((start, c.pos()))
                    }
                };
            }
            (2, 2) => {
                let (sample, at) = c.bytes()?;
                batch.push_sample(decode_sample(sample, at)?);
            }
            (4, 2) => {
                c.bytes()?;
                extras.histograms += 1;
                extras.first_histogram_series.get_or_insert(index);
            }
            (f, w) => c.skip(f, w)?,
        }
    }
    let key = match labels_wire {
        Some((start, end)) if contiguous => {
            let span = buf.get(start..end).ok_or(DecodeError::Truncated(base + start))?;
            batch.finish_series_deferred(series_key(span), base + start..base + end);
            return Ok(());
        }
        Some((start, end)) => {
            // Labels split by other fields: decode them one at a time.
            let region = buf.get(start..end).ok_or(DecodeError::Truncated(base + start))?;
            let mut c = Cursor::new(region, base + start);
            while !c.done() {
                match c.key()? {
                    (1, 2) => {
                        let (label, at) = c.bytes()?;
                        let (name, value) = decode_label(label, at, None)?;
                        batch.push_label(name, value);
                    }
                    (f, w) => c.skip(f, w)?,
                }
            }
            0
        }
        None => 0,
    };
    batch.finish_series_with_key(key);
    Ok(())
}

/// Decodes back-to-back `Label` fields (a
/// [`WireLabelsDecoder`](sightline_storage::WireLabelsDecoder)); byte
/// positions in errors count from the first label.
pub fn decode_wire_labels<'a>(span: &'a [u8], out: &mut Vec<(&'a str, &'a str)>) -> Result<(), String> {
    // Tags and short lengths are ASCII, so the span of a series with UTF-8
    // labels is almost always UTF-8 as a whole; each name and value is then
    // cut from it at char boundaries (a cut that is not falls back to its
    // own check, which names the problem).
    let text = std::str::from_utf8(span).ok().map(|t| (t, 0));
    let mut c = Cursor::new(span, 0);
    while !c.done() {
        let (label, at) = c.bytes_of_field(1).map_err(|e| e.to_string())?;
        out.push(decode_label(label, at, text).map_err(|e| e.to_string())?);
    }
    Ok(())
}

/// A field's bytes and the position they start at in the request.
type FieldBytes<'a> = (&'a [u8], usize);

/// Decodes one `Label`; `text` is a UTF-8 view of the bytes around it and
/// the byte position it starts at.
fn decode_label<'a>(
    buf: &'a [u8],
    base: usize,
    text: Option<(&'a str, usize)>,
) -> Result<(&'a str, &'a str), DecodeError> {
    let mut c = Cursor::new(buf, base);
    let empty: FieldBytes<'a> = (b"", 0);
    let (mut name, mut value) = (empty, empty);
    while !c.done() {
        match c.key()? {
            (1, 2) => name = c.bytes()?,
            (2, 2) => value = c.bytes()?,
            (f, w) => c.skip(f, w)?,
        }
    }
    let as_str = |(bytes, at): FieldBytes<'a>, what: &'static str| -> Result<&'a str, DecodeError> {
        if let Some((t, start)) = text
            && let Some(s) = at.checked_sub(start).and_then(|off| t.get(off..off + bytes.len()))
        {
            return Ok(s);
        }
        std::str::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8(what))
    };
    Ok((as_str(name, "label name")?, as_str(value, "label value")?))
}

fn decode_sample(buf: &[u8], base: usize) -> Result<Sample, DecodeError> {
    let mut c = Cursor::new(buf, base);
    let (mut v, mut t) = (0.0f64, 0i64);
    while !c.done() {
        match c.key()? {
            (1, 1) => v = f64::from_bits(c.fixed64()?),
            (2, 0) => t = c.varint()? as i64,
            (f, w) => c.skip(f, w)?,
        }
    }
    Ok(Sample::new(t, v))
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::remote_write::proto;

    fn request() -> proto::WriteRequest {
        proto::WriteRequest {
            timeseries: vec![
                proto::TimeSeries {
                    labels: vec![
                        proto::Label {
                            name: "__name__".into(),
                            value: "up".into(),
                        },
                        proto::Label {
                            name: "job".into(),
                            value: "ünïcode".into(),
                        },
                    ],
                    samples: vec![
                        proto::Sample {
                            value: 1.5,
                            timestamp: -5,
                            start_timestamp: 0,
                        },
                        proto::Sample {
                            value: f64::from_bits(sightline_storage::STALE_NAN_BITS),
                            timestamp: 1_700_000_000_000,
                            start_timestamp: 0,
                        },
                    ],
                    exemplars: vec![vec![1, 2]],
                    histograms: vec![vec![8, 1]],
                },
                proto::TimeSeries {
                    labels: vec![proto::Label {
                        name: "__name__".into(),
                        value: String::new(),
                    }],
                    samples: vec![proto::Sample::default()],
                    exemplars: vec![],
                    histograms: vec![],
                },
            ],
            metadata: vec![proto::MetricMetadata {
                r#type: 1,
                metric_family_name: "up".into(),
                help: "h".into(),
                unit: String::new(),
            }],
        }
    }

    #[test]
    fn decodes_what_prost_encodes() {
        let bytes = request().encode_to_vec();
        let mut batch = WriteBatch::new();
        let extras = decode_write_request(&bytes, &mut batch).expect("decode");
        assert_eq!(batch.len(), 2);
        assert_eq!(
            *batch.labels(0).expect("labels"),
            [("__name__", "up"), ("job", "ünïcode")]
        );
        assert_eq!(batch.samples(0)[0], Sample::new(-5, 1.5));
        assert_eq!(batch.samples(0)[1].v.to_bits(), sightline_storage::STALE_NAN_BITS);
        assert_eq!(*batch.labels(1).expect("labels"), [("__name__", "")]);
        assert_eq!(batch.samples(1), &[Sample::new(0, 0.0)]);
        assert_eq!(extras.histograms, 1);
        assert_eq!(extras.first_histogram_series, Some(0));
        assert_ne!(batch.key(0), 0, "labels back to back have a key");
        assert_ne!(batch.key(0), batch.key(1));
    }

    #[test]
    fn the_key_is_the_hash_of_the_label_fields_and_absent_when_they_are_split() {
        let mut req = request();
        req.timeseries.truncate(1);
        let ts = req.timeseries[0].clone();
        let bytes = req.encode_to_vec();
        let mut batch = WriteBatch::new();
        decode_write_request(&bytes, &mut batch).expect("decode");
        let labels_only = proto::TimeSeries {
            labels: ts.labels.clone(),
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(batch.key(0), series_key(&labels_only));

        // A sample between two labels: the labels still decode, but the
        // series has no key (it is found by its labels instead).
        let label = |l: &proto::Label| {
            let mut m = Vec::new();
            prost::encoding::message::encode(1, l, &mut m);
            m
        };
        let mut split = label(&ts.labels[0]);
        prost::encoding::message::encode(2, &ts.samples[0], &mut split);
        split.extend(label(&ts.labels[1]));
        let mut body = Vec::new();
        prost::encoding::bytes::encode(1, &split, &mut body);
        let mut batch = WriteBatch::new();
        decode_write_request(&body, &mut batch).expect("decode");
        assert_eq!(
            *batch.labels(0).expect("labels"),
            [("__name__", "up"), ("job", "ünïcode")]
        );
        assert_eq!(batch.key(0), 0);
    }

    #[test]
    fn labels_decode_whether_or_not_their_bytes_are_utf8_as_a_whole() {
        // A 200-byte value has a two-byte length (0xc8 0x01), so the label
        // bytes as a whole are not UTF-8 and each string is checked alone.
        let long = "é".repeat(100);
        let mut req = request();
        req.timeseries[0].labels[1].value = long.clone();
        let bytes = req.encode_to_vec();
        let mut batch = WriteBatch::new();
        decode_write_request(&bytes, &mut batch).expect("decode");
        assert_eq!(
            *batch.labels(0).expect("labels"),
            [("__name__", "up"), ("job", long.as_str())]
        );

        // An invalid byte inside a value refuses that series by name, when
        // its labels are decoded; the request and its other series decode.
        let mut bad = bytes.clone();
        let at = bad.windows(2).position(|w| w == "é".as_bytes()).expect("é");
        bad[at] = 0xff;
        let mut batch = WriteBatch::new();
        decode_write_request(&bad, &mut batch).expect("decode");
        assert_eq!(batch.len(), 2);
        assert_eq!(batch.labels(0), Err("label value is not valid UTF-8".to_string()));
        assert_eq!(*batch.labels(1).expect("labels"), [("__name__", "")]);
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        let bytes = request().encode_to_vec();
        for cut in 0..bytes.len() {
            let mut batch = WriteBatch::new();
            // Some prefixes are valid messages (cut at a field boundary).
            let _ = decode_write_request(&bytes[..cut], &mut batch);
        }
        let mut batch = WriteBatch::new();
        assert!(decode_write_request(&[0x0a, 0x05, 0x0a], &mut batch).is_err());
        assert!(decode_write_request(&[0x0b], &mut batch).is_err());
        // Found by the fuzzer: a legacy group (field 11, wire types 3/4) is an
        // unknown field to skip, as prost does, not an error.
        let mut batch = WriteBatch::new();
        assert_eq!(
            decode_write_request(&[0x5b, 0x5c, 0x0a, 0x00], &mut batch),
            Ok(Extras::default())
        );
        assert!(
            decode_write_request(&[0x5b, 0x64], &mut batch).is_err(),
            "end of another group"
        );
        // A series whose one label's name is not UTF-8, with one sample.
        let bad_utf8 = [0x0a, 0x08, 0x0a, 0x04, 0x0a, 0x02, 0xff, 0xfe, 0x12, 0x00];
        let mut batch = WriteBatch::new();
        assert_eq!(decode_write_request(&bad_utf8, &mut batch), Ok(Extras::default()));
        assert_eq!(batch.labels(0), Err("label name is not valid UTF-8".to_string()));
        // Cut inside the label: the series' labels are refused, not the request.
        let torn_label = [0x0a, 0x07, 0x0a, 0x03, 0x0a, 0x02, 0x61, 0x12, 0x00];
        let mut batch = WriteBatch::new();
        assert_eq!(decode_write_request(&torn_label, &mut batch), Ok(Extras::default()));
        assert!(batch.labels(0).is_err());
    }
}
