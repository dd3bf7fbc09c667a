//! Capability checks: is this plugin allowed this program, URL, path or
//! secret?
//!
//! A plugin has no ambient authority; every host call it makes is checked
//! here against the grants in the agent's configuration. The rules are
//! deliberately plain so an operator can predict them:
//!
//! * programs: the exact `program` string must be listed;
//! * URLs: same scheme, host and port as a granted prefix, and a path that
//!   equals the prefix's path or continues it after a `/` (so `/api` grants
//!   `/api/x` but not `/apix`); no user info; no encoded `/`, `\` or `.` in
//!   the path, which servers might decode into a path the prefix does not
//!   cover;
//! * paths: absolute, without `..`, under a granted file or directory both
//!   as written and after symlinks are resolved (so a symlink inside a
//!   granted directory cannot lead out of it). The resolved path is the one
//!   the host then opens. A symlink swapped between the check and the open
//!   by another process is not defended against; plugins themselves cannot
//!   create symlinks.

use std::path::{Component, Path, PathBuf};

use url::Url;

use super::config::Grants;
use super::secrets::valid_name;

/// A grant that cannot be enforced, found when the host starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct GrantError {
    pub field: &'static str,
    pub message: String,
}

fn grant_error(field: &'static str, message: impl Into<String>) -> GrantError {
    GrantError {
        field,
        message: message.into(),
    }
}

/// One plugin's grants, validated and ready to check calls against.
#[derive(Debug, Clone)]
pub(crate) struct Capabilities {
    programs: Vec<String>,
    dry_run: Vec<Vec<String>>,
    urls: Vec<UrlPrefix>,
    read: Vec<PathBuf>,
    write: Vec<PathBuf>,
    secrets: Vec<String>,
}

/// Read or write, for path checks and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
    /// Used as a working directory: under a read or a write grant.
    Cwd,
}

impl Access {
    fn verb(self) -> &'static str {
        match self {
            Access::Read => "read of",
            Access::Write => "write to",
            Access::Cwd => "working directory",
        }
    }
}

/// Why a call was refused. `Denied` becomes `host-error::denied`, `Invalid`
/// becomes `host-error::invalid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    Denied(String),
    Invalid(String),
}

impl Refusal {
    /// The same kind of refusal, with a message that names `written` (the
    /// URL as the plugin wrote it) instead of what was checked: used when
    /// the checked URL has a secret filled in.
    pub(crate) fn reworded(self, written: &str) -> Refusal {
        match self {
            Refusal::Denied(_) => Refusal::Denied(format!(
                "HTTP to `{written}` (with its secrets filled in) is not a granted URL"
            )),
            Refusal::Invalid(_) => Refusal::Invalid(format!(
                "`{written}` (with its secrets filled in) is not a valid http(s) URL"
            )),
        }
    }
}

impl Capabilities {
    /// Validates one plugin's grants.
    pub(crate) fn new(grants: &Grants) -> Result<Self, GrantError> {
        for program in &grants.programs {
            if program.trim().is_empty() || program.trim() != program {
                return Err(grant_error(
                    "grants.programs",
                    format!("`{program}` is empty or has surrounding spaces"),
                ));
            }
        }
        let mut dry_run = Vec::new();
        for entry in &grants.dry_run_programs {
            let words: Vec<String> = entry.split_whitespace().map(str::to_string).collect();
            match words.first() {
                None => return Err(grant_error("grants.dry_run_programs", "an entry is empty")),
                Some(program) if !grants.programs.contains(program) => {
                    return Err(grant_error(
                        "grants.dry_run_programs",
                        format!("`{program}` must also be listed in grants.programs"),
                    ));
                }
                Some(_) => dry_run.push(words),
            }
        }
        let urls = grants
            .urls
            .iter()
            .map(|u| UrlPrefix::parse(u).map_err(|m| grant_error("grants.urls", m)))
            .collect::<Result<Vec<_>, _>>()?;
        let read = grants
            .read
            .iter()
            .map(|p| grant_path(p).map_err(|m| grant_error("grants.read", m)))
            .collect::<Result<Vec<_>, _>>()?;
        let write = grants
            .write
            .iter()
            .map(|p| grant_path(p).map_err(|m| grant_error("grants.write", m)))
            .collect::<Result<Vec<_>, _>>()?;
        for name in &grants.secrets {
            if !valid_name(name) {
                return Err(grant_error(
                    "grants.secrets",
                    format!("`{name}` is not a secret name (letters, digits and `_`)"),
                ));
            }
        }
        Ok(Capabilities {
            programs: grants.programs.clone(),
            dry_run,
            urls,
            read,
            write,
            secrets: grants.secrets.clone(),
        })
    }

    /// Secrets granted but not configured on this agent (worth a warning).
    pub(crate) fn secrets(&self) -> &[String] {
        &self.secrets
    }

    pub(crate) fn program_granted(&self, program: &str) -> bool {
        self.programs.iter().any(|p| p == program)
    }

    /// Whether `program args…` matches a `dry_run_programs` entry: the same
    /// program, called with the entry's words as its leading arguments.
    pub(crate) fn dry_run_granted(&self, program: &str, args: &[String]) -> bool {
        self.dry_run.iter().any(|words| {
            words.first().is_some_and(|p| p == program)
                && words.len() - 1 <= args.len()
                && words[1..].iter().zip(args).all(|(w, a)| w == a)
        })
    }

    pub(crate) fn secret_granted(&self, name: &str) -> bool {
        self.secrets.iter().any(|s| s == name)
    }

    /// Parses a request URL and checks it against the URL grants.
    pub(crate) fn check_url(&self, plugin: &str, raw: &str) -> Result<Url, Refusal> {
        let url =
            Url::parse(raw).map_err(|e| Refusal::Invalid(format!("`{raw}` is not a URL: {e}")))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(Refusal::Invalid(format!(
                "`{raw}`: only http and https URLs can be called"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Denied(format!(
                "`{raw}`: URLs with user info are refused; send credentials in a header"
            )));
        }
        let lower = url.path().to_ascii_lowercase();
        if ["%2f", "%5c", "%2e"].iter().any(|bad| lower.contains(bad)) {
            return Err(Refusal::Denied(format!(
                "`{raw}`: encoded `/`, `\\` or `.` in the path are refused"
            )));
        }
        if self.urls.iter().any(|prefix| prefix.matches(&url)) {
            Ok(url)
        } else {
            Err(Refusal::Denied(format!(
                "HTTP to {url} is not granted to plugin {plugin}"
            )))
        }
    }

    pub(crate) fn grants_any_program(&self) -> bool {
        !self.programs.is_empty()
    }

    pub(crate) fn grants_any_url(&self) -> bool {
        !self.urls.is_empty()
    }

    pub(crate) fn grants_any_path(&self, access: Access) -> bool {
        match access {
            Access::Read => !self.read.is_empty(),
            Access::Write => !self.write.is_empty(),
            Access::Cwd => !self.read.is_empty() || !self.write.is_empty(),
        }
    }

    /// Whether `path` lies under a grant for `access`, as written (for
    /// declared needs, which may name paths that do not exist yet).
    pub(crate) fn path_granted(&self, path: &Path, access: Access) -> bool {
        let grants: Vec<&PathBuf> = match access {
            Access::Read => self.read.iter().collect(),
            Access::Write => self.write.iter().collect(),
            Access::Cwd => self.read.iter().chain(self.write.iter()).collect(),
        };
        path.is_absolute()
            && !path.components().any(|c| c == Component::ParentDir)
            && grants.iter().any(|g| path.starts_with(g))
    }

    /// Checks a path for `access` and returns the resolved path to open.
    pub(crate) fn check_path(
        &self,
        plugin: &str,
        raw: &str,
        access: Access,
    ) -> Result<PathBuf, Refusal> {
        let grants: Vec<&PathBuf> = match access {
            Access::Read => self.read.iter().collect(),
            Access::Write => self.write.iter().collect(),
            Access::Cwd => self.read.iter().chain(self.write.iter()).collect(),
        };
        let verb = access.verb();
        let path = Path::new(raw);
        if raw.is_empty() || !path.is_absolute() {
            return Err(Refusal::Invalid(format!(
                "{verb} `{raw}`: the path must be absolute"
            )));
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(Refusal::Denied(format!(
                "{verb} {raw} refused: paths with `..` are not allowed"
            )));
        }
        let not_granted =
            || Refusal::Denied(format!("{verb} {raw} is not granted to plugin {plugin}"));
        if !grants.iter().any(|g| path.starts_with(g)) {
            return Err(not_granted());
        }
        let resolved = resolve_existing(path)
            .map_err(|m| Refusal::Denied(format!("{verb} {raw} refused: {m}")))?;
        let inside = grants.iter().any(|g| {
            let grant = std::fs::canonicalize(g).unwrap_or_else(|_| (*g).clone());
            resolved.starts_with(&grant)
        });
        if inside {
            Ok(resolved)
        } else {
            Err(Refusal::Denied(format!(
                "{verb} {raw} refused: it resolves to {}, outside the paths granted to plugin {plugin}",
                resolved.display()
            )))
        }
    }
}

/// A granted path: absolute, without `..`.
fn grant_path(path: &Path) -> Result<PathBuf, String> {
    if !path.is_absolute() {
        return Err(format!("`{}` must be absolute", path.display()));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("`{}` must not contain `..`", path.display()));
    }
    // `components()` drops `.` and repeated separators.
    Ok(path.components().collect())
}

/// Resolves symlinks in the longest existing prefix of `path` and appends
/// the rest (a file about to be created). A symlink whose target does not
/// exist is refused: writing through it would create a file wherever it
/// points.
fn resolve_existing(path: &Path) -> Result<PathBuf, String> {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if std::fs::symlink_metadata(existing).is_ok() {
            break;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => break,
        }
    }
    let mut resolved = std::fs::canonicalize(existing).map_err(|e| {
        format!(
            "{} cannot be resolved ({e}); is it a dangling symlink?",
            existing.display()
        )
    })?;
    for name in rest.iter().rev() {
        resolved.push(name);
    }
    Ok(resolved)
}

/// A granted URL prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UrlPrefix {
    scheme: String,
    host: String,
    port: u16,
    /// The path without its trailing `/`; empty for the whole origin.
    path: String,
}

impl UrlPrefix {
    fn parse(text: &str) -> Result<UrlPrefix, String> {
        let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!("`{text}`: only http and https URLs can be granted"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("`{text}`: a granted URL cannot carry user info"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "`{text}`: a granted URL is a prefix, without query or fragment"
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("`{text}` has no host"))?
            .to_ascii_lowercase();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| format!("`{text}` has no port"))?;
        Ok(UrlPrefix {
            scheme: url.scheme().to_string(),
            host,
            port,
            path: url.path().trim_end_matches('/').to_string(),
        })
    }

    fn matches(&self, url: &Url) -> bool {
        let same_origin = url.scheme() == self.scheme
            && url
                .host_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(&self.host))
            && url.port_or_known_default() == Some(self.port);
        if !same_origin {
            return false;
        }
        let path = url.path();
        self.path.is_empty()
            || path == self.path
            || path
                .strip_prefix(self.path.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn caps(grants: Grants) -> Capabilities {
        Capabilities::new(&grants).expect("valid grants")
    }

    fn urls(list: &[&str]) -> Capabilities {
        caps(Grants {
            urls: list.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    }

    fn allowed(c: &Capabilities, url: &str) -> bool {
        c.check_url("p", url).is_ok()
    }

    #[test]
    fn url_ports_must_match() {
        let c = urls(&["http://127.0.0.1:80/"]);
        assert!(allowed(&c, "http://127.0.0.1/health"));
        assert!(allowed(&c, "http://127.0.0.1:80/health"));
        assert!(!allowed(&c, "http://127.0.0.1:8000/health"));
        assert!(!allowed(&c, "https://127.0.0.1/health"));
        assert!(!allowed(&c, "http://127.0.0.2/health"));
        assert!(!allowed(&c, "http://localhost/health"));
        let c = urls(&["http://127.0.0.1:8080"]);
        assert!(allowed(&c, "http://127.0.0.1:8080"));
        assert!(!allowed(&c, "http://127.0.0.1:80"));
        assert!(!allowed(&c, "http://127.0.0.1:808/"));
    }

    #[test]
    fn url_paths_match_on_segment_boundaries() {
        let c = urls(&["https://api.example.com/api"]);
        assert!(allowed(&c, "https://api.example.com/api"));
        assert!(allowed(&c, "https://api.example.com/api/"));
        assert!(allowed(&c, "https://API.example.com/api/v1?x=1"));
        assert!(!allowed(&c, "https://api.example.com/apix"));
        assert!(!allowed(&c, "https://api.example.com/"));
        assert!(!allowed(&c, "https://api.example.com/ap"));
        // `..` is resolved by the URL parser before the check.
        assert!(!allowed(&c, "https://api.example.com/api/../admin"));
        assert!(!allowed(&c, "https://api.example.com/api/%2e%2e/admin"));
        assert!(!allowed(&c, "https://api.example.com/api/..%2fadmin"));
        let c = urls(&["https://api.example.com/api/"]);
        assert!(allowed(&c, "https://api.example.com/api/v1"));
        assert!(!allowed(&c, "https://api.example.com/apix"));
    }

    #[test]
    fn url_user_info_and_schemes_are_refused() {
        let c = urls(&["http://127.0.0.1:8080/"]);
        assert!(matches!(
            c.check_url("p", "http://user:pw@127.0.0.1:8080/"),
            Err(Refusal::Denied(_))
        ));
        assert!(matches!(
            c.check_url("p", "file:///etc/passwd"),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            c.check_url("p", "not a url"),
            Err(Refusal::Invalid(_))
        ));
        assert_eq!(
            c.check_url("p", "http://10.0.0.1/"),
            Err(Refusal::Denied(
                "HTTP to http://10.0.0.1/ is not granted to plugin p".into()
            ))
        );
        assert!(UrlPrefix::parse("http://u@h/").is_err());
        assert!(UrlPrefix::parse("ftp://h/").is_err());
        assert!(UrlPrefix::parse("http://h/?q").is_err());
    }

    #[test]
    fn programs_are_exact() {
        let c = caps(Grants {
            programs: vec!["/usr/bin/git".into(), "sh".into()],
            dry_run_programs: vec!["/usr/bin/git log".into()],
            ..Default::default()
        });
        assert!(c.program_granted("/usr/bin/git"));
        assert!(c.program_granted("sh"));
        assert!(!c.program_granted("/bin/sh"));
        assert!(!c.program_granted("git"));
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(c.dry_run_granted("/usr/bin/git", &args(&["log", "-1"])));
        assert!(!c.dry_run_granted("/usr/bin/git", &args(&["checkout", "x"])));
        assert!(!c.dry_run_granted("/usr/bin/git", &args(&[])));
        assert!(!c.dry_run_granted("sh", &args(&["log"])));
        let bad = Grants {
            dry_run_programs: vec!["/bin/cat x".into()],
            ..Default::default()
        };
        assert!(Capabilities::new(&bad).is_err());
    }

    #[test]
    fn paths_stay_under_grants() {
        let dir = tempfile::tempdir().expect("tempdir");
        let granted = dir.path().join("granted");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&granted).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(granted.join("app.log"), "x").expect("write");
        std::fs::write(outside.join("secret"), "x").expect("write");
        std::os::unix::fs::symlink(&outside, granted.join("escape")).expect("symlink");
        std::os::unix::fs::symlink(outside.join("missing"), granted.join("dangling"))
            .expect("symlink");

        let c = caps(Grants {
            read: vec![granted.clone()],
            write: vec![granted.clone()],
            ..Default::default()
        });
        let g = granted.display().to_string();
        assert!(
            c.check_path("p", &format!("{g}/app.log"), Access::Read)
                .is_ok()
        );
        assert!(
            c.check_path("p", &format!("{g}/new.txt"), Access::Write)
                .is_ok()
        );
        assert!(c.check_path("p", &g, Access::Cwd).is_ok());

        let denied = |path: String, access| match c.check_path("p", &path, access) {
            Err(Refusal::Denied(m)) => m,
            other => panic!("{path}: expected a denial, got {other:?}"),
        };
        assert!(denied(format!("{g}/../outside/secret"), Access::Read).contains("`..`"));
        assert!(denied("/etc/passwd".into(), Access::Read).contains("not granted to plugin p"));
        assert!(denied(format!("{g}x/app.log"), Access::Read).contains("not granted"));
        assert!(denied(format!("{g}/escape/secret"), Access::Read).contains("outside the paths"));
        assert!(denied(format!("{g}/escape/new"), Access::Write).contains("outside the paths"));
        assert!(denied(format!("{g}/dangling"), Access::Write).contains("dangling"));
        assert!(matches!(
            c.check_path("p", "relative/path", Access::Read),
            Err(Refusal::Invalid(_))
        ));
    }

    #[test]
    fn grants_are_validated() {
        let relative = Grants {
            read: vec!["var/log".into()],
            ..Default::default()
        };
        assert_eq!(
            Capabilities::new(&relative).map(|_| ()).unwrap_err().field,
            "grants.read"
        );
        let dotdot = Grants {
            write: vec!["/opt/../etc".into()],
            ..Default::default()
        };
        assert!(Capabilities::new(&dotdot).is_err());
        let secret = Grants {
            secrets: vec!["NOT-A-NAME".into()],
            ..Default::default()
        };
        assert!(Capabilities::new(&secret).is_err());
    }
}
