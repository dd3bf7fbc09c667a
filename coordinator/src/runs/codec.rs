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
                "outcome": match outcome { Outcome::Succeeded => json!("succeeded"), Outcome::Failed { reason } => json!({ "failed": reason }) },
            }),
        ),
        Event::Aborted { by, .. } => ("run.aborted", json!({ "by": by })),
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
            outcome: match &body["outcome"] {
                Value::String(s) if s == "succeeded" => Outcome::Succeeded,
                other => Outcome::Failed {
                    reason: other["failed"].as_str().unwrap_or("failed").to_string(),
                },
            },
            at_ms,
        },
        "run.aborted" => Event::Aborted {
            by: text("by")?,
            at_ms,
        },
        _ => return None,
    })
}
