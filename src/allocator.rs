//! The process's memory allocator: jemalloc.
//!
//! Measured on the remote-write benchmark (`benches/README.md`), glibc's
//! malloc kept far more resident than the heap held at its peak (memory
//! freed by a flush or a merge stayed in per-thread arenas) and mimalloc
//! kept more still; jemalloc lowered the peak and cost less CPU per sample.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// What the allocator holds, in bytes, as of the call.
pub struct AllocatorStats {
    /// Bytes the program holds in allocations.
    pub allocated: u64,
    /// Bytes in pages kept active for those allocations.
    pub active: u64,
    /// Bytes resident for the allocator: its metadata and the unused pages
    /// it keeps for reuse included.
    pub resident: u64,
}

/// Reads the allocator's statistics; `None` if jemalloc cannot be asked.
pub fn stats() -> Option<AllocatorStats> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // The statistics are a snapshot, refreshed by advancing the epoch.
    epoch::advance().ok()?;
    Some(AllocatorStats {
        allocated: stats::allocated::read().ok()? as u64,
        active: stats::active::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
    })
}
