//! Start-up: load blocks, replay the write-ahead log, start the writer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64};

use object_store::path::Path as ObjectPath;
use parking_lot::{Mutex, RwLock};

use super::{Db, DbOptions, Heads, Inner};
use crate::block::{Block, BlockMeta, BlockStore, META_FILE};
use crate::error::{Result, StorageError};
use crate::head::{Head, SeriesRegistry};
use crate::intern::LabelInterner;
use crate::metadata::MetadataStore;
use crate::stats::StorageStats;
use crate::wal::{self, Wal, WalEntry, WalOptions};

impl Db {
    /// Opens (or creates) the database in `opts.data_dir` with blocks on
    /// the local file system below it.
    pub async fn open(opts: DbOptions) -> Result<Self> {
        let store = BlockStore::local(opts.data_dir.clone())?;
        Self::open_with_store(opts, store).await
    }

    /// Opens the database with blocks in `store` (WAL stays local).
    pub async fn open_with_store(opts: DbOptions, store: BlockStore) -> Result<Self> {
        let stats = Arc::new(StorageStats::default());
        // Files of merges that did not finish before a crash.
        let staging = opts.data_dir.join("staging");
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| StorageError::io("remove", &staging, e))?;
        }
        let interner = Arc::new(LabelInterner::new());
        let blocks = load_blocks(&store, &interner).await?;
        let mut max_t = blocks.iter().map(|b| b.meta.max_t).max().unwrap_or(i64::MIN);

        let wal_dir = opts.data_dir.join("wal");
        std::fs::create_dir_all(&wal_dir).map_err(|e| StorageError::io("create dir", &wal_dir, e))?;
        let mut registry = SeriesRegistry::new();
        let head = Head::new();
        let mut unknown_refs = 0u64;
        let started = std::time::Instant::now();
        let report = wal::replay(&wal_dir, |entry| match entry {
            WalEntry::Series(list) => {
                for (r, labels) in list {
                    let h = labels.stable_hash();
                    registry.insert_with_ref(r, h, interner.intern(labels));
                }
            }
            WalEntry::Samples(list) => {
                let mut i = 0;
                while i < list.len() {
                    let r = list[i].0;
                    let mut j = i;
                    while j < list.len() && list[j].0 == r {
                        j += 1;
                    }
                    if registry.labels(r).is_some() {
                        let samples: Vec<_> = list[i..j].iter().map(|(_, s)| *s).collect();
                        head.insert(r, &samples, |s, _| max_t = max_t.max(s.t));
                    } else {
                        unknown_refs += (j - i) as u64;
                    }
                    i = j;
                }
            }
        })?;
        stats.wal_corruptions.add(report.corruptions);
        if unknown_refs > 0 {
            tracing::warn!(samples = unknown_refs, "wal: samples for unknown series skipped");
        }
        tracing::info!(
            records = report.records,
            samples = head.num_samples(),
            series = registry.len(),
            blocks = blocks.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "storage opened"
        );
        let next_segment = report.last_segment.map_or(1, |n| n + 1);
        let wal = Wal::start(
            WalOptions {
                dir: wal_dir,
                segment_bytes: opts.wal_segment_bytes,
                fsync: opts.wal_fsync,
            },
            next_segment,
            stats.clone(),
        )?;
        stats.head_series.set(registry.len() as u64);
        let db = Db {
            inner: Arc::new(Inner {
                metadata: Arc::new(MetadataStore::load(&opts.data_dir.join(super::METADATA_FILE))),
                opts,
                registry: RwLock::new(registry),
                heads: RwLock::new(Heads {
                    active: Arc::new(head),
                    flushing: Vec::new(),
                }),
                append_lock: RwLock::new(()),
                flush_lock: tokio::sync::Mutex::new(()),
                compaction_lock: tokio::sync::Mutex::new(()),
                wal,
                wal_boundary: Mutex::new(None),
                blocks: RwLock::new(blocks),
                store,
                interner,
                stats,
                max_t: AtomicI64::new(max_t),
                closed: AtomicBool::new(false),
            }),
        };
        db.refresh_gauges();
        Ok(db)
    }
}

/// Opens every complete block; removes incomplete ones and ones that a
/// compacted block has replaced.
async fn load_blocks(store: &BlockStore, interner: &LabelInterner) -> Result<Vec<Arc<Block>>> {
    let listing = store.list(&ObjectPath::from("blocks")).await?;
    let mut by_block: BTreeMap<String, Vec<ObjectPath>> = BTreeMap::new();
    for (path, _) in listing {
        let parts: Vec<_> = path.parts().collect();
        if parts.len() == 3 {
            by_block
                .entry(parts[1].as_ref().to_string())
                .or_default()
                .push(path.clone());
        }
    }
    let mut metas = Vec::new();
    for (id, files) in &by_block {
        let meta_path = ObjectPath::from(format!("blocks/{id}/{META_FILE}"));
        if !files.contains(&meta_path) {
            tracing::warn!(block = %id, "removing incomplete block (no meta.json)");
            remove_files(store, files).await?;
            store.remove_local_dir(&ObjectPath::from(format!("blocks/{id}")));
            continue;
        }
        let raw = store.get(&meta_path).await?;
        match serde_json::from_slice::<BlockMeta>(&raw) {
            Ok(meta) if meta.id == *id => metas.push(meta),
            Ok(meta) => {
                tracing::error!(block = %id, claimed = %meta.id, "block meta names another id; ignoring block")
            }
            Err(e) => {
                tracing::error!(block = %id, error = %e, "unreadable block meta; ignoring block")
            }
        }
    }
    let replaced: BTreeSet<String> = metas.iter().flat_map(|m| m.sources.iter().cloned()).collect();
    let mut blocks = Vec::new();
    for meta in metas {
        if replaced.contains(&meta.id) {
            tracing::info!(block = %meta.id, "removing block already merged into a compacted block");
            if let Some(files) = by_block.get(&meta.id) {
                remove_files(store, files).await?;
            }
            store.remove_local_dir(&ObjectPath::from(format!("blocks/{}", meta.id)));
            continue;
        }
        let id = meta.id.clone();
        match Block::open(store.clone(), meta, interner).await {
            Ok(b) => blocks.push(Arc::new(b)),
            Err(e) => {
                tracing::error!(block = %id, error = %e, "cannot open block; leaving it on disk and ignoring it")
            }
        }
    }
    blocks.sort_by(|a, b| a.meta.id.cmp(&b.meta.id));
    Ok(blocks)
}

/// Deletes a block's files, meta first so that a crash part-way leaves an
/// incomplete block (cleaned at start-up), never a block missing data.
pub(super) async fn remove_files(store: &BlockStore, files: &[ObjectPath]) -> Result<()> {
    let (metas, data): (Vec<&ObjectPath>, Vec<&ObjectPath>) =
        files.iter().partition(|p| p.filename() == Some(META_FILE));
    for p in metas.into_iter().chain(data) {
        store.delete(p).await?;
    }
    Ok(())
}
