//! `backout abort RUN`: nothing more is dispatched.

use backout_proto::wire;

use super::client::{ConnectArgs, status_error};
use super::{Exit, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run id (as `backout runs` lists it).
    run: String,
    /// text: for people; json: for programs.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub async fn run(args: Args, connect: &ConnectArgs) -> anyhow::Result<Exit> {
    let mut control = connect.control().await?;
    let summary = control
        .abort_run(wire::AbortRunRequest { run_id: args.run })
        .await
        .map_err(status_error)?
        .into_inner();
    super::runs::print_summary(&summary, args.output);
    Ok(Exit::Ok)
}
