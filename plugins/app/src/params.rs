//! The `app` plugin's parameters: one table shared by every action, each
//! action using the fields it needs.

use std::time::Duration;

use backout_plugin_sdk::PluginError;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The service (a systemd unit, or a name for logs with `manager` commands).
    #[serde(default)]
    pub service: Option<String>,
    /// `"systemd"` (default) or `{ start = [...], stop = [...], reload = [...] }`.
    #[serde(default)]
    pub manager: Manager,
    /// The application's git checkout.
    #[serde(default)]
    pub repo: Option<String>,
    /// The git program (as granted to the plugin).
    #[serde(default = "default_git")]
    pub git: String,
    /// How to find the previous stable version.
    #[serde(default)]
    pub stable: Option<Stable>,
    /// An explicit version (commit, tag or branch) to go to instead of
    /// searching; e.g. `"${run:to_version}"`.
    #[serde(default)]
    pub version: Option<String>,
    /// Config file to restore from, relative to `repo` (or absolute).
    #[serde(default)]
    pub config_backup: Option<String>,
    /// Config file to restore to, relative to `repo` (or absolute).
    #[serde(default)]
    pub config: Option<String>,
    /// Build commands, run in `repo`, each a program and its arguments
    /// separated by spaces (no shell: quote nothing).
    #[serde(default)]
    pub build: Vec<String>,
    /// The health URL that must answer 2xx when up (and fail when stopped).
    #[serde(default, alias = "verify_url")]
    #[schemars(extend("x-aliases" = ["verify_url"]))]
    pub health_url: Option<String>,
    /// How many times health is asked before giving up.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Pause between two health attempts, e.g. "2s".
    #[serde(default)]
    pub interval: Option<String>,
    /// Pause after starting, before the first health check, e.g. "30s".
    #[serde(default)]
    pub settle: Option<String>,
    /// Critical paths checked after start: `{ name, url }`.
    #[serde(default)]
    pub critical: Vec<Critical>,
    /// Error log whose tail is counted after start.
    #[serde(default)]
    pub log: Option<LogTail>,
    /// Timeout of one build or manager command, e.g. "10m".
    #[serde(default)]
    pub command_timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(untagged)]
pub enum Manager {
    /// `"systemd"`: `systemctl start|stop|reload|is-active SERVICE`.
    Named(String),
    /// Explicit commands, each a program followed by its arguments.
    Commands(Commands),
}

impl Default for Manager {
    fn default() -> Self {
        Manager::Named("systemd".into())
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Commands {
    pub start: Vec<String>,
    pub stop: Vec<String>,
    #[serde(default)]
    pub reload: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stable {
    /// The newest of the last `last` commits whose message contains this
    /// (the seed: `git log --oneline -10 | grep STABLE`).
    #[serde(default)]
    pub grep: Option<String>,
    #[serde(default = "default_last")]
    pub last: u32,
    /// Or the newest tag matching this glob, e.g. `"v*-stable"`.
    #[serde(default)]
    pub tag: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Critical {
    pub name: String,
    pub url: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogTail {
    pub path: String,
    #[serde(default = "default_tail")]
    pub tail_lines: u32,
    pub pattern: String,
}

fn default_git() -> String {
    "git".into()
}
fn default_retries() -> u32 {
    5
}
fn default_last() -> u32 {
    10
}
fn default_tail() -> u32 {
    100
}

impl Params {
    pub fn repo(&self) -> Result<&str, PluginError> {
        self.repo
            .as_deref()
            .ok_or_else(|| PluginError::new("bad-params", "`repo` is needed for this action"))
    }

    pub fn service(&self) -> Result<&str, PluginError> {
        self.service
            .as_deref()
            .ok_or_else(|| PluginError::new("bad-params", "`service` is needed for this action"))
    }

    /// A path relative to the repo, or absolute.
    pub fn in_repo(&self, path: &str) -> Result<String, PluginError> {
        if path.starts_with('/') {
            return Ok(path.to_string());
        }
        Ok(format!("{}/{path}", self.repo()?.trim_end_matches('/')))
    }

    pub fn interval(&self) -> Result<Duration, PluginError> {
        duration("interval", self.interval.as_deref().unwrap_or("2s"))
    }

    pub fn settle(&self) -> Result<Duration, PluginError> {
        duration("settle", self.settle.as_deref().unwrap_or("0s"))
    }

    pub fn command_timeout(&self) -> Result<Duration, PluginError> {
        duration(
            "command_timeout",
            self.command_timeout.as_deref().unwrap_or("10m"),
        )
    }
}

/// "250ms", "30s", "10m", "1h".
pub fn duration(field: &str, text: &str) -> Result<Duration, PluginError> {
    let bad = || {
        PluginError::new(
            "bad-params",
            format!("`{field}` = `{text}`: a duration is a number and ms, s, m or h"),
        )
    };
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    }
    .ok_or_else(bad)?;
    Ok(Duration::from_millis(ms))
}

/// A command line split on whitespace: program and arguments (no shell).
pub fn words(field: &str, line: &str) -> Result<Vec<String>, PluginError> {
    let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    if words.is_empty() {
        return Err(PluginError::new(
            "bad-params",
            format!("`{field}` has an empty command"),
        ));
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_commands_parse_or_name_the_field() {
        assert_eq!(duration("settle", "30s").unwrap(), Duration::from_secs(30));
        assert_eq!(duration("i", "250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(duration("i", "2m").unwrap(), Duration::from_secs(120));
        let err = duration("settle", "soon").unwrap_err();
        assert!(err.message.contains("settle"), "{}", err.message);
        assert!(duration("i", "5 parsecs").is_err());
        assert_eq!(
            words("build", "npm install --production").unwrap(),
            ["npm", "install", "--production"]
        );
        assert!(words("build", "  ").is_err());
    }

    #[test]
    fn the_seed_plans_params_are_accepted_and_typos_are_not() {
        let seed = r#"{ "repo": "/opt/samia-tarot", "stable": { "grep": "STABLE", "last": 10 },
            "config_backup": "config/production.env.backup", "config": "config/production.env",
            "build": ["npm install --production", "npm run build"], "service": "samia-tarot-app",
            "settle": "30s", "health_url": "https://samia-tarot.com/health" }"#;
        let p: Params = serde_json::from_str(seed).unwrap();
        assert_eq!(p.manager, Manager::Named("systemd".into()));
        assert_eq!(
            p.in_repo("config/production.env").unwrap(),
            "/opt/samia-tarot/config/production.env"
        );
        let stop: Params = serde_json::from_str(
            r#"{ "service": "samia-tarot-app", "manager": "systemd", "verify_url": "https://x/health" }"#,
        )
        .unwrap();
        assert_eq!(stop.health_url.as_deref(), Some("https://x/health"));
        let commands: Params = serde_json::from_str(
            r#"{ "manager": { "start": ["sh", "-c", "start"], "stop": ["kill", "1"] } }"#,
        )
        .unwrap();
        assert!(matches!(commands.manager, Manager::Commands(_)));
        assert!(serde_json::from_str::<Params>(r#"{ "sevrice": "x" }"#).is_err());
    }
}
