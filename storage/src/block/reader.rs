//! Opens a block and reads series from it.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int8Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::file::metadata::PageIndexPolicy;

use super::store::ObjectReader;

use super::{BlockMeta, BlockStore, INDEX_FILE, POSTINGS_FILE, SAMPLES_FILE};
use crate::error::{Result, StorageError};
use crate::intern::LabelInterner;
use crate::labels::Labels;
use crate::matcher::Matcher;
use crate::postings::Postings;
use crate::sample::{Sample, from_scaled};

/// One series of a block, as its index describes it.
#[derive(Debug, Clone)]
pub struct BlockSeries {
    /// The series' labels.
    pub labels: Arc<Labels>,
    /// First row in `samples.parquet`.
    pub row_start: u64,
    /// Number of rows (samples).
    pub row_count: u32,
    /// Smallest timestamp.
    pub min_t: i64,
    /// Largest timestamp.
    pub max_t: i64,
    /// Decimal scale of `v_int` values, or -1 when all are floats.
    pub scale: i8,
    /// The series' first integer value (layout version 2; 0 in version 1).
    pub first_int: i64,
}

/// The samples of one series read from storage.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesChunk {
    /// The series' labels.
    pub labels: Arc<Labels>,
    /// Samples sorted by time.
    pub samples: Vec<Sample>,
}

/// An open, immutable block: its index is in memory, its samples are read
/// from the object store on demand.
pub struct Block {
    /// The block's metadata.
    pub meta: BlockMeta,
    series: Vec<BlockSeries>,
    /// Loaded on the first query that needs it: ingest-only nodes never
    /// pay for the postings of the blocks they write.
    postings: tokio::sync::OnceCell<Postings<u32>>,
    store: BlockStore,
    samples_path: ObjectPath,
    samples_meta: ArrowReaderMetadata,
    /// True when some sample has a start timestamp: otherwise reads skip
    /// the `st` column (all null, or absent in older blocks).
    has_start_timestamps: bool,
}

/// The samples file's columns read when no sample has a start timestamp.
const COLUMNS_WITHOUT_ST: [usize; 4] = [0, 1, 2, 3];

/// True when the samples file has an `st` column holding a value in some
/// row group (by the column statistics; a row group without statistics
/// counts as holding one).
fn has_start_timestamps(meta: &ArrowReaderMetadata) -> bool {
    meta.metadata().row_groups().iter().any(|rg| {
        rg.num_columns() > 4
            && rg
                .column(4)
                .statistics()
                .and_then(|s| s.null_count_opt())
                .is_none_or(|nulls| i64::try_from(nulls).ok() != Some(rg.num_rows()))
    })
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block").field("meta", &self.meta).finish()
    }
}

fn corrupt(id: &str, reason: impl Into<String>) -> StorageError {
    StorageError::CorruptBlock {
        block: id.to_string(),
        reason: reason.into(),
    }
}

fn read_batches(data: Bytes) -> Result<Vec<RecordBatch>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(data)?
        .with_batch_size(65_536)
        .build()?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
}

impl Block {
    /// Loads a block's series index and the samples file's footer; the
    /// postings are loaded on first use.
    pub async fn open(store: BlockStore, meta: BlockMeta, interner: &LabelInterner) -> Result<Self> {
        check_version(&meta)?;
        let dir = ObjectPath::from(format!("blocks/{}", meta.id));
        let series = parse_index(
            &meta.id,
            interner,
            read_batches(store.get(&dir.join(INDEX_FILE)).await?)?,
        )?;
        Self::open_with_series(store, meta, series).await
    }

    /// Opens a block whose series index the caller already holds (the one
    /// it was just written with): only the samples file's footer is read.
    pub async fn open_with_series(store: BlockStore, meta: BlockMeta, series: Vec<BlockSeries>) -> Result<Self> {
        check_version(&meta)?;
        let dir = ObjectPath::from(format!("blocks/{}", meta.id));
        let id = meta.id.clone();
        let samples_path = dir.clone().join(SAMPLES_FILE);
        let size = meta
            .files
            .get(SAMPLES_FILE)
            .copied()
            .ok_or_else(|| corrupt(&id, "meta lists no samples file"))?;
        let mut reader = ObjectReader::new(&store, samples_path.clone(), size);
        // With the page index a read of some series fetches and decodes
        // only the pages holding their rows.
        let samples_meta = ArrowReaderMetadata::load_async(
            &mut reader,
            ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional),
        )
        .await?;
        let rows = samples_meta.metadata().file_metadata().num_rows();
        if u64::try_from(rows).ok() != Some(meta.num_samples) {
            return Err(corrupt(
                &id,
                format!("samples file has {rows} rows, meta says {}", meta.num_samples),
            ));
        }
        let has_start_timestamps = has_start_timestamps(&samples_meta);
        Ok(Block {
            meta,
            series,
            postings: tokio::sync::OnceCell::new(),
            store,
            samples_path,
            samples_meta,
            has_start_timestamps,
        })
    }

    /// The block's label index, loaded from `postings.parquet` on first use.
    pub async fn postings(&self) -> Result<&Postings<u32>> {
        self.postings
            .get_or_try_init(|| async {
                let path = ObjectPath::from(format!("blocks/{}", self.meta.id)).join(POSTINGS_FILE);
                parse_postings(
                    &self.meta.id,
                    read_batches(self.store.get(&path).await?)?,
                    self.series.len(),
                )
            })
            .await
    }

    /// Index entry of series `id`.
    pub fn series(&self, id: u32) -> Option<&BlockSeries> {
        self.series.get(id as usize)
    }

    /// All series entries in label order.
    pub fn all_series(&self) -> &[BlockSeries] {
        &self.series
    }

    /// Ids of the series matching all `matchers` with samples in `[start, end]`.
    pub async fn select_ids(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<u32>> {
        if !self.meta.overlaps(start, end) {
            return Ok(Vec::new());
        }
        Ok(self
            .postings()
            .await?
            .select(matchers)
            .into_iter()
            .filter(|id| {
                self.series
                    .get(*id as usize)
                    .is_some_and(|s| s.min_t <= end && s.max_t >= start)
            })
            .collect())
    }

    /// Reads the samples in `[start, end]` of the given series ids (sorted
    /// ascending), one chunk per series that has samples there.
    pub async fn read_series(&self, ids: &[u32], start: i64, end: i64) -> Result<Vec<SeriesChunk>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut selectors = Vec::new();
        let mut cursor = 0u64;
        for id in ids {
            let s = self
                .series
                .get(*id as usize)
                .ok_or_else(|| corrupt(&self.meta.id, format!("no series {id}")))?;
            if s.row_start < cursor {
                return Err(corrupt(&self.meta.id, "series ids not ascending"));
            }
            if s.row_start > cursor {
                selectors.push(RowSelector::skip((s.row_start - cursor) as usize));
            }
            selectors.push(RowSelector::select(s.row_count as usize));
            cursor = s.row_start + u64::from(s.row_count);
        }
        let size = self.meta.files.get(SAMPLES_FILE).copied().unwrap_or_default();
        let reader = ObjectReader::new(&self.store, self.samples_path.clone(), size);
        let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, self.samples_meta.clone())
            .with_row_selection(RowSelection::from(selectors))
            .with_batch_size(65_536);
        if !self.has_start_timestamps {
            let columns = ProjectionMask::roots(self.samples_meta.parquet_schema(), COLUMNS_WITHOUT_ST);
            builder = builder.with_projection(columns);
        }
        let mut stream = builder.build()?;
        let mut out: Vec<SeriesChunk> = Vec::with_capacity(ids.len());
        let mut current: Option<(u32, Vec<Sample>)> = None;
        let mut decoder = RowDecoder::new(self.meta.version);
        // Batch by batch: only one decoded batch is alive at a time.
        while let Some(batch) = stream.try_next().await? {
            let series = batch.column(0).as_primitive::<UInt32Type>();
            let ts = batch.column(1).as_primitive::<Int64Type>();
            let v_int = batch.column(2).as_primitive::<Int64Type>();
            let v_float = batch.column(3).as_primitive::<Float64Type>();
            // Blocks written before start timestamps have four columns.
            let st = (batch.num_columns() > 4).then(|| batch.column(4).as_primitive::<Int64Type>());
            for row in 0..batch.num_rows() {
                let id = series.value(row);
                if current.as_ref().is_none_or(|(cid, _)| *cid != id) {
                    if let Some((cid, samples)) = current.take() {
                        self.push_chunk(&mut out, cid, samples);
                    }
                    let entry = self.series.get(id as usize);
                    current = Some((id, Vec::with_capacity(entry.map_or(0, |s| s.row_count as usize))));
                    decoder.start_series(entry.map_or(0, |s| s.min_t), entry.map_or(0, |s| s.first_int));
                }
                // Every row advances the decoder, even one outside the range.
                let t = decoder.time(ts.value(row));
                let int = v_int.is_valid(row).then(|| decoder.int(v_int.value(row)));
                if t < start || t > end {
                    continue;
                }
                let scale = self.series.get(id as usize).map_or(-1, |s| s.scale);
                let v = match int {
                    Some(m) if scale >= 0 => from_scaled(m, scale as u8),
                    _ => v_float.value(row),
                };
                let st = st.filter(|c| c.is_valid(row)).map_or(0, |c| c.value(row));
                if let Some((_, samples)) = current.as_mut() {
                    samples.push(Sample::with_start(t, v, st));
                }
            }
        }
        if let Some((cid, samples)) = current.take() {
            self.push_chunk(&mut out, cid, samples);
        }
        Ok(out)
    }

    fn push_chunk(&self, out: &mut Vec<SeriesChunk>, id: u32, samples: Vec<Sample>) {
        if samples.is_empty() {
            return;
        }
        if let Some(s) = self.series.get(id as usize) {
            out.push(SeriesChunk {
                labels: s.labels.clone(),
                samples,
            });
        }
    }
}

/// Refuses a block whose layout this build does not read.
fn check_version(meta: &BlockMeta) -> Result<()> {
    if (super::OLDEST_READABLE_VERSION..=super::BLOCK_FORMAT_VERSION).contains(&meta.version) {
        return Ok(());
    }
    Err(corrupt(
        &meta.id,
        format!(
            "block layout version {} is not one this build reads ({}..={}); upgrade Sightline",
            meta.version,
            super::OLDEST_READABLE_VERSION,
            super::BLOCK_FORMAT_VERSION
        ),
    ))
}

/// Turns the stored time and integer columns back into values, row by row
/// from the first row of each series (version 2 stores differences;
/// version 1 the values themselves).
struct RowDecoder {
    differences: bool,
    row: u64,
    t: i64,
    delta: i64,
    int: i64,
}

impl RowDecoder {
    fn new(version: u32) -> Self {
        RowDecoder {
            differences: version >= 2,
            row: 0,
            t: 0,
            delta: 0,
            int: 0,
        }
    }

    /// The next rows belong to a new series whose first timestamp is
    /// `min_t` and first integer `first_int`.
    fn start_series(&mut self, min_t: i64, first_int: i64) {
        (self.row, self.t, self.delta, self.int) = (0, min_t, 0, first_int);
    }

    /// The timestamp of the next row, from its stored `t` column value.
    fn time(&mut self, stored: i64) -> i64 {
        if !self.differences {
            return stored;
        }
        match self.row {
            0 => {}
            1 => self.delta = stored,
            _ => self.delta = self.delta.wrapping_add(stored),
        }
        self.row += 1;
        self.t = self.t.wrapping_add(self.delta);
        self.t
    }

    /// The integer value of a row whose `v_int` column holds `stored`.
    fn int(&mut self, stored: i64) -> i64 {
        if !self.differences {
            return stored;
        }
        self.int = self.int.wrapping_add(stored);
        self.int
    }
}

fn parse_index(id: &str, interner: &LabelInterner, batches: Vec<RecordBatch>) -> Result<Vec<BlockSeries>> {
    let mut out = Vec::new();
    for b in batches {
        // Version 1 indexes have no `first_int` column.
        if b.num_columns() != 7 && b.num_columns() != 8 {
            return Err(corrupt(id, "index has wrong columns"));
        }
        let first_int = (b.num_columns() == 8).then(|| b.column(7).as_primitive::<Int64Type>());
        let labels = b.column(1).as_list::<i32>();
        let values = labels.values().as_string::<i32>();
        let offsets = labels.value_offsets();
        let row_start = b.column(2).as_primitive::<UInt64Type>();
        let row_count = b.column(3).as_primitive::<UInt32Type>();
        let min_t = b.column(4).as_primitive::<Int64Type>();
        let max_t = b.column(5).as_primitive::<Int64Type>();
        let scale = b.column(6).as_primitive::<Int8Type>();
        for row in 0..b.num_rows() {
            let (lo, hi) = (offsets[row] as usize, offsets[row + 1] as usize);
            if (hi - lo) % 2 != 0 {
                return Err(corrupt(id, "odd label list"));
            }
            let pairs = (lo..hi).step_by(2).map(|i| (values.value(i), values.value(i + 1)));
            let labels = interner.intern(Labels::from_pairs(pairs));
            out.push(BlockSeries {
                labels,
                row_start: row_start.value(row),
                row_count: row_count.value(row),
                min_t: min_t.value(row),
                max_t: max_t.value(row),
                scale: scale.value(row),
                first_int: first_int.map_or(0, |c| c.value(row)),
            });
        }
    }
    Ok(out)
}

fn parse_postings(id: &str, batches: Vec<RecordBatch>, num_series: usize) -> Result<Postings<u32>> {
    let mut entries = Vec::new();
    for b in batches {
        if b.num_columns() != 3 {
            return Err(corrupt(id, "postings have wrong columns"));
        }
        let names = b.column(0).as_string::<i32>();
        let values = b.column(1).as_string::<i32>();
        let lists = b.column(2).as_list::<i32>();
        let ids = lists.values().as_primitive::<UInt32Type>();
        let offsets = lists.value_offsets();
        for row in 0..b.num_rows() {
            let list: Vec<u32> = (offsets[row] as usize..offsets[row + 1] as usize)
                .map(|i| ids.value(i))
                .collect();
            if list.iter().any(|x| *x as usize >= num_series) {
                return Err(corrupt(id, "posting points past the series table"));
            }
            entries.push((names.value(row).to_string(), values.value(row).to_string(), list));
        }
    }
    let all = (0..u32::try_from(num_series).unwrap_or(u32::MAX)).collect();
    Ok(Postings::from_entries(entries, all))
}
