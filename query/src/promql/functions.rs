//! PromQL functions over floats: math, time, labels, sorting, absence,
//! the range-vector functions (`rate`, `*_over_time`, …) and
//! `histogram_quantile` over classic buckets.

use chrono::{Datelike, TimeZone, Timelike, Utc};
use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, Expr};
use regex::Regex;
use sightline_storage::labels::{METRIC_NAME, is_valid_label_name};

use super::aggregate::{kahan_inc, quantile};
use super::error::{QueryError, exec_err};
use super::eval::{Evaluator, RangeInput, SampleField, Steps, Value, Window};
use super::histogram::{Bucket, bucket_fraction, bucket_quantile};
use super::modifiers::{is_marker, selector_modifier};
use super::start_time;
use super::value::{LabelSet, Point, Series, SeriesBuilder};

/// Evaluates a function call.
pub fn call(ev: &Evaluator<'_>, call: &Call, steps: Steps) -> Result<Value, QueryError> {
    let name = call.func.name;
    let args: Vec<&Expr> = call.args.args.iter().map(|a| a.as_ref()).collect();
    let arg = |i: usize| -> Result<&Expr, QueryError> {
        args.get(i)
            .copied()
            .ok_or_else(|| QueryError::Execution(format!("{name}() is missing argument {}", i + 1)))
    };
    if let Some(f) = math_fn(name) {
        return Ok(Value::Vector(map_values(ev.eval_vector(arg(0)?, steps)?, f)));
    }
    let about = |i: usize| args.get(i).map(|e| e.to_string());
    check_modifiers(name, &args)?;
    let scalar = |v: f64| Ok(Value::Scalar(vec![v; steps.len()]));
    match name {
        "time" => Ok(Value::Scalar(steps.times().map(|t| t as f64 / 1000.0).collect())),
        "start" => scalar(ev.query_start as f64 / 1000.0),
        "end" => scalar(ev.query_end as f64 / 1000.0),
        "step" => scalar(ev.query_step as f64 / 1000.0),
        "range" => scalar((ev.query_end - ev.query_start) as f64 / 1000.0),
        "min_of" | "max_of" => {
            let mut acc = ev.eval_scalar(arg(0)?, steps)?;
            for a in &args[1..] {
                let v = ev.eval_scalar(a, steps)?;
                for (x, y) in acc.iter_mut().zip(v) {
                    *x = if x.is_nan() || y.is_nan() {
                        f64::NAN
                    } else if name == "min_of" {
                        x.min(y)
                    } else {
                        x.max(y)
                    };
                }
            }
            Ok(Value::Scalar(acc))
        }
        "pi" => Ok(Value::Scalar(vec![std::f64::consts::PI; steps.len()])),
        "scalar" => {
            let series = ev.eval_vector(arg(0)?, steps)?;
            let mut count = vec![0u32; steps.len()];
            let mut value = vec![f64::NAN; steps.len()];
            for s in &series {
                for p in &s.points {
                    let i = steps.index(p.t);
                    count[i] += 1;
                    value[i] = p.v;
                }
            }
            Ok(Value::Scalar(
                value
                    .into_iter()
                    .zip(count)
                    .map(|(v, c)| if c == 1 { v } else { f64::NAN })
                    .collect(),
            ))
        }
        "vector" => {
            let v = ev.eval_scalar(arg(0)?, steps)?;
            let points = v
                .into_iter()
                .enumerate()
                .map(|(i, v)| Point { t: steps.at(i), v })
                .collect();
            Ok(Value::Vector(vec![Series {
                labels: LabelSet::default(),
                drop_name: false,
                points,
            }]))
        }
        "round" => {
            let series = ev.eval_vector(arg(0)?, steps)?;
            let to = match args.get(1) {
                Some(e) => ev.eval_scalar(e, steps)?,
                None => vec![1.0; steps.len()],
            };
            Ok(Value::Vector(map_points(series, steps, |i, v| {
                let inv = 1.0 / to[i];
                (v * inv + 0.5).floor() / inv
            })))
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let series = ev.eval_vector(arg(0)?, steps)?;
            let (lo, hi) = match name {
                "clamp" => (ev.eval_scalar(arg(1)?, steps)?, ev.eval_scalar(arg(2)?, steps)?),
                "clamp_min" => (ev.eval_scalar(arg(1)?, steps)?, vec![f64::INFINITY; steps.len()]),
                _ => (vec![f64::NEG_INFINITY; steps.len()], ev.eval_scalar(arg(1)?, steps)?),
            };
            let mut out = series;
            for s in &mut out {
                s.drop_name = true;
                s.points.retain_mut(|p| {
                    let i = steps.index(p.t);
                    if name == "clamp" && hi[i] < lo[i] {
                        return false;
                    }
                    p.v = if name == "clamp_min" {
                        go_max(lo[i], p.v)
                    } else if name == "clamp_max" {
                        go_min(hi[i], p.v)
                    } else {
                        go_max(lo[i], go_min(hi[i], p.v))
                    };
                    true
                });
            }
            out.retain(|s| !s.points.is_empty());
            Ok(Value::Vector(out))
        }
        "timestamp" | "start_timestamp" => {
            let mut inner = arg(0)?;
            while let Expr::Paren(p) = inner {
                inner = &p.expr;
            }
            let field = if name == "timestamp" {
                SampleField::Time
            } else {
                SampleField::Start
            };
            let series = match inner {
                Expr::VectorSelector(vs) => ev.vector_selector_with(vs, steps, field),
                // Only a selector's samples carry start timestamps: a
                // computed vector has none, so the result is empty (as
                // Prometheus'); its time is the evaluation time.
                other if field == SampleField::Start => {
                    ev.eval_vector(other, steps)?;
                    Vec::new()
                }
                other => map_points(ev.eval_vector(other, steps)?, steps, |_, _| 0.0)
                    .into_iter()
                    .map(|mut s| {
                        for p in &mut s.points {
                            p.v = p.t as f64 / 1000.0;
                        }
                        s
                    })
                    .collect(),
            };
            Ok(Value::Vector(
                series
                    .into_iter()
                    .map(|mut s| {
                        s.drop_name = true;
                        s
                    })
                    .collect(),
            ))
        }
        "minute" | "hour" | "day_of_week" | "day_of_month" | "day_of_year" | "days_in_month" | "month" | "year" => {
            let series = match args.first() {
                Some(e) => ev.eval_vector(e, steps)?,
                None => vec![Series {
                    labels: LabelSet::default(),
                    drop_name: false,
                    points: steps
                        .times()
                        .map(|t| Point {
                            t,
                            v: t as f64 / 1000.0,
                        })
                        .collect(),
                }],
            };
            Ok(Value::Vector(map_values(series, |v| date_part(name, v))))
        }
        "info" => info(ev, call, &args, steps),
        "label_replace" => label_replace(ev, &args, steps),
        "label_join" => label_join(ev, &args, steps),
        "sort" | "sort_desc" => {
            let mut series = ev.eval_vector(arg(0)?, steps)?;
            warn_sort_in_range(ev, call);
            if steps.len() == 1 {
                let desc = name == "sort_desc";
                series.sort_by(|a, b| {
                    let (x, y) = (a.points[0].v, b.points[0].v);
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if desc => y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal),
                        _ => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                    }
                });
            }
            Ok(Value::Vector(series))
        }
        "sort_by_label" | "sort_by_label_desc" => {
            let mut series = ev.eval_vector(arg(0)?, steps)?;
            warn_sort_in_range(ev, call);
            let mut names = Vec::new();
            for a in &args[1..] {
                names.push(string_arg(ev, a, steps)?);
            }
            let desc = name == "sort_by_label_desc";
            series.sort_by(|a, b| {
                let mut ord = std::cmp::Ordering::Equal;
                for n in &names {
                    let (x, y) = (a.labels.get(n), b.labels.get(n));
                    if x != y {
                        ord = natural_cmp(x, y);
                        break;
                    }
                }
                if ord == std::cmp::Ordering::Equal {
                    ord = a.labels.cmp(&b.labels);
                }
                if desc { ord.reverse() } else { ord }
            });
            Ok(Value::Vector(series))
        }
        "absent" => {
            let series = ev.eval_vector(arg(0)?, steps)?;
            let mut present = vec![false; steps.len()];
            for s in &series {
                for p in &s.points {
                    present[steps.index(p.t)] = true;
                }
            }
            Ok(Value::Vector(absent_series(arg(0)?, &present, steps)))
        }
        "absent_over_time" => {
            let mut present = vec![false; steps.len()];
            ev.range_batches(arg(0)?, steps, |input| {
                for (_, points) in input.map_windows(steps, |w| (!w.ts.is_empty()).then_some(1.0)) {
                    for p in points {
                        present[steps.index(p.t)] = true;
                    }
                }
                Ok(())
            })?;
            Ok(Value::Vector(absent_series(arg(0)?, &present, steps)))
        }
        "histogram_quantile" => {
            let q = ev.eval_scalar(arg(0)?, steps)?;
            warn_quantiles(ev, &q, about(0));
            let series = ev.eval_vector(arg(1)?, steps)?;
            histogram_quantile(ev, &q, series, steps, about(1)).map(Value::Vector)
        }
        "histogram_quantiles" => {
            let series = ev.eval_vector(arg(0)?, steps)?;
            let label = string_arg(ev, arg(1)?, steps)?;
            if !is_valid_label_name(&label) {
                return exec_err(format!("invalid label name {label:?} in histogram_quantiles()"));
            }
            let mut qs = Vec::new();
            for (k, a) in args.iter().enumerate().skip(2) {
                let q = ev.eval_scalar(a, steps)?;
                warn_quantiles(ev, &q, about(k));
                qs.push(q);
            }
            let info_about = about(0);
            classic_histograms(ev, series, steps, about(0), Some(&label), |i, name, buckets| {
                let mut out = Vec::with_capacity(qs.len());
                for q in &qs {
                    let mut b = buckets.clone();
                    let (v, fixed) = bucket_quantile(q[i], &mut b);
                    if fixed {
                        monotonicity_info(ev, name, &info_about);
                    }
                    out.push((Some(quantile_label(q[i])), v));
                }
                out
            })
            .map(Value::Vector)
        }
        "histogram_fraction" => {
            let lower = ev.eval_scalar(arg(0)?, steps)?;
            let upper = ev.eval_scalar(arg(1)?, steps)?;
            let series = ev.eval_vector(arg(2)?, steps)?;
            classic_histograms(ev, series, steps, about(2), None, |i, _, buckets| {
                vec![(None, bucket_fraction(lower[i], upper[i], buckets))]
            })
            .map(Value::Vector)
        }
        "quantile_over_time" => {
            let q = ev.eval_scalar(arg(0)?, steps)?;
            warn_quantiles(ev, &q, about(0));
            range_fn(ev, arg(1)?, steps, true, |w| {
                if w.vs.is_empty() {
                    return None;
                }
                let mut v = w.vs.to_vec();
                let i = ((w.t - steps.start) / steps.step) as usize;
                Some(quantile(q[i.min(q.len() - 1)], &mut v))
            })
        }
        "predict_linear" => {
            let by = ev.eval_scalar(arg(1)?, steps)?;
            range_fn(ev, arg(0)?, steps, true, |w| {
                if w.vs.len() < 2 {
                    return None;
                }
                let (slope, intercept) = linear_regression(w.ts, w.vs, w.t);
                Some(slope * by[steps.index(w.t)] + intercept)
            })
        }
        "double_exponential_smoothing" | "holt_winters" => {
            let sf = ev.eval_scalar(arg(1)?, steps)?;
            let tf = ev.eval_scalar(arg(2)?, steps)?;
            for (s, t) in sf.iter().zip(&tf) {
                if !(*s > 0.0 && *s < 1.0) {
                    return exec_err(format!("invalid smoothing factor. Expected: 0 < sf < 1, got: {s:.6}"));
                }
                if !(*t > 0.0 && *t < 1.0) {
                    return exec_err(format!("invalid trend factor. Expected: 0 < tf < 1, got: {t:.6}"));
                }
            }
            range_fn(ev, arg(0)?, steps, true, |w| {
                let i = steps.index(w.t);
                double_exponential_smoothing(w.vs, sf[i], tf[i])
            })
        }
        _ => match range_function(name) {
            Some((f, drop_name)) => {
                let counts = matches!(name, "rate" | "increase");
                let out = range_fn_inspecting(ev, arg(0)?, steps, drop_name, f, |input| {
                    if !counts {
                        return;
                    }
                    for metric in start_time::overlapping_metrics(input, steps) {
                        ev.warn(
                            format!(
                                "sample has start time that overlaps with previous sample timestamp for metric {metric:?}"
                            ),
                            about(0),
                        );
                    }
                })?;
                if counts && let Value::Vector(series) = &out {
                    for s in series {
                        let metric = s.labels.get(METRIC_NAME);
                        if !metric.is_empty()
                            && !["_total", "_sum", "_count", "_bucket"]
                                .iter()
                                .any(|x| metric.ends_with(x))
                        {
                            ev.info(
                                format!(
                                    "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {metric:?}"
                                ),
                                about(0),
                            );
                        }
                    }
                }
                Ok(out)
            }
            None => exec_err(format!("function {name}() is not supported")),
        },
    }
}

fn warn_sort_in_range(ev: &Evaluator<'_>, call: &Call) {
    if !ev.instant {
        ev.warn(
            "sort is ineffective for range queries since results are always ordered by labels".into(),
            Some(format!("{}({})", call.func.name, call.args)),
        );
    }
}

/// Warns once per distinct quantile outside `[0, 1]`.
pub fn warn_quantiles(ev: &Evaluator<'_>, q: &[f64], about: Option<String>) {
    let mut seen: Vec<u64> = Vec::new();
    for v in q {
        if !(0.0..=1.0).contains(v) && !seen.contains(&v.to_bits()) {
            seen.push(v.to_bits());
            ev.warn(
                format!("quantile value should be between 0 and 1, got {}", go_float(*v)),
                about.clone(),
            );
        }
    }
}

/// A float as Go's `%g` prints it in messages.
pub fn go_float(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Go's `math.Max`: NaN wins, +0 beats -0.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { b } else { a }
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: NaN wins, -0 beats +0.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { a } else { b }
    } else {
        a.min(b)
    }
}

/// Functions of one value that drop the metric name.
fn math_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sgn" => |v: f64| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        },
        "deg" => |v: f64| v * 180.0 / std::f64::consts::PI,
        "rad" => |v: f64| v * std::f64::consts::PI / 180.0,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        _ => return None,
    })
}

fn map_values(series: Vec<Series>, f: impl Fn(f64) -> f64) -> Vec<Series> {
    let mut out = series;
    for s in &mut out {
        s.drop_name = true;
        for p in &mut s.points {
            p.v = f(p.v);
        }
    }
    out
}

fn map_points(series: Vec<Series>, steps: Steps, f: impl Fn(usize, f64) -> f64) -> Vec<Series> {
    let mut out = series;
    for s in &mut out {
        s.drop_name = true;
        for p in &mut s.points {
            p.v = f(steps.index(p.t), p.v);
        }
    }
    out
}

fn date_part(name: &str, v: f64) -> f64 {
    if !v.is_finite() {
        return f64::NAN;
    }
    let Some(t) = Utc.timestamp_opt(v.floor() as i64, 0).single() else {
        return f64::NAN;
    };
    (match name {
        "minute" => t.minute(),
        "hour" => t.hour(),
        "day_of_week" => t.weekday().num_days_from_sunday(),
        "day_of_month" => t.day(),
        "day_of_year" => t.ordinal(),
        "days_in_month" => {
            let (y, m) = (t.year(), t.month());
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            let first_next = Utc.with_ymd_and_hms(ny, nm, 1, 0, 0, 0).single();
            let first = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single();
            match (first, first_next) {
                (Some(a), Some(b)) => (b - a).num_days() as u32,
                _ => return f64::NAN,
            }
        }
        "month" => t.month(),
        _ => return t.year() as f64,
    }) as f64
}

/// A string argument (a literal, possibly in parentheses).
fn string_arg(ev: &Evaluator<'_>, e: &Expr, steps: Steps) -> Result<String, QueryError> {
    match ev.eval(e, steps)? {
        Value::String(s) => Ok(s),
        _ => exec_err(format!("expected a string, got {e}")),
    }
}

/// Labels that tie a series to its info series.
const IDENTIFYING_LABELS: [&str; 2] = ["instance", "job"];

/// `info(v, {selector})`: adds the data labels of the info series (picked
/// by the selector's `__name__` matchers, `target_info` by default) that share `v`'s
/// identifying labels, at each step. Matchers other than `__name__` name
/// the data labels wanted and filter the info series; a series without a
/// matching info series is kept only if those matchers accept "".
fn info(ev: &Evaluator<'_>, call: &Call, args: &[&Expr], steps: Steps) -> Result<Value, QueryError> {
    let base = ev.eval_vector(
        args.first()
            .copied()
            .ok_or_else(|| QueryError::Execution("info() needs an instant vector".into()))?,
        steps,
    )?;
    let selector = match args.get(1) {
        Some(Expr::VectorSelector(vs)) => Some(vs),
        Some(other) => return exec_err(format!("info(): the second argument must be a selector, got {other}")),
        None => None,
    };
    let name_matchers = super::plan::info_name_matchers(selector)?;
    let mut data_matchers = Vec::new();
    if let Some(vs) = selector {
        for m in vs
            .matchers
            .matchers
            .iter()
            .filter(|m| m.name != METRIC_NAME && !is_marker(&m.name))
        {
            let op = match m.op {
                MatchOp::Equal => sightline_storage::MatchOp::Equal,
                MatchOp::NotEqual => sightline_storage::MatchOp::NotEqual,
                MatchOp::Re(_) => sightline_storage::MatchOp::Regex,
                MatchOp::NotRe(_) => sightline_storage::MatchOp::NotRegex,
            };
            data_matchers.push(
                sightline_storage::Matcher::new(op, m.name.clone(), m.value.clone())
                    .map_err(|e| QueryError::Execution(e.to_string()))?,
            );
        }
    }
    let data = ev
        .data
        .get(&super::plan::info_key(call))
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let (offset, at) = super::plan::info_reference(ev, args[0]);
    // Point values are the info samples' own times: on a conflict the
    // newest info series wins, as in Prometheus.
    let infos: Vec<Series> = ev.instant_samples(data, steps, offset, at, SampleField::Time);
    let accepts_empty = data_matchers.iter().all(|m| m.matches(""));
    let is_info_metric = |l: &LabelSet| name_matchers.iter().all(|m| m.matches(l.get(METRIC_NAME)));
    let mut b = SeriesBuilder::new(!ev.instant);
    for s in &base {
        let ids: Vec<(&str, &str)> = IDENTIFYING_LABELS
            .iter()
            .map(|n| (*n, s.labels.get(n)))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        if ids.is_empty() || is_info_metric(&s.labels) {
            let i = b.series_for(s.labels.clone(), s.drop_name);
            s.points.iter().for_each(|p| b.push(i, *p));
            continue;
        }
        let candidates: Vec<usize> = (0..infos.len())
            .filter(|&k| ids.iter().all(|(n, v)| infos[k].labels.get(n) == *v))
            .filter(|&k| data_matchers.iter().all(|m| m.matches(infos[k].labels.get(&m.name))))
            .collect();
        for p in &s.points {
            let mut labels = s.labels.clone();
            // (sample time, info index), newest first.
            let mut matched: Vec<(f64, usize)> = candidates
                .iter()
                .filter_map(|&k| {
                    let pts = &infos[k].points;
                    pts.binary_search_by_key(&p.t, |q| q.t).ok().map(|i| (pts[i].v, k))
                })
                .collect();
            matched.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
            let found = !matched.is_empty();
            let mut set_at: std::collections::HashMap<&str, f64> = std::collections::HashMap::new();
            for &(when, k) in &matched {
                for (n, v) in &infos[k].labels.0 {
                    if n == METRIC_NAME || IDENTIFYING_LABELS.contains(&n.as_str()) || s.labels.has(n) {
                        continue;
                    }
                    if !data_matchers.is_empty() && !data_matchers.iter().any(|m| m.name == *n) {
                        continue;
                    }
                    match set_at.get(n.as_str()) {
                        None => {
                            labels.set(n, v);
                            set_at.insert(n, when);
                        }
                        Some(&newer) if newer == when && labels.get(n) != v => {
                            return exec_err(format!(
                                "conflicting label: {n} has values {:?} and {v:?} in the info series of {}",
                                labels.get(n),
                                super::binary::prom_labels(&s.labels)
                            ));
                        }
                        Some(_) => {}
                    }
                }
            }
            if !found && !accepts_empty {
                continue;
            }
            let i = b.series_for(labels, s.drop_name);
            b.push(i, *p);
        }
    }
    b.finish().map(Value::Vector).or_else(exec_err)
}

fn label_replace(ev: &Evaluator<'_>, args: &[&Expr], steps: Steps) -> Result<Value, QueryError> {
    if args.len() != 5 {
        return exec_err("label_replace() takes 5 arguments");
    }
    let series = ev.eval_vector(args[0], steps)?;
    let dst = string_arg(ev, args[1], steps)?;
    let repl = string_arg(ev, args[2], steps)?;
    let src = string_arg(ev, args[3], steps)?;
    let regex = string_arg(ev, args[4], steps)?;
    let re = Regex::new(&format!("^(?s:{regex})$"))
        .map_err(|e| QueryError::Execution(format!("invalid regular expression in label_replace(): {regex}: {e}")))?;
    if !is_valid_label_name(&dst) {
        return exec_err(format!("invalid destination label name in label_replace(): {dst}"));
    }
    relabel(ev, series, &dst, |l| {
        let caps = re.captures(l.get(&src))?;
        let mut out = String::new();
        caps.expand(&repl, &mut out);
        Some(out)
    })
}

fn label_join(ev: &Evaluator<'_>, args: &[&Expr], steps: Steps) -> Result<Value, QueryError> {
    if args.len() < 3 {
        return exec_err("label_join() takes at least 3 arguments");
    }
    let series = ev.eval_vector(args[0], steps)?;
    let dst = string_arg(ev, args[1], steps)?;
    let sep = string_arg(ev, args[2], steps)?;
    let mut srcs = Vec::new();
    for a in &args[3..] {
        let s = string_arg(ev, a, steps)?;
        if !is_valid_label_name(&s) {
            return exec_err(format!("invalid source label name in label_join(): {s}"));
        }
        srcs.push(s);
    }
    if !is_valid_label_name(&dst) {
        return exec_err(format!("invalid destination label name in label_join(): {dst}"));
    }
    relabel(ev, series, &dst, |l| {
        Some(srcs.iter().map(|s| l.get(s)).collect::<Vec<_>>().join(&sep))
    })
}

/// Sets `dst` to what `value` computes from each series' labels (no
/// change when it gives `None`), merging series that end up equal.
fn relabel(
    ev: &Evaluator<'_>,
    series: Vec<Series>,
    dst: &str,
    value: impl Fn(&LabelSet) -> Option<String>,
) -> Result<Value, QueryError> {
    let mut b = SeriesBuilder::new(!ev.instant);
    for s in series {
        let mut labels = s.labels.clone();
        let mut drop_name = s.drop_name;
        if let Some(v) = value(&s.labels) {
            labels.set(dst, &v);
            if dst == METRIC_NAME {
                drop_name = false;
            }
        }
        let i = b.series_for(labels, drop_name);
        for p in s.points {
            b.push(i, p);
        }
    }
    b.finish().map(Value::Vector).or_else(exec_err)
}

/// Natural order: runs of digits compare as numbers.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (&x[..nx], &y[..ny]);
                let tx = trim_zeros(dx);
                let ty = trim_zeros(dy);
                let ord = tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty));
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let z = d.iter().take_while(|c| **c == b'0').count();
    &d[z..]
}

/// `absent()`'s output: 1 at steps where nothing was present, labelled
/// with the equality matchers of the argument's selector.
fn absent_series(arg: &Expr, present: &[bool], steps: Steps) -> Vec<Series> {
    let points: Vec<Point> = present
        .iter()
        .enumerate()
        .filter(|(_, p)| !**p)
        .map(|(i, _)| Point { t: steps.at(i), v: 1.0 })
        .collect();
    if points.is_empty() {
        return Vec::new();
    }
    let mut inner = arg;
    loop {
        inner = match inner {
            Expr::Paren(p) => &p.expr,
            Expr::MatrixSelector(ms) => {
                return vec![Series {
                    labels: absent_labels(&ms.vs),
                    drop_name: false,
                    points,
                }];
            }
            Expr::VectorSelector(vs) => {
                return vec![Series {
                    labels: absent_labels(vs),
                    drop_name: false,
                    points,
                }];
            }
            _ => break,
        };
    }
    vec![Series {
        labels: LabelSet::default(),
        drop_name: false,
        points,
    }]
}

fn absent_labels(vs: &promql_parser::parser::VectorSelector) -> LabelSet {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut repeated: Vec<String> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME || is_marker(&m.name) {
            continue;
        }
        if pairs.iter().any(|(n, _)| *n == m.name) {
            repeated.push(m.name.clone());
            continue;
        }
        if m.op == MatchOp::Equal {
            pairs.push((m.name.clone(), m.value.clone()));
        }
    }
    pairs.retain(|(n, _)| !repeated.contains(n));
    LabelSet::from_pairs(pairs)
}

/// Refuses `anchored`/`smoothed` range arguments of functions that do
/// not define them, in Prometheus' words.
fn check_modifiers(name: &str, args: &[&Expr]) -> Result<(), QueryError> {
    for a in args {
        let mut e = *a;
        while let Expr::Paren(p) = e {
            e = &p.expr;
        }
        if let Expr::MatrixSelector(ms) = e
            && let Some(m) = selector_modifier(&ms.vs)
            && !m.allowed_functions().contains(&name)
        {
            return exec_err(format!(
                "{} modifier can only be used with: {} - not with {name}",
                m.keyword(),
                m.allowed_functions().join(", ")
            ));
        }
    }
    Ok(())
}

/// `rate`, `increase`, `delta` over an `anchored` or `smoothed` window:
/// the value at its end minus the value at its start (plus what counter
/// resets in between took away), per second for `rate`; no extrapolation.
fn extended_rate(points: &[(i64, f64)], w: &Window<'_>, is_counter: bool, is_rate: bool) -> f64 {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return 0.0;
    };
    let mut result = last.1 - first.1;
    if is_counter {
        for p in points.windows(2) {
            if p[1].1 < p[0].1 {
                result += p[0].1;
            }
        }
    }
    if is_rate {
        result /= w.range as f64 / 1000.0;
    }
    result
}

/// Applies a window function to a range-vector argument.
fn range_fn(
    ev: &Evaluator<'_>,
    arg: &Expr,
    steps: Steps,
    drop_name: bool,
    f: impl Fn(&Window<'_>) -> Option<f64> + Sync,
) -> Result<Value, QueryError> {
    range_fn_inspecting(ev, arg, steps, drop_name, f, |_| {})
}

/// [`range_fn`], showing `inspect` each part of the input first.
fn range_fn_inspecting(
    ev: &Evaluator<'_>,
    arg: &Expr,
    steps: Steps,
    drop_name: bool,
    f: impl Fn(&Window<'_>) -> Option<f64> + Sync,
    mut inspect: impl FnMut(&RangeInput),
) -> Result<Value, QueryError> {
    let mut out = Vec::new();
    let streamed = ev.range_batches(arg, steps, |input| {
        inspect(&input);
        for (si, points) in input.map_windows(steps, &f) {
            let raw = &input.series[si];
            out.push(Series {
                labels: raw.labels.clone(),
                drop_name: drop_name || raw.drop_name,
                points,
            });
        }
        Ok(())
    })?;
    if streamed {
        // The loader's order (by evaluated label set), which decides ties
        // downstream, whatever order storage streamed in.
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
    }
    Ok(Value::Vector(out))
}

type WindowFn = fn(&Window<'_>) -> Option<f64>;

/// The range functions taking only the range vector, and whether each
/// drops the metric name.
fn range_function(name: &str) -> Option<(WindowFn, bool)> {
    Some(match name {
        "rate" => (|w| extrapolated_rate(w, true, true), true),
        "increase" => (|w| extrapolated_rate(w, true, false), true),
        "delta" => (|w| extrapolated_rate(w, false, false), true),
        "irate" => (|w| instant_delta(w, true), true),
        "idelta" => (|w| instant_delta(w, false), true),
        "deriv" => (
            |w| {
                if w.vs.len() < 2 {
                    return None;
                }
                Some(linear_regression(w.ts, w.vs, w.ts[0]).0)
            },
            true,
        ),
        "changes" => (
            |w| {
                if w.ext.is_some() {
                    let points = w.extended(false)?;
                    let n = points
                        .windows(2)
                        .filter(|p| !(p[0].1 == p[1].1 || (p[0].1.is_nan() && p[1].1.is_nan())))
                        .count();
                    return Some(n as f64);
                }
                if w.vs.is_empty() {
                    return None;
                }
                let n =
                    w.vs.windows(2)
                        .filter(|p| !(p[0] == p[1] || (p[0].is_nan() && p[1].is_nan())))
                        .count();
                Some(n as f64)
            },
            true,
        ),
        "resets" => (
            |w| {
                if w.ext.is_some() {
                    let points = w.extended(false)?;
                    return Some(points.windows(2).filter(|p| p[1].1 < p[0].1).count() as f64);
                }
                if w.vs.is_empty() {
                    return None;
                }
                if !w.has_reset {
                    return Some(0.0);
                }
                let n = (1..w.vs.len())
                    .filter(|&k| start_time::is_reset(w.ts, w.vs, w.st, k))
                    .count();
                Some(n as f64)
            },
            true,
        ),
        "avg_over_time" => (|w| non_empty(w).map(mean), true),
        "sum_over_time" => (
            |w| {
                non_empty(w).map(|vs| {
                    let (s, c) = vs.iter().fold((0.0, 0.0), |(s, c), v| kahan_inc(*v, s, c));
                    s + c
                })
            },
            true,
        ),
        "count_over_time" => (|w| non_empty(w).map(|vs| vs.len() as f64), true),
        "min_over_time" => (
            |w| non_empty(w).map(|vs| vs.iter().fold(vs[0], |m, v| if *v < m || m.is_nan() { *v } else { m })),
            true,
        ),
        "max_over_time" => (
            |w| non_empty(w).map(|vs| vs.iter().fold(vs[0], |m, v| if *v > m || m.is_nan() { *v } else { m })),
            true,
        ),
        "last_over_time" => (|w| w.vs.last().copied(), false),
        "first_over_time" => (|w| w.vs.first().copied(), false),
        "ts_of_last_over_time" => (|w| w.ts.last().map(|t| *t as f64 / 1000.0), true),
        "ts_of_first_over_time" => (|w| w.ts.first().map(|t| *t as f64 / 1000.0), true),
        "ts_of_max_over_time" => (|w| ts_of_extreme(w, |a, b| a >= b), true),
        "ts_of_min_over_time" => (|w| ts_of_extreme(w, |a, b| a <= b), true),
        "present_over_time" => (|w| non_empty(w).map(|_| 1.0), true),
        "stddev_over_time" => (|w| non_empty(w).map(|vs| variance(vs).sqrt()), true),
        "stdvar_over_time" => (|w| non_empty(w).map(variance), true),
        "mad_over_time" => (
            |w| {
                non_empty(w).map(|vs| {
                    if vs.iter().any(|v| v.is_nan()) {
                        return f64::NAN;
                    }
                    let mut v = vs.to_vec();
                    let median = quantile(0.5, &mut v);
                    let mut dev: Vec<f64> = vs.iter().map(|x| (x - median).abs()).collect();
                    quantile(0.5, &mut dev)
                })
            },
            true,
        ),
        _ => return None,
    })
}

fn non_empty<'a>(w: &Window<'a>) -> Option<&'a [f64]> {
    (!w.vs.is_empty()).then_some(w.vs)
}

/// Timestamp (s) of the last sample for which `better(v, best)` holds
/// against the running extreme; NaN samples count only if all are NaN.
fn ts_of_extreme(w: &Window<'_>, better: fn(f64, f64) -> bool) -> Option<f64> {
    let first = *w.vs.first()?;
    let (mut best, mut best_t) = (first, w.ts[0]);
    for (t, v) in w.ts.iter().zip(w.vs).skip(1) {
        if better(*v, best) || best.is_nan() {
            best = *v;
            best_t = *t;
        }
    }
    Some(best_t as f64 / 1000.0)
}

/// The mean with Kahan summation, falling back to an incremental mean
/// when the sum would overflow (as Prometheus' `avg_over_time`).
fn mean(vs: &[f64]) -> f64 {
    let (mut sum, mut c, mut mean, mut incremental) = (vs[0], 0.0, vs[0], false);
    let mut count = 1.0;
    for v in &vs[1..] {
        count += 1.0;
        if !incremental {
            let (s, cc) = kahan_inc(*v, sum, c);
            if !s.is_infinite() {
                sum = s;
                c = cc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(v / count, q * mean, q * c);
    }
    if incremental { mean + c } else { sum / count + c / count }
}

fn variance(vs: &[f64]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for v in vs {
        count += 1.0;
        let delta = v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// `rate`, `increase` and `delta`: the change over the window,
/// extrapolated towards the window's edges exactly as Prometheus does.
fn extrapolated_rate(w: &Window<'_>, is_counter: bool, is_rate: bool) -> Option<f64> {
    if w.ext.is_some() {
        return w
            .extended(is_counter)
            .map(|points| extended_rate(&points, w, is_counter, is_rate));
    }
    let n = w.vs.len();
    let counted_from = if is_counter {
        start_time::first_start_inside(w)
    } else {
        None
    };
    if n < 2 && counted_from.is_none() {
        return None;
    }
    let mut result = w.vs[n - 1] - w.vs[0];
    if is_counter && w.has_reset {
        for k in 1..n {
            result += start_time::reset_correction(w.ts, w.vs, w.st, k);
        }
    }
    let (first_t, last_t) = (w.ts[0], w.ts[n - 1]);
    let mut to_end = (w.end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg_between = if n > 1 { sampled / (n - 1) as f64 } else { 0.0 };
    let threshold = avg_between * 1.1;
    if let Some(st) = counted_from {
        // The counter was 0 at its start inside the window: count the
        // first value and extrapolate towards the end only.
        result += w.vs[0];
        if to_end >= threshold {
            to_end = avg_between / 2.0;
        }
        let sampled = (last_t - st) as f64 / 1000.0;
        let mut factor = (sampled + to_end) / sampled;
        if is_rate {
            factor /= w.range as f64 / 1000.0;
        }
        return Some(result * factor);
    }
    let mut to_start = (first_t - w.start) as f64 / 1000.0;
    if to_start >= threshold {
        to_start = avg_between / 2.0;
    }
    if is_counter {
        let mut to_zero = to_start;
        if result > 0.0 && w.vs[0] >= 0.0 {
            to_zero = sampled * (w.vs[0] / result);
        }
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg_between / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= w.range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` and `idelta`: from the last two samples.
fn instant_delta(w: &Window<'_>, is_rate: bool) -> Option<f64> {
    let n = w.vs.len();
    if n < 2 {
        return None;
    }
    let (last, prev) = (w.vs[n - 1], w.vs[n - 2]);
    let mut result = last - prev;
    if is_rate {
        result += start_time::reset_correction(w.ts, w.vs, w.st, n - 1);
    }
    let interval = w.ts[n - 1] - w.ts[n - 2];
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares slope and the intercept at `intercept_t` (ms), with
/// Kahan summation as Prometheus' `linearRegression`.
fn linear_regression(ts: &[i64], vs: &[f64], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = vs[0];
    let mut constant_y = true;
    for (i, (t, y)) in ts.iter().zip(vs).enumerate() {
        if constant_y && i > 0 && *y != init_y {
            constant_y = false;
        }
        n += 1.0;
        let x = (t - intercept_t) as f64 / 1000.0;
        (sum_x, c_x) = kahan_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_inc(*y, sum_y, c_y);
        (sum_xy, c_xy) = kahan_inc(x * y, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_inc(x * x, sum_x2, c_x2);
    }
    if constant_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + c_x, sum_y + c_y, sum_xy + c_xy, sum_x2 + c_x2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// Holt's linear (double exponential) smoothing; needs two samples.
fn double_exponential_smoothing(vs: &[f64], sf: f64, tf: f64) -> Option<f64> {
    if vs.len() < 2 {
        return None;
    }
    let (mut s0, mut s1, mut b) = (0.0, vs[0], vs[1] - vs[0]);
    for (i, v) in vs.iter().enumerate().skip(1) {
        let x = sf * v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        (s0, s1) = (s1, x + y);
    }
    Some(s1)
}

/// One output of a classic-histogram function at a step: an extra label
/// value (for `histogram_quantiles`) and the value.
type HistogramOutput = Vec<(Option<String>, f64)>;

/// Groups classic bucket series by their labels without `le` (the name
/// stays until the query ends, so two histograms with equal labels but
/// different names still collide as in Prometheus), and calls `f` with
/// each group's buckets at each step. `f` also learns the step index and
/// returns the points to emit; `extra_label` names the label its optional
/// string goes into.
fn classic_histograms(
    ev: &Evaluator<'_>,
    series: Vec<Series>,
    steps: Steps,
    about: Option<String>,
    extra_label: Option<&str>,
    mut f: impl FnMut(usize, &str, &mut Vec<Bucket>) -> HistogramOutput,
) -> Result<Vec<Series>, QueryError> {
    // (labels without `le`, metric name, (bound, series index) per bucket)
    type Group = (LabelSet, String, Vec<(f64, usize)>);
    let mut groups: Vec<Group> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for (si, s) in series.iter().enumerate() {
        let le = s.labels.get("le");
        let Some(bound) = parse_le(le) else {
            ev.warn(
                format!(
                    "bucket label \"le\" is missing or has a malformed value of {le:?} for metric name {:?}",
                    s.labels.get(METRIC_NAME)
                ),
                about.clone(),
            );
            continue;
        };
        let key = s.labels.drop(&["le".to_string()], false);
        let gi = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, s.labels.get(METRIC_NAME).to_string(), Vec::new()));
            groups.len() - 1
        });
        groups[gi].2.push((bound, si));
    }
    let mut b = SeriesBuilder::new(!ev.instant);
    let mut cursor = vec![0usize; series.len()];
    let mut buckets: Vec<Bucket> = Vec::new();
    let mut outs: std::collections::HashMap<(usize, Option<String>), usize> = std::collections::HashMap::new();
    for (i, t) in steps.times().enumerate() {
        for (gi, (labels, name, members)) in groups.iter().enumerate() {
            buckets.clear();
            for &(bound, si) in members {
                let s = &series[si];
                let c = cursor[si];
                if c < s.points.len() && s.points[c].t == t {
                    buckets.push(Bucket {
                        upper: bound,
                        count: s.points[c].v,
                    });
                    cursor[si] += 1;
                }
            }
            if buckets.is_empty() {
                continue;
            }
            for (extra, v) in f(i, name, &mut buckets) {
                let o = *outs.entry((gi, extra.clone())).or_insert_with(|| {
                    let mut l = labels.clone();
                    if let (Some(label), Some(value)) = (extra_label, &extra) {
                        l.set(label, value);
                    }
                    b.series_for(l, true)
                });
                b.push(o, Point { t, v });
            }
        }
    }
    b.finish().or_else(exec_err)
}

fn monotonicity_info(ev: &Evaluator<'_>, name: &str, about: &Option<String>) {
    ev.info(
        format!(
            "input to histogram_quantile needed to be fixed for monotonicity (see \
             https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) \
             for metric name {name:?}"
        ),
        about.clone(),
    );
}

/// `histogram_quantile` over classic `le` buckets.
fn histogram_quantile(
    ev: &Evaluator<'_>,
    q: &[f64],
    series: Vec<Series>,
    steps: Steps,
    about: Option<String>,
) -> Result<Vec<Series>, QueryError> {
    let info_about = about.clone();
    classic_histograms(ev, series, steps, about, None, |i, name, buckets| {
        let (v, fixed) = bucket_quantile(q[i], buckets);
        if fixed {
            monotonicity_info(ev, name, &info_about);
        }
        vec![(None, v)]
    })
}

/// A quantile as a label value: shortest form, always with a decimal
/// point (`0.0`, `0.25`, `1.0`).
fn quantile_label(q: f64) -> String {
    let s = super::value::format_float(q);
    if q.is_finite() && !s.contains('.') {
        format!("{s}.0")
    } else {
        s
    }
}

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "" => None,
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamping_keeps_nan_like_go() {
        assert!(go_max(0.0, go_min(20.0, f64::NAN)).is_nan());
        assert_eq!(go_max(0.0, go_min(20.0, 25.0)), 20.0);
        assert!(go_max(-0.0, 0.0).is_sign_positive());
        assert!(go_min(-0.0, 0.0).is_sign_negative());
    }

    #[test]
    fn quantile_labels_keep_a_decimal_point() {
        assert_eq!(quantile_label(0.0), "0.0");
        assert_eq!(quantile_label(0.25), "0.25");
        assert_eq!(quantile_label(1.0), "1.0");
    }
}
