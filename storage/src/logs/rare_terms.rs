//! The rare terms of a log block: line tokens that occur in one granule
//! only, kept beside the tantivy index in a compact sorted file.
//!
//! Most distinct tokens of logs occur once: message ids, hashes, long
//! numbers. In tantivy's dictionary each costs about 13 bytes of FST and
//! term info plus its postings, more than the id itself; here a term costs
//! its zstd-compressed, front-coded bytes and its granule number, and the
//! index keeps only the terms of two or more granules. A lookup reads one
//! chunk of [`CHUNK_TERMS`] terms.
//!
//! Layout (integers little-endian, varints LEB128):
//! - chunks, each a zstd frame of: `u32 n`; `n` × (varint bytes shared
//!   with the previous term, varint length of the rest, the rest); the
//!   `n` granules as `u32` split into byte planes (the `n` lowest bytes,
//!   then the `n` next, ...: 10 % smaller than whole `u32`s once
//!   compressed, as each plane is one kind of byte);
//! - the directory: per chunk `u64` offset, `u32` length, `u32` CRC-32 of
//!   the frame, varint length of its first term, the first term;
//! - the footer ([`FOOTER_BYTES`]): `u64` directory offset, `u32`
//!   directory length, `u32` CRC-32 of the directory, `u32` chunk count,
//!   the magic `SLRT`.
//!
//! Terms are sorted bytewise, so a prefix is a run of chunks.

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};

/// The file's name in a block directory.
pub const RARE_TERMS_FILE: &str = "rare_terms.bin";
/// Terms per compressed chunk: a lookup decompresses ~12 KB; 1024 terms
/// compressed 8 % better than 256 on the bench corpus's ids and numbers.
pub const CHUNK_TERMS: usize = 1024;
const MAGIC: &[u8; 4] = b"SLRT";
const FOOTER_BYTES: usize = 24;

/// `terms` in byte order of the term. Each is compared by its first
/// eight bytes, held beside it, before its bytes: most comparisons end
/// there, in registers, instead of in two terms' bytes scattered over the
/// block writer's arena (sorting a block's rare terms by their slices was
/// cache misses, most of writing this file).
fn sorted_by_term(terms: Vec<(&[u8], u32)>) -> Vec<(&[u8], u32)> {
    let prefix = |t: &[u8]| {
        let mut key = [0u8; 8];
        let n = t.len().min(8);
        key[..n].copy_from_slice(&t[..n]);
        u64::from_be_bytes(key)
    };
    let mut keyed: Vec<(u64, &[u8], u32)> = terms.into_iter().map(|(t, g)| (prefix(t), t, g)).collect();
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    keyed.into_iter().map(|(_, t, g)| (t, g)).collect()
}

/// Writes `terms` (each with its granule; any order, each term once) to
/// `path` at `zstd_level` and fsyncs it.
pub fn write_rare_terms(path: &Path, terms: Vec<(&[u8], u32)>, zstd_level: i32) -> Result<()> {
    let terms = sorted_by_term(terms);
    let file = File::create(path).map_err(|e| StorageError::io("create", path, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut compressor =
        zstd::bulk::Compressor::new(zstd_level).map_err(|e| StorageError::io("start zstd for", path, e))?;
    let mut directory = Vec::new();
    let mut raw = Vec::new();
    let mut offset = 0u64;
    let mut chunks = 0u32;
    for chunk in terms.chunks(CHUNK_TERMS) {
        raw.clear();
        raw.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        let mut prev: &[u8] = &[];
        for &(term, _) in chunk {
            let shared = prev.iter().zip(term).take_while(|(a, b)| a == b).count();
            put_varint(&mut raw, shared);
            put_varint(&mut raw, term.len() - shared);
            raw.extend_from_slice(&term[shared..]);
            prev = term;
        }
        for plane in 0..4 {
            raw.extend(chunk.iter().map(|&(_, granule)| granule.to_le_bytes()[plane]));
        }
        let frame = compressor
            .compress(&raw)
            .map_err(|e| StorageError::io("compress", path, e))?;
        out.write_all(&frame).map_err(|e| StorageError::io("write", path, e))?;
        directory.extend_from_slice(&offset.to_le_bytes());
        directory.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        directory.extend_from_slice(&crc32fast::hash(&frame).to_le_bytes());
        put_varint(&mut directory, chunk[0].0.len());
        directory.extend_from_slice(chunk[0].0);
        offset += frame.len() as u64;
        chunks += 1;
    }
    let mut footer = Vec::with_capacity(FOOTER_BYTES);
    footer.extend_from_slice(&offset.to_le_bytes());
    footer.extend_from_slice(&(directory.len() as u32).to_le_bytes());
    footer.extend_from_slice(&crc32fast::hash(&directory).to_le_bytes());
    footer.extend_from_slice(&chunks.to_le_bytes());
    footer.extend_from_slice(MAGIC);
    out.write_all(&directory)
        .map_err(|e| StorageError::io("write", path, e))?;
    out.write_all(&footer).map_err(|e| StorageError::io("write", path, e))?;
    let file = out
        .into_inner()
        .map_err(|e| StorageError::io("flush", path, e.into_error()))?;
    file.sync_all().map_err(|e| StorageError::io("fsync", path, e))
}

/// Where one chunk is.
#[derive(Debug)]
struct ChunkRef {
    offset: u64,
    len: u32,
    crc: u32,
    first: Box<[u8]>,
}

/// An open rare-terms file.
#[derive(Debug)]
pub struct RareTerms {
    file: File,
    path: PathBuf,
    chunks: Vec<ChunkRef>,
}

/// A prefix lookup that would read more chunks than allowed.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyTerms;

impl RareTerms {
    /// Opens the file at `path` (its directory is read into memory);
    /// `None` when there is none (blocks written before it existed keep
    /// every term in the index).
    pub fn open(path: &Path) -> Result<Option<Self>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("open", path, e)),
        };
        let size = file.metadata().map_err(|e| StorageError::io("stat", path, e))?.len();
        let corrupt = |reason: String| StorageError::CorruptBlock {
            block: path.display().to_string(),
            reason,
        };
        if size < FOOTER_BYTES as u64 {
            return Err(corrupt(format!(
                "rare terms file of {size} bytes, shorter than its footer"
            )));
        }
        let mut footer = [0u8; FOOTER_BYTES];
        file.read_exact_at(&mut footer, size - FOOTER_BYTES as u64)
            .map_err(|e| StorageError::io("read", path, e))?;
        if &footer[20..24] != MAGIC {
            return Err(corrupt("rare terms file has no SLRT footer".into()));
        }
        let dir_offset = u64::from_le_bytes(le(&footer[0..8]));
        let dir_len = u32::from_le_bytes(le(&footer[8..12]));
        let dir_crc = u32::from_le_bytes(le(&footer[12..16]));
        let count = u32::from_le_bytes(le(&footer[16..20]));
        if dir_offset + u64::from(dir_len) + FOOTER_BYTES as u64 != size {
            return Err(corrupt("rare terms directory does not end at the footer".into()));
        }
        let mut directory = vec![0u8; dir_len as usize];
        file.read_exact_at(&mut directory, dir_offset)
            .map_err(|e| StorageError::io("read", path, e))?;
        if crc32fast::hash(&directory) != dir_crc {
            return Err(corrupt("rare terms directory fails its checksum".into()));
        }
        let mut chunks = Vec::with_capacity(count as usize);
        let mut at = 0usize;
        for _ in 0..count {
            let fixed = directory
                .get(at..at + 16)
                .ok_or_else(|| corrupt("rare terms directory cut short".into()))?;
            let offset = u64::from_le_bytes(le(&fixed[0..8]));
            let len = u32::from_le_bytes(le(&fixed[8..12]));
            let crc = u32::from_le_bytes(le(&fixed[12..16]));
            at += 16;
            let first_len =
                get_varint(&directory, &mut at).ok_or_else(|| corrupt("rare terms directory cut short".into()))?;
            let first = directory
                .get(at..at + first_len)
                .ok_or_else(|| corrupt("rare terms directory cut short".into()))?;
            at += first_len;
            if offset + u64::from(len) > dir_offset {
                return Err(corrupt("rare terms chunk past the directory".into()));
            }
            chunks.push(ChunkRef {
                offset,
                len,
                crc,
                first: first.into(),
            });
        }
        Ok(Some(RareTerms {
            file,
            path: path.to_path_buf(),
            chunks,
        }))
    }

    /// The granule holding `term`, if it is a rare term.
    pub fn granule_of(&self, term: &[u8]) -> Result<Option<u32>> {
        let i = self.chunks.partition_point(|c| *c.first <= *term);
        if i == 0 {
            return Ok(None);
        }
        let mut found = None;
        self.read_chunk(i - 1, |t, g| {
            if t == term {
                found = Some(g);
            }
        })?;
        Ok(found)
    }

    /// The granules of every rare term starting with `prefix` (sorted,
    /// each once), or [`TooManyTerms`] when they fill more than
    /// `max_chunks` chunks.
    pub fn granules_with_prefix(
        &self,
        prefix: &[u8],
        max_chunks: usize,
    ) -> Result<std::result::Result<Vec<u32>, TooManyTerms>> {
        let from = self.chunks.partition_point(|c| *c.first < *prefix).saturating_sub(1);
        let to = from + self.chunks[from..].partition_point(|c| *c.first < *prefix || c.first.starts_with(prefix));
        if to - from > max_chunks {
            return Ok(Err(TooManyTerms));
        }
        let mut out = Vec::new();
        for i in from..to {
            self.read_chunk(i, |t, g| {
                if t.starts_with(prefix) {
                    out.push(g);
                }
            })?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(Ok(out))
    }

    /// Calls `f` with every term and its granule, in term order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], u32)) -> Result<()> {
        for i in 0..self.chunks.len() {
            self.read_chunk(i, &mut f)?;
        }
        Ok(())
    }

    fn read_chunk(&self, i: usize, mut f: impl FnMut(&[u8], u32)) -> Result<()> {
        let c = &self.chunks[i];
        let corrupt = |reason: &str| StorageError::CorruptBlock {
            block: self.path.display().to_string(),
            reason: format!("rare terms chunk {i}: {reason}"),
        };
        let mut frame = vec![0u8; c.len as usize];
        self.file
            .read_exact_at(&mut frame, c.offset)
            .map_err(|e| StorageError::io("read", &self.path, e))?;
        if crc32fast::hash(&frame) != c.crc {
            return Err(corrupt("fails its checksum"));
        }
        let raw = decompress(&frame).map_err(|e| corrupt(&e.to_string()))?;
        let n = raw.get(0..4).map_or(0, |b| u32::from_le_bytes(le(b))) as usize;
        let granules_at = raw
            .len()
            .checked_sub(4 * n)
            .filter(|&g| g >= 4)
            .ok_or_else(|| corrupt("cut short"))?;
        let mut at = 4;
        let mut term: Vec<u8> = Vec::with_capacity(64);
        for k in 0..n {
            let shared = get_varint(&raw[..granules_at], &mut at).ok_or_else(|| corrupt("cut short"))?;
            let rest = get_varint(&raw[..granules_at], &mut at).ok_or_else(|| corrupt("cut short"))?;
            let suffix = raw
                .get(at..at + rest)
                .filter(|_| at + rest <= granules_at && shared <= term.len())
                .ok_or_else(|| corrupt("cut short"))?;
            term.truncate(shared);
            term.extend_from_slice(suffix);
            at += rest;
            let plane = |p: usize| u32::from(raw[granules_at + p * n + k]) << (8 * p);
            f(&term, plane(0) | plane(1) | plane(2) | plane(3));
        }
        Ok(())
    }
}

/// Most bytes a chunk holds decompressed: 1024 terms of at most 384
/// bytes (128 bytes lower-cased) with their lengths and granules.
const MAX_CHUNK_RAW: usize = 1 << 20;

thread_local! {
    /// A decompression context per thread: making one for every chunk
    /// read cost more than reading it.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn decompress(frame: &[u8]) -> std::io::Result<Vec<u8>> {
    let capacity = zstd::bulk::Decompressor::upper_bound(frame)
        .filter(|&n| n <= MAX_CHUNK_RAW)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no plausible decompressed size"))?;
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let d = match &mut *slot {
            Some(d) => d,
            None => slot.insert(zstd::bulk::Decompressor::new()?),
        };
        d.decompress(frame, capacity)
    })
}

fn le<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[..N]);
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], at: &mut usize) -> Option<usize> {
    let mut v = 0usize;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= usize::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::test_rng::TestRng;
    use super::*;

    /// Terms shorter and longer than the eight bytes compared first,
    /// sharing long prefixes, holding zero bytes and bytes above 0x7f:
    /// the order is the plain byte order.
    #[test]
    fn terms_sort_in_byte_order() {
        let mut rng = TestRng::new(0xb17e5);
        let alphabet = [0u8, 1, b'0', b'a', b'z', 0x7f, 0x80, 0xff];
        let owned: Vec<Vec<u8>> = (0..5000)
            .map(|_| {
                let mut t = b"sharedprefix"[..rng.below(13)].to_vec();
                for _ in 0..rng.below(12) {
                    t.push(alphabet[rng.below(alphabet.len())]);
                }
                t
            })
            .collect();
        let terms: Vec<(&[u8], u32)> = owned
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_slice(), i as u32))
            .collect();
        let mut want = terms.clone();
        want.sort_by(|a, b| a.0.cmp(b.0));
        let got = sorted_by_term(terms);
        let order = |v: &[(&[u8], u32)]| v.iter().map(|(t, _)| t.to_vec()).collect::<Vec<_>>();
        assert_eq!(order(&got), order(&want));
        // Each term keeps its granule (equal terms in any order).
        let mut pairs = got.clone();
        pairs.sort();
        want.sort();
        assert_eq!(pairs, want);
    }

    fn terms(n: usize) -> Vec<(Vec<u8>, u32)> {
        // Ids, numbers and words, as logs have them; deterministic.
        let mut rng = TestRng::new(0x9e37_79b9_7f4a_7c15);
        let mut out = Vec::new();
        for i in 0..n {
            let state = rng.next_u64();
            let t = match i % 3 {
                0 => format!("{state:016x}"),
                1 => format!("{}", state % 10_000_000),
                _ => format!("w{}x", state % 997),
            };
            // Granules of a block, and now and then one using all four
            // bytes.
            let granule = if i % 5 == 0 {
                (state >> 33) as u32
            } else {
                (state % 30_000) as u32
            };
            out.push((t.into_bytes(), granule));
        }
        out.sort();
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }

    fn written(all: &[(Vec<u8>, u32)]) -> (tempfile::TempDir, RareTerms) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(RARE_TERMS_FILE);
        let mut shuffled: Vec<(&[u8], u32)> = all.iter().map(|(t, g)| (t.as_slice(), *g)).collect();
        shuffled.reverse();
        write_rare_terms(&path, shuffled, 3).expect("write");
        let rare = RareTerms::open(&path).expect("open").expect("present");
        (dir, rare)
    }

    #[test]
    fn every_term_is_found_with_its_granule_and_nothing_else() {
        let all = terms(15_000);
        let (_dir, rare) = written(&all);
        assert!(rare.chunks.len() > 10, "many chunks: {}", rare.chunks.len());
        // The first and last of every chunk, and a spread of the rest.
        for (t, g) in all
            .iter()
            .step_by(7)
            .chain(all.iter().skip(CHUNK_TERMS - 1).step_by(CHUNK_TERMS))
        {
            assert_eq!(
                rare.granule_of(t).expect("read"),
                Some(*g),
                "{}",
                String::from_utf8_lossy(t)
            );
        }
        for absent in [&b""[..], b"0", b"zzzz", b"w5", b"0000000000000000x"] {
            assert_eq!(rare.granule_of(absent).expect("read"), None);
        }
        let mut listed = Vec::new();
        rare.for_each(|t, g| listed.push((t.to_vec(), g))).expect("read");
        assert_eq!(listed, all);
    }

    #[test]
    fn a_prefix_gives_the_granules_of_the_terms_it_starts() {
        let all = terms(12_000);
        let (_dir, rare) = written(&all);
        for prefix in [&b"w1"[..], b"a", b"12", b"ff", b"w99", b"", b"zz"] {
            let mut want: Vec<u32> = all
                .iter()
                .filter(|(t, _)| t.starts_with(prefix))
                .map(|(_, g)| *g)
                .collect();
            want.sort_unstable();
            want.dedup();
            let got = rare.granules_with_prefix(prefix, usize::MAX).expect("read");
            assert_eq!(got, Ok(want), "{}", String::from_utf8_lossy(prefix));
        }
        assert_eq!(rare.granules_with_prefix(b"", 3).expect("read"), Err(TooManyTerms));
    }

    #[test]
    fn a_missing_file_is_none_and_a_damaged_one_an_error() {
        let (dir, _) = written(&terms(1000));
        assert!(RareTerms::open(&dir.path().join("absent")).expect("open").is_none());
        let path = dir.path().join(RARE_TERMS_FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        // A flipped byte in the first chunk: found at the lookup.
        bytes[10] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        let rare = RareTerms::open(&path).expect("directory intact").expect("present");
        let err = rare.for_each(|_, _| ()).expect_err("checksum");
        assert!(err.to_string().contains("checksum"), "{err}");
        // A cut file: found at the open.
        std::fs::write(&path, &bytes[..bytes.len() - 3]).expect("write");
        assert!(RareTerms::open(&path).is_err());
        // An empty set of terms is a valid file.
        write_rare_terms(&path, Vec::new(), 3).expect("write");
        let rare = RareTerms::open(&path).expect("open").expect("present");
        assert_eq!(rare.granule_of(b"x").expect("read"), None);
        assert_eq!(rare.granules_with_prefix(b"x", 1).expect("read"), Ok(vec![]));
    }
}
