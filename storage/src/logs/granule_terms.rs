//! The line tokens of a block being written, granule by granule. Whether
//! a term goes into the tantivy index or into the rare terms (see
//! [`super::rare_terms`]) depends on how many granules hold it, which is
//! known only once every line is read; until then each granule keeps its
//! distinct terms as numbers.

use xxhash_rust::xxh3::xxh3_64;

use super::index::for_each_line_term;

/// Distinct terms of each granule of a block, and of the block.
///
/// About 60 bytes per distinct term (a table slot at most 5/8 full, its
/// bytes in one arena, where they start) and 4 per distinct term of a
/// granule: ~200 MB for a merged block of 430 MB of lines.
#[derive(Default)]
pub struct GranuleTerms {
    /// Scratch space for lower-casing a term.
    lower: String,
    /// Every distinct term, open addressing by hash (a power of two
    /// long, or empty before the first term).
    table: Vec<TermSlot>,
    /// Every term, one after the other.
    arena: String,
    /// Where each term (by id) starts in `arena` and how long it is.
    texts: Vec<(usize, u32)>,
    /// The term ids of every granule, granule after granule.
    granule_terms: Vec<u32>,
    /// Per granule added: its number, where its ids end, and whether a
    /// line of it has a term too long to index.
    granules: Vec<(u32, usize, bool)>,
    /// Short terms met lately, by hash ([`RECENT_SLOTS`] of them).
    recent: Vec<RecentTerm>,
}

/// Slots of [`GranuleTerms::recent`]: 128 KiB, kept in the core's L2 cache,
/// against the few hundred distinct terms of a granule.
const RECENT_SLOTS: usize = 4096;
/// Longest term [`GranuleTerms::recent`] holds (most words are shorter).
const RECENT_BYTES: usize = 15;

/// A short term met lately, in the slot its hash picks. Most of a
/// granule's term occurrences repeat a term the granule already holds
/// (field names, words of one message kind); a slot answers those with
/// where the term is in the table and the last granule that met it,
/// without touching the table (a cache miss in a block of millions of
/// terms).
#[derive(Clone, Copy, Default)]
struct RecentTerm {
    hash: u64,
    /// The term's slot in [`GranuleTerms::table`] (recent terms are
    /// forgotten when the table grows).
    slot: u32,
    /// The last granule whose term ids hold the term.
    granule: u32,
    /// The term's length; 0 for an empty slot (terms are never empty).
    len: u8,
    bytes: [u8; RECENT_BYTES],
}

/// Longest term a [`TermSlot`] holds itself: a shorter one is found and
/// told apart from others of the same hash in that one cache line, a
/// longer one is compared with its bytes in the arena.
const INLINE_BYTES: usize = 14;

/// One distinct term of the table: 32 bytes, aligned, so one cache line
/// holds all that finding a short term needs (the table, the term's
/// record and its bytes were three cache misses apart).
#[derive(Clone, Copy, Default)]
#[repr(C, align(32))]
struct TermSlot {
    hash: u64,
    id: u32,
    /// The last granule that held the term (its only one until
    /// [`IN_MANY`] is set).
    last_granule: u32,
    /// The term's length; 0 for an empty slot (terms are never empty).
    len: u16,
    /// The term when it is at most [`INLINE_BYTES`] long.
    inline: [u8; INLINE_BYTES],
}

/// Set in [`TermSlot::last_granule`] once a second granule holds the
/// term. Granules are rows / 128 of at most 2³² rows, so below it.
const IN_MANY: u32 = 1 << 31;

/// Slots the table starts with (64 KiB worth of terms: a small block's).
const FIRST_TABLE_SLOTS: usize = 2048;

impl TermSlot {
    /// Notes that `granule` holds the term (a term already met before, so
    /// then in many); true when it is new to the granule.
    fn met_in(&mut self, granule: u32) -> bool {
        if self.last_granule & !IN_MANY == granule {
            return false;
        }
        self.last_granule = granule | IN_MANY;
        true
    }

    fn holds(&self, hash: u64, text: &[u8], arena: &str, texts: &[(usize, u32)]) -> bool {
        if self.hash != hash || usize::from(self.len) != text.len() {
            return false;
        }
        if text.len() <= INLINE_BYTES {
            return self.inline[..text.len()] == *text;
        }
        let (start, len) = texts[self.id as usize];
        arena.as_bytes()[start..start + len as usize] == *text
    }
}

impl GranuleTerms {
    /// Adds the terms of `line` (as [`super::index::line_tokenizer`] cuts
    /// them) to `granule` (granules in ascending order, below 2³¹).
    pub fn add_line(&mut self, granule: u32, line: &str) {
        debug_assert!(granule < IN_MANY);
        match self.granules.last_mut() {
            Some(last) if last.0 == granule => {}
            _ => self.granules.push((granule, self.granule_terms.len(), false)),
        }
        let mut lower = std::mem::take(&mut self.lower);
        let long_token = for_each_line_term(line, &mut lower, |text| self.add_term(granule, text));
        self.lower = lower;
        if let Some(last) = self.granules.last_mut() {
            last.1 = self.granule_terms.len();
            last.2 |= long_token;
        }
    }

    fn add_term(&mut self, granule: u32, text: &str) {
        let hash = xxh3_64(text.as_bytes());
        if self.recent.is_empty() {
            self.recent = vec![RecentTerm::default(); RECENT_SLOTS];
        }
        let recent = &mut self.recent[hash as usize % RECENT_SLOTS];
        if recent.hash == hash
            && usize::from(recent.len) == text.len()
            && recent.bytes[..text.len()] == *text.as_bytes()
        {
            if recent.granule == granule {
                return;
            }
            recent.granule = granule;
            let slot = &mut self.table[recent.slot as usize];
            if slot.met_in(granule) {
                self.granule_terms.push(slot.id);
            }
            return;
        }
        let slot = self.add_term_by_table(granule, text, hash);
        if text.len() <= RECENT_BYTES {
            let mut bytes = [0; RECENT_BYTES];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            self.recent[hash as usize % RECENT_SLOTS] = RecentTerm {
                hash,
                slot,
                granule,
                len: text.len() as u8,
                bytes,
            };
        }
    }

    /// [`GranuleTerms::add_term`] through the table of every term: the
    /// term's slot, its id added to `granule`'s ids unless they hold it.
    fn add_term_by_table(&mut self, granule: u32, text: &str, hash: u64) -> u32 {
        // At most 5/8 full, so that probes stay short (a slot per term id).
        if (self.texts.len() + 1) * 8 > self.table.len() * 5 {
            self.grow();
        }
        let mask = self.table.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let slot = &mut self.table[i];
            if slot.len == 0 {
                break;
            }
            if slot.holds(hash, text.as_bytes(), &self.arena, &self.texts) {
                if slot.met_in(granule) {
                    self.granule_terms.push(slot.id);
                }
                return i as u32;
            }
            i = (i + 1) & mask;
        }
        let id = self.texts.len() as u32;
        // Terms are shorter than MAX_TOKEN_BYTES (x3 lower-cased).
        let len = text.len() as u16;
        let mut inline = [0; INLINE_BYTES];
        if text.len() <= INLINE_BYTES {
            inline[..text.len()].copy_from_slice(text.as_bytes());
        }
        self.table[i] = TermSlot {
            hash,
            id,
            last_granule: granule,
            len,
            inline,
        };
        self.texts.push((self.arena.len(), u32::from(len)));
        self.arena.push_str(text);
        self.granule_terms.push(id);
        i as u32
    }

    /// Doubles the table (placing each term by its kept hash) and forgets
    /// the recent terms, whose slots moved.
    fn grow(&mut self) {
        let slots = (self.table.len() * 2).max(FIRST_TABLE_SLOTS);
        let old = std::mem::replace(&mut self.table, vec![TermSlot::default(); slots]);
        let mask = slots - 1;
        for slot in old.into_iter().filter(|s| s.len != 0) {
            let mut i = slot.hash as usize & mask;
            while self.table[i].len != 0 {
                i = (i + 1) & mask;
            }
            self.table[i] = slot;
        }
        self.recent.iter_mut().for_each(|r| r.len = 0);
    }

    /// The terms cut, each marked with whether other granules hold it too:
    /// what [`CutTerms::shared_terms`] and [`CutTerms::rare_terms`] read.
    pub fn finish(self) -> CutTerms {
        let mut last_granule = vec![0; self.texts.len()];
        for slot in self.table.iter().filter(|s| s.len != 0) {
            last_granule[slot.id as usize] = slot.last_granule;
        }
        CutTerms {
            arena: self.arena,
            texts: self.texts,
            last_granule,
            granule_terms: self.granule_terms,
            granules: self.granules,
        }
    }
}

/// The terms of every granule of a block once all its lines are cut.
pub struct CutTerms {
    arena: String,
    texts: Vec<(usize, u32)>,
    /// By term id: the last granule holding it, [`IN_MANY`] set when
    /// others do too.
    last_granule: Vec<u32>,
    granule_terms: Vec<u32>,
    granules: Vec<(u32, usize, bool)>,
}

/// One granule's terms for the index.
pub struct GranuleText {
    /// The granule's number.
    pub number: u32,
    /// Its terms other granules hold too, each followed by a space.
    pub terms: String,
    /// Whether a line of it has a term of [`super::index::MAX_TOKEN_BYTES`]
    /// or more, not indexed.
    pub long_token: bool,
}

impl CutTerms {
    fn text(&self, id: u32) -> &str {
        let (start, len) = self.texts[id as usize];
        &self.arena[start..start + len as usize]
    }

    /// How many granules lines were added to.
    pub fn granules(&self) -> usize {
        self.granules.len()
    }

    /// The granules added, in order, each with the terms of it that other
    /// granules hold too (for the index), separated by spaces (terms hold
    /// no whitespace: see [`super::index::TERMS_TOKENIZER`]).
    pub fn shared_terms(&self) -> impl Iterator<Item = GranuleText> + '_ {
        let mut start = 0;
        self.granules.iter().map(move |&(number, end, long_token)| {
            let ids = &self.granule_terms[start..end];
            start = end;
            let mut text = String::with_capacity(ids.len() * 8);
            for &id in ids.iter().filter(|&&id| self.last_granule[id as usize] & IN_MANY != 0) {
                text.push_str(self.text(id));
                text.push(' ');
            }
            GranuleText {
                number,
                terms: text,
                long_token,
            }
        })
    }

    /// Every term only one granule holds, with that granule.
    pub fn rare_terms(&self) -> Vec<(&[u8], u32)> {
        self.last_granule
            .iter()
            .enumerate()
            .filter(|(_, g)| **g & IN_MANY == 0)
            .map(|(id, &g)| (self.text(id as u32).as_bytes(), g))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::super::test_rng::TestRng;
    use super::*;

    /// Every term with the granules holding it, as the index and the rare
    /// terms give them: a term at most once per granule, and never both
    /// rare and shared.
    fn granules_of_every_term(terms: &CutTerms) -> BTreeMap<String, BTreeSet<u32>> {
        let mut got: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
        for granule in terms.shared_terms() {
            for t in granule.terms.split_whitespace() {
                let first = got.entry(t.to_string()).or_default().insert(granule.number);
                assert!(first, "{t} twice in granule {}", granule.number);
            }
        }
        for (t, g) in terms.rare_terms() {
            let t = String::from_utf8_lossy(t).into_owned();
            assert!(
                got.insert(t.clone(), BTreeSet::from([g])).is_none(),
                "{t} both rare and shared"
            );
        }
        got
    }

    /// Thousands of terms over many granules, so that recent-term slots
    /// are shared by several terms, overwritten and met again (terms of
    /// every length around [`RECENT_BYTES`]): the granules of every term
    /// must be those a plain map of the same lines gives.
    #[test]
    fn terms_and_their_granules_match_a_plain_map() {
        let mut rng = TestRng::new(0x5eed);
        let words: Vec<String> = (0..20_000)
            .map(|i| {
                let len = 1 + rng.below(RECENT_BYTES + 6);
                (0..len)
                    .map(|k| (b'a' + ((i * 7 + k * 13 + len) % 26) as u8) as char)
                    .collect::<String>()
                    + &i.to_string()
            })
            .collect();
        let mut terms = GranuleTerms::default();
        let mut want: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
        let mut lower = String::new();
        for granule in 0..400u32 {
            for _ in 0..1 + rng.below(40) {
                // Mostly a granule's own small vocabulary, sometimes any word.
                let line: Vec<&str> = (0..1 + rng.below(12))
                    .map(|_| {
                        let i = if rng.below(4) == 0 {
                            rng.below(words.len())
                        } else {
                            (granule as usize * 31 + rng.below(50)) % words.len()
                        };
                        words[i].as_str()
                    })
                    .collect();
                let line = line.join(" ");
                terms.add_line(granule * 2, &line);
                for_each_line_term(&line, &mut lower, |t| {
                    want.entry(t.to_string()).or_default().insert(granule * 2);
                });
            }
        }
        let got = granules_of_every_term(&terms.finish());
        assert_eq!(got, want);
        assert!(want.values().any(|g| g.len() == 1) && want.values().any(|g| g.len() > 1));
    }

    /// Terms of one hash (short ones told apart in their slots, long ones
    /// by their bytes in the arena), across the table's growth: each keeps
    /// its own granules.
    #[test]
    fn terms_of_one_hash_stay_apart() {
        let mut terms = GranuleTerms::default();
        let words: Vec<String> = (0..3000)
            .map(|i| match i % 3 {
                0 => format!("w{i}"),
                1 => format!("{i:0>width$}", width = INLINE_BYTES),
                _ => format!("long-term-number-{i}"),
            })
            .collect();
        let mut want: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
        for (i, w) in words.iter().enumerate() {
            // Every word in granule i / 100; every tenth also in granule 40.
            let granules = if i % 10 == 0 {
                vec![(i / 100) as u32, 40]
            } else {
                vec![(i / 100) as u32]
            };
            for g in granules {
                // Granules in ascending order as `add_line` gives them.
                want.entry(w.clone()).or_default().insert(g);
            }
        }
        let mut by_granule: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
        for (w, gs) in &want {
            for g in gs {
                by_granule.entry(*g).or_default().push(w);
            }
        }
        for (g, ws) in &by_granule {
            terms.granules.push((*g, terms.granule_terms.len(), false));
            for w in ws {
                // One hash per length: every word of a length collides.
                let hash = w.len() as u64;
                terms.add_term_by_table(*g, w, hash);
                terms.add_term_by_table(*g, w, hash);
            }
            if let Some(last) = terms.granules.last_mut() {
                last.1 = terms.granule_terms.len();
            }
        }
        let got = granules_of_every_term(&terms.finish());
        assert_eq!(got, want);
    }

    #[test]
    fn terms_of_one_granule_are_rare_and_the_rest_are_indexed_once_per_granule() {
        let mut terms = GranuleTerms::default();
        terms.add_line(0, "GET /a id=7f3a user=Alice");
        terms.add_line(0, "GET /b user=alice");
        terms.add_line(2, "POST /a id=99c0");
        terms.add_line(3, "get ÉTÉ");
        let terms = terms.finish();
        let shared: Vec<(u32, Vec<String>)> = terms
            .shared_terms()
            .map(|g| (g.number, g.terms.split_whitespace().map(str::to_string).collect()))
            .collect();
        assert_eq!(
            shared,
            vec![
                (0, vec!["get".to_string(), "a".into(), "id".into()]),
                (2, vec!["a".into(), "id".into()]),
                (3, vec!["get".into()]),
            ]
        );
        let mut rare: Vec<(String, u32)> = terms
            .rare_terms()
            .into_iter()
            .map(|(t, g)| (String::from_utf8_lossy(t).into_owned(), g))
            .collect();
        rare.sort();
        let want: Vec<(String, u32)> = [
            ("7f3a", 0),
            ("99c0", 2),
            ("alice", 0),
            ("b", 0),
            ("post", 2),
            ("user", 0),
            ("été", 3),
        ]
        .iter()
        .map(|(t, g)| (t.to_string(), *g))
        .collect();
        assert_eq!(rare, want);
    }
}
