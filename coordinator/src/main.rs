//! `backout`: the coordinator server and the operator CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
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
        /// When the deploy happened (RFC 3339, e.g. 2026-01-15T02:00:00Z, or
        /// how long ago, e.g. 45m), to answer "did it start after the deploy?".
        #[arg(long, value_parser = parse_when)]
        deploy_time: Option<i64>,
    },
    /// Watch the decision matrix after a deploy; act when a trigger fires.
    ///
    /// Example: backout guard --deploy-time 2026-01-15T02:00:00Z
    Guard {
        /// How often to look.
        #[arg(long, default_value = "2s", value_parser = backout_config::parse_duration)]
        interval: std::time::Duration,
        /// When the deploy happened (RFC 3339, or how long ago, e.g. 5m).
        #[arg(long, value_parser = parse_when)]
        deploy_time: Option<i64>,
        /// Exit with code 1 when an immediate trigger fires (for scripts).
        #[arg(long)]
        exit_on_immediate: bool,
    },
    /// Set manual signals and record counted events.
    #[command(subcommand)]
    Signal(SignalCommand),
    /// Show who the coordinator thinks you are, and your roles.
    Whoami,
    /// Start a rollback run.
    #[command(subcommand)]
    Rollback(RollbackCommand),
    /// Approve (or refuse) a run or one of its gated phases, under your own certificate.
    ///
    /// Example: backout approve run-1700000000000-a1b2c3 --phase database
    Approve {
        run: String,
        /// A gated phase (default: the run itself).
        #[arg(long)]
        phase: Option<String>,
        /// Which of your roles to approve as (default: the first one still needed).
        #[arg(long)]
        role: Option<String>,
        /// Refuse instead of approving: stops the run or the phase.
        #[arg(long, requires = "why")]
        refuse: bool,
        #[arg(long)]
        why: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// List runs with their status and the approvals they wait for.
    Runs {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Follow a run live: a progress bar per phase and host, plugins' log
    /// lines, approvals waited on, the final result. Any number of people can
    /// watch the same run. Exit 0 when the run succeeds, 1 otherwise.
    ///
    /// Example: backout watch run-1700000000000-a1b2c3 --output json
    Watch {
        run: String,
        /// text: bars on a terminal (plain lines otherwise); json: one JSON object per line.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// The post-rollback report of a run: summary, timeline, approvals,
    /// versions, impact, escalation, success criteria, follow-ups.
    ///
    /// Example: backout report run-1700000000000-a1b2c3 --format html --out report.html
    Report {
        run: String,
        #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
        format: ReportFormat,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Rehearse the plan against its staging fleet: a real run with its
    /// approvals, followed live; then a drill report with each phase's time
    /// against the last drill's, and the plan file stamped with the date
    /// and the figures. Refuses a coordinator that serves another plan.
    ///
    /// Example: backout drill --plan staging.toml
    Drill {
        /// The staging plan: the one the coordinator serves.
        #[arg(long)]
        plan: PathBuf,
        /// Only these phases (comma-separated; default: every non-optional phase).
        #[arg(long, value_delimiter = ',')]
        phases: Vec<String>,
        #[arg(long)]
        reason: Option<String>,
        /// Where the drill report goes (default: drill-RUN.md here).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Abort a run: nothing more is dispatched.
    Abort {
        run: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Check the journal's hash chain.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Work with plan files.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Serve the incident on a local web page: matrix, fleet, runs live,
    /// approvals and reports, acting under your own certificate.
    ///
    /// Example: backout dashboard --listen 127.0.0.1:3100 --open
    Dashboard(backout::dashboard::DashboardArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReportFormat {
    /// Markdown, for the incident ticket.
    Md,
    Json,
    /// One self-contained page with an SVG timeline.
    Html,
}

#[derive(Debug, Subcommand)]
enum SignalCommand {
    /// Set a manual signal, recorded with your identity.
    ///
    /// Example: backout signal set breach_confirmed=true --note "customer PII in public bucket"
    Set {
        /// NAME=VALUE, VALUE being true, false or a number.
        assignment: String,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Record counted events (e.g. one critical ticket).
    ///
    /// Example: backout signal event critical_tickets --count 3 --note "ZD-4411..4413"
    Event {
        name: String,
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

/// Parses an RFC 3339 time or a duration meaning "that long ago", to Unix ms.
fn parse_when(text: &str) -> Result<i64, String> {
    let now = std::time::SystemTime::now();
    let at = match humantime::parse_rfc3339_weak(text) {
        Ok(at) => at,
        Err(_) => {
            let ago = backout_config::parse_duration(text).map_err(|_| {
                format!(
                    "`{text}` is neither a time like 2026-01-15T02:00:00Z nor a duration like 45m"
                )
            })?;
            now.checked_sub(ago).ok_or("too long ago")?
        }
    };
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .map_err(|_| "before 1970".to_string())
}

#[derive(Debug, Subcommand)]
enum RollbackCommand {
    /// Start a run of the plan; it waits for the plan's run approvals.
    ///
    /// Example: backout rollback start --reason "5xx at 12% since the 02:00 deploy" --to v2.3.1
    Start {
        #[arg(long)]
        reason: String,
        /// The version to roll back to (passed to steps as `to_version`).
        #[arg(long)]
        to: Option<String>,
        /// Only these phases (comma-separated; default: every phase that is not optional).
        #[arg(long, value_delimiter = ',')]
        phases: Vec<String>,
        /// Ask each plugin what it would do; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the journal's hash chain; report the first entry that does not
    /// match. Exit 0 intact, 1 broken.
    ///
    /// Example: backout audit verify --config /etc/backout/coordinator.toml
    Verify {
        /// The coordinator's configuration (its state_dir holds the journal).
        #[arg(long, conflicts_with = "journal")]
        config: Option<PathBuf>,
        /// The journal file itself.
        #[arg(long)]
        journal: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
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
        // Colours only for a person; a log file gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A log line that cannot be written (the disk is full) is dropped.
        // Reporting it would `eprintln!` to the same full stderr, which
        // panics the task that logged: a run's driver died of it.
        .log_internal_errors(false)
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
        Command::Assess {
            output,
            timeout,
            deploy_time,
        } => {
            let control = cli.connect.control().await?;
            let timeout_ms =
                timeout.map_or(0, |t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX));
            // Health and matrix at once: the 2 a.m. answer in one round trip's time.
            let (mut health_client, mut matrix_client) = (control.clone(), control);
            let (health, matrix) = tokio::join!(
                health_client.assess(wire::AssessRequest { timeout_ms }),
                matrix_client.matrix(wire::MatrixRequest {})
            );
            let reply = health.map_err(cli::client::status_error)?.into_inner();
            let matrix = matrix.map_err(cli::client::status_error)?.into_inner();
            Ok(cli::assess::print_assessment(
                &reply,
                Some(&matrix),
                deploy_time,
                output,
            ))
        }
        Command::Guard {
            interval,
            deploy_time,
            exit_on_immediate,
        } => cli::guard::run(&cli.connect, interval, deploy_time, exit_on_immediate).await,
        Command::Signal(command) => {
            let mut control = cli.connect.control().await?;
            let (reply, output) = match command {
                SignalCommand::Set {
                    assignment,
                    note,
                    output,
                } => {
                    let (name, value) = assignment.split_once('=').ok_or_else(|| {
                        cli::BadInput(format!("`{assignment}`: expected NAME=VALUE"))
                    })?;
                    let request = wire::SetSignalRequest {
                        name: name.trim().into(),
                        value: value.trim().into(),
                        note,
                    };
                    (control.set_signal(request).await, output)
                }
                SignalCommand::Event {
                    name,
                    count,
                    note,
                    output,
                } => {
                    let request = wire::RecordEventRequest { name, count, note };
                    (control.record_event(request).await, output)
                }
            };
            let signal = reply
                .map_err(cli::client::status_error)?
                .into_inner()
                .signal
                .unwrap_or_default();
            match output {
                Output::Json => println!("{}", cli::matrix::signal_json(&signal)),
                Output::Text => println!(
                    "{} = {} (set by {})",
                    signal.name,
                    if signal.known {
                        signal.value.as_str()
                    } else {
                        "unknown"
                    },
                    signal.set_by
                ),
            }
            Ok(Exit::Ok)
        }
        Command::Rollback(RollbackCommand::Start {
            reason,
            to,
            phases,
            dry_run,
            output,
        }) => {
            let mut control = cli.connect.control().await?;
            let request = wire::StartRunRequest {
                reason,
                to_version: to.unwrap_or_default(),
                phases,
                dry_run,
                drill: false,
            };
            let summary = control
                .start_run(request)
                .await
                .map_err(cli::client::status_error)?
                .into_inner();
            if !dry_run {
                cli::runs::print_summary(&summary, output);
                return Ok(Exit::Ok);
            }
            // A dry run needs no approvals: follow it and print what would happen.
            let updates = control
                .watch(wire::WatchRequest {
                    run_id: summary.run_id.clone(),
                })
                .await
                .map_err(cli::client::status_error)?
                .into_inner();
            cli::watch::dry_run_report(updates, output).await
        }
        Command::Approve {
            run,
            phase,
            role,
            refuse,
            why,
            output,
        } => {
            let mut control = cli.connect.control().await?;
            let request = wire::ApproveRequest {
                run_id: run,
                phase: phase.unwrap_or_default(),
                role: role.unwrap_or_default(),
                refuse,
                why: why.unwrap_or_default(),
            };
            let summary = control
                .approve(request)
                .await
                .map_err(cli::client::status_error)?
                .into_inner();
            cli::runs::print_summary(&summary, output);
            Ok(Exit::Ok)
        }
        Command::Runs { output } => {
            let mut control = cli.connect.control().await?;
            let reply = control
                .list_runs(wire::ListRunsRequest {})
                .await
                .map_err(cli::client::status_error)?
                .into_inner();
            cli::runs::print_runs(&reply, output);
            Ok(Exit::Ok)
        }
        Command::Watch { run, output } => {
            let mut control = cli.connect.control().await?;
            let updates = control
                .watch(wire::WatchRequest { run_id: run })
                .await
                .map_err(cli::client::status_error)?
                .into_inner();
            cli::watch::follow(updates, output).await
        }
        Command::Report { run, format, out } => {
            let mut control = cli.connect.control().await?;
            let format = match format {
                ReportFormat::Md => "md",
                ReportFormat::Json => "json",
                ReportFormat::Html => "html",
            };
            let text = control
                .report(wire::ReportRequest {
                    run_id: run,
                    format: format.into(),
                })
                .await
                .map_err(cli::client::status_error)?
                .into_inner()
                .text;
            match out {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("{}: cannot write the report", path.display()))?;
                    println!("report written to {}", path.display());
                }
                None => print!("{text}"),
            }
            Ok(Exit::Ok)
        }
        Command::Drill {
            plan,
            phases,
            reason,
            out,
            output,
        } => {
            let args = cli::drill::DrillArgs {
                plan,
                phases,
                reason,
                out,
                output,
            };
            cli::drill::run(&cli.connect, args).await
        }
        Command::Abort { run, output } => {
            let mut control = cli.connect.control().await?;
            let summary = control
                .abort_run(wire::AbortRunRequest { run_id: run })
                .await
                .map_err(cli::client::status_error)?
                .into_inner();
            cli::runs::print_summary(&summary, output);
            Ok(Exit::Ok)
        }
        Command::Audit(AuditCommand::Verify {
            config,
            journal,
            output,
        }) => {
            let path = match (config, journal) {
                (_, Some(journal)) => journal,
                (Some(config), None) => {
                    backout::config::CoordinatorConfig::load(&config)?.journal_path()
                }
                (None, None) => {
                    return Err(cli::BadInput("give --config FILE or --journal PATH".into()).into());
                }
            };
            if !path.exists() {
                return Err(cli::BadInput(format!("{}: no journal here", path.display())).into());
            }
            let verdict = backout::journal::Journal::open(&path)?.verify()?;
            let (ok, doc) = match &verdict {
                backout::journal::Verdict::Intact { entries } => (
                    true,
                    serde_json::json!({ "intact": true, "entries": entries }),
                ),
                backout::journal::Verdict::Broken { seq, reason } => (
                    false,
                    serde_json::json!({ "intact": false, "first_bad_entry": seq, "reason": reason }),
                ),
            };
            match output {
                Output::Json => println!("{doc}"),
                Output::Text => match verdict {
                    backout::journal::Verdict::Intact { entries } => {
                        println!("{}: intact, {entries} entries", path.display());
                    }
                    backout::journal::Verdict::Broken { seq, reason } => {
                        println!("{}: BROKEN at entry {seq}: {reason}", path.display());
                    }
                },
            }
            Ok(if ok { Exit::Ok } else { Exit::Failed })
        }
        Command::Dashboard(args) => backout::dashboard::run(&cli.connect, args).await,
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
