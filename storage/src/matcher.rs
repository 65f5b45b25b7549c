//! Label matchers: `=`, `!=`, `=~`, `!~`, with Prometheus semantics
//! (regexes are fully anchored; a missing label matches as the empty string).

use regex::Regex;

use crate::error::StorageError;

/// The four matcher operators of PromQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

/// One label matcher such as `job=~"node.*"`.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name the matcher looks at.
    pub name: String,
    /// The operator.
    pub op: MatchOp,
    /// The value or regex source text, as written.
    pub value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher; a regex is anchored at both ends as Prometheus does.
    /// Fails with [`StorageError::BadMatcher`] when the regex does not compile.
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self, StorageError> {
        let name = name.into();
        let value = value.into();
        let regex =
            match op {
                MatchOp::Regex | MatchOp::NotRegex => Some(Regex::new(&format!("^(?s:{value})$")).map_err(|e| {
                    StorageError::BadMatcher(format!("invalid regex {value:?} for label {name:?}: {e}"))
                })?),
                _ => None,
            };
        Ok(Matcher { name, op, value, regex })
    }

    /// Shorthand for an `=` matcher.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
        }
    }

    /// True when `value` (the empty string for an absent label) matches.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => self.value == value,
            MatchOp::NotEqual => self.value != value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// True when the matcher also selects series that lack the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        };
        write!(f, "{}{}{:?}", self.name, op, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_anchored_and_empty_matching_is_known() {
        let m = Matcher::new(MatchOp::Regex, "job", "node|api").expect("ok");
        assert!(m.matches("node"));
        assert!(!m.matches("xnode"));
        assert!(!m.matches_empty());
        let m = Matcher::new(MatchOp::Regex, "job", "node|").expect("ok");
        assert!(m.matches_empty());
        let m = Matcher::new(MatchOp::NotEqual, "job", "x").expect("ok");
        assert!(m.matches_empty());
        assert!(Matcher::new(MatchOp::Regex, "job", "(").is_err());
    }
}
