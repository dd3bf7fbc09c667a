//! `backout`: the coordinator server and the operator CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use backout::cli::{self, Exit, Output, client::ConnectArgs};
use backout_proto::wire;
use clap::{Parser, Subcommand};

const AFTER_HELP: &str = "\
Exit codes: 0 ok, 1 failed (unhealthy, refused, unreachable), 2 bad input (flags, files, configuration).

Examples:
  backout pki init --dir pki --trust-domain prod.example
  backout pki issue operator alice --dir pki
  backout serve --config coordinator.toml
  export BACKOUT_COORDINATOR=127.0.0.1:7443 BACKOUT_PKI=pki BACKOUT_OPERATOR=alice
  backout agents
  backout assess --output json";

#[derive(Debug, Parser)]
#[command(name = "backout", version, about = "Backout: run a production rollback plan across a fleet, securely.", after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Log filter (e.g. info, debug, backout=debug); also RUST_LOG.
    #[arg(long, global = true, env = "BACKOUT_LOG")]
    log: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the fleet PKI and issue certificates.
    #[command(subcommand)]
    Pki(cli::pki::PkiCommand),
    /// Run the coordinator.
    ///
    /// Example: backout serve --config /etc/backout/coordinator.toml
    Serve {
        #[arg(long)]
        config: PathBuf,
        /// Override `listen` from the configuration (host:port; port 0 picks one).
        #[arg(long)]
        listen: Option<String>,
    },
    /// List agents: connected or gone, version, last seen, plugins.
    ///
    /// Example: backout agents --output json
    Agents {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Phase 1.1: run the health checks on every agent now and print one table.
    ///
    /// Example: backout assess --output json
    Assess {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
        /// How long to wait for the slowest host (e.g. 15s).
        #[arg(long, value_parser = backout_config::parse_duration)]
        timeout: Option<std::time::Duration>,
    },
    /// Show who the coordinator thinks you are, and your roles.
    Whoami,
    /// Work with plan files.
    #[command(subcommand)]
    Plan(PlanCommand),
}

#[derive(Debug, Subcommand)]
enum PlanCommand {
    /// Validate a plan and print a summary; exit 2 with file, line and field when invalid.
    ///
    /// Example: backout plan check examples/samia-tarot/plan.toml
    Check {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

fn init_logging(filter: Option<&str>, default: &str) {
    let filter = filter
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| default.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Pki(command) => {
            cli::pki::run(command)?;
            Ok(Exit::Ok)
        }
        Command::Serve { config, listen } => {
            cli::serve::run(&config, listen).await?;
            Ok(Exit::Ok)
        }
        Command::Agents { output } => {
            let mut control = cli.connect.control().await?;
            let reply = control
                .list_agents(wire::ListAgentsRequest {})
                .await
                .map_err(cli::client::status_error)?
                .into_inner();
            Ok(cli::assess::print_agents(&reply, output))
        }
        Command::Assess { output, timeout } => {
            let mut control = cli.connect.control().await?;
            let timeout_ms =
                timeout.map_or(0, |t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX));
            let reply = control
                .assess(wire::AssessRequest { timeout_ms })
                .await
                .map_err(cli::client::status_error)?
                .into_inner();
            Ok(cli::assess::print_assessment(&reply, output))
        }
        Command::Plan(PlanCommand::Check { file, output }) => {
            cli::plan::check(&file, output)?;
            Ok(Exit::Ok)
        }
        Command::Whoami => {
            let mut control = cli.connect.control().await?;
            let reply = control
                .who_am_i(wire::WhoAmIRequest {})
                .await
                .map_err(cli::client::status_error)?
                .into_inner();
            println!("{} (roles: {})", reply.identity, reply.roles.join(", "));
            Ok(Exit::Ok)
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Serve { .. } => "info",
        _ => "warn",
    };
    init_logging(cli.log.as_deref(), default_log);
    match run(cli).await {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(error) => {
            eprintln!("backout: {}", backout_tls::tls::error_chain(error.as_ref()));
            ExitCode::from(cli::exit_code_for(&error) as u8)
        }
    }
}
