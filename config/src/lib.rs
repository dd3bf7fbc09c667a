//! Loading Backout's TOML files (coordinator and agent configuration, plans).
//!
//! Every error names the file, the line and column, and the field, because the
//! person reading it is fixing a configuration at 2 a.m. Types that use this
//! crate put `#[serde(deny_unknown_fields)]` on every table, so a typo is an
//! error and never silently ignored.

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
    #[error("{path}: field `{field}`: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

impl ConfigError {
    pub fn invalid(path: &Path, field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            path: path.to_path_buf(),
            field: field.into(),
            message: message.into(),
        }
    }
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
    fn durations_parse_in_human_units() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("soon").is_err());
    }
}
