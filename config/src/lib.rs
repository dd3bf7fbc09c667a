//! Loading Backout's TOML files (coordinator and agent configuration, plans).
//! With its features, also the set-up both binaries share: [`logging`] (the
//! `logging` feature) and opening SQLite files ([`sqlite`], the `sqlite`
//! feature), readiness and watchdog notices to systemd ([`service`], the
//! `service` feature), and shell completions and man pages ([`assets`], the
//! `assets` feature). `plan/`, the pure core, uses none of them.
//!
//! Every error names the file, the line and column, and the field, because the
//! person reading it is fixing a configuration at 2 a.m. Types that use this
//! crate put `#[serde(deny_unknown_fields)]` on every table, so a typo is an
//! error and never silently ignored.

#[cfg(feature = "assets")]
pub mod assets;
#[cfg(feature = "logging")]
pub mod logging;
pub mod metrics;
pub mod otel;
#[cfg(feature = "service")]
pub mod service;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `path:line:column: field `x`: message`
    #[error("{path}:{line}:{column}: {field}{message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        /// "field `x`: " or empty when the error is not about one field.
        field: String,
        message: String,
    },
    /// A value that parsed but makes no sense (an unknown agent id, ...).
    #[error("{path}{}: field `{field}`: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        /// The line the field is on, when it can be found.
        line: Option<usize>,
        field: String,
        message: String,
    },
}

impl ConfigError {
    /// An error about `field` (a path like `trigger[2].when`) of the file at
    /// `path`; the line is found in the file when it can be read.
    pub fn invalid(path: &Path, field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let line = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| find_field_line(&text, &field));
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            field,
            message: message.into(),
        }
    }

    /// Fills in the line from `text` (for files parsed from memory).
    pub fn locate_in(self, text: &str) -> Self {
        match self {
            ConfigError::Invalid {
                path,
                line: None,
                field,
                message,
            } => ConfigError::Invalid {
                line: find_field_line(text, &field),
                path,
                field,
                message,
            },
            other => other,
        }
    }
}

/// Finds the 1-based line of a field path such as `trigger[2].when`,
/// `signals.error_rate.window` or `assess.check[0].agents` in TOML text laid
/// out the usual way (tables and arrays of tables with `key = value` lines).
/// Falls back to the line of the table; None when not even that is found.
pub fn find_field_line(text: &str, field: &str) -> Option<usize> {
    // "trigger[2]" -> ("trigger", Some(2))
    let segments: Vec<(&str, Option<usize>)> = field
        .split('.')
        .map(|seg| match seg.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse().ok()),
            None => (seg, None),
        })
        .collect();
    let lines: Vec<&str> = text.lines().collect();
    let header_of = |line: &str| -> Option<String> {
        let t = line.trim();
        t.starts_with('[').then(|| {
            t.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
    };
    let key_of = |line: &str| -> Option<String> {
        line.split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_string())
    };
    // Try the longest table prefix first.
    for k in (0..segments.len()).rev() {
        let table: Vec<&str> = segments[..k].iter().map(|(n, _)| *n).collect();
        let table = table.join(".");
        let occurrence = segments[..k].last().and_then(|(_, i)| *i).unwrap_or(0);
        let key = segments.get(k).map(|(n, _)| *n);
        let start = if k == 0 {
            Some(0)
        } else {
            lines
                .iter()
                .enumerate()
                .filter(|(_, l)| header_of(l).as_deref() == Some(table.as_str()))
                .nth(occurrence)
                .map(|(i, _)| i)
        };
        let Some(start) = start else { continue };
        let body_from = if k == 0 { 0 } else { start + 1 };
        if let Some(key) = key {
            for (i, line) in lines.iter().enumerate().skip(body_from) {
                if header_of(line).is_some() {
                    break;
                }
                if key_of(line).as_deref() == Some(key) {
                    return Some(i + 1);
                }
            }
        }
        if k > 0 {
            return Some(start + 1);
        }
    }
    None
}

/// Reads and parses a TOML file.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses TOML text that came from `path` (used in errors).
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let (line, column, field) = match e.span() {
            Some(span) => locate(text, span.start),
            None => (0, 0, None),
        };
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            field: field.map(|f| format!("field `{f}`: ")).unwrap_or_default(),
            message: e.message().trim().to_string(),
        }
    })
}

/// Turns a byte offset into a 1-based line and column, and finds the key that
/// the line assigns (`key = ...`), if any.
fn locate(text: &str, offset: usize) -> (usize, usize, Option<String>) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let line_text = text[line_start..].lines().next().unwrap_or("");
    let field = line_text
        .split_once('=')
        .map(|(key, _)| key.trim().trim_matches('"').to_string())
        .filter(|key| !key.is_empty() && !key.starts_with('['))
        .or_else(|| {
            // A table header (`[agent]`, `[[plugin]]`) names the table.
            let t = line_text.trim();
            t.starts_with('[')
                .then(|| t.trim_matches(|c| c == '[' || c == ']').to_string())
        });
    (line, column, field)
}

/// Resolves `path` against the directory of the file it was written in.
pub fn resolve(base_file: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_file
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(path)
    }
}

/// Deserialises a duration written like "30s", "15m", "1h 30m", "250ms".
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// Like [`duration`], for `Option<Duration>` fields (use with `default`).
pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    text.map(|t| parse_duration(&t).map_err(serde::de::Error::custom))
        .transpose()
}

/// Parses "30s", "15m", "1h 30m", "250ms".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration like \"30s\", \"15m\" or \"250ms\": {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        listen: String,
        #[serde(deserialize_with = "duration")]
        ttl: Duration,
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let text = "listen = \"x\"\nttl = 5\n";
        let err = parse::<Sample>(Path::new("c.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:2:"), "{err}");
        assert!(err.contains("field `ttl`"), "{err}");
    }

    #[test]
    fn unknown_fields_are_named() {
        let text = "listen = \"x\"\nttl = \"5s\"\nlisten_adress = 1\n";
        let err = parse::<Sample>(Path::new("c.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml:3:"), "{err}");
        assert!(err.contains("listen_adress"), "{err}");
    }

    #[test]
    fn field_paths_are_found_on_their_lines() {
        let text = "listen = 1\n[[trigger]]\nname = \"a\"\n[[trigger]]\nname = \"b\"\nwhen = \"x\"\n\
                    [signals.error_rate]\nwindow = \"1h\"\n[assess]\n[[assess.check]]\nagents = []\n";
        assert_eq!(find_field_line(text, "listen"), Some(1));
        assert_eq!(find_field_line(text, "trigger[1].when"), Some(6));
        assert_eq!(find_field_line(text, "trigger[1].deciders"), Some(4));
        assert_eq!(find_field_line(text, "signals.error_rate.window"), Some(8));
        assert_eq!(find_field_line(text, "assess.check[0].agents"), Some(11));
        assert_eq!(find_field_line(text, "nothing.here"), None);
    }

    #[test]
    fn durations_parse_in_human_units() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("soon").is_err());
    }
}
