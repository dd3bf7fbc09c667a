//! `backout agents`: which agents are connected, and what they run.

use backout_proto::wire;

use super::client::{ConnectArgs, status_error};
use super::{Exit, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// text: for people; json: for programs.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub async fn run(args: Args, connect: &ConnectArgs) -> anyhow::Result<Exit> {
    let reply = list(connect, false).await?;
    Ok(super::assess::print_agents(&reply, args.output))
}

/// Every agent the coordinator knows, with the plugins each reported (and
/// their parameter schemas when `with_schemas`).
pub async fn list(
    connect: &ConnectArgs,
    with_schemas: bool,
) -> anyhow::Result<wire::ListAgentsReply> {
    let mut control = connect.control().await?;
    Ok(control
        .list_agents(wire::ListAgentsRequest { with_schemas })
        .await
        .map_err(status_error)?
        .into_inner())
}
