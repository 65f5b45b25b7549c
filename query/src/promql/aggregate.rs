//! Aggregation operators (`sum`, `avg`, `count`, `min`, `max`, `group`,
//! `stddev`, `stdvar`, `quantile`, `count_values`, `topk`, `bottomk`,
//! `limitk`, `limit_ratio`) with `by`/`without` grouping, evaluated
//! step by step with one accumulator per group.

use std::collections::HashMap;

use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{AggregateExpr, LabelModifier};
use sightline_storage::labels::is_valid_label_name;

use super::error::{QueryError, exec_err};
use super::eval::{Evaluator, Steps, Value};
use super::value::{LabelSet, Point, Series, SeriesBuilder, format_float};

/// Kahan-compensated `sum += f`: returns the new sum and compensation.
pub fn kahan_inc(f: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + f;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= f.abs() {
        c + ((sum - t) + f)
    } else {
        c + ((f - t) + sum)
    };
    (t, c)
}

/// The `q` quantile of `values` as Prometheus computes it (linear
/// interpolation between closest ranks; NaN sorts first).
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// How series are grouped.
struct Grouping {
    without: bool,
    labels: Vec<String>,
}

impl Grouping {
    fn new(m: &Option<LabelModifier>) -> Self {
        match m {
            Some(LabelModifier::Include(l)) => Grouping {
                without: false,
                labels: l.labels.clone(),
            },
            Some(LabelModifier::Exclude(l)) => Grouping {
                without: true,
                labels: l.labels.clone(),
            },
            None => Grouping {
                without: false,
                labels: Vec::new(),
            },
        }
    }

    fn key(&self, l: &LabelSet) -> u64 {
        if !self.without && self.labels.is_empty() {
            return 0;
        }
        l.signature(&self.labels, !self.without)
    }

    fn labels(&self, l: &LabelSet) -> LabelSet {
        if self.without {
            l.drop(&self.labels, true)
        } else {
            l.keep(&self.labels)
        }
    }
}

/// Maps each input series to a group; returns group per series and the
/// first series of each group.
fn assign_groups(series: &[Series], g: &Grouping) -> (Vec<usize>, Vec<usize>) {
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut firsts = Vec::new();
    let per_series = series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            *index.entry(g.key(&s.labels)).or_insert_with(|| {
                firsts.push(i);
                firsts.len() - 1
            })
        })
        .collect();
    (per_series, firsts)
}

/// Walks series step by step: calls `f(step index, t, [(series, value)])`
/// with the points present at each step.
fn for_each_step(
    ev: &Evaluator<'_>,
    series: &[Series],
    steps: Steps,
    mut f: impl FnMut(usize, i64, &[(usize, f64)]) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let mut cursor = vec![0usize; series.len()];
    let mut present = Vec::with_capacity(series.len());
    for (i, t) in steps.times().enumerate() {
        if i % 64 == 0 {
            ev.check_deadline()?;
        }
        present.clear();
        for (si, s) in series.iter().enumerate() {
            let c = cursor[si];
            if c < s.points.len() && s.points[c].t == t {
                present.push((si, s.points[c].v));
                cursor[si] += 1;
            }
        }
        f(i, t, &present)?;
    }
    Ok(())
}

/// Evaluates an aggregation.
pub fn eval(ev: &Evaluator<'_>, agg: &AggregateExpr, steps: Steps) -> Result<Value, QueryError> {
    let op = agg.op.id();
    let grouping = Grouping::new(&agg.modifier);
    let input = ev.eval_vector(&agg.expr, steps)?;
    let out = match op {
        token::T_TOPK | token::T_BOTTOMK | token::T_LIMITK | token::T_LIMIT_RATIO => {
            let Some(param) = &agg.param else {
                return exec_err(format!("{} needs a parameter", agg.op));
            };
            let param = ev.eval_scalar(param, steps)?;
            select_k(ev, op, &param, input, &grouping, steps)?
        }
        token::T_COUNT_VALUES => {
            let label = match agg.param.as_deref().map(|p| ev.eval(p, steps)).transpose()? {
                Some(Value::String(s)) => s,
                _ => return exec_err("count_values needs a string parameter"),
            };
            if !is_valid_label_name(&label) {
                return exec_err(format!("invalid label name {label:?}"));
            }
            // With `by`, the value label is part of the grouping.
            let mut grouping = grouping;
            if !grouping.without && !grouping.labels.contains(&label) {
                grouping.labels.push(label.clone());
            }
            count_values(ev, &label, input, &grouping, steps)?
        }
        _ => {
            let param = match (&agg.param, op) {
                (Some(p), token::T_QUANTILE) => {
                    let q = ev.eval_scalar(p, steps)?;
                    super::functions::warn_quantiles(ev, &q, Some(p.to_string()));
                    Some(q)
                }
                _ => None,
            };
            aggregate(ev, op, param.as_deref(), input, &grouping, steps)?
        }
    };
    Ok(Value::Vector(out))
}

#[derive(Default, Clone)]
struct Acc {
    seen: bool,
    value: f64,
    c: f64,
    mean: f64,
    count: f64,
    incremental: bool,
    drop_name: bool,
    values: Vec<f64>,
}

fn aggregate(
    ev: &Evaluator<'_>,
    op: TokenId,
    param: Option<&[f64]>,
    input: Vec<Series>,
    g: &Grouping,
    steps: Steps,
) -> Result<Vec<Series>, QueryError> {
    let (group_of, firsts) = assign_groups(&input, g);
    let mut out: Vec<Series> = firsts
        .iter()
        .map(|&i| Series::new(g.labels(&input[i].labels), false))
        .collect();
    let mut accs = vec![Acc::default(); firsts.len()];
    for_each_step(ev, &input, steps, |i, t, present| {
        for a in accs.iter_mut() {
            a.seen = false;
        }
        for &(si, f) in present {
            let a = &mut accs[group_of[si]];
            let drop = input[si].drop_name;
            if !a.seen {
                a.seen = true;
                a.value = f;
                a.mean = f;
                a.c = 0.0;
                a.count = 1.0;
                a.incremental = false;
                a.drop_name = drop;
                a.values.clear();
                match op {
                    token::T_STDVAR | token::T_STDDEV => a.value = if f.is_finite() { 0.0 } else { f64::NAN },
                    token::T_QUANTILE => a.values.push(f),
                    token::T_GROUP => a.value = 1.0,
                    _ => {}
                }
                continue;
            }
            a.drop_name |= drop;
            match op {
                token::T_SUM => (a.value, a.c) = kahan_inc(f, a.value, a.c),
                token::T_AVG => {
                    a.count += 1.0;
                    if !a.incremental {
                        let (v, c) = kahan_inc(f, a.value, a.c);
                        if !v.is_infinite() {
                            (a.value, a.c) = (v, c);
                            continue;
                        }
                        a.incremental = true;
                        a.mean = a.value / (a.count - 1.0);
                        a.c /= a.count - 1.0;
                    }
                    let q = (a.count - 1.0) / a.count;
                    (a.mean, a.c) = kahan_inc(f / a.count, q * a.mean, q * a.c);
                }
                token::T_GROUP => {}
                token::T_MAX if a.value < f || a.value.is_nan() => a.value = f,
                token::T_MIN if a.value > f || a.value.is_nan() => a.value = f,
                token::T_COUNT => a.count += 1.0,
                token::T_STDVAR | token::T_STDDEV => {
                    a.count += 1.0;
                    let delta = f - a.mean;
                    a.mean += delta / a.count;
                    a.value += delta * (f - a.mean);
                }
                token::T_QUANTILE => a.values.push(f),
                _ => {}
            }
        }
        for (gi, a) in accs.iter_mut().enumerate() {
            if !a.seen {
                continue;
            }
            let v = match op {
                token::T_SUM => a.value + a.c,
                token::T_AVG => {
                    if a.incremental {
                        a.mean + a.c
                    } else {
                        a.value / a.count + a.c / a.count
                    }
                }
                token::T_COUNT => a.count,
                token::T_STDVAR => a.value / a.count,
                token::T_STDDEV => (a.value / a.count).sqrt(),
                token::T_QUANTILE => quantile(param.map_or(f64::NAN, |p| p[i]), &mut a.values),
                _ => a.value,
            };
            out[gi].points.push(Point { t, v });
            out[gi].drop_name |= a.drop_name;
        }
        Ok(())
    })?;
    out.retain(|s| !s.points.is_empty());
    Ok(out)
}

fn count_values(
    ev: &Evaluator<'_>,
    label: &str,
    input: Vec<Series>,
    g: &Grouping,
    steps: Steps,
) -> Result<Vec<Series>, QueryError> {
    let mut builder = SeriesBuilder::new(true);
    let mut counts: Vec<(LabelSet, f64)> = Vec::new();
    let mut index: HashMap<u64, usize> = HashMap::new();
    for_each_step(ev, &input, steps, |_, t, present| {
        counts.clear();
        index.clear();
        for &(si, f) in present {
            let mut l = input[si].labels.clone();
            l.set(label, &format_float(f));
            let key = g.key(&l);
            match index.get(&key) {
                Some(&i) => counts[i].1 += 1.0,
                None => {
                    index.insert(key, counts.len());
                    counts.push((g.labels(&l), 1.0));
                }
            }
        }
        for (l, c) in counts.drain(..) {
            let i = builder.series_for(l, false);
            builder.push(i, Point { t, v: c });
        }
        Ok(())
    })?;
    builder.finish().or_else(exec_err)
}

fn select_k(
    ev: &Evaluator<'_>,
    op: TokenId,
    param: &[f64],
    input: Vec<Series>,
    g: &Grouping,
    steps: Steps,
) -> Result<Vec<Series>, QueryError> {
    let (group_of, firsts) = assign_groups(&input, g);
    let mut chosen: Vec<Vec<Point>> = vec![Vec::new(); input.len()];
    let mut heaps: Vec<Vec<(usize, f64)>> = vec![Vec::new(); firsts.len()];
    let mut instant_order: Vec<usize> = Vec::new();
    for_each_step(ev, &input, steps, |i, t, present| {
        let p = param[i];
        let (k, ratio) = match op {
            token::T_LIMIT_RATIO => {
                if p.is_nan() {
                    return exec_err("Ratio value is NaN");
                }
                (0, p.clamp(-1.0, 1.0))
            }
            _ => {
                if p.is_nan() {
                    return exec_err("Parameter value is NaN");
                }
                if !(-9.223372036854775e18..=9.223372036854775e18).contains(&p) {
                    return exec_err(format!("Scalar value {} overflows int64", format_float(p)));
                }
                ((p as i64).min(input.len() as i64), 0.0)
            }
        };
        if op != token::T_LIMIT_RATIO && k < 1 {
            return Ok(());
        }
        if op == token::T_LIMIT_RATIO && ratio == 0.0 {
            return Ok(());
        }
        let k = k as usize;
        for h in heaps.iter_mut() {
            h.clear();
        }
        for &(si, f) in present {
            let h = &mut heaps[group_of[si]];
            match op {
                token::T_LIMITK => {
                    if h.len() < k {
                        h.push((si, f));
                    }
                }
                token::T_LIMIT_RATIO => {
                    let offset = input[si].labels.prom_hash() as f64 / u64::MAX as f64;
                    if (ratio >= 0.0 && offset < ratio) || (ratio < 0.0 && offset >= 1.0 + ratio) {
                        h.push((si, f));
                    }
                }
                _ => {
                    let less = if op == token::T_TOPK { less_topk } else { less_bottomk };
                    if h.len() < k {
                        h.push((si, f));
                        let n = h.len() - 1;
                        heap_up(h, n, less);
                        continue;
                    }
                    let w = h[0].1;
                    let better = if op == token::T_TOPK {
                        w < f || (w.is_nan() && !f.is_nan())
                    } else {
                        w > f || (w.is_nan() && !f.is_nan())
                    };
                    if better {
                        h[0] = (si, f);
                        if k > 1 && !heap_down(h, 0, less) {
                            heap_up(h, 0, less);
                        }
                    }
                }
            }
        }
        for h in heaps.iter_mut() {
            match op {
                token::T_TOPK => h.sort_by(|a, b| cmp_desc(a.1, b.1)),
                token::T_BOTTOMK => h.sort_by(|a, b| cmp_asc(a.1, b.1)),
                _ => {}
            }
            for &(si, f) in h.iter() {
                chosen[si].push(Point { t, v: f });
                if steps.len() == 1 {
                    instant_order.push(si);
                }
            }
        }
        Ok(())
    })?;
    let mut input: Vec<Option<Series>> = input.into_iter().map(Some).collect();
    let order: Vec<usize> = if steps.len() == 1 {
        instant_order
    } else {
        (0..input.len()).collect()
    };
    let mut out = Vec::new();
    for si in order {
        if chosen[si].is_empty() {
            continue;
        }
        if let Some(mut s) = input[si].take() {
            s.points = std::mem::take(&mut chosen[si]);
            out.push(s);
        }
    }
    Ok(out)
}

type Less = fn(f64, f64) -> bool;

/// Prometheus' heap order for `topk`: smallest on top, NaN smallest.
fn less_topk(a: f64, b: f64) -> bool {
    a.is_nan() || a < b
}

/// Prometheus' heap order for `bottomk`: largest on top, NaN first.
fn less_bottomk(a: f64, b: f64) -> bool {
    a.is_nan() || a > b
}

/// Go's `container/heap` sift-up, so ties pick the same series.
fn heap_up(h: &mut [(usize, f64)], mut j: usize, less: Less) {
    while j > 0 {
        let i = (j - 1) / 2;
        if !less(h[j].1, h[i].1) {
            break;
        }
        h.swap(i, j);
        j = i;
    }
}

/// Go's `container/heap` sift-down; true when the element moved.
fn heap_down(h: &mut [(usize, f64)], i0: usize, less: Less) -> bool {
    let n = h.len();
    let mut i = i0;
    loop {
        let j1 = 2 * i + 1;
        if j1 >= n {
            break;
        }
        let mut j = j1;
        if j1 + 1 < n && less(h[j1 + 1].1, h[j1].1) {
            j = j1 + 1;
        }
        if !less(h[j].1, h[i].1) {
            break;
        }
        h.swap(i, j);
        i = j;
    }
    i > i0
}

/// Ascending by value with NaN last.
fn cmp_asc(a: f64, b: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
        _ => a.partial_cmp(&b).unwrap_or(Equal),
    }
}

/// Descending by value with NaN last.
fn cmp_desc(a: f64, b: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
        _ => b.partial_cmp(&a).unwrap_or(Equal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_between_ranks() {
        assert_eq!(quantile(0.5, &mut [1.0, 3.0, 2.0, 4.0]), 2.5);
        assert_eq!(quantile(0.0, &mut [5.0, 1.0]), 1.0);
        assert!(quantile(f64::NAN, &mut [1.0]).is_nan());
        assert_eq!(quantile(2.0, &mut [1.0]), f64::INFINITY);
    }

    #[test]
    fn kahan_sum_recovers_lost_bits() {
        let (mut s, mut c) = (0.0, 0.0);
        for f in [1e100, 1.0, -1e100] {
            (s, c) = kahan_inc(f, s, c);
        }
        assert_eq!(s + c, 1.0);
    }

    #[test]
    fn values_format_like_go() {
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(0.1), "0.1");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
    }
}
