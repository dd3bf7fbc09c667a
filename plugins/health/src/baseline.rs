//! `baseline`: the seed's performance baseline (phase 5.2). N samples, one
//! every interval, of a URL's response time and of the error lines in a log
//! tail, with a warning whenever a sample passes the thresholds (seed:
//! response over 2.0 s, more than 10 errors). Each sample is streamed live as
//! progress; all of them are kept in the outcome for the report.

use backout_plugin_sdk::host::{self, HttpRequest};
use backout_plugin_sdk::{Outcome, PluginError, Step};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{LogParams, count_log};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    /// The URL sampled (granted to the plugin on the agent).
    url: String,
    /// How many samples are taken.
    #[serde(default = "default_samples")]
    samples: u32,
    /// Between two samples: "60s", "500ms", "2m".
    #[serde(default = "default_every")]
    every: String,
    /// A response slower than this many seconds is a warning.
    #[serde(default = "default_warn_response")]
    warn_response_s: f64,
    /// An error log counted at each sample.
    #[serde(default)]
    log: Option<LogParams>,
    /// More matching log lines than this in a sample is a warning.
    #[serde(default = "default_warn_errors")]
    warn_errors: usize,
}

fn default_samples() -> u32 {
    30
}
fn default_every() -> String {
    "60s".into()
}
fn default_warn_response() -> f64 {
    2.0
}
fn default_warn_errors() -> usize {
    10
}

#[derive(Debug, Serialize)]
struct Sample {
    at_ms: u64,
    /// None when the request failed.
    response_s: Option<f64>,
    http_status: Option<u16>,
    errors: Option<usize>,
    warnings: Vec<String>,
}

/// "250ms", "30s", "2m" in milliseconds.
fn millis(text: &str) -> Option<u32> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: u32 = n.parse().ok()?;
    match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        _ => None,
    }
}

pub fn run(step: &Step) -> Result<Outcome, PluginError> {
    let p: Params = step.params()?;
    let every = millis(&p.every).ok_or_else(|| {
        PluginError::new(
            "bad-params",
            format!("`every` = `{}`: use ms, s or m", p.every),
        )
    })?;
    if p.samples == 0 {
        return Err(PluginError::new(
            "bad-params",
            "`samples` must be at least 1",
        ));
    }
    let mut samples = Vec::new();
    for i in 1..=p.samples {
        let started = host::now();
        let answer = HttpRequest::new("GET", &p.url).timeout_ms(10_000).send();
        let elapsed = host::now().saturating_sub(started) as f64 / 1000.0;
        let (response_s, http_status) = match &answer {
            Ok(r) => (Some(elapsed), Some(r.status)),
            Err(_) => (None, None),
        };
        let errors = p.log.as_ref().and_then(|log| count_log(log).matches);
        let mut warnings = Vec::new();
        match (response_s, &answer) {
            (Some(s), _) if s > p.warn_response_s => {
                warnings.push(format!("response {s:.2} s over {:.1} s", p.warn_response_s))
            }
            (None, Err(e)) => warnings.push(format!("no answer: {}", e.message())),
            _ => {}
        }
        if let Some(n) = errors.filter(|n| *n > p.warn_errors) {
            warnings.push(format!("{n} errors over {}", p.warn_errors));
        }
        for w in &warnings {
            host::log_warn(&format!("sample {i}: {w}"));
        }
        host::progress(
            i,
            p.samples,
            &format!(
                "response {}, {} errors",
                response_s.map_or("none".into(), |s| format!("{s:.2} s")),
                errors.map_or("?".into(), |n| n.to_string())
            ),
        );
        samples.push(Sample {
            at_ms: host::now(),
            response_s,
            http_status,
            errors,
            warnings,
        });
        if i < p.samples {
            host::sleep(every)?;
        }
    }
    let times: Vec<f64> = samples.iter().filter_map(|s| s.response_s).collect();
    let max_response = times.iter().copied().fold(0.0_f64, f64::max);
    let avg_response = if times.is_empty() {
        0.0
    } else {
        times.iter().sum::<f64>() / times.len() as f64
    };
    let last_errors = samples.last().and_then(|s| s.errors);
    let warned = samples.iter().filter(|s| !s.warnings.is_empty()).count();
    let summary = format!(
        "{} samples: response avg {avg_response:.2} s, max {max_response:.2} s; {} errors at the end; {warned} samples with warnings",
        samples.len(),
        last_errors.map_or("?".into(), |n| n.to_string())
    );
    Ok(Outcome::new(
        summary,
        json!({
            "samples": samples,
            "avg_response_s": avg_response,
            "max_response_s": max_response,
            "samples_with_warnings": warned,
            // Read by the report's "no new errors" criterion.
            "log": { "matches": last_errors },
        }),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn intervals_parse() {
        assert_eq!(super::millis("60s"), Some(60_000));
        assert_eq!(super::millis("250ms"), Some(250));
        assert_eq!(super::millis("2m"), Some(120_000));
        assert_eq!(super::millis("soon"), None);
    }
}
