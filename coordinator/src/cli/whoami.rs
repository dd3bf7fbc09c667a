//! `backout whoami`: who the coordinator thinks you are.

use backout_proto::wire;

use super::Exit;
use super::client::{ConnectArgs, status_error};

pub async fn run(connect: &ConnectArgs) -> anyhow::Result<Exit> {
    let mut control = connect.control().await?;
    let reply = control
        .who_am_i(wire::WhoAmIRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    outln!("{} (roles: {})", reply.identity, reply.roles.join(", "));
    Ok(Exit::Ok)
}
