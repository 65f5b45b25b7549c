//! Binary operators: arithmetic, comparison (with and without `bool`)
//! and the set operators, between scalars and instant vectors, with
//! `on`/`ignoring` matching and `group_left`/`group_right`.

use std::collections::HashMap;

use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::error::{QueryError, exec_err};
use super::eval::{Evaluator, Steps, Value};
use super::value::{LabelSet, Point, Series, SeriesBuilder};

/// Evaluates a binary expression.
pub fn eval(ev: &Evaluator<'_>, b: &BinaryExpr, steps: Steps) -> Result<Value, QueryError> {
    let op = b.op.id();
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let lhs = ev.eval(&b.lhs, steps)?;
    let rhs = ev.eval(&b.rhs, steps)?;
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => {
            let v = l
                .iter()
                .zip(&r)
                .map(|(a, b)| {
                    let (v, keep) = apply(op, *a, *b);
                    if is_comparison(op) {
                        if keep { 1.0 } else { 0.0 }
                    } else {
                        v
                    }
                })
                .collect();
            Ok(Value::Scalar(v))
        }
        (Value::Vector(l), Value::Scalar(r)) => Ok(Value::Vector(vector_scalar(op, l, &r, false, return_bool, steps))),
        (Value::Scalar(l), Value::Vector(r)) => Ok(Value::Vector(vector_scalar(op, r, &l, true, return_bool, steps))),
        (Value::Vector(l), Value::Vector(r)) => {
            let default_mod = BinModifier::default();
            let m = b.modifier.as_ref().unwrap_or(&default_mod);
            let matching = Matching::new(m);
            let out = match op {
                token::T_LAND => and_unless(l, r, &matching, steps, true),
                token::T_LUNLESS => and_unless(l, r, &matching, steps, false),
                token::T_LOR => or(l, r, &matching, steps),
                _ => vector_vector(ev, op, l, r, m, &matching, steps)?,
            };
            Ok(Value::Vector(out))
        }
        _ => exec_err(format!(
            "binary operator {} is not defined for these operand types",
            b.op
        )),
    }
}

/// True for `==`, `!=`, `>`, `<`, `>=`, `<=`.
pub fn is_comparison(op: TokenId) -> bool {
    matches!(
        op,
        token::T_EQLC | token::T_NEQ | token::T_GTR | token::T_LSS | token::T_GTE | token::T_LTE
    )
}

/// True for operators whose result is no longer the metric the name says.
fn drops_name(op: TokenId) -> bool {
    matches!(
        op,
        token::T_ADD | token::T_SUB | token::T_MUL | token::T_DIV | token::T_MOD | token::T_POW | token::T_ATAN2
    )
}

/// `lhs op rhs`: the value, and for comparisons whether it holds (the
/// value then is `lhs`).
pub fn apply(op: TokenId, l: f64, r: f64) -> (f64, bool) {
    match op {
        token::T_ADD => (l + r, true),
        token::T_SUB => (l - r, true),
        token::T_MUL => (l * r, true),
        token::T_DIV => (l / r, true),
        token::T_MOD => (l % r, true),
        token::T_POW => (l.powf(r), true),
        token::T_ATAN2 => (l.atan2(r), true),
        token::T_EQLC => (l, l == r),
        token::T_NEQ => (l, l != r),
        token::T_GTR => (l, l > r),
        token::T_LSS => (l, l < r),
        token::T_GTE => (l, l >= r),
        token::T_LTE => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

fn vector_scalar(
    op: TokenId,
    mut series: Vec<Series>,
    scalar: &[f64],
    scalar_left: bool,
    return_bool: bool,
    steps: Steps,
) -> Vec<Series> {
    let comparison = is_comparison(op);
    for s in &mut series {
        s.points.retain_mut(|p| {
            let k = scalar[steps.index(p.t)];
            let (l, r) = if scalar_left { (k, p.v) } else { (p.v, k) };
            let (v, keep) = apply(op, l, r);
            if comparison {
                if return_bool {
                    p.v = if keep { 1.0 } else { 0.0 };
                    true
                } else {
                    keep
                }
            } else {
                p.v = v;
                true
            }
        });
        if drops_name(op) || return_bool {
            s.drop_name = true;
        }
    }
    series.retain(|s| !s.points.is_empty());
    series
}

/// How two vectors' series are matched.
struct Matching {
    /// `on(…)` (true) or `ignoring(…)` (false).
    on: bool,
    /// The listed labels.
    labels: Vec<String>,
}

impl Matching {
    fn new(m: &BinModifier) -> Self {
        match &m.matching {
            Some(LabelModifier::Include(l)) => Matching {
                on: true,
                labels: l.labels.clone(),
            },
            Some(LabelModifier::Exclude(l)) => Matching {
                on: false,
                labels: l.labels.clone(),
            },
            None => Matching {
                on: false,
                labels: Vec::new(),
            },
        }
    }

    fn signature(&self, l: &LabelSet) -> u64 {
        l.signature(&self.labels, self.on)
    }

    /// The labels a match group is shown by in error messages.
    fn group_labels(&self, l: &LabelSet) -> LabelSet {
        if self.on {
            l.keep(&self.labels)
        } else {
            l.drop(&self.labels, true)
        }
    }
}

/// For each step, the series (index, value) present at it.
fn by_step(series: &[Series], steps: Steps) -> Vec<Vec<(u32, f64)>> {
    let mut out = vec![Vec::new(); steps.len()];
    for (i, s) in series.iter().enumerate() {
        for p in &s.points {
            out[steps.index(p.t)].push((i as u32, p.v));
        }
    }
    out
}

/// `and` (keep left points whose group is present on the right at that
/// step) and `unless` (keep those whose group is absent).
fn and_unless(lhs: Vec<Series>, rhs: Vec<Series>, m: &Matching, steps: Steps, and: bool) -> Vec<Series> {
    let n = steps.len();
    let mut present: HashMap<u64, Vec<bool>> = HashMap::new();
    for s in &rhs {
        let mask = present.entry(m.signature(&s.labels)).or_insert_with(|| vec![false; n]);
        for p in &s.points {
            mask[steps.index(p.t)] = true;
        }
    }
    let mut out = lhs;
    for s in &mut out {
        let mask = present.get(&m.signature(&s.labels));
        s.points
            .retain(|p| mask.is_some_and(|mask| mask[steps.index(p.t)]) == and);
    }
    out.retain(|s| !s.points.is_empty());
    out
}

/// `or`: every left point, plus right points whose group has no left
/// point at that step.
fn or(lhs: Vec<Series>, rhs: Vec<Series>, m: &Matching, steps: Steps) -> Vec<Series> {
    let n = steps.len();
    let mut present: HashMap<u64, Vec<bool>> = HashMap::new();
    for s in &lhs {
        let mask = present.entry(m.signature(&s.labels)).or_insert_with(|| vec![false; n]);
        for p in &s.points {
            mask[steps.index(p.t)] = true;
        }
    }
    let mut out = lhs;
    for mut s in rhs {
        let mask = present.get(&m.signature(&s.labels));
        s.points.retain(|p| !mask.is_some_and(|mask| mask[steps.index(p.t)]));
        if !s.points.is_empty() {
            out.push(s);
        }
    }
    out
}

/// Arithmetic and comparison between two vectors.
fn vector_vector(
    ev: &Evaluator<'_>,
    op: TokenId,
    lhs: Vec<Series>,
    rhs: Vec<Series>,
    modifier: &BinModifier,
    m: &Matching,
    steps: Steps,
) -> Result<Vec<Series>, QueryError> {
    let (card_one_to_many, include): (bool, Vec<String>) = match &modifier.card {
        VectorMatchCardinality::ManyToOne(l) => (false, l.labels.clone()),
        VectorMatchCardinality::OneToMany(l) => (true, l.labels.clone()),
        _ => (false, Vec::new()),
    };
    let one_to_one = matches!(
        modifier.card,
        VectorMatchCardinality::OneToOne | VectorMatchCardinality::ManyToMany
    );
    let return_bool = modifier.return_bool;
    let comparison = is_comparison(op);
    // `many` is the side every output point comes from; `one` must be
    // unique per match group.
    let (many, one) = if card_one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let many_sigs: Vec<u64> = many.iter().map(|s| m.signature(&s.labels)).collect();
    let one_sigs: Vec<u64> = one.iter().map(|s| m.signature(&s.labels)).collect();
    let many_steps = by_step(&many, steps);
    let one_steps = by_step(&one, steps);

    let mut builder = SeriesBuilder::new(!ev.instant);
    let mut out_index: HashMap<(u32, u32), usize> = HashMap::new();
    let mut one_by_sig: HashMap<u64, (u32, f64)> = HashMap::new();
    let mut matched: HashMap<u64, Vec<u64>> = HashMap::new();
    // `fill`, `fill_left`, `fill_right`: the value of a missing operand.
    // Whatever the cardinality, the right fill stands in for a missing
    // "one" side and the left fill for a missing "many" side.
    let fill_one = modifier.fill_values.rhs;
    let fill_many = modifier.fill_values.lhs;
    let no_one = u32::MAX;
    for (i, t) in steps.times().enumerate() {
        let (has_many, has_one) = (!many_steps[i].is_empty(), !one_steps[i].is_empty());
        let work = (has_many && (has_one || fill_one.is_some())) || (has_one && fill_many.is_some());
        if !work {
            continue;
        }
        ev.check_deadline()?;
        one_by_sig.clear();
        for &(si, v) in &one_steps[i] {
            let sig = one_sigs[si as usize];
            if let Some((other, _)) = one_by_sig.insert(sig, (si, v)) {
                let side = if card_one_to_many { "left" } else { "right" };
                let s = &one[si as usize];
                let mut pair = [prom_labels(&s.labels), prom_labels(&one[other as usize].labels)];
                pair.sort();
                return exec_err(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: \
                     [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    prom_labels(&m.group_labels(&s.labels)),
                    pair[0],
                    pair[1],
                ));
            }
        }
        matched.clear();
        for &(mi, mv) in &many_steps[i] {
            let sig = many_sigs[mi as usize];
            let Some(&(oi, ov)) = one_by_sig.get(&sig) else {
                if let Some(fill) = fill_one {
                    let (l, r) = if card_one_to_many { (fill, mv) } else { (mv, fill) };
                    if let Some(v) = compare_or_compute(op, l, r, return_bool) {
                        let out = *out_index.entry((mi, no_one)).or_insert_with(|| {
                            let ms = &many[mi as usize];
                            let labels = result_labels(&ms.labels, &LabelSet::default(), m, one_to_one, &include);
                            builder.series_for(labels, ms.drop_name || drops_name(op) || return_bool)
                        });
                        builder.push(out, Point { t, v });
                    }
                }
                continue;
            };
            let (l, r) = if card_one_to_many { (ov, mv) } else { (mv, ov) };
            let (mut v, keep) = apply(op, l, r);
            let key = (mi, oi);
            let out = match out_index.get(&key) {
                Some(&o) => o,
                None => {
                    let ms = &many[mi as usize];
                    let labels = result_labels(&ms.labels, &one[oi as usize].labels, m, one_to_one, &include);
                    let drop = ms.drop_name || drops_name(op) || return_bool;
                    let o = builder.series_for(labels, drop);
                    out_index.insert(key, o);
                    o
                }
            };
            // As Prometheus, matching is checked before comparisons filter.
            let groups = matched.entry(sig).or_default();
            if one_to_one {
                if !groups.is_empty() {
                    return exec_err(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                    );
                }
                groups.push(0);
            } else {
                let h = out as u64;
                if groups.contains(&h) {
                    return exec_err("multiple matches for labels: grouping labels must ensure unique matches");
                }
                groups.push(h);
            }
            if comparison {
                if return_bool {
                    v = if keep { 1.0 } else { 0.0 };
                } else if !keep {
                    continue;
                }
            }
            builder.push(out, Point { t, v });
        }
        if let Some(fill) = fill_many {
            for (&sig, &(oi, ov)) in &one_by_sig {
                if matched.contains_key(&sig) {
                    continue;
                }
                let (l, r) = if card_one_to_many { (ov, fill) } else { (fill, ov) };
                if let Some(v) = compare_or_compute(op, l, r, return_bool) {
                    let out = *out_index.entry((no_one, oi)).or_insert_with(|| {
                        let labels = m.group_labels(&one[oi as usize].labels);
                        builder.series_for(labels, drops_name(op) || return_bool)
                    });
                    builder.push(out, Point { t, v });
                }
            }
        }
    }
    let mut out = builder.finish().or_else(exec_err)?;
    out.retain(|s| !s.points.is_empty());
    Ok(out)
}

/// `l op r` as a result point's value; `None` when a comparison without
/// `bool` filters the point out.
fn compare_or_compute(op: TokenId, l: f64, r: f64, return_bool: bool) -> Option<f64> {
    let (v, keep) = apply(op, l, r);
    if !is_comparison(op) {
        Some(v)
    } else if return_bool {
        Some(if keep { 1.0 } else { 0.0 })
    } else {
        keep.then_some(v)
    }
}

/// The labels of a result point: the "many" side's, minus what matching
/// leaves out (one-to-one), plus the `group_*` labels from the "one" side.
fn result_labels(many: &LabelSet, one: &LabelSet, m: &Matching, one_to_one: bool, include: &[String]) -> LabelSet {
    let mut l = if one_to_one {
        if m.on {
            many.keep(&m.labels)
        } else {
            many.drop(&m.labels, false)
        }
    } else {
        many.clone()
    };
    for name in include {
        l.set(name, one.get(name));
    }
    l
}

/// A label set as Prometheus prints it in messages: `{a="1", b="2"}`.
pub fn prom_labels(l: &LabelSet) -> String {
    let parts: Vec<String> = l.0.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", parts.join(", "))
}
