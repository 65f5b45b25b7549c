//! The line tokens of a block being written, granule by granule. Whether
//! a term goes into the tantivy index or into the rare terms (see
//! [`super::rare_terms`]) depends on how many granules hold it, which is
//! known only once every line is read; until then each granule keeps its
//! distinct terms as numbers.

use hashbrown::HashTable;
use tantivy::tokenizer::{TokenStream, Tokenizer};
use xxhash_rust::xxh3::xxh3_64;

/// Distinct terms of each granule of a block, and of the block.
///
/// About 35 bytes per distinct term (its bytes in one arena, where they
/// end, a table slot, its last granule) and 4 per distinct term of a
/// granule: ~120 MB for a merged block of 430 MB of lines.
pub struct GranuleTerms<T: Tokenizer> {
    tokenizer: T,
    /// Term ids by the hash of their bytes.
    table: HashTable<u32>,
    /// Every term, one after the other.
    arena: String,
    /// Per term: where it ends in `arena` (and the next begins).
    ends: Vec<usize>,
    /// Per term: the last granule that held it (its only one while
    /// `in_many` is false).
    last_granule: Vec<u32>,
    in_many: Vec<bool>,
    /// The term ids of every granule, granule after granule.
    granule_terms: Vec<u32>,
    /// Per granule added: its number and where its ids end.
    granules: Vec<(u32, usize)>,
}

fn term_of<'a>(arena: &'a str, ends: &[usize], id: u32) -> &'a str {
    let id = id as usize;
    let start = if id == 0 { 0 } else { ends[id - 1] };
    &arena[start..ends[id]]
}

impl<T: Tokenizer> GranuleTerms<T> {
    /// Collects the terms `tokenizer` cuts from lines.
    pub fn new(tokenizer: T) -> Self {
        GranuleTerms {
            tokenizer,
            table: HashTable::new(),
            arena: String::new(),
            ends: Vec::new(),
            last_granule: Vec::new(),
            in_many: Vec::new(),
            granule_terms: Vec::new(),
            granules: Vec::new(),
        }
    }

    /// Adds the terms of `line` to `granule` (granules in ascending order).
    pub fn add_line(&mut self, granule: u32, line: &str) {
        match self.granules.last_mut() {
            Some(last) if last.0 == granule => {}
            _ => self.granules.push((granule, self.granule_terms.len())),
        }
        let mut stream = self.tokenizer.token_stream(line);
        while stream.advance() {
            let text = stream.token().text.as_str();
            let hash = xxh3_64(text.as_bytes());
            let (arena, ends) = (&self.arena, &self.ends);
            let id = match self.table.find(hash, |&id| term_of(arena, ends, id) == text) {
                Some(&id) => {
                    if self.last_granule[id as usize] == granule {
                        continue;
                    }
                    self.in_many[id as usize] = true;
                    self.last_granule[id as usize] = granule;
                    id
                }
                None => {
                    let id = self.ends.len() as u32;
                    self.arena.push_str(text);
                    self.ends.push(self.arena.len());
                    self.last_granule.push(granule);
                    self.in_many.push(false);
                    let (arena, ends) = (&self.arena, &self.ends);
                    self.table
                        .insert_unique(hash, id, |&id| xxh3_64(term_of(arena, ends, id).as_bytes()));
                    id
                }
            };
            self.granule_terms.push(id);
        }
        if let Some(last) = self.granules.last_mut() {
            last.1 = self.granule_terms.len();
        }
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
            for &id in ids.iter().filter(|&&id| self.in_many[id as usize]) {
                text.push_str(term_of(&self.arena, &self.ends, id));
                text.push(' ');
            }
            (number, text)
        })
    }

    /// Every term only one granule holds, with that granule.
    pub fn rare_terms(&self) -> Vec<(&[u8], u32)> {
        (0..self.ends.len() as u32)
            .filter(|&id| !self.in_many[id as usize])
            .map(|id| {
                (
                    term_of(&self.arena, &self.ends, id).as_bytes(),
                    self.last_granule[id as usize],
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::index::line_tokenizer;

    #[test]
    fn terms_of_one_granule_are_rare_and_the_rest_are_indexed_once_per_granule() {
        let mut terms = GranuleTerms::new(line_tokenizer());
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
