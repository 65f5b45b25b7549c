//! Compressed in-memory sample chunks for the head: Gorilla-style
//! encoding (delta-of-delta timestamps, XOR'ed values), as Prometheus'
//! head chunks. A regular 15 s series takes 2-6 bytes per sample instead
//! of 16, and every value keeps its exact bits (staleness markers too).
//!
//! A series is a run of sealed chunks plus one open chunk that in-order
//! samples are appended to bit by bit; an out-of-order sample re-encodes
//! the one chunk it falls into.

use crate::head::InsertOutcome;
use crate::sample::Sample;
use crate::wal::{Reader, put_uvarint, unzigzag, zigzag};

/// Samples per chunk before a new one is started.
const CHUNK_SAMPLES: u16 = 120;

/// Appends bits to a byte buffer, most significant bit first.
#[derive(Debug, Clone, Default)]
struct BitWriter {
    buf: Vec<u8>,
    /// Bits still free in the last byte (0 = start a new byte).
    free: u8,
}

impl BitWriter {
    fn bit(&mut self, b: bool) {
        if self.free == 0 {
            self.buf.push(0);
            self.free = 8;
        }
        self.free -= 1;
        if b && let Some(last) = self.buf.last_mut() {
            *last |= 1 << self.free;
        }
    }

    /// Writes the low `n` bits of `v` (n <= 64).
    fn bits(&mut self, v: u64, n: u8) {
        if n > 56 {
            // The bits left free in the last byte plus `n` may not fit a
            // word: write the high part first.
            self.bits(v >> 32, n - 32);
            self.bits(v, 32);
            return;
        }
        if n == 0 {
            return;
        }
        let v = v & ((1u64 << n) - 1);
        // The last byte's used bits and `v`, left-aligned in one word; the
        // buffer keeps no spare bits beyond the last byte.
        let (used, last) = match self.buf.last() {
            Some(&b) if self.free > 0 => (8 - self.free, u64::from(b)),
            _ => (0, 0),
        };
        let at = self.buf.len() - usize::from(used > 0);
        let total = u32::from(used) + u32::from(n);
        let word = (last << 56) | (v << (64 - total));
        let bytes = total.div_ceil(8) as usize;
        // A fixed-size copy, then cut back to the bytes in use: one store
        // instead of a loop over bytes (the encoder was 14 % of ingest).
        self.buf.truncate(at);
        self.buf.extend_from_slice(&word.to_be_bytes());
        self.buf.truncate(at + bytes);
        self.free = (bytes as u32 * 8 - total) as u8;
    }
}

/// Reads bits written by [`BitWriter`].
struct BitReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    /// The 64 bits starting at byte `i`, big-endian, zero-padded.
    fn word(&self, i: usize) -> u64 {
        // One unaligned load; only the chunk's last bytes take the
        // byte-copy path (a `copy_from_slice` of variable length is a
        // call to memmove, which was most of the decoder's time).
        if let Some(Ok(w)) = self.buf.get(i..i + 8).map(<[u8; 8]>::try_from) {
            return u64::from_be_bytes(w);
        }
        let mut w = [0u8; 8];
        if let Some(src) = self.buf.get(i..) {
            let n = src.len().min(8);
            w[..n].copy_from_slice(&src[..n]);
        }
        u64::from_be_bytes(w)
    }

    /// The next `n` bits (n <= 8) without consuming them.
    fn peek(&self, n: u8) -> u64 {
        let (byte, off) = (self.pos / 8, (self.pos % 8) as u32);
        let two = (u16::from(self.buf.get(byte).copied().unwrap_or(0)) << 8)
            | u16::from(self.buf.get(byte + 1).copied().unwrap_or(0));
        u64::from((two << off) >> (16 - u32::from(n)))
    }

    /// Reads `n` bits (n <= 64) with at most two word loads.
    fn bits(&mut self, n: u8) -> u64 {
        if n == 0 {
            return 0;
        }
        let (byte, off) = (self.pos / 8, (self.pos % 8) as u32);
        let n32 = u32::from(n);
        let hi = self.word(byte) << off;
        let mut v = hi >> (64 - n32);
        if off + n32 > 64 {
            // The last bits spill into a ninth byte.
            let extra = off + n32 - 64;
            let next = u64::from(self.buf.get(byte + 8).copied().unwrap_or(0));
            v |= next >> (8 - extra);
        }
        self.pos += n as usize;
        v
    }
}

/// Sign-extends the low `n` bits of `v`.
fn sign_extend(v: u64, n: u8) -> i64 {
    let shift = 64 - u32::from(n);
    ((v << shift) as i64) >> shift
}

/// Delta-of-delta buckets: (prefix bits, prefix length, value bits).
const DOD_BUCKETS: [(u64, u8, u8); 3] = [(0b10, 2, 14), (0b110, 3, 17), (0b1110, 4, 20)];

/// Encoder state of the open chunk.
#[derive(Debug, Clone, Default)]
struct Encoder {
    w: BitWriter,
    count: u16,
    min_t: i64,
    /// The last (and latest) sample's timestamp.
    prev_t: i64,
    prev_delta: i64,
    prev_v: u64,
    leading: u8,
    trailing: u8,
    /// Start timestamps, once a sample of the chunk had one (boxed: most
    /// series never have any and pay one pointer).
    starts: Option<Box<StartStream>>,
}

/// A chunk's start timestamps: per sample a zigzag varint of the change
/// from the previous sample's (0 = unknown counts as a value), so a
/// cumulative counter's constant start costs one byte a sample.
#[derive(Debug, Clone, Default)]
struct StartStream {
    bytes: Vec<u8>,
    prev: i64,
}

impl Encoder {
    /// Appends a sample later than every sample in the chunk.
    fn push(&mut self, s: Sample) {
        if s.st != 0 && self.starts.is_none() {
            // The samples before had none: a zero change each.
            self.starts = Some(Box::new(StartStream {
                bytes: vec![0; usize::from(self.count)],
                prev: 0,
            }));
        }
        if let Some(starts) = self.starts.as_mut() {
            put_uvarint(&mut starts.bytes, zigzag(s.st.wrapping_sub(starts.prev)));
            starts.prev = s.st;
        }
        let bits = s.v.to_bits();
        if self.count == 0 {
            self.w.bits(s.t as u64, 64);
            self.w.bits(bits, 64);
            self.min_t = s.t;
            self.leading = u8::MAX;
        } else {
            let delta = s.t - self.prev_t;
            let dod = delta.wrapping_sub(self.prev_delta);
            if dod == 0 {
                self.w.bit(false);
            } else {
                let bucket = DOD_BUCKETS.iter().find(|(_, _, n)| {
                    let lim = 1i64 << (n - 1);
                    (-lim..lim).contains(&dod)
                });
                match bucket {
                    Some(&(prefix, plen, n)) => {
                        // Prefix and value in one write (at most 24 bits).
                        let v = (prefix << n) | (dod as u64 & ((1u64 << n) - 1));
                        self.w.bits(v, plen + n);
                    }
                    None => {
                        self.w.bits(0b1111, 4);
                        self.w.bits(dod as u64, 64);
                    }
                }
            }
            self.prev_delta = delta;
            let xor = bits ^ self.prev_v;
            if xor == 0 {
                self.w.bit(false);
            } else {
                let leading = (xor.leading_zeros() as u8).min(31);
                let trailing = xor.trailing_zeros() as u8;
                if self.leading != u8::MAX && leading >= self.leading && trailing >= self.trailing {
                    let sig = 64 - self.leading - self.trailing;
                    let v = xor >> self.trailing;
                    if sig <= 62 {
                        self.w.bits((0b10 << sig) | v, sig + 2);
                    } else {
                        self.w.bits(0b10, 2);
                        self.w.bits(v, sig);
                    }
                } else {
                    let sig = 64 - leading - trailing;
                    // '11', 5 bits leading, 6 bits length (64 as 0).
                    let head = (0b11 << 11) | (u64::from(leading) << 6) | u64::from(sig & 63);
                    self.w.bits(head, 13);
                    self.w.bits(xor >> trailing, sig);
                    self.leading = leading;
                    self.trailing = trailing;
                }
            }
        }
        self.prev_t = s.t;
        self.prev_v = bits;
        self.count += 1;
    }

    fn encode(samples: &[Sample]) -> Encoder {
        let mut e = Encoder::default();
        for s in samples {
            e.push(*s);
        }
        e
    }

    fn seal(self) -> Chunk {
        let mut data = self.w.buf;
        let mut starts_at = 0;
        if let Some(starts) = self.starts {
            starts_at = u32::try_from(data.len()).unwrap_or(u32::MAX);
            data.extend_from_slice(&starts.bytes);
        }
        Chunk {
            min_t: self.min_t,
            max_t: self.prev_t,
            count: self.count,
            starts_at,
            data: data.into_boxed_slice(),
        }
    }

    /// The sample bits and the start timestamps, if any.
    fn parts(&self) -> (&[u8], Option<&[u8]>) {
        (&self.w.buf, self.starts.as_ref().map(|s| &s.bytes[..]))
    }
}

/// A sealed chunk: samples in `[min_t, max_t]`, `count` of them.
#[derive(Debug, Clone)]
struct Chunk {
    min_t: i64,
    max_t: i64,
    count: u16,
    /// Where the start-timestamp stream begins in `data`; 0 when the
    /// chunk has none (sample bits always come first and are not empty).
    starts_at: u32,
    data: Box<[u8]>,
}

impl Chunk {
    /// The sample bits and the start timestamps, if any.
    fn parts(&self) -> (&[u8], Option<&[u8]>) {
        match self.starts_at as usize {
            0 => (&self.data, None),
            at => (&self.data[..at], Some(&self.data[at..])),
        }
    }
}

/// Decodes `count` samples from `data` (and their start timestamps from
/// `starts`, when given), appending those in `[start, end]`.
fn decode(data: &[u8], starts: Option<&[u8]>, count: u16, start: i64, end: i64, out: &mut Vec<Sample>) {
    let mut r = BitReader { buf: data, pos: 0 };
    let mut starts = starts.map(Reader::new);
    let mut st = 0i64;
    let (mut t, mut delta, mut bits) = (0i64, 0i64, 0u64);
    let (mut leading, mut trailing) = (0u8, 0u8);
    for i in 0..count {
        if i == 0 {
            t = r.bits(64) as i64;
            bits = r.bits(64);
        } else {
            // Control bits are peeked in one load instead of bit by bit.
            let dod = match r.peek(4) {
                0b0000..=0b0111 => {
                    r.pos += 1;
                    0
                }
                0b1000..=0b1011 => {
                    r.pos += 2;
                    sign_extend(r.bits(14), 14)
                }
                0b1100..=0b1101 => {
                    r.pos += 3;
                    sign_extend(r.bits(17), 17)
                }
                0b1110 => {
                    r.pos += 4;
                    sign_extend(r.bits(20), 20)
                }
                _ => {
                    r.pos += 4;
                    r.bits(64) as i64
                }
            };
            delta = delta.wrapping_add(dod);
            t = t.wrapping_add(delta);
            match r.peek(2) {
                0b00 | 0b01 => r.pos += 1,
                control => {
                    r.pos += 2;
                    if control == 0b11 {
                        let head = r.bits(11);
                        leading = (head >> 6) as u8;
                        let sig = match (head & 63) as u8 {
                            0 => 64,
                            n => n,
                        };
                        trailing = 64 - leading - sig;
                    }
                    let sig = 64 - leading - trailing;
                    bits ^= r.bits(sig) << trailing;
                }
            }
        }
        if let Some(starts) = starts.as_mut() {
            st = st.wrapping_add(unzigzag(starts.uvarint().unwrap_or(0)));
        }
        if t > end {
            return;
        }
        if t >= start {
            out.push(Sample::with_start(t, f64::from_bits(bits), st));
        }
    }
}

/// One series' samples in the head, compressed.
#[derive(Debug, Clone, Default)]
pub struct SeriesChunks {
    sealed: Vec<Chunk>,
    open: Encoder,
}

impl SeriesChunks {
    /// An empty series.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last byte of the open chunk (0 when empty): reading it brings
    /// the bytes the next sample is encoded into into cache.
    pub fn last_byte(&self) -> u8 {
        self.open.w.buf.last().copied().unwrap_or(0)
    }

    /// Number of samples held.
    pub fn len(&self) -> usize {
        self.sealed.iter().map(|c| usize::from(c.count)).sum::<usize>() + usize::from(self.open.count)
    }

    /// True when no sample is held.
    pub fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.open.count == 0
    }

    fn last_t(&self) -> Option<i64> {
        if self.open.count > 0 {
            Some(self.open.prev_t)
        } else {
            self.sealed.last().map(|c| c.max_t)
        }
    }

    /// Stores `s` in time order: a new timestamp is stored, the same
    /// timestamp with the same value bits is a duplicate, with other bits
    /// a conflict (the stored sample stays).
    pub fn insert(&mut self, s: Sample) -> InsertOutcome {
        if self.last_t().is_none_or(|t| s.t > t) {
            if self.open.count >= CHUNK_SAMPLES {
                let full = std::mem::take(&mut self.open);
                self.sealed.push(full.seal());
            }
            self.open.push(s);
            return InsertOutcome::Stored;
        }
        // Out of order: re-encode the chunk the sample belongs in (the
        // first whose range ends at or after it; else the open one).
        let target = self.sealed.iter().position(|c| s.t <= c.max_t);
        let ((data, starts), count) = match target {
            Some(i) => (self.sealed[i].parts(), self.sealed[i].count),
            None => (self.open.parts(), self.open.count),
        };
        let mut samples = Vec::with_capacity(usize::from(count) + 1);
        decode(data, starts, count, i64::MIN, i64::MAX, &mut samples);
        let outcome = match samples.binary_search_by(|x| x.t.cmp(&s.t)) {
            Ok(i) if samples[i].same_as(&s) => return InsertOutcome::Duplicate,
            Ok(_) => return InsertOutcome::Conflict,
            Err(i) => {
                samples.insert(i, s);
                InsertOutcome::Stored
            }
        };
        // Re-encode, splitting so no chunk grows past two chunks' worth.
        let pieces: Vec<&[Sample]> = if samples.len() > 2 * usize::from(CHUNK_SAMPLES) {
            samples.chunks(usize::from(CHUNK_SAMPLES)).collect()
        } else {
            vec![&samples]
        };
        match target {
            Some(i) => {
                let new: Vec<Chunk> = pieces.iter().map(|p| Encoder::encode(p).seal()).collect();
                self.sealed.splice(i..=i, new);
            }
            None => {
                let (last, full) = pieces.split_last().map_or((&[][..], &[][..]), |(l, f)| (*l, f));
                self.sealed.extend(full.iter().map(|p| Encoder::encode(p).seal()));
                self.open = Encoder::encode(last);
            }
        }
        outcome
    }

    /// Appends the samples within `[start, end]` to `out`, in time order.
    pub fn read(&self, start: i64, end: i64, out: &mut Vec<Sample>) {
        for c in &self.sealed {
            if c.max_t >= start && c.min_t <= end {
                let (data, starts) = c.parts();
                decode(data, starts, c.count, start, end, out);
            }
        }
        if self.open.count > 0 && self.open.prev_t >= start && self.open.min_t <= end {
            let (data, starts) = self.open.parts();
            decode(data, starts, self.open.count, start, end, out);
        }
    }

    /// True when some sample lies within `[start, end]`.
    ///
    /// Decodes nothing when a chunk lies wholly inside the range (its
    /// first or last sample is in it) and at most the chunks the range
    /// cuts through otherwise: listing series must not cost a read.
    pub fn has_samples_in(&self, start: i64, end: i64) -> bool {
        let open =
            (self.open.count > 0).then_some((self.open.min_t, self.open.prev_t, &self.open.w.buf[..], self.open.count));
        let chunks = self
            .sealed
            .iter()
            .map(|c| (c.min_t, c.max_t, c.parts().0, c.count))
            .chain(open);
        let mut found = Vec::new();
        for (lo, hi, data, count) in chunks {
            if hi < start || lo > end {
                continue;
            }
            if (start..=end).contains(&lo) || (start..=end).contains(&hi) {
                return true;
            }
            // The range lies strictly between two samples of this chunk.
            decode(data, None, count, start, end, &mut found);
            if !found.is_empty() {
                return true;
            }
        }
        false
    }

    /// Bytes held for sample data (for memory accounting and tests).
    pub fn encoded_bytes(&self) -> usize {
        self.sealed.iter().map(|c| c.data.len()).sum::<usize>()
            + self.open.w.buf.len()
            + self.open.starts.as_ref().map_or(0, |s| s.bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::STALE_NAN_BITS;

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *seed >> 33
    }

    #[test]
    fn bit_writer_writes_what_a_bit_at_a_time_writer_writes() {
        // The word-at-a-time writer against the plainest possible one, over
        // every width and mixed single bits, read back by the reader.
        let mut seed = 11;
        let mut fast = BitWriter::default();
        let mut plain: Vec<bool> = Vec::new();
        let mut written: Vec<(u64, u8)> = Vec::new();
        for i in 0..5000 {
            let v = lcg(&mut seed) << 31 ^ lcg(&mut seed);
            if i % 7 == 0 {
                fast.bit(v & 1 == 1);
                plain.push(v & 1 == 1);
                written.push((v & 1, 1));
                continue;
            }
            let n = (lcg(&mut seed) % 65) as u8;
            fast.bits(v, n);
            for k in (0..n).rev() {
                plain.push((v >> k) & 1 == 1);
            }
            let masked = if n == 64 { v } else { v & ((1u64 << n) - 1) };
            written.push((masked, n));
        }
        let mut want = vec![0u8; plain.len().div_ceil(8)];
        for (i, b) in plain.iter().enumerate() {
            if *b {
                want[i / 8] |= 0x80 >> (i % 8);
            }
        }
        assert_eq!(fast.buf, want);
        assert_eq!(usize::from(fast.free), want.len() * 8 - plain.len());
        let mut r = BitReader { buf: &fast.buf, pos: 0 };
        for (v, n) in written {
            assert_eq!(r.bits(n), v, "{n} bits");
        }
    }

    #[test]
    fn round_trips_every_bit_pattern_and_timestamp_gap() {
        let specials = [
            0.0,
            -0.0,
            f64::NAN,
            f64::from_bits(STALE_NAN_BITS),
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MAX,
            1e-300,
            0.1,
        ];
        let mut seed = 7u64;
        let mut samples = Vec::new();
        let mut t = -5_000_000i64;
        for i in 0..2000 {
            // Regular steps, jitter, huge gaps.
            t += match i % 7 {
                0 => 15_000,
                1 => 15_000 + (lcg(&mut seed) % 5) as i64,
                2 => 1,
                3 => 1 << 40,
                _ => (lcg(&mut seed) % 100_000) as i64 + 1,
            };
            let v = if i % 5 == 0 {
                specials[i % specials.len()]
            } else {
                f64::from_bits(lcg(&mut seed) << 20 ^ lcg(&mut seed))
            };
            samples.push(Sample::new(t, v));
        }
        let mut s = SeriesChunks::new();
        for x in &samples {
            assert_eq!(s.insert(*x), InsertOutcome::Stored);
        }
        let mut out = Vec::new();
        s.read(i64::MIN, i64::MAX, &mut out);
        assert_eq!(out.len(), samples.len());
        for (a, b) in out.iter().zip(&samples) {
            assert!(a.same_as(b), "{a:?} != {b:?}");
        }
        assert_eq!(s.len(), samples.len());
    }

    #[test]
    fn out_of_order_duplicates_and_conflicts_behave_like_a_sorted_vec() {
        let mut seed = 3u64;
        let mut model: Vec<Sample> = Vec::new();
        let mut s = SeriesChunks::new();
        for _ in 0..3000 {
            let t = (lcg(&mut seed) % 5000) as i64 * 10;
            let v = (lcg(&mut seed) % 3) as f64;
            let x = Sample::new(t, v);
            let expected = match model.binary_search_by(|m| m.t.cmp(&t)) {
                Ok(i) if model[i].same_as(&x) => InsertOutcome::Duplicate,
                Ok(_) => InsertOutcome::Conflict,
                Err(i) => {
                    model.insert(i, x);
                    InsertOutcome::Stored
                }
            };
            assert_eq!(s.insert(x), expected);
        }
        let mut out = Vec::new();
        s.read(i64::MIN, i64::MAX, &mut out);
        assert_eq!(out, model);
        let mut part = Vec::new();
        s.read(10_000, 20_000, &mut part);
        let want: Vec<Sample> = model
            .iter()
            .copied()
            .filter(|m| (10_000..=20_000).contains(&m.t))
            .collect();
        assert_eq!(part, want);
        assert_eq!(s.has_samples_in(10_000, 20_000), !want.is_empty());
    }

    #[test]
    fn start_timestamps_survive_sealing_and_reencoding() {
        let mut s = SeriesChunks::new();
        // No start timestamps for the first 50 samples, then a cumulative
        // counter (constant start), then deltas (start = previous time),
        // across several chunks.
        let mut model: Vec<Sample> = (0..400)
            .map(|i| {
                let t = i * 15_000;
                let st = match i {
                    0..50 => 0,
                    50..200 => 700_000,
                    _ => t - 15_000,
                };
                Sample::with_start(t, i as f64, st)
            })
            .collect();
        for x in &model {
            assert_eq!(s.insert(*x), InsertOutcome::Stored);
        }
        // A late sample lands in a sealed chunk and re-encodes it.
        let late = Sample::with_start(7_500, 0.5, 1);
        assert_eq!(s.insert(late), InsertOutcome::Stored);
        model.insert(1, late);
        let mut out = Vec::new();
        s.read(i64::MIN, i64::MAX, &mut out);
        assert_eq!(out, model);
        let mut part = Vec::new();
        s.read(3_000_000, 3_100_000, &mut part);
        assert_eq!(part[0], Sample::with_start(3_000_000, 200.0, 2_985_000));
        // A constant start costs about a byte a sample.
        let plain: usize = {
            let mut p = SeriesChunks::new();
            for x in &model {
                p.insert(Sample::new(x.t, x.v));
            }
            p.encoded_bytes()
        };
        assert!(
            s.encoded_bytes() < plain + 3 * model.len(),
            "{} vs {plain}",
            s.encoded_bytes()
        );
    }

    #[test]
    fn a_flood_of_late_samples_splits_chunks() {
        let mut s = SeriesChunks::new();
        s.insert(Sample::new(1_000_000, 1.0));
        s.insert(Sample::new(2_000_000, 1.0));
        for t in (0..100_000).rev() {
            assert_eq!(s.insert(Sample::new(t * 5, 2.0)), InsertOutcome::Stored);
        }
        assert_eq!(s.len(), 100_002);
        assert!(s.sealed.iter().all(|c| c.count <= 2 * CHUNK_SAMPLES));
        let mut out = Vec::new();
        s.read(i64::MIN, i64::MAX, &mut out);
        assert!(out.windows(2).all(|w| w[0].t < w[1].t));
    }

    #[test]
    fn regular_series_compress_well() {
        let mut s = SeriesChunks::new();
        let mut v = 1000.0;
        for i in 0..1200 {
            v += 12.0;
            s.insert(Sample::new(1_700_000_000_000 + i * 15_000, v));
        }
        let per_sample = s.encoded_bytes() as f64 / 1200.0;
        assert!(per_sample < 4.0, "{per_sample} bytes per sample");
    }
}
