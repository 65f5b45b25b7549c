//! A report as Markdown, for pasting into a change review or a wiki.

use std::fmt::Write as _;

use super::Report;

/// `x` with four significant digits, without an exponent for everyday
/// magnitudes.
fn num(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x == 0.0 {
        return "0".into();
    }
    let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 9) as usize;
    format!("{x:.digits$}")
}

fn pct(x: f64) -> String {
    format!("{:+.1} %", x * 100.0)
}

/// The report as Markdown.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let title = if r.title.is_empty() {
        "Efficiency report"
    } else {
        &r.title
    };
    let conf = format!("{:.0} %", r.confidence * 100.0);
    let _ = writeln!(out, "# {title}\n");
    let _ = writeln!(out, "**{}.**\n", r.change.verdict);
    let _ = writeln!(
        out,
        "| cohort | matchers | time range | windows | work/s | resource/s | work per resource | {conf} interval |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for c in &r.cohorts {
        let matchers = if c.matchers.is_empty() {
            "(none)".to_string()
        } else {
            format!("`{}`", c.matchers)
        };
        let _ = writeln!(
            out,
            "| {} | {matchers} | {} – {} | {} | {} | {} | {} | {} – {} |",
            c.name,
            c.start,
            c.end,
            c.windows,
            num(c.work_per_second),
            num(c.resource_per_second),
            num(c.efficiency),
            num(c.efficiency_interval[0]),
            num(c.efficiency_interval[1]),
        );
    }
    let _ = writeln!(
        out,
        "\n**Change** (candidate against baseline): {} ({conf} interval {} to {}){}.",
        pct(r.change.relative),
        pct(r.change.interval[0]),
        pct(r.change.interval[1]),
        if r.change.significant {
            ", significant"
        } else {
            ", not significant"
        }
    );
    if r.cohorts.iter().any(|c| c.latency.is_some()) {
        let _ = writeln!(out, "\n## Latency\n");
        let _ = writeln!(
            out,
            "| cohort | observations | p50 | p90 | p99 | p99.9 | above highest bucket |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for c in &r.cohorts {
            match &c.latency {
                Some(l) => {
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {} | {} |",
                        c.name,
                        l.count,
                        num(l.p50),
                        num(l.p90),
                        num(l.p99),
                        num(l.p999),
                        l.above_highest_bound
                    );
                }
                None => {
                    let _ = writeln!(out, "| {} | no data | | | | | |", c.name);
                }
            }
        }
    }
    let name = |n: &str| if n.is_empty() { String::new() } else { format!(" ({n})") };
    let _ = writeln!(out, "\n## Method\n");
    let _ = writeln!(out, "- Work{}: `{}`", name(&r.work.name), r.work.query);
    let _ = writeln!(out, "- Resource{}: `{}`", name(&r.resource.name), r.resource.query);
    let _ = writeln!(
        out,
        "- One evaluation window every {} s; a cohort's efficiency is its total work over its total resource; \
         intervals from {} circular block-bootstrap resamples of the windows (blocks of {} windows), \
         widened by Student's t for the number of blocks.",
        num(r.step_seconds),
        r.iterations,
        r.cohorts
            .iter()
            .map(|c| c.block_windows.to_string())
            .collect::<Vec<_>>()
            .join(" and "),
    );
    for w in &r.warnings {
        let _ = writeln!(out, "- Warning: {w}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(num(1234.5678), "1235");
        assert_eq!(num(12.345678), "12.35");
        assert_eq!(num(0.0012346), "0.001235");
        assert_eq!(num(0.0), "0");
        assert_eq!(pct(0.2012), "+20.1 %");
        assert_eq!(pct(-0.05), "-5.0 %");
    }
}
