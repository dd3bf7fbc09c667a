//! Times and durations for people, shared by the report, the run's
//! messages and the CLI; the text and SVG charts they share.

/// Formats a duration in milliseconds for people: "340 ms", "12.5 s", "3 m 20 s".
pub fn human_ms(ms: i64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1_000.0)
    } else {
        format!("{} m {} s", ms / 60_000, (ms % 60_000) / 1_000)
    }
}

/// Milliseconds since the epoch as RFC 3339 (UTC, seconds).
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// A text chart of `values` (oldest first), one block per value scaled
/// between their lowest and highest: "▁▂▅█". Empty when there are none.
pub fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    values
        .iter()
        .map(|v| {
            if (hi - lo).abs() < f64::EPSILON {
                BARS[3]
            } else {
                let at = ((v - lo) / (hi - lo) * 7.0).round();
                BARS[(at as usize).min(7)]
            }
        })
        .collect()
}

/// At most `n` of `values`, sorted, picked evenly (every quantile kept): a
/// distribution small enough to journal and to draw.
pub fn thin(values: &[f64], n: usize) -> Vec<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    if sorted.len() <= n || n < 2 {
        return sorted;
    }
    let last = sorted.len() - 1;
    (0..n).map(|i| sorted[i * last / (n - 1)]).collect()
}

/// An SVG chart (plain, no script) of the canary judge's two samples on one
/// axis: each value a dot, its middle half a box with the median marked,
/// and under them `caption` (the call, U, p-value and effect size).
pub fn judge_svg(canary: &[f64], baseline: &[f64], caption: &str) -> String {
    const W: f64 = 420.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 20.0;
    let (canary, baseline) = (thin(canary, 200), thin(baseline, 200));
    let all = canary.iter().chain(&baseline);
    let lo = all.clone().copied().fold(f64::INFINITY, f64::min);
    let hi = all.copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let span = if hi > lo { hi - lo } else { 1.0 };
    let x = |v: f64| LEFT + (v - lo) / span * (W - LEFT - RIGHT);
    let mut o = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="judge" viewBox="0 0 {W} 130" width="{W}" height="130" role="img" aria-label="canary and baseline distributions">"#
    );
    for (label, values, y, colour) in [
        ("canary", &canary, 30.0, "#c0392b"),
        ("baseline", &baseline, 70.0, "#2c7fb8"),
    ] {
        o.push_str(&format!(
            r#"<text x="4" y="{}" font-size="11">{label} ({})</text>"#,
            y + 4.0,
            values.len()
        ));
        if let (Some(_), Some(_)) = (values.first(), values.last()) {
            let q = |f: f64| values[((values.len() - 1) as f64 * f).round() as usize];
            let (q1, q2, q3) = (x(q(0.25)), x(q(0.5)), x(q(0.75)));
            o.push_str(&format!(
                r#"<rect x="{q1:.1}" y="{:.1}" width="{:.1}" height="20" fill="none" stroke="{colour}"/><line x1="{q2:.1}" x2="{q2:.1}" y1="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"/>"#,
                y - 10.0,
                (q3 - q1).max(1.0),
                y - 12.0,
                y + 12.0
            ));
        }
        for v in values.iter() {
            o.push_str(&format!(
                r#"<circle cx="{:.1}" cy="{y}" r="2" fill="{colour}" fill-opacity="0.4"/>"#,
                x(*v)
            ));
        }
    }
    o.push_str(&format!(
        r#"<line x1="{LEFT}" x2="{}" y1="92" y2="92" stroke="currentColor"/><text x="{LEFT}" y="104" font-size="10">{}</text><text x="{}" y="104" font-size="10" text-anchor="end">{}</text><text x="4" y="122" font-size="11">{}</text></svg>"#,
        W - RIGHT,
        short(lo),
        W - RIGHT,
        short(hi),
        escape(caption)
    ));
    o
}

/// A number in few characters: 0.031, 812, 1.2e6.
fn short(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.2e}")
    } else {
        format!("{}", (v * 1000.0).round() / 1000.0)
    }
}

/// Text made safe inside SVG or HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_judge_chart_draws_both_samples_and_says_its_figures() {
        let canary = [0.9, 0.91, 0.95, 1.2];
        let baseline = [0.03, 0.031, 0.04];
        let svg = judge_svg(&canary, &baseline, "fail: U 12 p 6.1e-3 effect 1.00 <x>");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 7);
        assert!(
            svg.contains(">canary (4)<") && svg.contains(">baseline (3)<"),
            "{svg}"
        );
        assert!(
            svg.contains("fail: U 12 p 6.1e-3 effect 1.00 &lt;x&gt;"),
            "{svg}"
        );
        assert!(svg.contains(">0.03<") && svg.contains(">1.2<"), "{svg}");
        // No samples yet: an empty chart, no panic.
        assert!(judge_svg(&[], &[], "inconclusive").contains("canary (0)"));
    }

    #[test]
    fn thinning_keeps_the_extremes_and_the_order() {
        let values: Vec<f64> = (0..1000).rev().map(f64::from).collect();
        let thinned = thin(&values, 5);
        assert_eq!(thinned, [0.0, 249.0, 499.0, 749.0, 999.0]);
        assert_eq!(thin(&[3.0, f64::NAN, 1.0], 5), [1.0, 3.0]);
    }

    #[test]
    fn a_sparkline_has_one_bar_per_value_from_lowest_to_highest() {
        assert_eq!(sparkline(&[0.01, 0.02, 0.12, 0.12, 0.085]), "▁▂██▆");
        assert_eq!(sparkline(&[1.0, 1.0]), "▄▄");
        assert_eq!(sparkline(&[]), "");
    }

    #[test]
    fn durations_and_times_read_as_people_say_them() {
        assert_eq!(human_ms(340), "340 ms");
        assert_eq!(human_ms(12_500), "12.5 s");
        assert_eq!(human_ms(200_000), "3 m 20 s");
        assert_eq!(rfc3339(1_764_000_000_000), "2025-11-24T16:00:00Z");
    }
}
