//! `backout`: the coordinator server and the operator CLI.
//!
//! Only the clap root lives here: the global flags, one variant per command
//! (each command's flags and its `run` are in `cli/<command>.rs`), dispatch
//! and the exit code.

use std::process::ExitCode;

use backout::cli::{self, Exit, client::ConnectArgs};
use clap::{Parser, Subcommand};

const AFTER_HELP: &str = "\
Exit codes: 0 ok, 1 failed (unhealthy, refused, unreachable, a trigger fired), 2 bad input (flags, files, configuration), 3 unknown (assess: nothing fired but a trigger has no data).

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
    Pki(cli::pki::Args),
    /// Run the coordinator.
    ///
    /// Example: backout serve --config /etc/backout/coordinator.toml
    Serve(cli::serve::Args),
    /// List agents: connected or gone, version, last seen, plugins.
    ///
    /// Example: backout agents --output json
    Agents(cli::agents::Args),
    /// Phase 1.1: run the health checks on every agent now and print one table.
    ///
    /// Example: backout assess --output json
    Assess(cli::assess::Args),
    /// Watch the decision matrix after a deploy; act when a trigger fires.
    ///
    /// Example: backout guard --deploy-time 2026-01-15T02:00:00Z
    Guard(cli::guard::Args),
    /// Set manual signals and record counted events.
    #[command(subcommand)]
    Signal(cli::signal::Args),
    /// Show who the coordinator thinks you are, and your roles.
    Whoami,
    /// Show which coordinator leads: its lease epoch and age, the standbys.
    ///
    /// Example: BACKOUT_COORDINATOR=c1:7443,c2:7443 backout status
    Status(cli::status::Args),
    /// Start a rollback run.
    #[command(subcommand)]
    Rollback(cli::rollback::Args),
    /// Approve (or refuse) a run or one of its gated phases, under your own certificate.
    ///
    /// Example: backout approve run-1700000000000-a1b2c3 --phase database
    Approve(cli::approve::Args),
    /// List runs with their status and the approvals they wait for.
    Runs(cli::runs::Args),
    /// Follow a run live: a progress bar per phase and host, plugins' log
    /// lines, approvals waited on, the final result. Any number of people can
    /// watch the same run. Exit 0 when the run succeeds, 1 otherwise.
    ///
    /// Example: backout watch run-1700000000000-a1b2c3 --output json
    Watch(cli::watch::Args),
    /// The post-rollback report of a run: summary, timeline, approvals,
    /// versions, impact, escalation, success criteria, follow-ups.
    ///
    /// Example: backout report run-1700000000000-a1b2c3 --format html --out report.html
    Report(cli::report::Args),
    /// Rehearse the plan against its staging fleet: a real run with its
    /// approvals, followed live; then a drill report with each phase's time
    /// against the last drill's, and the plan file stamped with the date
    /// and the figures. Refuses a coordinator that serves another plan.
    ///
    /// Example: backout drill --plan staging.toml
    Drill(cli::drill::Args),
    /// Abort a run: nothing more is dispatched.
    Abort(cli::abort::Args),
    /// Check the journal's hash chain.
    #[command(subcommand)]
    Audit(cli::audit::Args),
    /// Work with plan files.
    #[command(subcommand)]
    Plan(cli::plan::Args),
    /// Serve the incident on a local web page: matrix, fleet, runs live,
    /// approvals and reports, acting under your own certificate.
    ///
    /// Example: backout dashboard --listen 127.0.0.1:3100 --open
    Dashboard(backout::dashboard::DashboardArgs),
}

async fn run(command: Command, connect: &ConnectArgs) -> anyhow::Result<Exit> {
    match command {
        Command::Pki(args) => cli::pki::run(args),
        Command::Serve(args) => cli::serve::run(args).await,
        Command::Agents(args) => cli::agents::run(args, connect).await,
        Command::Assess(args) => cli::assess::run(args, connect).await,
        Command::Guard(args) => cli::guard::run(args, connect).await,
        Command::Signal(args) => cli::signal::run(args, connect).await,
        Command::Whoami => cli::whoami::run(connect).await,
        Command::Status(args) => cli::status::run(args, connect).await,
        Command::Rollback(args) => cli::rollback::run(args, connect).await,
        Command::Approve(args) => cli::approve::run(args, connect).await,
        Command::Runs(args) => cli::runs::run(args, connect).await,
        Command::Watch(args) => cli::watch::run(args, connect).await,
        Command::Report(args) => cli::report::run(args, connect).await,
        Command::Drill(args) => cli::drill::run(args, connect).await,
        Command::Abort(args) => cli::abort::run(args, connect).await,
        Command::Audit(args) => cli::audit::run(args),
        Command::Plan(args) => cli::plan::run(args),
        Command::Dashboard(args) => backout::dashboard::run(connect, args).await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    backout_config::logging::init(cli.log.as_deref(), default_log);
    match run(cli.command, &cli.connect).await {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(error) => {
            cli::say_error(&format!(
                "backout: {}",
                backout_tls::tls::error_chain(error.as_ref())
            ));
            ExitCode::from(cli::exit_code_for(&error) as u8)
        }
    }
}
