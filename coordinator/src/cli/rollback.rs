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
        /// text: for people; json: for programs.
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
        ..Default::default()
    };
    let summary = control
        .start_run(request)
        .await
        .map_err(status_error)?
        .into_inner();
    if !dry_run {
        super::runs::print_summary(&summary, output);
        if output == Output::Text {
            say_absent_hosts(&mut control, &summary).await;
        }
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

/// Says which of the run's hosts have no agent connected now: their steps
/// will wait for them (up to the phase's `time_limit`, or two minutes
/// without one). Nothing when the agents cannot be listed.
async fn say_absent_hosts(
    control: &mut wire::control_client::ControlClient<tonic::transport::Channel>,
    summary: &wire::RunSummary,
) {
    let Ok(reply) = control
        .list_agents(wire::ListAgentsRequest::default())
        .await
    else {
        return;
    };
    let reply = reply.into_inner();
    let mut hosts: Vec<&str> = summary
        .phases
        .iter()
        .flat_map(|p| p.hosts.iter().map(|h| h.host.as_str()))
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    for host in hosts {
        let agent = reply.agents.iter().find(|a| a.agent_id == host);
        let seen = match agent {
            Some(a) if a.connected => continue,
            Some(a) => format!(
                "gone, last seen {} ago",
                super::human_ms(reply.now_ms.saturating_sub(a.last_seen_ms))
            ),
            None => "never connected".to_string(),
        };
        outln!(
            "  not connected now: {host} ({seen}); its steps will wait for it up to their phase's time_limit (2m without one)"
        );
    }
}
