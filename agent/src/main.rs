//! `backout-agent`: runs on every host, dials the coordinator, verifies signed
//! commands and runs them in sandboxed WASM plugins.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use backout_agent::admit::Admission;
use backout_agent::config::AgentConfig;
use backout_agent::ledger::Ledger;
use backout_agent::metrics::AgentMetrics;
use backout_agent::nonces::NonceStore;
use backout_agent::plugin::{PluginHost, SecretStore};
use backout_agent::session::{self, Agent};
use backout_proto::command::CommandVerifier;
use backout_tls::tls::TlsMaterial;
use backout_tls::{Identity, TlsFiles};
use clap::Parser;
use tracing::Instrument;

/// Backout agent: verifies signed phase commands from the coordinator and runs
/// them in sandboxed WASM plugins.
///
/// Exit codes: 0 stopped cleanly, 1 failed, 2 bad configuration.
///
/// Example: backout-agent --config /etc/backout/agent.toml
#[derive(Debug, Parser)]
#[command(name = "backout-agent", version)]
struct Cli {
    /// The agent's configuration file.
    #[arg(long, env = "BACKOUT_AGENT_CONFIG")]
    config: PathBuf,
    /// Load testing only: run one session per `<id>.pem` + `<id>.key` pair in
    /// DIR (e.g. a PKI's `agents/` folder) in this one process, each under its
    /// own certificate, with its own nonces and ledger in `<state_dir>/<id>/`.
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
    let mut parts = Vec::with_capacity(identities.len());
    for files in identities {
        parts.push(session_parts(&config, files, sessions_from.is_some())?);
    }
    let secrets = SecretStore::load(&config.secrets)
        .map_err(|e| BadConfig(format!("{}: {e}", config_path.display())))?;
    let limits = config
        .limits
        .resolve()
        .map_err(|e| BadConfig(format!("{}: [limits]: {e}", config_path.display())))?;
    let host = PluginHost::new(&config.plugins, secrets, limits)
        .map_err(|e| BadConfig(format!("{}: {e}", config_path.display())))?;
    if config.plugins.is_empty() {
        bail!(BadConfig(format!(
            "{}: no [[plugin]] configured",
            config_path.display()
        )));
    }
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

/// What is a session's own: its id, TLS material, admission and ledger.
/// With `own_state_dir`, its nonces and ledger live in `<state_dir>/<id>/`.
fn session_parts(
    config: &AgentConfig,
    files: TlsFiles,
    own_state_dir: bool,
) -> anyhow::Result<(String, TlsMaterial, Admission, Ledger)> {
    let tls = files.load().map_err(|e| BadConfig(e.to_string()))?;
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
    let key_pem = std::fs::read_to_string(&config.command_key)
        .map_err(|e| BadConfig(format!("{}: {e}", config.command_key.display())))?;
    let verifier = CommandVerifier::from_public_key_pem(&key_pem, config.clock_skew)
        .map_err(|e| BadConfig(format!("{}: {e}", config.command_key.display())))?;
    let state_dir = if own_state_dir {
        config.state_dir.join(&id)
    } else {
        config.state_dir.clone()
    };
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("{}: cannot create the state directory", state_dir.display()))?;
    let nonces = NonceStore::open(&state_dir)?;
    let ledger = Ledger::open(&state_dir)?;
    let skew_ms = i64::try_from(config.clock_skew.as_millis()).unwrap_or(i64::MAX);
    tracing::info!(agent = %id, key = %verifier.key_id(), plugins = config.plugins.len(), "agent ready");
    let admission = Admission {
        agent_id: id.clone(),
        verifier,
        skew_ms,
        nonces,
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
    backout_config::logging::init(cli.log.as_deref(), "info");

    let mut agents = match build(&cli.config, cli.sessions_from.as_deref()) {
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
    if let Err(error) = serve_metrics(&agents).await {
        say(
            &mut std::io::stderr(),
            format_args!("backout-agent: {error:#}"),
        );
        return ExitCode::from(1);
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
                    cli.config.display()
                ),
            );
            return ExitCode::from(2);
        }
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
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
        () = sigterm() => ExitCode::SUCCESS,
    };
    backout_config::otel::flush();
    code
}

/// Starts the `/metrics` listener when the configuration has `[metrics]`
/// (its address was checked when the configuration was loaded).
async fn serve_metrics(agents: &[Agent]) -> anyhow::Result<()> {
    let Some(first) = agents.first() else {
        return Ok(());
    };
    let Some(config) = &first.config.metrics else {
        return Ok(());
    };
    let addr = config
        .addr()
        .map_err(|e| anyhow::anyhow!("metrics.listen: {e}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    let addr = listener.local_addr()?;
    let metrics = first.metrics.clone();
    backout_config::metrics::serve(listener, move || metrics.render());
    say(
        &mut std::io::stdout(),
        format_args!("backout-agent: metrics on http://{addr}/metrics"),
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

async fn sigterm() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
