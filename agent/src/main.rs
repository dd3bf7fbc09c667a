//! `backout-agent`: runs on every host, dials the coordinator, verifies signed
//! commands and runs them in sandboxed WASM plugins.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use backout_agent::admit::Admission;
use backout_agent::config::AgentConfig;
use backout_agent::ledger::{Ledger, Store};
use backout_agent::local;
use backout_agent::metrics::AgentMetrics;
use backout_agent::plugin::{PluginHost, PluginHostError, SecretStore, StepOutcome};
use backout_agent::session::{self, Agent};
use backout_config::logging::LogFormat;
use backout_config::metrics::MetricsError;
use backout_proto::command::CommandVerifier;
use backout_tls::tls::TlsMaterial;
use backout_tls::{Identity, TlsFiles};
use clap::{CommandFactory, Parser};
use tracing::Instrument;

/// Backout agent: verifies signed phase commands from the coordinator and runs
/// them in sandboxed WASM plugins.
///
/// Exit codes: 0 stopped cleanly, 1 failed, 2 bad configuration.
///
/// SIGHUP reads the configuration file and every plugin file again: a new,
/// changed or removed `[[plugin]]` entry and a new or changed plugin file
/// apply without a restart; a plugin that fails to load is disabled
/// (logged, and shown by `backout agents`) while the others keep serving.
/// A configuration that does not load is logged and the old one kept; other
/// changed settings are logged as needing a restart.
///
/// Example: backout-agent --config /etc/backout/agent.toml
#[derive(Debug, Parser)]
#[command(name = "backout-agent", version, subcommand_negates_reqs = true)]
struct Cli {
    /// The agent's configuration file.
    #[arg(
        long,
        env = "BACKOUT_AGENT_CONFIG",
        required_unless_present = "generate_assets"
    )]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<AgentCommand>,
    /// Load testing only: run one session per `<id>.pem` + `<id>.key` pair in
    /// DIR (e.g. a PKI's `agents/` folder) in this one process, each under its
    /// own certificate; they share one `<state_dir>/agent.db` (each session's
    /// steps under its id) and commit its writes together.
    /// The configuration's `[tls] cert` and `key` are then ignored (its `ca`
    /// is used); the compiled plugins are shared. Needs about 8 open files
    /// per session.
    ///
    /// Example: backout-agent --config agent.toml --sessions-from pki/agents
    #[arg(long, value_name = "DIR")]
    sessions_from: Option<PathBuf>,
    /// Log filter (e.g. info, debug); also RUST_LOG.
    #[arg(long, env = "BACKOUT_LOG")]
    log: Option<String>,
    /// Log lines as text, or as one JSON object per line with the run,
    /// phase, step and host as fields.
    #[arg(long, env = "BACKOUT_LOG_FORMAT", value_enum, default_value_t)]
    log_format: LogFormat,
    /// Packaging: write shell completions and man pages into DIR, and exit.
    #[arg(long, hide = true, value_name = "DIR")]
    generate_assets: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum AgentCommand {
    /// Work with plugin components without a coordinator.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Debug, clap::Subcommand)]
enum PluginCommand {
    /// Run one step of a plugin here, in the same sandbox and under the
    /// same kind of grants as an agent runs it, and print the outcome.
    /// Nothing is granted unless given. Exit 0 when the step succeeded, 1
    /// when it failed, 2 on bad input (a file, a flag, a plugin that does
    /// not load).
    ///
    /// Example: backout-agent plugin run target/plugins/health.wasm check --params '{"checks":[{"name":"app","url":"http://127.0.0.1:8080/health"}]}' --grant urls=http://127.0.0.1:8080/
    Run {
        /// The plugin component (.wasm).
        file: PathBuf,
        /// The action to run (as a plan's step names it).
        action: String,
        /// The step's params: JSON text, or @FILE to read them from a file.
        #[arg(long, default_value = "{}")]
        params: String,
        /// A grant, KIND=VALUE (repeat): programs=git, dry_run_programs="git log",
        /// urls=http://127.0.0.1:8080/, read=/var/log/app, write=/opt/app, secrets=NAME.
        #[arg(long = "grant", value_name = "KIND=VALUE")]
        grants: Vec<String>,
        /// A secret for the plugin, granted to it (repeat): NAME (from the
        /// environment variable NAME), NAME=env:VAR or NAME=file:PATH.
        /// Values are never given on the command line.
        #[arg(long = "secret", value_name = "NAME[=env:VAR|file:PATH]")]
        secrets: Vec<String>,
        /// Ask the plugin what it would do: writes, exec (but
        /// dry_run_programs) and HTTP methods other than GET and HEAD are refused.
        #[arg(long)]
        dry_run: bool,
        /// The step's deadline (default: the agent's, 60s).
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// text: the events and the outcome for people; json: one JSON object.
        #[arg(long, value_enum, default_value = "text")]
        output: OutputFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputFormat {
    /// Lines for people.
    Text,
    /// One JSON object for programs.
    Json,
}

/// `backout-agent plugin run`: see [`backout_agent::local`].
async fn plugin_run(command: PluginCommand) -> ExitCode {
    let PluginCommand::Run {
        file,
        action,
        params,
        grants,
        secrets,
        dry_run,
        timeout,
        output,
    } = command;
    let step = (|| {
        let mut granted = backout_agent::plugin::Grants::default();
        for grant in &grants {
            local::add_grant(&mut granted, grant)?;
        }
        let secrets = secrets
            .iter()
            .map(|s| local::parse_secret(s))
            .collect::<Result<_, _>>()?;
        Ok::<_, local::LocalError>(local::LocalStep {
            file,
            action,
            params_json: local::read_params(&params)?,
            grants: granted,
            secrets,
            dry_run,
            deadline: timeout,
        })
    })();
    let text = output == OutputFormat::Text;
    let result = match step {
        Ok(step) => {
            local::run(step, |event| {
                if text {
                    say(
                        &mut std::io::stdout(),
                        format_args!("{}", local::event_line(event)),
                    );
                }
            })
            .await
        }
        Err(e) => Err(e),
    };
    let run = match result {
        Ok(run) => run,
        Err(error) => {
            say(
                &mut std::io::stderr(),
                format_args!("backout-agent: {error}"),
            );
            return ExitCode::from(2);
        }
    };
    let ok = matches!(run.outcome, StepOutcome::Succeeded { .. });
    for need in &run.without {
        say(
            &mut std::io::stderr(),
            format_args!("note: ran without the optional need {need}: not granted"),
        );
    }
    if text {
        match &run.outcome {
            StepOutcome::Succeeded {
                summary, data_json, ..
            } => {
                say(&mut std::io::stdout(), format_args!("SUCCEEDED: {summary}"));
                say(&mut std::io::stdout(), format_args!("data: {data_json}"));
            }
            StepOutcome::Failed { code, message } => {
                say(
                    &mut std::io::stdout(),
                    format_args!("FAILED ({code}): {message}"),
                );
            }
        }
    } else {
        say(
            &mut std::io::stdout(),
            format_args!("{}", local::run_json(&run)),
        );
    }
    ExitCode::from(if ok { 0 } else { 1 })
}

/// Errors that mean "fix your configuration" (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadConfig(String);

/// Builds one [`Agent`] per session: the configuration's own identity, or
/// (with `sessions_from`) every identity in that directory.
fn build(config_path: &Path, sessions_from: Option<&Path>) -> anyhow::Result<Vec<Agent>> {
    let config = AgentConfig::load(config_path).map_err(|e| BadConfig(e.to_string()))?;
    let identities = match sessions_from {
        None => vec![config.tls_files()],
        Some(dir) => identities_in(dir, &config.tls.ca)?,
    };
    std::fs::create_dir_all(&config.state_dir).map_err(|e| {
        bad_field(
            config_path,
            "state_dir",
            format!("{}: cannot create it: {e}", config.state_dir.display()),
        )
    })?;
    let store = Store::open(&config.state_dir)?;
    let mut parts = Vec::with_capacity(identities.len());
    for files in identities {
        parts.push(session_parts(
            config_path,
            &config,
            files,
            &store,
            sessions_from.is_some(),
        )?);
    }
    let secrets = SecretStore::load(&config.secrets)
        .map_err(|e| bad_field(config_path, format!("secrets.{}", e.name()), e.to_string()))?;
    let limits = config
        .limits
        .resolve()
        .map_err(|e| bad_field(config_path, "limits", e.to_string()))?;
    let host = PluginHost::new(&config.plugins, secrets, limits)
        .map_err(|e| bad_field(config_path, plugin_field(&config, &e), e.to_string()))?;
    if config.plugins.is_empty() {
        bail!(BadConfig(format!(
            "{}: no [[plugin]] configured",
            config_path.display()
        )));
    }
    check_policies_name_served_actions(config_path, &config, &host)?;
    let host = Arc::new(host);
    let metrics = Arc::new(AgentMetrics::new());
    Ok(parts
        .into_iter()
        .map(|(id, tls, admission, ledger)| Agent {
            id,
            config: config.clone(),
            tls,
            admission,
            host: host.clone(),
            ledger,
            metrics: metrics.clone(),
        })
        .collect())
}

/// Each `[[approval_policy]]` must name an action a configured plugin
/// serves: a misspelt one would gate nothing and leave the real action
/// ungated. (A plugin disabled for a need not granted runs nothing, so its
/// policies are not checked against it.)
fn check_policies_name_served_actions(
    config_path: &Path,
    config: &AgentConfig,
    host: &PluginHost,
) -> Result<(), BadConfig> {
    let served = host.inventory();
    let disabled: Vec<String> = host
        .disabled()
        .into_iter()
        .map(|(name, _, _)| name)
        .collect();
    for (i, policy) in config.approval_policies.iter().enumerate() {
        let Some((plugin, action)) = policy.action.split_once('.') else {
            continue;
        };
        if disabled.iter().any(|d| d == plugin) {
            continue;
        }
        let problem = match served.iter().find(|p| p.name == plugin) {
            None => format!(
                "no [[plugin]] named `{plugin}` is configured (configured: {}): this policy would gate nothing",
                served
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(p) if !p.actions.iter().any(|a| a == action) => format!(
                "plugin `{plugin}` has no action `{action}` (its actions: {}): this policy would gate nothing",
                p.actions.join(", ")
            ),
            Some(_) => continue,
        };
        return Err(bad_field(
            config_path,
            format!("approval_policy[{i}].action"),
            problem,
        ));
    }
    Ok(())
}

/// A mistake in the configuration file at `file`, naming `field`'s line.
fn bad_field(file: &Path, field: impl Into<String>, message: impl Into<String>) -> BadConfig {
    BadConfig(backout_config::ConfigError::invalid(file, field, message).to_string())
}

/// The field of agent.toml a plugin host error is about
/// (`plugin[1].path`, `plugin[0].grants`, `limits`).
fn plugin_field(config: &AgentConfig, error: &PluginHostError) -> String {
    let entry = |name: &str, field: &str| match config.plugins.iter().position(|p| p.name == name) {
        Some(i) if field.is_empty() => format!("plugin[{i}]"),
        Some(i) => format!("plugin[{i}].{field}"),
        None => "plugin".to_string(),
    };
    match error {
        PluginHostError::Grants { plugin, .. } | PluginHostError::Needs { plugin, .. } => {
            entry(plugin, "grants")
        }
        PluginHostError::Limits { plugin, .. } => entry(plugin, "limits"),
        PluginHostError::Read { plugin, .. } | PluginHostError::Compile { plugin, .. } => {
            entry(plugin, "path")
        }
        PluginHostError::Describe { plugin, .. } => entry(plugin, ""),
        PluginHostError::Duplicate(plugin) => entry(plugin, "name"),
        PluginHostError::DefaultLimits(_) => "limits".into(),
        PluginHostError::Engine(_) => "plugin".into(),
    }
}

/// What is a session's own: its id, TLS material, admission and ledger.
/// With `shared`, its step keys in the shared database carry its id.
fn session_parts(
    config_path: &Path,
    config: &AgentConfig,
    files: TlsFiles,
    store: &Arc<Store>,
    shared: bool,
) -> anyhow::Result<(String, TlsMaterial, Admission, Ledger)> {
    let tls = files.load().map_err(|e| match &e {
        // A `[tls]` file of agent.toml (not one of --sessions-from's):
        // name its line.
        backout_tls::TlsError::File { path, message } if !shared => {
            match config.tls.field_of(path) {
                Some(field) => bad_field(
                    config_path,
                    format!("tls.{field}"),
                    format!("{}: {message}", path.display()),
                ),
                None => BadConfig(e.to_string()),
            }
        }
        _ => BadConfig(e.to_string()),
    })?;
    let id = match &tls.identity {
        Identity::Agent(id) => id.clone(),
        other => {
            return Err(BadConfig(format!(
                "{}: this certificate belongs to {other}, not to an agent",
                files.cert.display()
            ))
            .into());
        }
    };
    let key = |e: String| {
        bad_field(
            config_path,
            "command_key",
            format!("{}: {e}", config.command_key.display()),
        )
    };
    let key_pem = std::fs::read_to_string(&config.command_key).map_err(|e| key(e.to_string()))?;
    let verifier = CommandVerifier::from_public_key_pem(&key_pem, config.clock_skew)
        .map_err(|e| key(e.to_string()))?;
    let prefix = if shared {
        format!("{id}/")
    } else {
        String::new()
    };
    let ledger = Ledger::new(store.clone(), prefix);
    let skew_ms = i64::try_from(config.clock_skew.as_millis()).unwrap_or(i64::MAX);
    tracing::info!(agent = %id, key = %verifier.key_id(), plugins = config.plugins.len(), "agent ready");
    let admission = Admission {
        agent_id: id.clone(),
        verifier,
        skew_ms,
        approvals: backout_agent::admit::ApprovalGate::new(
            config.approval_policies.clone(),
            tls.clone(),
        ),
    };
    Ok((id, tls, admission, ledger))
}

/// The TLS files of every `<id>.pem` with an `<id>.key` beside it in `dir`,
/// sorted by file name, each with the fleet's CA.
fn identities_in(dir: &Path, ca: &Path) -> anyhow::Result<Vec<TlsFiles>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| BadConfig(format!("{}: {e}", dir.display())))?;
    let mut certs = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| BadConfig(format!("{}: {e}", dir.display())))?
            .path();
        if path.extension().is_some_and(|e| e == "pem") && path.with_extension("key").is_file() {
            certs.push(path);
        }
    }
    if certs.is_empty() {
        bail!(BadConfig(format!(
            "{}: no <id>.pem with its <id>.key here",
            dir.display()
        )));
    }
    certs.sort();
    Ok(certs
        .into_iter()
        .map(|cert| TlsFiles {
            ca: ca.to_path_buf(),
            key: cert.with_extension("key"),
            cert,
        })
        .collect())
}

/// The soft limit on open files, from `/proc/self/limits` (Linux).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(AgentCommand::Plugin(command)) = cli.command {
        backout_config::logging::init(cli.log.as_deref(), "warn", cli.log_format);
        return plugin_run(command).await;
    }
    backout_config::logging::init(cli.log.as_deref(), "info", cli.log_format);
    if let Some(dir) = &cli.generate_assets {
        return match backout_config::assets::write(Cli::command(), dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                say(
                    &mut std::io::stderr(),
                    format_args!("backout-agent: {}: {e}", dir.display()),
                );
                ExitCode::FAILURE
            }
        };
    }
    // Required by clap unless a subcommand or --generate-assets is given.
    let Some(config) = cli.config.as_deref() else {
        say(
            &mut std::io::stderr(),
            format_args!("backout-agent: --config is required"),
        );
        return ExitCode::from(2);
    };

    let mut agents = match build(config, cli.sessions_from.as_deref()) {
        Ok(agents) => agents,
        Err(error) => {
            say(
                &mut std::io::stderr(),
                format_args!("backout-agent: {}", session::describe(&error)),
            );
            let code = if error.is::<BadConfig>() { 2 } else { 1 };
            return ExitCode::from(code);
        }
    };
    if let Err(error) = serve_metrics(config, &agents).await {
        say(
            &mut std::io::stderr(),
            format_args!("backout-agent: {error:#}"),
        );
        let code = if error.is::<BadConfig>() { 2 } else { 1 };
        return ExitCode::from(code);
    }
    let otlp = agents
        .first()
        .and_then(|a| a.config.otlp.as_ref())
        .map(|o| o.endpoint.as_str());
    match backout_config::otel::start("backout-agent", otlp) {
        Ok(Some(endpoint)) => tracing::info!(%endpoint, "traces exported over OTLP"),
        Ok(None) => {}
        Err(error) => {
            say(
                &mut std::io::stderr(),
                format_args!(
                    "backout-agent: {}: field `otlp.endpoint`: {error}",
                    config.display()
                ),
            );
            return ExitCode::from(2);
        }
    }
    // Under systemd (`Type=notify`): ready once the state files are open and
    // the plugins compiled, before the first dial (an agent whose coordinator
    // is down is still a running agent, retrying); pings while the runtime
    // runs. Nothing happens without `NOTIFY_SOCKET`.
    backout_config::service::ready();
    backout_config::service::spawn_watchdog();
    // SIGHUP: read the plugin files again (new or changed ones are loaded,
    // one that fails to load is disabled), without a restart.
    if let Some(agent) = agents.first() {
        tokio::spawn(reload_on_sighup(
            config.to_path_buf(),
            agent.config.clone(),
            agent.host.clone(),
        ));
    }
    let many = cli.sessions_from.is_some();
    let sessions = async move {
        if many {
            run_many(agents).await;
        } else if let Some(agent) = agents.pop() {
            say(
                &mut std::io::stdout(),
                format_args!(
                    "backout-agent: {} dialling {}",
                    agent.id, agent.config.coordinator
                ),
            );
            session::run(Arc::new(agent)).await;
        }
    };
    let code = tokio::select! {
        () = sessions => ExitCode::SUCCESS,
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("SIGINT: stopping (the coordinator sees the session end)");
            ExitCode::SUCCESS
        }
        () = sigterm() => {
            tracing::info!("SIGTERM: stopping (the coordinator sees the session end)");
            backout_config::service::stopping();
            ExitCode::SUCCESS
        }
    };
    backout_config::otel::flush();
    code
}

/// Starts the `/metrics` listener when the configuration (`config_path`)
/// has `[metrics]`: plain HTTP on loopback, or mutual TLS with
/// `[metrics.tls]`. An address or TLS file that is wrong is bad input.
async fn serve_metrics(config_path: &Path, agents: &[Agent]) -> anyhow::Result<()> {
    let Some(first) = agents.first() else {
        return Ok(());
    };
    let Some(config) = &first.config.metrics else {
        return Ok(());
    };
    let listener = config.bind().await.map_err(|e| match e {
        MetricsError::Invalid(message) => {
            anyhow::Error::new(BadConfig(format!("{}: {message}", config_path.display())))
        }
        other => other.into(),
    })?;
    let url = listener.url()?;
    let metrics = first.metrics.clone();
    listener.serve(move || metrics.render());
    say(
        &mut std::io::stdout(),
        format_args!("backout-agent: metrics on {url}"),
    );
    Ok(())
}

/// Runs every session as its own task (`--sessions-from`), until the process
/// is stopped. Each session's logs carry its agent id.
async fn run_many(agents: Vec<Agent>) {
    let needed = 8 * agents.len() as u64 + 64;
    if let Some(limit) = open_files_limit().filter(|l| *l < needed) {
        tracing::warn!(
            sessions = agents.len(),
            limit,
            needed,
            "the open-files limit may be too low for this many sessions (raise it with ulimit -n)"
        );
    }
    if let Some(first) = agents.first() {
        say(
            &mut std::io::stdout(),
            format_args!(
                "backout-agent: {} sessions dialling {}",
                agents.len(),
                first.config.coordinator
            ),
        );
    }
    for agent in agents {
        let span = tracing::info_span!("session", agent = %agent.id);
        tokio::spawn(session::run(Arc::new(agent)).instrument(span));
    }
    std::future::pending::<()>().await
}

/// Writes one line, ignoring a failure: a service whose standard output or
/// error was closed (or whose reader went away) keeps running, where
/// `println!` would panic.
fn say(to: &mut impl std::io::Write, line: std::fmt::Arguments<'_>) {
    let _ = writeln!(to, "{line}").and_then(|()| to.flush());
}

/// At every SIGHUP, reads the configuration file (`path`) again and applies
/// its `[[plugin]]` entries; see [`PluginHost::reconfigure`]. A file that
/// does not load is logged and the running configuration kept.
async fn reload_on_sighup(path: PathBuf, running: AgentConfig, host: Arc<PluginHost>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: plugins reload only on restart");
        return;
    };
    // The entries applied last: kept when the file does not load.
    let mut applied = running.plugins.clone();
    while hangups.recv().await.is_some() {
        tracing::info!(config = %path.display(), "SIGHUP: reading the configuration and the plugins again");
        let plugins = match AgentConfig::load(&path) {
            Ok(config) if config.plugins.is_empty() => {
                tracing::error!(config = %path.display(), "the configuration names no [[plugin]]; keeping the running one");
                applied.clone()
            }
            Ok(config) => {
                for field in needs_restart(&running, &config) {
                    tracing::warn!(config = %path.display(), field, "this setting changed and needs a restart to apply; the running value is kept");
                }
                config.plugins
            }
            Err(e) => {
                tracing::error!(error = %e, "the configuration does not load; keeping the running one");
                applied.clone()
            }
        };
        applied.clone_from(&plugins);
        let host = host.clone();
        // Compiling is CPU-heavy: off the async threads.
        let _ = tokio::task::spawn_blocking(move || host.reconfigure(&plugins)).await;
    }
}

/// The settings of `new` that differ from the `running` configuration and
/// apply only at start (everything but the `[[plugin]]` entries).
fn needs_restart(running: &AgentConfig, new: &AgentConfig) -> Vec<&'static str> {
    let changed = [
        ("coordinator", running.coordinator != new.coordinator),
        ("server_name", running.server_name != new.server_name),
        ("command_key", running.command_key != new.command_key),
        ("state_dir", running.state_dir != new.state_dir),
        ("clock_skew", running.clock_skew != new.clock_skew),
        ("tls", running.tls != new.tls),
        ("reconnect", running.reconnect != new.reconnect),
        ("limits", running.limits != new.limits),
        ("secrets", running.secrets != new.secrets),
        ("metrics", running.metrics != new.metrics),
        ("otlp", running.otlp != new.otlp),
        (
            "approval_policy",
            running.approval_policies != new.approval_policies,
        ),
    ];
    changed
        .into_iter()
        .filter_map(|(field, changed)| changed.then_some(field))
        .collect()
}

async fn sigterm() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
