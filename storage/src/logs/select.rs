//! What a log read asks for, and the checks every source applies the same
//! way (head, blocks being written, blocks on disk).

use std::collections::HashMap;

use crate::matcher::{MatchOp, Matcher};
use crate::postings::Postings;

use super::model::StreamKey;

/// A read of log entries.
#[derive(Debug, Clone)]
pub struct LogSelect {
    /// Only this tenant's streams.
    pub tenant: String,
    /// Stream label matchers; all must match (a missing label is "").
    pub matchers: Vec<Matcher>,
    /// First nanosecond included.
    pub start: i64,
    /// First nanosecond excluded.
    pub end: i64,
    /// Every returned line contains each of these, case-sensitively (the
    /// leading `|=` filters of a LogQL query; blocks answer them from
    /// their full-text index).
    pub contains: Vec<String>,
    /// Stop with [`crate::StorageError::LimitExceeded`] once this many
    /// bytes of lines were read (0: no limit).
    pub max_bytes: u64,
    /// The caller needs times, streams and metadata only: entries may come
    /// with empty lines (block reads then skip the line column).
    pub skip_lines: bool,
}

impl LogSelect {
    /// A read of every entry of `tenant`'s streams matching `matchers` in
    /// `[start, end)`.
    pub fn new(tenant: impl Into<String>, matchers: Vec<Matcher>, start: i64, end: i64) -> Self {
        LogSelect {
            tenant: tenant.into(),
            matchers,
            start,
            end,
            contains: Vec::new(),
            max_bytes: 0,
            skip_lines: false,
        }
    }

    /// True when the stream belongs to the tenant and its labels match.
    pub fn matches_stream(&self, key: &StreamKey) -> bool {
        self.matches_stream_by(key, |_, m, value| m.matches(value))
    }

    /// The one definition of a stream match: the tenant's, and `test`
    /// true for every matcher (its index, itself, and the stream's value
    /// of its label, "" when missing).
    fn matches_stream_by(&self, key: &StreamKey, mut test: impl FnMut(usize, &Matcher, &str) -> bool) -> bool {
        key.tenant == self.tenant
            && self
                .matchers
                .iter()
                .enumerate()
                .all(|(i, m)| test(i, m, key.labels.get(&m.name).unwrap_or("")))
    }

    /// A matcher for many stream keys in a row (a block's streams): it
    /// runs each regular expression once per distinct label value.
    pub fn stream_matcher(&self) -> StreamMatcher<'_> {
        StreamMatcher {
            select: self,
            seen: vec![HashMap::new(); self.matchers.len()],
        }
    }

    /// True when `line` contains every needle.
    pub fn matches_line(&self, line: &str) -> bool {
        self.contains.iter().all(|n| line.contains(n.as_str()))
    }

    /// [`LogSelect::matches_line`] for many lines in a row (a head's, a
    /// block's candidate granules): each needle's searcher is built once
    /// (building one per line was a tenth of a phrase search) and finds
    /// it with SIMD, several times faster than `str::contains`.
    pub fn line_matcher(&self) -> LineMatcher<'_> {
        LineMatcher {
            finders: self
                .contains
                .iter()
                .map(|n| memchr::memmem::Finder::new(n.as_bytes()))
                .collect(),
        }
    }

    /// The streams this read selects among those `postings` numbers by
    /// their labels (ascending): each distinct label value is tested once,
    /// not each stream (a block of 2560 streams spent a sixth of a needle
    /// search testing its streams one by one). `tenant_of` tells a
    /// stream's tenant.
    pub fn select_by_postings<'k>(&self, postings: &Postings<u32>, tenant_of: impl Fn(u32) -> &'k str) -> Vec<u32> {
        postings
            .select(&self.matchers)
            .into_iter()
            .filter(|&no| tenant_of(no) == self.tenant)
            .collect()
    }

    /// True when `[min_t, max_t]` overlaps the range.
    pub fn overlaps(&self, min_t: i64, max_t: i64) -> bool {
        min_t < self.end && max_t >= self.start
    }
}

/// What the query side needs of log storage: the narrow read interface,
/// so a querier can later read blocks from an object store instead.
pub trait LogReader: Send + Sync {
    /// Every entry `q` selects, stream by stream, in time order.
    fn select(&self, q: &LogSelect) -> crate::Result<Vec<super::LogStream>>;
    /// Keys of the streams `q` selects that have entries in its range.
    fn stream_keys(&self, q: &LogSelect) -> Vec<std::sync::Arc<StreamKey>>;
    /// Entries as they are stored, for live tailing; `None` when this
    /// reader has no live source (e.g. blocks in an object store).
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<super::TailBatch>> {
        None
    }
}

/// The needles of a [`LogSelect`], ready to search many lines.
pub struct LineMatcher<'a> {
    finders: Vec<memchr::memmem::Finder<'a>>,
}

impl LineMatcher<'_> {
    /// True when `line` contains every needle.
    pub fn matches(&self, line: &str) -> bool {
        self.finders.iter().all(|f| f.find(line.as_bytes()).is_some())
    }
}

/// Matches stream keys against a [`LogSelect`]'s tenant and matchers, as
/// [`LogSelect::matches_stream`] does, remembering what each regular
/// expression said of each label value: a block's thousands of streams
/// share a handful of values per label (three sites, a few dozen apps),
/// and a regex costs far more than a map probe.
#[derive(Debug)]
pub struct StreamMatcher<'q> {
    select: &'q LogSelect,
    /// Per matcher: label value -> matched (regex matchers only).
    seen: Vec<HashMap<String, bool>>,
}

impl StreamMatcher<'_> {
    /// True when the stream belongs to the tenant and its labels match.
    pub fn matches(&mut self, key: &StreamKey) -> bool {
        let seen = &mut self.seen;
        self.select.matches_stream_by(key, |i, m, value| match m.op {
            MatchOp::Equal | MatchOp::NotEqual => m.matches(value),
            MatchOp::Regex | MatchOp::NotRegex => match seen[i].get(value) {
                Some(&ok) => ok,
                None => {
                    let ok = m.matches(value);
                    seen[i].insert(value.to_string(), ok);
                    ok
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;

    fn key(tenant: &str, pairs: &[(&str, &str)]) -> StreamKey {
        StreamKey {
            tenant: tenant.into(),
            labels: Labels::from_pairs(pairs.iter().copied()),
        }
    }

    #[test]
    fn the_stream_matcher_says_what_matches_stream_says() {
        let m = |op, name: &str, value: &str| Matcher::new(op, name, value).expect("matcher");
        let q = LogSelect::new(
            "t1",
            vec![
                m(MatchOp::Regex, "site", "dc[12]"),
                m(MatchOp::NotRegex, "app", "ng.*"),
                m(MatchOp::NotEqual, "host", "h3"),
            ],
            0,
            1,
        );
        let keys = [
            key("t1", &[("site", "dc1"), ("app", "api"), ("host", "h1")]),
            key("t1", &[("site", "dc3"), ("app", "api"), ("host", "h1")]),
            key("t1", &[("site", "dc2"), ("app", "nginx"), ("host", "h1")]),
            key("t1", &[("site", "dc2"), ("host", "h2")]),
            key("t1", &[("site", "dc1"), ("app", "api"), ("host", "h3")]),
            key("t2", &[("site", "dc1"), ("app", "api"), ("host", "h1")]),
            key("t1", &[("app", "api"), ("host", "h1")]),
            // Values seen before, in another order: answered from memory.
            key("t1", &[("site", "dc3"), ("app", "api"), ("host", "h2")]),
            key("t1", &[("site", "dc1"), ("app", "nginx"), ("host", "h2")]),
            key("t1", &[("site", "dc1"), ("app", "api"), ("host", "h2")]),
        ];
        let mut matcher = q.stream_matcher();
        let got: Vec<bool> = keys.iter().map(|k| matcher.matches(k)).collect();
        let want: Vec<bool> = keys.iter().map(|k| q.matches_stream(k)).collect();
        assert_eq!(got, want);
        assert_eq!(
            want,
            [true, false, false, true, false, false, false, false, false, true]
        );
    }

    /// Random streams (labels missing, tenants mixed) and random selectors
    /// of every operator, including ones true of a missing label: the
    /// postings pick exactly the streams `matches_stream` picks.
    #[test]
    fn postings_pick_what_matches_stream_picks() {
        let mut rng = super::super::test_rng::TestRng::new(0x57ea);
        let values = ["dc1", "dc2", "dc3", "api", "nginx", "h1", "h2"];
        let names = ["site", "app", "host", "zone"];
        let keys: Vec<StreamKey> = (0..300)
            .map(|_| {
                let mut pairs: Vec<(&str, &str)> = Vec::new();
                for n in names {
                    if rng.below(4) != 0 {
                        pairs.push((n, values[rng.below(values.len())]));
                    }
                }
                key(["t1", "t2"][rng.below(2)], &pairs)
            })
            .collect();
        let mut postings = Postings::new();
        for (no, k) in keys.iter().enumerate() {
            postings.push(no as u32, &k.labels);
        }
        let ops = [MatchOp::Equal, MatchOp::NotEqual, MatchOp::Regex, MatchOp::NotRegex];
        let patterns = ["dc1", "dc[12]", ".*", ".+", "", "h.*", "nope"];
        let mut picked_some = false;
        for round in 0..400 {
            let matchers = (0..1 + rng.below(3))
                .map(|_| {
                    let op = ops[rng.below(ops.len())];
                    let value = patterns[rng.below(patterns.len())];
                    Matcher::new(op, names[rng.below(names.len())], value).expect("matcher")
                })
                .collect();
            let q = LogSelect::new(["t1", "t2", "t3"][round % 3], matchers, 0, 1);
            let want: Vec<u32> = (0..keys.len() as u32)
                .filter(|&no| q.matches_stream(&keys[no as usize]))
                .collect();
            let got = q.select_by_postings(&postings, |no| keys[no as usize].tenant.as_str());
            assert_eq!(got, want, "{:?}", q.matchers);
            picked_some |= !want.is_empty();
        }
        assert!(picked_some);
    }
}
