//! The post-rollback report (seed 6.2), built from a run's journal: the
//! summary, the timeline of every phase, host and step, approvals with
//! their times, versions each host went from and to, the run's figures and
//! the escalations they trigger, the plan's success criteria measured, the
//! evidence recorded before the decision, and the follow-ups with their due
//! times. Pure: journal entries and the plan in, a [`Report`] out; the
//! renderers (`markdown.rs`, `html.rs`, JSON through serde) turn it into text.

use std::collections::BTreeMap;

use backout_plan::model::Plan;
use serde::Serialize;
use serde_json::Value;

use crate::journal::{Entry, Record};
pub use crate::replay::{EscalationFacts, StepFacts};
use crate::replay::{escalations, figures, replay, timeline};
use crate::text::human_ms;

mod html;
pub mod leadership;
mod markdown;
mod timing;
pub use html::html;
pub use markdown::markdown;

/// How long before a run the evidence (decisions, signals set by people)
/// is looked for.
pub const EVIDENCE_WINDOW_MS: i64 = 6 * 60 * 60 * 1000;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub plan: String,
    pub generated_at_ms: i64,
    pub run: RunFacts,
    pub success: Vec<Criterion>,
    pub phases: Vec<PhaseFacts>,
    pub timeline: Vec<StepFacts>,
    pub approvals: Vec<Decision>,
    pub versions: Vec<HostVersion>,
    /// Each backup a step made, with the hash and size its step reported:
    /// the coordinator's copy of what the agent's marker file records.
    pub backups: Vec<BackupFacts>,
    pub figures: BTreeMap<String, Value>,
    pub escalations: Vec<EscalationFacts>,
    pub evidence: Vec<Evidence>,
    /// Each trigger that fired before the run: how long its deciders took
    /// to start this run, against its `[decide_within]` deadline.
    pub time_to_decision: Vec<TimeToDecision>,
    /// The fired triggers' signals before, during and after the run.
    pub charts: Vec<Chart>,
    /// Each canary judge that fired a trigger before the run: its two
    /// distributions and figures, as journaled when it fired.
    pub judged: Vec<Judged>,
    /// Every message the run sent (or could not send), with its time.
    pub communications: Vec<Notification>,
    pub follow_ups: Vec<FollowUp>,
    /// The journal's own check, as `audit verify` says it.
    pub journal: String,
    /// Who led the run and each takeover during it (a PostgreSQL journal's
    /// leader lease); absent on a SQLite journal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leadership: Option<leadership::Leadership>,
    /// The checkpoint signed at the run's end: keep `checkpoint.seq:hash`
    /// (`audit verify --checkpoint`) outside the journal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<crate::journal::Checkpoint>,
}

/// A trigger the canary judge fired, with what it judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judged {
    pub trigger: String,
    pub at_ms: i64,
    pub figures: crate::journal::JudgeFigures,
}

/// The triggers that fired on the canary judge in the evidence window
/// before the run started, as their `trigger.changed` records keep them.
fn judged(context: &[Entry], start: i64) -> Vec<Judged> {
    context
        .iter()
        .filter(|e| e.at_ms >= start - EVIDENCE_WINDOW_MS && e.at_ms <= start)
        .filter_map(|e| match &e.record {
            Record::TriggerChanged(c) if c.to == "FIRED" => c.judge.as_ref().map(|j| Judged {
                trigger: c.trigger.clone(),
                at_ms: e.at_ms,
                figures: j.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// One fired trigger's time to decision (issue 18): from when it fired to
/// this run's start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeToDecision {
    pub trigger: String,
    pub fired_at_ms: i64,
    /// None: the plan gave its class no deadline.
    pub decide_by_ms: Option<i64>,
    pub decided_at_ms: i64,
    pub took_ms: i64,
    /// Decided by the deadline (None without one).
    pub met: Option<bool>,
    /// The coordinator told the deciders and escalated when it passed.
    pub escalated: bool,
}

/// The triggers that fired in the evidence window before the run started
/// and were decided by it (not by an earlier run): how long the decision
/// took against its deadline, from the coordinator's journaled episodes.
fn time_to_decision(context: &[Entry], run_id: &str, start: i64) -> Vec<TimeToDecision> {
    let decided_elsewhere = |trigger: &str, fired: i64| {
        context.iter().any(|e| {
            matches!(&e.record, Record::TriggerDecided { trigger: t, fired_at_ms, run_id: r }
                if t == trigger && *fired_at_ms == fired && r != run_id)
        })
    };
    let escalated = |trigger: &str, fired: i64| {
        context.iter().any(|e| {
            matches!(&e.record, Record::TriggerOverdue { trigger: t, fired_at_ms, .. }
                if t == trigger && *fired_at_ms == fired)
        })
    };
    context
        .iter()
        .filter(|e| e.at_ms >= start - EVIDENCE_WINDOW_MS && e.at_ms <= start)
        .filter_map(|e| match &e.record {
            Record::TriggerFired {
                trigger,
                fired_at_ms,
                decide_by_ms,
                ..
            } if !decided_elsewhere(trigger, *fired_at_ms) => Some(TimeToDecision {
                trigger: trigger.clone(),
                fired_at_ms: *fired_at_ms,
                decide_by_ms: *decide_by_ms,
                decided_at_ms: start,
                took_ms: start - fired_at_ms,
                met: decide_by_ms.map(|by| start <= by),
                escalated: escalated(trigger, *fired_at_ms),
            }),
            _ => None,
        })
        .collect()
}

/// "High Error Rate fired 2026-…; decided in 12 m 0 s (run started), deadline
/// 30 m: met" for people, in both renderings.
pub fn decision_words(d: &TimeToDecision) -> String {
    let deadline = match (d.decide_by_ms, d.met) {
        (Some(by), Some(true)) => format!(
            "within its deadline ({} to spare)",
            human_ms(by - d.decided_at_ms)
        ),
        (Some(by), _) => format!(
            "DEADLINE MISSED by {}{}",
            human_ms(d.decided_at_ms - by),
            if d.escalated {
                "; deciders told again and escalated"
            } else {
                ""
            }
        ),
        (None, _) => "the plan sets no deadline".into(),
    };
    format!(
        "{} fired {}; decided in {} (this run started): {deadline}",
        d.trigger,
        crate::text::rfc3339(d.fired_at_ms),
        human_ms(d.took_ms)
    )
}

/// One signal over time around the run, with the line its trigger draws.
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    pub trigger: String,
    pub signal: String,
    /// `error_rate > 0.05`.
    pub condition: String,
    pub threshold: Option<f64>,
    pub points: Vec<(i64, f64)>,
    /// Why there are no points, if there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunFacts {
    pub id: String,
    pub reason: String,
    pub to_version: String,
    pub dry_run: bool,
    pub drill: bool,
    pub started_by: String,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub duration_ms: i64,
    pub status: String,
    /// Where the run's time went: in steps, waiting for approvals, and
    /// the rest (Backout's own overhead).
    pub timing: timing::Timing,
}

#[derive(Debug, Clone, Serialize)]
pub struct Criterion {
    pub name: String,
    pub target: String,
    pub measured: String,
    /// `None`: not measured (nothing in the run measures it).
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseFacts {
    pub id: String,
    pub name: String,
    pub status: String,
    pub started_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
    /// Seconds the phase took in the last drill (`[drill.last]`).
    pub last_drill_s: Option<f64>,
    pub hosts: Vec<HostFacts>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostFacts {
    pub host: String,
    pub state: String,
    pub detail: String,
    pub started_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub scope: String,
    pub role: String,
    pub by: String,
    pub at_ms: i64,
    pub approved: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub why: String,
}

/// A backup made by a step of the run (its data's `file`, `size` and
/// `sha256`: the `db` plugin's `backup`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupFacts {
    pub phase: String,
    pub step: String,
    pub host: String,
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostVersion {
    pub host: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub at_ms: i64,
    pub template: String,
    pub channel: String,
    /// start, approval-waiting, end, escalation.
    pub moment: String,
    pub sent: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// An e-mail's recipients, each delivered or refused, with the relay's reply.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<crate::journal::Recipient>,
    /// Whom it paged (the plan's contacts for the roles it concerns).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paged: Vec<String>,
    /// The status page's incident, with its public link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<crate::journal::Incident>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub at_ms: i64,
    pub kind: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FollowUp {
    pub what: String,
    pub due_at_ms: Option<i64>,
}

/// Everything the report is built from.
pub struct Inputs<'a> {
    pub run_id: &'a str,
    /// The run's entries, in journal order.
    pub entries: &'a [Entry],
    /// Entries outside runs (decisions, signals) from around the run.
    pub context: &'a [Entry],
    pub plan: &'a Plan,
    pub journal_check: String,
    pub charts: Vec<Chart>,
    /// The last drill of this plan (or of its staging plan).
    pub drill: Option<backout_plan::sections::DrillResult>,
    pub now_ms: i64,
}

/// "40.2 s in steps, 11.5 s waiting for approvals, 0.4 s Backout's own".
pub fn timing_words(t: &timing::Timing) -> String {
    format!(
        "{} in steps, {} waiting for approvals, {} Backout's own (dispatch, journal, transport)",
        human_ms(t.in_steps_ms),
        human_ms(t.waiting_ms),
        human_ms(t.orchestration_ms)
    )
}

/// The triggers to chart: those named in decisions recorded around the run
/// or that the coordinator saw fire; without any, every trigger with a plain threshold
/// (`signal OP number`). Each with its signal and threshold.
pub fn chart_triggers(
    plan: &Plan,
    context: &[Entry],
    start: i64,
    end: i64,
) -> Vec<(String, String, String, f64)> {
    let mut fired: Vec<String> = evidence(context, start, end)
        .iter()
        .filter(|e| e.kind == "decision")
        .filter_map(|e| e.text.split(':').next().map(str::to_string))
        .collect();
    // And those the coordinator saw fire.
    fired.extend(
        context
            .iter()
            .filter(|e| e.at_ms >= start - EVIDENCE_WINDOW_MS && e.at_ms <= end)
            .filter_map(|e| match &e.record {
                Record::TriggerFired { trigger, .. } => Some(trigger.clone()),
                _ => None,
            }),
    );
    let chosen: Vec<_> = plan
        .triggers
        .iter()
        .filter(|t| fired.is_empty() || fired.contains(&t.name))
        .filter_map(|t| {
            let (signal, op, value) = t.when.threshold()?;
            Some((
                t.name.clone(),
                signal.clone(),
                format!("{signal} {op} {value}"),
                value,
            ))
        })
        .collect();
    chosen.into_iter().take(4).collect()
}

/// Builds the report. `None` when the journal has no such run.
pub fn build(inputs: &Inputs) -> Option<Report> {
    let (meta, run) = replay(inputs.run_id, inputs.entries)?;
    let end = meta.finished_at_ms.unwrap_or(inputs.now_ms);
    let status = if meta.dry_run {
        run.dry_run_status(run.status(end))
    } else {
        run.status(end)
    };
    let timeline = timeline(inputs.entries);
    let names: BTreeMap<&str, &str> = inputs
        .plan
        .phases
        .iter()
        .map(|p| (p.id.as_str(), p.name.as_str()))
        .collect();
    let phases: Vec<PhaseFacts> = run
        .phases(end)
        .into_iter()
        .map(|(id, status)| {
            let steps: Vec<&StepFacts> = timeline.iter().filter(|s| s.phase == id).collect();
            let span = |host: Option<&str>| {
                let mine: Vec<&&StepFacts> = steps
                    .iter()
                    .filter(|s| host.is_none_or(|h| s.host == h))
                    .collect();
                (
                    mine.iter().map(|s| s.started_at_ms).min(),
                    mine.iter().filter_map(|s| s.ended_at_ms).max(),
                )
            };
            let (started_at_ms, ended_at_ms) = span(None);
            PhaseFacts {
                name: names.get(id.as_str()).unwrap_or(&"").to_string(),
                status: status.word().into(),
                started_at_ms,
                ended_at_ms,
                last_drill_s: inputs
                    .drill
                    .as_ref()
                    .and_then(|d| d.phases.get(&id).copied()),
                hosts: run
                    .hosts_of(&id)
                    .into_iter()
                    .map(|h| {
                        let (started_at_ms, ended_at_ms) = span(Some(&h.host));
                        HostFacts {
                            state: h.state.as_str().into(),
                            detail: h.detail,
                            host: h.host,
                            started_at_ms,
                            ended_at_ms,
                        }
                    })
                    .collect(),
                id,
            }
        })
        .collect();
    let approvals = decisions(inputs.entries);
    let timing = timing::Timing::of(run.plan(), &timeline, &approvals, meta.started_at_ms, end);
    let communications = communications(inputs.entries);
    let mut figures = figures(&timeline, meta.started_at_ms, end);
    if meta.dry_run {
        // A dry run changed nothing: its length is no outage.
        figures.remove("outage");
    }
    let run_facts = RunFacts {
        id: meta.id.clone(),
        reason: meta.reason.clone(),
        to_version: meta.to_version.clone(),
        dry_run: meta.dry_run,
        drill: meta.drill,
        started_by: meta.started_by.clone(),
        started_at_ms: meta.started_at_ms,
        ended_at_ms: meta.finished_at_ms,
        duration_ms: end - meta.started_at_ms,
        status: status.word(),
        timing,
    };
    Some(Report {
        plan: inputs.plan.meta.name.clone(),
        generated_at_ms: inputs.now_ms,
        success: success(inputs.plan, &run_facts, &phases, &timeline, &communications),
        versions: versions(&timeline),
        backups: backups(&timeline),
        escalations: escalations(inputs.plan, &figures),
        evidence: evidence(inputs.context, meta.started_at_ms, end),
        time_to_decision: time_to_decision(inputs.context, &meta.id, meta.started_at_ms),
        judged: judged(inputs.context, meta.started_at_ms),
        follow_ups: follow_ups(inputs.plan, meta.finished_at_ms),
        journal: inputs.journal_check.clone(),
        leadership: leadership::leadership(inputs.run_id, inputs.entries, inputs.context),
        checkpoint: inputs.entries.iter().rev().find_map(|e| match &e.record {
            Record::Checkpoint(c) => Some(c.clone()),
            _ => None,
        }),
        charts: inputs.charts.clone(),
        communications,
        run: run_facts,
        phases,
        timeline,
        approvals,
        figures,
    })
}

fn communications(entries: &[Entry]) -> Vec<Notification> {
    entries
        .iter()
        .filter_map(|e| {
            let (n, sent) = match &e.record {
                Record::NotificationSent(n) => (n, true),
                Record::NotificationSkipped(n) => (n, false),
                _ => return None,
            };
            Some(Notification {
                at_ms: e.at_ms,
                template: n.template.clone(),
                channel: n.channel.clone(),
                moment: n.moment.clone(),
                sent,
                detail: n.why.clone().unwrap_or_default(),
                recipients: n.recipients.clone().unwrap_or_default(),
                paged: n.paged.clone().unwrap_or_default(),
                incident: n.incident.clone(),
            })
        })
        .collect()
}

fn decisions(entries: &[Entry]) -> Vec<Decision> {
    entries
        .iter()
        .filter_map(|e| {
            let (scope, role, by, why, approved) = match &e.record {
                Record::RunApproved { scope, role, by } => (scope, role, by, "", true),
                Record::RunRefused {
                    scope,
                    role,
                    by,
                    why,
                } => (scope, role, by, why.as_str(), false),
                _ => return None,
            };
            Some(Decision {
                scope: scope.name().to_string(),
                role: role.clone(),
                by: by.clone(),
                at_ms: e.at_ms,
                approved,
                why: why.to_string(),
            })
        })
        .collect()
}

/// Versions each host went from and to: steps whose data carries `from`
/// and `to` (the `app` plugin's checkout and rollback).
fn versions(timeline: &[StepFacts]) -> Vec<HostVersion> {
    let name = |v: &Value| match (v["commit"].as_str(), v["subject"].as_str()) {
        (Some(c), Some(s)) => format!("{} ({s})", c.get(..10).unwrap_or(c)),
        _ => v.as_str().map(str::to_string).unwrap_or_default(),
    };
    timeline
        .iter()
        .filter(|s| {
            s.result == "succeeded" && s.data["from"].is_object() && s.data["to"].is_object()
        })
        .map(|s| HostVersion {
            host: s.host.clone(),
            from: name(&s.data["from"]),
            to: name(&s.data["to"]),
        })
        .collect()
}

/// The backups the run's succeeded steps made, as their data says.
fn backups(timeline: &[StepFacts]) -> Vec<BackupFacts> {
    timeline
        .iter()
        .filter(|s| s.result == "succeeded")
        .filter_map(|s| {
            Some(BackupFacts {
                phase: s.phase.clone(),
                step: s.step.clone(),
                host: s.host.clone(),
                file: s.data["file"].as_str()?.to_string(),
                size: s.data["size"].as_u64()?,
                sha256: s.data["sha256"].as_str()?.to_string(),
            })
        })
        .collect()
}

fn success(
    plan: &Plan,
    run: &RunFacts,
    phases: &[PhaseFacts],
    timeline: &[StepFacts],
    communications: &[Notification],
) -> Vec<Criterion> {
    let Some(success) = &plan.success else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let human = human_ms;
    if let Some(rto) = success.rto {
        let target = i64::try_from(rto.as_millis()).unwrap_or(i64::MAX);
        let done = run.ended_at_ms.is_some() && run.status == "succeeded";
        out.push(Criterion {
            name: "Recovery time (RTO)".into(),
            target: format!("≤ {}", human(target)),
            measured: if done {
                human(run.duration_ms)
            } else {
                format!(
                    "not recovered ({} so far, {})",
                    human(run.duration_ms),
                    run.status
                )
            },
            met: Some(done && run.duration_ms <= target),
        });
    }
    if let Some(within) = success.notify_within {
        let target = i64::try_from(within.as_millis()).unwrap_or(i64::MAX);
        let by_step = timeline
            .iter()
            .filter(|s| s.what.starts_with("notify.") && s.result == "succeeded")
            .filter_map(|s| s.ended_at_ms);
        let by_message = communications.iter().filter(|n| n.sent).map(|n| n.at_ms);
        let first = by_step.chain(by_message).min();
        out.push(Criterion {
            name: "Stakeholders notified".into(),
            target: format!("within {} of the decision", human(target)),
            measured: first.map_or("nobody was notified".into(), |at| {
                format!("{} after the decision", human(at - run.started_at_ms))
            }),
            met: first.map(|at| at - run.started_at_ms <= target),
        });
    }
    if success.no_new_errors {
        let counts: Vec<u64> = timeline
            .iter()
            .filter(|s| s.result == "succeeded")
            .filter_map(|s| {
                s.data["checks"]["log_errors"]
                    .as_u64()
                    .or_else(|| s.data["log"]["matches"].as_u64())
            })
            .collect();
        let total: u64 = counts.iter().sum();
        out.push(Criterion {
            name: "No new errors after the rollback".into(),
            target: "0 error lines".into(),
            measured: if counts.is_empty() {
                "no step counted errors".into()
            } else {
                format!("{total} error lines in {} checks", counts.len())
            },
            met: (!counts.is_empty()).then_some(total == 0),
        });
    }
    if success.data_integrity {
        let checks: Vec<bool> = timeline
            .iter()
            .filter(|s| s.result == "succeeded")
            .filter_map(|s| {
                // A step says so itself, or the db plugin's audit says the
                // applied migrations match the expected ones.
                s.data["consistent"].as_bool().or_else(|| {
                    (s.what == "db.audit")
                        .then(|| s.data["matches"].as_bool())
                        .flatten()
                })
            })
            .collect();
        out.push(Criterion {
            name: "Data integrity".into(),
            target: "audit and counts consistent".into(),
            measured: if checks.is_empty() {
                "no step checked data integrity".into()
            } else {
                format!(
                    "{} of {} checks consistent",
                    checks.iter().filter(|c| **c).count(),
                    checks.len()
                )
            },
            met: (!checks.is_empty()).then(|| checks.iter().all(|c| *c)),
        });
    }
    if success.timeline_complete {
        let open = timeline.iter().filter(|s| s.ended_at_ms.is_none()).count();
        let unstarted = phases
            .iter()
            .filter(|p| p.started_at_ms.is_none() && p.status != "skipped")
            .count();
        out.push(Criterion {
            name: "Timeline complete".into(),
            target: "every phase and step with a start and an end".into(),
            measured: format!(
                "{} steps, {open} without an end; {unstarted} phases never started",
                timeline.len()
            ),
            met: Some(open == 0 && unstarted == 0 && run.ended_at_ms.is_some()),
        });
    }
    out
}

fn evidence(context: &[Entry], start: i64, end: i64) -> Vec<Evidence> {
    context
        .iter()
        .filter(|e| e.at_ms >= start - EVIDENCE_WINDOW_MS && e.at_ms <= end)
        .filter_map(|e| {
            let (kind, text) = match &e.record {
                Record::Decision {
                    trigger,
                    decision,
                    detail,
                    by,
                } => (
                    "decision",
                    format!("{trigger}: {decision} ({detail}) by {by}"),
                ),
                Record::SignalSet {
                    signal,
                    value,
                    by,
                    note,
                } => (
                    "signal.set",
                    format!("{signal} = {value} set by {by}: {note}"),
                ),
                Record::SignalEvents {
                    signal,
                    count,
                    by,
                    note,
                } => (
                    "signal.events",
                    format!("{count} × {signal} recorded by {by}: {note}"),
                ),
                Record::TriggerChanged(c) => ("trigger.changed", trigger_change_text(c)),
                _ => return None,
            };
            Some(Evidence {
                at_ms: e.at_ms,
                kind: kind.into(),
                text,
            })
        })
        .collect()
}

fn follow_ups(plan: &Plan, ended: Option<i64>) -> Vec<FollowUp> {
    let Some(spec) = &plan.report else {
        return Vec::new();
    };
    [
        ("Root cause analysis", spec.root_cause_due),
        ("Prevention measures", spec.prevention_due),
        ("Lessons learned", spec.lessons_due),
    ]
    .into_iter()
    .filter_map(|(what, due)| {
        let due = due?;
        Some(FollowUp {
            what: what.into(),
            due_at_ms: ended.map(|e| e + i64::try_from(due.as_millis()).unwrap_or(0)),
        })
    })
    .collect()
}

/// A figure for people: the outage as a duration, numbers without a
/// trailing `.0`.
pub fn figure_text(name: &str, value: &Value) -> String {
    match (name, value.as_f64()) {
        ("outage", Some(s)) => human_ms((s * 1000.0) as i64),
        (_, Some(n)) if n.fract() == 0.0 => format!("{n:.0}"),
        (_, Some(n)) => format!("{n:.2}"),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests;

/// What the matrix saw when a trigger's state changed, in one line.
fn trigger_change_text(c: &crate::journal::TriggerChange) -> String {
    let mut text = format!(
        "{} ({}): {} -> {} on `{}`",
        c.trigger, c.class, c.from, c.to, c.condition
    );
    if let Some(value) = &c.value {
        text.push_str(&format!(", value {value}"));
    }
    if let Some(heard) = &c.heard {
        text.push_str(&format!(" ({heard} heard)"));
    }
    text
}
