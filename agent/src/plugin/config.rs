//! What the agent's configuration says about plugins: where each one is,
//! what it is granted, and the limits of one step.
//!
//! ```toml
//! [limits]                              # agent-wide defaults for every step
//! deadline = "60s"
//! memory = "128MiB"
//! output = "1MiB"
//!
//! [[plugin]]
//! name = "health"
//! path = "plugins/health.wasm"
//! [plugin.grants]
//! programs = ["/usr/bin/git", "sh"]     # exact `program` strings it may run
//! dry_run_programs = ["/usr/bin/git log"] # program + leading args it may run in dry-run
//! urls = ["http://127.0.0.1:8080/"]     # URL prefixes it may call
//! read = ["/var/log/samia-app"]         # files or directories it may read
//! write = ["/opt/samia-tarot/config"]   # files or directories it may write
//! secrets = ["STRIPE_SECRET_KEY"]       # secrets it may have filled in
//! [plugin.limits]                       # optional; overrides [limits] for this plugin
//! deadline = "30s"
//! memory = "64MiB"
//! output = "1MiB"
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Default wall-clock time one step may take.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);
/// Default cap on one linear memory of a plugin instance.
pub const DEFAULT_MEMORY: u64 = 128 * 1024 * 1024;
/// Default cap on what one step may log, emit and return, in bytes.
pub const DEFAULT_OUTPUT: u64 = 1024 * 1024;
/// The longest deadline a step may be given; a rollback step that needs
/// more is a plan problem.
pub const MAX_DEADLINE: Duration = Duration::from_secs(24 * 60 * 60);
/// A wasm32 linear memory cannot be larger than 4 GiB.
pub const MAX_MEMORY: u64 = 4 * 1024 * 1024 * 1024;

/// One `[[plugin]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The name commands use; grants and limits are attached to it.
    pub name: String,
    /// The component file. The agent's configuration loader makes it
    /// absolute (relative to the configuration file) before the host sees it.
    pub path: PathBuf,
    /// What the plugin may do through the host. Nothing by default.
    #[serde(default)]
    pub grants: Grants,
    /// Overrides of the agent-wide step limits.
    #[serde(default)]
    pub limits: Option<StepLimitsConfig>,
}

/// Capabilities granted to one plugin. Everything not listed is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Exact strings the plugin may pass as `program` to `exec`: an absolute
    /// path, or a bare name looked up in the agent's PATH.
    #[serde(default)]
    pub programs: Vec<String>,
    /// Commands the plugin may still run in dry-run, written as the program
    /// followed by the leading arguments it must be called with, separated by
    /// spaces: `"/usr/bin/git log"` allows `git log …` but not `git checkout`.
    /// Each program must also be in `programs`. List only read-only commands.
    #[serde(default)]
    pub dry_run_programs: Vec<String>,
    /// URL prefixes for `http`: same scheme, host and port, and a path that
    /// starts with the prefix's path on a segment boundary.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Absolute files or directories the plugin may read (and use as `cwd`).
    #[serde(default)]
    pub read: Vec<PathBuf>,
    /// Absolute files or directories the plugin may write (and use as `cwd`).
    #[serde(default)]
    pub write: Vec<PathBuf>,
    /// Names of the secrets the host may fill in for this plugin.
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// The `[limits]` table (agent-wide) or `[plugin.limits]` (per plugin), as
/// written: every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepLimitsConfig {
    /// Wall-clock time for one step, e.g. `"60s"`, `"2m"`.
    #[serde(default, deserialize_with = "optional_duration")]
    pub deadline: Option<Duration>,
    /// Cap on each linear memory of the instance, e.g. `"128MiB"`.
    #[serde(default)]
    pub memory: Option<ByteSize>,
    /// Cap on the bytes a step may log, emit and return, e.g. `"1MiB"`.
    #[serde(default)]
    pub output: Option<ByteSize>,
}

/// Limits of one step, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepLimits {
    /// Wall-clock time the step may take, host calls included.
    pub deadline: Duration,
    /// Cap on each linear memory of the instance, in bytes.
    pub memory: u64,
    /// Cap on the bytes logged, emitted and returned by the step.
    pub output: u64,
}

impl Default for StepLimits {
    fn default() -> Self {
        StepLimits {
            deadline: DEFAULT_DEADLINE,
            memory: DEFAULT_MEMORY,
            output: DEFAULT_OUTPUT,
        }
    }
}

/// A limit that makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    #[error("`deadline` must be above zero")]
    ZeroDeadline,
    #[error("`deadline` cannot exceed 24h, got {0}")]
    DeadlineTooLong(String),
    #[error("`memory` must be at least 1MiB, got {0} bytes")]
    MemoryTooSmall(u64),
    #[error("`memory` cannot exceed 4GiB (a wasm32 memory's size), got {0} bytes")]
    MemoryTooLarge(u64),
    #[error("`output` must be above zero")]
    ZeroOutput,
}

impl StepLimitsConfig {
    /// The agent-wide limits: what is written, the built-in defaults for the
    /// rest.
    pub fn resolve(&self) -> Result<StepLimits, LimitsError> {
        self.over(&StepLimits::default())
    }

    /// These limits laid over `base` (a plugin's `[plugin.limits]` over the
    /// agent's `[limits]`).
    pub fn over(&self, base: &StepLimits) -> Result<StepLimits, LimitsError> {
        let limits = StepLimits {
            deadline: self.deadline.unwrap_or(base.deadline),
            memory: self.memory.map_or(base.memory, |b| b.0),
            output: self.output.map_or(base.output, |b| b.0),
        };
        limits.validate()?;
        Ok(limits)
    }
}

impl StepLimits {
    /// Checks that the limits can be enforced.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.deadline.is_zero() {
            return Err(LimitsError::ZeroDeadline);
        }
        if self.deadline > MAX_DEADLINE {
            return Err(LimitsError::DeadlineTooLong(duration_text(self.deadline)));
        }
        if self.memory < 1024 * 1024 {
            return Err(LimitsError::MemoryTooSmall(self.memory));
        }
        if self.memory > MAX_MEMORY {
            return Err(LimitsError::MemoryTooLarge(self.memory));
        }
        if self.output == 0 {
            return Err(LimitsError::ZeroOutput);
        }
        Ok(())
    }
}

/// A size in bytes, written as a plain integer or as a number and a unit:
/// `B`, `KiB`, `MiB`, `GiB` (powers of 1024) or `KB`, `MB`, `GB` (powers of
/// 1000), case-insensitive, optionally separated by a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `"64MiB"`, `"512 KiB"`, `"1000"`...
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        if number.is_empty() {
            return Err(format!(
                "`{text}` is not a size: it must start with a number"
            ));
        }
        let number: u64 = number
            .parse()
            .map_err(|e| format!("`{text}` is not a size: {e}"))?;
        let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            other => {
                return Err(format!(
                    "`{text}` is not a size: unknown unit `{other}` (use B, KiB, MiB, GiB, KB, MB or GB)"
                ));
            }
        };
        number
            .checked_mul(multiplier)
            .map(ByteSize)
            .ok_or_else(|| format!("`{text}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_bytes(self.0, f)
    }
}

/// Writes a byte count the way people write it in the config: `64MiB`,
/// `512KiB`, or plain bytes when it is not a whole number of KiB.
pub(crate) fn fmt_bytes(bytes: u64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return write!(f, "{}{unit}", bytes / size);
        }
    }
    write!(f, "{bytes} bytes")
}

/// `fmt_bytes` as a string.
pub(crate) fn bytes_text(bytes: u64) -> String {
    ByteSize(bytes).to_string()
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(text) => ByteSize::parse(&text).map_err(serde::de::Error::custom),
        }
    }
}

/// Reads `"60s"`, `"2m 30s"`, `"500ms"` with humantime.
fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration: {e}")))
}

/// Writes a duration the way the config writes it (`2s`, `1m 30s`).
pub(crate) fn duration_text(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(ByteSize::parse("64MiB"), Ok(ByteSize(64 << 20)));
        assert_eq!(ByteSize::parse("512KiB"), Ok(ByteSize(512 << 10)));
        assert_eq!(ByteSize::parse("512 kib"), Ok(ByteSize(512 << 10)));
        assert_eq!(ByteSize::parse("1GiB"), Ok(ByteSize(1 << 30)));
        assert_eq!(ByteSize::parse("1000"), Ok(ByteSize(1000)));
        assert_eq!(ByteSize::parse("10B"), Ok(ByteSize(10)));
        assert_eq!(ByteSize::parse("2MB"), Ok(ByteSize(2_000_000)));
        assert!(ByteSize::parse("MiB").is_err());
        assert!(ByteSize::parse("1.5MiB").is_err());
        assert!(ByteSize::parse("12 parsecs").is_err());
        assert!(ByteSize::parse("-1").is_err());
        assert!(ByteSize::parse("99999999999999999999GiB").is_err());
    }

    #[test]
    fn displays_sizes() {
        assert_eq!(ByteSize(64 << 20).to_string(), "64MiB");
        assert_eq!(ByteSize(1536).to_string(), "1536 bytes");
        assert_eq!(ByteSize(2048).to_string(), "2KiB");
        assert_eq!(ByteSize(100).to_string(), "100 bytes");
    }

    #[test]
    fn reads_the_plugin_table() {
        let text = r#"
            name = "health"
            path = "/opt/backout/plugins/health.wasm"
            [grants]
            programs = ["/usr/bin/git", "sh"]
            dry_run_programs = ["/usr/bin/git log"]
            urls = ["http://127.0.0.1:8080/"]
            read = ["/var/log/samia-app"]
            write = ["/opt/samia-tarot/config"]
            secrets = ["STRIPE_SECRET_KEY"]
            [limits]
            deadline = "30s"
            memory = "64MiB"
            output = 1048576
        "#;
        let config: PluginConfig = toml::from_str(text).expect("parses");
        assert_eq!(config.grants.programs, ["/usr/bin/git", "sh"]);
        let limits = config.limits.expect("limits");
        assert_eq!(limits.deadline, Some(Duration::from_secs(30)));
        assert_eq!(limits.memory, Some(ByteSize(64 << 20)));
        assert_eq!(limits.output, Some(ByteSize(1 << 20)));
        let resolved = limits.over(&StepLimits::default()).expect("valid");
        assert_eq!(resolved.memory, 64 << 20);
    }

    #[test]
    fn rejects_unknown_fields() {
        let text = r#"
            name = "health"
            path = "/x.wasm"
            [grants]
            program = ["/bin/sh"]
        "#;
        let error = toml::from_str::<PluginConfig>(text).expect_err("typo refused");
        assert!(error.to_string().contains("program"), "{error}");
    }

    #[test]
    fn limits_default_and_validate() {
        let limits = StepLimitsConfig::default()
            .resolve()
            .expect("defaults are valid");
        assert_eq!(limits, StepLimits::default());
        let zero = StepLimitsConfig {
            deadline: Some(Duration::ZERO),
            ..Default::default()
        };
        assert_eq!(zero.resolve(), Err(LimitsError::ZeroDeadline));
        let long = StepLimitsConfig {
            deadline: Some(Duration::from_secs(100 * 24 * 3600)),
            ..Default::default()
        };
        assert!(matches!(
            long.resolve(),
            Err(LimitsError::DeadlineTooLong(_))
        ));
        let huge = StepLimitsConfig {
            memory: Some(ByteSize(8 << 30)),
            ..Default::default()
        };
        assert!(matches!(
            huge.resolve(),
            Err(LimitsError::MemoryTooLarge(_))
        ));
        let bad: Result<StepLimitsConfig, _> = toml::from_str(r#"deadline = "soon""#);
        assert!(bad.is_err());
    }
}
