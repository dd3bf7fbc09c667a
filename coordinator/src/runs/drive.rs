//! The task that drives one run, and the task that carries one step to its
//! agent and back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backout_plan::run::{Dispatch, Event, Outcome, PhaseStatus, RunStatus};
use backout_proto::{codes, now_ms};
use tokio::sync::Notify;
use tracing::Instrument;

use super::{Fact, RunEvent, Runs, notify};
use crate::fleet::StepOutcome;
use crate::fleet::dispatch::{Answer, Approvals, Audit, PendingStep, StepSpec, give_up_in};
use crate::journal::Record;

/// How long a step is waited for when the plan gives it no `timeout`.
const DEFAULT_STEP_TIME: Duration = Duration::from_secs(600);
/// How long a step waits for its host's agent to connect when its phase has
/// no `time_limit` (with one, the phase's limit decides). A dry run never
/// waits. Documented in the README ("When an agent is not connected").
pub(crate) const ABSENT_WAIT: Duration = Duration::from_secs(120);

/// The waits tests' hook, in builds with the `test-hooks` feature only:
/// `BACKOUT_TEST_ABSENT_WAIT_MS=N` replaces [`ABSENT_WAIT`], so that a test
/// sees the default wait end without waiting two minutes.
#[cfg(feature = "test-hooks")]
pub const ABSENT_WAIT_ENV: &str = "BACKOUT_TEST_ABSENT_WAIT_MS";

/// How long an absent agent is waited for in a phase without a time limit.
pub(crate) fn absent_wait() -> Duration {
    #[cfg(feature = "test-hooks")]
    if let Some(ms) = std::env::var(ABSENT_WAIT_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Duration::from_millis(ms);
    }
    ABSENT_WAIT
}
/// Beyond the step's own time: delivery, admission, the answer's way back.
const STEP_GRACE: Duration = Duration::from_secs(10);
/// How long the driver waits, once woken, for more of a turn's news: at
/// least this, at most `GATHER_MAX`.
const GATHER: Duration = Duration::from_millis(2);
const GATHER_MAX: Duration = Duration::from_millis(50);
/// The first and the longest pause between asking an agent again.
const ASK_AGAIN_FIRST: Duration = Duration::from_millis(500);
const ASK_AGAIN_MAX: Duration = Duration::from_secs(5);
/// The longest pause between asking for an agent that is not connected.
const ASK_ABSENT_MAX: Duration = Duration::from_secs(1);

/// Drives one run until it ends. Each turn, under the run's lock: journal
/// the outcomes that came back since the last turn (one write), note and
/// announce approvals waited on, journal phase time-outs when first seen,
/// journal what is due (one write), and journal the end. Then send what is
/// due (one more write for the commands). Writing a turn's events together
/// keeps a run over a thousand hosts to a few fsyncs per turn.
///
/// `run_span` ([`run_span`]) is the root of the run's trace: run → phase →
/// step. Each step's span context goes inside its signed command, so the
/// agent's spans join this trace.
pub(super) async fn drive(
    runs: Arc<Runs>,
    id: String,
    notify: Arc<Notify>,
    run_span: tracing::Span,
) {
    let mut phase_spans: HashMap<String, tracing::Span> = HashMap::new();
    loop {
        let turn = std::time::Instant::now();
        let now = now_ms();
        let mut to_send: Vec<(Dispatch, StepSpec)> = Vec::new();
        let settled: Vec<String>;
        let mut figures = false;
        let done = {
            let mut entries = runs.lock();
            let Some(entry) = entries.get_mut(&id) else {
                return;
            };
            // A phase past its time limit is journaled as timed out before
            // the outcomes that came back since: a step that let go of an
            // absent agent at the limit then does not make it "failed".
            if !entry.outcomes.is_empty() {
                for phase in entry.run.overdue(now) {
                    let event = Event::PhaseTimedOut { phase, at_ms: now };
                    if let Err(e) = runs.record(entry, event) {
                        tracing::error!(run = %id, error = %e, "cannot journal a phase time-out; retrying");
                    }
                }
            }
            // Outcomes back from `execute`: a failed write leaves them for the next turn.
            if !entry.outcomes.is_empty() {
                let outcomes = std::mem::take(&mut entry.outcomes);
                match runs.record_all(entry, &outcomes) {
                    Ok(()) => figures = outcomes.iter().any(|o| o.reports_figures),
                    Err(e) => {
                        tracing::error!(run = %id, error = %e, "cannot journal outcomes; trying again");
                        entry.outcomes = outcomes;
                    }
                }
            }
            // One evaluation of the run for the whole turn.
            let eval = entry.run.evaluate(now);
            settled = eval
                .phases
                .iter()
                .filter(|(_, s)| {
                    !matches!(
                        s,
                        PhaseStatus::Waiting
                            | PhaseStatus::AwaitingApproval(_)
                            | PhaseStatus::Running
                    )
                })
                .map(|(phase, _)| phase.clone())
                .collect();
            // Note when scopes start waiting for approvals, and tell people once.
            let mut waiting: Vec<(String, Vec<String>)> = Vec::new();
            if let RunStatus::AwaitingApproval(roles) = &eval.status {
                waiting.push(("run".into(), roles.clone()));
            }
            for (phase, status) in &eval.phases {
                if let PhaseStatus::AwaitingApproval(roles) = status {
                    waiting.push((phase.clone(), roles.clone()));
                }
            }
            // A phase that ended updates the status page's incident, once.
            for (phase, status) in &eval.phases {
                let ended = matches!(
                    status,
                    PhaseStatus::Succeeded | PhaseStatus::Failed(_) | PhaseStatus::TimedOut
                );
                if ended && entry.announced.insert(format!("ended:{phase}")) {
                    let moment = notify::Moment::PhaseEnd {
                        phase: phase.clone(),
                        status: status.word().to_string(),
                    };
                    notify::tell(&runs, &id, moment);
                }
            }
            for (scope, roles) in waiting {
                entry.waiting_since.entry(scope.clone()).or_insert(now);
                if entry.announced.insert(scope.clone()) {
                    notify::tell(&runs, &id, notify::Moment::ApprovalWaiting { scope, roles });
                }
            }
            // Journaling a time-out changes nothing `eval` says: the phase
            // is timed out in it already.
            for phase in entry.run.overdue_of(&eval.phases) {
                let event = Event::PhaseTimedOut { phase, at_ms: now };
                if let Err(e) = runs.record(entry, event) {
                    tracing::error!(run = %id, error = %e, "cannot journal a phase time-out; retrying");
                }
            }
            let due = eval.next;
            if !due.is_empty() {
                let events: Vec<Fact> = due
                    .iter()
                    .map(|d| {
                        Fact::of(Event::Dispatched {
                            phase: d.phase.clone(),
                            step: d.step.clone(),
                            host: d.host.clone(),
                            attempt: d.attempt,
                            at_ms: now,
                        })
                    })
                    .collect();
                match runs.record_all(entry, &events) {
                    Ok(()) => {
                        to_send = due
                            .into_iter()
                            .filter_map(|d| Some((d.clone(), step_spec(entry, &d)?)))
                            .collect();
                    }
                    Err(e) => {
                        tracing::error!(run = %id, error = %e, "cannot journal dispatches; retrying");
                    }
                }
            }
            let status = if entry.meta.dry_run {
                entry.run.dry_run_status(eval.status)
            } else {
                eval.status
            };
            let over = matches!(
                status,
                RunStatus::Succeeded
                    | RunStatus::Failed
                    | RunStatus::Refused(_)
                    | RunStatus::Aborted
            );
            if over && !entry.run.has_in_flight() && entry.meta.finished_at_ms.is_none() {
                let text = status.word();
                let elapsed = now - entry.meta.started_at_ms;
                let ended = Record::RunEnded {
                    status: text.clone(),
                    elapsed_ms: elapsed,
                };
                match runs.journal.append(now, &id, &ended) {
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
                        tokio::spawn(tell_the_end(runs.clone(), id.clone()));
                    }
                    Err(e) => {
                        tracing::error!(run = %id, error = %e, "cannot journal the end of a run; retrying");
                    }
                }
            }
            entry.meta.finished_at_ms.is_some()
        };
        if figures {
            // A step that reports run figures may cross an escalation line
            // now, not only at the end.
            tokio::spawn(escalate(runs.clone(), id.clone()));
        }
        if done {
            return;
        }
        // A settled phase's span ends once its steps' spans have.
        for phase in &settled {
            phase_spans.remove(phase);
        }
        if !to_send.is_empty() {
            let mut spans = Vec::with_capacity(to_send.len());
            for (d, spec) in &mut to_send {
                let phase = phase_spans.entry(d.phase.clone()).or_insert_with(
                    || tracing::info_span!(parent: &run_span, "phase", run = %id, phase = %d.phase),
                );
                spans.push(step_span(phase, &id, d, spec));
            }
            let specs = to_send.iter().map(|(_, spec)| spec.clone()).collect();
            let sent = runs.dispatcher.send_all(specs).await;
            for (((d, spec), first), span) in to_send.into_iter().zip(sent).zip(spans) {
                let task = execute(runs.clone(), id.clone(), d, spec, Some(first), span);
                tokio::spawn(task);
            }
        }
        // Woken by outcomes and decisions; the timeout covers backoffs and time limits.
        let took = turn.elapsed();
        if tokio::time::timeout(Duration::from_millis(500), notify.notified())
            .await
            .is_ok()
        {
            // Outcomes come back together from a large fleet: a moment's
            // wait lets one turn (one evaluation, one write) take them all.
            // As long as the last turn took, so that evaluating the run
            // never takes more than half the driver's time.
            tokio::time::sleep(took.clamp(GATHER, GATHER_MAX)).await;
        }
    }
}

/// At the end: the `end` messages, then any escalation still to fire.
async fn tell_the_end(runs: Arc<Runs>, id: String) {
    notify::tell(&runs, &id, notify::Moment::End);
    escalate(runs.clone(), id.clone()).await;
    notify::done_telling(&runs, &id);
}

/// Evaluates the plan's escalation rules over the run's figures so far
/// (during the run, after each step that reported figures, and at the end)
/// and fires each rule at most once per run: journaled, then its messages.
/// The figures are the ones the run keeps as its steps succeed: nothing is
/// read back from the journal.
async fn escalate(runs: Arc<Runs>, id: String) {
    let Some(board) = &runs.board else { return };
    let _one_at_a_time = runs.escalating.lock().await;
    let Some((figures, fired_before)) = runs.figures_now(&id) else {
        return;
    };
    for e in crate::replay::escalations(board.plan(), &figures) {
        if e.state != "fired" || fired_before.contains(&e.who) {
            continue;
        }
        let fired = Record::EscalationFired {
            who: e.who.clone(),
            when: e.when.clone(),
            figures: figures.clone(),
        };
        if let Err(err) = runs.journal.append(now_ms(), &id, &fired) {
            tracing::error!(run = %id, error = %err, "cannot journal an escalation");
            continue;
        }
        runs.note_escalated(&id, &e.who);
        tracing::warn!(run = %id, who = %e.who, when = %e.when, "escalation fired");
        let moment = notify::Moment::Escalation {
            who: e.who,
            when: e.when,
        };
        notify::tell(&runs, &id, moment);
    }
}

/// What the command for dispatch `d` of the run says: its plugin, action,
/// params (with the target version put in) and time. The step id is the
/// same every time this dispatch is sent, so an agent that already ran it
/// answers from its ledger. Only what the command needs is copied: a step's
/// host list can be the whole fleet.
pub(super) fn step_spec(entry: &super::Entry, d: &Dispatch) -> Option<StepSpec> {
    let step = entry.run.plan().step(&d.phase, &d.step)?;
    let id = &entry.meta.id;
    Some(StepSpec {
        run_id: id.clone(),
        step_id: format!("{id}/{}/{}/{}#{}", d.phase, d.step, d.host, d.attempt),
        agent_id: d.host.clone(),
        plugin: step.plugin.clone(),
        action: step.action.clone(),
        params_json: with_version(&step.params_json, &entry.meta.to_version),
        dry_run: entry.meta.dry_run,
        deadline: step.timeout,
        // Computed when the step is first sent (or asked again after a
        // restart): every ask of this dispatch carries the same give-up.
        give_up_at_ms: give_up_in(step.timeout.unwrap_or(DEFAULT_STEP_TIME) + STEP_GRACE),
        audit: Audit::Run,
        traceparent: String::new(),
        approvals: Approvals {
            signed: super::approvals::attached(&entry.statements, &d.phase),
            plan_digest: entry.digest.clone(),
            started_by: entry.meta.started_by.clone(),
        },
    })
}

/// Carries one dispatch to its agent and hands the outcome to the run's
/// driver, which journals it. `first` is the command already sent (by the
/// driver, with the others of its turn); without it, the command is sent
/// here (a step in flight when the coordinator restarted). While the agent
/// is unreachable or still busy with it, it is asked again (at growing
/// intervals), for at most the step's time; what is still unanswered then
/// is timed out or unreachable, and never retried under a new attempt.
///
/// It runs in `span`, the step's [`step_span`].
pub(super) fn execute(
    runs: Arc<Runs>,
    id: String,
    d: Dispatch,
    spec: StepSpec,
    first: Option<PendingStep>,
    span: tracing::Span,
) -> impl Future<Output = ()> {
    execute_in_span(runs, id, d, spec, first).instrument(span)
}

/// The root span of run `id`'s trace. A run resumed by a restarted
/// coordinator starts a new trace, marked `resumed`: the spans of its
/// first part ended with the process that had them.
pub(super) fn run_span(id: &str, resumed: bool) -> tracing::Span {
    tracing::info_span!("run", run = %id, resumed)
}

/// The one span of one dispatch of a step, under `parent` (its phase's
/// span, or its run's for a step resumed in flight). Every line logged for
/// it carries its run, phase, step and host (`--log-format json` prints
/// them as fields), and its trace context goes into `spec` (inside the
/// signed command), so the agent's spans join the run's trace.
pub(super) fn step_span(
    parent: &tracing::Span,
    id: &str,
    d: &Dispatch,
    spec: &mut StepSpec,
) -> tracing::Span {
    let span = tracing::info_span!(
        parent: parent,
        "step",
        run = %id,
        phase = %d.phase,
        step = %d.step,
        host = %d.host,
        attempt = d.attempt,
        plugin = %spec.plugin,
        action = %spec.action
    );
    spec.traceparent = backout_config::otel::traceparent(&span);
    span
}

/// Returns when run `id` changed in a way that can end a phase: a step
/// finished, a phase timed out, the run was aborted or ended (or watchers
/// fell behind, when anything may have happened).
async fn run_changed(changes: &mut tokio::sync::broadcast::Receiver<RunEvent>, id: &str) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match changes.recv().await {
            Ok(event)
                if event.run_id == id
                    && matches!(
                        event.kind.as_str(),
                        "finished" | "phase-timed-out" | "aborted" | "ended"
                    ) =>
            {
                return;
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => return,
            // The runs are gone: only the timer is left to wait for.
            Err(RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

async fn execute_in_span(
    runs: Arc<Runs>,
    id: String,
    d: Dispatch,
    spec: StepSpec,
    first: Option<PendingStep>,
) {
    // The give-up time the command carries: the agent refuses it after
    // that (`deadline`), so a command stuck in a dead connection cannot run
    // once the step is recorded here as timed out.
    let left_ms = u64::try_from(spec.give_up_at_ms.saturating_sub(now_ms())).unwrap_or(0);
    let give_up = tokio::time::Instant::now() + Duration::from_millis(left_ms);
    let mut pause = ASK_AGAIN_FIRST;
    let mut first = first;
    // Since when the agent has not been connected, while it is not.
    let mut absent_since: Option<i64> = None;
    // While it is not: the run's changes, so that the step lets go the
    // moment its phase ends for another reason (a failed host, an abort),
    // not at the next ask. Subscribed before the phase is first looked at,
    // so no change is missed between the look and the wait.
    let mut changes: Option<tokio::sync::broadcast::Receiver<RunEvent>> = None;
    let Answer { outcome, ran_ms } = loop {
        let left = give_up.saturating_duration_since(tokio::time::Instant::now());
        let pending = match first.take() {
            Some(sent) => sent,
            None => runs.dispatcher.send(spec.clone()).await,
        };
        let command_id = pending.command_id.clone();
        let answer = pending.answer(left).await;
        if matches!(answer.outcome, StepOutcome::TimedOut) {
            runs.dispatcher.forget(&command_id);
        }
        let again = match &answer.outcome {
            StepOutcome::Unreachable { .. } => true,
            // Still running there, or never sent (the journal could not
            // record the command): ask again.
            StepOutcome::Failed { code, .. } => {
                code == codes::IN_PROGRESS || code == codes::JOURNAL
            }
            _ => false,
        };
        // An agent that is not connected is waited for in the open, and
        // only as long as its phase allows.
        if let StepOutcome::Unreachable { detail } = &answer.outcome {
            let since = *absent_since.get_or_insert_with(now_ms);
            if changes.is_none() {
                changes = Some(runs.updates.subscribe());
            }
            if let Some(why) = runs.await_absent(&id, &d, since, detail) {
                break Answer {
                    outcome: StepOutcome::Unreachable { detail: why },
                    ran_ms: None,
                };
            }
        } else if absent_since.take().is_some() {
            changes = None;
            runs.no_longer_awaited(&id, &d);
        }
        let left = give_up.saturating_duration_since(tokio::time::Instant::now());
        if !again || left.is_zero() {
            break answer;
        }
        // The last pause is cut short so the agent is asked once more at the
        // end; an absent agent is asked again the moment its wait ends (a
        // millisecond after the phase's limit), so the run ends on time.
        let until_wait_ends = absent_since
            .and_then(|since| runs.absent_wait_ends_ms(&id, &d, since))
            .map(|ends| {
                let ms = u64::try_from(ends.saturating_sub(now_ms()).max(0)).unwrap_or(0);
                Duration::from_millis(ms + 1)
            });
        let nap = tokio::time::sleep(pause.min(left).min(until_wait_ends.unwrap_or(left)));
        match changes.as_mut() {
            Some(changes) => {
                tokio::select! {
                    () = nap => {}
                    () = run_changed(changes, &id) => {}
                }
            }
            None => nap.await,
        }
        // An absent agent costs nothing to ask for (no command is sent): ask
        // every second, and at once when the run changed (above), so that
        // the step lets go as soon as its phase ends for another reason (a
        // failed host, an abort), and the run ends with it.
        let max = if absent_since.is_some() {
            ASK_ABSENT_MAX
        } else {
            ASK_AGAIN_MAX
        };
        pause = (pause * 2).min(max);
    };
    if absent_since.is_some() {
        runs.no_longer_awaited(&id, &d);
    }
    let result = match &outcome {
        StepOutcome::Succeeded {
            summary, data_json, ..
        } => Some(super::StepResult {
            summary: summary.clone(),
            data_json: data_json.clone(),
        }),
        _ => None,
    };
    let reports_figures = result.as_ref().is_some_and(|r| {
        backout_plan::sections::RUN_FIGURES
            .iter()
            .any(|f| r.data_json.contains(&format!("\"{f}\"")))
    });
    tracing::info!(
        attempt = d.attempt,
        outcome = outcome_word(&outcome),
        ran_ms,
        "step answered"
    );
    let event = Event::Finished {
        phase: d.phase,
        step: d.step,
        host: d.host,
        attempt: d.attempt,
        outcome: run_outcome(outcome),
        at_ms: now_ms(),
    };
    if let Some(entry) = runs.lock().get_mut(&id) {
        entry.outcomes.push(Fact {
            event,
            result,
            ran_ms,
            reports_figures,
        });
    }
    runs.wake(&id);
}

/// One word for an answer, for the log (its details may hold what a step
/// printed; they stay in the journal, redacted).
fn outcome_word(outcome: &StepOutcome) -> &'static str {
    match outcome {
        StepOutcome::Refused { .. } => "refused",
        StepOutcome::Succeeded { .. } => "succeeded",
        StepOutcome::Failed { .. } => "failed",
        StepOutcome::TimedOut => "timed out",
        StepOutcome::Unreachable { .. } => "unreachable",
    }
}

/// What the engine makes of an agent's answer.
fn run_outcome(outcome: StepOutcome) -> Outcome {
    match outcome {
        StepOutcome::Succeeded { .. } => Outcome::Succeeded,
        StepOutcome::Failed { code, message } if code == codes::INTERRUPTED => {
            Outcome::Unknown { reason: message }
        }
        // The agent stopped the step at its deadline: it may have done part of its work.
        StepOutcome::Failed { code, message } if code == codes::DEADLINE => {
            Outcome::TimedOut { reason: message }
        }
        StepOutcome::Failed { code, message } if code == codes::IN_PROGRESS => Outcome::TimedOut {
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
