//! The application's versions in git: where it is, where it goes back to,
//! and the checkout.

use backout_plugin_sdk::PluginError;
use backout_plugin_sdk::host::{self, ExecRequest};
use serde::Serialize;

use crate::params::Params;

/// One commit, as reports name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    pub commit: String,
    pub subject: String,
}

/// Runs `git args…` in the repository and returns its stdout, or a
/// `git-failed` error. (The repository is the working directory rather than
/// `-C`, so an agent can grant `git log` for dry-runs.)
pub fn git(p: &Params, args: &[&str]) -> Result<String, PluginError> {
    let out = ExecRequest::new(p.git.as_str(), args.iter().copied())
        .cwd(p.repo()?)
        .timeout_ms(60_000)
        .run()?;
    if !out.success() {
        return Err(PluginError::new(
            "git-failed",
            format!("git {}: {}", args.join(" "), out.stderr_text().trim()),
        ));
    }
    Ok(out.stdout_text())
}

/// `%H<TAB>%s` lines of `git log`.
fn parse_log(text: &str) -> Vec<Version> {
    text.lines()
        .filter_map(|line| {
            let (commit, subject) = line.split_once('\t')?;
            Some(Version {
                commit: commit.trim().to_string(),
                subject: subject.trim().to_string(),
            })
        })
        .collect()
}

/// The newest commit among `log` whose subject contains `grep`, other than
/// `head` (the version being rolled back from).
pub fn pick_stable(log: &str, grep: &str, head: &str) -> Option<Version> {
    parse_log(log)
        .into_iter()
        .find(|v| v.commit != head && v.subject.contains(grep))
}

pub fn current(p: &Params) -> Result<Version, PluginError> {
    let text = git(p, &["log", "-1", "--format=%H%x09%s"])?;
    parse_log(&text)
        .into_iter()
        .next()
        .ok_or_else(|| PluginError::new("git-failed", "the repository has no commit"))
}

/// The version to go back to: the explicit `version`, the newest tag
/// matching `stable.tag`, or the newest STABLE-marked commit of the last
/// `stable.last` (the seed's rule).
pub fn target(p: &Params, head: &Version) -> Result<Version, PluginError> {
    if let Some(version) = p.version.as_deref().filter(|v| !v.is_empty()) {
        let spec = format!("{version}^{{commit}}");
        let text = git(p, &["log", "-1", "--format=%H%x09%s", &spec])?;
        return parse_log(&text)
            .into_iter()
            .next()
            .ok_or_else(|| PluginError::new("no-version", format!("`{version}` names no commit")));
    }
    let stable = p.stable.clone().unwrap_or(crate::params::Stable {
        grep: None,
        last: 10,
        tag: None,
    });
    if let Some(pattern) = &stable.tag {
        let tags = git(p, &["tag", "--list", pattern, "--sort=-creatordate"])?;
        for tag in tags.lines().map(str::trim).filter(|t| !t.is_empty()) {
            let spec = format!("{tag}^{{commit}}");
            let text = git(p, &["log", "-1", "--format=%H%x09%s", &spec])?;
            if let Some(v) = parse_log(&text).into_iter().next()
                && v.commit != head.commit
            {
                return Ok(v);
            }
        }
        return Err(PluginError::new(
            "no-stable",
            format!("no tag matching `{pattern}` other than the current version"),
        ));
    }
    let grep = stable.grep.as_deref().unwrap_or("STABLE");
    let last = format!("-n{}", stable.last.max(1));
    let log = git(p, &["log", &last, "--format=%H%x09%s"])?;
    pick_stable(&log, grep, &head.commit).ok_or_else(|| {
        PluginError::new(
            "no-stable",
            format!(
                "none of the last {} commits is marked `{grep}` (other than the current one)",
                stable.last
            ),
        )
    })
}

pub fn checkout(p: &Params, to: &Version) -> Result<(), PluginError> {
    host::log_info(&format!(
        "checking out {} ({})",
        short(&to.commit),
        to.subject
    ));
    git(
        p,
        &[
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "--quiet",
            "--force",
            &to.commit,
        ],
    )
    .map(|_| ())
}

pub fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str =
        "c3\trelease 1.2 (the bad deploy)\nc2\trelease 1.1 STABLE\nc1\trelease 1.0 STABLE\n";

    #[test]
    fn the_newest_stable_commit_other_than_the_current_one_is_chosen() {
        assert_eq!(pick_stable(LOG, "STABLE", "c3").unwrap().commit, "c2");
        assert_eq!(
            pick_stable(LOG, "STABLE", "c2").unwrap().commit,
            "c1",
            "the current version is never its own rollback target"
        );
        assert!(pick_stable(LOG, "GOOD", "c3").is_none());
        assert!(pick_stable("garbage without tabs", "STABLE", "x").is_none());
    }
}
