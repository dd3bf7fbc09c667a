//! `backout rollback start`, `approve`, `runs`, `abort`: printing run summaries.

use backout_proto::wire;
use serde_json::{Value, json};

use super::client::{ConnectArgs, status_error};
use super::{Exit, Output, human_ms, table};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show this run only, with every host (an ended run is read from the
    /// coordinator's journal). Without it, every run is listed, and an
    /// ended run's phases are listed without their hosts.
    run: Option<String>,
    /// text: for people; json: for programs.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub async fn run(args: Args, connect: &ConnectArgs) -> anyhow::Result<Exit> {
    let mut control = connect.control().await?;
    let reply = control
        .list_runs(wire::ListRunsRequest {
            run_id: args.run.clone().unwrap_or_default(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    match (&args.run, reply.runs.first()) {
        (None, _) => print_runs(&reply, args.output),
        (Some(_), Some(run)) => print_summary(run, args.output),
        (Some(id), None) => anyhow::bail!("the coordinator did not answer with run `{id}`"),
    }
    Ok(Exit::Ok)
}

pub fn summary_json(r: &wire::RunSummary) -> Value {
    let mut out = json!({
        "run": r.run_id,
        "status": r.status,
        "reason": r.reason,
        "started_by": r.started_by,
        "started_at_ms": r.started_at_ms,
        "finished_at_ms": (r.finished_at_ms > 0).then_some(r.finished_at_ms),
        "dry_run": r.dry_run,
        "to_version": (!r.to_version.is_empty()).then_some(&r.to_version),
        "phases": r.phases.iter().map(|p| json!({
            "id": p.id, "status": p.status, "detail": p.detail,
            "hosts_succeeded": p.hosts_succeeded, "hosts_failed": p.hosts_failed,
            "hosts_timed_out": p.hosts_timed_out, "hosts_unreachable": p.hosts_unreachable,
            "hosts_unknown": p.hosts_unknown,
            "hosts": p.hosts.iter().map(|h| json!({
                "host": h.host, "state": h.state, "step": h.step, "detail": h.detail,
                "steps_done": h.steps_done, "steps_total": h.steps_total,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "pending_approvals": r.pending.iter().map(|p| json!({
            "scope": p.scope, "roles": p.roles, "waiting_ms": p.waiting_ms,
        })).collect::<Vec<_>>(),
        "approvals": r.approvals,
        "awaited": r.awaited.iter().map(|a| json!({
            "host": a.host, "phase": a.phase, "step": a.step,
            "since_ms": a.since_ms, "why": a.why,
        })).collect::<Vec<_>>(),
        "remedy": r.remedy,
    });
    if r.brief {
        // An ended run the coordinator keeps brief: its phases' hosts are
        // not known here (`backout runs RUN` has them), so none are said.
        if let Some(phases) = out["phases"].as_array_mut() {
            for phase in phases.iter_mut().filter_map(Value::as_object_mut) {
                phase.retain(|key, _| !key.starts_with("hosts"));
            }
        }
        out["brief"] = json!(true);
    }
    out
}

/// The hosts a run waits for, each with since when and how long:
/// "db-1 (agent not connected since 2026-11-30T17:30:02Z, 1m 5s; database/stop-writes)".
pub fn awaited_texts(r: &wire::RunSummary) -> Vec<String> {
    let now = backout_proto::now_ms();
    r.awaited
        .iter()
        .map(|a| {
            format!(
                "{} (agent not connected since {}, {}; {}/{})",
                a.host,
                crate::text::rfc3339(a.since_ms),
                human_ms(now.saturating_sub(a.since_ms).max(0)),
                a.phase,
                a.step
            )
        })
        .collect()
}

pub fn print_summary(r: &wire::RunSummary, output: Output) {
    match output {
        Output::Json => outln!("{}", summary_json(r)),
        Output::Text => {
            outln!(
                "{}  {}{}  started by {}: {}",
                r.run_id,
                r.status.to_uppercase(),
                if r.dry_run { " (dry run)" } else { "" },
                r.started_by,
                r.reason
            );
            let rows: Vec<Vec<String>> = r
                .phases
                .iter()
                .map(|p| {
                    vec![
                        p.id.clone(),
                        p.status.clone(),
                        p.hosts_succeeded.join(", "),
                        not_done(p),
                        p.detail.clone(),
                    ]
                })
                .collect();
            out!(
                "{}",
                table::render(
                    &["PHASE", "STATUS", "HOSTS DONE", "HOSTS NOT DONE", "DETAIL"],
                    &rows
                )
            );
            for p in &r.pending {
                outln!(
                    "  waiting {} for approval of {} by {}",
                    human_ms(p.waiting_ms),
                    p.scope,
                    p.roles.join(" + ")
                );
            }
            for host in awaited_texts(r) {
                outln!("  waiting for {host}");
            }
            if !r.approvals.is_empty() {
                outln!("  approved: {}", r.approvals.join("; "));
            }
        }
    }
}

/// Hosts that failed, timed out, were unreachable or ended unknown, each
/// with how.
fn not_done(p: &wire::PhaseSummary) -> String {
    let mut out = Vec::new();
    for (hosts, how) in [
        (&p.hosts_failed, "failed"),
        (&p.hosts_timed_out, "timed out"),
        (&p.hosts_unreachable, "unreachable"),
        (&p.hosts_unknown, "unknown"),
    ] {
        out.extend(hosts.iter().map(|h| format!("{h} ({how})")));
    }
    out.join(", ")
}

pub fn print_runs(reply: &wire::ListRunsReply, output: Output) {
    match output {
        Output::Json => {
            let runs: Vec<Value> = reply.runs.iter().map(summary_json).collect();
            outln!("{}", json!({ "runs": runs }));
        }
        Output::Text => {
            if reply.runs.is_empty() {
                outln!("no runs");
                return;
            }
            let rows: Vec<Vec<String>> = reply
                .runs
                .iter()
                .map(|r| {
                    vec![
                        r.run_id.clone(),
                        if r.dry_run {
                            format!("{} (dry run)", r.status)
                        } else {
                            r.status.clone()
                        },
                        r.started_by.clone(),
                        r.pending
                            .iter()
                            .map(|p| {
                                format!(
                                    "{}: {} ({})",
                                    p.scope,
                                    p.roles.join(" + "),
                                    human_ms(p.waiting_ms)
                                )
                            })
                            .chain(awaited_texts(r))
                            .collect::<Vec<_>>()
                            .join("; "),
                        r.reason.clone(),
                    ]
                })
                .collect();
            out!(
                "{}",
                table::render(
                    &["RUN", "STATUS", "STARTED BY", "WAITING FOR", "REASON"],
                    &rows
                )
            );
        }
    }
}
