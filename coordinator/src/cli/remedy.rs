//! `backout remedy start TRIGGER` and `backout remedy undo RUN`: apply a
//! trigger's lighter remedy, and undo it (issue 20).

use backout_proto::wire;

use super::client::{ConnectArgs, status_error};
use super::{Exit, Output};

#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// Apply a trigger's remedy: the run of the plan's remedy phase for it
    /// alone (as `rollback start --phases PHASE`), approved by the trigger's
    /// `remedy_approvals`.
    ///
    /// Example: backout remedy start "High Error Rate"
    Start {
        /// The trigger's name, as in the plan.
        trigger: String,
        /// Why (recorded in the journal and the report; default: "remedy for TRIGGER").
        #[arg(long)]
        reason: Option<String>,
        /// text: for people; json: for programs.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Undo a remedy's run: a run of its own that puts each flag its `flags`
    /// steps turned off back to the state they recorded first. It needs the
    /// same approvals as the remedy.
    ///
    /// Example: backout remedy undo run-1700000000000-a1b2c3
    Undo {
        /// The remedy's run (see `backout runs`).
        run: String,
        /// Why (recorded in the journal and the report; default: "undo of remedy run RUN").
        #[arg(long)]
        reason: Option<String>,
        /// text: for people; json: for programs.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

pub async fn run(args: Args, connect: &ConnectArgs) -> anyhow::Result<Exit> {
    let (request, output) = match args {
        Args::Start {
            trigger,
            reason,
            output,
        } => {
            let reason = reason.unwrap_or_else(|| format!("remedy for {trigger}"));
            let request = wire::StartRunRequest {
                reason,
                remedy_for: trigger,
                ..Default::default()
            };
            (request, output)
        }
        Args::Undo {
            run,
            reason,
            output,
        } => {
            let reason = reason.unwrap_or_else(|| format!("undo of remedy run {run}"));
            let request = wire::StartRunRequest {
                reason,
                undo: run,
                ..Default::default()
            };
            (request, output)
        }
    };
    let mut control = connect.control().await?;
    let summary = control
        .start_run(request)
        .await
        .map_err(status_error)?
        .into_inner();
    super::runs::print_summary(&summary, output);
    Ok(Exit::Ok)
}
