//! The notification state that must survive a crash: received alerts,
//! silences and the notification log (what each receiver was last told
//! about each group). Saved as one JSON file, written atomically (temp
//! file, fsync, rename) whenever it changes, before the change is
//! acknowledged.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::matcher::{MatchType, Matcher};
use crate::rule::Labels;

pub use crate::timefmt::{parse_rfc3339, rfc3339};

/// An alert as Alertmanager holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmAlert {
    /// Identifying labels.
    pub labels: Labels,
    /// Annotations.
    pub annotations: Labels,
    /// Start (ms).
    pub starts_at: i64,
    /// End (ms): resolved once it has passed.
    pub ends_at: i64,
    /// Link to the source.
    pub generator_url: String,
    /// Last update (ms).
    pub updated_at: i64,
    /// `ends_at` was filled in from `resolve_timeout`.
    pub timeout: bool,
}

impl AmAlert {
    /// Whether it is resolved at `now`.
    pub fn resolved(&self, now: i64) -> bool {
        self.ends_at != 0 && self.ends_at <= now
    }

    /// Stable identity from the labels.
    pub fn fingerprint(&self) -> u64 {
        fingerprint(&self.labels)
    }

    /// Merges a newer report of the same alert, as Alertmanager does: the
    /// earliest start wins; an explicit end beats a timeout.
    pub fn merge(&self, newer: AmAlert) -> AmAlert {
        let mut res = newer;
        if self.starts_at < res.starts_at {
            res.starts_at = self.starts_at;
        }
        if res.timeout && !self.timeout && self.ends_at > res.ends_at {
            res.ends_at = self.ends_at;
            res.timeout = false;
        }
        res
    }
}

/// Label-set fingerprint.
pub fn fingerprint(labels: &Labels) -> u64 {
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    for (k, v) in labels {
        h.update(k.as_bytes());
        h.update(&[0xff]);
        h.update(v.as_bytes());
        h.update(&[0xff]);
    }
    h.digest()
}

/// A silence matcher in API terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    /// Label name.
    pub name: String,
    /// Value or regex.
    pub value: String,
    /// Regex match.
    pub is_regex: bool,
    /// Equal (true) or not equal (false); defaults to true.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl SilenceMatcher {
    /// The matcher it describes.
    pub fn compile(&self) -> Result<Matcher, String> {
        let kind = match (self.is_regex, self.is_equal) {
            (false, true) => MatchType::Equal,
            (false, false) => MatchType::NotEqual,
            (true, true) => MatchType::Regex,
            (true, false) => MatchType::NotRegex,
        };
        Matcher::new(&self.name, kind, &self.value)
    }
}

/// A silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// UUID.
    pub id: String,
    /// All must match.
    pub matchers: Vec<SilenceMatcher>,
    /// Start (ms).
    pub starts_at: i64,
    /// End (ms).
    pub ends_at: i64,
    /// Who.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Last change (ms).
    pub updated_at: i64,
}

impl Silence {
    /// `pending`, `active` or `expired` at `now`.
    pub fn state(&self, now: i64) -> &'static str {
        if now >= self.ends_at {
            "expired"
        } else if now < self.starts_at {
            "pending"
        } else {
            "active"
        }
    }

    /// Whether it mutes `labels` at `now`.
    pub fn mutes(&self, labels: &Labels, now: i64) -> bool {
        self.state(now) == "active"
            && self
                .matchers
                .iter()
                .all(|m| m.compile().map(|m| m.matches(labels)).unwrap_or(false))
    }
}

/// What one receiver integration was last told about one group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NflogEntry {
    /// Fingerprints reported firing.
    pub firing: BTreeSet<u64>,
    /// Fingerprints reported resolved.
    pub resolved: BTreeSet<u64>,
    /// When (ms).
    pub at: i64,
}

/// Everything persisted.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Persisted {
    /// Format version.
    pub version: u32,
    /// Alerts by fingerprint.
    pub alerts: BTreeMap<u64, AmAlert>,
    /// Silences by id.
    pub silences: BTreeMap<String, Silence>,
    /// Notification log by `group key` + receiver + integration index.
    pub nflog: BTreeMap<String, NflogEntry>,
}

impl Persisted {
    /// Loads the file, or starts empty (a corrupt file is kept aside and
    /// reported, never silently overwritten).
    pub fn load(path: &Option<PathBuf>) -> Persisted {
        let Some(p) = path else {
            return Persisted::default();
        };
        match std::fs::read(p) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(s) => s,
                Err(e) => {
                    let aside = p.with_extension("json.corrupt");
                    let _ = std::fs::rename(p, &aside);
                    tracing::error!(path = %p.display(), kept_as = %aside.display(), error = %e,
                        "notification state unreadable; starting empty");
                    Persisted::default()
                }
            },
            Err(_) => Persisted::default(),
        }
    }

    /// Writes the file atomically and durably.
    pub fn save(&self, path: &Option<PathBuf>) -> std::io::Result<()> {
        match path {
            Some(p) => crate::persist::write_json_atomic(p, self),
            None => Ok(()),
        }
    }
}

/// A new random silence id (UUID v4 form).
pub fn new_silence_id() -> String {
    let a = fastrand::u64(..);
    let b = fastrand::u64(..);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a & 0x0fff) as u16,
        ((b >> 48) as u16 & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_the_earliest_start_and_explicit_ends() {
        let old = AmAlert {
            labels: Labels::new(),
            annotations: Labels::new(),
            starts_at: 100,
            ends_at: 500,
            generator_url: String::new(),
            updated_at: 100,
            timeout: false,
        };
        let newer = AmAlert {
            starts_at: 200,
            ends_at: 400,
            updated_at: 200,
            timeout: true,
            ..old.clone()
        };
        let m = old.merge(newer);
        assert_eq!((m.starts_at, m.ends_at, m.timeout), (100, 500, false));
    }

    #[test]
    fn silences_and_ids() {
        let s = Silence {
            id: new_silence_id(),
            matchers: vec![SilenceMatcher {
                name: "cluster".into(),
                value: "c1|c2".into(),
                is_regex: true,
                is_equal: true,
            }],
            starts_at: 10,
            ends_at: 20,
            created_by: "me".into(),
            comment: "maintenance".into(),
            updated_at: 10,
        };
        assert_eq!(s.id.len(), 36);
        let l: Labels = [("cluster".to_string(), "c2".to_string())].into_iter().collect();
        assert!(s.mutes(&l, 15));
        assert!(!s.mutes(&l, 20));
        assert_eq!(s.state(5), "pending");
        assert_eq!(rfc3339(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.5Z"), Ok(1_700_000_000_500));
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), Ok(0));
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
