//! Rollback runs in the coordinator: the pure state machine
//! (`backout_plan::run`) driven by a task per run, every event journaled
//! before it is applied, steps sent through the dispatcher.
//!
//! After a restart, [`Runs::resume`] rebuilds every run from the journal
//! (the state is a fold over its events) and drives the unfinished ones on.
//! Steps that were in flight are sent again under the same step id: the
//! agent's ledger answers with the recorded outcome (or "in progress", or
//! "interrupted"), so nothing runs twice.
//!
//! Not yet here: the live `watch` stream.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backout_plan::model::Plan;
use backout_plan::run::{
    Dispatch, Event, Outcome, PhaseStatus, Rejected, Run, RunPlan, RunStatus, Scope,
};
use backout_proto::now_ms;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::fleet::StepOutcome;
use crate::server::State;
use crate::server::dispatch::StepSpec;

mod codec;
use codec::{event_from_journal, event_json, scope_name};

/// What a run was started with.
#[derive(Debug, Clone)]
pub struct RunMeta {
    pub id: String,
    pub reason: String,
    pub to_version: String,
    pub dry_run: bool,
    pub started_by: String,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

struct Entry {
    meta: RunMeta,
    run: Run,
    /// When each scope began waiting for approvals (for "waited for").
    waiting_since: BTreeMap<String, i64>,
}

/// Errors for operators.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the coordinator runs without a plan")]
    NoPlan,
    #[error("no run `{0}`")]
    UnknownRun(String),
    #[error(transparent)]
    Plan(#[from] backout_plan::run::RunPlanError),
    #[error("you hold none of the roles still needed here ({needed}); your roles: {yours}")]
    NoRole { needed: String, yours: String },
    #[error(transparent)]
    Rejected(#[from] Rejected),
    #[error("the journal cannot be written: {0}")]
    Journal(String),
}

#[derive(Default)]
pub struct Runs {
    entries: Mutex<BTreeMap<String, Entry>>,
    wake: Mutex<BTreeMap<String, Arc<Notify>>>,
}

/// A snapshot of one run for operators.
#[derive(Debug, Clone)]
pub struct Summary {
    pub meta: RunMeta,
    pub status: RunStatus,
    pub phases: Vec<(String, PhaseStatus, Vec<String>, Vec<String>)>,
    /// (scope, roles, waiting ms)
    pub pending: Vec<(String, Vec<String>, i64)>,
    /// "role: person (scope)"
    pub approvals: Vec<String>,
}

impl Runs {
    /// Rebuilds every run from the journal and drives the unfinished ones.
    /// Returns how many runs were resumed.
    pub fn resume(state: &Arc<State>) -> Result<usize, RunError> {
        let Some(board) = &state.board else {
            return Ok(0);
        };
        let entries = state
            .journal
            .entries(None)
            .map_err(|e| RunError::Journal(e.to_string()))?;
        let mut by_run: BTreeMap<String, Vec<crate::journal::Entry>> = BTreeMap::new();
        for e in entries.into_iter().filter(|e| e.kind.starts_with("run.")) {
            by_run.entry(e.run_id.clone()).or_default().push(e);
        }
        let mut resumed = 0;
        for (id, entries) in by_run {
            let Some(created) = entries.iter().find(|e| e.kind == "run.created") else {
                continue;
            };
            let body: Value = serde_json::from_str(&created.body).unwrap_or_default();
            let phases: Vec<String> =
                serde_json::from_value(body["phases"].clone()).unwrap_or_default();
            let plan = match RunPlan::new(board.plan(), &phases) {
                Ok(plan) => plan,
                Err(e) => {
                    tracing::error!(run = %id, error = %e, "cannot resume a run: the plan changed");
                    continue;
                }
            };
            let events: Vec<Event> = entries
                .iter()
                .filter_map(|e| {
                    event_from_journal(
                        &e.kind,
                        &serde_json::from_str(&e.body).unwrap_or_default(),
                        e.at_ms,
                    )
                })
                .collect();
            let finished_at_ms = entries
                .iter()
                .find(|e| e.kind == "run.ended")
                .map(|e| e.at_ms);
            let entry = Entry {
                meta: RunMeta {
                    id: id.clone(),
                    reason: body["reason"].as_str().unwrap_or_default().into(),
                    to_version: body["to_version"].as_str().unwrap_or_default().into(),
                    dry_run: body["dry_run"].as_bool().unwrap_or(false),
                    started_by: body["by"].as_str().unwrap_or_default().into(),
                    started_at_ms: created.at_ms,
                    finished_at_ms,
                },
                run: Run::replay(plan, &events),
                waiting_since: BTreeMap::new(),
            };
            let in_flight = entry.run.in_flight();
            state.runs.lock().insert(id.clone(), entry);
            if finished_at_ms.is_none() {
                resumed += 1;
                tracing::warn!(run = %id, in_flight = in_flight.len(), "resuming run from the journal");
                let notify = Arc::new(Notify::new());
                state
                    .runs
                    .wake
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.clone(), notify.clone());
                for d in in_flight {
                    let to_version = state
                        .runs
                        .lock()
                        .get(&id)
                        .map(|e| (e.meta.to_version.clone(), e.meta.dry_run));
                    if let Some((to_version, dry_run)) = to_version {
                        tokio::spawn(execute(
                            state.clone(),
                            id.clone(),
                            d,
                            to_version,
                            dry_run,
                            notify.clone(),
                        ));
                    }
                }
                tokio::spawn(drive(state.clone(), id, notify));
            }
        }
        Ok(resumed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self, id: &str) {
        if let Some(n) = self.wake.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            n.notify_one();
        }
    }

    /// Journals `event`, then applies it. Called with the run's entry locked
    /// so that the journal's order is the order of application.
    fn record(state: &State, entry: &mut Entry, event: Event) -> Result<(), RunError> {
        let (kind, body) = event_json(&event);
        state
            .journal
            .append(now_ms(), &entry.meta.id, kind, &body)
            .map_err(|e| RunError::Journal(e.to_string()))?;
        entry.run.apply(&event);
        Ok(())
    }

    /// Starts a run and its driver task.
    pub fn start(
        state: &Arc<State>,
        by: &str,
        reason: &str,
        to_version: &str,
        phases: &[String],
        dry_run: bool,
    ) -> Result<Summary, RunError> {
        let board = state.board.as_ref().ok_or(RunError::NoPlan)?;
        let plan = RunPlan::new(board.plan(), phases)?;
        let now = now_ms();
        let id = format!(
            "run-{now}-{}",
            &hex::encode(backout_proto::command::new_nonce())[..6]
        );
        let meta = RunMeta {
            id: id.clone(),
            reason: reason.into(),
            to_version: to_version.into(),
            dry_run,
            started_by: by.into(),
            started_at_ms: now,
            finished_at_ms: None,
        };
        let mut entry = Entry {
            meta,
            run: Run::new(plan),
            waiting_since: BTreeMap::from([("run".to_string(), now)]),
        };
        state
            .journal
            .append(
                now,
                &id,
                "run.created",
                &json!({ "reason": reason, "to_version": to_version, "phases": phases, "dry_run": dry_run, "by": by }),
            )
            .map_err(|e| RunError::Journal(e.to_string()))?;
        Self::record(
            state,
            &mut entry,
            Event::Started {
                by: by.into(),
                at_ms: now,
            },
        )?;
        let summary = summarize(&entry, now);
        state.runs.lock().insert(id.clone(), entry);
        let notify = Arc::new(Notify::new());
        state
            .runs
            .wake
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), notify.clone());
        tokio::spawn(drive(state.clone(), id, notify));
        Ok(summary)
    }

    /// An approval or refusal by `by`, under one of `roles`.
    pub fn decide(
        state: &State,
        run_id: &str,
        phase: Option<String>,
        by: &str,
        roles: &[String],
        role: Option<&str>,
        refusal: Option<String>,
    ) -> Result<Summary, RunError> {
        let summary = {
            let mut runs = state.runs.lock();
            let entry = runs
                .get_mut(run_id)
                .ok_or_else(|| RunError::UnknownRun(run_id.into()))?;
            let scope = phase.map_or(Scope::Run, Scope::Phase);
            let missing = entry.run.missing(&scope);
            let role = match role {
                Some(r) if roles.iter().any(|mine| mine == r) => r.to_string(),
                Some(r) => {
                    return Err(RunError::NoRole {
                        needed: r.into(),
                        yours: roles.join(", "),
                    });
                }
                None => roles
                    .iter()
                    .find(|r| missing.contains(r))
                    .cloned()
                    .ok_or_else(|| RunError::NoRole {
                        needed: missing.join(", "),
                        yours: roles.join(", "),
                    })?,
            };
            entry.run.check_decision(&scope, &role, by, now_ms())?;
            let now = now_ms();
            let event = match refusal {
                Some(why) => Event::Refused {
                    scope,
                    role,
                    by: by.into(),
                    why,
                    at_ms: now,
                },
                None => Event::Approved {
                    scope,
                    role,
                    by: by.into(),
                    at_ms: now,
                },
            };
            Self::record(state, entry, event)?;
            summarize(entry, now)
        };
        state.runs.wake(run_id);
        Ok(summary)
    }

    pub fn abort(state: &State, run_id: &str, by: &str) -> Result<Summary, RunError> {
        let summary = {
            let mut runs = state.runs.lock();
            let entry = runs
                .get_mut(run_id)
                .ok_or_else(|| RunError::UnknownRun(run_id.into()))?;
            if entry.meta.finished_at_ms.is_some() {
                return Err(Rejected::Over.into());
            }
            Self::record(
                state,
                entry,
                Event::Aborted {
                    by: by.into(),
                    at_ms: now_ms(),
                },
            )?;
            summarize(entry, now_ms())
        };
        state.runs.wake(run_id);
        Ok(summary)
    }

    pub fn list(&self) -> Vec<Summary> {
        let now = now_ms();
        self.lock().values().map(|e| summarize(e, now)).collect()
    }
}

fn summarize(entry: &Entry, now: i64) -> Summary {
    let phases = entry
        .run
        .phases(now)
        .into_iter()
        .map(|(id, status)| {
            let (ok, failed) = entry.run.host_results(&id);
            (id, status, ok, failed)
        })
        .collect::<Vec<_>>();
    let mut pending = Vec::new();
    let run_missing = entry.run.missing(&Scope::Run);
    if !run_missing.is_empty() {
        let since = entry.waiting_since.get("run").copied().unwrap_or(now);
        pending.push(("run".to_string(), run_missing, now - since));
    }
    for (id, status, _, _) in &phases {
        if let PhaseStatus::AwaitingApproval(roles) = status {
            let since = entry.waiting_since.get(id).copied().unwrap_or(now);
            pending.push((id.clone(), roles.clone(), now - since));
        }
    }
    Summary {
        meta: entry.meta.clone(),
        status: entry.run.status(now),
        phases,
        pending,
        approvals: entry
            .run
            .approvals()
            .into_iter()
            .map(|(scope, role, by)| format!("{role}: {by} ({})", scope_name(&scope)))
            .collect(),
    }
}

/// The params a step is sent with: the plan's, plus the run's target version.
fn step_params(
    plan: &Plan,
    d: &Dispatch,
    to_version: &str,
) -> (String, String, String, Option<Duration>) {
    let step = plan
        .phases
        .iter()
        .find(|p| p.id == d.phase)
        .and_then(|p| p.steps.iter().find(|s| s.id == d.step));
    let Some(step) = step else {
        return (String::new(), String::new(), "{}".into(), None);
    };
    let mut params = step
        .params
        .as_ref()
        .and_then(|t| serde_json::to_value(t).ok())
        .unwrap_or_else(|| json!({}));
    if !to_version.is_empty()
        && let Some(map) = params.as_object_mut()
    {
        map.entry("to_version").or_insert(json!(to_version));
    }
    (
        step.plugin.clone(),
        step.action.clone(),
        params.to_string(),
        step.timeout,
    )
}

/// Drives one run until it ends: dispatch what is due, journal each dispatch
/// before sending it and each outcome before applying it.
async fn drive(state: Arc<State>, id: String, notify: Arc<Notify>) {
    loop {
        let now = now_ms();
        let mut to_send = Vec::new();
        let done = {
            let mut runs = state.runs.lock();
            let Some(entry) = runs.get_mut(&id) else {
                return;
            };
            // Note when scopes start waiting for approvals.
            for (phase, status) in entry.run.phases(now) {
                if matches!(status, PhaseStatus::AwaitingApproval(_)) {
                    entry.waiting_since.entry(phase).or_insert(now);
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
                if let Err(e) = Runs::record(&state, entry, event) {
                    tracing::error!(run = %id, error = %e, "cannot journal a dispatch; retrying");
                    break;
                }
                to_send.push((d, entry.meta.to_version.clone(), entry.meta.dry_run));
            }
            let over = matches!(
                entry.run.status(now),
                RunStatus::Succeeded
                    | RunStatus::Failed
                    | RunStatus::Refused(_)
                    | RunStatus::Aborted
            );
            if over && entry.run.in_flight().is_empty() && entry.meta.finished_at_ms.is_none() {
                entry.meta.finished_at_ms = Some(now);
                let status = format!("{:?}", entry.run.status(now));
                let _ = state
                    .journal
                    .append(now, &id, "run.ended", &json!({ "status": status }));
                tracing::info!(run = %id, %status, "run ended");
            }
            entry.meta.finished_at_ms.is_some()
        };
        if done {
            return;
        }
        for (d, to_version, dry_run) in to_send {
            tokio::spawn(execute(
                state.clone(),
                id.clone(),
                d,
                to_version,
                dry_run,
                notify.clone(),
            ));
        }
        // Woken by outcomes and decisions; the timeout covers backoffs and time limits.
        let _ = tokio::time::timeout(Duration::from_millis(500), notify.notified()).await;
    }
}

/// Sends one dispatch to its agent and journals the outcome. The step id is
/// the same every time this dispatch is sent, so an agent that already ran
/// it answers from its ledger. While the agent is unreachable or still busy
/// with it, it is asked again, for at most the step's time.
async fn execute(
    state: Arc<State>,
    id: String,
    d: Dispatch,
    to_version: String,
    dry_run: bool,
    notify: Arc<Notify>,
) {
    let Some(board) = &state.board else { return };
    let (plugin, action, params_json, timeout) = step_params(board.plan(), &d, &to_version);
    let wait = timeout.unwrap_or(Duration::from_secs(600)) + Duration::from_secs(10);
    let give_up = tokio::time::Instant::now() + wait;
    let outcome = loop {
        let spec = StepSpec {
            run_id: id.clone(),
            step_id: format!("{id}/{}/{}/{}#{}", d.phase, d.step, d.host, d.attempt),
            agent_id: d.host.clone(),
            plugin: plugin.clone(),
            action: action.clone(),
            params_json: params_json.clone(),
            dry_run,
            deadline: timeout,
        };
        let left = give_up.saturating_duration_since(tokio::time::Instant::now());
        let outcome = state.dispatcher.send(spec).await.wait(left).await;
        let again = match &outcome {
            StepOutcome::Unreachable { .. } => true,
            StepOutcome::Failed { code, .. } => code == "in-progress",
            _ => false,
        };
        if !again || tokio::time::Instant::now() >= give_up {
            break outcome;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let outcome = match outcome {
        StepOutcome::Succeeded { .. } => Outcome::Succeeded,
        other => Outcome::Failed {
            reason: other.detail(),
        },
    };
    {
        let mut runs = state.runs.lock();
        if let Some(entry) = runs.get_mut(&id) {
            let event = Event::Finished {
                phase: d.phase,
                step: d.step,
                host: d.host,
                attempt: d.attempt,
                outcome,
                at_ms: now_ms(),
            };
            if let Err(e) = Runs::record(&state, entry, event) {
                tracing::error!(run = %id, error = %e, "cannot journal an outcome");
            }
        }
    }
    notify.notify_one();
}
