//! Series selectors (`match[]`) parsed with the PromQL parser into
//! storage matchers.

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{self, Expr, VectorSelector};
use sightline_storage::labels::METRIC_NAME;
use sightline_storage::{MatchOp, Matcher};

/// A parsed selector: alternatives (from `or`), each a list of matchers
/// that must all hold.
pub type Selector = Vec<Vec<Matcher>>;

/// Parses `up{job="node"}` or `{__name__=~"a.*"}` into matchers. Fails
/// with a message like Prometheus' when the text is not a plain vector
/// selector or when every matcher would match the empty string.
pub fn parse_selector(text: &str) -> Result<Selector, String> {
    let expr = parser::parse(text).map_err(|e| format!("1:1: parse error: {e}"))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!(
            "invalid series selector {text:?}: only a vector selector such as up{{job=\"x\"}} is allowed here"
        ));
    };
    matcher_sets(&vs).map_err(|e| format!("invalid series selector {text:?}: {e}"))
}

/// The storage matchers of a parsed vector selector: one list per `or`
/// alternative, the metric name folded in as a `__name__` matcher. Fails
/// when a regex does not compile or every matcher matches the empty string.
pub fn matcher_sets(vs: &VectorSelector) -> Result<Selector, String> {
    let mut groups = Vec::new();
    let mut sets = vec![vs.matchers.matchers.clone()];
    sets.extend(vs.matchers.or_matchers.iter().cloned());
    for set in sets {
        let mut ms = Vec::with_capacity(set.len() + 1);
        for m in set {
            // The engine's markers (`anchored`, `info()`) are not labels.
            if crate::promql::modifiers::is_marker(&m.name) {
                continue;
            }
            let op = match m.op {
                PMatchOp::Equal => MatchOp::Equal,
                PMatchOp::NotEqual => MatchOp::NotEqual,
                PMatchOp::Re(_) => MatchOp::Regex,
                PMatchOp::NotRe(_) => MatchOp::NotRegex,
            };
            ms.push(Matcher::new(op, m.name, m.value).map_err(|e| e.to_string())?);
        }
        if let Some(name) = &vs.name
            && !ms
                .iter()
                .any(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal && m.value == *name)
        {
            ms.push(Matcher::equal(METRIC_NAME, name.clone()));
        }
        if ms.iter().all(Matcher::matches_empty) {
            return Err("vector selector must contain at least one non-empty matcher".into());
        }
        groups.push(ms);
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_matchers() {
        let s = parse_selector(r#"up{job=~"node|api", env!="dev"}"#).expect("parse");
        assert_eq!(s.len(), 1);
        assert!(s[0].iter().any(|m| m.name == "__name__" && m.value == "up"));
        assert!(s[0].iter().any(|m| m.name == "job" && m.op == MatchOp::Regex));
        let s = parse_selector(r#"{__name__=~"node_.*"}"#).expect("parse");
        assert_eq!(s[0].len(), 1);
    }

    #[test]
    fn rejects_empty_matching_and_non_selectors() {
        assert!(
            parse_selector(r#"{job=~".*"}"#)
                .unwrap_err()
                .contains("non-empty matcher")
        );
        assert!(parse_selector("rate(up[5m])").unwrap_err().contains("vector selector"));
        assert!(parse_selector("up{").is_err());
    }
}
