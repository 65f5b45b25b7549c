//! Prometheus relabelling (`relabel_configs`, `metric_relabel_configs`):
//! the common actions `replace`, `keep`, `drop`, `labelmap`, `labeldrop`
//! and `labelkeep`, with Prometheus' defaults and fully anchored regexes.

use regex::Regex;
use serde::Deserialize;

/// One relabelling step as written in a scrape config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values, joined by `separator`, are matched.
    #[serde(default)]
    pub source_labels: Vec<String>,
    /// Joins the source values (default `;`).
    #[serde(default = "default_separator")]
    pub separator: String,
    /// Matched against the joined value, anchored at both ends (default `(.*)`).
    #[serde(default = "default_regex")]
    pub regex: String,
    /// Label written by `replace`.
    #[serde(default)]
    pub target_label: Option<String>,
    /// Value written by `replace` (`$1`, `${name}` expand; default `$1`),
    /// or the new name in `labelmap`.
    #[serde(default = "default_replacement")]
    pub replacement: String,
    /// What to do (default `replace`).
    #[serde(default)]
    pub action: Action,
}

fn default_separator() -> String {
    ";".into()
}

fn default_regex() -> String {
    "(.*)".into()
}

fn default_replacement() -> String {
    "$1".into()
}

/// A relabelling action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Write `replacement` (expanded) to `target_label` when `regex` matches.
    #[default]
    Replace,
    /// Keep the series only when `regex` matches.
    Keep,
    /// Drop the series when `regex` matches.
    Drop,
    /// Copy labels whose name matches `regex` to the name `replacement`.
    Labelmap,
    /// Remove labels whose name matches `regex`.
    Labeldrop,
    /// Keep only labels whose name matches `regex`.
    Labelkeep,
}

/// A relabelling step ready to run.
#[derive(Debug, Clone)]
pub struct Relabel {
    cfg: RelabelConfig,
    regex: Regex,
}

impl Relabel {
    /// Compiles a step; fails naming a bad regex or a missing target label.
    pub fn new(cfg: RelabelConfig) -> Result<Self, String> {
        let regex =
            Regex::new(&format!("^(?:{})$", cfg.regex)).map_err(|e| format!("invalid regex {:?}: {e}", cfg.regex))?;
        if cfg.action == Action::Replace && cfg.target_label.is_none() {
            return Err("relabel action replace needs a target_label".into());
        }
        Ok(Relabel { cfg, regex })
    }
}

/// Applies `steps` in order to `labels` (any order); `None` when a step
/// drops the series. Labels with empty values are removed at the end.
pub fn apply(steps: &[Relabel], mut labels: Vec<(String, String)>) -> Option<Vec<(String, String)>> {
    for step in steps {
        let c = &step.cfg;
        let get = |labels: &[(String, String)], n: &str| {
            labels
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let joined = || {
            c.source_labels
                .iter()
                .map(|n| get(&labels, n))
                .collect::<Vec<_>>()
                .join(&c.separator)
        };
        match c.action {
            Action::Keep => {
                if !step.regex.is_match(&joined()) {
                    return None;
                }
            }
            Action::Drop => {
                if step.regex.is_match(&joined()) {
                    return None;
                }
            }
            Action::Replace => {
                let value = joined();
                if let Some(caps) = step.regex.captures(&value) {
                    let mut target = String::new();
                    caps.expand(c.target_label.as_deref().unwrap_or_default(), &mut target);
                    let mut out = String::new();
                    caps.expand(&c.replacement, &mut out);
                    if !target.is_empty() {
                        set(&mut labels, &target, out);
                    }
                }
            }
            Action::Labelmap => {
                let mapped: Vec<(String, String)> = labels
                    .iter()
                    .filter_map(|(k, v)| {
                        let caps = step.regex.captures(k)?;
                        let mut name = String::new();
                        caps.expand(&c.replacement, &mut name);
                        Some((name, v.clone()))
                    })
                    .collect();
                for (k, v) in mapped {
                    set(&mut labels, &k, v);
                }
            }
            Action::Labeldrop => labels.retain(|(k, _)| !step.regex.is_match(k)),
            Action::Labelkeep => labels.retain(|(k, _)| step.regex.is_match(k)),
        }
    }
    labels.retain(|(_, v)| !v.is_empty());
    Some(labels)
}

fn set(labels: &mut Vec<(String, String)>, name: &str, value: String) {
    match labels.iter_mut().find(|(k, _)| k == name) {
        Some(l) => l.1 = value,
        None => labels.push((name.to_string(), value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(yaml: &str) -> Relabel {
        let cfg: RelabelConfig = serde_saphyr::from_str(yaml).expect("yaml");
        Relabel::new(cfg).expect("compiles")
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_common_actions_behave_as_in_prometheus() {
        let l = labels(&[
            ("__name__", "up"),
            ("__address__", "10.0.0.7:9100"),
            ("__meta_zone", "b"),
        ]);
        let host = step("source_labels: [__address__]\nregex: '(.+):\\d+'\ntarget_label: host\n");
        let got = apply(&[host], l.clone()).expect("kept");
        assert!(got.contains(&("host".into(), "10.0.0.7".into())));
        // The regex is anchored: a partial match does not count.
        let keep = step("source_labels: [__meta_zone]\nregex: 'a|b'\naction: keep\n");
        assert!(apply(std::slice::from_ref(&keep), l.clone()).is_some());
        let keep_partial = step("source_labels: [__meta_zone]\nregex: 'zone'\naction: keep\n");
        assert!(apply(&[keep_partial], l.clone()).is_none());
        let drop = step("source_labels: [__name__]\nregex: up\naction: drop\n");
        assert!(apply(&[drop], l.clone()).is_none());
        let map = step("regex: __meta_(.+)\naction: labelmap\n");
        let got = apply(&[map], l.clone()).expect("kept");
        assert!(got.contains(&("zone".into(), "b".into())));
        let ldrop = step("regex: __meta_.*\naction: labeldrop\n");
        assert_eq!(apply(&[ldrop], l).expect("kept").len(), 2);
    }

    #[test]
    fn replace_without_a_target_and_bad_regexes_are_refused() {
        let cfg: RelabelConfig = serde_saphyr::from_str("source_labels: [a]\n").expect("yaml");
        assert!(Relabel::new(cfg).unwrap_err().contains("target_label"));
        let cfg: RelabelConfig = serde_saphyr::from_str("regex: '('\naction: keep\n").expect("yaml");
        assert!(Relabel::new(cfg).unwrap_err().contains("invalid regex"));
    }
}
