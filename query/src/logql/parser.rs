//! A recursive-descent LogQL parser. Errors read like Loki's:
//! `parse error at line 1, col 12: syntax error: unexpected …`.

use regex::Regex;
use sightline_storage::{MatchOp, Matcher};

use super::ast::*;
use super::lexer::{Tok, Token, lex};
use super::pattern::Pattern;

/// Parses a LogQL query.
pub fn parse(q: &str) -> Result<Expr, String> {
    let tokens = lex(q).map_err(|e| format!("parse error : {e}"))?;
    let mut p = Parser { q, tokens, i: 0 };
    let e = p.expr()?;
    if !matches!(p.peek(), Tok::Eof) {
        return Err(p.err(&format!("syntax error: unexpected {}", p.peek())));
    }
    Ok(e)
}

/// Parses a stream selector with an optional pipeline (`match[]` of
/// `/series`, `query` of `/labels`).
pub fn parse_log(q: &str) -> Result<LogExpr, String> {
    match parse(q)? {
        Expr::Log(l) => Ok(l),
        Expr::Metric(_) => Err("parse error : a stream selector is required, not a metric query".into()),
    }
}

struct Parser<'q> {
    q: &'q str,
    tokens: Vec<Token>,
    i: usize,
}

enum Node {
    Log(LogExpr),
    Metric(MetricExpr),
}

const RESERVED: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
];

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.tokens[self.i.min(self.tokens.len() - 1)].kind
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.tokens[(self.i + n).min(self.tokens.len() - 1)].kind
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.i < self.tokens.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn err(&self, msg: &str) -> String {
        let pos = self.tokens[self.i.min(self.tokens.len() - 1)].pos;
        let before = &self.q[..pos.min(self.q.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map_or(pos, |n| pos - n - 1) + 1;
        format!("parse error at line {line}, col {col}: {msg}")
    }

    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Tok::Sym(x) if *x == s)
    }

    fn is_ident(&self, s: &str) -> bool {
        matches!(self.peek(), Tok::Ident(x) if x == s)
    }

    fn expect_sym(&mut self, s: &str) -> Result<(), String> {
        if self.is_sym(s) {
            self.next();
            Ok(())
        } else {
            Err(self.err(&format!("syntax error: unexpected {}, expecting {s}", self.peek())))
        }
    }

    fn ident(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Tok::Ident(s) => Ok(s),
            other => {
                self.i -= 1;
                Err(self.err(&format!("syntax error: unexpected {other}, expecting {what}")))
            }
        }
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        match self.peek().clone() {
            Tok::Str(s) => {
                self.next();
                Ok(s)
            }
            other => Err(self.err(&format!("syntax error: unexpected {other}, expecting {what}"))),
        }
    }

    fn number(&mut self) -> Result<f64, String> {
        let neg = if self.is_sym("-") {
            self.next();
            true
        } else {
            false
        };
        match self.peek().clone() {
            Tok::Number(n) => {
                self.next();
                Ok(if neg { -n } else { n })
            }
            other => Err(self.err(&format!("syntax error: unexpected {other}, expecting a number"))),
        }
    }

    fn duration(&mut self) -> Result<f64, String> {
        match self.peek().clone() {
            Tok::Duration(d) => {
                self.next();
                Ok(d)
            }
            other => Err(self.err(&format!("syntax error: unexpected {other}, expecting a duration"))),
        }
    }

    // ---- metric expressions, by precedence ----

    fn expr(&mut self) -> Result<Expr, String> {
        match self.binary(0)? {
            Node::Log(l) => Ok(Expr::Log(l)),
            Node::Metric(m) => Ok(Expr::Metric(m)),
        }
    }

    fn binop(&self) -> Option<(BinOp, u8)> {
        let op = match self.peek() {
            Tok::Ident(s) if s == "or" => (BinOp::Or, 1),
            Tok::Ident(s) if s == "and" => (BinOp::And, 2),
            Tok::Ident(s) if s == "unless" => (BinOp::Unless, 2),
            Tok::Sym("==") => (BinOp::Eq, 3),
            Tok::Sym("!=") => (BinOp::Ne, 3),
            Tok::Sym(">") => (BinOp::Gt, 3),
            Tok::Sym(">=") => (BinOp::Ge, 3),
            Tok::Sym("<") => (BinOp::Lt, 3),
            Tok::Sym("<=") => (BinOp::Le, 3),
            Tok::Sym("+") => (BinOp::Add, 4),
            Tok::Sym("-") => (BinOp::Sub, 4),
            Tok::Sym("*") => (BinOp::Mul, 5),
            Tok::Sym("/") => (BinOp::Div, 5),
            Tok::Sym("%") => (BinOp::Mod, 5),
            Tok::Sym("^") => (BinOp::Pow, 6),
            _ => return None,
        };
        Some(op)
    }

    fn binary(&mut self, min_prec: u8) -> Result<Node, String> {
        let mut lhs = self.unary()?;
        while let Some((op, prec)) = self.binop() {
            if prec < min_prec {
                break;
            }
            let Node::Metric(l) = lhs else {
                return Err(self.err("syntax error: a log query cannot be an operand of a binary operator"));
            };
            self.next();
            let mut bool_mod = false;
            if self.is_ident("bool") {
                if !op.is_comparison() {
                    return Err(self.err("bool modifier can only be used on comparison operators"));
                }
                self.next();
                bool_mod = true;
            }
            let matching = self.vector_matching()?;
            // `^` is right-associative.
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let Node::Metric(r) = self.binary(next_min)? else {
                return Err(self.err("syntax error: a log query cannot be an operand of a binary operator"));
            };
            if op.is_set() && (matches!(l, MetricExpr::Literal(_)) || matches!(r, MetricExpr::Literal(_))) {
                return Err(self.err(&format!(
                    "unexpected literal for right side of set operation {}",
                    op.text()
                )));
            }
            lhs = Node::Metric(MetricExpr::Binary {
                op,
                lhs: Box::new(l),
                rhs: Box::new(r),
                bool_mod,
                matching,
            });
        }
        Ok(lhs)
    }

    fn vector_matching(&mut self) -> Result<VectorMatching, String> {
        let mut m = VectorMatching::default();
        if self.is_ident("on") || self.is_ident("ignoring") {
            m.on = Some(self.is_ident("on"));
            self.next();
            m.labels = self.label_list()?;
        }
        if self.is_ident("group_left") || self.is_ident("group_right") {
            m.group = Some(self.is_ident("group_left"));
            self.next();
            if self.is_sym("(") {
                m.include = self.label_list()?;
            }
        }
        Ok(m)
    }

    fn label_list(&mut self) -> Result<Vec<String>, String> {
        self.expect_sym("(")?;
        let mut out = Vec::new();
        while !self.is_sym(")") {
            out.push(self.ident("a label name")?);
            if self.is_sym(",") {
                self.next();
            } else if !self.is_sym(")") {
                return Err(self.err(&format!("syntax error: unexpected {}, expecting , or )", self.peek())));
            }
        }
        self.next();
        Ok(out)
    }

    fn unary(&mut self) -> Result<Node, String> {
        if self.is_sym("-") || self.is_sym("+") {
            let neg = self.is_sym("-");
            self.next();
            let Node::Metric(inner) = self.unary()? else {
                return Err(self.err("syntax error: unexpected sign before a log query"));
            };
            if !neg {
                return Ok(Node::Metric(inner));
            }
            return Ok(Node::Metric(match inner {
                MetricExpr::Literal(v) => MetricExpr::Literal(-v),
                other => MetricExpr::Binary {
                    op: BinOp::Mul,
                    lhs: Box::new(MetricExpr::Literal(-1.0)),
                    rhs: Box::new(other),
                    bool_mod: false,
                    matching: VectorMatching::default(),
                },
            }));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Node, String> {
        match self.peek().clone() {
            Tok::Number(n) => {
                self.next();
                Ok(Node::Metric(MetricExpr::Literal(n)))
            }
            Tok::Sym("{") => Ok(Node::Log(self.log_expr()?)),
            Tok::Sym("(") => {
                self.next();
                let inner = self.binary(0)?;
                self.expect_sym(")")?;
                Ok(match inner {
                    Node::Log(l) => Node::Log(l),
                    Node::Metric(m) => Node::Metric(MetricExpr::Paren(Box::new(m))),
                })
            }
            Tok::Ident(name) => {
                if let Some((_, op)) = RANGE_OPS.iter().find(|(n, _)| *n == name) {
                    self.next();
                    return Ok(Node::Metric(self.range_agg(*op)?));
                }
                if let Some((_, op)) = VECTOR_OPS.iter().find(|(n, _)| *n == name) {
                    self.next();
                    return Ok(Node::Metric(self.vector_agg(*op)?));
                }
                match name.as_str() {
                    "vector" => {
                        self.next();
                        self.expect_sym("(")?;
                        let v = self.number()?;
                        self.expect_sym(")")?;
                        Ok(Node::Metric(MetricExpr::Vector0(v)))
                    }
                    "label_replace" => {
                        self.next();
                        Ok(Node::Metric(self.label_replace()?))
                    }
                    _ => Err(self.err(&format!("syntax error: unexpected IDENTIFIER {name}"))),
                }
            }
            other => Err(self.err(&format!("syntax error: unexpected {other}"))),
        }
    }

    fn grouping(&mut self) -> Result<Option<Grouping>, String> {
        if self.is_ident("by") || self.is_ident("without") {
            let without = self.is_ident("without");
            self.next();
            let labels = self.label_list()?;
            return Ok(Some(Grouping { without, labels }));
        }
        Ok(None)
    }

    fn range_agg(&mut self, op: RangeOp) -> Result<MetricExpr, String> {
        self.expect_sym("(")?;
        let param = if op == RangeOp::Quantile {
            let p = self.number()?;
            self.expect_sym(",")?;
            Some(p)
        } else {
            None
        };
        // Either `{…} | stages [5m]` or `{…}[5m] | stages`, optionally
        // parenthesised.
        let parens = self.is_sym("(");
        if parens {
            self.next();
        }
        let mut log = self.log_expr_until_range()?;
        if parens && self.is_sym(")") {
            self.next();
        }
        self.expect_sym("[")?;
        let range = self.duration()?;
        self.expect_sym("]")?;
        if range <= 0.0 {
            return Err(self.err("range must be positive"));
        }
        let mut offset = 0.0;
        if self.is_ident("offset") {
            self.next();
            offset = self.duration()?;
        }
        // Stages after the range.
        self.stages(&mut log)?;
        if parens && self.is_sym(")") {
            self.next();
        }
        self.expect_sym(")")?;
        let grouping = self.grouping()?;
        let unwrap = log.stages.iter().any(|s| matches!(s, Stage::Unwrap { .. }));
        if op.needs_unwrap() && !unwrap {
            return Err(self.err(&format!("invalid aggregation {} without unwrap", op.name())));
        }
        if !op.needs_unwrap() && op != RangeOp::Rate && unwrap {
            return Err(self.err(&format!("invalid aggregation {} with unwrap", op.name())));
        }
        if grouping.is_some() && !unwrap {
            return Err(self.err(&format!("grouping not allowed for {} aggregation", op.name())));
        }
        Ok(MetricExpr::Range {
            op,
            param,
            log,
            range,
            offset,
            grouping,
        })
    }

    fn vector_agg(&mut self, op: VectorOp) -> Result<MetricExpr, String> {
        let mut grouping = self.grouping()?;
        self.expect_sym("(")?;
        let param = if matches!(op, VectorOp::Topk | VectorOp::Bottomk) {
            let k = self.number()?;
            if k < 1.0 || k.fract() != 0.0 {
                return Err(self.err(&format!(
                    "invalid parameter {k} for topk/bottomk: must be a positive integer"
                )));
            }
            self.expect_sym(",")?;
            Some(k)
        } else {
            None
        };
        let Node::Metric(inner) = self.binary(0)? else {
            return Err(self.err("syntax error: an aggregation needs a metric query, e.g. count_over_time({…}[5m])"));
        };
        self.expect_sym(")")?;
        if grouping.is_none() {
            grouping = self.grouping()?;
        }
        Ok(MetricExpr::Vector {
            op,
            param,
            grouping,
            inner: Box::new(inner),
        })
    }

    fn label_replace(&mut self) -> Result<MetricExpr, String> {
        self.expect_sym("(")?;
        let Node::Metric(inner) = self.binary(0)? else {
            return Err(self.err("syntax error: label_replace needs a metric query"));
        };
        let mut args = Vec::new();
        for _ in 0..4 {
            self.expect_sym(",")?;
            args.push(self.string("a string")?);
        }
        self.expect_sym(")")?;
        let regex_text = args[3].clone();
        let regex = Regex::new(&format!("^(?s:{regex_text})$"))
            .map_err(|e| self.err(&format!("invalid regular expression in label_replace(): {e}")))?;
        Ok(MetricExpr::LabelReplace {
            inner: Box::new(inner),
            dst: args[0].clone(),
            replacement: args[1].clone(),
            src: args[2].clone(),
            regex,
            regex_text,
        })
    }

    // ---- log expressions ----

    fn log_expr(&mut self) -> Result<LogExpr, String> {
        let mut l = self.log_expr_until_range()?;
        if self.is_sym("[") {
            return Err(self.err("syntax error: unexpected [, a range is only allowed inside a range aggregation such as count_over_time"));
        }
        self.stages(&mut l)?;
        Ok(l)
    }

    fn log_expr_until_range(&mut self) -> Result<LogExpr, String> {
        let matchers = self.selector()?;
        let mut l = LogExpr {
            matchers,
            stages: Vec::new(),
        };
        self.stages(&mut l)?;
        Ok(l)
    }

    fn selector(&mut self) -> Result<Vec<Matcher>, String> {
        self.expect_sym("{")?;
        let mut out = Vec::new();
        while !self.is_sym("}") {
            let name = self.ident("a label name")?;
            let op = match self.next() {
                Tok::Sym("=") => MatchOp::Equal,
                Tok::Sym("!=") => MatchOp::NotEqual,
                Tok::Sym("=~") => MatchOp::Regex,
                Tok::Sym("!~") => MatchOp::NotRegex,
                other => {
                    self.i -= 1;
                    return Err(self.err(&format!(
                        "syntax error: unexpected {other}, expecting = or != or =~ or !~"
                    )));
                }
            };
            let value = self.string("a quoted label value")?;
            out.push(Matcher::new(op, name, value).map_err(|e| self.err(&e.to_string()))?);
            if self.is_sym(",") {
                self.next();
            } else if !self.is_sym("}") {
                return Err(self.err(&format!("syntax error: unexpected {}, expecting , or }}", self.peek())));
            }
        }
        self.next();
        if out.is_empty() {
            return Err(self.err("syntax error: unexpected }, a stream selector needs at least one label matcher"));
        }
        if out.iter().all(|m| m.matches_empty()) {
            return Err("parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will".into());
        }
        Ok(out)
    }

    fn stages(&mut self, l: &mut LogExpr) -> Result<(), String> {
        loop {
            let op = match self.peek() {
                Tok::Sym("|=") => Some(LineOp::Contains),
                Tok::Sym("!=") => Some(LineOp::NotContains),
                Tok::Sym("|~") => Some(LineOp::Regex),
                Tok::Sym("!~") => Some(LineOp::NotRegex),
                Tok::Sym("|>") => Some(LineOp::Pattern),
                Tok::Sym("!>") => Some(LineOp::NotPattern),
                Tok::Sym("|") => None,
                _ => return Ok(()),
            };
            let after_unwrap = l.stages.iter().any(|s| matches!(s, Stage::Unwrap { .. }));
            self.next();
            let stage = match op {
                Some(op) => {
                    if after_unwrap {
                        return Err(self.err("syntax error: only label filters may follow unwrap"));
                    }
                    Stage::Line(self.line_filter(op)?)
                }
                None => {
                    let s = self.pipe_stage()?;
                    if after_unwrap && !matches!(s, Stage::Filter(_)) {
                        return Err(self.err("syntax error: only label filters may follow unwrap"));
                    }
                    s
                }
            };
            l.stages.push(stage);
        }
    }

    fn line_filter(&mut self, op: LineOp) -> Result<LineFilter, String> {
        let mut values = vec![self.string("a quoted string after a line filter")?];
        while self.is_ident("or") && matches!(self.peek_at(1), Tok::Str(_)) {
            self.next();
            values.push(self.string("a quoted string")?);
        }
        let mut regexes = Vec::new();
        let mut patterns = Vec::new();
        match op {
            LineOp::Regex | LineOp::NotRegex => {
                for v in &values {
                    regexes
                        .push(Regex::new(v).map_err(|e| self.err(&format!("invalid regular expression {v:?}: {e}")))?);
                }
            }
            LineOp::Pattern | LineOp::NotPattern => {
                for v in &values {
                    patterns.push(Pattern::parse(v).map_err(|e| self.err(&e))?);
                }
            }
            _ => {}
        }
        Ok(LineFilter {
            op,
            values,
            regexes,
            patterns,
        })
    }

    fn pipe_stage(&mut self) -> Result<Stage, String> {
        let name = match self.peek() {
            Tok::Ident(n) => n.clone(),
            Tok::Sym("(") => return Ok(Stage::Filter(self.label_filter()?)),
            other => return Err(self.err(&format!("syntax error: unexpected {other} after |"))),
        };
        let is_filter = matches!(
            self.peek_at(1),
            Tok::Sym("=" | "!=" | "=~" | "!~" | "==" | ">" | ">=" | "<" | "<=")
        );
        if is_filter {
            return Ok(Stage::Filter(self.label_filter()?));
        }
        self.next();
        Ok(match name.as_str() {
            "json" => Stage::Json(self.extractions()?),
            "logfmt" => {
                let (mut strict, mut keep_empty) = (false, false);
                while let Tok::Flag(f) = self.peek().clone() {
                    match f.as_str() {
                        "strict" => strict = true,
                        "keep-empty" => keep_empty = true,
                        other => return Err(self.err(&format!("syntax error: unknown logfmt flag --{other}"))),
                    }
                    self.next();
                }
                Stage::Logfmt {
                    strict,
                    keep_empty,
                    params: self.extractions()?,
                }
            }
            "regexp" => {
                let text = self.string("a quoted regular expression")?;
                let re =
                    Regex::new(&text).map_err(|e| self.err(&format!("invalid regular expression {text:?}: {e}")))?;
                if !re.capture_names().flatten().any(|_| true) {
                    return Err(self.err("at least one named capture must be supplied"));
                }
                Stage::Regexp(re)
            }
            "pattern" => {
                let text = self.string("a quoted pattern")?;
                let p = Pattern::parse(&text).map_err(|e| self.err(&e))?;
                if p.names().next().is_none() {
                    return Err(self.err("at least one named capture must be supplied"));
                }
                Stage::Pattern(p)
            }
            "unpack" => Stage::Unpack,
            "decolorize" => Stage::Decolorize,
            "line_format" => {
                let t = self.string("a quoted template")?;
                super::template::check(&t).map_err(|e| self.err(&e))?;
                Stage::LineFormat(t)
            }
            "label_format" => {
                let mut items = Vec::new();
                loop {
                    let dst = self.ident("a label name")?;
                    self.expect_sym("=")?;
                    match self.next() {
                        Tok::Ident(src) => items.push(LabelFmt::Rename { dst, src }),
                        Tok::Str(text) => {
                            super::template::check(&text).map_err(|e| self.err(&e))?;
                            items.push(LabelFmt::Template { dst, text })
                        }
                        other => {
                            self.i -= 1;
                            return Err(self.err(&format!(
                                "syntax error: unexpected {other}, expecting a label name or a template"
                            )));
                        }
                    }
                    if self.is_sym(",") {
                        self.next();
                    } else {
                        break;
                    }
                }
                Stage::LabelFormat(items)
            }
            "drop" | "keep" => {
                let mut items = Vec::new();
                loop {
                    let n = self.ident("a label name")?;
                    let op = match self.peek() {
                        Tok::Sym("=") => Some(MatchOp::Equal),
                        Tok::Sym("!=") => Some(MatchOp::NotEqual),
                        Tok::Sym("=~") => Some(MatchOp::Regex),
                        Tok::Sym("!~") => Some(MatchOp::NotRegex),
                        _ => None,
                    };
                    match op {
                        Some(op) => {
                            self.next();
                            let v = self.string("a quoted value")?;
                            items.push(NameOrMatcher::Matcher(
                                Matcher::new(op, n, v).map_err(|e| self.err(&e.to_string()))?,
                            ));
                        }
                        None => items.push(NameOrMatcher::Name(n)),
                    }
                    if self.is_sym(",") {
                        self.next();
                    } else {
                        break;
                    }
                }
                if name == "drop" {
                    Stage::Drop(items)
                } else {
                    Stage::Keep(items)
                }
            }
            "unwrap" => {
                let first = self.ident("a label name")?;
                let (conv, label) = match first.as_str() {
                    "duration" | "duration_seconds" | "bytes" if self.is_sym("(") => {
                        self.next();
                        let label = self.ident("a label name")?;
                        self.expect_sym(")")?;
                        (
                            if first == "bytes" {
                                UnwrapConv::Bytes
                            } else {
                                UnwrapConv::Duration
                            },
                            label,
                        )
                    }
                    _ => (UnwrapConv::Number, first),
                };
                Stage::Unwrap { label, conv }
            }
            other => {
                self.i -= 1;
                return Err(self.err(&format!("syntax error: unexpected IDENTIFIER {other} after |")));
            }
        })
    }

    fn extractions(&mut self) -> Result<Vec<Extraction>, String> {
        let mut out = Vec::new();
        while let Tok::Ident(label) = self.peek().clone() {
            if !matches!(self.peek_at(1), Tok::Sym("=")) {
                break;
            }
            self.next();
            self.next();
            let expr = match self.next() {
                Tok::Str(s) => s,
                Tok::Ident(s) => s,
                other => {
                    self.i -= 1;
                    return Err(self.err(&format!(
                        "syntax error: unexpected {other}, expecting a quoted expression"
                    )));
                }
            };
            out.push(Extraction { label, expr });
            if self.is_sym(",") {
                self.next();
            } else {
                break;
            }
        }
        Ok(out)
    }

    fn label_filter(&mut self) -> Result<LabelFilter, String> {
        let mut lhs = self.label_filter_and()?;
        while self.is_ident("or") {
            self.next();
            let rhs = self.label_filter_and()?;
            lhs = LabelFilter::Or(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn label_filter_and(&mut self) -> Result<LabelFilter, String> {
        let mut lhs = self.label_filter_primary()?;
        loop {
            if self.is_ident("and") || self.is_sym(",") {
                self.next();
            } else if matches!(self.peek(), Tok::Ident(n) if !RESERVED.contains(&n.as_str()) && n != "or")
                && matches!(
                    self.peek_at(1),
                    Tok::Sym("=" | "!=" | "=~" | "!~" | "==" | ">" | ">=" | "<" | "<=")
                )
            {
                // Loki accepts filters separated by a space as `and`.
            } else {
                return Ok(lhs);
            }
            let rhs = self.label_filter_primary()?;
            lhs = LabelFilter::And(Box::new(lhs), Box::new(rhs));
        }
    }

    fn label_filter_primary(&mut self) -> Result<LabelFilter, String> {
        if self.is_sym("(") {
            self.next();
            let f = self.label_filter()?;
            self.expect_sym(")")?;
            return Ok(f);
        }
        let name = self.ident("a label name")?;
        let op = match self.next() {
            Tok::Sym(s) => s,
            other => {
                self.i -= 1;
                return Err(self.err(&format!("syntax error: unexpected {other}, expecting a comparison")));
            }
        };
        let value = self.next();
        let cmp = |s: &str| match s {
            "==" | "=" => Some(CmpOp::Eq),
            "!=" => Some(CmpOp::Ne),
            ">" => Some(CmpOp::Gt),
            ">=" => Some(CmpOp::Ge),
            "<" => Some(CmpOp::Lt),
            "<=" => Some(CmpOp::Le),
            _ => None,
        };
        let numeric = |v: f64, kind: ValueKind| -> Result<LabelFilter, String> {
            Ok(LabelFilter::Compare {
                name: name.clone(),
                op: cmp(op).ok_or_else(|| format!("parse error : invalid operator {op} for a number"))?,
                value: v,
                kind,
            })
        };
        match value {
            Tok::Str(s) => {
                let mop = match op {
                    "=" => MatchOp::Equal,
                    "!=" => MatchOp::NotEqual,
                    "=~" => MatchOp::Regex,
                    "!~" => MatchOp::NotRegex,
                    other => {
                        return Err(self.err(&format!(
                            "syntax error: operator {other} needs a number, duration or size, not a string"
                        )));
                    }
                };
                Ok(LabelFilter::Matcher(
                    Matcher::new(mop, name, s).map_err(|e| self.err(&e.to_string()))?,
                ))
            }
            Tok::Number(v) => numeric(v, ValueKind::Number),
            Tok::Sym("-") => match self.next() {
                Tok::Number(v) => numeric(-v, ValueKind::Number),
                Tok::Duration(v) => numeric(-v, ValueKind::Duration),
                _ => Err(self.err("syntax error: unexpected -")),
            },
            Tok::Duration(v) => numeric(v, ValueKind::Duration),
            Tok::Bytes(v) => numeric(v, ValueKind::Bytes),
            other => {
                self.i -= 1;
                Err(self.err(&format!("syntax error: unexpected {other}, expecting a value")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(q: &str) -> String {
        parse(q).unwrap_or_else(|e| panic!("{q}: {e}")).to_string()
    }

    #[test]
    fn queries_parse_and_print_canonically() {
        assert_eq!(
            round_trip(
                r#"{app="mail",env=~"prod|dev"} |= "error" or "fail" != `debug` | logfmt | level="error" and duration > 250ms"#
            ),
            r#"{app="mail", env=~"prod|dev"} |= "error" or "fail" != "debug" | logfmt | level="error" and duration>0.25s"#
        );
        assert_eq!(
            round_trip(r#"sum by (level) (count_over_time({app="a"} | json [5m]))"#),
            r#"sum by (level)(count_over_time({app="a"} | json [5m]))"#
        );
        assert_eq!(
            round_trip(
                r#"quantile_over_time(0.99, {app="a"}[1m] | logfmt | unwrap duration(latency) | __error__="") by (path)"#
            ),
            r#"quantile_over_time(0.99,{app="a"} | logfmt | unwrap duration(latency) | __error__="" [1m]) by (path)"#
        );
        assert_eq!(round_trip("vector(1)+vector(1)"), "vector(1) + vector(1)");
        assert_eq!(round_trip("2 * 3 + 1"), "2 * 3 + 1");
        assert!(matches!(
            parse("1 + 2 * 3"),
            Ok(Expr::Metric(MetricExpr::Binary { op: BinOp::Add, .. }))
        ));
        round_trip(r#"topk(3, sum by (app) (rate({app=~".+"}[1m] offset 5m)))"#);
        round_trip(
            r#"{a="b"} | pattern "<ip> <_> <status>" | label_format s=status, t="{{.ip}}" | line_format "{{.ip}}" | drop t, x="y" | keep s"#,
        );
        round_trip(r#"label_replace(rate({a="b"}[1m]), "dst", "$1", "a", "(.*)")"#);
    }

    #[test]
    fn errors_say_what_and_where() {
        let e = parse(r#"{app=~".*"}"#).unwrap_err();
        assert!(e.contains("at least one regexp or equality matcher"), "{e}");
        let e = parse(r#"{app="a"} |= "x" | unknownstage"#).unwrap_err();
        assert!(e.starts_with("parse error at line 1, col 20:"), "{e}");
        let e = parse(r#"sum_over_time({app="a"}[5m])"#).unwrap_err();
        assert!(e.contains("invalid aggregation sum_over_time without unwrap"), "{e}");
        let e = parse(r#"{app="a"}[5m]"#).unwrap_err();
        assert!(e.contains("only allowed inside a range aggregation"), "{e}");
        assert!(
            parse(r#"{app="a"} | regexp "(\\d+)""#)
                .unwrap_err()
                .contains("named capture")
        );
        assert!(parse(r#"{app="a"} | line_format "{{.x""#).is_err());
    }
}
