//! `backout`: the coordinator server and the operator CLI.
//!
//! Only the clap root lives here: the global flags, one variant per command
//! (each command's flags and its `run` are in `cli/<command>.rs`), dispatch
//! and the exit code.

use std::process::ExitCode;

use backout::cli::{self, Exit, client::ConnectArgs};
use backout_config::logging::LogFormat;
use clap::{CommandFactory, Parser, Subcommand};

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
    /// Log filter (e.g. info, debug, backout=debug); also RUST_LOG.
    #[arg(long, global = true, env = "BACKOUT_LOG")]
    log: Option<String>,
    /// Log lines as text, or as one JSON object per line with the run,
    /// phase, step and host as fields.
    #[arg(
        long,
        global = true,
        env = "BACKOUT_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a starter set that starts as written: PKI, coordinator.toml,
    /// an agent configuration per host, and a plan with one trigger, one
    /// phase and one approval. Refuses a directory that is not empty.
    ///
    /// Example: backout init starter --host web-1 --host db-1
    Init(cli::init::Args),
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
    Agents {
        #[command(flatten)]
        args: cli::agents::Args,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Phase 1.1: run the health checks on every agent now and print one table.
    ///
    /// Example: backout assess --output json
    Assess {
        #[command(flatten)]
        args: cli::assess::Args,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Watch the decision matrix after a deploy; act when a trigger fires.
    ///
    /// Example: backout guard --deploy-time 2026-01-15T02:00:00Z
    Guard {
        #[command(flatten)]
        args: cli::guard::Args,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Set manual signals and record counted events.
    Signal {
        #[command(subcommand)]
        args: cli::signal::Args,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Show who the coordinator thinks you are, and your roles.
    Whoami {
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Show which coordinator leads: its lease epoch and age, the standbys.
    ///
    /// Example: BACKOUT_COORDINATOR=c1:7443,c2:7443 backout status
    Status {
        #[command(flatten)]
        args: cli::status::Args,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Start a rollback run.
    Rollback {
        #[command(subcommand)]
        args: cli::rollback::Args,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Apply a trigger's lighter remedy, or undo it (each a run of its own).
    Remedy {
        #[command(subcommand)]
        args: cli::remedy::Args,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Approve (or refuse) a run or one of its gated phases, under your own certificate.
    ///
    /// Example: backout approve run-1700000000000-a1b2c3 --phase database
    Approve {
        #[command(flatten)]
        args: cli::approve::Args,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// List runs with their status and the approvals they wait for.
    Runs {
        #[command(flatten)]
        args: cli::runs::Args,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Follow a run live: a progress bar per phase and host, plugins' log
    /// lines, approvals waited on, the final result. Any number of people can
    /// watch the same run. Exit 0 when the run succeeds, 1 otherwise.
    ///
    /// Example: backout watch run-1700000000000-a1b2c3 --output json
    Watch {
        #[command(flatten)]
        args: cli::watch::Args,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// The post-rollback report of a run: summary, timeline, approvals,
    /// versions, impact, escalation, success criteria, follow-ups.
    ///
    /// Example: backout report run-1700000000000-a1b2c3 --format html --out report.html
    Report {
        #[command(flatten)]
        args: cli::report::Args,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Rehearse the plan against its staging fleet: a real run with its
    /// approvals, followed live; then a drill report with each phase's time
    /// against the last drill's, and the plan file stamped with the date
    /// and the figures. Refuses a coordinator that serves another plan.
    ///
    /// Example: backout drill --plan staging.toml
    Drill {
        #[command(flatten)]
        args: cli::drill::Args,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Abort a run: nothing more is dispatched.
    Abort {
        #[command(flatten)]
        args: cli::abort::Args,
        #[command(flatten)]
        connect: ConnectArgs,
    },
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
    Dashboard {
        #[command(flatten)]
        args: backout::dashboard::DashboardArgs,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Packaging: write shell completions and man pages into DIR.
    #[command(hide = true)]
    GenerateAssets {
        /// Where to write them (created if missing).
        dir: std::path::PathBuf,
    },
}

async fn run(command: Command) -> anyhow::Result<Exit> {
    match command {
        Command::Init(args) => cli::init::run(args),
        Command::Pki(args) => cli::pki::run(args),
        Command::Serve(args) => cli::serve::run(args).await,
        Command::Agents { args, connect } => cli::agents::run(args, &connect).await,
        Command::Assess { args, connect } => cli::assess::run(args, &connect).await,
        Command::Guard { args, connect } => cli::guard::run(args, &connect).await,
        Command::Signal { args, connect } => cli::signal::run(args, &connect).await,
        Command::Whoami { connect } => cli::whoami::run(&connect).await,
        Command::Rollback { args, connect } => cli::rollback::run(args, &connect).await,
        Command::Remedy { args, connect } => cli::remedy::run(args, &connect).await,
        Command::Approve { args, connect } => cli::approve::run(args, &connect).await,
        Command::Runs { args, connect } => cli::runs::run(args, &connect).await,
        Command::Watch { args, connect } => cli::watch::run(args, &connect).await,
        Command::Report { args, connect } => cli::report::run(args, &connect).await,
        Command::Drill { args, connect } => cli::drill::run(args, &connect).await,
        Command::Abort { args, connect } => cli::abort::run(args, &connect).await,
        Command::Status { args, connect } => cli::status::run(args, &connect).await,
        Command::Audit(args) => cli::audit::run(args),
        // Offline, but `plan check --against-fleet` asks the coordinator the
        // connection variables (BACKOUT_COORDINATOR...) name.
        Command::Plan(args) => cli::plan::run(args, &connect_from_env()).await,
        Command::Dashboard { args, connect } => backout::dashboard::run(&connect, args).await,
        Command::GenerateAssets { dir } => {
            backout_config::assets::write(Cli::command(), &dir)
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
            Ok(Exit::Ok)
        }
    }
}

/// The connection as the environment gives it (BACKOUT_COORDINATOR,
/// BACKOUT_PKI, BACKOUT_OPERATOR...), for offline commands that may ask.
fn connect_from_env() -> ConnectArgs {
    #[derive(Parser)]
    struct FromEnv {
        #[command(flatten)]
        connect: ConnectArgs,
    }
    FromEnv::parse_from(["backout"]).connect
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    backout_config::logging::init(cli.log.as_deref(), default_log, cli.log_format);
    match run(cli.command).await {
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command and subcommand, with its path (`backout pki issue`).
    fn every_command() -> Vec<(String, clap::Command)> {
        let mut out = Vec::new();
        // Built, so that global flags are propagated to subcommands.
        let mut root = super::Cli::command();
        root.build();
        let mut stack = vec![("backout".to_string(), root)];
        while let Some((path, command)) = stack.pop() {
            for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
                stack.push((format!("{path} {}", sub.get_name()), sub.clone()));
            }
            out.push((path, command));
        }
        out
    }

    #[test]
    fn every_flag_and_argument_says_what_it_is() {
        let mut missing = Vec::new();
        for (path, command) in every_command() {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
        }
        assert!(missing.is_empty(), "no description: {missing:#?}");
    }

    #[test]
    fn only_commands_that_connect_take_the_connection_flags() {
        for (path, command) in every_command() {
            let takes = command
                .get_arguments()
                .any(|a| a.get_id().as_str() == "coordinator");
            let offline = [
                "backout init",
                "backout pki",
                "backout serve",
                "backout audit",
                "backout plan",
                "backout generate-assets",
            ]
            .iter()
            .any(|p| path == *p || path.starts_with(&format!("{p} ")));
            if offline || path == "backout" {
                assert!(!takes, "`{path}` lists the connection flags");
            } else if command.get_subcommands().next().is_none() {
                assert!(takes, "`{path}` cannot be told where the coordinator is");
            }
        }
    }
}
