//! Named secrets: filled in by the host at the boundary, redacted everywhere.
//!
//! A plugin never holds a secret's value. It writes `${secret:NAME}` in an
//! HTTP URL, header or body, or in an exec argument or environment value, and the
//! host replaces it on the way out, provided the plugin is granted `NAME`.
//! On the way back in (HTTP responses, program output) and on the way to the
//! coordinator (events, outcomes, error messages) every secret value is
//! replaced by `[redacted:NAME]`, so that a server echoing a token, or a
//! plugin logging what it was given, does not leak it.
//!
//! ```toml
//! [secrets]
//! STRIPE_SECRET_KEY = { env = "STRIPE_SECRET_KEY" }
//! CLOUDFLARE_TOKEN = { file = "/etc/backout/cloudflare.token" }  # trimmed
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

/// Where a secret's value comes from, as written in `[secrets]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SecretSource {
    /// An environment variable of the agent process.
    Env(String),
    /// A file; its content with surrounding whitespace trimmed.
    File(PathBuf),
}

/// Why a secret could not be loaded. Never contains a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret `{0}`: a name is letters, digits and `_` only")]
    BadName(String),
    #[error("secret `{name}`: environment variable `{var}` is not set (or not UTF-8)")]
    MissingEnv { name: String, var: String },
    #[error("secret `{name}`: cannot read {}: {source}", path.display())]
    File {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret `{name}`: the value is empty")]
    Empty { name: String },
}

/// The agent's secrets, loaded once at start. Cheap to clone.
///
/// Its `Debug` output lists names only.
#[derive(Clone, Default)]
pub struct SecretStore {
    /// Name to value.
    values: Arc<BTreeMap<String, String>>,
    /// (value, replacement) pairs, longest value first, so that a secret
    /// that contains another is redacted whole.
    redactions: Arc<Vec<(Vec<u8>, Vec<u8>)>>,
}

impl fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretStore")
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why `${secret:NAME}` could not be filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubstituteError {
    /// The plugin is not granted this secret.
    NotGranted(String),
    /// Granted, but this agent has no such secret configured.
    Missing(String),
}

const OPEN: &[u8] = b"${secret:";

impl SecretStore {
    /// A store with no secrets.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Loads every secret of the `[secrets]` table now; the first that cannot
    /// be read is an error.
    pub fn load(config: &BTreeMap<String, SecretSource>) -> Result<Self, SecretError> {
        let mut values = BTreeMap::new();
        for (name, source) in config {
            if !valid_name(name) {
                return Err(SecretError::BadName(name.clone()));
            }
            let value = match source {
                SecretSource::Env(var) => {
                    std::env::var(var).map_err(|_| SecretError::MissingEnv {
                        name: name.clone(),
                        var: var.clone(),
                    })?
                }
                SecretSource::File(path) => std::fs::read_to_string(path)
                    .map_err(|source| SecretError::File {
                        name: name.clone(),
                        path: path.clone(),
                        source,
                    })?
                    .trim()
                    .to_string(),
            };
            values.insert(name.clone(), value);
        }
        Self::from_values(values)
    }

    /// A store from names and values (tests, or values obtained elsewhere).
    pub fn from_values<I, N, V>(values: I) -> Result<Self, SecretError>
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<String>,
        V: Into<String>,
    {
        let mut map = BTreeMap::new();
        for (name, value) in values {
            let (name, value) = (name.into(), value.into());
            if !valid_name(&name) {
                return Err(SecretError::BadName(name));
            }
            if value.is_empty() {
                return Err(SecretError::Empty { name });
            }
            map.insert(name, value);
        }
        let mut redactions: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for (name, value) in &map {
            let replacement = format!("[redacted:{name}]").into_bytes();
            redactions.push((value.as_bytes().to_vec(), replacement.clone()));
            // Inside JSON text a value with quotes, backslashes or control
            // characters appears escaped; redact that form too.
            let escaped = serde_json::Value::String(value.clone()).to_string();
            let escaped = &escaped[1..escaped.len() - 1];
            if escaped != value {
                redactions.push((escaped.as_bytes().to_vec(), replacement));
            }
        }
        redactions.sort_by_key(|r| std::cmp::Reverse(r.0.len()));
        Ok(SecretStore {
            values: Arc::new(map),
            redactions: Arc::new(redactions),
        })
    }

    /// Whether a secret of this name is configured.
    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// The configured names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// Replaces every `${secret:NAME}` in `text` with the value of `NAME`,
    /// if `granted(NAME)`; text without the marker is returned as is.
    pub fn substitute(
        &self,
        text: &str,
        granted: impl Fn(&str) -> bool,
    ) -> Result<String, SubstituteError> {
        let bytes = self.substitute_bytes(text.as_bytes(), granted)?;
        // Only valid UTF-8 was spliced into valid UTF-8.
        Ok(String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    /// `substitute` over bytes (a request body).
    pub fn substitute_bytes(
        &self,
        input: &[u8],
        granted: impl Fn(&str) -> bool,
    ) -> Result<Vec<u8>, SubstituteError> {
        let mut out = Vec::with_capacity(input.len());
        let mut rest = input;
        while let Some(start) = find(rest, OPEN) {
            let after = &rest[start + OPEN.len()..];
            let Some(end) = after.iter().position(|&b| b == b'}') else {
                break;
            };
            let name_bytes = &after[..end];
            let name = match std::str::from_utf8(name_bytes) {
                Ok(name) if valid_name(name) => name,
                // Not a well-formed marker: keep it literally and go on.
                _ => {
                    out.extend_from_slice(&rest[..start + OPEN.len()]);
                    rest = after;
                    continue;
                }
            };
            if !granted(name) {
                return Err(SubstituteError::NotGranted(name.to_string()));
            }
            let Some(value) = self.values.get(name) else {
                return Err(SubstituteError::Missing(name.to_string()));
            };
            out.extend_from_slice(&rest[..start]);
            out.extend_from_slice(value.as_bytes());
            rest = &after[end + 1..];
        }
        out.extend_from_slice(rest);
        Ok(out)
    }

    /// Whether `text` mentions `${secret:…}` at all.
    pub fn mentions_secret(text: &[u8]) -> bool {
        find(text, OPEN).is_some()
    }

    /// Replaces every secret value in `text` with `[redacted:NAME]`.
    pub fn redact(&self, text: &str) -> String {
        if self.redactions.is_empty() {
            return text.to_string();
        }
        let bytes = self.redact_bytes(text.as_bytes());
        // Replacing whole UTF-8 strings by ASCII keeps the text valid UTF-8.
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// `redact` over bytes (a response body, program output).
    pub fn redact_bytes(&self, input: &[u8]) -> Vec<u8> {
        let mut current = input.to_vec();
        for (value, replacement) in self.redactions.iter() {
            if find(&current, value).is_none() {
                continue;
            }
            let mut out = Vec::with_capacity(current.len());
            let mut rest = current.as_slice();
            while let Some(at) = find(rest, value) {
                out.extend_from_slice(&rest[..at]);
                out.extend_from_slice(replacement);
                rest = &rest[at + value.len()..];
            }
            out.extend_from_slice(rest);
            current = out;
        }
        current
    }
}

/// A secret name: ASCII letters, digits and `_`, not empty.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The first position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn store() -> SecretStore {
        SecretStore::from_values([("TOKEN", "s3cr3t-value"), ("SHORT", "s3cr3t")]).expect("valid")
    }

    #[test]
    fn substitutes_granted_secrets_only() {
        let s = store();
        let all = |_: &str| true;
        assert_eq!(
            s.substitute("Bearer ${secret:TOKEN}!", all),
            Ok("Bearer s3cr3t-value!".to_string())
        );
        assert_eq!(s.substitute("no marker", all), Ok("no marker".to_string()));
        assert_eq!(
            s.substitute("${secret:TOKEN}", |n| n == "SHORT"),
            Err(SubstituteError::NotGranted("TOKEN".into()))
        );
        assert_eq!(
            s.substitute("${secret:NOPE}", all),
            Err(SubstituteError::Missing("NOPE".into()))
        );
        // Malformed markers are left alone.
        assert_eq!(
            s.substitute("${secret:a b}", all),
            Ok("${secret:a b}".to_string())
        );
        assert_eq!(
            s.substitute("${secret:TOKEN", all),
            Ok("${secret:TOKEN".to_string())
        );
    }

    #[test]
    fn redacts_longest_first() {
        let s = store();
        assert_eq!(
            s.redact("a s3cr3t-value b s3cr3t c"),
            "a [redacted:TOKEN] b [redacted:SHORT] c"
        );
        assert_eq!(s.redact("nothing here"), "nothing here");
        assert_eq!(
            s.redact_bytes(b"\xffs3cr3t\xff"),
            b"\xff[redacted:SHORT]\xff".to_vec()
        );
    }

    #[test]
    fn redacts_the_json_escaped_form() {
        let s = SecretStore::from_values([("Q", "a\"b")]).expect("valid");
        let json = serde_json::json!({ "v": "x a\"b y" }).to_string();
        assert_eq!(s.redact(&json), r#"{"v":"x [redacted:Q] y"}"#);
    }

    #[test]
    fn debug_never_prints_values() {
        let text = format!("{:?}", store());
        assert!(text.contains("TOKEN"));
        assert!(!text.contains("s3cr3t"));
    }

    #[test]
    fn loads_from_env_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "  from-file\n").expect("write");
        let mut config = BTreeMap::new();
        config.insert("FROM_FILE".to_string(), SecretSource::File(file));
        // PATH is always set in a test process.
        config.insert("FROM_ENV".to_string(), SecretSource::Env("PATH".into()));
        let s = SecretStore::load(&config).expect("loads");
        assert_eq!(s.redact("x from-file y"), "x [redacted:FROM_FILE] y");
        assert!(s.contains("FROM_ENV"));

        let mut missing = BTreeMap::new();
        missing.insert(
            "GONE".to_string(),
            SecretSource::Env("BACKOUT_TEST_SURELY_UNSET_VARIABLE".into()),
        );
        assert!(matches!(
            SecretStore::load(&missing),
            Err(SecretError::MissingEnv { .. })
        ));
    }

    #[test]
    fn reads_the_secrets_table() {
        let config: BTreeMap<String, SecretSource> = toml::from_str(
            r#"
            A = { env = "VAR" }
            B = { file = "/etc/token" }
            "#,
        )
        .expect("parses");
        assert_eq!(config["A"], SecretSource::Env("VAR".into()));
        assert_eq!(config["B"], SecretSource::File("/etc/token".into()));
    }
}
