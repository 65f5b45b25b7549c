//! The inverted label index: for each label name and value, the sorted list
//! of series ids that carry it. Used by the head (ids are global series
//! references) and by each block (ids are the block's series numbers).

use std::collections::{BTreeMap, BTreeSet};

use crate::labels::Labels;
use crate::matcher::Matcher;

/// Inverted index from `name -> value -> sorted ids`, plus the sorted list
/// of all ids.
#[derive(Debug, Default, Clone)]
pub struct Postings<Id> {
    by_label: BTreeMap<String, BTreeMap<String, Vec<Id>>>,
    all: Vec<Id>,
}

impl<Id: Copy + Ord> Postings<Id> {
    /// An empty index.
    pub fn new() -> Self {
        Postings {
            by_label: BTreeMap::new(),
            all: Vec::new(),
        }
    }

    /// Adds a series. Ids must be added in increasing order (they are
    /// appended to each list); [`Postings::insert`] handles any order.
    pub fn push(&mut self, id: Id, labels: &Labels) {
        self.all.push(id);
        for l in labels {
            self.by_label
                .entry(l.name.to_string())
                .or_default()
                .entry(l.value.to_string())
                .or_default()
                .push(id);
        }
    }

    /// Adds a series keeping every list sorted, whatever order ids come in.
    pub fn insert(&mut self, id: Id, labels: &Labels) {
        insert_sorted(&mut self.all, id);
        for l in labels {
            let list = self
                .by_label
                .entry(l.name.to_string())
                .or_default()
                .entry(l.value.to_string())
                .or_default();
            insert_sorted(list, id);
        }
    }

    /// Removes a set of series; `labels_of` tells the labels of each id.
    pub fn remove_all<'a>(&mut self, ids: &BTreeSet<Id>, labels_of: impl Fn(Id) -> Option<&'a Labels>) {
        if ids.is_empty() {
            return;
        }
        self.all.retain(|id| !ids.contains(id));
        for &id in ids {
            let Some(labels) = labels_of(id) else {
                continue;
            };
            for l in labels {
                if let Some(values) = self.by_label.get_mut(l.name) {
                    if let Some(list) = values.get_mut(l.value) {
                        list.retain(|x| *x != id);
                        if list.is_empty() {
                            values.remove(l.value);
                        }
                    }
                    if values.is_empty() {
                        self.by_label.remove(l.name);
                    }
                }
            }
        }
    }

    /// Number of series indexed.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// True when no series is indexed.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// All ids, sorted.
    pub fn all(&self) -> &[Id] {
        &self.all
    }

    /// The ids selected by all `matchers` (an empty matcher list selects
    /// everything), sorted.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<Id> {
        // Start from the most selective matchers: those not matching "".
        let mut result: Option<Vec<Id>> = None;
        let (positive, negative): (Vec<&Matcher>, Vec<&Matcher>) = matchers.iter().partition(|m| !m.matches_empty());
        for m in positive {
            let ids = self.matching_values_union(m);
            result = Some(match result {
                None => ids,
                Some(r) => intersect(&r, &ids),
            });
            if result.as_ref().is_some_and(|r| r.is_empty()) {
                return Vec::new();
            }
        }
        let mut result = result.unwrap_or_else(|| self.all.clone());
        for m in negative {
            // The matcher accepts "", so it rejects exactly the series whose
            // value for this label is present and does not match.
            let rejected = self.non_matching_values_union(m);
            if !rejected.is_empty() {
                result = subtract(&result, &rejected);
            }
        }
        result
    }

    fn matching_values_union(&self, m: &Matcher) -> Vec<Id> {
        let Some(values) = self.by_label.get(&m.name) else {
            return Vec::new();
        };
        if m.op == crate::matcher::MatchOp::Equal {
            return values.get(&m.value).cloned().unwrap_or_default();
        }
        union_lists(values.iter().filter(|(v, _)| m.matches(v)).map(|(_, l)| l.as_slice()))
    }

    fn non_matching_values_union(&self, m: &Matcher) -> Vec<Id> {
        let Some(values) = self.by_label.get(&m.name) else {
            return Vec::new();
        };
        union_lists(values.iter().filter(|(v, _)| !m.matches(v)).map(|(_, l)| l.as_slice()))
    }

    /// All label names, sorted.
    pub fn label_names(&self) -> impl Iterator<Item = &str> {
        self.by_label.keys().map(String::as_str)
    }

    /// The values of one label name with their id lists, sorted by value.
    pub fn label_values(&self, name: &str) -> impl Iterator<Item = (&str, &[Id])> {
        self.by_label
            .get(name)
            .into_iter()
            .flat_map(|m| m.iter().map(|(v, l)| (v.as_str(), l.as_slice())))
    }

    /// Every `(name, value, ids)` entry in name then value order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, &[Id])> {
        self.by_label
            .iter()
            .flat_map(|(n, vs)| vs.iter().map(move |(v, l)| (n.as_str(), v.as_str(), l.as_slice())))
    }

    /// Rebuilds an index from persisted entries.
    pub fn from_entries(entries: impl IntoIterator<Item = (String, String, Vec<Id>)>, all: Vec<Id>) -> Self {
        let mut by_label: BTreeMap<String, BTreeMap<String, Vec<Id>>> = BTreeMap::new();
        for (n, v, ids) in entries {
            by_label.entry(n).or_default().insert(v, ids);
        }
        Postings { by_label, all }
    }
}

fn insert_sorted<Id: Ord + Copy>(list: &mut Vec<Id>, id: Id) {
    match list.last() {
        Some(last) if *last < id => list.push(id),
        None => list.push(id),
        _ => {
            if let Err(pos) = list.binary_search(&id) {
                list.insert(pos, id);
            }
        }
    }
}

/// Intersection of two sorted lists.
pub fn intersect<Id: Ord + Copy>(a: &[Id], b: &[Id]) -> Vec<Id> {
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// `a` minus `b`, both sorted.
pub fn subtract<Id: Ord + Copy>(a: &[Id], b: &[Id]) -> Vec<Id> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j < b.len() && b[j] == x {
            continue;
        }
        out.push(x);
    }
    out
}

/// Union of sorted lists, sorted and without duplicates.
pub fn union_lists<'a, Id: Ord + Copy + 'a>(lists: impl Iterator<Item = &'a [Id]>) -> Vec<Id> {
    let mut out: Vec<Id> = Vec::new();
    for l in lists {
        out.extend_from_slice(l);
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::{MatchOp, Matcher};

    fn index() -> Postings<u32> {
        let mut p = Postings::new();
        p.push(
            0,
            &Labels::from_pairs([("__name__", "up"), ("job", "node"), ("env", "prod")]),
        );
        p.push(1, &Labels::from_pairs([("__name__", "up"), ("job", "api")]));
        p.push(
            2,
            &Labels::from_pairs([("__name__", "cpu"), ("job", "node"), ("env", "dev")]),
        );
        p
    }

    fn sel(p: &Postings<u32>, ms: &[(MatchOp, &str, &str)]) -> Vec<u32> {
        let ms: Vec<Matcher> = ms
            .iter()
            .map(|(op, n, v)| Matcher::new(*op, *n, *v).expect("matcher"))
            .collect();
        p.select(&ms)
    }

    #[test]
    fn selects_with_prometheus_semantics_for_absent_labels() {
        let p = index();
        assert_eq!(sel(&p, &[(MatchOp::Equal, "__name__", "up")]), vec![0, 1]);
        assert_eq!(
            sel(&p, &[(MatchOp::Equal, "__name__", "up"), (MatchOp::Equal, "env", "")]),
            vec![1]
        );
        assert_eq!(sel(&p, &[(MatchOp::NotEqual, "env", "prod")]), vec![1, 2]);
        assert_eq!(sel(&p, &[(MatchOp::Regex, "env", "prod|")]), vec![0, 1]);
        assert_eq!(sel(&p, &[(MatchOp::NotRegex, "job", "no.*")]), vec![1]);
        assert_eq!(
            sel(&p, &[(MatchOp::Regex, "job", ".+"), (MatchOp::Equal, "env", "dev")]),
            vec![2]
        );
        assert_eq!(sel(&p, &[]), vec![0, 1, 2]);
    }

    #[test]
    fn remove_drops_empty_lists() {
        let mut p = index();
        let ls = [
            Labels::from_pairs([("__name__", "up"), ("job", "node"), ("env", "prod")]),
            Labels::from_pairs([("__name__", "up"), ("job", "api")]),
        ];
        p.remove_all(&BTreeSet::from([0u32, 1]), |id| ls.get(id as usize));
        assert_eq!(p.all(), &[2]);
        assert_eq!(p.label_values("__name__").count(), 1);
    }
}
