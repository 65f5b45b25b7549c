//! Duration expressions (Prometheus 3's `promql-duration-expr` feature):
//! arithmetic in range and subquery brackets and after `offset`, such as
//! `rate(x[5m + 1m])`, `x[1h:step() * 2]` or `x offset (2 * 1h)`.
//!
//! The `promql-parser` crate accepts only duration literals there, so
//! before parsing, each such expression is evaluated (it depends only on
//! the query's step and range) and replaced by the literal it stands for.
//! Text inside strings, label matchers and comments is never touched, and
//! a query without duration expressions comes back unchanged.

use std::borrow::Cow;

/// What `step()` and `range()` stand for in one query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DurationContext {
    /// The query's step in ms (0 for an instant query).
    pub step_ms: i64,
    /// The query's end minus its start in ms (0 for an instant query).
    pub range_ms: i64,
}

/// Replaces every duration expression of `query` by its value as a
/// millisecond literal; fails naming the expression that cannot be
/// evaluated or is out of range.
pub fn rewrite<'a>(query: &'a str, ctx: &DurationContext) -> Result<Cow<'a, str>, String> {
    let b = query.as_bytes();
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut i = 0;
    let mut braces = 0usize;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = skip_string(b, i),
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' => {
                braces += 1;
                i += 1;
            }
            b'}' => {
                braces = braces.saturating_sub(1);
                i += 1;
            }
            b'[' if braces == 0 => {
                let close = find_close_bracket(b, i + 1).ok_or("unclosed '[' in query")?;
                bracket_edits(query, i + 1, close, ctx, &mut edits)?;
                i = close + 1;
            }
            c if braces == 0 && is_ident_start(c) => {
                let start = i;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                let preceded = start > 0 && (is_ident(b[start - 1]) || b[start - 1] == b'.');
                if !preceded
                    && query[start..i].eq_ignore_ascii_case("offset")
                    && let Some(edit) = offset_edit(query, start, i, ctx)?
                {
                    i = edit.1;
                    edits.push(edit);
                }
            }
            _ => i += 1,
        }
    }
    if edits.is_empty() {
        return Ok(Cow::Borrowed(query));
    }
    let mut out = String::with_capacity(query.len());
    let mut last = 0;
    for (from, to, text) in edits {
        out.push_str(&query[last..from]);
        out.push_str(&text);
        last = to;
    }
    out.push_str(&query[last..]);
    Ok(Cow::Owned(out))
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// The index just past the string (any PromQL quote) starting at `i`.
pub(super) fn skip_string(b: &[u8], i: usize) -> usize {
    let quote = b[i];
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == b'\\' && quote != b'`' {
            j += 2;
            continue;
        }
        if b[j] == quote {
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

fn find_close_bracket(b: &[u8], mut i: usize) -> Option<usize> {
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = skip_string(b, i),
            b']' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// A range `[r]` or subquery `[r:s]` between `from` and `to`.
fn bracket_edits(
    query: &str,
    from: usize,
    to: usize,
    ctx: &DurationContext,
    edits: &mut Vec<(usize, usize, String)>,
) -> Result<(), String> {
    let inner = &query[from..to];
    let mut depth = 0i32;
    let colon = inner.bytes().position(|c| {
        match c {
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ => {}
        }
        c == b':' && depth == 0
    });
    let parts = match colon {
        Some(c) => vec![(from, from + c, "range"), (from + c + 1, to, "subquery step")],
        None => vec![(from, to, "range")],
    };
    for (a, z, what) in parts {
        let text = &query[a..z];
        if text.trim().is_empty() || is_literal(text.trim()) {
            continue;
        }
        let ms = evaluate(text, ctx)?;
        if ms <= 0 {
            return Err(format!(
                "{what} duration expression {} must be positive, got {ms}ms",
                text.trim()
            ));
        }
        edits.push((a, z, format!("{ms}ms")));
    }
    Ok(())
}

/// The duration after an `offset` keyword ending at `after`: its sign and
/// one atom (a literal, a parenthesised expression, `step()`, `range()`,
/// `min_of(…)`, `max_of(…)`); what follows the atom belongs to the query.
/// The edit covers the keyword too: a zero offset is dropped (the parser
/// refuses `offset 0ms`, and it means no offset).
fn offset_edit(
    query: &str,
    keyword: usize,
    after: usize,
    ctx: &DurationContext,
) -> Result<Option<(usize, usize, String)>, String> {
    let b = query.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut i = skip_ws(after);
    let mut negative = false;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        negative = b[i] == b'-';
        i = skip_ws(i + 1);
    }
    let atom_start = i;
    let end = if i < b.len() && b[i] == b'(' {
        match_paren(b, i).ok_or("unclosed '(' after offset")? + 1
    } else if i < b.len() && is_ident_start(b[i]) {
        let mut j = i;
        while j < b.len() && is_ident(b[j]) {
            j += 1;
        }
        let name = query[i..j].to_ascii_lowercase();
        let k = skip_ws(j);
        if !matches!(name.as_str(), "step" | "range" | "min_of" | "max_of") || k >= b.len() || b[k] != b'(' {
            return Ok(None);
        }
        match_paren(b, k).ok_or("unclosed '(' after offset")? + 1
    } else {
        // A literal: the parser reads it as it is.
        return Ok(None);
    };
    let ms = evaluate(&query[atom_start..end], ctx)?;
    let ms = if negative { -ms } else { ms };
    let text = if ms == 0 {
        String::new()
    } else {
        format!("offset {ms}ms")
    };
    Ok(Some((keyword, end, text)))
}

fn match_paren(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// True for text the parser takes as a duration: `5m`, `1h30m`, `90`.
fn is_literal(s: &str) -> bool {
    let b = s.as_bytes();
    if b.iter().all(u8::is_ascii_digit) {
        return !b.is_empty();
    }
    let mut i = 0;
    let mut any = false;
    while i < b.len() {
        let d = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == d {
            return false;
        }
        let u = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        if !matches!(&s[u..i], "ms" | "s" | "m" | "h" | "d" | "w" | "y") {
            return false;
        }
        any = true;
    }
    any
}

/// Evaluates a duration expression to milliseconds.
pub fn evaluate(text: &str, ctx: &DurationContext) -> Result<i64, String> {
    let mut p = ExprParser {
        s: text.as_bytes(),
        i: 0,
        ctx,
    };
    let secs = p.expr()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!(
            "unexpected {:?} in duration expression {}",
            &text[p.i..],
            text.trim()
        ));
    }
    if !secs.is_finite() {
        return Err(format!("duration expression {} is not a finite number", text.trim()));
    }
    Ok((secs * 1000.0).round() as i64)
}

/// Recursive descent over a duration expression, in seconds: `+ -` below
/// `* / %`, below unary sign, below right-associative `^`, as in PromQL.
struct ExprParser<'a> {
    s: &'a [u8],
    i: usize,
    ctx: &'a DurationContext,
}

impl ExprParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.i < self.s.len() && self.s[self.i] == c {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<f64, String> {
        let mut v = self.term()?;
        loop {
            if self.eat(b'+') {
                v += self.term()?;
            } else if self.eat(b'-') {
                v -= self.term()?;
            } else {
                return Ok(v);
            }
        }
    }

    fn term(&mut self) -> Result<f64, String> {
        let mut v = self.unary()?;
        loop {
            if self.eat(b'*') {
                v *= self.unary()?;
            } else if self.eat(b'/') {
                let d = self.unary()?;
                if d == 0.0 {
                    return Err("division by zero in duration expression".into());
                }
                v /= d;
            } else if self.eat(b'%') {
                let d = self.unary()?;
                if d == 0.0 {
                    return Err("modulo by zero in duration expression".into());
                }
                v %= d;
            } else {
                return Ok(v);
            }
        }
    }

    fn unary(&mut self) -> Result<f64, String> {
        if self.eat(b'-') {
            return Ok(-self.unary()?);
        }
        if self.eat(b'+') {
            return self.unary();
        }
        let base = self.primary()?;
        if self.eat(b'^') {
            return Ok(base.powf(self.unary()?));
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<f64, String> {
        self.ws();
        let Some(&c) = self.s.get(self.i) else {
            return Err("duration expression ends early".into());
        };
        if c == b'(' {
            self.i += 1;
            let v = self.expr()?;
            if !self.eat(b')') {
                return Err("missing ')' in duration expression".into());
            }
            return Ok(v);
        }
        if c.is_ascii_digit() || c == b'.' {
            return self.number();
        }
        if c.is_ascii_alphabetic() {
            let start = self.i;
            while self.i < self.s.len() && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_') {
                self.i += 1;
            }
            let name = String::from_utf8_lossy(&self.s[start..self.i]).to_ascii_lowercase();
            if !self.eat(b'(') {
                return Err(format!("unexpected {name:?} in duration expression"));
            }
            let v = match name.as_str() {
                "step" => self.ctx.step_ms as f64 / 1000.0,
                "range" => self.ctx.range_ms as f64 / 1000.0,
                "min_of" | "max_of" => {
                    let mut v = self.expr()?;
                    while self.eat(b',') {
                        let w = self.expr()?;
                        v = if name == "min_of" { v.min(w) } else { v.max(w) };
                    }
                    v
                }
                other => return Err(format!("function {other}() is not allowed in a duration expression")),
            };
            if !self.eat(b')') {
                return Err(format!("missing ')' after {name}( in duration expression"));
            }
            return Ok(v);
        }
        Err(format!("unexpected {:?} in duration expression", c as char))
    }

    /// A number, optionally with duration units (`1h30m`, `1.5`, `90`).
    fn number(&mut self) -> Result<f64, String> {
        let mut total = 0.0;
        let mut any_unit = false;
        loop {
            let start = self.i;
            while self.i < self.s.len() && (self.s[self.i].is_ascii_digit() || self.s[self.i] == b'.') {
                self.i += 1;
            }
            let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
            let n: f64 = text
                .parse()
                .map_err(|_| format!("bad number {text:?} in duration expression"))?;
            let u = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_alphabetic() {
                self.i += 1;
            }
            let unit = match &self.s[u..self.i] {
                b"" if !any_unit => return Ok(n),
                b"ms" => 0.001,
                b"s" => 1.0,
                b"m" => 60.0,
                b"h" => 3600.0,
                b"d" => 86_400.0,
                b"w" => 604_800.0,
                b"y" => 31_536_000.0,
                other => {
                    return Err(format!(
                        "unknown duration unit {:?} in duration expression",
                        String::from_utf8_lossy(other)
                    ));
                }
            };
            any_unit = true;
            total += n * unit;
            if !self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(q: &str, step_ms: i64, range_ms: i64) -> String {
        rewrite(q, &DurationContext { step_ms, range_ms })
            .expect("rewrite")
            .into_owned()
    }

    #[test]
    fn literals_and_queries_without_expressions_are_untouched() {
        for q in [
            "rate(x[5m])",
            "x[1h30m:1m] offset 5m",
            "x offset -2 ^ 2",
            r#"x{path=~"[a-z]+", offset="(1+2)"} offset 1h"#,
            "sum by (offset) (x)",
            "x[1800]",
            "# [1+2] in a comment\nx",
        ] {
            assert!(
                matches!(rewrite(q, &DurationContext::default()), Ok(Cow::Borrowed(_))),
                "{q}"
            );
        }
    }

    #[test]
    fn arithmetic_in_ranges_subqueries_and_offsets() {
        assert_eq!(rw("changes(x[26m+4m])", 0, 0), "changes(x[1800000ms])");
        assert_eq!(rw("x[24m+((1.5*2m)+2m)]", 0, 0), "x[1740000ms]");
        assert_eq!(rw("x[30m1s-30m1s % 1m]", 0, 0), "x[1800000ms]");
        assert_eq!(rw("x[1h30m % 1h]", 0, 0), "x[1800000ms]");
        assert_eq!(
            rw("x[29s+1s:((((8 - 2) / 3) * 7s) % 4) + 8000ms]", 0, 0),
            "x[30000ms:10000ms]"
        );
        assert_eq!(rw("x offset (100 + 2)", 0, 0), "x offset 102000ms");
        assert_eq!(rw("x offset (-2 ^ 2)", 0, 0), "x offset -4000ms");
        assert_eq!(rw("x offset -step()*2", 5000, 0), "x offset -5000ms*2");
        assert_eq!(
            rw("x offset -(min_of(step(), 2s)-5)+8000", 5000, 0),
            "x offset 3000ms+8000"
        );
        assert_eq!(rw("x[1+(STep()-5)*2]", 10_000, 0), "x[11000ms]");
        assert_eq!(rw("x offset min_of(range(), 8s)", 5000, 10_000), "x offset 8000ms");
        assert_eq!(rw("x offset range()", 0, 0), "x ");
        assert_eq!(rw("x[max_of(min_of(step()+1,1h),1ms)]", 5000, 0), "x[6000ms]");
    }

    #[test]
    fn bad_expressions_are_named() {
        let ctx = DurationContext::default();
        let e = rewrite("x[5m-10m]", &ctx).expect_err("negative range");
        assert!(e.contains("5m-10m") && e.contains("positive"), "{e}");
        let e = rewrite("x[1h/0]", &ctx).expect_err("division by zero");
        assert!(e.contains("division by zero"), "{e}");
        let e = rewrite("x[foo()+1m]", &ctx).expect_err("unknown function");
        assert!(e.contains("foo"), "{e}");
        let e = rewrite("x[step()]", &ctx).expect_err("zero step in an instant query");
        assert!(e.contains("positive"), "{e}");
    }
}
