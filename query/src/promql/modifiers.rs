//! The `anchored` and `smoothed` selector modifiers (Prometheus 3's
//! experimental extended range selectors): `increase(x[5m] anchored)`,
//! `rate(x[5m] smoothed)`, `x smoothed`.
//!
//! `promql-parser` does not know the keywords, so before parsing each one
//! is removed and recorded as a marker matcher on its selector
//! (`x{__sightline_modifier__="anchored"}[5m]`); [`selector_modifier`]
//! reads it back and the storage matchers leave it out. A keyword that
//! follows no selector is left in place for the parser to refuse.

use std::borrow::Cow;

use promql_parser::parser::VectorSelector;

use super::durexpr::skip_string;

/// The label name of the marker matcher; never sent to storage.
pub const MODIFIER_LABEL: &str = "__sightline_modifier__";

/// The label name of a marker matcher added to `info()`'s selector, so
/// that one whose matchers all accept "" (`info(x, {data=~".*"})`, valid
/// in Prometheus) passes the parser's non-empty-matcher check.
pub const INFO_LABEL: &str = "__sightline_info__";

/// True for the engine's marker matchers, which are not label matchers.
pub fn is_marker(label_name: &str) -> bool {
    label_name == MODIFIER_LABEL || label_name == INFO_LABEL
}

/// How a selector looks past its window's edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorModifier {
    /// The window's edges take the last sample at or before them (within
    /// the lookback delta) instead of extrapolating.
    Anchored,
    /// The window's edges are interpolated between the samples around
    /// them; an instant selector interpolates at the evaluation time.
    Smoothed,
}

impl SelectorModifier {
    /// The keyword as written in a query.
    pub fn keyword(self) -> &'static str {
        match self {
            SelectorModifier::Anchored => "anchored",
            SelectorModifier::Smoothed => "smoothed",
        }
    }

    /// The functions whose range argument may carry the modifier.
    pub fn allowed_functions(self) -> &'static [&'static str] {
        match self {
            SelectorModifier::Anchored => &["changes", "delta", "increase", "rate", "resets"],
            SelectorModifier::Smoothed => &["delta", "increase", "rate"],
        }
    }
}

/// The modifier recorded on a parsed selector, if any.
pub fn selector_modifier(vs: &VectorSelector) -> Option<SelectorModifier> {
    let m = vs.matchers.matchers.iter().find(|m| m.name == MODIFIER_LABEL)?;
    match m.value.as_str() {
        "anchored" => Some(SelectorModifier::Anchored),
        "smoothed" => Some(SelectorModifier::Smoothed),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ident,
    Number,
    Str,
    /// A whole `{…}` group.
    Braces,
    /// A whole `[…]` group.
    Brackets,
    Punct(u8),
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

/// Moves every `anchored`/`smoothed` keyword into a marker matcher on the
/// selector it follows (past any `offset` and `@` modifiers).
pub fn rewrite(query: &str) -> Cow<'_, str> {
    let lower = query.to_ascii_lowercase();
    if !lower.contains("anchored") && !lower.contains("smoothed") && !lower.contains("info") {
        return Cow::Borrowed(query);
    }
    let toks = tokenize(query);
    let text = |t: &Token| &query[t.start..t.end];
    let is_ident = |t: &Token, word: &str| t.kind == Kind::Ident && text(t).eq_ignore_ascii_case(word);
    let is_at_or_offset = |t: &Token| t.kind == Kind::Punct(b'@') || is_ident(t, "offset");
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    for (i, tok) in toks.iter().enumerate() {
        if is_ident(tok, "info")
            && let Some(braces) = info_selector(&toks, i)
        {
            edits.push(insert_matcher(query, braces, &format!("{INFO_LABEL}=\"1\"")));
            continue;
        }
        let modifier = if is_ident(tok, "anchored") {
            SelectorModifier::Anchored
        } else if is_ident(tok, "smoothed") {
            SelectorModifier::Smoothed
        } else {
            continue;
        };
        // Walk back over `offset d`, `offset -d`, `@ t`, `@ start()`.
        let mut j = i as isize - 1;
        let at = |k: isize| usize::try_from(k).ok().and_then(|k| toks.get(k));
        loop {
            match (at(j), at(j - 1), at(j - 2), at(j - 3)) {
                (Some(n), Some(m), _, _) if n.kind == Kind::Number && is_at_or_offset(m) => j -= 2,
                (Some(n), Some(s), Some(m), _)
                    if n.kind == Kind::Number
                        && matches!(s.kind, Kind::Punct(b'-') | Kind::Punct(b'+'))
                        && is_at_or_offset(m) =>
                {
                    j -= 3
                }
                (Some(c), Some(o), Some(f), Some(a))
                    if c.kind == Kind::Punct(b')')
                        && o.kind == Kind::Punct(b'(')
                        && (is_ident(f, "start") || is_ident(f, "end"))
                        && a.kind == Kind::Punct(b'@') =>
                {
                    j -= 4
                }
                _ => break,
            }
        }
        if at(j).is_some_and(|t| t.kind == Kind::Brackets) {
            j -= 1;
        }
        let marker = format!("{MODIFIER_LABEL}=\"{}\"", modifier.keyword());
        match at(j) {
            Some(t) if t.kind == Kind::Braces => edits.push(insert_matcher(query, t, &marker)),
            Some(t) if t.kind == Kind::Ident => edits.push((t.end, t.end, format!("{{{marker}}}"))),
            _ => continue,
        }
        edits.push((tok.start, tok.end, String::new()));
    }
    if edits.is_empty() {
        return Cow::Borrowed(query);
    }
    edits.sort_by_key(|e| (e.0, e.1));
    let mut out = String::with_capacity(query.len() + 64);
    let mut last = 0;
    for (from, to, insert) in edits {
        out.push_str(&query[last..from]);
        out.push_str(&insert);
        last = to;
    }
    out.push_str(&query[last..]);
    Cow::Owned(out)
}

/// The edit adding `matcher` to the `{…}` group `t`.
fn insert_matcher(query: &str, t: &Token, matcher: &str) -> (usize, usize, String) {
    let inner = query[t.start + 1..t.end - 1].trim_end();
    let sep = if inner.trim().is_empty() || inner.ends_with(',') {
        ""
    } else {
        ","
    };
    (t.end - 1, t.end - 1, format!("{sep}{matcher}"))
}

/// The `{…}` group that is the second argument of the `info(` call whose
/// name is token `i`, if it is written as a bare `{…}` or `name{…}`.
fn info_selector(toks: &[Token], i: usize) -> Option<&Token> {
    if toks.get(i + 1)?.kind != Kind::Punct(b'(') {
        return None;
    }
    let mut depth = 0usize;
    for (k, t) in toks.iter().enumerate().skip(i + 1) {
        match t.kind {
            Kind::Punct(b'(') => depth += 1,
            Kind::Punct(b')') => {
                depth -= 1;
                if depth == 0 {
                    return None;
                }
            }
            Kind::Punct(b',') if depth == 1 => {
                let next = toks.get(k + 1)?;
                let braces = if next.kind == Kind::Ident {
                    toks.get(k + 2)?
                } else {
                    next
                };
                return (braces.kind == Kind::Braces).then_some(braces);
            }
            _ => {}
        }
    }
    None
}

/// Splits a query into tokens coarse enough to find selectors: strings,
/// `{…}` and `[…]` groups whole, identifiers, numbers, single characters.
fn tokenize(query: &str) -> Vec<Token> {
    let b = query.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = match c {
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' | b'`' => {
                i = skip_string(b, i);
                Kind::Str
            }
            b'{' | b'[' => {
                let close = if c == b'{' { b'}' } else { b']' };
                i += 1;
                while i < b.len() && b[i] != close {
                    i = if matches!(b[i], b'"' | b'\'' | b'`') {
                        skip_string(b, i)
                    } else {
                        i + 1
                    };
                }
                i = (i + 1).min(b.len());
                if c == b'{' { Kind::Braces } else { Kind::Brackets }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                    i += 1;
                }
                Kind::Ident
            }
            c if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                Kind::Number
            }
            _ => {
                i += query[i..].chars().next().map_or(1, char::len_utf8);
                Kind::Punct(c)
            }
        };
        out.push(Token { kind, start, end: i });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"__sightline_modifier__="anchored""#;
    const S: &str = r#"__sightline_modifier__="smoothed""#;

    #[test]
    fn keywords_become_marker_matchers_on_their_selector() {
        assert_eq!(rewrite("increase(x[1m] anchored)"), format!("increase(x{{{A}}}[1m] )"));
        assert_eq!(
            rewrite(r#"rate(x{a="b"}[5m] smoothed)"#),
            format!(r#"rate(x{{a="b",{S}}}[5m] )"#)
        );
        assert_eq!(
            rewrite("rate({a='}'}[5m] SMOOTHED)"),
            format!("rate({{a='}}',{S}}}[5m] )")
        );
        assert_eq!(
            rewrite("x offset -100 smoothed + 0"),
            format!("x{{{S}}} offset -100  + 0")
        );
        assert_eq!(rewrite("x @ 100 smoothed"), format!("x{{{S}}} @ 100 "));
        assert_eq!(rewrite("x[1m] @ start() anchored"), format!("x{{{A}}}[1m] @ start() "));
        assert_eq!(rewrite("x{} smoothed"), format!("x{{{S}}} "));
    }

    #[test]
    fn metric_names_strings_and_stray_keywords_are_left_alone() {
        for q in [
            "anchored",
            "sum(smoothed)",
            "rate(anchored[5m])",
            r#"x{a="anchored"}"#,
            "x + anchored",
            "(x) smoothed",
        ] {
            assert_eq!(rewrite(q), q, "{q}");
        }
    }

    #[test]
    fn info_selectors_get_a_non_empty_marker() {
        let m = r#"__sightline_info__="1""#;
        assert_eq!(
            rewrite(r#"info(x, {data=~".*"})"#),
            format!(r#"info(x, {{data=~".*",{m}}})"#)
        );
        assert_eq!(
            rewrite(r#"info(rate(x[5m]), target_info{a=~".*"})"#),
            format!(r#"info(rate(x[5m]), target_info{{a=~".*",{m}}})"#)
        );
        assert_eq!(rewrite("info(x)"), "info(x)");
        assert_eq!(rewrite("sum(info)"), "sum(info)");
    }

    #[test]
    fn the_marker_is_read_back() {
        let q = rewrite("rate(x[1m] anchored)");
        let expr = promql_parser::parser::parse(&q).expect("parse");
        let promql_parser::parser::Expr::Call(c) = expr else {
            panic!("call expected")
        };
        let promql_parser::parser::Expr::MatrixSelector(ms) = c.args.args[0].as_ref() else {
            panic!("matrix expected")
        };
        assert_eq!(selector_modifier(&ms.vs), Some(SelectorModifier::Anchored));
    }
}

#[cfg(test)]
mod engine_tests {
    use sightline_storage::{Labels, MemorySeries};

    use crate::promql::value::QueryValue;
    use crate::promql::{Engine, EngineOptions};

    fn data() -> MemorySeries {
        let mut m = MemorySeries::new();
        // 1, 2, 3, … every 10 s from 0.
        m.add(
            Labels::from_pairs([("__name__", "x")]),
            (0..10).map(|i| (i * 10_000, (i + 1) as f64)),
        );
        m
    }

    #[tokio::test]
    async fn a_bare_extended_range_shows_its_edges() {
        let engine = Engine::new(EngineOptions::default());
        let got = engine.instant(&data(), "x[15s] smoothed", 45_000).await.expect("query");
        let QueryValue::Matrix(series) = got.value else {
            panic!("matrix expected, got {:?}", got.value)
        };
        let points: Vec<(i64, f64)> = series[0].1.iter().map(|p| (p.t, p.v)).collect();
        // Edges interpolated at 30 s (4) and 45 s (5.5), the 40 s sample between.
        assert_eq!(points, vec![(30_000, 4.0), (40_000, 5.0), (45_000, 5.5)]);
    }

    #[tokio::test]
    async fn functions_without_a_meaning_for_the_modifier_refuse_it() {
        let engine = Engine::new(EngineOptions::default());
        let err = engine
            .instant(&data(), "max_over_time(x[1m] anchored)", 60_000)
            .await
            .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "anchored modifier can only be used with: changes, delta, increase, rate, resets - not with max_over_time"
        );
    }
}
