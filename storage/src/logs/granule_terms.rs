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
        let (arena, terms) = (&self.arena, &self.terms);
        let id = match self.table.find(hash, |&id| terms[id as usize].text(arena) == text) {
            Some(&id) => {
                let record = &mut self.terms[id as usize];
                if record.last_granule & !IN_MANY == granule {
                    return;
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
    use super::*;

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
