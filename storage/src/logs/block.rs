//! Immutable log blocks on disk: one directory per block holding
//!
//! - `data.parquet`: one row per entry, sorted by stream then time;
//!   columns `stream` (u32, the stream's position in `streams.json`),
//!   `ts` (i64 ns, delta-encoded), `line` (utf8), `metadata` (utf8 JSON
//!   object or null); zstd.
//! - `index/`: the tantivy full-text index ([`super::index`]).
//! - `streams.json`: every stream's tenant, labels, first row, row count
//!   and time range (the block's label index).
//! - `meta.json`, written last: a block without it is incomplete.
//!
//! A block is built in `staging/` and renamed into `blocks/` whole. See
//! `storage/FORMAT.md`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arrow_array::builder::{Int64Builder, StringBuilder, UInt32Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt32Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument};

use crate::error::{Result, StorageError};
use crate::labels::Labels;
use crate::postings::Postings;
use crate::wal::sync_dir;

use super::granule_terms::{CutTerms, GranuleTerms};
use super::index::{self, GRANULE_ROWS, IndexFields, LONG_TOKEN_MARKER};
use super::model::{LogEntry, LogStream, StreamKey};
use super::rare_terms::{self, RARE_TERMS_FILE, RareTerms};
use super::select::LogSelect;

/// Version of the log block layout written in `meta.json`: 2 since the
/// rare terms file (version 1 blocks, without it, are still read).
pub const LOG_BLOCK_VERSION: u32 = 2;
const DATA_FILE: &str = "data.parquet";
const STREAMS_FILE: &str = "streams.json";
const META_FILE: &str = "meta.json";
const INDEX_DIR: &str = "index";
const BATCH_ROWS: usize = 8192;
/// Lines handed to the thread cutting them into terms at a time.
const TOKENIZER_BATCH: usize = 4096;

/// A block's `meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogBlockMeta {
    /// Layout version ([`LOG_BLOCK_VERSION`]).
    pub version: u32,
    /// The block id (its directory name).
    pub id: String,
    /// Oldest entry, ns.
    pub min_t: i64,
    /// Newest entry, ns.
    pub max_t: i64,
    /// Streams in the block.
    pub streams: u64,
    /// Entries in the block.
    pub entries: u64,
    /// Bytes of lines and metadata as received.
    pub raw_bytes: u64,
    /// Rows per index document.
    pub granule_rows: u32,
    /// WAL segments numbered below this hold nothing that is not in this
    /// block or an older one.
    pub wal_segment_end: u64,
    /// Blocks merged into this one (deleted once it exists).
    #[serde(default)]
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StreamRecord {
    tenant: String,
    labels: BTreeMap<String, String>,
    first_row: u32,
    rows: u32,
    min_t: i64,
    max_t: i64,
}

struct BlockStream {
    key: Arc<StreamKey>,
    first_row: u32,
    rows: u32,
    min_t: i64,
    max_t: i64,
}

fn data_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("stream", DataType::UInt32, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("line", DataType::Utf8, false),
        Field::new("metadata", DataType::Utf8, true),
    ]))
}

/// Rows per Parquet row group (small in tests, so that they cover reads
/// across row groups).
const ROW_GROUP_ROWS: usize = if cfg!(test) { 1024 } else { 1 << 20 };

fn writer_props(zstd_level: i32) -> Result<WriterProperties> {
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(zstd_level)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(GRANULE_ROWS as usize * 8)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_column_dictionary_enabled(ColumnPath::from("ts"), false)
        .set_column_encoding(ColumnPath::from("ts"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(ColumnPath::from("line"), false)
        .build())
}

static BLOCK_SEQ: AtomicU64 = AtomicU64::new(0);

/// A new unique block id: creation time and a process-wide sequence.
fn new_block_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        "{nanos:016x}-{:04x}",
        BLOCK_SEQ.fetch_add(1, Ordering::Relaxed) & 0xffff
    )
}

/// Where blocks are written and kept.
#[derive(Debug, Clone)]
pub struct BlockDirs {
    /// Finished blocks.
    pub blocks: PathBuf,
    /// Blocks being written.
    pub staging: PathBuf,
}

/// Writes `streams` (sorted by key, entries by time) as a new block and
/// opens it.
pub fn write_block<'a>(
    dirs: &BlockDirs,
    streams: impl IntoIterator<Item = (&'a Arc<StreamKey>, &'a [LogEntry])>,
    zstd_level: i32,
    wal_segment_end: u64,
    sources: Vec<String>,
) -> Result<LogBlock> {
    let id = new_block_id();
    let stage = dirs.staging.join(&id);
    fs::create_dir_all(&stage).map_err(|e| StorageError::io("create dir", &stage, e))?;
    let data_path = stage.join(DATA_FILE);
    let file = File::create(&data_path).map_err(|e| StorageError::io("create", &data_path, e))?;
    let mut parquet = ArrowWriter::try_new(
        BufWriter::with_capacity(1 << 20, file),
        data_schema(),
        Some(writer_props(zstd_level)?),
    )?;
    let fields = index::index_fields();
    let index_dir = stage.join(INDEX_DIR);
    let tindex = index::create_index(&index_dir, &fields)?;
    let mut iw = tindex
        .writer_with_num_threads::<TantivyDocument>(1, 32 << 20)
        .map_err(|e| index::tantivy_err(&index_dir, e))?;

    let mut batch = BatchBuilder::default();
    let mut docs: Vec<(u32, TantivyDocument)> = Vec::new();
    let mut records = Vec::new();
    let mut row: u32 = 0;
    let mut meta = LogBlockMeta {
        version: LOG_BLOCK_VERSION,
        id: id.clone(),
        min_t: i64::MAX,
        max_t: i64::MIN,
        streams: 0,
        entries: 0,
        raw_bytes: 0,
        granule_rows: GRANULE_ROWS,
        wal_segment_end,
        sources,
    };
    // The lines are cut into terms on a thread of their own while this
    // one writes the Parquet file (as tantivy's indexing thread did when it
    // took whole lines).
    let (line_tx, line_rx) = crossbeam_channel::bounded::<Vec<(u32, &'a str)>>(4);
    let terms = std::thread::scope(|scope| -> Result<CutTerms> {
        let line_tx = line_tx;
        let mut granule = GranuleDoc::new(&fields, 0);
        let tokenizer = scope.spawn(move || {
            let mut terms = GranuleTerms::default();
            for lines in line_rx {
                for (granule, line) in lines {
                    terms.add_line(granule, line);
                }
            }
            terms.finish()
        });
        let mut lines: Vec<(u32, &'a str)> = Vec::with_capacity(TOKENIZER_BATCH);
        for (key, entries) in streams {
            if entries.is_empty() {
                continue;
            }
            let stream_no =
                u32::try_from(records.len()).map_err(|_| StorageError::Internal("too many streams".into()))?;
            let first_row = row;
            for e in entries {
                if row / GRANULE_ROWS != granule.number {
                    docs.extend(granule.finish());
                    granule = GranuleDoc::new(&fields, row / GRANULE_ROWS);
                }
                let same_metadata = batch.push(stream_no, e);
                granule.add(e, same_metadata);
                lines.push((granule.number, e.line.as_str()));
                if lines.len() >= TOKENIZER_BATCH {
                    // Fails only when the thread is gone: its join says why.
                    let _ = line_tx.send(std::mem::replace(&mut lines, Vec::with_capacity(TOKENIZER_BATCH)));
                }
                if batch.len() >= BATCH_ROWS {
                    parquet.write(&batch.finish()?)?;
                }
                meta.raw_bytes += e.size() as u64;
                row = row
                    .checked_add(1)
                    .ok_or_else(|| StorageError::Internal("more than 4G entries in one block".into()))?;
            }
            let (min_t, max_t) = (entries[0].ts, entries[entries.len() - 1].ts);
            meta.min_t = meta.min_t.min(min_t);
            meta.max_t = meta.max_t.max(max_t);
            records.push(StreamRecord {
                tenant: key.tenant.clone(),
                labels: key
                    .labels
                    .iter()
                    .map(|l| (l.name.to_string(), l.value.to_string()))
                    .collect(),
                first_row,
                rows: row - first_row,
                min_t,
                max_t,
            });
        }
        if batch.len() > 0 {
            parquet.write(&batch.finish()?)?;
        }
        docs.extend(granule.finish());
        let _ = line_tx.send(lines);
        drop(line_tx);
        tokenizer
            .join()
            .map_err(|_| StorageError::Internal("the thread cutting lines into terms panicked".into()))
    })?;
    // Only now is it known which terms more than one granule holds: those
    // go into the index, the rest into the rare terms file.
    if docs.len() != terms.granules() {
        return Err(StorageError::Internal(format!(
            "{} granule documents for the terms of {} granules",
            docs.len(),
            terms.granules()
        )));
    }
    for ((doc_number, mut doc), granule) in docs.into_iter().zip(terms.shared_terms()) {
        if doc_number != granule.number {
            return Err(StorageError::Internal(format!(
                "granule {doc_number}'s document met the terms of granule {}",
                granule.number
            )));
        }
        doc.add_text(fields.line, granule.terms);
        if granule.long_token {
            doc.add_text(fields.meta, LONG_TOKEN_MARKER);
        }
        iw.add_document(doc).map_err(|e| index::tantivy_err(&index_dir, e))?;
    }
    rare_terms::write_rare_terms(&stage.join(RARE_TERMS_FILE), terms.rare_terms(), zstd_level)?;
    meta.streams = records.len() as u64;
    meta.entries = u64::from(row);
    let out = parquet.into_inner()?;
    let file = out
        .into_inner()
        .map_err(|e| StorageError::io("flush", &data_path, e.into_error()))?;
    file.sync_all().map_err(|e| StorageError::io("fsync", &data_path, e))?;
    iw.commit().map_err(|e| index::tantivy_err(&index_dir, e))?;
    iw.wait_merging_threads()
        .map_err(|e| index::tantivy_err(&index_dir, e))?;
    drop(tindex);
    sync_tree(&index_dir)?;
    write_json(&stage.join(STREAMS_FILE), &records)?;
    write_json(&stage.join(META_FILE), &meta)?;
    sync_dir(&stage)?;
    let dest = dirs.blocks.join(&id);
    fs::rename(&stage, &dest).map_err(|e| StorageError::io("rename", &dest, e))?;
    sync_dir(&dirs.blocks)?;
    LogBlock::open(&dest)
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes =
        serde_json::to_vec(value).map_err(|e| StorageError::Internal(format!("encode {}: {e}", path.display())))?;
    fs::write(path, bytes).map_err(|e| StorageError::io("write", path, e))?;
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| StorageError::io("fsync", path, e))
}

fn sync_tree(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io("read dir", dir, e))? {
        let p = entry.map_err(|e| StorageError::io("read dir", dir, e))?.path();
        if p.is_file() {
            File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|e| StorageError::io("fsync", &p, e))?;
        }
    }
    sync_dir(dir)
}

#[derive(Default)]
struct BatchBuilder {
    stream: UInt32Builder,
    ts: Int64Builder,
    line: StringBuilder,
    metadata: StringBuilder,
    rows: usize,
    /// The last row's metadata and the JSON of the last metadata that was
    /// not empty: neighbouring rows (one stream, by time) mostly carry
    /// the same, so it is encoded once.
    last_metadata: Vec<(String, String)>,
    last_json: String,
}

impl BatchBuilder {
    /// Adds a row; true when its metadata is the previous row's.
    fn push(&mut self, stream: u32, e: &LogEntry) -> bool {
        self.stream.append_value(stream);
        self.ts.append_value(e.ts);
        self.line.append_value(&e.line);
        let same = e.metadata == self.last_metadata;
        if !same {
            self.last_metadata.clone_from(&e.metadata);
            if !e.metadata.is_empty() {
                let map: BTreeMap<&str, &str> = e.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                self.last_json = serde_json::to_string(&map).unwrap_or_default();
            }
        }
        if e.metadata.is_empty() {
            self.metadata.append_null();
        } else {
            self.metadata.append_value(&self.last_json);
        }
        self.rows += 1;
        same
    }

    fn len(&self) -> usize {
        self.rows
    }

    fn finish(&mut self) -> Result<RecordBatch> {
        self.rows = 0;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.stream.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.line.finish()),
            Arc::new(self.metadata.finish()),
        ];
        Ok(RecordBatch::try_new(data_schema(), cols)?)
    }
}

/// Distinct metadata pairs a granule document remembers to add once.
const GRANULE_METADATA_REMEMBERED: usize = 32;

/// The index document of one granule, filled line by line.
struct GranuleDoc {
    number: u32,
    doc: TantivyDocument,
    fields: IndexFields,
    empty: bool,
    /// Structured-metadata pairs already in `doc` (a granule's lines
    /// mostly share a few, and a term is indexed once per document
    /// anyway).
    metadata: Vec<(String, String)>,
}

impl GranuleDoc {
    fn new(fields: &IndexFields, number: u32) -> Self {
        GranuleDoc {
            number,
            doc: TantivyDocument::default(),
            fields: fields.clone(),
            empty: true,
            metadata: Vec::new(),
        }
    }

    /// Adds the structured metadata of `e` (its line terms, and whether
    /// one is too long to index, are collected apart: see
    /// [`GranuleTerms`]).
    ///
    /// `same_as_previous_row`: `e` carries the metadata of the row before
    /// it, so a granule that holds that row already has its pairs.
    fn add(&mut self, e: &LogEntry, same_as_previous_row: bool) {
        if same_as_previous_row && !self.empty {
            return;
        }
        self.empty = false;
        for pair in &e.metadata {
            if self.metadata.contains(pair) {
                continue;
            }
            self.doc.add_text(self.fields.meta, format!("{}={}", pair.0, pair.1));
            // Unique pairs (a trace id per line) are not remembered: the
            // list stays short to search.
            if self.metadata.len() < GRANULE_METADATA_REMEMBERED {
                self.metadata.push(pair.clone());
            }
        }
    }

    /// The granule's document, without its line terms; `None` when it
    /// holds no line.
    fn finish(mut self) -> Option<(u32, TantivyDocument)> {
        if self.empty {
            return None;
        }
        self.doc.add_u64(self.fields.granule, u64::from(self.number));
        Some((self.number, self.doc))
    }
}

/// The opened index of a block: tantivy's and the rare terms.
struct BlockIndex {
    reader: IndexReader,
    fields: IndexFields,
    /// `None` in blocks of version 1, whose index holds every term.
    rare: Option<RareTerms>,
}

/// An open log block.
pub struct LogBlock {
    meta: LogBlockMeta,
    dir: PathBuf,
    streams: Vec<BlockStream>,
    /// `streams` by label value (ids are positions in `streams`).
    postings: Postings<u32>,
    disk_bytes: u64,
    index: OnceLock<std::result::Result<BlockIndex, String>>,
    term_list: OnceLock<std::result::Result<index::TermList, String>>,
    /// The data file's footer and page index, read at the first read (a
    /// block never changes; parsing them took a tenth of a selective
    /// search).
    reader_meta: OnceLock<ArrowReaderMetadata>,
    deleted: AtomicBool,
}

impl LogBlock {
    /// Opens the block in `dir` (its `meta.json` and `streams.json`; the
    /// index is opened on the first search).
    pub fn open(dir: &Path) -> Result<Self> {
        let meta: LogBlockMeta = read_json(&dir.join(META_FILE))?;
        if !(1..=LOG_BLOCK_VERSION).contains(&meta.version) {
            return Err(StorageError::CorruptBlock {
                block: dir.display().to_string(),
                reason: format!("unknown log block version {}", meta.version),
            });
        }
        let records: Vec<StreamRecord> = read_json(&dir.join(STREAMS_FILE))?;
        let streams = records
            .into_iter()
            .map(|r| BlockStream {
                key: Arc::new(StreamKey {
                    tenant: r.tenant,
                    labels: Labels::from_pairs(r.labels),
                }),
                first_row: r.first_row,
                rows: r.rows,
                min_t: r.min_t,
                max_t: r.max_t,
            })
            .collect::<Vec<_>>();
        Ok(LogBlock {
            disk_bytes: dir_size(dir),
            meta,
            dir: dir.to_path_buf(),
            postings: {
                let mut p = Postings::new();
                for (no, s) in streams.iter().enumerate() {
                    p.push(no as u32, &s.key.labels);
                }
                p
            },
            streams,
            index: OnceLock::new(),
            term_list: OnceLock::new(),
            reader_meta: OnceLock::new(),
            deleted: AtomicBool::new(false),
        })
    }

    /// The block's metadata.
    pub fn meta(&self) -> &LogBlockMeta {
        &self.meta
    }

    /// Bytes of the block's files (data, index, metadata).
    pub fn disk_bytes(&self) -> u64 {
        self.disk_bytes
    }

    /// Marks the block for deletion: its directory is removed once the
    /// last reader lets go of it.
    pub fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::SeqCst);
    }

    /// The streams `q` selects whose time range overlaps its range, in
    /// row order.
    fn selected_streams<'s>(&'s self, q: &'s LogSelect) -> impl Iterator<Item = &'s BlockStream> + 's {
        q.select_by_postings(&self.postings, |no| self.streams[no as usize].key.tenant.as_str())
            .into_iter()
            .map(|no| &self.streams[no as usize])
            .filter(move |s| q.overlaps(s.min_t, s.max_t))
    }

    /// Keys of the streams `q` selects whose time range overlaps it.
    pub fn stream_keys(&self, q: &LogSelect, out: &mut Vec<Arc<StreamKey>>) {
        if !q.overlaps(self.meta.min_t, self.meta.max_t) {
            return;
        }
        for s in self.selected_streams(q) {
            out.push(s.key.clone());
        }
    }

    /// Adds the entries `q` selects to `out`; `scanned` counts the bytes
    /// of lines read, against `q.max_bytes`.
    pub fn select(&self, q: &LogSelect, out: &mut Vec<LogStream>, scanned: &AtomicU64) -> Result<()> {
        if !q.overlaps(self.meta.min_t, self.meta.max_t) {
            return Ok(());
        }
        let mut ranges: Vec<(u32, u32)> = self
            .selected_streams(q)
            .map(|s| (s.first_row, s.first_row + s.rows))
            .collect();
        if ranges.is_empty() {
            return Ok(());
        }
        if !q.contains.is_empty()
            && let Some(granules) = self.search_granules(&q.contains)?
        {
            ranges = intersect_granules(&ranges, &granules, self.meta.granule_rows);
        }
        if ranges.is_empty() {
            return Ok(());
        }
        let lines = q.line_matcher();
        let keep = |ts: i64, line: &str| {
            let len = line.len() as u64;
            let total = scanned.fetch_add(len, Ordering::Relaxed) + len;
            if q.max_bytes > 0 && total > q.max_bytes {
                return Err(StorageError::LimitExceeded(format!(
                    "the query would read more than {} bytes of log lines (limit query.max_bytes_scanned); narrow the selector or the time range",
                    q.max_bytes
                )));
            }
            Ok(ts >= q.start && ts < q.end && lines.matches(line))
        };
        self.read_rows(&ranges, !q.skip_lines, keep, |stream, entry| {
            push_entry(out, &stream.key, entry);
            Ok(())
        })
    }

    /// Every entry of the block, stream by stream (for compaction).
    pub fn read_all(&self) -> Result<Vec<LogStream>> {
        let mut out: Vec<LogStream> = Vec::new();
        let all = [(0u32, u32::try_from(self.meta.entries).unwrap_or(u32::MAX))];
        self.read_rows(
            &all,
            true,
            |_, _| Ok(true),
            |stream, entry| {
                push_entry(&mut out, &stream.key, entry);
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Granules that may hold lines containing every needle; `None` when
    /// the index cannot narrow them.
    fn search_granules(&self, needles: &[String]) -> Result<Option<Vec<u32>>> {
        let BlockIndex { reader, fields, rare } = match self.index.get_or_init(|| self.open_index()) {
            Ok(x) => x,
            Err(e) => {
                return Err(StorageError::CorruptBlock {
                    block: self.meta.id.clone(),
                    reason: e.clone(),
                });
            }
        };
        let searcher = reader.searcher();
        // The term list is built on the first search that needs it and kept
        // in memory with the block (about the size of its dictionary).
        let needs_list = needles.iter().any(|n| {
            index::needle_tokens(n)
                .iter()
                .all(|t| !matches!(t, index::TokenNeed::Exact(_) | index::TokenNeed::Prefix(_)))
        });
        let list = if needs_list {
            let built = self
                .term_list
                .get_or_init(|| index::TermList::build(&searcher, fields, rare.as_ref()));
            built.as_ref().ok()
        } else {
            None
        };
        let Some(query) = index::granule_query(&searcher, fields, needles, list, rare.as_ref())? else {
            return Ok(None);
        };
        let granules = searcher
            .search(query.as_ref(), &GranuleCollector)
            .map_err(|e| index::tantivy_err(&self.dir, e))?;
        Ok(Some(granules))
    }

    fn open_index(&self) -> std::result::Result<BlockIndex, String> {
        let dir = self.dir.join(INDEX_DIR);
        let index: Index = index::open_index(&dir).map_err(|e| e.to_string())?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e: tantivy::TantivyError| e.to_string())?;
        let rare = RareTerms::open(&self.dir.join(RARE_TERMS_FILE)).map_err(|e| e.to_string())?;
        if rare.is_none() && self.meta.version >= 2 {
            return Err(format!("{RARE_TERMS_FILE} is missing"));
        }
        Ok(BlockIndex {
            reader,
            fields: index::index_fields(),
            rare,
        })
    }

    /// Reads the rows in `ranges` (ascending, disjoint) and hands those
    /// `keep` accepts (by time and line) to `f` with their stream; only
    /// those are copied out and have their metadata parsed.
    ///
    /// With `with_lines` false the line column is not read (entries come
    /// with empty lines): for reads that only count.
    fn read_rows(
        &self,
        ranges: &[(u32, u32)],
        with_lines: bool,
        mut keep: impl FnMut(i64, &str) -> Result<bool>,
        mut f: impl FnMut(&BlockStream, LogEntry) -> Result<()>,
    ) -> Result<()> {
        let path = self.dir.join(DATA_FILE);
        let file = File::open(&path).map_err(|e| StorageError::io("open", &path, e))?;
        let meta = match self.reader_meta.get() {
            Some(m) => m.clone(),
            None => {
                let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
                let m = ArrowReaderMetadata::load(&file, options)?;
                self.reader_meta.get_or_init(|| m).clone()
            }
        };
        let group_rows: Vec<u64> = meta
            .metadata()
            .row_groups()
            .iter()
            .map(|g| u64::try_from(g.num_rows()).unwrap_or(0))
            .collect();
        let (groups, selectors) = select_row_groups(&group_rows, ranges);
        if groups.is_empty() {
            return Ok(());
        }
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta);
        let columns: &[usize] = if with_lines { &[0, 1, 2, 3] } else { &[0, 1, 3] };
        let mask = ProjectionMask::roots(builder.parquet_schema(), columns.iter().copied());
        let reader = builder
            .with_projection(mask)
            .with_row_groups(groups)
            .with_row_selection(RowSelection::from(selectors))
            .with_batch_size(BATCH_ROWS)
            .build()?;
        let (mut last_json, mut last_metadata): (Option<String>, Vec<(String, String)>) = (None, Vec::new());
        for batch in reader {
            let batch = batch?;
            let stream_col = batch.column(0).as_primitive::<UInt32Type>();
            let ts = batch.column(1).as_primitive::<Int64Type>();
            let line = with_lines.then(|| batch.column(2).as_string::<i32>());
            let metadata = batch.column(if with_lines { 3 } else { 2 }).as_string::<i32>();
            for i in 0..batch.num_rows() {
                let text = line.map_or("", |l| l.value(i));
                if !keep(ts.value(i), text)? {
                    continue;
                }
                let sno = stream_col.value(i) as usize;
                let stream = self.streams.get(sno).ok_or_else(|| StorageError::CorruptBlock {
                    block: self.meta.id.clone(),
                    reason: format!("row names stream {sno}, the block has {}", self.streams.len()),
                })?;
                let metadata = if metadata.is_null(i) {
                    Vec::new()
                } else {
                    // Rows of a stream mostly repeat their metadata: parse
                    // each run of equal objects once.
                    let json = metadata.value(i);
                    if last_json.as_deref() != Some(json) {
                        let m: BTreeMap<String, String> =
                            serde_json::from_str(json).map_err(|e| StorageError::CorruptBlock {
                                block: self.meta.id.clone(),
                                reason: format!("metadata column: {e}"),
                            })?;
                        last_metadata = m.into_iter().collect();
                        last_json = Some(json.to_string());
                    }
                    last_metadata.clone()
                };
                f(
                    stream,
                    LogEntry {
                        ts: ts.value(i),
                        line: text.to_string(),
                        metadata,
                    },
                )?;
            }
        }
        Ok(())
    }
}

impl Drop for LogBlock {
    fn drop(&mut self) {
        if self.deleted.load(Ordering::SeqCst)
            && let Err(e) = fs::remove_dir_all(&self.dir)
        {
            tracing::warn!(block = %self.dir.display(), error = %e, "logs: could not delete a retired block");
        }
    }
}

/// The row groups (of `group_rows` rows each) that hold rows of `ranges`
/// (sorted, disjoint `[from, to)` row numbers of the file), and a selection
/// of those rows counted over the chosen groups only. A reader given the
/// groups opens nothing of the others: each column chunk it opens costs a
/// zstd compressor and decompressor (parquet creates both per chunk), a
/// tenth of a needle search when every group was opened to be skipped.
fn select_row_groups(group_rows: &[u64], ranges: &[(u32, u32)]) -> (Vec<usize>, Vec<RowSelector>) {
    let mut groups = Vec::new();
    let mut selectors = Vec::new();
    let mut next = 0usize;
    let mut group_start = 0u64;
    for (g, &rows) in group_rows.iter().enumerate() {
        let group_end = group_start + rows;
        let mut cursor = group_start;
        let mut picked = Vec::new();
        while let Some(&(from, to)) = ranges.get(next) {
            let (from, to) = (u64::from(from), u64::from(to));
            if from >= group_end {
                break;
            }
            let (a, b) = (from.max(cursor), to.min(group_end));
            if b > a {
                if a > cursor {
                    picked.push(RowSelector::skip((a - cursor) as usize));
                }
                picked.push(RowSelector::select((b - a) as usize));
                cursor = b;
            }
            if to > group_end {
                break; // The range goes on in the next group.
            }
            next += 1;
        }
        if !picked.is_empty() {
            if group_end > cursor {
                picked.push(RowSelector::skip((group_end - cursor) as usize));
            }
            groups.push(g);
            selectors.extend(picked);
        }
        group_start = group_end;
    }
    (groups, selectors)
}

/// Appends `entry` to the last stream of `out` when it is `key`'s (rows
/// come stream by stream), else starts a new one.
fn push_entry(out: &mut Vec<LogStream>, key: &Arc<StreamKey>, entry: LogEntry) {
    match out.last_mut() {
        Some(last) if Arc::ptr_eq(&last.key, key) => last.entries.push(entry),
        _ => out.push(LogStream {
            key: key.clone(),
            entries: vec![entry],
        }),
    }
}

/// Rows of `ranges` that fall in one of `granules` (sorted).
fn intersect_granules(ranges: &[(u32, u32)], granules: &[u32], granule_rows: u32) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &(from, to) in ranges {
        let first = granules.partition_point(|&g| (g + 1).saturating_mul(granule_rows) <= from);
        for &g in &granules[first..] {
            let gs = g.saturating_mul(granule_rows);
            if gs >= to {
                break;
            }
            let (a, b) = (gs.max(from), gs.saturating_add(granule_rows).min(to));
            match out.last_mut() {
                Some(last) if last.1 == a => last.1 = b,
                _ => out.push((a, b)),
            }
        }
    }
    out
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(|e| StorageError::io("read", path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| StorageError::CorruptBlock {
        block: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Collects the granule numbers of matching index documents, sorted.
struct GranuleCollector;

struct GranuleSegmentCollector {
    column: tantivy::columnar::Column<u64>,
    out: Vec<u32>,
}

impl Collector for GranuleCollector {
    type Fruit = Vec<u32>;
    type Child = GranuleSegmentCollector;

    fn for_segment(
        &self,
        _segment: tantivy::SegmentOrdinal,
        reader: &tantivy::SegmentReader,
    ) -> tantivy::Result<GranuleSegmentCollector> {
        Ok(GranuleSegmentCollector {
            column: reader.fast_fields().u64("granule")?,
            out: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<u32>>) -> tantivy::Result<Vec<u32>> {
        let mut all: Vec<u32> = fruits.into_iter().flatten().collect();
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }
}

impl SegmentCollector for GranuleSegmentCollector {
    type Fruit = Vec<u32>;

    fn collect(&mut self, doc: tantivy::DocId, _score: tantivy::Score) {
        if let Some(g) = self.column.first(doc) {
            self.out.push(u32::try_from(g).unwrap_or(u32::MAX));
        }
    }

    fn harvest(self) -> Vec<u32> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granules_cut_row_ranges() {
        assert_eq!(
            intersect_granules(&[(0, 1000)], &[1, 2, 5], 128),
            vec![(128, 384), (640, 768)]
        );
        assert_eq!(
            intersect_granules(&[(100, 140), (300, 310)], &[0, 2], 128),
            vec![(100, 128), (300, 310)]
        );
        assert_eq!(intersect_granules(&[(10, 20)], &[3], 128), vec![]);
    }

    /// Every granule's document holds each metadata pair of its lines,
    /// shared ones (added once) and unique ones past what it remembers;
    /// each row reads back with its own.
    #[test]
    fn granule_documents_hold_every_metadata_pair_of_their_lines() {
        let dir = tempfile::tempdir().expect("tmp");
        let dirs = BlockDirs {
            blocks: dir.path().join("blocks"),
            staging: dir.path().join("staging"),
        };
        fs::create_dir_all(&dirs.blocks).expect("blocks dir");
        let key = Arc::new(StreamKey {
            tenant: "t".into(),
            labels: Labels::from_pairs([("app", "a")]),
        });
        let rows = GRANULE_ROWS as i64 * 2 + 10;
        let entries: Vec<LogEntry> = (0..rows)
            .map(|i| {
                // Runs of equal metadata (three rows of a level), broken
                // by a row with a trace of its own every third row (more
                // traces per granule than its document remembers).
                let mut metadata = vec![("level".into(), ["info", "warn"][(i / 3 % 2) as usize].into())];
                if i % 3 == 0 {
                    metadata.push(("trace".into(), format!("t{i}")));
                }
                LogEntry {
                    ts: i,
                    line: format!("line {i}"),
                    metadata,
                }
            })
            .collect();
        let block = write_block(&dirs, [(&key, entries.as_slice())], 3, 0, Vec::new()).expect("write");
        let BlockIndex { reader, fields, .. } = block.open_index().expect("index");
        let searcher = reader.searcher();
        let granules = |name: &str, value: &str| {
            searcher
                .search(index::metadata_query(&fields, name, value).as_ref(), &GranuleCollector)
                .expect("search")
        };
        assert_eq!(granules("level", "warn"), vec![0, 1, 2]);
        for i in (0..rows).step_by(3) {
            assert_eq!(
                granules("trace", &format!("t{i}")),
                vec![(i / GRANULE_ROWS as i64) as u32],
                "trace of row {i}"
            );
        }
        assert!(granules("trace", "none").is_empty());
        // And every row reads back with its own metadata.
        let back = block.read_all().expect("read");
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].entries, entries);

        // One run of equal metadata across granules: each granule's
        // document holds it, though each row is the same as the one before.
        let entries: Vec<LogEntry> = (0..rows)
            .map(|i| LogEntry {
                ts: i,
                line: format!("line {i}"),
                metadata: vec![("env".into(), "prod".into())],
            })
            .collect();
        let block = write_block(&dirs, [(&key, entries.as_slice())], 3, 0, Vec::new()).expect("write");
        let BlockIndex { reader, fields, .. } = block.open_index().expect("index");
        let found = reader
            .searcher()
            .search(
                index::metadata_query(&fields, "env", "prod").as_ref(),
                &GranuleCollector,
            )
            .expect("search");
        assert_eq!(found, vec![0, 1, 2]);
    }

    #[test]
    fn only_row_groups_holding_selected_rows_are_read() {
        let kinds = |sel: &[RowSelector]| -> Vec<(bool, usize)> { sel.iter().map(|s| (s.skip, s.row_count)).collect() };
        // Groups of 10, 10, 10, 5 rows. Rows 12..15 and 18..23 (crossing
        // into the third group); nothing of the first or the last.
        let (groups, sel) = select_row_groups(&[10, 10, 10, 5], &[(12, 15), (18, 23)]);
        assert_eq!(groups, vec![1, 2]);
        assert_eq!(
            kinds(&sel),
            vec![(true, 2), (false, 3), (true, 3), (false, 2), (false, 3), (true, 7)]
        );
        // Everything: every group, whole.
        let (groups, sel) = select_row_groups(&[10, 10, 10, 5], &[(0, 35)]);
        assert_eq!(groups, vec![0, 1, 2, 3]);
        assert_eq!(sel.iter().filter(|s| !s.skip).map(|s| s.row_count).sum::<usize>(), 35);
        // A range in the last group only; nothing selected at all.
        assert_eq!(select_row_groups(&[10, 10, 10, 5], &[(34, 35)]).0, vec![3]);
        assert_eq!(select_row_groups(&[10, 10], &[]).0, Vec::<usize>::new());
    }

    /// A block written by version 1 (every term in tantivy, tokenized by
    /// the line analyzer, no rare terms file; `storage/testdata`) answers
    /// line filters as a scan of it does.
    #[test]
    fn version_1_blocks_are_still_searched() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/log-block-v1");
        let dir = tempfile::tempdir().expect("tmp");
        let block_dir = dir.path().join("block");
        copy_tree(&fixture, &block_dir);
        let block = LogBlock::open(&block_dir).expect("open");
        assert_eq!(block.meta().version, 1);
        assert!(!block_dir.join(RARE_TERMS_FILE).exists());
        let everything = block.read_all().expect("read");
        let lines: Vec<&str> = everything
            .iter()
            .flat_map(|s| s.entries.iter().map(|e| e.line.as_str()))
            .collect();
        assert_eq!(lines.len(), 900);
        let mut needles: Vec<String> = ["error", "rror", "ünï", "été", "user=alice", "=200,", "nothing"]
            .map(String::from)
            .to_vec();
        for line in lines.iter().step_by(37) {
            let id = line
                .split([' ', '=', ',', '-'])
                .find(|w| w.len() > 5 && w.bytes().any(|b| b.is_ascii_digit()))
                .unwrap_or(line);
            needles.extend([
                id.to_string(),
                id[..3].to_string(),
                id[2..].to_string(),
                format!(" {id}"),
            ]);
        }
        let mut narrowed = 0;
        for needle in needles {
            let mut q = LogSelect::new("t", vec![], 0, i64::MAX);
            q.contains = vec![needle.clone()];
            let mut served = Vec::new();
            block.select(&q, &mut served, &AtomicU64::new(0)).expect("select");
            let served: Vec<(i64, String)> = served
                .into_iter()
                .flat_map(|s| s.entries.into_iter().map(|e| (e.ts, e.line)))
                .collect();
            let scanned: Vec<(i64, String)> = everything
                .iter()
                .flat_map(|s| s.entries.iter())
                .filter(|e| e.line.contains(&needle))
                .map(|e| (e.ts, e.line.clone()))
                .collect();
            assert_eq!(served, scanned, "needle {needle:?}");
            if block
                .search_granules(&q.contains)
                .expect("search")
                .is_some_and(|g| g.len() < 8)
            {
                narrowed += 1;
            }
        }
        assert!(narrowed > 20, "the index narrowed only {narrowed} searches");
    }

    fn copy_tree(from: &Path, to: &Path) {
        fs::create_dir_all(to).expect("mkdir");
        for entry in fs::read_dir(from).expect("ls") {
            let entry = entry.expect("entry");
            let dest = to.join(entry.file_name());
            if entry.file_type().expect("type").is_dir() {
                copy_tree(&entry.path(), &dest);
            } else {
                fs::copy(entry.path(), &dest).expect("copy");
            }
        }
    }
}
