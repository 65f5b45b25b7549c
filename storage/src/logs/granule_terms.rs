//! The line tokens of a block being written, granule by granule. Whether
//! a term goes into the tantivy index or into the rare terms (see
//! [`super::rare_terms`]) depends on how many granules hold it, which is
//! known only once every line is read; until then each granule keeps its
//! distinct terms as numbers.

use hashbrown::HashTable;
use xxhash_rust::xxh3::xxh3_64;

use super::index::for_each_line_term;

/// Distinct terms of each granule of a block, and of the block.
///
/// About 30 bytes per distinct term (its bytes in one arena, its record,
/// a table slot) and 4 per distinct term of a granule: ~110 MB for a
/// merged block of 430 MB of lines.
#[derive(Default)]
pub struct GranuleTerms {
    /// Scratch space for lower-casing a term.
    lower: String,
    /// Term ids (indexes into `terms`) by the hash of their bytes.
    table: HashTable<u32>,
    /// Every term, one after the other.
    arena: String,
    terms: Vec<TermRecord>,
    /// The term ids of every granule, granule after granule.
    granule_terms: Vec<u32>,
    /// Per granule added: its number and where its ids end.
    granules: Vec<(u32, usize)>,
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
/// the term's id and the last granule that met it, without touching the
/// table, the term's record or its bytes in the arena (three cache misses
/// in a block of millions of terms).
#[derive(Clone, Copy, Default)]
struct RecentTerm {
    hash: u64,
    id: u32,
    /// The last granule whose term ids hold `id`.
    granule: u32,
    /// The term's length; 0 for an empty slot (terms are never empty).
    len: u8,
    bytes: [u8; RECENT_BYTES],
}

/// One distinct term: where it is and which granules hold it, together,
/// so that meeting a term touches one record (the table, the record and
/// the term's bytes are the cache misses of cutting a block into terms).
#[derive(Clone, Copy)]
struct TermRecord {
    /// Where the term starts in the arena.
    start: usize,
    len: u32,
    /// The last granule that held the term (its only one until
    /// [`IN_MANY`] is set).
    last_granule: u32,
}

/// Set in [`TermRecord::last_granule`] once a second granule holds the
/// term. Granules are rows / 128 of at most 2³² rows, so below it.
const IN_MANY: u32 = 1 << 31;

impl TermRecord {
    fn text<'a>(&self, arena: &'a str) -> &'a str {
        &arena[self.start..self.start + self.len as usize]
    }

    fn in_many(&self) -> bool {
        self.last_granule & IN_MANY != 0
    }
}

impl GranuleTerms {
    /// Adds the terms of `line` (as [`super::index::line_tokenizer`] cuts
    /// them) to `granule` (granules in ascending order, below 2³¹).
    pub fn add_line(&mut self, granule: u32, line: &str) {
        debug_assert!(granule < IN_MANY);
        match self.granules.last_mut() {
            Some(last) if last.0 == granule => {}
            _ => self.granules.push((granule, self.granule_terms.len())),
        }
        let mut lower = std::mem::take(&mut self.lower);
        for_each_line_term(line, &mut lower, |text| self.add_term(granule, text));
        self.lower = lower;
        if let Some(last) = self.granules.last_mut() {
            last.1 = self.granule_terms.len();
        }
    }

    fn add_term(&mut self, granule: u32, text: &str) {
        let hash = xxh3_64(text.as_bytes());
        if self.recent.is_empty() {
            self.recent = vec![RecentTerm::default(); RECENT_SLOTS];
        }
        let slot = &mut self.recent[hash as usize % RECENT_SLOTS];
        if slot.hash == hash && usize::from(slot.len) == text.len() && slot.bytes[..text.len()] == *text.as_bytes() {
            if slot.granule == granule {
                return;
            }
            slot.granule = granule;
            let id = slot.id;
            let record = &mut self.terms[id as usize];
            if record.last_granule & !IN_MANY != granule {
                record.last_granule = granule | IN_MANY;
                self.granule_terms.push(id);
            }
            return;
        }
        let id = self.add_term_by_table(granule, text, hash);
        if text.len() <= RECENT_BYTES {
            let mut bytes = [0; RECENT_BYTES];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            self.recent[hash as usize % RECENT_SLOTS] = RecentTerm {
                hash,
                id,
                granule,
                len: text.len() as u8,
                bytes,
            };
        }
    }

    /// [`GranuleTerms::add_term`] through the table of every term: the
    /// term's id, added to `granule`'s ids unless they hold it.
    fn add_term_by_table(&mut self, granule: u32, text: &str, hash: u64) -> u32 {
        let (arena, terms) = (&self.arena, &self.terms);
        let id = match self.table.find(hash, |&id| terms[id as usize].text(arena) == text) {
            Some(&id) => {
                let record = &mut self.terms[id as usize];
                if record.last_granule & !IN_MANY == granule {
                    return id;
                }
                record.last_granule = granule | IN_MANY;
                id
            }
            None => {
                let id = self.terms.len() as u32;
                self.terms.push(TermRecord {
                    start: self.arena.len(),
                    // Terms are shorter than MAX_TOKEN_BYTES (x3 lower-cased).
                    len: text.len() as u32,
                    last_granule: granule,
                });
                self.arena.push_str(text);
                let (arena, terms) = (&self.arena, &self.terms);
                self.table
                    .insert_unique(hash, id, |&id| xxh3_64(terms[id as usize].text(arena).as_bytes()));
                id
            }
        };
        self.granule_terms.push(id);
        id
    }

    /// How many granules lines were added to.
    pub fn granules(&self) -> usize {
        self.granules.len()
    }

    /// The granules added, in order, each with the terms of it that other
    /// granules hold too (for the index), separated by spaces (terms hold
    /// no whitespace: see [`super::index::TERMS_TOKENIZER`]).
    pub fn shared_terms(&self) -> impl Iterator<Item = (u32, String)> + '_ {
        let mut start = 0;
        self.granules.iter().map(move |&(number, end)| {
            let ids = &self.granule_terms[start..end];
            start = end;
            let mut text = String::with_capacity(ids.len() * 8);
            for record in ids.iter().map(|&id| &self.terms[id as usize]).filter(|r| r.in_many()) {
                text.push_str(record.text(&self.arena));
                text.push(' ');
            }
            (number, text)
        })
    }

    /// Every term only one granule holds, with that granule.
    pub fn rare_terms(&self) -> Vec<(&[u8], u32)> {
        self.terms
            .iter()
            .filter(|r| !r.in_many())
            .map(|r| (r.text(&self.arena).as_bytes(), r.last_granule))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::super::test_rng::TestRng;
    use super::*;

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
        let mut got: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
        for (granule, text) in terms.shared_terms() {
            let mut seen = BTreeSet::new();
            for t in text.split_whitespace() {
                assert!(seen.insert(t), "{t} twice in granule {granule}");
                got.entry(t.to_string()).or_default().insert(granule);
            }
        }
        for (t, g) in terms.rare_terms() {
            let t = String::from_utf8_lossy(t).into_owned();
            assert!(
                got.insert(t.clone(), BTreeSet::from([g])).is_none(),
                "{t} both rare and shared"
            );
        }
        assert_eq!(got, want);
        assert!(want.values().any(|g| g.len() == 1) && want.values().any(|g| g.len() > 1));
    }

    #[test]
    fn terms_of_one_granule_are_rare_and_the_rest_are_indexed_once_per_granule() {
        let mut terms = GranuleTerms::default();
        terms.add_line(0, "GET /a id=7f3a user=Alice");
        terms.add_line(0, "GET /b user=alice");
        terms.add_line(2, "POST /a id=99c0");
        terms.add_line(3, "get ÉTÉ");
        let shared: Vec<(u32, Vec<String>)> = terms
            .shared_terms()
            .map(|(g, text)| (g, text.split_whitespace().map(str::to_string).collect()))
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
