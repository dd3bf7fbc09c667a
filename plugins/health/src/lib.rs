//! The `health` plugin: HTTP health checks and an error-log count.
//!
//! This is phase 1.1 of the seed plan ("curl -f <health URL>" on every host
//! and `tail -n 100 error.log | grep ERROR | wc -l`) as a plugin. Health is
//! data: the step succeeds even when a check is down, and the coordinator
//! decides what that means. The step fails only for bad parameters.

use backout_plugin_sdk::host::{self, HostError, HttpRequest};
use backout_plugin_sdk::{Outcome, Plugin, PluginError, PluginInfo, Schema, Step, export_plugin};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Default time allowed for one check, in milliseconds.
const DEFAULT_TIMEOUT_MS: u32 = 5_000;
/// Default number of log lines looked at.
const DEFAULT_TAIL_LINES: u32 = 100;
/// Bytes read per wanted log line; a tail of 100 lines reads 50 KiB.
const BYTES_PER_LINE: u64 = 512;
/// The most of a log file ever read in one step.
const MAX_LOG_BYTES: u64 = 1024 * 1024;

struct Health;

impl Plugin for Health {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "health",
            env!("CARGO_PKG_VERSION"),
            "HTTP health checks (up, slow, down) and a count of matching lines in an error log tail.",
        )
        .action(
            "baseline",
            "Samples response time and error-log lines N times at an interval, with warnings over thresholds.",
            false,
        )
        .action(
            "check",
            "Calls each health URL and counts pattern matches in the last lines of a log file; with require_healthy, fails when a check is down.",
            false,
        )
    }

    fn schema() -> Schema {
        Schema::new()
            .action::<Params>("check")
            .action::<baseline::Params>("baseline")
    }

    fn run(step: Step) -> Result<Outcome, PluginError> {
        match step.action.as_str() {
            "check" => check(&step),
            "baseline" => baseline::run(&step),
            _ => Err(step.unknown_action()),
        }
    }
}

export_plugin!(Health);

mod baseline;

/// Parameters of the `check` action.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// The HTTP checks to make, one request each.
    #[serde(default)]
    checks: Vec<CheckParams>,
    /// An error log whose last lines are counted for a pattern.
    #[serde(default)]
    log: Option<LogParams>,
    /// Without it the step SUCCEEDS even when a check is down (it only reports health): set true to fail on a down check, so `retries` can retry it.
    #[serde(default)]
    #[schemars(extend("x-fails-only-when-true" = true))]
    require_healthy: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CheckParams {
    /// Defaults to the URL.
    #[serde(default)]
    name: Option<String>,
    /// The URL to call (it must be granted to the plugin on the agent).
    url: String,
    /// The HTTP method.
    #[serde(default = "default_method")]
    method: String,
    /// Statuses that count as up; by default any 2xx or 3xx, like `curl -f`.
    #[serde(default)]
    expect_status: Option<Vec<u16>>,
    /// Time allowed for the request, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u32,
    /// Above this latency an up check is reported `slow`.
    #[serde(default)]
    slow_ms: Option<u64>,
    /// A request body (a probe such as the registration flow's POST with
    /// test data); sent as JSON unless `headers` set a content type.
    #[serde(default)]
    body: Option<String>,
    /// Request headers; `${secret:NAME}` in a value is filled in by the agent.
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LogParams {
    /// Absolute path of the log file (granted for reading).
    path: String,
    /// How many of its last lines are looked at.
    #[serde(default = "default_tail_lines")]
    tail_lines: u32,
    /// The text a matching line contains (e.g. `ERROR`).
    pattern: String,
}

fn default_method() -> String {
    "GET".to_string()
}

fn default_timeout_ms() -> u32 {
    DEFAULT_TIMEOUT_MS
}

fn default_tail_lines() -> u32 {
    DEFAULT_TAIL_LINES
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Up,
    Slow,
    Down,
    /// The check could not be made (the agent's grants do not allow the
    /// URL, or the request is not one): nothing is known of the service.
    Unknown,
}

/// The result of one check, as it appears in the outcome's data.
#[derive(Debug, Serialize)]
struct CheckResult {
    name: String,
    url: String,
    status: Status,
    http_status: Option<u16>,
    latency_ms: u64,
    detail: String,
}

/// The result of the log count.
#[derive(Debug, Serialize)]
struct LogResult {
    path: String,
    lines: usize,
    matches: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn check(step: &Step) -> Result<Outcome, PluginError> {
    let params: Params = step.params()?;
    validate(&params)?;

    let total =
        u32::try_from(params.checks.len() + usize::from(params.log.is_some())).unwrap_or(u32::MAX);
    let mut done = 0u32;

    let mut results = Vec::with_capacity(params.checks.len());
    for check in &params.checks {
        let result = run_check(check);
        done = done.saturating_add(1);
        host::progress(
            done,
            total,
            &format!(
                "{}: {} ({})",
                result.name,
                status_word(result.status),
                result.detail
            ),
        );
        match result.status {
            Status::Down => host::log_warn(&format!("{} is down: {}", result.name, result.detail)),
            Status::Unknown => host::log_warn(&format!(
                "{} could not be checked: {}",
                result.name, result.detail
            )),
            Status::Up | Status::Slow => {}
        }
        results.push(result);
    }
    host::emit_json("checks", &results);

    let log = params.log.as_ref().map(|log| {
        let result = count_log(log);
        done = done.saturating_add(1);
        let message = match (&result.matches, &result.error) {
            (Some(m), _) => format!(
                "{}: {m} `{}` lines in last {}",
                log.path, log.pattern, result.lines
            ),
            (None, Some(e)) => format!("{}: unreadable: {e}", log.path),
            (None, None) => format!("{}: unreadable", log.path),
        };
        host::progress(done, total, &message);
        if let Some(e) = &result.error {
            host::log_warn(&format!("error log {} could not be read: {e}", log.path));
        }
        result
    });
    if let Some(log) = &log {
        host::emit_json("log", log);
    }

    let up = results.iter().filter(|r| r.status == Status::Up).count();
    let slow = results.iter().filter(|r| r.status == Status::Slow).count();
    let down = results.iter().filter(|r| r.status == Status::Down).count();
    let unknown = results
        .iter()
        .filter(|r| r.status == Status::Unknown)
        .count();
    // A check that could not be made is not a healthy one.
    let healthy = down == 0 && unknown == 0;

    let counts = Counts {
        up,
        slow,
        down,
        unknown,
    };
    let summary = summary(&counts, log.as_ref(), params.log.as_ref());
    if params.require_healthy && !healthy {
        return Err(PluginError::new("unhealthy", summary));
    }
    let data = json!({
        "checks": results,
        "log": log,
        "healthy": healthy,
    });
    Ok(Outcome::new(summary, data))
}

/// Rejects parameters that no check could make sense of, before calling
/// anything.
fn validate(params: &Params) -> Result<(), PluginError> {
    for check in &params.checks {
        if !(check.url.starts_with("http://") || check.url.starts_with("https://")) {
            return Err(PluginError::new(
                "bad-params",
                format!("check url `{}` is not an http(s) URL", check.url),
            ));
        }
        if check.method.trim().is_empty() {
            return Err(PluginError::new(
                "bad-params",
                format!("check `{}` has an empty method", check.url),
            ));
        }
    }
    if let Some(log) = &params.log {
        if log.pattern.is_empty() {
            return Err(PluginError::new("bad-params", "log.pattern is empty"));
        }
        if log.tail_lines == 0 {
            return Err(PluginError::new(
                "bad-params",
                "log.tail_lines must be at least 1",
            ));
        }
    }
    Ok(())
}

fn status_word(status: Status) -> &'static str {
    match status {
        Status::Up => "up",
        Status::Slow => "slow",
        Status::Down => "down",
        Status::Unknown => "unknown",
    }
}

/// Calls one URL and classifies the answer.
fn run_check(check: &CheckParams) -> CheckResult {
    let name = check.name.clone().unwrap_or_else(|| check.url.clone());
    let mut request = HttpRequest::new(check.method.to_ascii_uppercase(), check.url.clone())
        .timeout_ms(check.timeout_ms);
    for (name, value) in &check.headers {
        request = request.header(name.clone(), value.clone());
    }
    if let Some(body) = &check.body {
        if !check
            .headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("content-type"))
        {
            request = request.header("content-type", "application/json");
        }
        request = request.body(body.clone().into_bytes());
    }

    let started = host::now();
    let response = request.send();
    let latency_ms = host::now().saturating_sub(started);

    let (status, http_status, detail) = match response {
        Ok(response) => {
            let expected = match &check.expect_status {
                Some(list) => list.contains(&response.status),
                None => (200..400).contains(&response.status),
            };
            if !expected {
                (
                    Status::Down,
                    Some(response.status),
                    format!("HTTP {}", response.status),
                )
            } else {
                match check.slow_ms {
                    Some(slow_ms) if latency_ms > slow_ms => (
                        Status::Slow,
                        Some(response.status),
                        format!(
                            "HTTP {} in {latency_ms} ms (slower than {slow_ms} ms)",
                            response.status
                        ),
                    ),
                    _ => (
                        Status::Up,
                        Some(response.status),
                        format!("HTTP {} in {latency_ms} ms", response.status),
                    ),
                }
            }
        }
        Err(HostError::Timeout(_)) => (
            Status::Down,
            None,
            format!("timed out after {} ms", check.timeout_ms),
        ),
        Err(HostError::Failed(message)) => (Status::Down, None, message),
        Err(HostError::Denied(message)) => {
            (Status::Unknown, None, format!("not allowed: {message}"))
        }
        Err(HostError::Invalid(message)) => {
            (Status::Unknown, None, format!("invalid request: {message}"))
        }
    };

    CheckResult {
        name,
        url: check.url.clone(),
        status,
        http_status,
        latency_ms,
        detail,
    }
}

/// Counts the lines containing the pattern among the last `tail_lines`
/// lines of the log, reading only the end of the file.
fn count_log(log: &LogParams) -> LogResult {
    let max_bytes = (u64::from(log.tail_lines) * BYTES_PER_LINE).min(MAX_LOG_BYTES);
    match host::read_file(&log.path, max_bytes, true) {
        Ok(bytes) => {
            let (lines, matches) = tail_matches(&bytes, max_bytes, log.tail_lines, &log.pattern);
            LogResult {
                path: log.path.clone(),
                lines,
                matches: Some(matches),
                error: None,
            }
        }
        Err(e) => LogResult {
            path: log.path.clone(),
            lines: 0,
            matches: None,
            error: Some(e.message().to_string()),
        },
    }
}

/// Given the last `max_bytes` (or fewer) bytes of a file, returns how many of
/// its last `tail_lines` lines were looked at and how many contain `pattern`.
///
/// When the read was cut at `max_bytes`, its first line is probably partial
/// and is dropped, as `tail` would never show half a line.
fn tail_matches(bytes: &[u8], max_bytes: u64, tail_lines: u32, pattern: &str) -> (usize, usize) {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    let truncated = u64::try_from(bytes.len()).unwrap_or(u64::MAX) >= max_bytes;
    if truncated && !lines.is_empty() {
        lines.remove(0);
    }
    let wanted = usize::try_from(tail_lines).unwrap_or(usize::MAX);
    let start = lines.len().saturating_sub(wanted);
    let tail = &lines[start..];
    let matches = tail.iter().filter(|line| line.contains(pattern)).count();
    (tail.len(), matches)
}

/// How many checks ended each way.
struct Counts {
    up: usize,
    slow: usize,
    down: usize,
    unknown: usize,
}

fn summary(counts: &Counts, log: Option<&LogResult>, log_params: Option<&LogParams>) -> String {
    let mut parts = vec![format!("{} up", counts.up)];
    for (n, word) in [
        (counts.slow, "slow"),
        (counts.down, "down"),
        (counts.unknown, "not checked"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {word}"));
        }
    }
    let mut summary = parts.join(", ");
    if let (Some(log), Some(params)) = (log, log_params) {
        match log.matches {
            Some(matches) => summary.push_str(&format!(
                "; {matches} {} lines in last {}",
                params.pattern, log.lines
            )),
            None => summary.push_str(&format!("; {} unreadable", log.path)),
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_matches_in_the_tail_only() {
        let text = b"ERROR a\nok\nERROR b\nok\nERROR c\n";
        assert_eq!(tail_matches(text, 1024, 2, "ERROR"), (2, 1));
        assert_eq!(tail_matches(text, 1024, 100, "ERROR"), (5, 3));
    }

    #[test]
    fn drops_a_partial_first_line_when_cut() {
        let text = b"ROR partial\nERROR whole\n";
        let len = u64::try_from(text.len()).unwrap_or(0);
        assert_eq!(tail_matches(text, len, 100, "ERROR"), (1, 1));
    }
}
