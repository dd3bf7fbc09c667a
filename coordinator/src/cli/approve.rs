//! `backout approve RUN`: approve (or refuse) a run or one of its gated phases.

use backout_proto::wire;

use super::client::{ConnectArgs, status_error};
use super::{Exit, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run id (as `backout runs` lists it).
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
    /// Why you refuse (recorded in the journal and the report).
    #[arg(long)]
    why: Option<String>,
    /// text: for people; json: for programs.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub async fn run(args: Args, connect: &ConnectArgs) -> anyhow::Result<Exit> {
    let mut control = connect.control().await?;
    let request = wire::ApproveRequest {
        run_id: args.run,
        phase: args.phase.unwrap_or_default(),
        role: args.role.unwrap_or_default(),
        refuse: args.refuse,
        why: args.why.unwrap_or_default(),
    };
    let summary = control
        .approve(request)
        .await
        .map_err(status_error)?
        .into_inner();
    super::runs::print_summary(&summary, args.output);
    Ok(Exit::Ok)
}
