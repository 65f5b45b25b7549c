//! The LogQL syntax tree, printed back as canonical LogQL by `Display`
//! (what `format_query` answers).

use std::fmt;

use regex::Regex;
use sightline_storage::Matcher;

use super::pattern::Pattern;

/// A whole query: a log query or a metric query.
#[derive(Debug, Clone)]
pub enum Expr {
    /// Selects log lines.
    Log(LogExpr),
    /// Computes samples.
    Metric(MetricExpr),
}

/// A stream selector and its pipeline.
#[derive(Debug, Clone)]
pub struct LogExpr {
    /// `{…}` matchers.
    pub matchers: Vec<Matcher>,
    /// Stages in order.
    pub stages: Vec<Stage>,
}

/// Line filter operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOp {
    /// `|=`
    Contains,
    /// `!=`
    NotContains,
    /// `|~`
    Regex,
    /// `!~`
    NotRegex,
    /// `|>`
    Pattern,
    /// `!>`
    NotPattern,
}

impl LineOp {
    fn text(self) -> &'static str {
        match self {
            LineOp::Contains => "|=",
            LineOp::NotContains => "!=",
            LineOp::Regex => "|~",
            LineOp::NotRegex => "!~",
            LineOp::Pattern => "|>",
            LineOp::NotPattern => "!>",
        }
    }

    /// True for the negated operators.
    pub fn negated(self) -> bool {
        matches!(self, LineOp::NotContains | LineOp::NotRegex | LineOp::NotPattern)
    }
}

/// A line filter: the line must (or must not) match any of `values`.
#[derive(Debug, Clone)]
pub struct LineFilter {
    /// The operator.
    pub op: LineOp,
    /// Alternatives joined by `or`.
    pub values: Vec<String>,
    /// Compiled regexes (for `|~`/`!~`).
    pub regexes: Vec<Regex>,
    /// Compiled patterns (for `|>`/`!>`).
    pub patterns: Vec<Pattern>,
}

/// A comparison operator of numeric label filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==` (also `=`)
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

impl CmpOp {
    /// Applies the comparison.
    pub fn apply(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
        }
    }

    fn text(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
        }
    }
}

/// How a numeric label filter reads the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A plain number.
    Number,
    /// A duration (`250ms`), compared in seconds.
    Duration,
    /// A byte size (`10KB`), compared in bytes.
    Bytes,
}

/// A label filter expression.
#[derive(Debug, Clone)]
pub enum LabelFilter {
    /// Both must hold.
    And(Box<LabelFilter>, Box<LabelFilter>),
    /// Either must hold.
    Or(Box<LabelFilter>, Box<LabelFilter>),
    /// A string matcher (`=`, `!=`, `=~`, `!~`).
    Matcher(Matcher),
    /// A numeric comparison.
    Compare {
        /// Label name.
        name: String,
        /// Operator.
        op: CmpOp,
        /// Right-hand value (seconds for durations, bytes for sizes).
        value: f64,
        /// How the label is read.
        kind: ValueKind,
    },
}

/// A `json` or `logfmt` parameter: `label="expression"`.
#[derive(Debug, Clone)]
pub struct Extraction {
    /// The label to set.
    pub label: String,
    /// The field path (`a.b[0]`) or logfmt key.
    pub expr: String,
}

/// `label_format` items.
#[derive(Debug, Clone)]
pub enum LabelFmt {
    /// `dst=src`: rename.
    Rename {
        /// New name.
        dst: String,
        /// Old name.
        src: String,
    },
    /// `dst="template"`.
    Template {
        /// Label set.
        dst: String,
        /// Template text.
        text: String,
    },
}

/// `drop`/`keep` items: a name, or a name with a matcher on its value.
#[derive(Debug, Clone)]
pub enum NameOrMatcher {
    /// Every label of that name.
    Name(String),
    /// Labels whose value matches.
    Matcher(Matcher),
}

/// How `unwrap` converts a label to a sample value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwrapConv {
    /// As a number.
    Number,
    /// `duration(x)` / `duration_seconds(x)`: seconds.
    Duration,
    /// `bytes(x)`.
    Bytes,
}

/// One pipeline stage.
#[derive(Debug, Clone)]
pub enum Stage {
    /// A line filter.
    Line(LineFilter),
    /// `| json` with optional extractions.
    Json(Vec<Extraction>),
    /// `| logfmt` with flags and optional extractions.
    Logfmt {
        /// `--strict`: malformed input is an error.
        strict: bool,
        /// `--keep-empty`: keep keys without values.
        keep_empty: bool,
        /// Extractions.
        params: Vec<Extraction>,
    },
    /// `| regexp "…"` (named groups become labels).
    Regexp(Regex),
    /// `| pattern "…"`.
    Pattern(Pattern),
    /// `| unpack`.
    Unpack,
    /// `| line_format "…"`.
    LineFormat(String),
    /// `| label_format …`.
    LabelFormat(Vec<LabelFmt>),
    /// `| drop …`.
    Drop(Vec<NameOrMatcher>),
    /// `| keep …`.
    Keep(Vec<NameOrMatcher>),
    /// `| decolorize`.
    Decolorize,
    /// A label filter.
    Filter(LabelFilter),
    /// `| unwrap …` (metric queries only; stages after it are label filters).
    Unwrap {
        /// Label read.
        label: String,
        /// Conversion.
        conv: UnwrapConv,
    },
}

/// `by (…)` / `without (…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    /// True for `without`.
    pub without: bool,
    /// Label names.
    pub labels: Vec<String>,
}

/// Range aggregation functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOp {
    /// `count_over_time`
    Count,
    /// `rate`
    Rate,
    /// `rate_counter`
    RateCounter,
    /// `bytes_over_time`
    Bytes,
    /// `bytes_rate`
    BytesRate,
    /// `absent_over_time`
    Absent,
    /// `sum_over_time`
    Sum,
    /// `avg_over_time`
    Avg,
    /// `max_over_time`
    Max,
    /// `min_over_time`
    Min,
    /// `first_over_time`
    First,
    /// `last_over_time`
    Last,
    /// `stdvar_over_time`
    Stdvar,
    /// `stddev_over_time`
    Stddev,
    /// `quantile_over_time`
    Quantile,
}

/// Every range function with its name.
pub const RANGE_OPS: &[(&str, RangeOp)] = &[
    ("count_over_time", RangeOp::Count),
    ("rate", RangeOp::Rate),
    ("rate_counter", RangeOp::RateCounter),
    ("bytes_over_time", RangeOp::Bytes),
    ("bytes_rate", RangeOp::BytesRate),
    ("absent_over_time", RangeOp::Absent),
    ("sum_over_time", RangeOp::Sum),
    ("avg_over_time", RangeOp::Avg),
    ("max_over_time", RangeOp::Max),
    ("min_over_time", RangeOp::Min),
    ("first_over_time", RangeOp::First),
    ("last_over_time", RangeOp::Last),
    ("stdvar_over_time", RangeOp::Stdvar),
    ("stddev_over_time", RangeOp::Stddev),
    ("quantile_over_time", RangeOp::Quantile),
];

impl RangeOp {
    /// True for the functions that need `| unwrap`.
    pub fn needs_unwrap(self) -> bool {
        !matches!(
            self,
            RangeOp::Count | RangeOp::Rate | RangeOp::Bytes | RangeOp::BytesRate | RangeOp::Absent
        )
    }

    /// The function name.
    pub fn name(self) -> &'static str {
        RANGE_OPS
            .iter()
            .find(|(_, o)| *o == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

/// Vector aggregation operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorOp {
    /// `sum`
    Sum,
    /// `avg`
    Avg,
    /// `min`
    Min,
    /// `max`
    Max,
    /// `count`
    Count,
    /// `stddev`
    Stddev,
    /// `stdvar`
    Stdvar,
    /// `topk`
    Topk,
    /// `bottomk`
    Bottomk,
    /// `sort`
    Sort,
    /// `sort_desc`
    SortDesc,
}

/// Every vector aggregation with its name.
pub const VECTOR_OPS: &[(&str, VectorOp)] = &[
    ("sum", VectorOp::Sum),
    ("avg", VectorOp::Avg),
    ("min", VectorOp::Min),
    ("max", VectorOp::Max),
    ("count", VectorOp::Count),
    ("stddev", VectorOp::Stddev),
    ("stdvar", VectorOp::Stdvar),
    ("topk", VectorOp::Topk),
    ("bottomk", VectorOp::Bottomk),
    ("sort", VectorOp::Sort),
    ("sort_desc", VectorOp::SortDesc),
];

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `and`
    And,
    /// `or`
    Or,
    /// `unless`
    Unless,
}

impl BinOp {
    /// Comparison operators filter (or give 0/1 with `bool`).
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Ge | BinOp::Lt | BinOp::Le
        )
    }

    /// `and`, `or`, `unless`.
    pub fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }

    /// The operator's text.
    pub fn text(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Unless => "unless",
        }
    }
}

/// `on (…)` / `ignoring (…)` with an optional `group_left/right`.
#[derive(Debug, Clone, Default)]
pub struct VectorMatching {
    /// `on` (true) or `ignoring` (false); `None`: match on all labels.
    pub on: Option<bool>,
    /// The labels named.
    pub labels: Vec<String>,
    /// `group_left` (Some(true)) / `group_right` (Some(false)).
    pub group: Option<bool>,
    /// Labels copied from the "one" side.
    pub include: Vec<String>,
}

/// A metric query.
#[derive(Debug, Clone)]
pub enum MetricExpr {
    /// `count_over_time({…}[5m])` and friends.
    Range {
        /// The function.
        op: RangeOp,
        /// `quantile_over_time`'s φ.
        param: Option<f64>,
        /// The log query.
        log: LogExpr,
        /// Window, seconds.
        range: f64,
        /// `offset`, seconds.
        offset: f64,
        /// `by`/`without` after the call.
        grouping: Option<Grouping>,
    },
    /// `sum by (…) (…)` and friends.
    Vector {
        /// The operator.
        op: VectorOp,
        /// `topk`/`bottomk`'s k.
        param: Option<f64>,
        /// Grouping.
        grouping: Option<Grouping>,
        /// The aggregated expression.
        inner: Box<MetricExpr>,
    },
    /// `a + b` and friends.
    Binary {
        /// Operator.
        op: BinOp,
        /// Left side.
        lhs: Box<MetricExpr>,
        /// Right side.
        rhs: Box<MetricExpr>,
        /// `bool` modifier.
        bool_mod: bool,
        /// Label matching.
        matching: VectorMatching,
    },
    /// A number.
    Literal(f64),
    /// `vector(n)`.
    Vector0(f64),
    /// `label_replace(expr, dst, replacement, src, regex)`.
    LabelReplace {
        /// Input.
        inner: Box<MetricExpr>,
        /// Destination label.
        dst: String,
        /// Replacement with `$1` references.
        replacement: String,
        /// Source label.
        src: String,
        /// Anchored regex.
        regex: Regex,
        /// Its text as written.
        regex_text: String,
    },
    /// `(…)`.
    Paren(Box<MetricExpr>),
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

impl fmt::Display for LogExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{m}")?;
        }
        write!(f, "}}")?;
        for s in &self.stages {
            write!(f, " {s}")?;
        }
        Ok(())
    }
}

fn write_names(f: &mut fmt::Formatter<'_>, items: &[NameOrMatcher]) -> fmt::Result {
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            write!(f, ",")?;
        }
        match it {
            NameOrMatcher::Name(n) => write!(f, "{n}")?,
            NameOrMatcher::Matcher(m) => write!(f, "{m}")?,
        }
    }
    Ok(())
}

fn write_extractions(f: &mut fmt::Formatter<'_>, params: &[Extraction]) -> fmt::Result {
    for (i, p) in params.iter().enumerate() {
        write!(f, "{}{}={}", if i == 0 { " " } else { "," }, p.label, quote(&p.expr))?;
    }
    Ok(())
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Line(lf) => {
                write!(f, "{} ", lf.op.text())?;
                let parts: Vec<String> = lf.values.iter().map(|v| quote(v)).collect();
                write!(f, "{}", parts.join(" or "))
            }
            Stage::Json(p) => {
                write!(f, "| json")?;
                write_extractions(f, p)
            }
            Stage::Logfmt {
                strict,
                keep_empty,
                params,
            } => {
                write!(f, "| logfmt")?;
                if *strict {
                    write!(f, " --strict")?;
                }
                if *keep_empty {
                    write!(f, " --keep-empty")?;
                }
                write_extractions(f, params)
            }
            Stage::Regexp(r) => write!(f, "| regexp {}", quote(r.as_str())),
            Stage::Pattern(p) => write!(f, "| pattern {}", quote(p.text())),
            Stage::Unpack => write!(f, "| unpack"),
            Stage::LineFormat(t) => write!(f, "| line_format {}", quote(t)),
            Stage::LabelFormat(items) => {
                write!(f, "| label_format ")?;
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ",")?;
                    }
                    match it {
                        LabelFmt::Rename { dst, src } => write!(f, "{dst}={src}")?,
                        LabelFmt::Template { dst, text } => write!(f, "{dst}={}", quote(text))?,
                    }
                }
                Ok(())
            }
            Stage::Drop(items) => {
                write!(f, "| drop ")?;
                write_names(f, items)
            }
            Stage::Keep(items) => {
                write!(f, "| keep ")?;
                write_names(f, items)
            }
            Stage::Decolorize => write!(f, "| decolorize"),
            Stage::Filter(lf) => write!(f, "| {lf}"),
            Stage::Unwrap { label, conv } => match conv {
                UnwrapConv::Number => write!(f, "| unwrap {label}"),
                UnwrapConv::Duration => write!(f, "| unwrap duration({label})"),
                UnwrapConv::Bytes => write!(f, "| unwrap bytes({label})"),
            },
        }
    }
}

impl fmt::Display for LabelFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelFilter::And(a, b) => write!(f, "{a} and {b}"),
            LabelFilter::Or(a, b) => write!(f, "({a} or {b})"),
            LabelFilter::Matcher(m) => write!(f, "{m}"),
            LabelFilter::Compare { name, op, value, kind } => {
                let v = match kind {
                    ValueKind::Number => fmt_num(*value),
                    ValueKind::Duration => format!("{}s", fmt_num(*value)),
                    ValueKind::Bytes => format!("{}B", fmt_num(*value)),
                };
                write!(f, "{name}{}{v}", op.text())
            }
        }
    }
}

/// A number as LogQL prints it.
pub fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn fmt_dur(secs: f64) -> String {
    if secs.fract() == 0.0 {
        let s = secs as i64;
        for (unit, n) in [("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)] {
            if s != 0 && s % n == 0 {
                return format!("{}{unit}", s / n);
            }
        }
        format!("{s}s")
    } else {
        format!("{}ms", fmt_num((secs * 1000.0).round()))
    }
}

impl fmt::Display for Grouping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({})",
            if self.without { "without" } else { "by" },
            self.labels.join(",")
        )
    }
}

impl fmt::Display for MetricExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricExpr::Range {
                op,
                param,
                log,
                range,
                offset,
                grouping,
            } => {
                write!(f, "{}(", op.name())?;
                if let Some(p) = param {
                    write!(f, "{},", fmt_num(*p))?;
                }
                write!(f, "{log} [{}]", fmt_dur(*range))?;
                if *offset != 0.0 {
                    write!(f, " offset {}", fmt_dur(*offset))?;
                }
                write!(f, ")")?;
                if let Some(g) = grouping {
                    write!(f, " {g}")?;
                }
                Ok(())
            }
            MetricExpr::Vector {
                op,
                param,
                grouping,
                inner,
            } => {
                let name = VECTOR_OPS.iter().find(|(_, o)| o == op).map(|(n, _)| *n).unwrap_or("?");
                write!(f, "{name}")?;
                if let Some(g) = grouping {
                    write!(f, " {g}")?;
                }
                write!(f, "(")?;
                if let Some(p) = param {
                    write!(f, "{},", fmt_num(*p))?;
                }
                write!(f, "{inner})")
            }
            MetricExpr::Binary {
                op,
                lhs,
                rhs,
                bool_mod,
                matching,
            } => {
                write!(f, "{lhs} {}", op.text())?;
                if *bool_mod {
                    write!(f, " bool")?;
                }
                if let Some(on) = matching.on {
                    write!(
                        f,
                        " {} ({})",
                        if on { "on" } else { "ignoring" },
                        matching.labels.join(",")
                    )?;
                }
                if let Some(left) = matching.group {
                    write!(
                        f,
                        " {} ({})",
                        if left { "group_left" } else { "group_right" },
                        matching.include.join(",")
                    )?;
                }
                write!(f, " {rhs}")
            }
            MetricExpr::Literal(v) => write!(f, "{}", fmt_num(*v)),
            MetricExpr::Vector0(v) => write!(f, "vector({})", fmt_num(*v)),
            MetricExpr::LabelReplace {
                inner,
                dst,
                replacement,
                src,
                regex_text,
                ..
            } => write!(
                f,
                "label_replace({inner},{},{},{},{})",
                quote(dst),
                quote(replacement),
                quote(src),
                quote(regex_text)
            ),
            MetricExpr::Paren(e) => write!(f, "({e})"),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(l) => write!(f, "{l}"),
            Expr::Metric(m) => write!(f, "{m}"),
        }
    }
}
