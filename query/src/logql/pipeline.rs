//! Running a log pipeline over one entry: line filters, parsers, label
//! filters and formatters, with Loki's error labels (`__error__`,
//! `__error_details__`) and conflict rule (a parsed label named like a
//! stream label gets the suffix `_extracted`).

use std::collections::BTreeMap;

use sightline_storage::Labels;

use super::ast::*;
use super::lexer::{parse_bytes, parse_duration};
use super::template::LineTemplate;

/// Label holding a pipeline error.
pub const ERROR_LABEL: &str = "__error__";
/// Label holding the error's details.
pub const ERROR_DETAILS_LABEL: &str = "__error_details__";

/// Label set of an entry while it runs through the pipeline.
pub type LabelMap = BTreeMap<String, String>;

enum Compiled {
    Line(LineFilter),
    Json(Vec<(String, Vec<PathPart>)>),
    Logfmt {
        strict: bool,
        keep_empty: bool,
        params: Vec<(String, String)>,
    },
    Regexp(regex::Regex),
    Pattern(super::pattern::Pattern),
    Unpack,
    LineFormat(LineTemplate),
    LabelFormat(Vec<(String, Result<String, LineTemplate>)>),
    Drop(Vec<NameOrMatcher>),
    Keep(Vec<NameOrMatcher>),
    Decolorize,
    Filter(LabelFilter),
}

#[derive(Debug, Clone)]
enum PathPart {
    Key(String),
    Index(usize),
}

/// A compiled pipeline.
pub struct Pipeline {
    stages: Vec<Compiled>,
    unwrap: Option<(String, UnwrapConv)>,
    post_unwrap: Vec<LabelFilter>,
    /// Only line filters: labels stay the stream's.
    lines_only: bool,
}

/// What an entry became.
pub struct Processed {
    /// The (possibly rewritten) line.
    pub line: String,
    /// Its labels, or `None` when they are the stream's unchanged.
    pub labels: Option<LabelMap>,
    /// The unwrapped value (metric queries with `unwrap`).
    pub value: Option<f64>,
}

impl Pipeline {
    /// Compiles the stages of `log`.
    pub fn new(log: &LogExpr) -> Result<Pipeline, String> {
        let mut stages = Vec::new();
        let mut unwrap = None;
        let mut post_unwrap = Vec::new();
        for s in &log.stages {
            if unwrap.is_some() {
                if let Stage::Filter(f) = s {
                    post_unwrap.push(f.clone());
                }
                continue;
            }
            stages.push(match s {
                Stage::Line(lf) => Compiled::Line(lf.clone()),
                Stage::Json(params) => Compiled::Json(
                    params
                        .iter()
                        .map(|p| Ok((p.label.clone(), parse_json_path(&p.expr)?)))
                        .collect::<Result<_, String>>()?,
                ),
                Stage::Logfmt {
                    strict,
                    keep_empty,
                    params,
                } => Compiled::Logfmt {
                    strict: *strict,
                    keep_empty: *keep_empty,
                    params: params.iter().map(|p| (p.label.clone(), p.expr.clone())).collect(),
                },
                Stage::Regexp(r) => Compiled::Regexp(r.clone()),
                Stage::Pattern(p) => Compiled::Pattern(p.clone()),
                Stage::Unpack => Compiled::Unpack,
                Stage::LineFormat(t) => Compiled::LineFormat(LineTemplate::new(t)?),
                Stage::LabelFormat(items) => Compiled::LabelFormat(
                    items
                        .iter()
                        .map(|it| match it {
                            LabelFmt::Rename { dst, src } => Ok((dst.clone(), Ok(src.clone()))),
                            LabelFmt::Template { dst, text } => Ok((dst.clone(), Err(LineTemplate::new(text)?))),
                        })
                        .collect::<Result<_, String>>()?,
                ),
                Stage::Drop(items) => Compiled::Drop(items.clone()),
                Stage::Keep(items) => Compiled::Keep(items.clone()),
                Stage::Decolorize => Compiled::Decolorize,
                Stage::Filter(f) => Compiled::Filter(f.clone()),
                Stage::Unwrap { label, conv } => {
                    unwrap = Some((label.clone(), *conv));
                    continue;
                }
            });
        }
        let lines_only = unwrap.is_none() && stages.iter().all(|s| matches!(s, Compiled::Line(_)));
        Ok(Pipeline {
            stages,
            unwrap,
            post_unwrap,
            lines_only,
        })
    }

    /// The substrings every result line must contain, from the leading
    /// `|=` filters (before anything rewrites the line): storage answers
    /// them from its index.
    pub fn needles(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.stages {
            match s {
                Compiled::Line(lf) if lf.op == LineOp::Contains && lf.values.len() == 1 => {
                    if !lf.values[0].is_empty() {
                        out.push(lf.values[0].clone());
                    }
                }
                // These leave the line as it was.
                Compiled::Line(_)
                | Compiled::Filter(_)
                | Compiled::Json(_)
                | Compiled::Logfmt { .. }
                | Compiled::Regexp(_)
                | Compiled::Pattern(_)
                | Compiled::LabelFormat(_)
                | Compiled::Drop(_)
                | Compiled::Keep(_) => {}
                Compiled::LineFormat(_) | Compiled::Unpack | Compiled::Decolorize => break,
            }
        }
        out
    }

    /// True when the pipeline has `unwrap`.
    pub fn has_unwrap(&self) -> bool {
        self.unwrap.is_some()
    }

    /// Runs one entry; `None` when it is filtered out.
    pub fn process(&self, ts: i64, line: &str, stream: &Labels, metadata: &[(String, String)]) -> Option<Processed> {
        if self.lines_only {
            for s in &self.stages {
                if let Compiled::Line(lf) = s
                    && !line_matches(lf, line)
                {
                    return None;
                }
            }
            if metadata.is_empty() {
                return Some(Processed {
                    line: line.to_string(),
                    labels: None,
                    value: None,
                });
            }
        }
        let mut labels: LabelMap = stream
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        for (k, v) in metadata {
            let key = if stream.get(k).is_some() {
                format!("{k}_extracted")
            } else {
                k.clone()
            };
            labels.insert(key, v.clone());
        }
        let mut line = line.to_string();
        for s in &self.stages {
            match s {
                Compiled::Line(lf) => {
                    if !line_matches(lf, &line) {
                        return None;
                    }
                }
                Compiled::Json(params) => json_stage(&line, params, stream, &mut labels),
                Compiled::Logfmt {
                    strict,
                    keep_empty,
                    params,
                } => logfmt_stage(&line, *strict, *keep_empty, params, stream, &mut labels),
                Compiled::Regexp(re) => {
                    if let Some(c) = re.captures(&line) {
                        for name in re.capture_names().flatten() {
                            if let Some(m) = c.name(name) {
                                set_parsed(&mut labels, stream, name, m.as_str().to_string());
                            }
                        }
                    }
                }
                Compiled::Pattern(p) => {
                    let caps: Vec<(String, String)> = p
                        .captures(&line)
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    for (k, v) in caps {
                        set_parsed(&mut labels, stream, &k, v);
                    }
                }
                Compiled::Unpack => unpack_stage(&mut line, stream, &mut labels),
                Compiled::LineFormat(t) => match t.render(&labels, &line, ts) {
                    Ok(out) => line = out,
                    Err(e) => set_error(&mut labels, "TemplateFormatErr", &e),
                },
                Compiled::LabelFormat(items) => {
                    let before = labels.clone();
                    for (dst, how) in items {
                        match how {
                            Ok(src) => {
                                if let Some(v) = before.get(src) {
                                    labels.remove(src);
                                    labels.insert(dst.clone(), v.clone());
                                }
                            }
                            Err(t) => match t.render(&before, &line, ts) {
                                Ok(v) => {
                                    labels.insert(dst.clone(), v);
                                }
                                Err(e) => set_error(&mut labels, "TemplateFormatErr", &e),
                            },
                        }
                    }
                }
                Compiled::Drop(items) => {
                    labels.retain(|k, v| !items.iter().any(|it| name_or_matcher(it, k, v)));
                }
                Compiled::Keep(items) => {
                    labels.retain(|k, v| items.iter().any(|it| name_or_matcher(it, k, v)));
                }
                Compiled::Decolorize => line = decolorize(&line),
                Compiled::Filter(f) => {
                    if !label_filter(f, &mut labels) {
                        return None;
                    }
                }
            }
        }
        let mut value = None;
        if let Some((name, conv)) = &self.unwrap {
            let raw = labels.get(name).cloned().unwrap_or_default();
            if raw.is_empty() {
                return None;
            }
            labels.remove(name);
            let parsed = match conv {
                UnwrapConv::Number => raw.trim().parse::<f64>().map_err(|e| e.to_string()),
                UnwrapConv::Duration => parse_duration(raw.trim()).ok_or_else(|| format!("invalid duration {raw:?}")),
                UnwrapConv::Bytes => parse_bytes(&raw).ok_or_else(|| format!("invalid size {raw:?}")),
            };
            match parsed {
                Ok(v) => value = Some(v),
                Err(e) => {
                    set_error(&mut labels, "SampleExtractionErr", &e);
                    value = Some(0.0);
                }
            }
            for f in &self.post_unwrap {
                if !label_filter(f, &mut labels) {
                    return None;
                }
            }
        }
        Some(Processed {
            line,
            labels: Some(labels),
            value,
        })
    }
}

fn name_or_matcher(it: &NameOrMatcher, k: &str, v: &str) -> bool {
    match it {
        NameOrMatcher::Name(n) => n == k,
        NameOrMatcher::Matcher(m) => m.name == k && m.matches(v),
    }
}

/// True when `line` passes the filter.
pub fn line_matches(lf: &LineFilter, line: &str) -> bool {
    let any = match lf.op {
        LineOp::Contains | LineOp::NotContains => lf.values.iter().any(|v| line.contains(v.as_str())),
        LineOp::Regex | LineOp::NotRegex => lf.regexes.iter().any(|r| r.is_match(line)),
        LineOp::Pattern | LineOp::NotPattern => lf.patterns.iter().any(|p| p.test(line)),
    };
    any != lf.op.negated()
}

fn set_error(labels: &mut LabelMap, err: &str, details: &str) {
    if labels.contains_key(ERROR_LABEL) {
        return;
    }
    labels.insert(ERROR_LABEL.into(), err.into());
    labels.insert(ERROR_DETAILS_LABEL.into(), details.into());
}

/// Loki's `sanitizeLabelKey`: characters outside `[a-zA-Z0-9_]` become
/// `_`, and a leading digit gets a `_` in front.
fn sanitize_key(key: &str) -> String {
    let key = key.trim();
    let mut out = String::with_capacity(key.len() + 1);
    if key.as_bytes().first().is_some_and(|b| b.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(
        key.chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }),
    );
    out
}

fn set_parsed(labels: &mut LabelMap, stream: &Labels, key: &str, value: String) {
    let key = sanitize_key(key);
    if key.is_empty() {
        return;
    }
    let key = if stream.get(&key).is_some() {
        format!("{key}_extracted")
    } else {
        key
    };
    labels.insert(key, value);
}

fn json_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}_{k}")
                };
                flatten(&key, child, out);
            }
        }
        serde_json::Value::Array(_) => {}
        other => {
            if let Some(t) = json_text(other) {
                out.push((prefix.to_string(), t));
            }
        }
    }
}

fn json_stage(line: &str, params: &[(String, Vec<PathPart>)], stream: &Labels, labels: &mut LabelMap) {
    let v: serde_json::Value = match serde_json::from_str(line) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        Ok(_) => {
            return set_error(
                labels,
                "JSONParserErr",
                "Value looks like object, but can't find closing '}' symbol",
            );
        }
        Err(e) => return set_error(labels, "JSONParserErr", &e.to_string()),
    };
    if params.is_empty() {
        let mut out = Vec::new();
        flatten("", &v, &mut out);
        for (k, val) in out {
            set_parsed(labels, stream, &k, val);
        }
        return;
    }
    for (label, path) in params {
        let mut cur = Some(&v);
        for part in path {
            cur = match (cur, part) {
                (Some(serde_json::Value::Object(m)), PathPart::Key(k)) => m.get(k),
                (Some(serde_json::Value::Array(a)), PathPart::Index(i)) => a.get(*i),
                _ => None,
            };
        }
        let text = cur.and_then(json_text).unwrap_or_default();
        set_parsed(labels, stream, label, text);
    }
}

fn parse_json_path(expr: &str) -> Result<Vec<PathPart>, String> {
    let mut out = Vec::new();
    let mut rest = expr.trim();
    let bad = || format!("invalid JSON expression {expr:?}");
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(bad)?;
            let inner = r[..end].trim();
            if let Some(q) = inner.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
                out.push(PathPart::Key(q.to_string()));
            } else {
                out.push(PathPart::Index(inner.parse().map_err(|_| bad())?));
            }
            rest = &r[end + 1..];
        } else {
            let r = rest.strip_prefix('.').unwrap_or(rest);
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return Err(bad());
            }
            out.push(PathPart::Key(r[..end].to_string()));
            rest = &r[end..];
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// Splits a logfmt line into pairs; `Err` on malformed input.
fn logfmt_pairs(line: &str) -> (Vec<(String, String)>, Option<String>) {
    let b = line.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let mut err = None;
    while i < b.len() {
        while i < b.len() && b[i] <= b' ' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let ks = i;
        while i < b.len() && b[i] > b' ' && b[i] != b'=' && b[i] != b'"' {
            i += 1;
        }
        let key = &line[ks..i];
        if key.is_empty() {
            err.get_or_insert_with(|| format!("logfmt syntax error at pos {}: unexpected '{}'", i + 1, b[i] as char));
            i += 1;
            continue;
        }
        if i < b.len() && b[i] == b'=' {
            i += 1;
            if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut val = String::new();
                let mut closed = false;
                while i < b.len() {
                    match b[i] {
                        b'"' => {
                            closed = true;
                            i += 1;
                            break;
                        }
                        b'\\' if i + 1 < b.len() => {
                            match b[i + 1] {
                                b'n' => val.push('\n'),
                                b't' => val.push('\t'),
                                b'r' => val.push('\r'),
                                c => val.push(c as char),
                            }
                            i += 2;
                        }
                        _ => {
                            let ch = line[i..].chars().next().unwrap_or('\u{fffd}');
                            val.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                if !closed {
                    err.get_or_insert_with(|| {
                        format!("logfmt syntax error at pos {}: unterminated quoted value", i + 1)
                    });
                }
                out.push((key.to_string(), val));
            } else {
                let vs = i;
                while i < b.len() && b[i] > b' ' {
                    if b[i] == b'"' || b[i] == b'=' {
                        err.get_or_insert_with(|| {
                            format!("logfmt syntax error at pos {}: unexpected '{}'", i + 1, b[i] as char)
                        });
                    }
                    i += 1;
                }
                out.push((key.to_string(), line[vs..i].to_string()));
            }
        } else {
            if i < b.len() && b[i] == b'"' {
                err.get_or_insert_with(|| format!("logfmt syntax error at pos {}: unexpected '\"'", i + 1));
                i += 1;
            }
            out.push((key.to_string(), String::new()));
        }
    }
    (out, err)
}

fn logfmt_stage(
    line: &str,
    strict: bool,
    keep_empty: bool,
    params: &[(String, String)],
    stream: &Labels,
    labels: &mut LabelMap,
) {
    let (pairs, err) = logfmt_pairs(line);
    if strict && let Some(e) = err {
        return set_error(labels, "LogfmtParserErr", &e);
    }
    if params.is_empty() {
        for (k, v) in pairs {
            if v.is_empty() && !keep_empty {
                continue;
            }
            set_parsed(labels, stream, &k, v);
        }
    } else {
        for (label, key) in params {
            if let Some((_, v)) = pairs.iter().rev().find(|(k, _)| k == key) {
                set_parsed(labels, stream, label, v.clone());
            }
        }
    }
}

fn unpack_stage(line: &mut String, stream: &Labels, labels: &mut LabelMap) {
    let v: serde_json::Value = match serde_json::from_str(line) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        Ok(_) => return set_error(labels, "JSONParserErr", "expecting a JSON object"),
        Err(e) => return set_error(labels, "JSONParserErr", &e.to_string()),
    };
    let serde_json::Value::Object(m) = v else { return };
    let mut entry = None;
    for (k, val) in m {
        if let serde_json::Value::String(s) = val {
            if k == "_entry" {
                entry = Some(s);
            } else {
                set_parsed(labels, stream, &k, s);
            }
        }
    }
    if let Some(e) = entry {
        *line = e;
    }
}

fn decolorize(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Evaluates a label filter, setting `__error__` on conversion failures
/// as Loki does (the entry then passes, so the error can be seen or
/// filtered out).
fn label_filter(f: &LabelFilter, labels: &mut LabelMap) -> bool {
    match f {
        LabelFilter::And(a, b) => label_filter(a, labels) && label_filter(b, labels),
        LabelFilter::Or(a, b) => label_filter(a, labels) || label_filter(b, labels),
        LabelFilter::Matcher(m) => m.matches(labels.get(&m.name).map(String::as_str).unwrap_or("")),
        LabelFilter::Compare { name, op, value, kind } => {
            if labels.contains_key(ERROR_LABEL) {
                return true;
            }
            let Some(raw) = labels.get(name).cloned() else {
                return false;
            };
            let parsed = match kind {
                ValueKind::Number => raw
                    .trim()
                    .parse::<f64>()
                    .map_err(|e| format!("strconv.ParseFloat: parsing {raw:?}: {e}")),
                ValueKind::Duration => {
                    parse_duration(raw.trim()).ok_or_else(|| format!("time: invalid duration {raw:?}"))
                }
                ValueKind::Bytes => parse_bytes(&raw).ok_or_else(|| format!("invalid size {raw:?}")),
            };
            match parsed {
                Ok(v) => op.apply(v, *value),
                Err(e) => {
                    set_error(labels, "LabelFilterErr", &e);
                    true
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::parser::parse_log;

    fn run(q: &str, line: &str) -> Option<(String, Vec<(String, String)>)> {
        let log = parse_log(q).expect("parses");
        let p = Pipeline::new(&log).expect("compiles");
        let stream = Labels::from_pairs([("app", "a"), ("level", "info")]);
        p.process(7, line, &stream, &[]).map(|r| {
            let labels = r.labels.unwrap_or_else(|| {
                stream
                    .iter()
                    .map(|l| (l.name.to_string(), l.value.to_string()))
                    .collect()
            });
            (r.line, labels.into_iter().collect())
        })
    }

    fn label(r: &Option<(String, Vec<(String, String)>)>, name: &str) -> Option<String> {
        r.as_ref()?.1.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn parsers_extract_with_loki_naming() {
        let r = run(
            r#"{app="a"} | json"#,
            r#"{"level":"error","req":{"path":"/x","ms":12},"tags":["a"],"1st":true}"#,
        );
        assert_eq!(label(&r, "level_extracted").as_deref(), Some("error"));
        assert_eq!(label(&r, "level").as_deref(), Some("info"));
        assert_eq!(label(&r, "req_path").as_deref(), Some("/x"));
        assert_eq!(label(&r, "req_ms").as_deref(), Some("12"));
        assert_eq!(label(&r, "_1st").as_deref(), Some("true"));
        assert_eq!(label(&r, "tags"), None);
        let r = run(
            r#"{app="a"} | json p="req.path", first="tags[0]""#,
            r#"{"req":{"path":"/y"},"tags":["t0"]}"#,
        );
        assert_eq!(
            (label(&r, "p").as_deref(), label(&r, "first").as_deref()),
            (Some("/y"), Some("t0"))
        );
        let r = run(r#"{app="a"} | json"#, "not json");
        assert_eq!(label(&r, "__error__").as_deref(), Some("JSONParserErr"));
        let r = run(
            r#"{app="a"} | logfmt"#,
            r#"ts=1 msg="hello \"world\"" empty= dup=1 dup=2"#,
        );
        assert_eq!(label(&r, "msg").as_deref(), Some("hello \"world\""));
        assert_eq!(label(&r, "empty"), None);
        assert_eq!(label(&r, "dup").as_deref(), Some("2"));
        let r = run(r#"{app="a"} | logfmt --strict"#, r#"a="unterminated"#);
        assert_eq!(label(&r, "__error__").as_deref(), Some("LogfmtParserErr"));
        let r = run(r#"{app="a"} | regexp "(?P<method>\\w+) (?P<path>\\S+)""#, "GET /a b");
        assert_eq!(label(&r, "path").as_deref(), Some("/a"));
        let r = run(r#"{app="a"} | unpack"#, r#"{"_entry":"orig line","pod":"p1"}"#);
        assert_eq!(r.as_ref().map(|x| x.0.as_str()), Some("orig line"));
        assert_eq!(label(&r, "pod").as_deref(), Some("p1"));
    }

    #[test]
    fn filters_and_formatters() {
        assert!(run(r#"{app="a"} |= "err" != "debug""#, "an error").is_some());
        assert!(run(r#"{app="a"} |= "err" != "debug""#, "debug error").is_none());
        assert!(run(r#"{app="a"} |~ "(?i)ERROR""#, "an error").is_some());
        assert!(run(r#"{app="a"} |= "x" or "y""#, "has y").is_some());
        assert!(run(r#"{app="a"} | logfmt | ms > 100"#, "ms=150").is_some());
        assert!(run(r#"{app="a"} | logfmt | ms > 100"#, "ms=50").is_none());
        assert!(run(r#"{app="a"} | logfmt | ms > 100"#, "other=1").is_none());
        let r = run(r#"{app="a"} | logfmt | ms > 100"#, "ms=abc");
        assert_eq!(label(&r, "__error__").as_deref(), Some("LabelFilterErr"));
        assert!(run(r#"{app="a"} | logfmt | ms > 100 | __error__="""#, "ms=abc").is_none());
        assert!(run(r#"{app="a"} | logfmt | d >= 1s and d < 2s"#, "d=1500ms").is_some());
        assert!(run(r#"{app="a"} | logfmt | size > 1KB"#, "size=2KiB").is_some());
        assert!(run(r#"{app="a"} | logfmt | (a="1" or b="2"), c="3""#, "b=2 c=3").is_some());
        let r = run(
            r#"{app="a"} | logfmt | line_format "{{.level}}:{{.msg}}" | label_format lvl=level, up="{{ .msg | ToUpper }}" | drop app"#,
            "msg=hi",
        );
        assert_eq!(r.as_ref().map(|x| x.0.as_str()), Some("info:hi"));
        assert_eq!(label(&r, "lvl").as_deref(), Some("info"));
        assert_eq!(label(&r, "level"), None);
        assert_eq!(label(&r, "up").as_deref(), Some("HI"));
        assert_eq!(label(&r, "app"), None);
        let r = run(r#"{app="a"} | keep app"#, "x");
        assert_eq!(r.map(|x| x.1.len()), Some(1));
        assert_eq!(
            run(r#"{app="a"} | decolorize"#, "\u{1b}[31mred\u{1b}[0m")
                .map(|x| x.0)
                .as_deref(),
            Some("red")
        );
        let r = run(r#"{app="a"} | pattern "<m> <p>""#, "GET /z");
        assert_eq!(label(&r, "p").as_deref(), Some("/z"));
        assert!(run(r#"{app="a"} |> "<_> /z""#, "GET /z").is_some());
        assert!(run(r#"{app="a"} !> "<_> /z""#, "GET /z").is_none());
    }

    #[test]
    fn only_leading_contains_filters_are_needles() {
        let log = parse_log(r#"{a="b"} |= "x" != "y" |= "z" | json |= "w""#).expect("parses");
        assert_eq!(
            Pipeline::new(&log).expect("compiles").needles(),
            vec!["x".to_string(), "z".to_string(), "w".to_string()]
        );
        let log = parse_log(r#"{a="b"} | line_format "{{.a}}" |= "w""#).expect("parses");
        assert!(Pipeline::new(&log).expect("compiles").needles().is_empty());
    }
}
