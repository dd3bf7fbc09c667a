//! Live run events for `backout watch`: every run event as it is applied,
//! plugins' log lines and progress as they arrive, and the end of the run.
//! One broadcast channel serves every watcher of every run; a watcher that
//! falls behind is told so and gets a fresh summary.

use backout_plan::run::{Event, Outcome};
use serde::Serialize;

use crate::fleet::StepEvent;
use crate::journal::{Record, StepEventRecord};

/// One thing that happened to a run, as watchers see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunEvent {
    /// The journal entry this event was written as (0: none).
    #[serde(skip)]
    pub seq: i64,
    pub run_id: String,
    pub at_ms: i64,
    /// started, approved, refused, dispatched, finished, phase-timed-out,
    /// aborted, ended, log, progress, output.
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub phase: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub step: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub attempt: u32,
    /// succeeded, failed, timed-out, unreachable, unknown (finished steps),
    /// or the run's final status (ended).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub outcome: String,
    /// A reason, a log line, a step's summary.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub by: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub role: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub done: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u32,
    /// A finished step's data (JSON text), as its plugin returned it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub data: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl RunEvent {
    /// The watcher's view of a run event; `text` is what the journal keeps
    /// beside it (a finished step's summary).
    pub fn of(run_id: &str, event: &Event, at_ms: i64, text: &str) -> RunEvent {
        let base = RunEvent {
            run_id: run_id.to_string(),
            at_ms,
            text: text.to_string(),
            ..RunEvent::default()
        };
        match event {
            Event::Started { by, .. } => RunEvent {
                kind: "started".into(),
                by: by.clone(),
                ..base
            },
            Event::Approved {
                scope, role, by, ..
            } => RunEvent {
                kind: "approved".into(),
                phase: scope.name().to_string(),
                role: role.clone(),
                by: by.clone(),
                ..base
            },
            Event::Refused {
                scope,
                role,
                by,
                why,
                ..
            } => RunEvent {
                kind: "refused".into(),
                phase: scope.name().to_string(),
                role: role.clone(),
                by: by.clone(),
                text: why.clone(),
                ..base
            },
            Event::Dispatched {
                phase,
                step,
                host,
                attempt,
                ..
            } => RunEvent {
                kind: "dispatched".into(),
                phase: phase.clone(),
                step: step.clone(),
                host: host.clone(),
                attempt: *attempt,
                ..base
            },
            Event::Finished {
                phase,
                step,
                host,
                attempt,
                outcome,
                ..
            } => RunEvent {
                kind: "finished".into(),
                phase: phase.clone(),
                step: step.clone(),
                host: host.clone(),
                attempt: *attempt,
                outcome: outcome.state().as_str().into(),
                text: match outcome {
                    Outcome::Succeeded => text.to_string(),
                    other => other.reason().to_string(),
                },
                ..base
            },
            Event::Aborted { by, .. } => RunEvent {
                kind: "aborted".into(),
                by: by.clone(),
                ..base
            },
            Event::PhaseTimedOut { phase, .. } => RunEvent {
                kind: "phase-timed-out".into(),
                phase: phase.clone(),
                ..base
            },
        }
    }

    /// A plugin's live event. `step_id` is `RUN/PHASE/STEP/HOST#ATTEMPT`.
    pub fn of_step(run_id: &str, step_id: &str, at_ms: i64, event: StepEvent) -> RunEvent {
        let (path, attempt) = step_id.rsplit_once('#').unwrap_or((step_id, ""));
        let mut parts = path.splitn(4, '/').skip(1);
        let mut next = || parts.next().unwrap_or_default().to_string();
        let (phase, step, host) = (next(), next(), next());
        let base = RunEvent {
            run_id: run_id.to_string(),
            at_ms,
            phase,
            step,
            host,
            attempt: attempt.parse().unwrap_or(0),
            ..RunEvent::default()
        };
        match event {
            StepEvent::Log { level, message } => RunEvent {
                kind: "log".into(),
                role: level,
                text: message,
                ..base
            },
            StepEvent::Progress {
                done,
                total,
                message,
            } => RunEvent {
                kind: "progress".into(),
                done,
                total,
                text: message,
                ..base
            },
            StepEvent::Output { name, value_json } => RunEvent {
                kind: "output".into(),
                text: format!("{name} = {value_json}"),
                ..base
            },
        }
    }
}

/// A run's history as watchers see it, from its journal entries: every run
/// event, plugins' live events, and the end.
pub fn history(run_id: &str, entries: &[crate::journal::Entry]) -> Vec<RunEvent> {
    entries
        .iter()
        .filter_map(|e| {
            let mut event = match &e.record {
                Record::RunEnded { status, .. } => RunEvent {
                    run_id: run_id.to_string(),
                    at_ms: e.at_ms,
                    kind: "ended".into(),
                    outcome: status.clone(),
                    ..RunEvent::default()
                },
                Record::StepEvent(live) => {
                    let command_id = live.command_id();
                    let step_id = command_id.rsplit_once('/').map_or("", |(s, _)| s);
                    let step_event = match live.clone() {
                        StepEventRecord::Log { log, message, .. } => StepEvent::Log {
                            level: log,
                            message,
                        },
                        StepEventRecord::Output { output, value, .. } => StepEvent::Output {
                            name: output,
                            value_json: value,
                        },
                        StepEventRecord::Progress {
                            done,
                            total,
                            message,
                            ..
                        } => StepEvent::Progress {
                            done,
                            total,
                            message,
                        },
                    };
                    RunEvent::of_step(run_id, step_id, e.at_ms, step_event)
                }
                record => {
                    let event = record.event(e.at_ms)?;
                    let (note, data) = match record {
                        Record::RunFinished(f) => (f.output.as_deref(), f.data.as_ref()),
                        Record::RunDispatched(d) => (d.what.as_deref(), None),
                        _ => (None, None),
                    };
                    let mut event = RunEvent::of(run_id, &event, e.at_ms, note.unwrap_or_default());
                    if let Some(data) = data.filter(|d| !d.is_null()) {
                        event.data = data.to_string();
                    }
                    event
                }
            };
            event.seq = e.seq;
            Some(event)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_event_names_its_phase_step_host_and_attempt() {
        let e = RunEvent::of_step(
            "run-1-abc",
            "run-1-abc/application/stop/app-2#3",
            7,
            StepEvent::Log {
                level: "info".into(),
                message: "stopping".into(),
            },
        );
        assert_eq!(
            (
                e.phase.as_str(),
                e.step.as_str(),
                e.host.as_str(),
                e.attempt
            ),
            ("application", "stop", "app-2", 3)
        );
        assert_eq!((e.kind.as_str(), e.text.as_str()), ("log", "stopping"));
        let json = serde_json::to_value(&e).unwrap();
        assert!(json.get("done").is_none(), "zero fields are left out");
    }

    #[test]
    fn a_finished_step_carries_its_state_and_reason() {
        let e = RunEvent::of(
            "r",
            &Event::Finished {
                phase: "p".into(),
                step: "s".into(),
                host: "h".into(),
                attempt: 1,
                outcome: Outcome::Unreachable {
                    reason: "agent gone".into(),
                },
                at_ms: 1,
            },
            1,
            "",
        );
        assert_eq!(
            (e.outcome.as_str(), e.text.as_str()),
            ("unreachable", "agent gone")
        );
    }
}
