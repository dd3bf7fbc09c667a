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
//! What is redacted, exactly, within one piece of text (one response body,
//! one program's output, one log message or event):
//!
//! * the value itself;
//! * its JSON-escaped forms (quotes, backslashes and control characters
//!   escaped; also `\/` for `/` and `\uXXXX` for non-ASCII);
//! * its percent-encoded forms (RFC 3986 unreserved characters kept, hex in
//!   upper or lower case; `+` for spaces as in forms; JavaScript's
//!   `encodeURIComponent`);
//! * its base64 forms, standard and URL-safe alphabets, with and without
//!   `=` padding, whole or inside a longer base64 text (at each of the three
//!   byte alignments, e.g. `user:TOKEN` in an HTTP Basic header): the
//!   characters that encode only the secret's bytes are redacted. Inside a
//!   longer text this is done only when that is at least
//!   [`MIN_BASE64_CORE`] characters (a secret of at least 7 bytes), so that
//!   short random-looking words are not redacted by chance;
//! * any of the above split over lines: line breaks (`\n`, `\r`) inside
//!   a match are ignored, and kept after the redaction mark.
//!
//! Not redacted: other encodings (hex, gzip, a secret reversed or cut into
//! pieces with other text between them), and a value split across two
//! separate messages (two log calls, two events).
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
    #[error(
        "secret `{name}`: {} can be read by every user on this host (mode {mode:04o}): `chmod 600` it (or 640 for a group)",
        path.display()
    )]
    Exposed {
        name: String,
        path: PathBuf,
        mode: u32,
    },
}

impl SecretError {
    /// The secret's name (as in `[secrets]`).
    pub fn name(&self) -> &str {
        match self {
            SecretError::BadName(name)
            | SecretError::MissingEnv { name, .. }
            | SecretError::File { name, .. }
            | SecretError::Empty { name }
            | SecretError::Exposed { name, .. } => name,
        }
    }
}

/// A secret file other users may read (or write) is refused, as ssh
/// refuses such a private key: its value is no longer a secret.
fn check_private(name: &str, path: &std::path::Path) -> Result<(), SecretError> {
    match backout_config::exposed_mode(path) {
        Err(source) => Err(SecretError::File {
            name: name.to_string(),
            path: path.to_path_buf(),
            source,
        }),
        Ok(Some(mode)) => Err(SecretError::Exposed {
            name: name.to_string(),
            path: path.to_path_buf(),
            mode,
        }),
        Ok(None) => Ok(()),
    }
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
                SecretSource::File(path) => check_private(name, path)
                    .and_then(|()| {
                        std::fs::read_to_string(path).map_err(|source| SecretError::File {
                            name: name.clone(),
                            path: path.clone(),
                            source,
                        })
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
            for form in encoded_forms(value) {
                if !redactions.iter().any(|(known, _)| *known == form) {
                    redactions.push((form, replacement.clone()));
                }
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

    /// [`SecretStore::redact`] of text the caller owns: given back as it
    /// is when there is nothing to redact (no copy).
    pub fn redact_owned(&self, text: String) -> String {
        if self.redactions.is_empty() {
            return text;
        }
        self.redact(&text)
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
        // With line breaks, every match is found in one pass over the text
        // read without them, so a secret cut by a line break is not first
        // broken up by a shorter secret it contains.
        if input.iter().any(|&b| b == b'\n' || b == b'\r') {
            self.redact_across_lines(input)
        } else {
            self.redact_in_line(input)
        }
    }

    /// Replaces every form of every secret found whole in `input`.
    fn redact_in_line(&self, input: &[u8]) -> Vec<u8> {
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

    /// Finds the forms of every secret in `input` read with its line breaks
    /// left out, and replaces each match (line breaks and all) by its
    /// redaction mark followed by the line breaks it contained, so the text
    /// keeps its lines.
    fn redact_across_lines(&self, input: &[u8]) -> Vec<u8> {
        let is_break = |b: u8| b == b'\n' || b == b'\r';
        // The text without line breaks, and where each of its bytes was.
        let (joined, origin): (Vec<u8>, Vec<usize>) = input
            .iter()
            .enumerate()
            .filter(|(_, b)| !is_break(**b))
            .map(|(i, b)| (*b, i))
            .unzip();
        // Matches as spans of `input`, longest forms first, never overlapping.
        let mut spans: Vec<(usize, usize, &[u8])> = Vec::new();
        for (value, replacement) in self.redactions.iter() {
            let mut from = 0;
            while let Some(at) = find(&joined[from..], value) {
                let (start, end) = (from + at, from + at + value.len());
                let span = (origin[start], origin[end - 1] + 1);
                if !spans.iter().any(|(a, b, _)| span.0 < *b && *a < span.1) {
                    spans.push((span.0, span.1, replacement));
                }
                from = end;
            }
        }
        if spans.is_empty() {
            return input.to_vec();
        }
        spans.sort_by_key(|s| s.0);
        let mut out = Vec::with_capacity(input.len());
        let mut at = 0;
        for (start, end, replacement) in spans {
            out.extend_from_slice(&input[at..start]);
            out.extend_from_slice(replacement);
            out.extend(input[start..end].iter().copied().filter(|b| is_break(*b)));
            at = end;
        }
        out.extend_from_slice(&input[at..]);
        out
    }
}

/// The shortest run of base64 characters redacted inside a longer base64
/// text (a secret of 7 bytes or more gives at least this many at every
/// alignment).
pub const MIN_BASE64_CORE: usize = 8;

/// Every form of `value` that [`SecretStore::redact`] looks for: see the
/// module's documentation.
fn encoded_forms(value: &str) -> Vec<Vec<u8>> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

    let mut forms: Vec<Vec<u8>> = vec![value.as_bytes().to_vec()];
    // JSON: as serde_json escapes it; with every non-ASCII character as
    // \uXXXX (Python's default); each also with `/` escaped (PHP).
    let json = serde_json::Value::String(value.to_string()).to_string();
    let json = json[1..json.len() - 1].to_string();
    let mut ascii = String::new();
    for c in json.chars() {
        if c.is_ascii() {
            ascii.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                ascii.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    for form in [json, ascii] {
        forms.push(form.replace('/', "\\/").into_bytes());
        forms.push(form.into_bytes());
    }
    // Percent-encoding.
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    let uri_component = |b: u8| unreserved(b) || b"!'()*".contains(&b);
    forms.push(percent(value, unreserved, false, false));
    forms.push(percent(value, unreserved, true, false));
    forms.push(percent(value, unreserved, false, true));
    forms.push(percent(value, uri_component, false, false));
    // Base64, whole...
    let bytes = value.as_bytes();
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        forms.push(engine.encode(bytes).into_bytes());
    }
    // ... and inside a longer text: after `offset` bytes of anything, the
    // characters whose six bits all come from the secret.
    for offset in 0..3 {
        let mut padded = vec![0u8; offset];
        padded.extend_from_slice(bytes);
        padded.extend_from_slice(&[0, 0]);
        let (first, last) = (8 * offset, 8 * (offset + bytes.len()));
        let chars = |encoded: String| -> Vec<u8> {
            encoded
                .bytes()
                .enumerate()
                .filter(|(j, _)| 6 * j >= first && 6 * j + 6 <= last)
                .map(|(_, c)| c)
                .collect()
        };
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let core = chars(engine.encode(&padded));
            if core.len() >= MIN_BASE64_CORE {
                forms.push(core);
            }
        }
    }
    forms.retain(|f| !f.is_empty());
    forms.sort();
    forms.dedup();
    forms
}

/// `value` percent-encoded: bytes for which `keep` holds stay, a space is
/// `+` when `plus_for_space`, every other byte is `%XX` (hex in lower case
/// when `lower`).
fn percent(value: &str, keep: impl Fn(u8) -> bool, lower: bool, plus_for_space: bool) -> Vec<u8> {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if keep(b) {
            out.push(char::from(b));
        } else if b == b' ' && plus_for_space {
            out.push('+');
        } else if lower {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.into_bytes()
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

    /// The secret as the common encodings print it, each inside other text,
    /// is redacted; the test prints which form leaked.
    #[test]
    fn redacts_the_common_encodings() {
        use base64::Engine;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let secret = "p@ss/w0rd+key?&=~é";
        let s = SecretStore::from_values([("K", secret)]).expect("valid");
        let mut cases: Vec<(String, String)> = vec![
            ("plain".into(), secret.into()),
            (
                "json".into(),
                serde_json::json!({ "v": format!("a\"{secret}") }).to_string(),
            ),
            (
                "json, slashes escaped".into(),
                "p@ss\\/w0rd+key?&=~\\u00e9".into(),
            ),
            (
                "percent, upper".into(),
                "p%40ss%2Fw0rd%2Bkey%3F%26%3D~%C3%A9".into(),
            ),
            (
                "percent, lower".into(),
                "p%40ss%2fw0rd%2bkey%3f%26%3d~%c3%a9".into(),
            ),
        ];
        for prefix in ["", "u", "us", "user:"] {
            let whole = format!("{prefix}{secret} and more after it");
            cases.push((format!("base64 after {prefix:?}"), STANDARD.encode(&whole)));
            cases.push((
                format!("base64url after {prefix:?}"),
                URL_SAFE_NO_PAD.encode(&whole),
            ));
        }
        cases.push(("base64 alone, padded".into(), STANDARD.encode(secret)));
        for (what, text) in cases {
            let out = s.redact(&format!("before {text} after"));
            assert!(out.contains("[redacted:K]"), "{what}: not redacted: {out}");
            for encoded in encoded_forms(secret) {
                assert!(
                    find(out.as_bytes(), &encoded).is_none(),
                    "{what}: a form is still there: {out}"
                );
            }
        }
    }

    #[test]
    fn redacts_a_secret_split_over_lines() {
        let s = store();
        assert_eq!(
            s.redact("token: s3cr3t-\nvalue, done\n"),
            "token: [redacted:TOKEN]\n, done\n"
        );
        // Wrapped base64 (as `base64` and PEM write it, 76 or 64 columns).
        use base64::Engine;
        let long =
            SecretStore::from_values([("LONG", "a-very-long-secret-token-0123456789-abcdef")])
                .expect("valid");
        let encoded = base64::engine::general_purpose::STANDARD
            .encode("Authorization: Basic a-very-long-secret-token-0123456789-abcdef");
        let wrapped: Vec<String> = encoded
            .as_bytes()
            .chunks(16)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let out = long.redact(&wrapped.join("\r\n"));
        assert!(out.contains("[redacted:LONG]"), "{out}");
        assert_eq!(
            out.matches("\r\n").count(),
            wrapped.len() - 1,
            "lines are kept"
        );
        // Text without the secret is untouched, line breaks and all.
        assert_eq!(s.redact("s3cr3\nT-valu"), "s3cr3\nT-valu");
    }

    #[test]
    fn short_secrets_are_not_redacted_inside_unrelated_base64() {
        let s = SecretStore::from_values([("PIN", "1234")]).expect("valid");
        // "1234" in base64 is MTIzNA==; its core inside other text would be
        // a few letters, which random base64 contains by chance.
        assert_eq!(s.redact("xMTIzyz"), "xMTIzyz");
        assert_eq!(s.redact("b64 MTIzNA=="), "b64 [redacted:PIN]");
    }

    #[test]
    fn debug_never_prints_values() {
        let text = format!("{:?}", store());
        assert!(text.contains("TOKEN"));
        assert!(!text.contains("s3cr3t"));
    }

    fn private(path: &std::path::Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn a_secret_file_every_user_can_read_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").expect("write");
        let config = BTreeMap::from([("TOKEN".to_string(), SecretSource::File(file.clone()))]);
        for mode in [0o644, 0o604, 0o666] {
            private(&file, mode);
            let err = SecretStore::load(&config)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert_eq!(
                err,
                format!(
                    "secret `TOKEN`: {} can be read by every user on this host (mode {mode:04o}): `chmod 600` it (or 640 for a group)",
                    file.display()
                )
            );
            assert!(!err.contains("s3cret"));
        }
        for mode in [0o600, 0o640, 0o400] {
            private(&file, mode);
            assert!(SecretStore::load(&config).is_ok(), "{mode:o}");
        }
    }

    #[test]
    fn loads_from_env_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "  from-file\n").expect("write");
        private(&file, 0o600);
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
