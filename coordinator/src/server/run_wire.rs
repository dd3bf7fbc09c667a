//! Runs at the transport edge: summaries and live events as protobuf, and
//! the `Watch` stream.

use std::pin::Pin;
use std::sync::Arc;

use backout_plan::run::{HostState, PhaseStatus};
use backout_proto::wire;
use futures::Stream;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::control::ControlService;
use crate::config::CoordinatorConfig;
use crate::journal::{Entry, JournalError, Record, Verdict};
use crate::runs::{RunEvent, Runs, Summary};

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<wire::RunUpdate, Status>> + Send>>;

/// A snapshot, the run's history so far (events without a summary), then
/// every new event of `run_id` with the run as it stands after it, until the
/// run has ended. A watcher that falls behind gets a fresh summary and the
/// number of events it missed.
pub fn watch_stream(
    runs: Arc<Runs>,
    run_id: String,
    first: Summary,
    history: Vec<RunEvent>,
    mut rx: broadcast::Receiver<RunEvent>,
) -> WatchStream {
    let (tx, out) = mpsc::channel::<Result<wire::RunUpdate, Status>>(64);
    tokio::spawn(async move {
        let update = |summary: &Summary, event: Option<RunEvent>, missed: u64| {
            Ok(wire::RunUpdate {
                summary: Some(summary_to_wire(summary)),
                event: event.map(event_to_wire),
                missed,
            })
        };
        // A send that fails means the watcher went away.
        if tx.send(update(&first, None, 0)).await.is_err() {
            return;
        }
        let mut seen = 0;
        let mut over = false;
        for event in history {
            seen = seen.max(event.seq);
            over |= event.kind == "ended";
            let update = Ok(wire::RunUpdate {
                summary: None,
                event: Some(event_to_wire(event)),
                missed: 0,
            });
            if tx.send(update).await.is_err() {
                return;
            }
        }
        while !over {
            let (event, missed) = match rx.recv().await {
                Ok(event) if event.run_id == run_id && (event.seq == 0 || event.seq > seen) => {
                    (Some(event), 0)
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => (None, missed),
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let Some(summary) = runs.summary(&run_id) else {
                return;
            };
            over = match &event {
                Some(e) => e.kind == "ended",
                None => summary.meta.finished_at_ms.is_some(),
            };
            if tx.send(update(&summary, event, missed)).await.is_err() {
                return;
            }
        }
    });
    Box::pin(ReceiverStream::new(out))
}

fn event_to_wire(e: RunEvent) -> wire::RunEvent {
    wire::RunEvent {
        at_ms: e.at_ms,
        kind: e.kind,
        phase: e.phase,
        step: e.step,
        host: e.host,
        attempt: e.attempt,
        outcome: e.outcome,
        text: e.text,
        by: e.by,
        role: e.role,
        done: e.done,
        total: e.total,
        data: e.data,
    }
}

/// A phase's status word and what more there is to say of it.
fn phase_status_text(status: &PhaseStatus) -> (&'static str, String) {
    let detail = match status {
        PhaseStatus::AwaitingApproval(roles) => roles.join(" + "),
        PhaseStatus::Failed(why) => why.clone(),
        PhaseStatus::TimedOut => "the phase ran past its time limit".into(),
        PhaseStatus::Skipped => "a phase it comes after did not succeed".into(),
        PhaseStatus::Waiting
        | PhaseStatus::Running
        | PhaseStatus::Succeeded
        | PhaseStatus::Aborted => String::new(),
    };
    (status.word(), detail)
}

pub fn summary_to_wire(s: &Summary) -> wire::RunSummary {
    wire::RunSummary {
        run_id: s.meta.id.clone(),
        status: s.status.word(),
        reason: s.meta.reason.clone(),
        started_by: s.meta.started_by.clone(),
        started_at_ms: s.meta.started_at_ms,
        finished_at_ms: s.meta.finished_at_ms.unwrap_or(0),
        dry_run: s.meta.dry_run,
        drill: s.meta.drill,
        to_version: s.meta.to_version.clone(),
        phases: s
            .phases
            .iter()
            .map(|phase| {
                let (status, detail) = phase_status_text(&phase.status);
                let hosts_in = |state: HostState| -> Vec<String> {
                    phase
                        .hosts
                        .iter()
                        .filter(|h| h.state == state)
                        .map(|h| h.host.clone())
                        .collect()
                };
                wire::PhaseSummary {
                    id: phase.id.clone(),
                    status: status.into(),
                    detail,
                    hosts_succeeded: hosts_in(HostState::Succeeded),
                    hosts_failed: hosts_in(HostState::Failed),
                    hosts_timed_out: hosts_in(HostState::TimedOut),
                    hosts_unreachable: hosts_in(HostState::Unreachable),
                    hosts_unknown: hosts_in(HostState::Unknown),
                    hosts: phase
                        .hosts
                        .iter()
                        .map(|h| wire::HostProgress {
                            host: h.host.clone(),
                            steps_done: h.steps_done,
                            steps_total: h.steps_total,
                            step: h.step.clone(),
                            state: h.state.as_str().into(),
                            detail: h.detail.clone(),
                        })
                        .collect(),
                }
            })
            .collect(),
        pending: s
            .pending
            .iter()
            .map(|(scope, roles, waiting)| wire::PendingApproval {
                scope: scope.clone(),
                roles: roles.clone(),
                waiting_ms: *waiting,
            })
            .collect(),
        approvals: s.approvals.clone(),
        awaited: s
            .awaited
            .iter()
            .map(|a| wire::AwaitedHost {
                host: a.host.clone(),
                phase: a.phase.clone(),
                step: a.step.clone(),
                since_ms: a.since_ms,
                why: a.why.clone(),
            })
            .collect(),
        brief: s.brief,
        remedy: s.remedy,
    }
}

/// The last drill's figures, read from disk (a drill stamps the file while
/// the coordinator runs): from the staging plan the plan names (`[drill]
/// staging_plan`, relative to the plan file), else from the plan itself.
fn last_drill(config: &CoordinatorConfig) -> Option<backout_plan::sections::DrillResult> {
    let path = config.plan.as_ref()?;
    let load = |p: &std::path::Path| match backout_plan::model::Plan::load(p) {
        Ok(plan) => plan.drill,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a plan's last drill");
            None
        }
    };
    let drill = load(path)?;
    match &drill.staging_plan {
        Some(staging) => {
            load(&backout_config::resolve(
                path,
                std::path::Path::new(staging),
            ))?
            .last
        }
        None => drill.last,
    }
}

/// How far before the run and after its end the signal charts reach.
const CHART_BEFORE_MS: i64 = 30 * 60 * 1000;
const CHART_AFTER_MS: i64 = 15 * 60 * 1000;

/// The charts of the triggers that fired around a run, from Prometheus.
async fn charts(
    plan: &backout_plan::model::Plan,
    context: &[Entry],
    start: i64,
    end: i64,
    now: i64,
) -> Vec<crate::report::Chart> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let (from, to) = (start - CHART_BEFORE_MS, (end + CHART_AFTER_MS).min(now));
    let step_s = u64::try_from((to - from) / 1000 / 240).unwrap_or(1).max(1);
    let mut out = Vec::new();
    for (trigger, signal, condition, threshold) in
        crate::report::chart_triggers(plan, context, start, end)
    {
        let Some(backout_plan::model::Source::Prometheus { url, query }) =
            plan.signals.get(&signal).map(|s| &s.source)
        else {
            continue;
        };
        let (points, error) =
            match crate::signals::sampler::query_range(&client, url, query, from, to, step_s).await
            {
                Ok(points) => (points, None),
                Err(e) => (Vec::new(), Some(e)),
            };
        out.push(crate::report::Chart {
            trigger,
            signal,
            condition,
            threshold: Some(threshold),
            points,
            error,
        });
    }
    out
}

/// The report of `run_id` in `format` (md, json, html), built from the
/// journal as it is now, with the fired triggers' signals from Prometheus.
pub async fn report(
    service: &ControlService,
    run_id: &str,
    format: &str,
) -> Result<String, Status> {
    let board = service
        .board
        .as_ref()
        .ok_or_else(|| Status::failed_precondition("the coordinator runs without a plan"))?;
    let unavailable = |e: JournalError| Status::unavailable(e.to_string());
    let entries = service.journal.entries(Some(run_id)).map_err(unavailable)?;
    let context = service.journal.entries(Some("")).map_err(unavailable)?;
    let journal_check = match service.journal.verify().map_err(unavailable)? {
        Verdict::Intact { entries } => {
            format!("intact, {entries} entries verified")
        }
        Verdict::Broken { seq, reason } => {
            format!("BROKEN at entry {seq}: {reason}")
        }
    };
    let now = backout_proto::now_ms();
    let created = entries
        .iter()
        .find(|e| matches!(e.record, Record::RunCreated(_)));
    let ended = entries
        .iter()
        .find(|e| matches!(e.record, Record::RunEnded { .. }));
    let charts = match created {
        Some(c) => {
            charts(
                board.plan(),
                &context,
                c.at_ms,
                ended.map_or(now, |e| e.at_ms),
                now,
            )
            .await
        }
        None => Vec::new(),
    };
    let report = crate::report::build(&crate::report::Inputs {
        run_id,
        entries: &entries,
        context: &context,
        plan: board.plan(),
        journal_check,
        charts,
        drill: last_drill(&service.config),
        now_ms: now,
    })
    .ok_or_else(|| Status::not_found(format!("no run `{run_id}` in the journal")))?;
    match format {
        "md" | "markdown" | "" => Ok(crate::report::markdown(&report)),
        "html" => Ok(crate::report::html(&report)),
        "json" => serde_json::to_string_pretty(&report)
            .map_err(|e| Status::internal(format!("report: {e}"))),
        other => Err(Status::invalid_argument(format!(
            "format `{other}`: use md, json or html"
        ))),
    }
}
