//! Alertmanager's label matchers: `name="value"`, `name!=value`,
//! `name=~"regex"`, `name!~regex` (regexes anchored), as written in
//! routes, inhibition rules, silences and `amtool` filters.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::rule::Labels;

/// The comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchType {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl MatchType {
    fn as_str(self) -> &'static str {
        match self {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regex => "=~",
            MatchType::NotRegex => "!~",
        }
    }
}

/// One matcher; a missing label matches as the empty string.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Value or regular expression.
    pub value: String,
    /// Comparison.
    pub kind: MatchType,
    re: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.value == o.value && self.kind == o.kind
    }
}

impl Matcher {
    /// A matcher; fails on an invalid regular expression.
    pub fn new(name: &str, kind: MatchType, value: &str) -> Result<Self, String> {
        let re = match kind {
            MatchType::Regex | MatchType::NotRegex => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("invalid regular expression {value:?}: {e}"))?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            value: value.to_string(),
            kind,
            re,
        })
    }

    /// Whether `labels` satisfy it.
    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.name).map_or("", String::as_str);
        match (&self.kind, &self.re) {
            (MatchType::Equal, _) => v == self.value,
            (MatchType::NotEqual, _) => v != self.value,
            (MatchType::Regex, Some(re)) => re.is_match(v),
            (MatchType::NotRegex, Some(re)) => !re.is_match(v),
            _ => false,
        }
    }

    /// Parses `name="value"` (value quoted or bare).
    pub fn parse(text: &str) -> Result<Self, String> {
        let s = text.trim();
        let ops = [
            ("=~", MatchType::Regex),
            ("!~", MatchType::NotRegex),
            ("!=", MatchType::NotEqual),
            ("=", MatchType::Equal),
        ];
        let Some((at, op, kind)) = s.char_indices().find_map(|(i, _)| {
            ops.iter()
                .find(|(op, _)| s[i..].starts_with(op))
                .map(|(op, k)| (i, *op, *k))
        }) else {
            return Err(format!(
                "bad matcher {text:?}: expected name=value, name!=value, name=~regex or name!~regex"
            ));
        };
        let name = s[..at].trim();
        if !crate::rules::valid_label_name(name) {
            return Err(format!("bad matcher {text:?}: invalid label name {name:?}"));
        }
        let raw = s[at + op.len()..].trim();
        let value = if raw.starts_with('"') {
            unquote(raw).ok_or_else(|| format!("bad matcher {text:?}: unterminated quoted value"))?
        } else {
            raw.to_string()
        };
        Matcher::new(name, kind, &value)
    }

    /// Parses `{a="b", c=~"d"}` or `a="b",c=~"d"` (commas inside quotes kept).
    pub fn parse_list(text: &str) -> Result<Vec<Matcher>, String> {
        let s = text.trim();
        let s = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')).unwrap_or(s);
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        let mut escaped = false;
        for c in s.chars() {
            if escaped {
                escaped = false;
            } else if c == '\\' && quoted {
                escaped = true;
            } else if c == '"' {
                quoted = !quoted;
            } else if c == ',' && !quoted {
                if !cur.trim().is_empty() {
                    out.push(Matcher::parse(&cur)?);
                }
                cur.clear();
                continue;
            }
            cur.push(c);
        }
        if !cur.trim().is_empty() {
            out.push(Matcher::parse(&cur)?);
        }
        Ok(out)
    }
}

fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.kind.as_str(), self.value)
    }
}

/// `{a="b", c=~"d"}`.
pub fn list_string(ms: &[Matcher]) -> String {
    let parts: Vec<String> = ms.iter().map(ToString::to_string).collect();
    format!("{{{}}}", parts.join(","))
}

/// Whether every matcher matches.
pub fn all_match(ms: &[Matcher], labels: &Labels) -> bool {
    ms.iter().all(|m| m.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(p: &[(&str, &str)]) -> Labels {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_and_matches() {
        let m = Matcher::parse(r#"severity="page""#).unwrap();
        assert!(m.matches(&labels(&[("severity", "page")])));
        assert!(!m.matches(&labels(&[])));
        let m = Matcher::parse("team=~mail|web").unwrap();
        assert!(m.matches(&labels(&[("team", "web")])));
        assert!(!m.matches(&labels(&[("team", "webx")])), "anchored");
        let m = Matcher::parse(r#"site!="""#).unwrap();
        assert!(!m.matches(&labels(&[])), "missing label is empty");
        let list = Matcher::parse_list(r#"{alertname="A,B", cluster!~"c1|c2"}"#).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].value, "A,B");
        assert_eq!(list_string(&list), r#"{alertname="A,B",cluster!~"c1|c2"}"#);
        assert!(Matcher::parse("noop").is_err());
        assert!(Matcher::parse("a=~(").is_err());
        assert!(Matcher::parse("1a=b").is_err());
    }
}
