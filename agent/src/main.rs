//! `backout-agent`: runs on every host, dials the coordinator, verifies signed
//! commands and runs them in sandboxed WASM plugins.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use backout_agent::admit::Admission;
use backout_agent::config::AgentConfig;
use backout_agent::ledger::Ledger;
use backout_agent::nonces::NonceStore;
use backout_agent::plugin::{PluginHost, SecretStore};
use backout_agent::session::{self, Agent};
use backout_proto::command::CommandVerifier;
use backout_tls::Identity;
use clap::Parser;

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
    /// Log filter (e.g. info, debug); also RUST_LOG.
    #[arg(long, env = "BACKOUT_LOG")]
    log: Option<String>,
}

/// Errors that mean "fix your configuration" (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadConfig(String);

fn build(config_path: &std::path::Path) -> anyhow::Result<Agent> {
    let config = AgentConfig::load(config_path).map_err(|e| BadConfig(e.to_string()))?;
    let tls = config
        .tls_files()
        .load()
        .map_err(|e| BadConfig(e.to_string()))?;
    let id = match &tls.identity {
        Identity::Agent(id) => id.clone(),
        other => {
            return Err(BadConfig(format!(
                "{}: this certificate belongs to {other}, not to an agent",
                config.tls.cert.display()
            ))
            .into());
        }
    };
    let key_pem = std::fs::read_to_string(&config.command_key)
        .map_err(|e| BadConfig(format!("{}: {e}", config.command_key.display())))?;
    let verifier = CommandVerifier::from_public_key_pem(&key_pem, config.clock_skew)
        .map_err(|e| BadConfig(format!("{}: {e}", config.command_key.display())))?;
    std::fs::create_dir_all(&config.state_dir).with_context(|| {
        format!(
            "{}: cannot create the state directory",
            config.state_dir.display()
        )
    })?;
    let nonces = NonceStore::open(&config.state_dir)?;
    let ledger = Ledger::open(&config.state_dir)?;
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
    let skew_ms = i64::try_from(config.clock_skew.as_millis()).unwrap_or(i64::MAX);
    tracing::info!(agent = %id, key = %verifier.key_id(), plugins = config.plugins.len(), "agent ready");
    Ok(Agent {
        admission: Admission {
            agent_id: id.clone(),
            verifier,
            skew_ms,
            nonces,
        },
        id,
        config,
        tls,
        host,
        ledger,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = cli
        .log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();

    let agent = match build(&cli.config) {
        Ok(agent) => Arc::new(agent),
        Err(error) => {
            eprintln!("backout-agent: {}", session::describe(&error));
            let code = if error.is::<BadConfig>() { 2 } else { 1 };
            return ExitCode::from(code);
        }
    };
    println!(
        "backout-agent: {} dialling {}",
        agent.id, agent.config.coordinator
    );
    tokio::select! {
        () = session::run(agent) => ExitCode::SUCCESS,
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
        () = sigterm() => ExitCode::SUCCESS,
    }
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
