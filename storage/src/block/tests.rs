//! Round trips of whole blocks through the store, in both layouts.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use parquet::arrow::ArrowWriter;

use super::*;
use crate::intern::LabelInterner;
use crate::labels::Labels;
use crate::sample::{STALE_NAN_BITS, Sample, decimal_scale, to_scaled};

/// Series whose times and values stress the difference encodings: a
/// regular scrape with jitter, gaps, a single sample, two samples, huge
/// jumps, extreme integers, floats mixed with integers and stale markers.
fn awkward_series() -> Vec<(Arc<Labels>, Vec<Sample>)> {
    let stale = f64::from_bits(STALE_NAN_BITS);
    let base = 1_764_000_000_000i64;
    let regular: Vec<Sample> = (0..500)
        .map(|i| Sample::new(base + i * 15_000 + (i * 7 % 3), (i * 4096) as f64))
        .collect();
    let mut mixed: Vec<Sample> = (0..300)
        .map(|i| {
            Sample::new(
                base + i * 10_000 + if i % 50 == 0 { 3_600_000 } else { 0 },
                i as f64 * 0.25,
            )
        })
        .collect();
    // Times strictly ascending again after the jumps.
    mixed.sort_by_key(|s| s.t);
    mixed.dedup_by_key(|s| s.t);
    mixed[7].v = stale;
    mixed[8].v = 0.123_456_789_012_345_67;
    mixed[9].v = f64::INFINITY;
    mixed[10].v = -0.0;
    let extremes = vec![
        Sample::new(i64::MIN + 1, 9_007_199_254_740_991.0),
        Sample::new(-1, -9_007_199_254_740_991.0),
        Sample::new(0, 1.0),
        Sample::new(i64::MAX, -1.0),
    ];
    let named = |name: &str| Arc::new(Labels::from_pairs([("__name__", name)]));
    vec![
        (named("a_regular"), regular),
        (named("b_mixed"), mixed),
        (named("c_one"), vec![Sample::new(base, 42.0)]),
        (named("d_two"), vec![Sample::new(base, 1.5), Sample::new(base + 1, 2.5)]),
        (named("e_extremes"), extremes),
    ]
}

fn encode(series: &[(Arc<Labels>, Vec<Sample>)]) -> EncodedBlock {
    let mut w = BlockWriter::new(WriteOptions {
        zstd_level: 3,
        partition_start: i64::MIN,
        partition_end: i64::MAX,
        level: 0,
    })
    .expect("writer");
    for (labels, samples) in series {
        w.add_series(labels.clone(), samples).expect("add");
    }
    w.finish().expect("finish").expect("not empty")
}

async fn write_block(store: &BlockStore, series: &[(Arc<Labels>, Vec<Sample>)]) -> BlockMeta {
    encode(series)
        .persist(store, &new_block_id(), Vec::new())
        .await
        .expect("persist")
}

async fn read_everything(block: &Block, start: i64, end: i64) -> Vec<(String, Vec<(i64, u64)>)> {
    let ids: Vec<u32> = (0..block.all_series().len() as u32).collect();
    block
        .read_series(&ids, start, end)
        .await
        .expect("read")
        .into_iter()
        .map(|c| {
            (
                c.labels.metric_name().unwrap_or_default().to_string(),
                c.samples.iter().map(|s| (s.t, s.v.to_bits())).collect(),
            )
        })
        .collect()
}

fn expected(series: &[(Arc<Labels>, Vec<Sample>)], start: i64, end: i64) -> Vec<(String, Vec<(i64, u64)>)> {
    series
        .iter()
        .map(|(l, s)| {
            (
                l.metric_name().unwrap_or_default().to_string(),
                s.iter()
                    .filter(|s| s.t >= start && s.t <= end)
                    .map(|s| (s.t, s.v.to_bits()))
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, s)| !s.is_empty())
        .collect()
}

/// Asserts equality, naming the first series and sample that differ.
fn assert_same(got: &[(String, Vec<(i64, u64)>)], want: &[(String, Vec<(i64, u64)>)]) {
    assert_eq!(
        got.iter().map(|(n, s)| (n, s.len())).collect::<Vec<_>>(),
        want.iter().map(|(n, s)| (n, s.len())).collect::<Vec<_>>()
    );
    for ((name, g), (_, w)) in got.iter().zip(want) {
        if let Some(i) = (0..g.len()).find(|&i| g[i] != w[i]) {
            panic!("{name}: sample {i} is {:?}, want {:?}", g[i], w[i]);
        }
    }
}

#[tokio::test]
async fn every_time_and_value_survives_the_difference_encoding() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = BlockStore::local(tmp.path().to_path_buf()).expect("store");
    let series = awkward_series();
    let meta = write_block(&store, &series).await;
    assert_eq!(meta.version, BLOCK_FORMAT_VERSION);
    let block = Block::open(store, meta, &LabelInterner::new()).await.expect("open");
    assert_same(
        &read_everything(&block, i64::MIN, i64::MAX).await,
        &expected(&series, i64::MIN, i64::MAX),
    );
    // A range that starts and ends inside series still decodes from each
    // series' first row.
    let (start, end) = (1_764_000_000_000 + 1_000_000, 1_764_000_000_000 + 4_000_000);
    assert_same(
        &read_everything(&block, start, end).await,
        &expected(&series, start, end),
    );
}

#[tokio::test]
async fn a_block_opened_with_its_written_index_reads_as_one_opened_from_disk() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = BlockStore::local(tmp.path().to_path_buf()).expect("store");
    let series = awkward_series();
    let written = encode(&series)
        .persist_and_open(&store, &new_block_id(), Vec::new())
        .await
        .expect("persist");
    // The written block shares the writer's label sets.
    assert!(Arc::ptr_eq(&written.all_series()[0].labels, &series[0].0));
    let from_disk = Block::open(store, written.meta.clone(), &LabelInterner::new())
        .await
        .expect("open");
    let rows = |b: &Block| {
        b.all_series()
            .iter()
            .map(|s| {
                (
                    s.labels.to_string(),
                    s.row_start,
                    s.row_count,
                    s.min_t,
                    s.max_t,
                    s.scale,
                    s.first_int,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(&written), rows(&from_disk));
    assert_same(
        &read_everything(&written, i64::MIN, i64::MAX).await,
        &read_everything(&from_disk, i64::MIN, i64::MAX).await,
    );
}

#[tokio::test]
async fn an_index_written_in_several_batches_reads_back_whole() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = BlockStore::local(tmp.path().to_path_buf()).expect("store");
    // More series than one index batch holds, each with its own labels,
    // times and values, so a batch boundary that lost or shifted a row
    // would show.
    let n = super::writer::INDEX_BATCH_SERIES * 2 + 17;
    let base = 1_764_000_000_000i64;
    let series: Vec<(Arc<Labels>, Vec<Sample>)> = (0..n)
        .map(|i| {
            let name = format!("m_{i:06}");
            let instance = format!("host-{}", i % 97);
            let labels = Arc::new(Labels::from_pairs([
                ("__name__", name.as_str()),
                ("instance", &instance),
            ]));
            let samples = (0..=(i % 3) as i64)
                .map(|k| Sample::new(base + i as i64 + k * 15_000, (i as i64 * 10 + k) as f64))
                .collect();
            (labels, samples)
        })
        .collect();
    let meta = write_block(&store, &series).await;
    let block = Block::open(store, meta, &LabelInterner::new()).await.expect("open");
    let labels: Vec<String> = block.all_series().iter().map(|s| s.labels.to_string()).collect();
    let want: Vec<String> = series.iter().map(|(l, _)| l.to_string()).collect();
    assert_eq!(labels, want);
    assert_same(
        &read_everything(&block, i64::MIN, i64::MAX).await,
        &expected(&series, i64::MIN, i64::MAX),
    );
}

/// Rewrites a block's samples file in layout version 1 (absolute times and
/// integers), as blocks written before version 2 are.
async fn rewrite_as_version_1(store: &BlockStore, meta: &mut BlockMeta, series: &[(Arc<Labels>, Vec<Sample>)]) {
    let (mut ids, mut ts, mut ints, mut floats) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, (_, samples)) in series.iter().enumerate() {
        let scale = samples.iter().filter_map(|s| decimal_scale(s.v)).max();
        for s in samples {
            ids.push(id as u32);
            ts.push(s.t);
            match scale.and_then(|sc| to_scaled(s.v, sc)) {
                Some(m) => {
                    ints.push(Some(m));
                    floats.push(None);
                }
                None => {
                    ints.push(None);
                    floats.push(Some(s.v));
                }
            }
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("series", DataType::UInt32, false),
        Field::new("t", DataType::Int64, false),
        Field::new("v_int", DataType::Int64, true),
        Field::new("v_float", DataType::Float64, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from(ids)),
        Arc::new(Int64Array::from(ts)),
        Arc::new(Int64Array::from(ints)),
        Arc::new(Float64Array::from(floats)),
    ];
    let mut w = ArrowWriter::try_new(Vec::new(), schema.clone(), None).expect("writer");
    w.write(&RecordBatch::try_new(schema, cols).expect("batch"))
        .expect("write");
    let bytes = w.into_inner().expect("finish");
    meta.version = 1;
    meta.files.insert(SAMPLES_FILE.to_string(), bytes.len() as u64);
    let path = ObjectPath::from(format!("blocks/{}/{SAMPLES_FILE}", meta.id));
    store.put_durable(&path, Bytes::from(bytes)).await.expect("put");
}

#[tokio::test]
async fn version_1_blocks_are_still_read() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = BlockStore::local(tmp.path().to_path_buf()).expect("store");
    let series = awkward_series();
    let mut meta = write_block(&store, &series).await;
    rewrite_as_version_1(&store, &mut meta, &series).await;
    let block = Block::open(store, meta, &LabelInterner::new()).await.expect("open");
    assert_same(
        &read_everything(&block, i64::MIN, i64::MAX).await,
        &expected(&series, i64::MIN, i64::MAX),
    );
}

#[tokio::test]
async fn a_block_of_a_newer_layout_is_refused_by_name() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = BlockStore::local(tmp.path().to_path_buf()).expect("store");
    let mut meta = write_block(&store, &awkward_series()).await;
    meta.version = BLOCK_FORMAT_VERSION + 1;
    let err = Block::open(store, meta, &LabelInterner::new())
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("layout version"), "{err}");
}
