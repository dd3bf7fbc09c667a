//! The agent's configuration file (`backout-agent --config FILE`).
//!
//! ```toml
//! coordinator = "coordinator.internal:7443"  # host:port the agent dials; or a list,
//!                                             # ["c1.internal:7443", "c2.internal:7443"],
//!                                             # tried in turn until one leads
//! server_name = "coordinator.internal"       # optional: name in the coordinator's certificate
//! command_key = "pki/command-signing.pub"    # the coordinator's pinned ed25519 public key
//! state_dir = "/var/lib/backout-agent"       # nonces (and later the step ledger) live here
//! clock_skew = "30s"                         # allowance for command validity windows
//!
//! [tls]
//! ca = "pki/ca.pem"
//! cert = "pki/agents/app-1.pem"
//! key = "pki/agents/app-1.key"
//!
//! [reconnect]
//! initial = "200ms"
//! max = "30s"
//!
//! [limits]                                   # per-step defaults; a plugin may override
//! deadline = "60s"
//! memory = "128MiB"
//! output = "1MiB"
//!
//! [[plugin]]
//! name = "health"
//! path = "plugins/health.wasm"
//! [plugin.grants]
//! urls = ["http://127.0.0.1:8080/"]
//! read = ["/var/log/samia-app"]
//!
//! [secrets]
//! STRIPE_SECRET_KEY = { env = "STRIPE_SECRET_KEY" }
//!
//! [metrics]                                  # optional: Prometheus /metrics (loopback only)
//! listen = "127.0.0.1:9465"
//!
//! [otlp]                                     # optional: OpenTelemetry traces over OTLP/gRPC
//! endpoint = "http://127.0.0.1:4317"         # (or OTEL_EXPORTER_OTLP_ENDPOINT)
//!
//! [[approval_policy]]                        # optional: actions this host runs only with
//! action = "db.migrate-down"                 # operators' signed approvals it checks itself
//! roles = ["dba", "technical-lead", "product-owner"]   # each a different person
//! allow_self_approval = false                # the run's starter may not approve (default)
//! ```
//!
//! Relative paths are resolved against the directory of the configuration file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use backout_config::{ConfigError, duration};
use backout_tls::TlsFiles;
use serde::Deserialize;

use crate::plugin::{PluginConfig, SecretSource, StepLimitsConfig};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub coordinator: Coordinators,
    #[serde(default)]
    pub server_name: Option<String>,
    pub command_key: PathBuf,
    pub state_dir: PathBuf,
    #[serde(default = "default_skew", deserialize_with = "duration")]
    pub clock_skew: Duration,
    pub tls: TlsFiles,
    #[serde(default)]
    pub reconnect: Reconnect,
    #[serde(default)]
    pub limits: StepLimitsConfig,
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<PluginConfig>,
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
    /// Prometheus `/metrics` on its own loopback listener; off when absent.
    #[serde(default)]
    pub metrics: Option<backout_config::metrics::MetricsConfig>,
    /// OpenTelemetry traces over OTLP/gRPC; off when absent (unless
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
    #[serde(default)]
    pub otlp: Option<backout_config::otel::OtlpConfig>,
    /// Actions this agent runs only with operators' signed approvals, which
    /// it verifies itself (`admit.rs`); none when absent.
    #[serde(default, rename = "approval_policy")]
    pub approval_policies: Vec<ApprovalPolicy>,
}

/// One `[[approval_policy]]`: the action (`plugin.action`) runs only when
/// the command carries signed approvals by distinct people holding every
/// role, each verified by this agent against the fleet CA and its CRL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalPolicy {
    /// `plugin.action`, e.g. `db.migrate-down`.
    pub action: String,
    /// The roles that must approve, each held by a different person.
    pub roles: Vec<String>,
    /// Whether the operator who started the run may approve it (when the
    /// plan allows it); default: no.
    #[serde(default)]
    pub allow_self_approval: bool,
}

/// The coordinators' addresses: one, or several (one leads, the others
/// stand by and do not listen until they lead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coordinators {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for Coordinators {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Coordinators;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "\"host:port\" in quotes, or a list of them ([\"c1:7443\", \"c2:7443\"])",
                )
            }
            fn visit_str<E: serde::de::Error>(self, one: &str) -> Result<Coordinators, E> {
                Ok(Coordinators::One(one.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Coordinators, A::Error> {
                let mut many = Vec::new();
                while let Some(one) = seq.next_element::<String>()? {
                    many.push(one);
                }
                Ok(Coordinators::Many(many))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Whether `address` is `host:port` as the agent dials it: no scheme, a
/// host, a port from 1 to 65535.
fn check_dial_address(address: &str) -> Result<(), String> {
    if let Some((scheme, _)) = address.split_once("://") {
        return Err(format!(
            "`{address}`: write host:port without `{scheme}://` (the agent speaks TLS itself)"
        ));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!(
            "`{address}` has no port: write host:port, e.g. \"{address}:7443\""
        ));
    };
    if host.trim_matches(|c| c == '[' || c == ']').is_empty() {
        return Err(format!("`{address}` has no host: write host:port"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("`{address}`: `{port}` is not a port (1 to 65535)")),
    }
}

impl Coordinators {
    pub fn list(&self) -> &[String] {
        match self {
            Coordinators::One(one) => std::slice::from_ref(one),
            Coordinators::Many(many) => many,
        }
    }
}

impl std::fmt::Display for Coordinators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.list().join(", "))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reconnect {
    #[serde(default = "default_initial", deserialize_with = "duration")]
    pub initial: Duration,
    #[serde(default = "default_max", deserialize_with = "duration")]
    pub max: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            initial: default_initial(),
            max: default_max(),
        }
    }
}

fn default_skew() -> Duration {
    Duration::from_secs(30)
}
fn default_initial() -> Duration {
    Duration::from_millis(200)
}
fn default_max() -> Duration {
    Duration::from_secs(30)
}

impl AgentConfig {
    /// Loads the file and resolves every relative path against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: AgentConfig = backout_config::load(path)?;
        let resolve = |p: &Path| backout_config::resolve(path, p);
        config.command_key = resolve(&config.command_key);
        config.state_dir = resolve(&config.state_dir);
        config.tls = config.tls.resolved(resolve);
        config.metrics = config.metrics.map(|m| m.resolved(path));
        for plugin in &mut config.plugins {
            plugin.path = resolve(&plugin.path);
        }
        for source in config.secrets.values_mut() {
            if let SecretSource::File(file) = source {
                *file = resolve(file);
            }
        }
        if config.coordinator.list().is_empty() {
            return Err(ConfigError::invalid(
                path,
                "coordinator",
                "names no address (give host:port, or a list of them)",
            ));
        }
        for address in config.coordinator.list() {
            check_dial_address(address)
                .map_err(|e| ConfigError::invalid(path, "coordinator", e))?;
        }
        // The name asked for in TLS: `server_name`, or each address's host.
        match &config.server_name {
            Some(name) => backout_tls::tls::check_server_name(name)
                .map_err(|e| ConfigError::invalid(path, "server_name", e))?,
            None => {
                for address in config.coordinator.list() {
                    backout_tls::tls::check_server_name(&backout_tls::tls::host_part(address))
                        .map_err(|e| {
                            ConfigError::invalid(
                                path,
                                "coordinator",
                                format!("{e} (or set `server_name` to the name in the coordinator's certificate)"),
                            )
                        })?;
                }
            }
        }
        if config.reconnect.initial.is_zero() || config.reconnect.max < config.reconnect.initial {
            return Err(ConfigError::invalid(
                path,
                "reconnect",
                "`initial` must be above zero and not above `max`",
            ));
        }
        if let Some(metrics) = &config.metrics {
            metrics
                .addr()
                .map_err(|e| ConfigError::invalid(path, "metrics.listen", e))?;
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, plugin) in config.plugins.iter().enumerate() {
            if !names.insert(plugin.name.as_str()) {
                return Err(ConfigError::invalid(
                    path,
                    format!("plugin[{i}].name"),
                    format!("plugin `{}` is configured twice", plugin.name),
                ));
            }
        }
        let mut actions = std::collections::BTreeSet::new();
        for (i, policy) in config.approval_policies.iter().enumerate() {
            let field = |f: &str| format!("approval_policy[{i}].{f}");
            match policy.action.split_once('.') {
                Some((plugin, action)) if !plugin.is_empty() && !action.is_empty() => {}
                _ => {
                    return Err(ConfigError::invalid(
                        path,
                        field("action"),
                        format!("`{}` is not `plugin.action`", policy.action),
                    ));
                }
            }
            if !actions.insert(policy.action.as_str()) {
                return Err(ConfigError::invalid(
                    path,
                    field("action"),
                    format!("`{}` has two policies", policy.action),
                ));
            }
            if policy.roles.is_empty() || policy.roles.iter().any(|r| r.trim().is_empty()) {
                return Err(ConfigError::invalid(
                    path,
                    field("roles"),
                    "name at least one role, none empty",
                ));
            }
            let distinct: std::collections::BTreeSet<_> = policy.roles.iter().collect();
            if distinct.len() != policy.roles.len() {
                return Err(ConfigError::invalid(
                    path,
                    field("roles"),
                    "a role is named twice",
                ));
            }
        }
        Ok(config)
    }

    /// The approval policy of `plugin`'s `action`, if one gates it.
    pub fn approval_policy(&self, plugin: &str, action: &str) -> Option<&ApprovalPolicy> {
        self.approval_policies
            .iter()
            .find(|p| p.action.split_once('.') == Some((plugin, action)))
    }

    pub fn tls_files(&self) -> TlsFiles {
        self.tls.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_and_secret_files_follow_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            r#"coordinator = "127.0.0.1:7443"
command_key = "keys/command.pub"
state_dir = "state"
[tls]
ca = "pki/ca.pem"
cert = "pki/app-1.pem"
key = "pki/app-1.key"
[secrets]
TOKEN = { file = "secrets/token" }
ABSOLUTE = { file = "/etc/backout/token" }
"#,
        )
        .unwrap();
        let config = AgentConfig::load(&path).unwrap();
        assert_eq!(config.state_dir, dir.path().join("state"));
        assert_eq!(
            config.secrets["TOKEN"],
            SecretSource::File(dir.path().join("secrets/token"))
        );
        assert_eq!(
            config.secrets["ABSOLUTE"],
            SecretSource::File("/etc/backout/token".into())
        );
    }

    #[test]
    fn approval_policies_load_and_bad_ones_name_their_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let load = |policy: &str| {
            std::fs::write(
                &path,
                format!(
                    "coordinator = \"c1:7443\"\ncommand_key = \"k.pub\"\nstate_dir = \"s\"\n\
                     [tls]\nca = \"ca.pem\"\ncert = \"a.pem\"\nkey = \"a.key\"\n{policy}"
                ),
            )
            .unwrap();
            AgentConfig::load(&path)
        };
        let config = load(
            "[[approval_policy]]\naction = \"db.migrate-down\"\nroles = [\"dba\", \"technical-lead\"]\n",
        )
        .unwrap();
        let policy = config.approval_policy("db", "migrate-down").unwrap();
        assert_eq!(policy.roles, ["dba", "technical-lead"]);
        assert!(!policy.allow_self_approval);
        assert!(config.approval_policy("db", "backup").is_none());
        for (bad, field) in [
            (
                "action = \"migrate-down\"\nroles = [\"dba\"]",
                "approval_policy[0].action",
            ),
            (
                "action = \"db.migrate-down\"\nroles = []",
                "approval_policy[0].roles",
            ),
            (
                "action = \"db.migrate-down\"\nroles = [\"dba\", \"dba\"]",
                "approval_policy[0].roles",
            ),
            ("action = \"db.x\"\nroles = [\"dba\"]\nself = true", "self"),
        ] {
            let e = load(&format!("[[approval_policy]]\n{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(field), "{bad}: {e}");
        }
    }

    #[test]
    fn one_coordinator_or_a_list_and_never_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let load = |coordinator: &str| {
            std::fs::write(
                &path,
                format!(
                    "coordinator = {coordinator}\ncommand_key = \"k.pub\"\nstate_dir = \"s\"\n\
                     [tls]\nca = \"ca.pem\"\ncert = \"a.pem\"\nkey = \"a.key\"\n"
                ),
            )
            .unwrap();
            AgentConfig::load(&path)
        };
        assert_eq!(load("\"c1:7443\"").unwrap().coordinator.list(), ["c1:7443"]);
        let two = load("[\"c1:7443\", \"c2:7443\"]").unwrap().coordinator;
        assert_eq!(two.list(), ["c1:7443", "c2:7443"]);
        assert_eq!(two.to_string(), "c1:7443, c2:7443");
        let e = load("[]").unwrap_err().to_string();
        assert!(e.contains("agent.toml") && e.contains("coordinator"), "{e}");
        // A newcomer's addresses: each refused at load, naming the line.
        for (bad, says) in [
            (
                "7443",
                "expected \"host:port\" in quotes, or a list of them",
            ),
            ("\"127.0.0.1\"", "`127.0.0.1` has no port: write host:port"),
            ("\"https://c1:7443\"", "without `https://`"),
            ("\"c1:99999\"", "`99999` is not a port"),
            ("\":7443\"", "has no host"),
            ("[\"c1:7443\", \"c2\"]", "`c2` has no port"),
            (
                "\"my_host!:7443\"",
                "`my_host!` is not a DNS name or an IP address",
            ),
        ] {
            let e = load(bad).unwrap_err().to_string();
            assert!(e.contains("agent.toml:1:"), "{bad}: {e}");
            assert!(
                e.contains("field `coordinator`") && e.contains(says),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            load("\"[::1]:7443\"").unwrap().coordinator.list(),
            ["[::1]:7443"]
        );
        // A `server_name` that TLS cannot ask for is refused at load too.
        std::fs::write(
            &path,
            "coordinator = \"127.0.0.1:7443\"\nserver_name = \"https://c1\"\ncommand_key = \"k.pub\"\n\
             state_dir = \"s\"\n[tls]\nca = \"ca.pem\"\ncert = \"a.pem\"\nkey = \"a.key\"\n",
        )
        .unwrap();
        let e = AgentConfig::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("agent.toml:2: field `server_name`: `https://c1` is not a DNS name"),
            "{e}"
        );
        // The README's example (its HA section) is one that loads.
        let readme = include_str!("../../README.md");
        let example = readme
            .lines()
            .find_map(|l| l.strip_prefix("coordinator = ["))
            .expect("the README's agent example");
        let listed = load(&format!("[{example}")).unwrap().coordinator;
        assert_eq!(listed.list().len(), 2, "{example}");
    }
}
