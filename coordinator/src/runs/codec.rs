//! Run events in the journal: how each `Event` is written, and read back on resume.

use backout_plan::run::{Event, Outcome, Scope};
use serde_json::{Value, json};

pub(super) fn scope_name(scope: &Scope) -> String {
    match scope {
        Scope::Run => "run".into(),
        Scope::Phase(id) => id.clone(),
    }
}

pub(super) fn event_json(event: &Event) -> (&'static str, Value) {
    match event {
        Event::Started { by, .. } => ("run.started", json!({ "by": by })),
        Event::Approved {
            scope, role, by, ..
        } => (
            "run.approved",
            json!({ "scope": scope_name(scope), "role": role, "by": by }),
        ),
        Event::Refused {
            scope,
            role,
            by,
            why,
            ..
        } => (
            "run.refused",
            json!({ "scope": scope_name(scope), "role": role, "by": by, "why": why }),
        ),
        Event::Dispatched {
            phase,
            step,
            host,
            attempt,
            ..
        } => (
            "run.dispatched",
            json!({ "phase": phase, "step": step, "host": host, "attempt": attempt }),
        ),
        Event::Finished {
            phase,
            step,
            host,
            attempt,
            outcome,
            ..
        } => (
            "run.finished",
            json!({
                "phase": phase, "step": step, "host": host, "attempt": attempt,
                "outcome": outcome_json(outcome),
            }),
        ),
        Event::Aborted { by, .. } => ("run.aborted", json!({ "by": by })),
        Event::PhaseTimedOut { phase, .. } => ("run.phase_timed_out", json!({ "phase": phase })),
    }
}

/// `"succeeded"`, or `{"<state>": reason}`.
fn outcome_json(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Succeeded => json!("succeeded"),
        other => json!({ other.state().as_str(): other.reason() }),
    }
}

fn outcome_from_json(value: &Value) -> Outcome {
    if value.as_str() == Some("succeeded") {
        return Outcome::Succeeded;
    }
    let (state, reason) = value
        .as_object()
        .and_then(|o| o.iter().next())
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default().to_string()))
        .unwrap_or(("failed", "unreadable outcome".to_string()));
    match state {
        "timed-out" => Outcome::TimedOut { reason },
        "unreachable" => Outcome::Unreachable { reason },
        "unknown" => Outcome::Unknown { reason },
        _ => Outcome::Failed { reason },
    }
}

/// Reads a journaled run event back (the inverse of `event_json`).
pub(super) fn event_from_journal(kind: &str, body: &Value, at_ms: i64) -> Option<Event> {
    let text = |k: &str| body[k].as_str().map(str::to_string);
    let scope = || match body["scope"].as_str()? {
        "run" => Some(Scope::Run),
        phase => Some(Scope::Phase(phase.to_string())),
    };
    let attempt = || body["attempt"].as_u64().and_then(|a| u32::try_from(a).ok());
    Some(match kind {
        "run.started" => Event::Started {
            by: text("by")?,
            at_ms,
        },
        "run.approved" => Event::Approved {
            scope: scope()?,
            role: text("role")?,
            by: text("by")?,
            at_ms,
        },
        "run.refused" => Event::Refused {
            scope: scope()?,
            role: text("role")?,
            by: text("by")?,
            why: text("why").unwrap_or_default(),
            at_ms,
        },
        "run.dispatched" => Event::Dispatched {
            phase: text("phase")?,
            step: text("step")?,
            host: text("host")?,
            attempt: attempt()?,
            at_ms,
        },
        "run.finished" => Event::Finished {
            phase: text("phase")?,
            step: text("step")?,
            host: text("host")?,
            attempt: attempt()?,
            outcome: outcome_from_json(&body["outcome"]),
            at_ms,
        },
        "run.aborted" => Event::Aborted {
            by: text("by")?,
            at_ms,
        },
        "run.phase_timed_out" => Event::PhaseTimedOut {
            phase: text("phase")?,
            at_ms,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_reads_back_as_written() {
        let outcomes = [
            Outcome::Succeeded,
            Outcome::Failed {
                reason: "exit 1".into(),
            },
            Outcome::TimedOut {
                reason: "30 s".into(),
            },
            Outcome::Unreachable {
                reason: "gone".into(),
            },
            Outcome::Unknown {
                reason: "agent stopped".into(),
            },
        ];
        let mut events: Vec<Event> = outcomes
            .into_iter()
            .map(|outcome| Event::Finished {
                phase: "p".into(),
                step: "s".into(),
                host: "h".into(),
                attempt: 2,
                outcome,
                at_ms: 5,
            })
            .collect();
        events.push(Event::PhaseTimedOut {
            phase: "p".into(),
            at_ms: 5,
        });
        events.push(Event::Refused {
            scope: Scope::Phase("db".into()),
            role: "dba".into(),
            by: "carol".into(),
            why: "no backup".into(),
            at_ms: 5,
        });
        for event in events {
            let (kind, body) = event_json(&event);
            assert_eq!(event_from_journal(kind, &body, 5), Some(event));
        }
    }
}
