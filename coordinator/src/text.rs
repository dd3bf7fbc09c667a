//! Times and durations for people, shared by the report, the run's
//! messages and the CLI.

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

#[cfg(test)]
mod tests {
    use super::*;

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
