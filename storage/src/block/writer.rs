//! Writes one block from series given in label order.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder, UInt32Builder};
use arrow_array::{ArrayRef, Int8Array, Int64Array, RecordBatch, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::reader::BlockSeries;
use super::{BLOCK_FORMAT_VERSION, Block, BlockMeta, BlockStore, INDEX_FILE, META_FILE, POSTINGS_FILE, SAMPLES_FILE};
use crate::error::{Result, StorageError};
use crate::labels::Labels;
use crate::postings::Postings;
use crate::sample::{Sample, decimal_scale, to_scaled};

/// Rows per Arrow batch handed to the Parquet writer.
const BATCH_ROWS: usize = 65_536;

/// How a block is written.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// zstd level for all columns.
    pub zstd_level: i32,
    /// Partition start (ms, inclusive).
    pub partition_start: i64,
    /// Partition end (ms, exclusive).
    pub partition_end: i64,
    /// Compaction level recorded in the meta.
    pub level: u32,
}

/// Columns of `samples.parquet` (version 2). `t_dod` holds, per series,
/// 0 in its first row (whose time is `min_t` in the index), the first
/// delta in its second and the change of delta after that: a regular
/// scrape is a handful of distinct small numbers, which the dictionary
/// encoding packs into a few bits. `v_int_delta` is the change from the
/// previous integer value of the series; the first integer row holds 0 and
/// its value is `first_int` in the index (a large first value in the column
/// would widen the bit packing of everything around it).
pub(crate) fn samples_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("series", DataType::UInt32, false),
        Field::new("t_dod", DataType::Int64, false),
        Field::new("v_int_delta", DataType::Int64, true),
        Field::new("v_float", DataType::Float64, true),
        Field::new("st", DataType::Int64, true),
    ]))
}

pub(crate) fn index_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("series", DataType::UInt32, false),
        Field::new(
            "labels",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
        Field::new("row_start", DataType::UInt64, false),
        Field::new("row_count", DataType::UInt32, false),
        Field::new("min_t", DataType::Int64, false),
        Field::new("max_t", DataType::Int64, false),
        Field::new("scale", DataType::Int8, false),
        Field::new("first_int", DataType::Int64, false),
    ]))
}

pub(crate) fn postings_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
        Field::new(
            "series",
            DataType::List(Arc::new(Field::new("item", DataType::UInt32, true))),
            false,
        ),
    ]))
}

fn props(zstd_level: i32, delta_columns: &[&str], split_columns: &[&str]) -> Result<WriterProperties> {
    props_with_dictionary(zstd_level, delta_columns, split_columns, &[])
}

/// Writer settings: zstd everywhere, `delta_columns` delta-binary-packed,
/// `split_columns` byte-stream-split, `dictionary_columns` dictionary
/// encoded (falling back to delta-binary-packed if the dictionary grows
/// too large), the rest parquet's defaults.
fn props_with_dictionary(
    zstd_level: i32,
    delta_columns: &[&str],
    split_columns: &[&str],
    dictionary_columns: &[&str],
) -> Result<WriterProperties> {
    let level = ZstdLevel::try_new(zstd_level)?;
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(1 << 20))
        .set_data_page_row_count_limit(16_384)
        .set_statistics_enabled(EnabledStatistics::Page);
    for c in delta_columns {
        b = b
            .set_column_dictionary_enabled(ColumnPath::from(*c), false)
            .set_column_encoding(ColumnPath::from(*c), Encoding::DELTA_BINARY_PACKED);
    }
    for c in split_columns {
        b = b
            .set_column_dictionary_enabled(ColumnPath::from(*c), false)
            .set_column_encoding(ColumnPath::from(*c), Encoding::BYTE_STREAM_SPLIT);
    }
    for c in dictionary_columns {
        b = b
            .set_column_dictionary_enabled(ColumnPath::from(*c), true)
            .set_column_encoding(ColumnPath::from(*c), Encoding::DELTA_BINARY_PACKED);
    }
    Ok(b.build())
}

/// Builds a block series by series; call [`BlockWriter::add_series`] in
/// ascending label order, then [`BlockWriter::finish`].
pub struct BlockWriter {
    opts: WriteOptions,
    samples: ArrowWriter<SampleSink>,
    series_col: UInt32Builder,
    t_col: Int64Builder,
    v_int_col: Int64Builder,
    v_float_col: Float64Builder,
    /// Start timestamps of the pending rows; left empty (and the column
    /// written as all null at once) until a row has one.
    st_col: Int64Builder,
    pending_rows: usize,
    index: Vec<BlockSeries>,
    rows: u64,
    min_t: i64,
    max_t: i64,
}

impl BlockWriter {
    /// Starts an empty block whose samples file is built in memory.
    pub fn new(opts: WriteOptions) -> Result<Self> {
        Self::with_sink(opts, SampleSink::Memory(Vec::new()))
    }

    /// Starts an empty block whose samples file is written to `staging`
    /// as it is encoded, so a large merge does not hold it in memory.
    pub fn new_staged(opts: WriteOptions, staging: PathBuf) -> Result<Self> {
        if let Some(dir) = staging.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StorageError::io("create dir", dir, e))?;
        }
        let file = std::fs::File::create(&staging).map_err(|e| StorageError::io("create", &staging, e))?;
        Self::with_sink(
            opts,
            SampleSink::File(std::io::BufWriter::with_capacity(1 << 20, file), staging),
        )
    }

    fn with_sink(opts: WriteOptions, sink: SampleSink) -> Result<Self> {
        let p = props_with_dictionary(
            opts.zstd_level,
            &["series", "st"],
            &["v_float"],
            &["t_dod", "v_int_delta"],
        )?;
        Ok(BlockWriter {
            opts,
            samples: ArrowWriter::try_new(sink, samples_schema(), Some(p))?,
            series_col: UInt32Builder::with_capacity(BATCH_ROWS),
            t_col: Int64Builder::with_capacity(BATCH_ROWS),
            v_int_col: Int64Builder::with_capacity(BATCH_ROWS),
            v_float_col: Float64Builder::with_capacity(BATCH_ROWS),
            st_col: Int64Builder::with_capacity(BATCH_ROWS),
            pending_rows: 0,
            index: Vec::new(),
            rows: 0,
            min_t: i64::MAX,
            max_t: i64::MIN,
        })
    }

    /// Number of series added so far.
    pub fn num_series(&self) -> usize {
        self.index.len()
    }

    /// Adds one series' samples (sorted by time, no duplicate timestamps).
    /// Series must come in strictly ascending label order.
    pub fn add_series(&mut self, labels: Arc<Labels>, samples: &[Sample]) -> Result<()> {
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            return Ok(());
        };
        if let Some(prev) = self.index.last()
            && *prev.labels >= *labels
        {
            return Err(StorageError::CorruptBlock {
                block: "(being written)".into(),
                reason: format!("series out of order: {labels} after {}", prev.labels),
            });
        }
        let id = u32::try_from(self.index.len()).map_err(|_| StorageError::CorruptBlock {
            block: "(being written)".into(),
            reason: "more than 2^32 series".into(),
        })?;
        let scale = samples.iter().filter_map(|s| decimal_scale(s.v)).max();
        // Wrapping arithmetic: the reader undoes it exactly whatever the
        // values.
        let first_int = scale
            .and_then(|sc| samples.iter().find_map(|s| to_scaled(s.v, sc)))
            .unwrap_or(0);
        let (mut prev_t, mut prev_delta) = (first.t, 0i64);
        let mut prev_int: Option<i64> = None;
        for (i, s) in samples.iter().enumerate() {
            self.series_col.append_value(id);
            let delta = s.t.wrapping_sub(prev_t);
            self.t_col
                .append_value(if i < 2 { delta } else { delta.wrapping_sub(prev_delta) });
            (prev_t, prev_delta) = (s.t, delta);
            match scale.and_then(|sc| to_scaled(s.v, sc)) {
                Some(m) => {
                    self.v_int_col.append_value(prev_int.map_or(0, |p| m.wrapping_sub(p)));
                    prev_int = Some(m);
                    self.v_float_col.append_null();
                }
                None => {
                    self.v_int_col.append_null();
                    self.v_float_col.append_value(s.v);
                }
            }
            if s.st != 0 && self.st_col.len() < self.pending_rows {
                // The first start timestamp of this batch: the rows before
                // it had none.
                self.st_col.append_nulls(self.pending_rows - self.st_col.len());
            }
            if s.st != 0 || !self.st_col.is_empty() {
                self.st_col.append_option((s.st != 0).then_some(s.st));
            }
            self.pending_rows += 1;
            if self.pending_rows >= BATCH_ROWS {
                self.flush_batch()?;
            }
        }
        self.index.push(BlockSeries {
            labels,
            row_start: self.rows,
            row_count: u32::try_from(samples.len()).unwrap_or(u32::MAX),
            min_t: first.t,
            max_t: last.t,
            scale: scale.map_or(-1, |s| s as i8),
            first_int,
        });
        self.rows += samples.len() as u64;
        self.min_t = self.min_t.min(first.t);
        self.max_t = self.max_t.max(last.t);
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<()> {
        if self.pending_rows == 0 {
            return Ok(());
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.series_col.finish()),
            Arc::new(self.t_col.finish()),
            Arc::new(self.v_int_col.finish()),
            Arc::new(self.v_float_col.finish()),
            if self.st_col.is_empty() {
                arrow_array::new_null_array(&arrow_schema::DataType::Int64, self.pending_rows)
            } else {
                Arc::new(self.st_col.finish())
            },
        ];
        let batch = RecordBatch::try_new(samples_schema(), cols)?;
        self.samples.write(&batch)?;
        self.pending_rows = 0;
        Ok(())
    }

    /// Encodes the remaining rows and the index files (CPU work, no I/O);
    /// `None` when no sample was added.
    pub fn finish(mut self) -> Result<Option<EncodedBlock>> {
        if self.index.is_empty() {
            return Ok(None);
        }
        self.flush_batch()?;
        let samples = match self.samples.into_inner()? {
            SampleSink::Memory(v) => FileData::Memory(Bytes::from(v)),
            SampleSink::File(w, path) => {
                let file = w
                    .into_inner()
                    .map_err(|e| StorageError::io("write", &path, e.into_error()))?;
                file.sync_all().map_err(|e| StorageError::io("fsync", &path, e))?;
                let size = file.metadata().map_err(|e| StorageError::io("stat", &path, e))?.len();
                FileData::Staged(path, size)
            }
        };
        let index = Bytes::from(write_index(&self.index, self.opts.zstd_level)?);
        let postings = Bytes::from(write_postings(&self.index, self.opts.zstd_level)?);
        Ok(Some(EncodedBlock {
            series: self.index,
            files: vec![
                (SAMPLES_FILE, samples),
                (INDEX_FILE, FileData::Memory(index)),
                (POSTINGS_FILE, FileData::Memory(postings)),
            ],
            min_t: self.min_t,
            max_t: self.max_t,
            num_samples: self.rows,
            opts: self.opts,
        }))
    }
}

/// Where the samples file is being built.
enum SampleSink {
    Memory(Vec<u8>),
    File(std::io::BufWriter<std::fs::File>, PathBuf),
}

impl Write for SampleSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            SampleSink::Memory(v) => v.write(buf),
            SampleSink::File(f, _) => f.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            SampleSink::Memory(_) => Ok(()),
            SampleSink::File(f, _) => f.flush(),
        }
    }
}

/// An encoded file: bytes in memory or a fsynced staging file.
enum FileData {
    Memory(Bytes),
    Staged(PathBuf, u64),
}

/// A block encoded and ready to be written to the store.
pub struct EncodedBlock {
    /// The series index as written, labels shared with the caller's.
    series: Vec<BlockSeries>,
    files: Vec<(&'static str, FileData)>,
    min_t: i64,
    max_t: i64,
    num_samples: u64,
    opts: WriteOptions,
}

impl EncodedBlock {
    /// Persists the block (see [`EncodedBlock::persist`]) and opens it with
    /// the series index already in memory, so the labels it was written
    /// from are neither read back nor parsed again.
    pub async fn persist_and_open(mut self, store: &BlockStore, id: &str, sources: Vec<String>) -> Result<Block> {
        // Moved, not copied: a block's index is ~5 MB per 100k series.
        let series = std::mem::take(&mut self.series);
        let meta = self.persist_files(store, id, sources, series.len()).await?;
        Block::open_with_series(store.clone(), meta, series).await
    }

    /// Writes the data files, then `meta.json` last, each durably; the block
    /// exists from the moment its meta does. `sources` names the blocks it
    /// replaces (compaction), which are deleted at start-up if still there.
    pub async fn persist(self, store: &BlockStore, id: &str, sources: Vec<String>) -> Result<BlockMeta> {
        let num_series = self.series.len();
        self.persist_files(store, id, sources, num_series).await
    }

    async fn persist_files(
        self,
        store: &BlockStore,
        id: &str,
        sources: Vec<String>,
        num_series: usize,
    ) -> Result<BlockMeta> {
        let dir = ObjectPath::from(format!("blocks/{id}"));
        let mut files = std::collections::BTreeMap::new();
        for (name, data) in self.files {
            let path = dir.clone().join(name);
            match data {
                FileData::Memory(bytes) => {
                    files.insert(name.to_string(), bytes.len() as u64);
                    store.put_durable(&path, bytes).await?;
                }
                FileData::Staged(staged, size) => {
                    files.insert(name.to_string(), size);
                    store.put_file_durable(&path, &staged).await?;
                }
            }
        }
        let meta = BlockMeta {
            version: BLOCK_FORMAT_VERSION,
            id: id.to_string(),
            min_t: self.min_t,
            max_t: self.max_t,
            partition_start: self.opts.partition_start,
            partition_end: self.opts.partition_end,
            num_series: num_series as u64,
            num_samples: self.num_samples,
            level: self.opts.level,
            sources,
            files,
        };
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| StorageError::CorruptBlock {
            block: id.to_string(),
            reason: format!("cannot encode meta: {e}"),
        })?;
        store
            .put_durable(&dir.clone().join(META_FILE), Bytes::from(json))
            .await?;
        Ok(meta)
    }
}

/// Series per record batch of the index file. The file is the same
/// whatever the batch size; batches bound the memory the label strings
/// and their Parquet levels take while it is encoded (one batch of 100k
/// series of node_exporter labels took ~60 MB).
pub(crate) const INDEX_BATCH_SERIES: usize = 8_192;

fn write_index(rows: &[BlockSeries], zstd_level: i32) -> Result<Vec<u8>> {
    let p = props(zstd_level, &["series", "row_start"], &[])?;
    let mut w = ArrowWriter::try_new(Vec::new(), index_schema(), Some(p))?;
    for (n, part) in rows.chunks(INDEX_BATCH_SERIES).enumerate() {
        let mut labels = ListBuilder::new(StringBuilder::new());
        for r in part {
            for l in r.labels.iter() {
                labels.values().append_value(l.name);
                labels.values().append_value(l.value);
            }
            labels.append(true);
        }
        // Ids fit: the writer refuses more than 2^32 series.
        let first = (n * INDEX_BATCH_SERIES) as u32;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from_iter_values(first..first + part.len() as u32)),
            Arc::new(labels.finish()),
            Arc::new(UInt64Array::from_iter_values(part.iter().map(|r| r.row_start))),
            Arc::new(UInt32Array::from_iter_values(part.iter().map(|r| r.row_count))),
            Arc::new(Int64Array::from_iter_values(part.iter().map(|r| r.min_t))),
            Arc::new(Int64Array::from_iter_values(part.iter().map(|r| r.max_t))),
            Arc::new(Int8Array::from_iter_values(part.iter().map(|r| r.scale))),
            Arc::new(Int64Array::from_iter_values(part.iter().map(|r| r.first_int))),
        ];
        w.write(&RecordBatch::try_new(index_schema(), cols)?)?;
    }
    Ok(w.into_inner()?)
}

fn write_postings(rows: &[BlockSeries], zstd_level: i32) -> Result<Vec<u8>> {
    let mut p: Postings<u32> = Postings::new();
    for (i, r) in rows.iter().enumerate() {
        p.push(i as u32, &r.labels);
    }
    let mut names = StringBuilder::new();
    let mut values = StringBuilder::new();
    let mut ids = ListBuilder::new(UInt32Builder::new());
    for (n, v, list) in p.entries() {
        names.append_value(n);
        values.append_value(v);
        ids.values().append_slice(list);
        ids.append(true);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(names.finish()),
        Arc::new(values.finish()),
        Arc::new(ids.finish()),
    ];
    let batch = RecordBatch::try_new(postings_schema(), cols)?;
    let props = props(zstd_level, &[], &[])?;
    let mut w = ArrowWriter::try_new(Vec::new(), postings_schema(), Some(props))?;
    w.write(&batch)?;
    Ok(w.into_inner()?)
}
