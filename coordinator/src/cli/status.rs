//! `backout status`: which coordinator leads, under which lease epoch,
//! since when, and which stand by.

use backout_proto::wire;
use serde_json::json;

use super::client::{ConnectArgs, status_error};
use super::{Exit, Output, human_ms};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// text: for people; json: for programs.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub async fn run(args: Args, connect: &ConnectArgs) -> anyhow::Result<Exit> {
    let mut control = connect.control().await?;
    let reply = control
        .status(wire::StatusRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    match args.output {
        Output::Json => outln!(
            "{}",
            json!({
                "journal": reply.journal,
                "leader": (!reply.leader.is_empty()).then_some(&reply.leader),
                "epoch": reply.epoch,
                "standbys": reply.standbys,
                "lease_age_ms": (!reply.leader.is_empty()).then_some(reply.lease_age_ms),
                "lease_ttl_ms": (!reply.leader.is_empty()).then_some(reply.lease_ttl_ms),
            })
        ),
        Output::Text if reply.leader.is_empty() => {
            outln!("journal   {}", reply.journal);
            outln!("leader    this coordinator (one coordinator, no lease)");
        }
        Output::Text => {
            outln!("journal   {}", reply.journal);
            outln!(
                "leader    {} (epoch {}, lease renewed {} ago, ttl {})",
                reply.leader,
                reply.epoch,
                human_ms(reply.lease_age_ms),
                human_ms(reply.lease_ttl_ms)
            );
            let standbys = if reply.standbys.is_empty() {
                "none".to_string()
            } else {
                reply.standbys.join(", ")
            };
            outln!("standbys  {standbys}");
        }
    }
    Ok(Exit::Ok)
}
