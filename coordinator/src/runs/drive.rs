//! The task that drives one run, and the task that carries one step to its
//! agent and back.

use std::sync::Arc;
use std::time::Duration;

use backout_plan::run::{Dispatch, Event, Outcome, PhaseStatus, RunStatus, Scope};
use backout_proto::now_ms;
use serde_json::json;
use tokio::sync::Notify;

use super::{RunEvent, notify};
use crate::fleet::StepOutcome;
use crate::server::State;
use crate::server::dispatch::StepSpec;

/// How long a step is waited for when the plan gives it no `timeout`.
const DEFAULT_STEP_TIME: Duration = Duration::from_secs(600);
/// Beyond the step's own time: delivery, admission, the answer's way back.
const STEP_GRACE: Duration = Duration::from_secs(10);
/// The first and the longest pause between asking an agent again.
const ASK_AGAIN_FIRST: Duration = Duration::from_millis(500);
const ASK_AGAIN_MAX: Duration = Duration::from_secs(5);

/// Drives one run until it ends: journal what is due, then send it; journal
/// phase time-outs when first seen; journal the end.
pub(super) async fn drive(state: Arc<State>, id: String, notify: Arc<Notify>) {
    loop {
        let now = now_ms();
        let mut to_send = Vec::new();
        let done = {
            let runs = &state.runs;
            let mut entries = runs.lock();
            let Some(entry) = entries.get_mut(&id) else {
                return;
            };
            // Note when scopes start waiting for approvals, and tell people once.
            let mut waiting: Vec<(String, Vec<String>)> = Vec::new();
            // (Cheap: the status stops at the run's approvals while any is missing.)
            if !entry.run.missing(&Scope::Run).is_empty()
                && let RunStatus::AwaitingApproval(roles) = entry.run.status(now)
            {
                waiting.push(("run".into(), roles));
            }
            for (phase, status) in entry.run.phases(now) {
                if let PhaseStatus::AwaitingApproval(roles) = status {
                    waiting.push((phase, roles));
                }
            }
            for (scope, roles) in waiting {
                entry.waiting_since.entry(scope.clone()).or_insert(now);
                if entry.announced.insert(scope.clone()) {
                    notify::tell(
                        &state,
                        &id,
                        notify::Moment::ApprovalWaiting { scope, roles },
                    );
                }
            }
            for phase in entry.run.overdue(now) {
                let event = Event::PhaseTimedOut { phase, at_ms: now };
                if let Err(e) = runs.record(&state, entry, event, None) {
                    tracing::error!(run = %id, error = %e, "cannot journal a phase time-out; retrying");
                }
            }
            for d in entry.run.next(now) {
                let event = Event::Dispatched {
                    phase: d.phase.clone(),
                    step: d.step.clone(),
                    host: d.host.clone(),
                    attempt: d.attempt,
                    at_ms: now,
                };
                if let Err(e) = runs.record(&state, entry, event, None) {
                    tracing::error!(run = %id, error = %e, "cannot journal a dispatch; retrying");
                    break;
                }
                to_send.push(d);
            }
            let status = entry.run.status(now);
            let over = matches!(
                status,
                RunStatus::Succeeded
                    | RunStatus::Failed
                    | RunStatus::Refused(_)
                    | RunStatus::Aborted
            );
            if over && entry.run.in_flight().is_empty() && entry.meta.finished_at_ms.is_none() {
                let text = status_word(&status);
                let elapsed = now - entry.meta.started_at_ms;
                match state.journal.append(
                    now,
                    &id,
                    "run.ended",
                    &json!({ "status": text, "elapsed_ms": elapsed }),
                ) {
                    Ok(written) => {
                        entry.meta.finished_at_ms = Some(now);
                        tracing::info!(run = %id, status = %text, elapsed_ms = elapsed, "run ended");
                        runs.publish(RunEvent {
                            seq: written.seq,
                            run_id: id.clone(),
                            at_ms: now,
                            kind: "ended".into(),
                            outcome: text,
                            ..RunEvent::default()
                        });
                        tokio::spawn(tell_the_end(state.clone(), id.clone()));
                    }
                    Err(e) => {
                        tracing::error!(run = %id, error = %e, "cannot journal the end of a run; retrying");
                    }
                }
            }
            entry.meta.finished_at_ms.is_some()
        };
        if done {
            return;
        }
        for d in to_send {
            tokio::spawn(execute(state.clone(), id.clone(), d, notify.clone()));
        }
        // Woken by outcomes and decisions; the timeout covers backoffs and time limits.
        let _ = tokio::time::timeout(Duration::from_millis(500), notify.notified()).await;
    }
}

/// At the end: the `end` messages, then any escalation still to fire.
async fn tell_the_end(state: Arc<State>, id: String) {
    notify::tell(&state, &id, notify::Moment::End);
    escalate(state.clone(), id.clone()).await;
    notify::done_telling(&state, &id);
}

/// Evaluates the plan's escalation rules over the run's figures so far
/// (during the run, after each step that reported figures, and at the end)
/// and fires each rule at most once per run: journaled, then its messages.
async fn escalate(state: Arc<State>, id: String) {
    let Some(board) = &state.board else { return };
    let _one_at_a_time = state.runs.escalating.lock().await;
    let Ok(entries) = state.journal.entries(Some(&id)) else {
        return;
    };
    let fired_before: Vec<String> = entries
        .iter()
        .filter(|e| e.kind == "escalation.fired")
        .filter_map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.body)
                .ok()
                .and_then(|b| b["who"].as_str().map(str::to_string))
        })
        .collect();
    let start = entries.first().map_or(0, |e| e.at_ms);
    let figures = crate::report::figures_of(&entries, start, now_ms());
    for e in crate::report::escalations(board.plan(), &figures) {
        if e.state != "fired" || fired_before.contains(&e.who) {
            continue;
        }
        let body = json!({ "who": e.who, "when": e.when, "figures": figures });
        if let Err(err) = state
            .journal
            .append(now_ms(), &id, "escalation.fired", &body)
        {
            tracing::error!(run = %id, error = %err, "cannot journal an escalation");
            continue;
        }
        tracing::warn!(run = %id, who = %e.who, when = %e.when, "escalation fired");
        let moment = notify::Moment::Escalation {
            who: e.who,
            when: e.when,
        };
        notify::tell(&state, &id, moment);
    }
}

/// The run's status as one word (for the journal and watchers).
pub(crate) fn status_word(status: &RunStatus) -> String {
    match status {
        RunStatus::AwaitingApproval(_) => "awaiting-approval".into(),
        RunStatus::Running => "running".into(),
        RunStatus::Succeeded => "succeeded".into(),
        RunStatus::Failed => "failed".into(),
        RunStatus::Refused(role) => format!("refused by {role}"),
        RunStatus::Aborted => "aborted".into(),
    }
}

/// What `execute` sends for a step.
struct StepCall {
    plugin: String,
    action: String,
    params_json: String,
    timeout: Option<Duration>,
}

/// Sends one dispatch to its agent and journals the outcome. The step id is
/// the same every time this dispatch is sent, so an agent that already ran
/// it answers from its ledger. While the agent is unreachable or still busy
/// with it, it is asked again (at growing intervals), for at most the step's
/// time; what is still unanswered then is timed out or unreachable, and
/// never retried under a new attempt.
pub(super) async fn execute(state: Arc<State>, id: String, d: Dispatch, notify: Arc<Notify>) {
    // Only what the command needs: a step's host list can be the whole fleet.
    let found = {
        let runs = state.runs.lock();
        runs.get(&id).and_then(|entry| {
            let s = entry.run.plan().step(&d.phase, &d.step)?;
            let step = StepCall {
                plugin: s.plugin.clone(),
                action: s.action.clone(),
                params_json: s.params_json.clone(),
                timeout: s.timeout,
            };
            Some((step, entry.meta.to_version.clone(), entry.meta.dry_run))
        })
    };
    let Some((step, to_version, dry_run)) = found else {
        return;
    };
    let params_json = with_version(&step.params_json, &to_version);
    let give_up =
        tokio::time::Instant::now() + step.timeout.unwrap_or(DEFAULT_STEP_TIME) + STEP_GRACE;
    let mut pause = ASK_AGAIN_FIRST;
    let outcome = loop {
        let spec = StepSpec {
            run_id: id.clone(),
            step_id: format!("{id}/{}/{}/{}#{}", d.phase, d.step, d.host, d.attempt),
            agent_id: d.host.clone(),
            plugin: step.plugin.clone(),
            action: step.action.clone(),
            params_json: params_json.clone(),
            dry_run,
            deadline: step.timeout,
            journal_events: true,
        };
        let left = give_up.saturating_duration_since(tokio::time::Instant::now());
        let pending = state.dispatcher.send(spec).await;
        let command_id = pending.command_id.clone();
        let outcome = pending.wait(left).await;
        if matches!(outcome, StepOutcome::TimedOut) {
            state.dispatcher.forget(&command_id);
        }
        let again = match &outcome {
            StepOutcome::Unreachable { .. } => true,
            StepOutcome::Failed { code, .. } => code == "in-progress",
            _ => false,
        };
        let left = give_up.saturating_duration_since(tokio::time::Instant::now());
        if !again || left.is_zero() {
            break outcome;
        }
        // The last pause is cut short so the agent is asked once more at the end.
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(ASK_AGAIN_MAX);
    };
    let result = match &outcome {
        StepOutcome::Succeeded {
            summary, data_json, ..
        } => Some(super::StepResult {
            summary: summary.clone(),
            data_json: data_json.clone(),
        }),
        _ => None,
    };
    // A step that reports run figures may cross an escalation line now,
    // not only at the end.
    let reports_figures = result.as_ref().is_some_and(|r| {
        backout_plan::sections::RUN_FIGURES
            .iter()
            .any(|f| r.data_json.contains(&format!("\"{f}\"")))
    });
    let outcome = run_outcome(outcome);
    // An outcome that cannot be journaled (a full disk) is tried again
    // until it can: the step must not stay in flight for ever.
    let mut pause = ASK_AGAIN_FIRST;
    loop {
        let written = {
            let mut runs = state.runs.lock();
            let Some(entry) = runs.get_mut(&id) else {
                break;
            };
            let event = Event::Finished {
                phase: d.phase.clone(),
                step: d.step.clone(),
                host: d.host.clone(),
                attempt: d.attempt,
                outcome: outcome.clone(),
                at_ms: now_ms(),
            };
            state.runs.record(&state, entry, event, result.clone())
        };
        match written {
            Ok(()) => break,
            Err(e) => {
                tracing::error!(run = %id, error = %e, "cannot journal an outcome; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(ASK_AGAIN_MAX);
            }
        }
    }
    notify.notify_one();
    if reports_figures {
        escalate(state, id).await;
    }
}

/// What the engine makes of an agent's answer.
fn run_outcome(outcome: StepOutcome) -> Outcome {
    match outcome {
        StepOutcome::Succeeded { .. } => Outcome::Succeeded,
        StepOutcome::Failed { code, message } if code == "interrupted" => {
            Outcome::Unknown { reason: message }
        }
        // The agent stopped the step at its deadline: it may have done part of its work.
        StepOutcome::Failed { code, message } if code == "deadline" => {
            Outcome::TimedOut { reason: message }
        }
        StepOutcome::Failed { code, message } if code == "in-progress" => Outcome::TimedOut {
            reason: format!("still running on the agent when the step's time ran out: {message}"),
        },
        StepOutcome::TimedOut => Outcome::TimedOut {
            reason: "no answer within the step's time".into(),
        },
        StepOutcome::Unreachable { detail } => Outcome::Unreachable { reason: detail },
        other => Outcome::Failed {
            reason: other.detail(),
        },
    }
}

/// Where a step's params name the run's target version (`--to`).
pub(super) const TO_VERSION: &str = "${run:to_version}";

/// The step's params with the run's target version put in for
/// `${run:to_version}`. The version was checked at start to be a plain
/// token (letters, digits, `.`, `_`, `+`, `-`), so it needs no escaping.
fn with_version(params_json: &str, to_version: &str) -> String {
    params_json.replace(TO_VERSION, to_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_outcomes_that_never_hide_uncertainty() {
        let failed = |code: &str| StepOutcome::Failed {
            code: code.into(),
            message: "m".into(),
        };
        assert!(matches!(
            run_outcome(failed("interrupted")),
            Outcome::Unknown { .. }
        ));
        assert!(matches!(
            run_outcome(failed("in-progress")),
            Outcome::TimedOut { .. }
        ));
        assert!(matches!(
            run_outcome(failed("deadline")),
            Outcome::TimedOut { .. }
        ));
        assert!(matches!(
            run_outcome(failed("exit")),
            Outcome::Failed { .. }
        ));
        assert!(matches!(
            run_outcome(StepOutcome::Unreachable { detail: "x".into() }),
            Outcome::Unreachable { .. }
        ));
        assert!(matches!(
            run_outcome(StepOutcome::Refused {
                check: "signature".into(),
                detail: "x".into()
            }),
            Outcome::Failed { .. }
        ));
    }

    #[test]
    fn the_target_version_goes_where_the_params_name_it() {
        assert_eq!(
            with_version(r#"{"version":"${run:to_version}","a":1}"#, "v2.3.1"),
            r#"{"version":"v2.3.1","a":1}"#
        );
        assert_eq!(with_version(r#"{"a":1}"#, "v2"), r#"{"a":1}"#);
    }
}
