//! Shares one `Arc<Labels>` per distinct label set among the head and all
//! open blocks. Without it every block's index holds its own copy of every
//! series' labels, and memory grows with the number of blocks.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::head::FastMap;
use crate::labels::Labels;

/// A weak-reference interner for label sets.
#[derive(Debug, Default)]
pub struct LabelInterner {
    map: Mutex<FastMap<u64, Vec<Weak<Labels>>>>,
}

impl LabelInterner {
    /// An empty interner.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared copy of `labels`, creating it if no live copy exists.
    pub fn intern(&self, labels: Labels) -> Arc<Labels> {
        let h = labels.stable_hash();
        let mut map = self.map.lock();
        let list = map.entry(h).or_default();
        for w in list.iter() {
            if let Some(a) = w.upgrade()
                && *a == labels
            {
                return a;
            }
        }
        list.retain(|w| w.strong_count() > 0);
        let a = Arc::new(labels);
        list.push(Arc::downgrade(&a));
        a
    }

    /// Forgets label sets nobody holds any more.
    pub fn collect_garbage(&self) {
        let mut map = self.map.lock();
        map.retain(|_, list| {
            list.retain(|w| w.strong_count() > 0);
            !list.is_empty()
        });
    }

    /// Number of label sets tracked (live or not yet collected).
    pub fn len(&self) -> usize {
        self.map.lock().values().map(Vec::len).sum()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_label_sets_share_one_allocation_while_alive() {
        let i = LabelInterner::new();
        let a = i.intern(Labels::from_pairs([("__name__", "up")]));
        let b = i.intern(Labels::from_pairs([("__name__", "up")]));
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        i.collect_garbage();
        assert!(i.is_empty());
    }
}
