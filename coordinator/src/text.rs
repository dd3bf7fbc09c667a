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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_read_as_people_say_them() {
        assert_eq!(human_ms(340), "340 ms");
        assert_eq!(human_ms(12_500), "12.5 s");
        assert_eq!(human_ms(200_000), "3 m 20 s");
        assert_eq!(rfc3339(1_764_000_000_000), "2025-11-24T16:00:00Z");
    }
}
