//! Runs Prometheus' own PromQL test scripts (`load`, `clear`, `eval
//! instant`, `eval range`, `expect …`) against Sightline's engine.
//!
//! Test data: `$SIGHTLINE_PROMQL_TESTDATA`, or
//! `../shared/conformance/promql/testdata` next to the repository.
//! Prints a count per file, every failing case by file and line, and ends
//! with `N passed, M failed`. Cases that need native histograms are
//! counted as skipped. The run fails when a case fails that is not listed
//! in `promql_conformance_known_failures.txt` (and says which listed cases
//! now pass, so the list only shrinks).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use promql_parser::parser::{AtModifier, Expr};
use sightline_query::promql::value::{LabelSet, QueryValue};
use sightline_query::promql::{Engine, EngineOptions, QueryError, QueryResult};
use sightline_query::series_notation::{
    metric_end, parse_metric, parse_number, parse_series_line, parse_start_timestamp_line,
};
use sightline_storage::{Labels, MemorySeries};

const EPSILON: f64 = 0.000001;

fn main() {
    let dir = std::env::var_os("SIGHTLINE_PROMQL_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/promql/testdata"));
    if !dir.is_dir() {
        // .ci/run requires the data whenever ../shared is there.
        let msg = format!(
            "PromQL conformance data not found at {} (set SIGHTLINE_PROMQL_TESTDATA)",
            dir.display()
        );
        if std::env::var_os("SIGHTLINE_REQUIRE_CONFORMANCE").is_some() {
            panic!("{msg}");
        }
        println!("SKIPPED: {msg}");
        return;
    }
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let known: BTreeSet<String> = include_str!("promql_conformance_known_failures.txt")
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read testdata")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut failures: Vec<String> = Vec::new();
    let mut failed_ids: BTreeSet<String> = BTreeSet::new();
    for path in &files {
        let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let text = std::fs::read_to_string(path).expect("read test file");
        let results = rt.block_on(run_file(&text));
        let (mut p, mut f, mut s) = (0, 0, 0);
        for r in &results {
            match &r.outcome {
                Outcome::Pass => p += 1,
                Outcome::Skip => s += 1,
                Outcome::Fail(msg) => {
                    f += 1;
                    let id = format!("{name}:{}", r.line);
                    failures.push(format!("{id}: {} -- {msg}", r.expr));
                    failed_ids.insert(id);
                }
            }
        }
        println!("{name}: {p} passed, {f} failed, {s} skipped (native histograms)");
        passed += p;
        failed += f;
        skipped += s;
    }
    if !failures.is_empty() {
        println!("\nfailing cases:");
        for f in &failures {
            println!("  {f}");
        }
    }
    let unexpected: Vec<&String> = failed_ids.iter().filter(|id| !known.contains(*id)).collect();
    let fixed: Vec<&String> = known
        .iter()
        .filter(|id| !failed_ids.contains(*id) && filter.as_ref().is_none_or(|f| id.contains(f.as_str())))
        .collect();
    if !fixed.is_empty() {
        println!("\nnow passing, remove from promql_conformance_known_failures.txt:");
        for id in &fixed {
            println!("  {id}");
        }
    }
    println!("\n{skipped} skipped (need native histograms)");
    println!("{passed} passed, {failed} failed");
    if !unexpected.is_empty() {
        println!("\nfailures not in the known list:");
        for id in &unexpected {
            println!("  {id}");
        }
        std::process::exit(1);
    }
}

/// An expected annotation: any, an exact message, or a regex.
enum Matcher {
    Any,
    Msg(String),
    Regex(Option<regex::Regex>),
}

impl Matcher {
    fn parse(opt: Option<&str>) -> Self {
        match opt {
            Some(o) if o.starts_with("msg:") => Matcher::Msg(o["msg:".len()..].trim().to_string()),
            Some(o) if o.starts_with("regex:") => Matcher::Regex(regex::Regex::new(o["regex:".len()..].trim()).ok()),
            _ => Matcher::Any,
        }
    }

    fn matches(&self, s: &str) -> bool {
        match self {
            Matcher::Any => true,
            Matcher::Msg(m) => m == s,
            Matcher::Regex(r) => r.as_ref().is_some_and(|r| r.is_match(s)),
        }
    }

    fn describe(&self) -> String {
        match self {
            Matcher::Any => "any".into(),
            Matcher::Msg(m) => format!("{m:?}"),
            Matcher::Regex(r) => format!("/{}/", r.as_ref().map(|r| r.as_str()).unwrap_or("?")),
        }
    }
}

fn check_annotations(kind: &str, want: &[Matcher], none: bool, got: &[String]) -> Result<(), String> {
    if none && !got.is_empty() {
        return Err(format!("unexpected {kind} annotations: {got:?}"));
    }
    if want.is_empty() {
        return Ok(());
    }
    if got.is_empty() {
        return Err(format!("expected {kind} annotations, got none"));
    }
    for w in want {
        if !got.iter().any(|g| w.matches(g)) {
            return Err(format!("expected {kind} annotation {}, got {got:?}", w.describe()));
        }
    }
    for g in got {
        if !want.iter().any(|w| w.matches(g)) {
            return Err(format!("unexpected {kind} annotation {g:?}"));
        }
    }
    Ok(())
}

enum Outcome {
    Pass,
    Fail(String),
    Skip,
}

struct CaseResult {
    line: usize,
    expr: String,
    outcome: Outcome,
}

/// One expected series (or scalar when `labels` is None).
#[derive(Debug)]
struct Expected {
    labels: Option<LabelSet>,
    values: Vec<Option<f64>>,
    pos: usize,
}

#[derive(Default)]
struct Eval {
    line: usize,
    expr: String,
    instant: bool,
    at: i64,
    start: i64,
    end: i64,
    step: i64,
    fail: bool,
    fail_msg: Option<String>,
    fail_regex: Option<regex::Regex>,
    ordered: bool,
    want_warn: bool,
    want_info: bool,
    warn_expect: Vec<Matcher>,
    info_expect: Vec<Matcher>,
    no_warn: bool,
    no_info: bool,
    range_vector: Option<(i64, i64, i64)>,
    string: Option<String>,
    expected: Vec<Expected>,
    native: bool,
}

async fn run_file(text: &str) -> Vec<CaseResult> {
    let lines: Vec<&str> = text.lines().collect();
    let engine = Engine::new(EngineOptions {
        max_samples: usize::MAX,
        ..EngineOptions::default()
    });
    let mut store = MemorySeries::new();
    // Series that hold native histograms in the current data.
    let mut native_series: Vec<Labels> = Vec::new();
    let mut results = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = clean(lines[i]);
        if l.is_empty() {
            i += 1;
            continue;
        }
        let word = l.split_whitespace().next().unwrap_or("").to_lowercase();
        if word == "clear" {
            store.clear();
            native_series.clear();
            i += 1;
        } else if word.starts_with("load") {
            let with_nhcb = word == "load_with_nhcb";
            let gap = parse_duration(l.split_whitespace().nth(1).unwrap_or("")).unwrap_or(0);
            // `metric@st` lines: start timestamps as offsets from each
            // sample's time, applied once the block's samples are in.
            let mut start_lines = Vec::new();
            i += 1;
            while i < lines.len() && !clean(lines[i]).is_empty() {
                let def = clean(lines[i]);
                i += 1;
                if def.contains("{{") {
                    if let Ok(l) = parse_metric(&def[..metric_end(def)]) {
                        native_series.push(l);
                    }
                    continue;
                }
                if with_nhcb && let Ok(l) = parse_metric(&def[..metric_end(def)]) {
                    // The classic series stay; a native histogram with
                    // custom buckets named after the base name joins them.
                    let name = l.get("__name__").unwrap_or("");
                    for suffix in ["_bucket", "_count", "_sum"] {
                        if let Some(base) = name.strip_suffix(suffix) {
                            let pairs: Vec<(String, String)> = l
                                .iter()
                                .filter(|x| x.name != "le")
                                .map(|x| {
                                    let v = if x.name == "__name__" { base } else { x.value };
                                    (x.name.to_string(), v.to_string())
                                })
                                .collect();
                            native_series.push(Labels::from_pairs(pairs));
                        }
                    }
                }
                if def.split_whitespace().next().is_some_and(|w| w.contains("@st")) {
                    match parse_start_timestamp_line(def) {
                        Ok(line) => start_lines.push(line),
                        Err(e) => results.push(CaseResult {
                            line: i,
                            expr: def.to_string(),
                            outcome: Outcome::Fail(format!("cannot parse start timestamp line: {e}")),
                        }),
                    }
                    continue;
                }
                match parse_series_line(def) {
                    Ok((labels, values)) => {
                        let samples: Vec<(i64, f64)> = values
                            .iter()
                            .enumerate()
                            .filter_map(|(k, v)| v.map(|v| (k as i64 * gap, v)))
                            .collect();
                        store.add(labels, samples);
                    }
                    Err(e) => results.push(CaseResult {
                        line: i,
                        expr: def.to_string(),
                        outcome: Outcome::Fail(format!("cannot parse load line: {e}")),
                    }),
                }
            }
            for (labels, offsets) in start_lines {
                let starts = offsets
                    .iter()
                    .enumerate()
                    .filter_map(|(k, off)| off.map(|off| (k as i64 * gap, k as i64 * gap + off)));
                store.set_start_timestamps(&labels, starts);
            }
        } else if word.starts_with("eval") {
            let (next, parsed) = parse_eval(&lines, i);
            i = next;
            match parsed {
                Ok(mut ev) => {
                    // The trim operators `</` and `>/` exist only for native
                    // histograms (and promql-parser cannot parse them).
                    ev.native |=
                        selects_any(&ev.expr, &native_series) || ev.expr.contains("</") || ev.expr.contains(">/");
                    let outcome = if ev.native {
                        Outcome::Skip
                    } else {
                        match run_eval(&engine, &store, &ev).await {
                            Ok(()) => Outcome::Pass,
                            Err(e) => Outcome::Fail(e),
                        }
                    };
                    results.push(CaseResult {
                        line: ev.line,
                        expr: ev.expr.clone(),
                        outcome,
                    });
                }
                Err((line, e)) => results.push(CaseResult {
                    line,
                    expr: clean(lines[line - 1]).to_string(),
                    outcome: Outcome::Fail(e),
                }),
            }
        } else {
            i += 1;
        }
    }
    results
}

/// True when a selector in `expr` selects one of `series` (so the case
/// depends on native histograms).
fn selects_any(expr: &str, series: &[Labels]) -> bool {
    if series.is_empty() {
        return false;
    }
    // Through the engine's parse, which reads the extended syntax too.
    let Ok(e) = sightline_query::promql::parse(expr) else {
        return false;
    };
    let mut selectors = Vec::new();
    collect_selectors(&e, &mut selectors);
    selectors.iter().any(|vs| {
        let Ok(sets) = sightline_query::selector::matcher_sets(vs) else {
            return false;
        };
        sets.iter().any(|ms| {
            series
                .iter()
                .any(|l| ms.iter().all(|m| m.matches(l.get(&m.name).unwrap_or(""))))
        })
    })
}

fn collect_selectors<'a>(e: &'a Expr, out: &mut Vec<&'a promql_parser::parser::VectorSelector>) {
    match e {
        Expr::VectorSelector(vs) => out.push(vs),
        Expr::MatrixSelector(ms) => out.push(&ms.vs),
        Expr::Subquery(sq) => collect_selectors(&sq.expr, out),
        Expr::Paren(p) => collect_selectors(&p.expr, out),
        Expr::Unary(u) => collect_selectors(&u.expr, out),
        Expr::Binary(b) => {
            collect_selectors(&b.lhs, out);
            collect_selectors(&b.rhs, out);
        }
        Expr::Aggregate(a) => {
            collect_selectors(&a.expr, out);
            if let Some(p) = &a.param {
                collect_selectors(p, out);
            }
        }
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect_selectors(a, out)),
        _ => {}
    }
}

fn clean(l: &str) -> &str {
    let t = l.trim();
    if t.starts_with('#') { "" } else { t }
}

/// Prometheus duration: `1h30m`, `5m`, `10s`, `100ms`, `0` (ms).
fn parse_duration(s: &str) -> Option<i64> {
    sightline_query::params::parse_duration_ms(s)
}

fn parse_eval(lines: &[&str], start: usize) -> (usize, Result<Eval, (usize, String)>) {
    let head = clean(lines[start]);
    let line = start + 1;
    let mut ev = Eval {
        line,
        ..Eval::default()
    };
    let err = |m: String| (line, m);
    let parsed = (|| -> Result<(), (usize, String)> {
        let (cmd, rest) = head
            .split_once(char::is_whitespace)
            .ok_or_else(|| err("bad eval".into()))?;
        let rest = rest.trim_start();
        match cmd {
            "eval" => {}
            "eval_fail" => ev.fail = true,
            "eval_ordered" => ev.ordered = true,
            "eval_warn" => ev.want_warn = true,
            "eval_info" => ev.want_info = true,
            other => return Err(err(format!("unknown command {other}"))),
        }
        if let Some(r) = rest.strip_prefix("instant") {
            let r = r.trim_start();
            let r = r
                .strip_prefix("at")
                .ok_or_else(|| err("instant eval without `at`".into()))?
                .trim_start();
            let (t, q) = r
                .split_once(char::is_whitespace)
                .ok_or_else(|| err("no query".into()))?;
            ev.instant = true;
            ev.at = parse_duration(t).ok_or_else(|| err(format!("bad time {t}")))?;
            ev.expr = q.trim().to_string();
        } else if let Some(r) = rest.strip_prefix("range") {
            let mut words = Vec::new();
            let mut rest = r.trim_start();
            for _ in 0..6 {
                let (w, tail) = rest
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| err("bad range eval".into()))?;
                words.push(w);
                rest = tail.trim_start();
            }
            if words[0] != "from" || words[2] != "to" || words[4] != "step" {
                return Err(err("bad range eval".into()));
            }
            ev.start = parse_duration(words[1]).ok_or_else(|| err("bad from".into()))?;
            ev.end = parse_duration(words[3]).ok_or_else(|| err("bad to".into()))?;
            ev.step = parse_duration(words[5]).ok_or_else(|| err("bad step".into()))?;
            ev.expr = rest.trim().to_string();
        } else {
            return Err(err("bad eval".into()));
        }
        Ok(())
    })();
    if let Err(e) = parsed {
        let mut j = start + 1;
        while j < lines.len() && !clean(lines[j]).is_empty() {
            j += 1;
        }
        return (j, Err(e));
    }
    let mut j = start + 1;
    let mut pos = 0;
    while j < lines.len() {
        let def = clean(lines[j]);
        if def.is_empty() {
            break;
        }
        j += 1;
        if def.contains("{{") {
            ev.native = true;
            continue;
        }
        if let Some(r) = def.strip_prefix("expect range vector") {
            let w: Vec<&str> = r.split_whitespace().collect();
            if w.len() == 6 {
                ev.range_vector = Some((
                    parse_duration(w[1]).unwrap_or(0),
                    parse_duration(w[3]).unwrap_or(0),
                    parse_duration(w[5]).unwrap_or(1),
                ));
            }
            continue;
        }
        if let Some(r) = def.strip_prefix("expect string") {
            ev.string = Some(unquote(r.trim()));
            continue;
        }
        if def.split(' ').next() == Some("expect") {
            let body = def["expect".len()..].trim();
            let (kind, opt) = match body.split_once(char::is_whitespace) {
                Some((k, o)) => (k, Some(o.trim())),
                None => (body, None),
            };
            match kind {
                "fail" => {
                    ev.fail = true;
                    if let Some(o) = opt {
                        if let Some(m) = o.strip_prefix("msg:") {
                            ev.fail_msg = Some(m.trim().to_string());
                        } else if let Some(r) = o.strip_prefix("regex:") {
                            ev.fail_regex = regex::Regex::new(r.trim()).ok();
                        }
                    }
                }
                "ordered" => ev.ordered = true,
                "warn" => {
                    ev.want_warn = true;
                    ev.warn_expect.push(Matcher::parse(opt));
                }
                "info" => {
                    ev.want_info = true;
                    ev.info_expect.push(Matcher::parse(opt));
                }
                "no_warn" => ev.no_warn = true,
                "no_info" => ev.no_info = true,
                _ => {}
            }
            continue;
        }
        if let Some(m) = def.strip_prefix("expected_fail_message") {
            ev.fail_msg = Some(m.trim().to_string());
            continue;
        }
        if let Some(r) = def.strip_prefix("expected_fail_regexp") {
            ev.fail_regex = regex::Regex::new(r.trim()).ok();
            continue;
        }
        pos += 1;
        if let Some(v) = parse_number(def) {
            ev.expected.push(Expected {
                labels: None,
                values: vec![Some(v)],
                pos,
            });
            continue;
        }
        match parse_series_line(def) {
            Ok((labels, values)) => ev.expected.push(Expected {
                labels: Some(LabelSet::from_storage(&labels)),
                values,
                pos,
            }),
            Err(e) => return (j, Err((j, format!("cannot parse expected line {def:?}: {e}")))),
        }
    }
    (j, Ok(ev))
}

fn unquote(s: &str) -> String {
    let inner = if s.len() >= 2 { &s[1..s.len() - 1] } else { "" };
    if s.starts_with('`') {
        return inner.to_string();
    }
    inner.replace("\\\"", "\"").replace("\\\\", "\\")
}

fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < EPSILON * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < EPSILON
}

async fn run_eval(engine: &Engine, store: &MemorySeries, ev: &Eval) -> Result<(), String> {
    let annotations = |r: &Result<QueryResult, QueryError>| -> Result<(), String> {
        if let Ok(r) = r {
            check_annotations("warn", &ev.warn_expect, ev.no_warn, &r.warnings)?;
            check_annotations("info", &ev.info_expect, ev.no_info, &r.infos)?;
        }
        Ok(())
    };
    if !ev.instant {
        let res = engine.range(store, &ev.expr, ev.start, ev.end, ev.step).await;
        annotations(&res)?;
        return check(
            ev,
            res.map(|r| r.value).map_err(|e| e.to_string()),
            ev.start,
            ev.step,
            ev.end,
        );
    }
    let (start, step, end) = match ev.range_vector {
        Some((s, e, st)) => (s, st, e),
        None => (ev.at, 1, ev.at),
    };
    let res = engine.instant(store, &ev.expr, ev.at).await;
    annotations(&res).map_err(|e| format!("instant: {e}"))?;
    check(ev, res.map(|r| r.value).map_err(|e| e.to_string()), start, step, end)
        .map_err(|e| format!("instant: {e}"))?;
    if ev.fail || ev.ordered || ev.range_vector.is_some() || ev.string.is_some() {
        return Ok(());
    }
    if ["start()", "end()", "range()", "step()"]
        .iter()
        .any(|f| ev.expr.contains(f))
    {
        return Ok(());
    }
    // As upstream: the same query as a range query around the time must
    // give the same result at that time.
    let res = engine
        .range(store, &ev.expr, ev.at - 60_000, ev.at + 60_000, 60_000)
        .await
        .map_err(|e| format!("range mode: {e}"))?;
    let mid = match res.value {
        QueryValue::Matrix(m) => {
            let mut v = Vec::new();
            for (l, pts) in m {
                if let Some(p) = pts.iter().find(|p| p.t == ev.at) {
                    v.push((l, *p));
                }
            }
            v
        }
        other => return Err(format!("range mode gave {}", other.type_name())),
    };
    let as_value = if ev.expected.first().is_some_and(|e| e.labels.is_none()) {
        match mid.first() {
            Some((_, p)) => QueryValue::Scalar(*p),
            None => return Err("range mode: no scalar point".into()),
        }
    } else {
        QueryValue::Vector(mid)
    };
    let mut unordered = Eval { ..Eval::default() };
    unordered.expected = ev
        .expected
        .iter()
        .map(|e| Expected {
            labels: e.labels.clone(),
            values: e.values.clone(),
            pos: e.pos,
        })
        .collect();
    unordered.instant = true;
    check(&unordered, Ok(as_value), ev.at, 1, ev.at).map_err(|e| format!("range mode: {e}"))?;
    let _ = AtModifier::Start;
    Ok(())
}

fn check(ev: &Eval, res: Result<QueryValue, String>, start: i64, step: i64, end: i64) -> Result<(), String> {
    let value = match res {
        Err(e) => {
            if !ev.fail {
                return Err(format!("unexpected error: {e}"));
            }
            if let Some(m) = &ev.fail_msg
                && *m != e
            {
                return Err(format!("expected error {m:?}, got {e:?}"));
            }
            if let Some(r) = &ev.fail_regex
                && !r.is_match(&e)
            {
                return Err(format!("expected error matching {r}, got {e:?}"));
            }
            return Ok(());
        }
        Ok(v) => v,
    };
    if ev.fail {
        return Err("expected an error, got a result".into());
    }
    let expect_scalar = ev.expected.first().is_some_and(|e| e.labels.is_none());
    match value {
        QueryValue::String(_, s) => match &ev.string {
            Some(want) if *want == s => Ok(()),
            other => Err(format!("expected string {other:?}, got {s:?}")),
        },
        QueryValue::Scalar(p) => {
            if !expect_scalar {
                return Err(format!("expected a vector or matrix, got scalar {}", p.v));
            }
            let want = ev.expected[0].values[0].unwrap_or(f64::NAN);
            if almost_equal(want, p.v) {
                Ok(())
            } else {
                Err(format!("expected scalar {want}, got {}", p.v))
            }
        }
        QueryValue::Vector(v) => {
            if expect_scalar {
                return Err("expected a scalar, got a vector".into());
            }
            let expected = index_expected(ev)?;
            let mut seen = BTreeSet::new();
            for (pos, (l, p)) in v.iter().enumerate() {
                let Some(e) = expected.get(l) else {
                    return Err(format!("unexpected series {l} = {} in result", p.v));
                };
                if ev.ordered && e.pos != pos + 1 {
                    return Err(format!("series {l} at position {} instead of {}", pos + 1, e.pos));
                }
                let want = e.values.first().copied().flatten().unwrap_or(f64::NAN);
                if !almost_equal(want, p.v) {
                    return Err(format!("expected {want} for {l}, got {}", p.v));
                }
                seen.insert(l.clone());
            }
            for l in expected.keys() {
                if !seen.contains(*l) {
                    return Err(format!("expected series {l} not in result"));
                }
            }
            Ok(())
        }
        QueryValue::Matrix(m) => {
            if ev.ordered {
                return Err("expected an ordered result, got a matrix".into());
            }
            if expect_scalar {
                return Err("expected a scalar, got a matrix".into());
            }
            if m.windows(2).any(|w| w[0].0 > w[1].0) {
                return Err("matrix not sorted by labels".into());
            }
            let expected = index_expected(ev)?;
            let mut seen = BTreeSet::new();
            for (l, pts) in &m {
                let Some(e) = expected.get(l) else {
                    return Err(format!("unexpected series {l} in result: {}", fmt_points(pts)));
                };
                let mut want = Vec::new();
                for (k, v) in e.values.iter().enumerate() {
                    let t = start + k as i64 * step;
                    if t > end {
                        return Err(format!("expected more points for {l} than the range holds"));
                    }
                    if let Some(v) = v {
                        want.push((t, *v));
                    }
                }
                if want.len() != pts.len() {
                    return Err(format!(
                        "expected {} points for {l}, got {}",
                        want.len(),
                        fmt_points(pts)
                    ));
                }
                for ((wt, wv), p) in want.iter().zip(pts) {
                    if *wt != p.t || !almost_equal(*wv, p.v) {
                        return Err(format!("expected {wv}@{wt} for {l}, got {}", fmt_points(pts)));
                    }
                }
                seen.insert(l.clone());
            }
            for l in expected.keys() {
                if !seen.contains(*l) {
                    return Err(format!("expected series {l} not in result"));
                }
            }
            Ok(())
        }
    }
}

fn fmt_points(p: &[sightline_query::promql::value::Point]) -> String {
    let s: Vec<String> = p.iter().map(|p| format!("{}@{}", p.v, p.t)).collect();
    format!("[{}]", s.join(" "))
}

fn index_expected(ev: &Eval) -> Result<BTreeMap<&LabelSet, &Expected>, String> {
    let mut m = BTreeMap::new();
    for e in &ev.expected {
        if let Some(l) = &e.labels {
            m.insert(l, e);
        }
    }
    Ok(m)
}
