//! The coordinator's configuration file (`backout serve --config FILE`).
//!
//! ```toml
//! listen = "127.0.0.1:7443"
//! command_key = "pki/command-signing.key"    # ed25519, separate from the TLS key
//! command_ttl = "60s"                        # how long a signed command stays valid
//! checkpoint_key = "pki/checkpoint-signing.key"  # optional: signs the journal's checkpoints
//! checkpoint_every = 1000                    # a signed checkpoint every N entries (and at every run's end)
//! heartbeat_interval = "5s"
//! crl = "pki/crl.pem"                        # optional: revoked certificates (`backout pki revoke`)
//! state_dir = "state"                        # the journal (journal.db) lives here
//! plan = "plan.toml"                         # optional: signals, the decision matrix, the runs
//! evaluate_every = "1s"                      # how often every trigger is evaluated
//! journal_summary_every = "15m"             # a matrix.summary in the journal besides each change
//! # optional, for several coordinators (one leads): the journal and the
//! # leader lease in PostgreSQL instead of state_dir/journal.db
//! journal = { postgres = "host=db.internal dbname=backout user=backout", password_file = "pg.pass" }
//! advertise = "10.0.0.5:7443"                # this coordinator's address, as agents dial it
//! lease_ttl = "10s"                          # a dead leader is replaced after this
//!
//! [tls]
//! ca = "pki/ca.pem"
//! cert = "pki/coordinator.pem"
//! key = "pki/coordinator.key"
//!
//! [[agent]]                                  # agents that may connect, besides the plan's [[host]]s
//! id = "app-1"
//! groups = ["app"]
//!
//! [operators]                                # operator identity -> roles
//! alice = ["release-manager"]
//! # with `operator_certs = "pki/operators"` (top level), each operator's
//! # certificate there must attest exactly these roles (`pki issue --role`)
//!
//! [plugins.health]                           # optional: pin the component agents must run
//! sha256 = "4b1e0c4a7d2f3e9b8c6a5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a"
//! path = "plugins/health.wasm"               # optional: the pinned file (plan check reads its schema)
//!
//! [smtp]                                    # optional: the plan's `email` channels
//! server = "smtp.example.com"                # the relay; its certificate must name it
//! tls = "starttls"                           # or "tls" (implicit TLS, port 465)
//! port = 587                                 # default: 587 for starttls, 465 for tls
//! username = "backout@example.com"
//! password_file = "secrets/smtp-password"    # read when sending; never logged or journaled
//! from = "Backout <backout@example.com>"
//! # ca = "smtp-ca.pem"                       # optional: a private relay's root certificate (read at start)
//!
//! [metrics]                                  # optional: Prometheus /metrics (loopback only)
//! listen = "127.0.0.1:9464"
//!
//! [otlp]                                     # optional: OpenTelemetry traces over OTLP/gRPC
//! endpoint = "http://127.0.0.1:4317"         # (or OTEL_EXPORTER_OTLP_ENDPOINT)
//!
//! [assess]
//! timeout = "15s"
//! [[assess.check]]
//! name = "app"
//! url = "http://127.0.0.1:8080/health"
//! agents = ["app-1"]                         # default: every agent
//! slow = "500ms"
//! [assess.log]
//! path = "/var/log/samia-app/error.log"
//! ```
//!
//! Top-level keys come before the first `[table]`: TOML puts a key written
//! after a table header inside that table. Relative paths are resolved
//! against the directory of the configuration file. This example is loaded
//! by a test (`the_documented_example_loads`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use backout_config::{ConfigError, duration, opt_duration};
use backout_tls::{Identity, TlsFiles};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// `host:port` to listen on; port 0 picks a free port (printed at start).
    pub listen: String,
    pub tls: TlsFiles,
    /// Optional certificate revocation list (`backout pki revoke`), checked on
    /// every client handshake; an out-of-date list refuses everyone.
    #[serde(default)]
    pub crl: Option<PathBuf>,
    pub command_key: PathBuf,
    /// Signs the journal's checkpoints (ed25519, `pki init` makes it);
    /// operators hold its public half and check them with `backout audit
    /// verify`. Without it the journal's chain is not signed.
    #[serde(default)]
    pub checkpoint_key: Option<PathBuf>,
    /// A signed checkpoint every this many entries, besides every run's end.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    #[serde(default = "default_command_ttl", deserialize_with = "duration")]
    pub command_ttl: Duration,
    #[serde(default = "default_heartbeat", deserialize_with = "duration")]
    pub heartbeat_interval: Duration,
    #[serde(default, rename = "agent")]
    pub agents: Vec<AgentEntry>,
    #[serde(default)]
    pub operators: BTreeMap<String, Vec<String>>,
    /// Optional: the directory of the operators' certificates
    /// (`<name>.pem`, as `backout pki issue operator` writes them). When
    /// set, every `[operators]` entry's certificate must chain to the CA,
    /// not be revoked, and attest exactly the configured roles, or the
    /// coordinator refuses to start naming the operator out of step.
    #[serde(default)]
    pub operator_certs: Option<PathBuf>,
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginPin>,
    #[serde(default)]
    pub assess: AssessConfig,
    /// Where the journal lives (default: `state/` beside this file).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// The rollback plan (signals, triggers...); without it the coordinator
    /// serves the fleet but has no decision matrix.
    #[serde(default)]
    pub plan: Option<PathBuf>,
    /// How often every trigger is evaluated.
    #[serde(default = "default_evaluate_every", deserialize_with = "duration")]
    pub evaluate_every: Duration,
    /// How often the journal gets a `matrix.summary` (every signal's value
    /// and every trigger's state) besides the changes, which are journaled
    /// as they happen.
    #[serde(
        default = "default_journal_summary_every",
        deserialize_with = "duration"
    )]
    pub journal_summary_every: Duration,
    /// The SMTP relay the plan's `email` channels are sent through.
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    /// The journal in PostgreSQL (several coordinators, one leading);
    /// without it, SQLite in `state_dir`.
    #[serde(default)]
    pub journal: Option<JournalConfig>,
    /// This coordinator's address as agents and operators dial it: what a
    /// standby names when it says who leads. Needed with `journal.postgres`.
    #[serde(default)]
    pub advertise: Option<String>,
    /// How long the leader's lease lasts unless renewed (renewed every third).
    #[serde(default = "default_lease_ttl", deserialize_with = "duration")]
    pub lease_ttl: Duration,
    /// Prometheus `/metrics` on its own loopback listener; off when absent.
    #[serde(default)]
    pub metrics: Option<backout_config::metrics::MetricsConfig>,
    /// OpenTelemetry traces over OTLP/gRPC; off when absent (unless
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
    #[serde(default)]
    pub otlp: Option<backout_config::otel::OtlpConfig>,
}

/// `[smtp]`: the coordinator sends e-mail itself (see ARCHITECTURE.md,
/// "How people are told"). The password stays in its file until a message
/// is sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub server: String,
    pub tls: SmtpTls,
    #[serde(default)]
    pub port: Option<u16>,
    pub username: String,
    pub password_file: PathBuf,
    pub from: String,
    #[serde(default)]
    pub ca: Option<PathBuf>,
    #[serde(default = "default_smtp_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

/// STARTTLS (required, never plaintext) or TLS from the first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    Starttls,
    Tls,
}

impl SmtpConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// libpq `key=value` connection string, without a password.
    pub postgres: String,
    /// A file holding the password (first line), kept out of the config.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The CA certificate(s), PEM, that signed the database server's
    /// certificate: set, the connection is TLS only (rustls) and the
    /// server's certificate is verified against them and the host the
    /// connection string names. `sslmode=require` needs it.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// Whether `ca` is a PEM file of certificates (`journal.ca_file`); the
/// error says what is wrong with it.
fn check_ca_file(ca: &Path) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(ca).map_err(|e| format!("cannot read it: {e}"))?;
    let certs: Result<Vec<_>, _> =
        rustls::pki_types::CertificateDer::pem_slice_iter(&pem).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(()),
        Ok(_) => Err("holds no certificate (expected `-----BEGIN CERTIFICATE-----`)".into()),
        Err(e) => Err(format!("not a PEM certificate bundle: {e:?}")),
    }
}

impl JournalConfig {
    /// The password from `password_file`, if there is one.
    pub fn password(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.password_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
        Ok(Some(text.lines().next().unwrap_or("").to_string()))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentEntry {
    pub id: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginPin {
    /// Hex sha256 of the component every agent must run for this plugin.
    pub sha256: String,
    /// Optional: the pinned file itself. With it, `backout serve` and
    /// `backout plan check --config` check that the file has this sha256 and
    /// check the plan's steps against the parameters the file declares.
    #[serde(default)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessConfig {
    #[serde(default = "default_assess_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default, rename = "check")]
    pub checks: Vec<HealthCheck>,
    #[serde(default)]
    pub log: Option<LogCheck>,
}

impl Default for AssessConfig {
    fn default() -> Self {
        AssessConfig {
            timeout: default_assess_timeout(),
            checks: Vec::new(),
            log: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub expect_status: Option<Vec<u16>>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub slow: Option<Duration>,
    /// Agent ids or groups this check runs on; empty: every agent.
    #[serde(default)]
    pub agents: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogCheck {
    pub path: String,
    #[serde(default = "default_tail_lines")]
    pub tail_lines: u32,
    #[serde(default = "default_pattern")]
    pub pattern: String,
    #[serde(default)]
    pub agents: Vec<String>,
}

/// A signed journal checkpoint every this many entries, by default.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 1000;

fn default_checkpoint_every() -> u64 {
    DEFAULT_CHECKPOINT_EVERY
}

fn default_command_ttl() -> Duration {
    Duration::from_secs(60)
}
fn default_heartbeat() -> Duration {
    Duration::from_secs(5)
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("state")
}
fn default_lease_ttl() -> Duration {
    Duration::from_secs(10)
}
fn default_evaluate_every() -> Duration {
    Duration::from_secs(1)
}
fn default_journal_summary_every() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_smtp_timeout() -> Duration {
    Duration::from_secs(20)
}
fn default_assess_timeout() -> Duration {
    Duration::from_secs(15)
}
fn default_tail_lines() -> u32 {
    100
}
fn default_pattern() -> String {
    "ERROR".into()
}

/// The roles `cert` attests for operator `name`, once it is shown to chain
/// to the fleet CA, to be valid and not revoked, and to name that operator.
fn attested_roles(
    material: &backout_tls::tls::TlsMaterial,
    cert: &Path,
    name: &str,
) -> Result<Vec<String>, String> {
    let pem = std::fs::read_to_string(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
    let der = backout_tls::pki::first_pem_der(&pem)
        .ok_or_else(|| format!("{}: no CERTIFICATE block", cert.display()))?;
    material
        .verify_client_cert(&der)
        .map_err(|e| format!("{}: not accepted by the fleet CA: {e}", cert.display()))?;
    let identity = Identity::from_cert_der(&der, &material.domain)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if identity != Identity::Operator(name.to_string()) {
        return Err(format!(
            "{} names {identity}, not operator/{name}",
            cert.display()
        ));
    }
    backout_tls::identity::roles_of_cert(&der, &material.domain, name)
        .map_err(|e| format!("{}: {e}", cert.display()))
}

impl CoordinatorConfig {
    /// Loads, resolves relative paths and checks cross-field rules.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: CoordinatorConfig = backout_config::load(path)?;
        config.tls = config.tls.resolved(|p| backout_config::resolve(path, p));
        config.command_key = backout_config::resolve(path, &config.command_key);
        config.checkpoint_key = config
            .checkpoint_key
            .map(|p| backout_config::resolve(path, &p));
        config.crl = config.crl.map(|p| backout_config::resolve(path, &p));
        config.operator_certs = config
            .operator_certs
            .map(|p| backout_config::resolve(path, &p));
        config.plan = config.plan.map(|p| backout_config::resolve(path, &p));
        config.state_dir = backout_config::resolve(path, &config.state_dir);
        config.metrics = config.metrics.map(|m| m.resolved(path));
        if let Some(smtp) = &mut config.smtp {
            smtp.password_file = backout_config::resolve(path, &smtp.password_file);
            smtp.ca = smtp.ca.as_ref().map(|p| backout_config::resolve(path, p));
        }
        for pin in config.plugins.values_mut() {
            pin.path = pin.path.take().map(|p| backout_config::resolve(path, &p));
        }
        if let Some(journal) = &mut config.journal {
            journal.password_file = journal
                .password_file
                .as_ref()
                .map(|p| backout_config::resolve(path, p));
            journal.ca_file = journal
                .ca_file
                .as_ref()
                .map(|p| backout_config::resolve(path, p));
        }
        if let Some(plan) = &config.plan {
            let plan = backout_plan::model::Plan::load(plan).map_err(|e| match e {
                // The plan file itself is missing: the mistake is this
                // file's `plan` line.
                ConfigError::Read { path: plan, source } => ConfigError::invalid(
                    path,
                    "plan",
                    format!(
                        "{}: cannot read it: {source} (a relative path is read from the directory of this file)",
                        plan.display()
                    ),
                ),
                other => other,
            })?;
            config.adopt_plan_hosts(&plan);
        }
        config.validate(path)?;
        config.check_operator_certs(path)?;
        Ok(config)
    }

    /// With `operator_certs`: each configured operator's certificate chains
    /// to the fleet CA, is not revoked, and attests exactly the configured
    /// roles. The first operator out of step is named.
    fn check_operator_certs(&self, path: &Path) -> Result<(), ConfigError> {
        let Some(dir) = &self.operator_certs else {
            return Ok(());
        };
        let mut material = self
            .tls
            .load()
            .map_err(|e| ConfigError::invalid(path, "tls", e.to_string()))?;
        if let Some(crl) = &self.crl {
            material = material
                .with_crl(crl)
                .map_err(|e| ConfigError::invalid(path, "crl", e.to_string()))?;
        }
        for (name, configured) in &self.operators {
            let field = format!("operators.{name}");
            let cert = dir.join(format!("{name}.pem"));
            let attested = attested_roles(&material, &cert, name)
                .map_err(|e| ConfigError::invalid(path, &field, e))?;
            let mut configured = configured.clone();
            configured.sort();
            configured.dedup();
            if attested != configured {
                return Err(ConfigError::invalid(
                    path,
                    &field,
                    format!(
                        "operator {name} is out of step: the configuration gives roles [{}] but {} attests [{}] (re-issue it: backout pki renew operator {name} --role ...)",
                        configured.join(", "),
                        cert.display(),
                        attested.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The plan's `[[host]]` list is the fleet: every host is an agent that
    /// may connect, with the plan's groups. `[[agent]]` entries add agents
    /// outside the plan (and groups to plan hosts).
    pub fn adopt_plan_hosts(&mut self, plan: &backout_plan::model::Plan) {
        for host in &plan.hosts {
            match self.agents.iter_mut().find(|a| a.id == host.id) {
                Some(agent) => {
                    for group in &host.groups {
                        if !agent.groups.contains(group) {
                            agent.groups.push(group.clone());
                        }
                    }
                }
                None => self.agents.push(AgentEntry {
                    id: host.id.clone(),
                    groups: host.groups.clone(),
                }),
            }
        }
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        for (field, every) in [
            ("heartbeat_interval", self.heartbeat_interval),
            ("command_ttl", self.command_ttl),
            ("evaluate_every", self.evaluate_every),
            ("journal_summary_every", self.journal_summary_every),
        ] {
            if every.is_zero() {
                return Err(ConfigError::invalid(
                    path,
                    field,
                    "must be longer than zero",
                ));
            }
        }
        if self.checkpoint_every == 0 {
            return Err(ConfigError::invalid(
                path,
                "checkpoint_every",
                "must be at least 1 (entries between two signed checkpoints)",
            ));
        }
        self.validate_ha(path)?;
        if let Some(metrics) = &self.metrics {
            metrics
                .addr()
                .map_err(|e| ConfigError::invalid(path, "metrics.listen", e))?;
        }
        let mut ids = BTreeSet::new();
        for (i, agent) in self.agents.iter().enumerate() {
            backout_tls::identity::validate_name(&agent.id)
                .map_err(|e| ConfigError::invalid(path, format!("agent[{i}].id"), e.to_string()))?;
            if !ids.insert(agent.id.as_str()) {
                return Err(ConfigError::invalid(
                    path,
                    format!("agent[{i}].id"),
                    format!("agent `{}` is listed twice", agent.id),
                ));
            }
        }
        let groups: BTreeSet<&str> = self
            .agents
            .iter()
            .flat_map(|a| a.groups.iter().map(String::as_str))
            .collect();
        let known = |name: &str| ids.contains(name) || groups.contains(name);
        for (i, check) in self.assess.checks.iter().enumerate() {
            for target in &check.agents {
                if !known(target) {
                    return Err(ConfigError::invalid(
                        path,
                        format!("assess.check[{i}].agents"),
                        format!("`{target}` is neither an agent id nor a group"),
                    ));
                }
            }
            if let Err(e) = url_like(&check.url) {
                return Err(ConfigError::invalid(
                    path,
                    format!("assess.check[{i}].url"),
                    e,
                ));
            }
        }
        for (name, pin) in &self.plugins {
            let ok = pin.sha256.len() == 64 && pin.sha256.chars().all(|c| c.is_ascii_hexdigit());
            if !ok {
                return Err(ConfigError::invalid(
                    path,
                    format!("plugins.{name}.sha256"),
                    "expected 64 hex digits",
                ));
            }
        }
        if let Some(smtp) = &self.smtp {
            match backout_config::exposed_mode(&smtp.password_file) {
                Err(e) => {
                    return Err(ConfigError::invalid(
                        path,
                        "smtp.password_file",
                        format!("cannot read {}: {e}", smtp.password_file.display()),
                    ));
                }
                Ok(Some(mode)) => {
                    return Err(ConfigError::invalid(
                        path,
                        "smtp.password_file",
                        backout_config::exposed_message(&smtp.password_file, mode),
                    ));
                }
                Ok(None) => {}
            }
            if let Some(Err(e)) = smtp.ca.as_ref().map(std::fs::metadata) {
                return Err(ConfigError::invalid(path, "smtp.ca", e.to_string()));
            }
            if !smtp.from.contains('@') {
                return Err(ConfigError::invalid(
                    path,
                    "smtp.from",
                    format!("`{}` is not an e-mail address", smtp.from),
                ));
            }
        }
        for name in self.operators.keys() {
            backout_tls::identity::validate_name(name).map_err(|e| {
                ConfigError::invalid(path, format!("operators.{name}"), e.to_string())
            })?;
        }
        Ok(())
    }

    pub fn tls_files(&self) -> TlsFiles {
        self.tls.clone()
    }

    /// Whether `target` (an agent id or a group) names `agent_id`; an empty
    /// target list names every agent.
    pub fn targets(&self, targets: &[String], agent_id: &str) -> bool {
        targets.is_empty()
            || targets.iter().any(|t| {
                t == agent_id
                    || self
                        .agents
                        .iter()
                        .any(|a| a.id == agent_id && a.groups.iter().any(|g| g == t))
            })
    }

    /// The journal's file.
    /// The PostgreSQL journal's fields: a connection string that parses and
    /// holds no password, a readable password file, an advertised address,
    /// a lease of at least a second.
    fn validate_ha(&self, path: &Path) -> Result<(), ConfigError> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let bad = |field: &str, message: String| ConfigError::invalid(path, field, message);
        let conninfo: tokio_postgres::Config = journal
            .postgres
            .parse()
            .map_err(|e| bad("journal.postgres", format!("not a connection string: {e}")))?;
        if conninfo.get_password().is_some() {
            return Err(bad(
                "journal.postgres",
                "holds a password: put it in a file named by `password_file`".into(),
            ));
        }
        journal
            .password()
            .map_err(|e| bad("journal.password_file", e))?;
        if let Some(file) = &journal.password_file
            && let Ok(Some(mode)) = backout_config::exposed_mode(file)
        {
            return Err(bad(
                "journal.password_file",
                backout_config::exposed_message(file, mode),
            ));
        }
        match &journal.ca_file {
            Some(ca) => {
                check_ca_file(ca)
                    .map_err(|e| bad("journal.ca_file", format!("{}: {e}", ca.display())))?;
            }
            None if conninfo.get_ssl_mode() == tokio_postgres::config::SslMode::Require => {
                return Err(bad(
                    "journal.ca_file",
                    "missing: `sslmode=require` in `journal.postgres` needs the CA certificate that signed the server's".into(),
                ));
            }
            None => {}
        }
        match &self.advertise {
            Some(a)
                if a.rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) => {}
            Some(a) => return Err(bad("advertise", format!("`{a}` is not host:port"))),
            None => {
                return Err(bad(
                    "advertise",
                    "missing: with `journal.postgres`, each coordinator names the address agents dial it at".into(),
                ));
            }
        }
        if self.lease_ttl < Duration::from_secs(1) {
            return Err(bad("lease_ttl", "must be at least 1s".into()));
        }
        Ok(())
    }

    pub fn journal_path(&self) -> PathBuf {
        self.state_dir.join("journal.db")
    }

    pub fn is_known_agent(&self, id: &str) -> bool {
        self.agents.iter().any(|a| a.id == id)
    }
}

fn url_like(url: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("`{url}` is not an http:// or https:// URL"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MINIMAL: &str = r#"
listen = "127.0.0.1:0"
command_key = "k"
[tls]
ca = "ca.pem"
cert = "c.pem"
key = "c.key"
[[agent]]
id = "app-1"
groups = ["app"]
"#;

    /// A password file as an operator should write it: owner-only.
    fn write_private(path: &Path, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coordinator.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn the_plans_hosts_are_agents_that_may_connect() {
        let (dir, path) = write(&format!("plan = \"plan.toml\"\n{MINIMAL}"));
        std::fs::write(
            dir.path().join("plan.toml"),
            "[plan]\nname = \"p\"\n[[host]]\nid = \"app-1\"\ngroups = [\"web\"]\n[[host]]\nid = \"db-1\"\ngroups = [\"db\"]\n",
        )
        .unwrap();
        let config = CoordinatorConfig::load(&path).unwrap();
        assert!(config.is_known_agent("db-1"), "a plan host may connect");
        assert!(config.targets(&["db".into()], "db-1"));
        assert!(
            config.targets(&["app".into()], "app-1") && config.targets(&["web".into()], "app-1"),
            "groups from both lists"
        );
        assert_eq!(config.agents.len(), 2, "no host listed twice");
    }

    #[test]
    fn a_journal_password_file_every_user_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, path) = write(&format!(
            "journal = {{ postgres = \"host=db dbname=backout user=backout\", password_file = \"pg.pass\" }}\nadvertise = \"10.0.0.5:7443\"\n{MINIMAL}"
        ));
        let pass = dir.path().join("pg.pass");
        std::fs::write(&pass, "secret\n").unwrap();
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = CoordinatorConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("coordinator.toml:1: field `journal.password_file`")
                && err.contains("every user")
                && err.contains("chmod 600"),
            "{err}"
        );
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = CoordinatorConfig::load(&path).unwrap();
        let journal = config.journal.as_ref().unwrap();
        assert_eq!(journal.password().unwrap().as_deref(), Some("secret"));
    }

    #[test]
    fn relative_paths_resolve_against_the_file() {
        let (dir, path) = write(MINIMAL);
        let config = CoordinatorConfig::load(&path).unwrap();
        assert_eq!(config.tls.ca, dir.path().join("ca.pem"));
        assert!(config.targets(&["app".into()], "app-1"));
        assert!(!config.targets(&["db".into()], "app-1"));
    }

    #[test]
    fn a_check_on_an_unknown_agent_names_the_field() {
        let text = format!(
            "{MINIMAL}\n[[assess.check]]\nname = \"x\"\nurl = \"http://h/\"\nagents = [\"nope\"]\n"
        );
        let (_dir, path) = write(&text);
        let err = CoordinatorConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("coordinator.toml:15: field `assess.check[0].agents`"),
            "{err}"
        );
    }

    #[test]
    fn the_documented_example_loads() {
        // The ```toml block of this module's documentation, as written.
        let source = include_str!("config.rs");
        let example: String = source
            .lines()
            .skip_while(|l| *l != "//! ```toml")
            .skip(1)
            .take_while(|l| *l != "//! ```")
            .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start_matches(' ')))
            .collect();
        assert!(example.contains("[tls]"), "{example}");
        let (dir, path) = write(&example);
        std::fs::write(dir.path().join("plan.toml"), "[plan]\nname = \"p\"\n").unwrap();
        // The files the example names that are read when it loads.
        std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
        write_private(&dir.path().join("secrets/smtp-password"), "pw\n");
        write_private(&dir.path().join("pg.pass"), "pw\n");
        let config = CoordinatorConfig::load(&path).unwrap();
        assert_eq!(config.state_dir, dir.path().join("state"));
        assert_eq!(config.journal_summary_every, Duration::from_secs(15 * 60));
        assert_eq!(config.advertise.as_deref(), Some("10.0.0.5:7443"));
        assert!(config.smtp.is_some());
        assert_eq!(config.plan, Some(dir.path().join("plan.toml")));
        assert_eq!(config.evaluate_every, Duration::from_secs(1));
        assert_eq!(config.assess.checks.len(), 1);
        assert!(config.plugins.contains_key("health"));
    }

    #[test]
    fn smtp_needs_its_password_file_and_names_the_field() {
        let smtp = "[smtp]\nserver = \"localhost\"\ntls = \"starttls\"\nusername = \"u\"\npassword_file = \"pw\"\nfrom = \"b@example.com\"\n";
        let (dir, path) = write(&format!("{MINIMAL}{smtp}"));
        let err = CoordinatorConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("field `smtp.password_file`"), "{err}");
        std::fs::write(dir.path().join("pw"), "secret").unwrap();
        let err = CoordinatorConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("field `smtp.password_file`") && err.contains("chmod 600"),
            "a password file every user can read: {err}"
        );
        write_private(&dir.path().join("pw"), "secret");
        let config = CoordinatorConfig::load(&path).unwrap();
        let smtp = config.smtp.unwrap();
        assert_eq!(
            (smtp.port(), smtp.password_file),
            (587, dir.path().join("pw"))
        );
        let (_dir, path) = write(&format!(
            "{MINIMAL}[smtp]\nserver = \"s\"\ntls = \"plain\"\n"
        ));
        let err = CoordinatorConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("plain"), "{err}");
    }

    #[test]
    fn operator_certificates_must_attest_the_configured_roles() {
        use backout_tls::pki::{self, LeafOptions};
        let dir = tempfile::tempdir().unwrap();
        pki::init(dir.path(), "roles.local", &LeafOptions::default()).unwrap();
        let with_roles = |roles: &[&str]| LeafOptions {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..LeafOptions::default()
        };
        let alice = Identity::Operator("alice".into());
        pki::issue(dir.path(), &alice, &with_roles(&["dba"])).unwrap();
        let config = |alice_roles: &str, crl: &str| {
            format!(
                "listen = \"127.0.0.1:0\"\ncommand_key = \"k\"\noperator_certs = \"operators\"\n{crl}[tls]\nca = \"ca.pem\"\ncert = \"coordinator.pem\"\nkey = \"coordinator.key\"\n[operators]\nalice = [{alice_roles}]\n"
            )
        };
        let path = dir.path().join("coordinator.toml");
        std::fs::write(&path, config("\"dba\", \"technical-lead\"", "")).unwrap();
        let err = CoordinatorConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("coordinator.toml:9: field `operators.alice`"),
            "{err}"
        );
        assert!(
            err.contains("operator alice is out of step: the configuration gives roles [dba, technical-lead] but")
                && err.contains("attests [dba]"),
            "{err}"
        );
        // Re-issued with both roles, the two agree.
        pki::renew(dir.path(), &alice, &with_roles(&["dba", "technical-lead"])).unwrap();
        CoordinatorConfig::load(&path).unwrap();
        // A certificate from another CA with the right roles is not accepted.
        let other = tempfile::tempdir().unwrap();
        pki::init(other.path(), "roles.local", &LeafOptions::default()).unwrap();
        pki::issue(
            other.path(),
            &alice,
            &with_roles(&["dba", "technical-lead"]),
        )
        .unwrap();
        let (forged, _) = pki::leaf_paths(other.path(), &alice);
        let (real, _) = pki::leaf_paths(dir.path(), &alice);
        let kept = std::fs::read(&real).unwrap();
        std::fs::copy(&forged, &real).unwrap();
        let err = CoordinatorConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("not accepted by the fleet CA"), "{err}");
        std::fs::write(&real, kept).unwrap();
        // Nor is a revoked one.
        backout_tls::crl::revoke(
            dir.path(),
            Some(&real),
            &backout_tls::crl::CrlOptions::default(),
        )
        .unwrap();
        std::fs::write(
            &path,
            config("\"dba\", \"technical-lead\"", "crl = \"crl.pem\"\n"),
        )
        .unwrap();
        let err = CoordinatorConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("field `operators.alice`") && err.contains("evoked"),
            "{err}"
        );
    }

    #[test]
    fn a_plan_that_is_not_there_names_the_plan_line() {
        let (_dir, path) = write(&format!("plan = \"plans/plan.toml\"\n{MINIMAL}"));
        let err = CoordinatorConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("coordinator.toml:1: field `plan`: ")
                && err.contains("plans/plan.toml: cannot read it"),
            "{err}"
        );
    }

    #[test]
    fn a_typo_is_an_error_with_line_and_field() {
        let text = MINIMAL.replace("command_key", "comand_key");
        let (_dir, path) = write(&text);
        let err = CoordinatorConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("coordinator.toml:3:"), "{err}");
        assert!(err.contains("comand_key"), "{err}");
    }
}
