//! `backout rollback start`: start a run of the plan.

use backout_proto::wire;

use super::client::{ConnectArgs, status_error};
use super::{Exit, Output};

#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// Start a run of the plan; it waits for the plan's run approvals.
    ///
    /// Example: backout rollback start --reason "5xx at 12% since the 02:00 deploy" --to v2.3.1
    Start {
        /// Why the rollback (recorded in the journal and the report).
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

pub async fn run(args: Args, connect: &ConnectArgs) -> anyhow::Result<Exit> {
    let Args::Start {
        reason,
        to,
        phases,
        dry_run,
        output,
    } = args;
    let mut control = connect.control().await?;
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
        .map_err(status_error)?
        .into_inner();
    if !dry_run {
        super::runs::print_summary(&summary, output);
        return Ok(Exit::Ok);
    }
    // A dry run needs no approvals: follow it and print what would happen.
    let updates = control
        .watch(wire::WatchRequest {
            run_id: summary.run_id.clone(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    super::watch::dry_run_report(updates, output).await
}
