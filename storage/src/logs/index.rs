//! The full-text index of a log block (tantivy).
//!
//! One index document per *granule*: [`GRANULE_ROWS`] consecutive rows of
//! the block's Parquet file. A document holds every token of its lines
//! (field `line`, lower-cased alphanumeric runs, as tantivy's simple
//! tokenizer splits them) and every structured-metadata pair (field
//! `meta`, `name=value`). A search gives the granules that can hold a
//! match; the caller reads only their rows and checks each line exactly,
//! so the index only ever narrows what is read and never changes an
//! answer.
//!
//! A needle of a line filter (`|= "needle"`) is a substring, not a token:
//! only the parts of it that are certainly whole tokens of a matching line
//! can be looked up. A token of the needle with a non-token character on
//! both sides inside the needle is a whole token of every matching line
//! (exact term); the needle's last token, if something precedes it, is the
//! start of a token (prefix); the first token, if something follows it, is
//! the end of a token (suffix, looked up by a term-dictionary scan only
//! when nothing better exists); a needle that is one token is a substring
//! of one (also a dictionary scan).

use std::path::Path;

use tantivy::query::{BooleanQuery, Occur, Query, RegexQuery, TermQuery, TermSetQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, TokenFilter, Tokenizer, WhitespaceTokenizer,
};
use tantivy::{Index, Term};

use super::rare_terms::RareTerms;
use crate::error::{Result, StorageError};

/// Rows of the Parquet file per index document.
pub const GRANULE_ROWS: u32 = 128;
/// Tokens of this many bytes or more are not indexed (nor looked up).
pub const MAX_TOKEN_BYTES: usize = 128;
/// A `meta` term added to a granule that has a token of
/// [`MAX_TOKEN_BYTES`] or more (not indexed): only a needle token that is
/// certainly whole and short can skip such a granule. Metadata terms
/// always hold `=`, so it names no metadata.
pub const LONG_TOKEN_MARKER: &str = "_long";
/// Name under which the line analyzer is registered in every index (the
/// `line` field's tokenizer in version 1 blocks).
pub const LINE_TOKENIZER: &str = "sightline_line";
/// The `line` field's tokenizer since version 2 blocks: a document's
/// line terms come already cut by [`line_tokenizer`] (see
/// the block writer's `granule_terms`), separated by spaces. A term holds no
/// whitespace: it is a run of alphanumeric characters, lower-cased.
pub const TERMS_TOKENIZER: &str = "sightline_terms";

/// The fields of a block index.
#[derive(Clone)]
pub struct IndexFields {
    /// The schema holding them.
    pub schema: Schema,
    /// Granule number (fast field; also indexed since rare terms, to
    /// select the granules they name).
    pub granule: Field,
    /// Tokens of the lines.
    pub line: Field,
    /// `name=value` of structured metadata, untokenized.
    pub meta: Field,
}

/// The block index schema.
pub fn index_fields() -> IndexFields {
    let mut b = Schema::builder();
    let granule = b.add_u64_field("granule", FAST | INDEXED);
    let line_opts = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TERMS_TOKENIZER)
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    let line = b.add_text_field("line", line_opts);
    let meta_opts = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    let meta = b.add_text_field("meta", meta_opts);
    IndexFields {
        schema: b.build(),
        granule,
        line,
        meta,
    }
}

/// How lines and needles are cut into terms: alphanumeric runs, tokens
/// of [`MAX_TOKEN_BYTES`] or more dropped, lower-cased.
pub fn line_tokenizer() -> impl Tokenizer {
    LowerCaser.transform(RemoveLongFilter::limit(MAX_TOKEN_BYTES).transform(SimpleTokenizer::default()))
}

/// Calls `f` with every term [`line_tokenizer`] cuts from `line`, the
/// same terms in the same order, without its per-token copies: ASCII
/// bytes are classified without decoding characters, and a term already
/// in lower case is handed over as a slice of the line. (Cutting lines
/// into terms was a third of the ingest's CPU.) `lower` is scratch space.
/// True when a term of [`MAX_TOKEN_BYTES`] or more was left out.
pub fn for_each_line_term(line: &str, lower: &mut String, mut f: impl FnMut(&str)) -> bool {
    let mut long_token = false;
    let bytes = line.as_bytes();
    // The character at `i` (a char boundary): its class and length.
    let class = |i: usize| -> (u8, usize) {
        let b = bytes[i];
        match BYTE_CLASS[usize::from(b)] {
            NOT_ASCII => match line[i..].chars().next() {
                Some(c) if c.is_alphanumeric() => (NOT_ASCII, c.len_utf8()),
                Some(c) => (SEPARATOR, c.len_utf8()),
                None => (SEPARATOR, 1),
            },
            ascii => (ascii, 1),
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        let (first, len) = class(i);
        if first == SEPARATOR {
            i += len;
            continue;
        }
        let start = i;
        // The classes met, or-ed: whether the term needs lower-casing.
        let mut seen = first;
        i += len;
        while i < bytes.len() {
            let c = BYTE_CLASS[usize::from(bytes[i])];
            if c == LOWER_OR_DIGIT {
                i += 1;
                continue;
            }
            let (c, len) = class(i);
            if c == SEPARATOR {
                break;
            }
            seen |= c;
            i += len;
        }
        let term = &line[start..i];
        if term.len() >= MAX_TOKEN_BYTES {
            long_token = true;
            continue;
        }
        if seen & NOT_ASCII != 0 {
            lower.clear();
            lower.extend(term.chars().flat_map(char::to_lowercase));
            f(lower);
        } else if seen & UPPER != 0 {
            lower.clear();
            lower.push_str(term);
            lower.make_ascii_lowercase();
            f(lower);
        } else {
            f(term);
        }
    }
    long_token
}

/// Byte classes of [`BYTE_CLASS`]: bits, so that a term's can be or-ed.
const SEPARATOR: u8 = 0;
const LOWER_OR_DIGIT: u8 = 1;
const UPPER: u8 = 2;
/// A byte of a multi-byte character: its character decides.
const NOT_ASCII: u8 = 4;

/// The class of every byte value.
static BYTE_CLASS: [u8; 256] = {
    let mut t = [SEPARATOR; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c >= 0x80 {
            NOT_ASCII
        } else if c.is_ascii_uppercase() {
            UPPER
        } else if c.is_ascii_alphanumeric() {
            LOWER_OR_DIGIT
        } else {
            SEPARATOR
        };
        b += 1;
    }
    t
};

/// [`line_tokenizer`] as an analyzer (as the index registers it).
pub fn line_analyzer() -> TextAnalyzer {
    TextAnalyzer::from(line_tokenizer())
}

/// Registers the analyzers on an opened or created index.
pub fn register_analyzers(index: &Index) {
    index.tokenizers().register(LINE_TOKENIZER, line_analyzer());
    index
        .tokenizers()
        .register(TERMS_TOKENIZER, TextAnalyzer::from(WhitespaceTokenizer::default()));
}

/// Creates an empty index in `dir`.
pub fn create_index(dir: &Path, fields: &IndexFields) -> Result<Index> {
    std::fs::create_dir_all(dir).map_err(|e| StorageError::io("create dir", dir, e))?;
    let index = Index::create_in_dir(dir, fields.schema.clone()).map_err(|e| tantivy_err(dir, e))?;
    register_analyzers(&index);
    Ok(index)
}

/// Opens the index in `dir`.
pub fn open_index(dir: &Path) -> Result<Index> {
    let index = Index::open_in_dir(dir).map_err(|e| tantivy_err(dir, e))?;
    register_analyzers(&index);
    Ok(index)
}

/// Wraps a tantivy error with the index directory.
pub fn tantivy_err(dir: &Path, e: tantivy::TantivyError) -> StorageError {
    StorageError::CorruptBlock {
        block: dir.display().to_string(),
        reason: format!("full-text index: {e}"),
    }
}

/// How one needle token constrains a matching line's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenNeed {
    /// A whole token.
    Exact(String),
    /// The start of a token.
    Prefix(String),
    /// The end of a token.
    Suffix(String),
    /// Somewhere inside a token.
    Infix(String),
}

/// What `needle` requires of the tokens of every line containing it.
pub fn needle_tokens(needle: &str) -> Vec<TokenNeed> {
    let mut analyzer = line_analyzer();
    let mut stream = analyzer.token_stream(needle);
    let mut out = Vec::new();
    while stream.advance() {
        let t = stream.token();
        let left_bounded = t.offset_from > 0;
        let right_bounded = t.offset_to < needle.len();
        let text = t.text.clone();
        out.push(match (left_bounded, right_bounded) {
            (true, true) => TokenNeed::Exact(text),
            (true, false) => TokenNeed::Prefix(text),
            (false, true) => TokenNeed::Suffix(text),
            (false, false) => TokenNeed::Infix(text),
        });
    }
    out
}

/// A tantivy query selecting every granule that may contain all of
/// `needles` as substrings of a line; `None` when the needles give the
/// index nothing to look up (every granule is a candidate).
///
/// Exact and prefix tokens are always used; a suffix or infix token (a
/// scan of the term dictionary) only when its needle has nothing better.
///
/// `term_list` is the block's line terms (see [`TermList`]): with it,
/// suffix and infix tokens are looked up by
/// searching that list for the terms that end with or contain them, then
/// asking for those terms exactly, instead of scanning the dictionary with
/// a regular expression. `rare` is the block's rare terms (terms of one
/// granule, kept out of the index): a term found there adds its granule.
pub fn granule_query(
    searcher: &tantivy::Searcher,
    fields: &IndexFields,
    needles: &[String],
    term_list: Option<&TermList>,
    rare: Option<&RareTerms>,
) -> Result<Option<Box<dyn Query>>> {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for needle in needles {
        let tokens = needle_tokens(needle);
        let cheap: Vec<&TokenNeed> = tokens
            .iter()
            .filter(|t| matches!(t, TokenNeed::Exact(_) | TokenNeed::Prefix(_)))
            .collect();
        let chosen: Vec<&TokenNeed> = if cheap.is_empty() {
            // Tokens are alphanumeric, so they need no regex escaping; a
            // very short one would match most of the dictionary.
            tokens.iter().filter(|t| token_text(t).len() >= 3).take(1).collect()
        } else {
            cheap
        };
        for t in chosen {
            if let Some(q) = token_query(searcher, fields, t, term_list, rare)? {
                clauses.push((Occur::Must, q));
            }
        }
    }
    Ok(match clauses.len() {
        0 => None,
        _ => Some(Box::new(BooleanQuery::new(clauses))),
    })
}

/// Most chunks of rare terms a prefix lookup reads (64 Ki terms); a
/// prefix starting more terms than that does not narrow the granules.
const MAX_PREFIX_CHUNKS: usize = 64;

/// The granules that may hold a line term meeting `t`; `None` when the
/// index cannot tell.
fn token_query(
    searcher: &tantivy::Searcher,
    fields: &IndexFields,
    t: &TokenNeed,
    term_list: Option<&TermList>,
    rare: Option<&RareTerms>,
) -> Result<Option<Box<dyn Query>>> {
    // A term is in the index or among the rare terms, never both: the
    // rare terms are read only for a term the index does not have.
    let rare_granule = |s: &str| -> Result<Option<u32>> {
        match rare {
            Some(r) if !indexed(searcher, fields, s) => r.granule_of(s.as_bytes()),
            _ => Ok(None),
        }
    };
    Ok(match t {
        TokenNeed::Exact(s) => {
            let q: Box<dyn Query> = Box::new(TermQuery::new(
                Term::from_field_text(fields.line, s),
                IndexRecordOption::Basic,
            ));
            Some(or_granules(fields, q, rare_granule(s)?.into_iter().collect()))
        }
        TokenNeed::Prefix(s) => {
            let rare_granules = match rare {
                Some(r) => match r.granules_with_prefix(s.as_bytes(), MAX_PREFIX_CHUNKS)? {
                    Ok(granules) => granules,
                    Err(_) => return Ok(None),
                },
                None => Vec::new(),
            };
            // The line's token may be a long one that was not indexed.
            regex_query(&format!("{s}.*"), fields.line).map(|q| or_long(fields, or_granules(fields, q, rare_granules)))
        }
        TokenNeed::Suffix(s) | TokenNeed::Infix(s) => {
            let suffix = matches!(t, TokenNeed::Suffix(_));
            match term_list.and_then(|l| listed_terms(l, s, suffix).map(|found| (l, found))) {
                Some((list, found)) => {
                    let mut granules: Vec<u32> = rare_granule(s)?.into_iter().collect();
                    let mut indexed = vec![s.as_bytes()];
                    for (start, term) in found {
                        match list.rare_granule(start) {
                            Some(g) => granules.push(g),
                            None => indexed.push(term),
                        }
                    }
                    Some(or_long(
                        fields,
                        or_granules(fields, any_term(fields, indexed), granules),
                    ))
                }
                // A regular expression over the dictionary does not see
                // the rare terms.
                None if rare.is_some() => None,
                None => {
                    let pattern = if suffix { format!(".*{s}") } else { format!(".*{s}.*") };
                    regex_query(&pattern, fields.line).map(|q| or_long(fields, q))
                }
            }
        }
    })
}

/// True when the index has `term` as a line term.
fn indexed(searcher: &tantivy::Searcher, fields: &IndexFields, term: &str) -> bool {
    let term = Term::from_field_text(fields.line, term);
    searcher.segment_readers().iter().any(|seg| {
        seg.inverted_index(fields.line)
            .ok()
            .and_then(|inv| inv.get_term_info(&term).ok().flatten())
            .is_some()
    })
}

/// `q`, or any of `granules`.
fn or_granules(fields: &IndexFields, q: Box<dyn Query>, mut granules: Vec<u32>) -> Box<dyn Query> {
    if granules.is_empty() {
        return q;
    }
    granules.sort_unstable();
    granules.dedup();
    let set = TermSetQuery::new(
        granules
            .into_iter()
            .map(|g| Term::from_field_u64(fields.granule, u64::from(g))),
    );
    Box::new(BooleanQuery::new(vec![
        (Occur::Should, q),
        (Occur::Should, Box::new(set)),
    ]))
}

/// Most terms one needle token may expand to through the term list; a
/// token found in more terms is looked up by a dictionary scan instead.
const MAX_LISTED_TERMS: usize = 4096;

/// A block's line terms, longest first, for substring lookups of needle
/// tokens: a term can contain a token only when it is at least as long,
/// and one just as long only by being the token, so a lookup reads only
/// the terms longer than the token and asks for the token itself exactly.
/// (Unique ids and numbers fill most of a dictionary, and most of them
/// are shorter than a needle worth looking up.)
///
/// Long tokens (message ids, hashes) are looked up without reading the
/// list: every term of [`GRAM_TOKEN_MIN`] + 1 bytes or more is sampled
/// into `grams`, its [`GRAM`]-byte substrings at every [`STRIDE`]th byte.
/// A token of `L >= GRAM_TOKEN_MIN` bytes inside a term covers a whole
/// sampled gram (the first multiple of `STRIDE` at or after where it
/// starts is at most `STRIDE - 1` further, and `L - GRAM >= STRIDE - 1`),
/// which is one of the token's first `STRIDE` grams; so the terms holding
/// the token are among those sampled with one of them, and only those are
/// read.
#[derive(Debug)]
pub struct TermList {
    /// The terms, each followed by `\n`, by length, longest first.
    bytes: Vec<u8>,
    /// `longer[n]`: where the terms of at most `n` bytes start (all terms
    /// for an `n` past the end).
    longer: Vec<usize>,
    /// Per sampled gram: its 32-bit hash in the high half, where its term
    /// starts in `bytes` in the low half; sorted (a hash collision only
    /// adds a term to check). Empty when
    /// `bytes` is too large for 32-bit offsets. About as large as the
    /// sampled terms themselves.
    grams: Vec<u64>,
    /// Per rare term (see [`RareTerms`]): where it starts in `bytes` and
    /// its granule; sorted.
    rare: Vec<(u32, u32)>,
}

/// Marks a [`TermList`] entry that is in the index (not a rare term).
const NOT_RARE: u32 = u32::MAX;

/// Bytes of a sampled gram.
const GRAM: usize = 8;
/// A term is sampled every this many bytes.
const STRIDE: usize = 8;
/// Shortest token looked up through the sampled grams.
const GRAM_TOKEN_MIN: usize = GRAM + STRIDE - 1;
/// A token whose grams name more terms than this is looked up by reading
/// the list instead.
const MAX_GRAM_CANDIDATES: usize = 1 << 16;

/// The 32-bit hash of the gram at `at` of `b`.
fn gram_at(b: &[u8], at: usize) -> u64 {
    let mut g = [0u8; GRAM];
    g.copy_from_slice(&b[at..at + GRAM]);
    u64::from_le_bytes(g).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32
}

impl TermList {
    /// Every line term of `index` (all segments) and of `rare`.
    pub fn build(
        index: &tantivy::Searcher,
        fields: &IndexFields,
        rare: Option<&RareTerms>,
    ) -> std::result::Result<Self, String> {
        let mut flat = Vec::new();
        let mut spans: Vec<(usize, usize, u32)> = Vec::new();
        for seg in index.segment_readers() {
            let inv = seg.inverted_index(fields.line).map_err(|e| e.to_string())?;
            let mut stream = inv.terms().stream().map_err(|e| e.to_string())?;
            while stream.advance() {
                spans.push((flat.len(), stream.key().len(), NOT_RARE));
                flat.extend_from_slice(stream.key());
            }
        }
        if let Some(rare) = rare {
            rare.for_each(|term, granule| {
                spans.push((flat.len(), term.len(), granule));
                flat.extend_from_slice(term);
            })
            .map_err(|e| e.to_string())?;
        }
        if u32::try_from(flat.len() + spans.len()).is_err() {
            return Err(format!("{} bytes of terms, too many to list", flat.len()));
        }
        Ok(Self::arrange(&flat, spans))
    }

    /// The list of the terms at `spans` (offset, length, granule or
    /// [`NOT_RARE`]) of `flat`, which holds fewer than 4 GiB with their
    /// separators.
    fn arrange(flat: &[u8], mut spans: Vec<(usize, usize, u32)>) -> Self {
        // Longest first; equal lengths keep the dictionary's order.
        spans.sort_by_key(|s| std::cmp::Reverse(s.1));
        let max_len = spans.first().map_or(0, |s| s.1);
        let mut bytes = Vec::with_capacity(flat.len() + spans.len());
        let mut longer = vec![0usize; max_len + 1];
        let mut prev = max_len + 1;
        let mut rare = Vec::new();
        for &(at, len, granule) in &spans {
            // The terms of at most n bytes start here, for n in len..prev.
            for slot in longer.iter_mut().take(prev).skip(len) {
                *slot = bytes.len();
            }
            prev = len;
            if granule != NOT_RARE {
                rare.push((bytes.len() as u32, granule));
            }
            bytes.extend_from_slice(&flat[at..at + len]);
            bytes.push(b'\n');
        }
        for slot in longer.iter_mut().take(prev) {
            *slot = bytes.len();
        }
        let mut grams = Vec::new();
        if u32::try_from(bytes.len()).is_ok() {
            // Terms long enough to hold a token looked up by grams.
            let sampled = longer.get(GRAM_TOKEN_MIN).copied().unwrap_or(0);
            let mut start = 0;
            while start < sampled {
                let len = memchr::memchr(b'\n', &bytes[start..sampled]).unwrap_or(sampled - start);
                for at in (0..len.saturating_sub(GRAM - 1)).step_by(STRIDE) {
                    grams.push(gram_at(&bytes, start + at) << 32 | start as u64);
                }
                start += len + 1;
            }
            grams.sort_unstable();
        }
        TermList {
            bytes,
            longer,
            grams,
            rare,
        }
    }

    /// The granule of the term starting at `start` of the list when it is
    /// a rare term (not in the index).
    fn rare_granule(&self, start: usize) -> Option<u32> {
        let start = u32::try_from(start).ok()?;
        self.rare
            .binary_search_by_key(&start, |e| e.0)
            .ok()
            .map(|i| self.rare[i].1)
    }

    /// Where the terms that may hold `token` start (sorted, each once), by
    /// its sampled grams; `None` when the token is too short for them or
    /// they name too many terms.
    fn gram_candidates(&self, token: &[u8]) -> Option<Vec<usize>> {
        if token.len() < GRAM_TOKEN_MIN || self.grams.is_empty() {
            return None;
        }
        let mut starts = Vec::new();
        for k in 0..STRIDE {
            let g = gram_at(token, k);
            let from = self.grams.partition_point(|e| e >> 32 < g);
            starts.extend(
                self.grams[from..]
                    .iter()
                    .take_while(|e| *e >> 32 == g)
                    .map(|e| (e & u64::from(u32::MAX)) as usize),
            );
            if starts.len() > MAX_GRAM_CANDIDATES {
                return None;
            }
        }
        starts.sort_unstable();
        starts.dedup();
        Some(starts)
    }

    /// The terms longer than `n` bytes, each followed by `\n`.
    fn longer_than(&self, n: usize) -> &[u8] {
        let end = self.longer.get(n).copied().unwrap_or(0);
        &self.bytes[..end]
    }
}

/// The terms of `list` longer than `token` that contain it (or end with
/// it, when `suffix`), each once with where it starts in the list; `None`
/// when there are too many.
fn listed_terms<'a>(list: &'a TermList, token: &str, suffix: bool) -> Option<Vec<(usize, &'a [u8])>> {
    let mut out: Vec<(usize, &[u8])> = Vec::new();
    let finder = memchr::memmem::Finder::new(token.as_bytes());
    if let Some(starts) = list.gram_candidates(token.as_bytes()) {
        for start in starts {
            let rest = &list.bytes[start..];
            let term = &rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())];
            let holds = if suffix {
                term.ends_with(token.as_bytes())
            } else {
                finder.find(term).is_some()
            };
            if term.len() > token.len() && holds {
                out.push((start, term));
                if out.len() >= MAX_LISTED_TERMS {
                    return None;
                }
            }
        }
        return Some(out);
    }
    let region = list.longer_than(token.len());
    let mut last_start = usize::MAX;
    for at in finder.find_iter(region) {
        let start = memchr::memrchr(b'\n', &region[..at]).map_or(0, |p| p + 1);
        let end = memchr::memchr(b'\n', &region[at..]).map_or(region.len(), |p| at + p);
        if suffix && at + token.len() != end {
            continue;
        }
        if start == last_start {
            continue;
        }
        last_start = start;
        out.push((start, &region[start..end]));
        if out.len() >= MAX_LISTED_TERMS {
            return None;
        }
    }
    Some(out)
}

/// Granules holding any of `terms` (none: a query matching nothing).
fn any_term(fields: &IndexFields, terms: Vec<&[u8]>) -> Box<dyn Query> {
    if terms.is_empty() {
        return Box::new(tantivy::query::EmptyQuery);
    }
    let clauses: Vec<(Occur, Box<dyn Query>)> = terms
        .into_iter()
        .filter_map(|t| std::str::from_utf8(t).ok())
        .map(|t| {
            let q: Box<dyn Query> = Box::new(TermQuery::new(
                Term::from_field_text(fields.line, t),
                IndexRecordOption::Basic,
            ));
            (Occur::Should, q)
        })
        .collect();
    Box::new(BooleanQuery::new(clauses))
}

/// A query for granules holding structured metadata `name=value`.
pub fn metadata_query(fields: &IndexFields, name: &str, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(fields.meta, &format!("{name}={value}")),
        IndexRecordOption::Basic,
    ))
}

fn or_long(fields: &IndexFields, q: Box<dyn Query>) -> Box<dyn Query> {
    let marker = Box::new(TermQuery::new(
        Term::from_field_text(fields.meta, LONG_TOKEN_MARKER),
        IndexRecordOption::Basic,
    ));
    Box::new(BooleanQuery::new(vec![(Occur::Should, q), (Occur::Should, marker)]))
}

fn token_text(t: &TokenNeed) -> &str {
    match t {
        TokenNeed::Exact(s) | TokenNeed::Prefix(s) | TokenNeed::Suffix(s) | TokenNeed::Infix(s) => s,
    }
}

fn regex_query(pattern: &str, field: Field) -> Option<Box<dyn Query>> {
    // Tokens are lower-cased alphanumerics: the pattern is always valid, and
    // if it were not, looking nothing up is the safe answer.
    RegexQuery::from_pattern(pattern, field)
        .ok()
        .map(|q| Box::new(q) as Box<dyn Query>)
}

#[cfg(test)]
mod tests {
    use tantivy::tokenizer::TokenStream;

    use super::super::test_rng::TestRng;
    use super::*;

    #[test]
    fn needle_tokens_say_what_is_certain() {
        use TokenNeed::*;
        assert_eq!(
            needle_tokens("user=Alice id=42"),
            vec![
                Suffix("user".into()),
                Exact("alice".into()),
                Exact("id".into()),
                Prefix("42".into())
            ]
        );
        assert_eq!(needle_tokens("rror"), vec![Infix("rror".into())]);
        assert_eq!(needle_tokens(" timeout "), vec![Exact("timeout".into())]);
        assert_eq!(needle_tokens("::"), vec![]);
    }

    #[test]
    fn line_terms_are_the_line_tokenizers_tokens() {
        let mut rng = TestRng::new(0x5eed_1234_abcd_ef01);
        // ASCII of every class, letters whose lower case differs in
        // length or is no letter (İ, ẞ, Σ), digits of other scripts,
        // combining marks, emoji, CJK.
        let pieces = [
            "a", "Z", "7", " ", "=", "-", "_", ".", "\t", "é", "É", "İ", "ẞ", "Σ", "ς", "٣", "\u{0301}", "😀", "中",
            "Ⅻ", "ǅ", "\u{00a0}", "ﬁ",
        ];
        let mut lower = String::new();
        let mut tokenizer = line_tokenizer();
        for round in 0..5000 {
            let len = rng.below(60);
            let mut line: String = (0..len).map(|_| pieces[rng.below(pieces.len())]).collect();
            if round % 50 == 0 {
                // Terms around the length limit.
                line.push_str(&"Ab".repeat(MAX_TOKEN_BYTES / 2 - 1 + rng.below(3)));
                line.push(' ');
                line.push_str(&"é".repeat(MAX_TOKEN_BYTES / 2 - 1 + rng.below(3)));
            }
            let mut want = Vec::new();
            let mut stream = tokenizer.token_stream(&line);
            while stream.advance() {
                want.push(stream.token().text.clone());
            }
            let mut got = Vec::new();
            for_each_line_term(&line, &mut lower, |t| got.push(t.to_string()));
            assert_eq!(got, want, "{line:?}");
        }
    }

    #[test]
    fn long_tokens_left_out_are_reported_as_the_tokenizer_cuts_them() {
        // The tokens the index leaves out: the simple tokenizer's, before
        // the length filter.
        fn by_tokenizer(line: &str) -> bool {
            let mut tokenizer = SimpleTokenizer::default();
            let mut stream = tokenizer.token_stream(line);
            let mut long = false;
            while stream.advance() {
                long |= stream.token().text.len() >= MAX_TOKEN_BYTES;
            }
            long
        }
        let long_left_out = |line: &str| for_each_line_term(line, &mut String::new(), |_| {});
        let mut rng = TestRng::new(0x9e37_79b9_7f4a_7c15);
        let mut next = move |n: u64| rng.next_u64() % n;
        let mut long = 0;
        for _ in 0..3000 {
            let mut line = String::new();
            while line.len() < 400 {
                // Words of every length around the limit, separators
                // (one of them not ASCII), non-ASCII letters.
                let len = [1, 5, 40, MAX_TOKEN_BYTES - 1, MAX_TOKEN_BYTES, MAX_TOKEN_BYTES + 3][next(6) as usize];
                let word: String = (0..len).map(|_| ['a', '7', 'é', 'Z'][next(4) as usize]).collect();
                line.push_str(&word);
                line.push([' ', '=', '\u{00a0}', ':'][next(4) as usize]);
            }
            let line: String = line.chars().take(next(400) as usize).collect();
            assert_eq!(long_left_out(&line), by_tokenizer(&line), "{line:?}");
            long += usize::from(by_tokenizer(&line));
        }
        assert!((500..2500).contains(&long), "{long} of 3000 lines with a long token");
        assert!(!long_left_out(""));
        assert!(long_left_out(&"x".repeat(MAX_TOKEN_BYTES)));
        assert!(!long_left_out(&"x".repeat(MAX_TOKEN_BYTES - 1)));
    }

    fn list_of(terms: &[&str]) -> TermList {
        let mut flat = Vec::new();
        let mut spans = Vec::new();
        for t in terms {
            spans.push((flat.len(), t.len(), NOT_RARE));
            flat.extend_from_slice(t.as_bytes());
        }
        TermList::arrange(&flat, spans)
    }

    fn found(list: &TermList, token: &str, suffix: bool) -> Vec<String> {
        let mut v: Vec<String> = listed_terms(list, token, suffix)
            .expect("few terms")
            .into_iter()
            .map(|(_, t)| String::from_utf8_lossy(t).into_owned())
            .collect();
        // The token itself is always asked for.
        v.push(token.to_string());
        v.sort();
        v
    }

    #[test]
    fn terms_holding_a_token_are_found_among_the_longer_ones() {
        let list = list_of(&[
            "a", "error", "errors", "id42", "rror", "terror", "x0949ca", "0949ca", "949c",
        ]);
        // Longest first, each length group where `longer` says.
        assert_eq!(list.longer_than(0).len(), list.bytes.len());
        assert_eq!(
            String::from_utf8_lossy(list.longer_than(5)),
            "x0949ca\nerrors\nterror\n0949ca\n"
        );
        assert_eq!(String::from_utf8_lossy(list.longer_than(6)), "x0949ca\n");
        assert!(list.longer_than(7).is_empty() && list.longer_than(100).is_empty());
        // Infix: every longer term containing it, and the token itself.
        assert_eq!(found(&list, "rror", false), ["error", "errors", "rror", "terror"]);
        assert_eq!(found(&list, "0949ca", false), ["0949ca", "x0949ca"]);
        assert_eq!(found(&list, "949c", false), ["0949ca", "949c", "x0949ca"]);
        // Suffix: only those ending with it.
        assert_eq!(found(&list, "rror", true), ["error", "rror", "terror"]);
        // A token no term holds: only itself (which matches nothing).
        assert_eq!(found(&list, "zzz", false), ["zzz"]);
        assert!(list_of(&[]).longer_than(3).is_empty());
    }

    #[test]
    fn long_tokens_found_by_grams_are_the_terms_a_scan_finds() {
        // Hex-like terms of many lengths, some holding others, so tokens
        // occur at every offset modulo the stride.
        let mut rng = TestRng::new(0x2545_f491_4f6c_dd1d);
        let mut next = move |n: u64| rng.next_u64() % n;
        let mut terms: Vec<String> = (0..3000)
            .map(|_| {
                let len = 4 + next(36) as usize;
                (0..len)
                    .map(|_| b"0123456789abcdef"[next(16) as usize] as char)
                    .collect()
            })
            .collect();
        for i in 0..300 {
            let inner = terms[i].clone();
            let pad: String = (0..next(9)).map(|_| 'x').collect();
            terms.push(format!("{pad}{inner}{}", "y".repeat(next(5) as usize)));
        }
        let refs: Vec<&str> = terms.iter().map(String::as_str).collect();
        let with_grams = list_of(&refs);
        assert!(!with_grams.grams.is_empty());
        let mut scan_only = list_of(&refs);
        scan_only.grams.clear();
        let mut tokens: Vec<String> = Vec::new();
        for t in terms.iter().filter(|t| t.len() >= GRAM_TOKEN_MIN) {
            let from = next((t.len() - GRAM_TOKEN_MIN + 1) as u64) as usize;
            let len = GRAM_TOKEN_MIN + next((t.len() - from - GRAM_TOKEN_MIN + 1) as u64) as usize;
            tokens.push(t[from..from + len].to_string());
        }
        tokens.push("0123456789abcdef0123".into());
        let mut via_grams = 0;
        for token in &tokens {
            assert!(with_grams.gram_candidates(token.as_bytes()).is_some());
            for suffix in [false, true] {
                let got = found(&with_grams, token, suffix);
                via_grams += got.len();
                assert_eq!(got, found(&scan_only, token, suffix), "{token:?} suffix={suffix}");
            }
        }
        assert!(via_grams > 2 * tokens.len(), "tokens are found in longer terms too");
        // Short tokens still take the scan.
        assert!(with_grams.gram_candidates(b"0123456789").is_none());
    }
}
