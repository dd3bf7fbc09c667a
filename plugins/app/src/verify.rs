//! Is it up, is it down: health with retries, critical paths, the error log.

use backout_plugin_sdk::PluginError;
use backout_plugin_sdk::host::{self, HttpRequest};
use serde::Serialize;

use crate::params::{LogTail, Params};

/// One health answer: the status, or why there was none.
fn ask(url: &str) -> Result<u16, String> {
    HttpRequest::new("GET", url)
        .timeout_ms(5_000)
        .send()
        .map(|r| r.status)
        .map_err(|e| e.message().to_string())
}

fn pause(p: &Params) -> Result<(), PluginError> {
    let ms = u32::try_from(p.interval()?.as_millis()).unwrap_or(u32::MAX);
    host::sleep(ms).map_err(PluginError::from)
}

/// Asks `url` until it answers 2xx, at most `retries` times. Returns the
/// number of attempts.
pub fn until_healthy(p: &Params, url: &str) -> Result<u32, PluginError> {
    let tries = p.retries.max(1);
    let mut last = String::new();
    for attempt in 1..=tries {
        match ask(url) {
            Ok(status) if (200..300).contains(&status) => {
                host::log_info(&format!("{url} answers {status} (attempt {attempt})"));
                return Ok(attempt);
            }
            Ok(status) => last = format!("HTTP {status}"),
            Err(e) => last = e,
        }
        host::progress(attempt, tries, &format!("{url}: {last}"));
        if attempt < tries {
            pause(p)?;
        }
    }
    Err(PluginError::new(
        "unhealthy",
        format!("{url} is not healthy after {tries} attempts: {last}"),
    ))
}

/// Asks `url` until it stops answering 2xx (the service is down), at most
/// `retries` times. Returns the number of attempts.
pub fn until_down(p: &Params, url: &str) -> Result<u32, PluginError> {
    let tries = p.retries.max(1);
    for attempt in 1..=tries {
        match ask(url) {
            Ok(status) if (200..300).contains(&status) => {
                host::progress(attempt, tries, &format!("{url} still answers {status}"));
            }
            other => {
                let how = other.map_or_else(|e| e, |s| format!("HTTP {s}"));
                host::log_info(&format!("{url} is down: {how}"));
                return Ok(attempt);
            }
        }
        if attempt < tries {
            pause(p)?;
        }
    }
    Err(PluginError::new(
        "not-stopped",
        format!("{url} still answers 2xx after {tries} attempts: the service did not stop"),
    ))
}

#[derive(Debug, Serialize)]
pub struct PathCheck {
    pub name: String,
    pub url: String,
    pub up: bool,
    pub detail: String,
}

/// Each critical path once; all must answer 2xx.
pub fn critical_paths(p: &Params) -> (Vec<PathCheck>, bool) {
    let checks: Vec<PathCheck> = p
        .critical
        .iter()
        .map(|c| {
            let (up, detail) = match ask(&c.url) {
                Ok(s) => ((200..300).contains(&s), format!("HTTP {s}")),
                Err(e) => (false, e),
            };
            if !up {
                host::log_warn(&format!("critical path {} is down: {detail}", c.name));
            }
            PathCheck {
                name: c.name.clone(),
                url: c.url.clone(),
                up,
                detail,
            }
        })
        .collect();
    let all_up = checks.iter().all(|c| c.up);
    (checks, all_up)
}

/// Lines matching the pattern among the last `tail_lines` of the log.
pub fn log_errors(tail: &LogTail) -> Result<usize, PluginError> {
    let max = u64::from(tail.tail_lines.max(1)) * 512;
    let bytes = host::read_file(&tail.path, max, true)?;
    Ok(count_in_tail(
        &String::from_utf8_lossy(&bytes),
        tail.tail_lines as usize,
        &tail.pattern,
    ))
}

fn count_in_tail(text: &str, lines: usize, pattern: &str) -> usize {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .filter(|l| l.contains(pattern))
        .count()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_tail_is_counted() {
        let text = "ERROR a\nok\nERROR b\nERROR c\n";
        assert_eq!(super::count_in_tail(text, 2, "ERROR"), 2);
        assert_eq!(super::count_in_tail(text, 100, "ERROR"), 3);
    }
}
