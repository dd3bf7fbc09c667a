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
    // A whole table (`limits`, `plugin[1]`): the line of its header.
    let table: Vec<&str> = segments.iter().map(|(n, _)| *n).collect();
    let table = table.join(".");
    let occurrence = segments.last().and_then(|(_, i)| *i).unwrap_or(0);
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| header_of(l).as_deref() == Some(table.as_str()))
        .nth(occurrence)
        .map(|(i, _)| i + 1)
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
        let (line, column, mut field) = match e.span() {
            Some(span) => locate(text, span.start),
            None => (0, 0, None),
        };
        let mut message = e.message().trim().to_string();
        // "missing field `key`" is reported at the table it belongs in:
        // name the field as `table.key` (or `key` at the top level), never
        // the key that happens to be on that line.
        if let Some(missing) = backticked_after(&message, "missing field `") {
            let table = e
                .span()
                .filter(|span| span.start > 0)
                .and_then(|span| table_header_at(text, span.start));
            field = Some(match table {
                Some(table) => format!("{table}.{missing}"),
                None => missing.to_string(),
            });
            message = if text.lines().all(|l| {
                let l = l.trim();
                l.is_empty() || l.starts_with('#')
            }) {
                format!("the file is empty: `{missing}` is required (and so may be others)")
            } else {
                format!("missing: `{missing}` is required here")
            };
        } else if let Some(unknown) = backticked_after(&message, "unknown field `")
            && let Some(near) = closest(unknown, &expected_names(&message))
        {
            message = format!("{message} (did you mean `{near}`?)");
        }
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            field: field.map(|f| format!("field `{f}`: ")).unwrap_or_default(),
            message: plain_types(&message),
        }
    })
}

/// The text between `prefix` and the next backtick in `message`.
fn backticked_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    rest.split_once('`').map(|(name, _)| name)
}

/// The names serde lists after "expected one of" (or "expected `x`").
fn expected_names(message: &str) -> Vec<&str> {
    let Some((_, list)) = message.split_once("expected ") else {
        return Vec::new();
    };
    list.split('`')
        .skip(1)
        .step_by(2)
        .filter(|name| !name.is_empty())
        .collect()
}

/// The name in `names` nearest to `word` (edit distance at most 2, or
/// `word` a prefix or suffix of it): a likely misspelling.
fn closest<'a>(word: &str, names: &[&'a str]) -> Option<&'a str> {
    let word_lower = word.to_ascii_lowercase();
    names
        .iter()
        .map(|name| {
            (
                edit_distance(&word_lower, &name.to_ascii_lowercase()),
                *name,
            )
        })
        .filter(|(distance, name)| {
            *distance <= 2.max(word.len() / 4)
                || (word.len() >= 3 && (name.starts_with(word) || name.ends_with(word)))
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

/// Levenshtein distance between two short strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// serde's Rust type names said for people: "expected u64" becomes
/// "expected a whole number (u64, not quoted)".
fn plain_types(message: &str) -> String {
    let mut out = message.to_string();
    for ty in ["u8", "u16", "u32", "u64", "usize", "i32", "i64"] {
        let said = format!("expected {ty}");
        if out.ends_with(&said) {
            out = format!("{out} (a whole number, not quoted)");
        }
    }
    if out.ends_with("expected f64") {
        out.push_str(" (a number, not quoted)");
    }
    if out == "invalid type: map, expected a sequence" {
        out.push_str(" (a list of tables: write `[[name]]` before each entry, not `[name]`)");
    } else if out.ends_with("expected a sequence") {
        out.push_str(" (a list in brackets, like [\"a\", \"b\"])");
    }
    out
}

/// The name of the `[table]` or `[[table]]` whose header is on the line
/// holding byte `offset`, if that line is a header.
fn table_header_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    line.starts_with('[').then(|| {
        line.trim_start_matches('[')
            .split(']')
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
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
/// The mode of a secret file every user on the host may read or write
/// (`Some(mode)`), which a service refuses as ssh refuses such a private
/// key; `None` when only its owner (and group) may.
pub fn exposed_mode(path: &Path) -> std::io::Result<Option<u32>> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    Ok((mode & 0o007 != 0).then_some(mode))
}

/// What to say of a secret file [`exposed_mode`] found exposed.
pub fn exposed_message(path: &Path, mode: u32) -> String {
    format!(
        "{} can be read by every user on this host (mode {mode:04o}): `chmod 600` it (or 640 for a group)",
        path.display()
    )
}

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
    d.deserialize_str(DurationVisitor)
}

/// Like [`duration`], for `Option<Duration>` fields (use with `default`).
pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "duration")] Duration);
    Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(t)| t))
}

/// A duration in a string; a bare number is refused saying how to write
/// it ("10" has no unit).
struct DurationVisitor;

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a duration in quotes, like \"30s\", \"15m\" or \"250ms\"")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Duration, E> {
        parse_duration(text).map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "`{n}` has no unit: write a duration in quotes, like \"{n}s\" or \"{n}ms\""
        )))
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "`{n}` has no unit: write a duration in quotes, like \"{n}s\" or \"{n}ms\""
        )))
    }
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
        // A whole table is found at its header.
        assert_eq!(find_field_line(text, "assess"), Some(9));
        assert_eq!(find_field_line(text, "trigger[1]"), Some(4));
        assert_eq!(find_field_line(text, "signals.error_rate"), Some(7));
    }

    #[test]
    fn a_missing_field_is_named_with_its_table() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Tls {
            ca: String,
            key: String,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct WithTable {
            listen: String,
            command_key: String,
            tls: Tls,
        }
        // Line 1 holds another key: the error must not name it.
        let err = parse::<WithTable>(
            Path::new("c.toml"),
            "listen = \"x\"\n[tls]\nca = \"a\"\nkey = \"k\"\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "c.toml:1:1: field `command_key`: missing: `command_key` is required here"
        );
        let err = parse::<WithTable>(
            Path::new("c.toml"),
            "listen = \"x\"\ncommand_key = \"k\"\n[tls]\nca = \"a\"\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "c.toml:3:1: field `tls.key`: missing: `key` is required here"
        );
    }

    #[test]
    fn an_empty_file_says_it_is_empty() {
        let err = parse::<Sample>(Path::new("c.toml"), "# nothing yet\n\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "c.toml:1:1: field `listen`: the file is empty: `listen` is required (and so may be others)"
        );
    }

    #[test]
    fn a_misspelt_key_gets_a_suggestion() {
        let text = "listen = \"x\"\nttl = \"5s\"\nlisen = 1\n";
        let err = parse::<Sample>(Path::new("c.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.toml:3:1: field `lisen`: unknown field `lisen`"),
            "{err}"
        );
        assert!(err.ends_with("(did you mean `listen`?)"), "{err}");
        // Nothing near: no suggestion.
        let text = "listen = \"x\"\nttl = \"5s\"\ncolour = 1\n";
        let err = parse::<Sample>(Path::new("c.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("did you mean"), "{err}");
        assert_eq!(
            closest("stat_dir", &["listen", "state_dir"]),
            Some("state_dir")
        );
        assert_eq!(
            closest("statedir", &["listen", "state_dir"]),
            Some("state_dir")
        );
    }

    #[test]
    fn a_bare_number_for_a_duration_says_to_add_a_unit() {
        let err = parse::<Sample>(Path::new("c.toml"), "listen = \"x\"\nttl = 10\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:2:7: field `ttl`:"), "{err}");
        assert!(
            err.contains("`10` has no unit: write a duration in quotes, like \"10s\""),
            "{err}"
        );
        let err = parse::<Sample>(Path::new("c.toml"), "listen = \"x\"\nttl = true\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected a duration in quotes, like \"30s\""),
            "{err}"
        );
        #[derive(Debug, Deserialize)]
        struct Opt {
            #[serde(default, deserialize_with = "opt_duration")]
            slow: Option<Duration>,
        }
        let ok: Opt = parse(Path::new("c.toml"), "slow = \"250ms\"\n").unwrap();
        assert_eq!(ok.slow, Some(Duration::from_millis(250)));
        let none: Opt = parse(Path::new("c.toml"), "").unwrap();
        assert_eq!(none.slow, None);
        let err = parse::<Opt>(Path::new("c.toml"), "slow = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.toml:1:8: field `slow`: `soon` is not a duration"),
            "{err}"
        );
    }

    #[test]
    fn a_list_written_as_one_value_or_one_table_says_how_to_write_it() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Lists {
            #[serde(default)]
            urls: Vec<String>,
            #[serde(default)]
            plugin: Vec<Sample>,
        }
        let err = parse::<Lists>(Path::new("c.toml"), "urls = \"http://h/\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:1:8: field `urls`:"), "{err}");
        assert!(
            err.ends_with("expected a sequence (a list in brackets, like [\"a\", \"b\"])"),
            "{err}"
        );
        let err = parse::<Lists>(
            Path::new("c.toml"),
            "[plugin]\nlisten = \"x\"\nttl = \"1s\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("c.toml:1:1: field `plugin`:"), "{err}");
        assert!(err.contains("write `[[name]]` before each entry"), "{err}");
    }

    #[test]
    fn a_quoted_number_says_a_whole_number() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Every {
            every: u64,
        }
        let err = parse::<Every>(Path::new("c.toml"), "every = \"1000\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("expected u64 (a whole number, not quoted)"),
            "{err}"
        );
    }

    #[test]
    fn durations_parse_in_human_units() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("soon").is_err());
    }
}
