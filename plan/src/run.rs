//! The run state machine: what a rollback run has done, and what it must do
//! next. Pure and event-sourced: the state is a fold over [`Event`]s (the same
//! events the journal records), so a coordinator that restarts rebuilds every
//! unfinished run by replaying its journal, and [`Run::next`] tells it what to
//! dispatch, never a step twice.
//!
//! Rules:
//! * A run starts when every role of the plan's `[approvals] run` has
//!   approved, each by a distinct person (and not the starter unless
//!   `self_approval`). A refusal ends the run.
//! * A phase starts when every phase it comes `after` has succeeded and every
//!   role of its `approvals` has approved (distinct people); a refusal fails it.
//!   A phase whose dependency did not succeed is skipped.
//! * Within a phase, hosts go in batches (`rolling` N at a time, or all at
//!   once); each host runs the phase's steps that target it, in order. The next
//!   batch starts only when the whole batch passed: that is the health gate.
//! * A failed step halts its phase (`halt`), is recorded and passed over
//!   (`continue`), or is tried again after `backoff * 2^(attempt-1)` up to
//!   `retries` more times (`retry`).
//! * A phase past its `time_limit` times out; an abort stops everything.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::sections::OnFailure;

mod backups;
mod plan;
pub use backups::{BackupRules, MissingBackup, NeedsBackup};
pub use plan::{PhasePlan, RunPlan, RunPlanError, StepPlan};

/// What approvals apply to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Run,
    Phase(String),
}

impl Scope {
    /// `run`, or the phase's id (as the journal, watchers and approvals
    /// name it).
    pub fn name(&self) -> &str {
        match self {
            Scope::Run => "run",
            Scope::Phase(id) => id,
        }
    }

    /// The scope [`Scope::name`] names.
    pub fn named(name: &str) -> Scope {
        match name {
            "run" => Scope::Run,
            phase => Scope::Phase(phase.to_string()),
        }
    }
}

/// How one attempt of a step on a host ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// The action ran and failed (or the agent refused the command): the
    /// only outcome a `retry` may follow.
    Failed {
        reason: String,
    },
    /// No answer within the step's time (it may still be running).
    TimedOut {
        reason: String,
    },
    /// The agent could not be reached for the step's time.
    Unreachable {
        reason: String,
    },
    /// The agent stopped while the step ran: it may or may not have taken
    /// effect. Never run again by the engine.
    Unknown {
        reason: String,
    },
}

impl Outcome {
    /// The host state this outcome leaves behind.
    pub fn state(&self) -> HostState {
        match self {
            Outcome::Succeeded => HostState::Succeeded,
            Outcome::Failed { .. } => HostState::Failed,
            Outcome::TimedOut { .. } => HostState::TimedOut,
            Outcome::Unreachable { .. } => HostState::Unreachable,
            Outcome::Unknown { .. } => HostState::Unknown,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Outcome::Succeeded => "",
            Outcome::Failed { reason }
            | Outcome::TimedOut { reason }
            | Outcome::Unreachable { reason }
            | Outcome::Unknown { reason } => reason,
        }
    }
}

/// Where one host stands in one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostState {
    /// Nothing dispatched yet (or waiting out a retry's backoff).
    Pending,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Unreachable,
    Unknown,
}

impl HostState {
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Pending => "pending",
            HostState::Running => "running",
            HostState::Succeeded => "succeeded",
            HostState::Failed => "failed",
            HostState::TimedOut => "timed-out",
            HostState::Unreachable => "unreachable",
            HostState::Unknown => "unknown",
        }
    }
}

/// One host of one phase, for live views and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostView {
    pub host: String,
    /// Steps of the phase for this host that are over (succeeded or passed over).
    pub steps_done: u32,
    pub steps_total: u32,
    /// The step running, due next, or that failed.
    pub step: String,
    pub state: HostState,
    pub detail: String,
}

/// Everything that can happen to a run; the journal records exactly these.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Started {
        by: String,
        at_ms: i64,
    },
    Approved {
        scope: Scope,
        role: String,
        by: String,
        at_ms: i64,
    },
    Refused {
        scope: Scope,
        role: String,
        by: String,
        why: String,
        at_ms: i64,
    },
    Dispatched {
        phase: String,
        step: String,
        host: String,
        attempt: u32,
        at_ms: i64,
    },
    Finished {
        phase: String,
        step: String,
        host: String,
        attempt: u32,
        outcome: Outcome,
        at_ms: i64,
    },
    Aborted {
        by: String,
        at_ms: i64,
    },
    /// A phase ran past its time limit. Recorded the first time it is seen,
    /// so that a step finishing later does not turn the phase back.
    PhaseTimedOut {
        phase: String,
        at_ms: i64,
    },
}

/// What the coordinator must do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    pub phase: String,
    pub step: String,
    pub host: String,
    pub attempt: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseStatus {
    /// Waiting for the phases it comes after.
    Waiting,
    /// Waiting for these roles to approve.
    AwaitingApproval(Vec<String>),
    Running,
    Succeeded,
    Failed(String),
    TimedOut,
    /// A phase it comes after did not succeed.
    Skipped,
    Aborted,
}

impl PhaseStatus {
    /// The status as one word, as operators, watchers, reports and
    /// messages see it.
    pub fn word(&self) -> &'static str {
        match self {
            PhaseStatus::Waiting => "waiting",
            PhaseStatus::AwaitingApproval(_) => "awaiting-approval",
            PhaseStatus::Running => "running",
            PhaseStatus::Succeeded => "succeeded",
            PhaseStatus::Failed(_) => "failed",
            PhaseStatus::TimedOut => "timed-out",
            PhaseStatus::Skipped => "skipped",
            PhaseStatus::Aborted => "aborted",
        }
    }

    fn done(&self) -> bool {
        !matches!(
            self,
            PhaseStatus::Waiting | PhaseStatus::AwaitingApproval(_) | PhaseStatus::Running
        )
    }
}

/// One evaluation of a run (see [`Run::evaluate`]).
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub phases: Vec<(String, PhaseStatus)>,
    pub next: Vec<Dispatch>,
    pub status: RunStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStatus {
    AwaitingApproval(Vec<String>),
    Running,
    Succeeded,
    Failed,
    Refused(String),
    Aborted,
}

impl RunStatus {
    /// The status in words (`refused by ROLE` names the role), as the
    /// journal's `run.ended`, operators, watchers, reports and messages
    /// say it.
    pub fn word(&self) -> String {
        match self {
            RunStatus::AwaitingApproval(_) => "awaiting-approval".into(),
            RunStatus::Running => "running".into(),
            RunStatus::Succeeded => "succeeded".into(),
            RunStatus::Failed => "failed".into(),
            RunStatus::Refused(role) => format!("refused by {role}"),
            RunStatus::Aborted => "aborted".into(),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Attempt {
    attempt: u32,
    dispatched_at: i64,
    finished: Option<(Outcome, i64)>,
}

/// A run: its plan and the events so far.
#[derive(Debug, Clone)]
pub struct Run {
    plan: RunPlan,
    started_by: Option<String>,
    /// (scope, role) -> person
    approvals: BTreeMap<(Scope, String), String>,
    /// Every refusal: scope -> the role that refused first.
    refused: BTreeMap<Scope, String>,
    aborted: bool,
    /// phase -> host -> step -> latest attempt (looked up by `&str`
    /// without building a key).
    attempts: BTreeMap<String, HashMap<String, BTreeMap<String, Attempt>>>,
    /// When each phase dispatched its first step.
    phase_started: BTreeMap<String, i64>,
    /// Phases recorded as timed out.
    timed_out: BTreeSet<String>,
    /// phase -> step -> the hosts it runs on: the plan's targets as sets, so
    /// that "does this step run here?" stays cheap on a fleet of thousands.
    targets: BTreeMap<String, BTreeMap<String, HashSet<String>>>,
    /// phase -> its hosts and where each stands (kept by [`Run::apply`]).
    phase_hosts: BTreeMap<String, PhaseHosts>,
}

/// One phase's hosts and where each stands. [`Run::apply`] works out again
/// the progress of the one host an event names, so that a turn reads every
/// host's progress instead of working it out again over the whole fleet.
#[derive(Debug, Clone, Default)]
struct PhaseHosts {
    /// In the order the phase's steps first name them.
    names: Vec<String>,
    /// host -> its place in `names`.
    index: HashMap<String, usize>,
    /// `progress[i]` is always [`Run::host_progress`] of `names[i]`.
    progress: Vec<HostProgress>,
}

/// Why an event cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("role `{0}` is not asked for here")]
    RoleNotNeeded(String),
    #[error("{by} already approved here as `{role}`; each role needs a distinct person")]
    SamePerson { by: String, role: String },
    #[error("{0} started the run and may not approve it (the plan does not allow self-approval)")]
    SelfApproval(String),
    #[error("role `{0}` has already approved")]
    AlreadyApproved(String),
    #[error("the run is over")]
    Over,
}

impl Run {
    pub fn new(plan: RunPlan) -> Run {
        let mut targets: BTreeMap<String, BTreeMap<String, HashSet<String>>> = BTreeMap::new();
        for phase in &plan.phases {
            let steps = targets.entry(phase.id.clone()).or_default();
            for step in &phase.steps {
                steps
                    .entry(step.id.clone())
                    .or_default()
                    .extend(step.hosts.iter().cloned());
            }
        }
        let mut run = Run {
            plan,
            targets,
            phase_hosts: BTreeMap::new(),
            started_by: None,
            approvals: BTreeMap::new(),
            refused: BTreeMap::new(),
            aborted: false,
            attempts: BTreeMap::new(),
            phase_started: BTreeMap::new(),
            timed_out: BTreeSet::new(),
        };
        // Nothing has happened yet: each host's progress from the plan alone.
        for phase in &run.plan.phases {
            let names = Self::hosts_in_order(phase);
            let index = names
                .iter()
                .enumerate()
                .map(|(i, h)| (h.clone(), i))
                .collect();
            let progress = names.iter().map(|h| run.host_progress(phase, h)).collect();
            let hosts = PhaseHosts {
                names,
                index,
                progress,
            };
            run.phase_hosts.insert(phase.id.clone(), hosts);
        }
        run
    }

    pub fn plan(&self) -> &RunPlan {
        &self.plan
    }

    fn needed(&self, scope: &Scope) -> Vec<String> {
        match scope {
            Scope::Run => self.plan.approvals.clone(),
            Scope::Phase(id) => self
                .plan
                .phases
                .iter()
                .find(|p| &p.id == id)
                .map(|p| p.approvals.clone())
                .unwrap_or_default(),
        }
    }

    /// Roles of `scope` that have not approved yet.
    pub fn missing(&self, scope: &Scope) -> Vec<String> {
        self.needed(scope)
            .into_iter()
            .filter(|role| !self.approvals.contains_key(&(scope.clone(), role.clone())))
            .collect()
    }

    /// Checks an approval or refusal before it is journaled.
    pub fn check_decision(
        &self,
        scope: &Scope,
        role: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<(), Rejected> {
        if matches!(
            self.status(now_ms),
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Refused(_) | RunStatus::Aborted
        ) {
            return Err(Rejected::Over);
        }
        if !self.needed(scope).iter().any(|r| r == role) {
            return Err(Rejected::RoleNotNeeded(role.to_string()));
        }
        if self
            .approvals
            .contains_key(&(scope.clone(), role.to_string()))
        {
            return Err(Rejected::AlreadyApproved(role.to_string()));
        }
        if let Some(((_, other), _)) = self
            .approvals
            .iter()
            .find(|((s, _), person)| s == scope && person.as_str() == by)
        {
            return Err(Rejected::SamePerson {
                by: by.to_string(),
                role: other.clone(),
            });
        }
        if !self.plan.self_approval && self.started_by.as_deref() == Some(by) {
            return Err(Rejected::SelfApproval(by.to_string()));
        }
        Ok(())
    }

    /// Folds one event into the state. Events come from the journal, so they
    /// were checked before they were written; applying them cannot fail.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Started { by, .. } => self.started_by = Some(by.clone()),
            Event::Approved {
                scope, role, by, ..
            } => {
                self.approvals
                    .insert((scope.clone(), role.clone()), by.clone());
            }
            Event::Refused { scope, role, .. } => {
                self.refused
                    .entry(scope.clone())
                    .or_insert_with(|| role.clone());
            }
            Event::Dispatched {
                phase,
                step,
                host,
                attempt,
                at_ms,
            } => {
                self.phase_started.entry(phase.clone()).or_insert(*at_ms);
                self.attempts
                    .entry(phase.clone())
                    .or_default()
                    .entry(host.clone())
                    .or_default()
                    .insert(
                        step.clone(),
                        Attempt {
                            attempt: *attempt,
                            dispatched_at: *at_ms,
                            finished: None,
                        },
                    );
                self.refresh_progress(phase, host);
            }
            Event::Finished {
                phase,
                step,
                host,
                attempt,
                outcome,
                at_ms,
            } => {
                if let Some(a) = self
                    .attempts
                    .get_mut(phase)
                    .and_then(|hosts| hosts.get_mut(host))
                    .and_then(|steps| steps.get_mut(step))
                    && a.attempt == *attempt
                {
                    a.finished = Some((outcome.clone(), *at_ms));
                    self.refresh_progress(phase, host);
                }
            }
            Event::Aborted { .. } => self.aborted = true,
            Event::PhaseTimedOut { phase, .. } => {
                self.timed_out.insert(phase.clone());
            }
        }
    }

    /// Replays events into a fresh run (resume after a restart).
    pub fn replay(plan: RunPlan, events: &[Event]) -> Run {
        let mut run = Run::new(plan);
        for event in events {
            run.apply(event);
        }
        run
    }

    /// Works out again where `host` stands in phase `phase_id` (after an
    /// event about it). A phase or host not in the plan has no steps to run.
    fn refresh_progress(&mut self, phase_id: &str, host: &str) {
        let Some(phase) = self.plan.phases.iter().find(|p| p.id == phase_id) else {
            return;
        };
        let Some(&i) = self
            .phase_hosts
            .get(phase_id)
            .and_then(|hosts| hosts.index.get(host))
        else {
            return;
        };
        let progress = self.host_progress(phase, host);
        if let Some(hosts) = self.phase_hosts.get_mut(phase_id) {
            hosts.progress[i] = progress;
        }
    }

    /// Hosts of a phase in the order they were first named by its steps.
    fn hosts_in_order(phase: &PhasePlan) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut hosts: Vec<String> = Vec::new();
        for step in &phase.steps {
            for host in &step.hosts {
                if seen.insert(host.as_str()) {
                    hosts.push(host.clone());
                }
            }
        }
        hosts
    }

    /// Whether step `step` of phase `phase` runs on `host`.
    fn runs_on(&self, phase: &str, step: &str, host: &str) -> bool {
        self.targets
            .get(phase)
            .and_then(|steps| steps.get(step))
            .is_some_and(|hosts| hosts.contains(host))
    }

    fn attempt(&self, phase: &str, step: &str, host: &str) -> Option<&Attempt> {
        self.attempts.get(phase)?.get(host)?.get(step)
    }

    /// The hosts of a phase, in the order its steps first name them.
    fn hosts(&self, phase: &PhasePlan) -> &[String] {
        self.phase_hosts
            .get(&phase.id)
            .map_or(&[], |hosts| hosts.names.as_slice())
    }

    /// Where one host stands in a phase: done (Ok / Err(reason)), or the next
    /// dispatch (with the time it becomes due), or waiting on a running step.
    fn host_progress(&self, phase: &PhasePlan, host: &str) -> HostProgress {
        for step in phase
            .steps
            .iter()
            .filter(|s| self.runs_on(&phase.id, &s.id, host))
        {
            match self.attempt(&phase.id, &step.id, host) {
                None => return HostProgress::Next(step.id.clone(), 1, i64::MIN),
                Some(Attempt { finished: None, .. }) => return HostProgress::Busy,
                Some(Attempt {
                    finished: Some((Outcome::Succeeded, _)),
                    ..
                }) => continue,
                Some(Attempt {
                    attempt,
                    finished: Some((outcome, at)),
                    ..
                }) => match step.on_failure {
                    OnFailure::Continue => continue,
                    // Only a step that ran and failed is tried again: after a
                    // time-out, an unreachable agent or an unknown outcome the
                    // step may have taken effect.
                    OnFailure::Retry
                        if *attempt <= step.retries
                            && matches!(outcome, Outcome::Failed { .. }) =>
                    {
                        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
                        let wait = step.backoff.saturating_mul(factor);
                        let due =
                            at.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
                        return HostProgress::Next(step.id.clone(), attempt + 1, due);
                    }
                    _ => {
                        return HostProgress::Failed(
                            outcome.state(),
                            format!(
                                "step `{}` {} on {host}: {}",
                                step.id,
                                outcome.state().as_str(),
                                outcome.reason()
                            ),
                        );
                    }
                },
            }
        }
        HostProgress::Done
    }

    /// The status of every phase at `now_ms`, in plan order.
    pub fn phases(&self, now_ms: i64) -> Vec<(String, PhaseStatus)> {
        let mut statuses: BTreeMap<String, PhaseStatus> = BTreeMap::new();
        let mut out = Vec::new();
        for phase in &self.plan.phases {
            let status = self.phase_status(phase, &statuses, now_ms);
            statuses.insert(phase.id.clone(), status.clone());
            out.push((phase.id.clone(), status));
        }
        out
    }

    /// A phase's status. An abort ends what has not ended (and what would
    /// only be skipped because of it); a phase that had ended keeps its result.
    fn phase_status(
        &self,
        phase: &PhasePlan,
        before: &BTreeMap<String, PhaseStatus>,
        now_ms: i64,
    ) -> PhaseStatus {
        let status = self.progress_status(phase, before, now_ms);
        let skipped_by_abort = status == PhaseStatus::Skipped
            && phase
                .after
                .iter()
                .any(|a| before.get(a) == Some(&PhaseStatus::Aborted));
        if self.aborted && (!status.done() || skipped_by_abort) {
            return PhaseStatus::Aborted;
        }
        status
    }

    /// A phase's status from its dependencies, approvals and hosts. A
    /// failed host ends the phase before its time limit can.
    fn progress_status(
        &self,
        phase: &PhasePlan,
        before: &BTreeMap<String, PhaseStatus>,
        now_ms: i64,
    ) -> PhaseStatus {
        let deps: Vec<&PhaseStatus> = phase.after.iter().filter_map(|a| before.get(a)).collect();
        if deps
            .iter()
            .any(|s| s.done() && **s != PhaseStatus::Succeeded)
        {
            return PhaseStatus::Skipped;
        }
        if self.timed_out.contains(&phase.id) {
            return PhaseStatus::TimedOut;
        }
        if !self.missing(&Scope::Run).is_empty() || self.refused.contains_key(&Scope::Run) {
            return PhaseStatus::Waiting;
        }
        if deps.iter().any(|s| !s.done()) {
            return PhaseStatus::Waiting;
        }
        let scope = Scope::Phase(phase.id.clone());
        if let Some(role) = self.refused.get(&Scope::Phase(phase.id.clone())) {
            return PhaseStatus::Failed(format!("refused by {role}"));
        }
        let missing = self.missing(&scope);
        if !missing.is_empty() {
            return PhaseStatus::AwaitingApproval(missing);
        }
        for (_, progress) in self.batches(phase) {
            if let Some(HostProgress::Failed(_, reason)) = progress
                .iter()
                .find(|p| matches!(p, HostProgress::Failed(..)))
            {
                // The rest of the batch may still be running: the phase has failed either way.
                return PhaseStatus::Failed(reason.clone());
            }
            if progress.iter().any(|p| !matches!(p, HostProgress::Done)) {
                // An aborted run's phases end as aborted, not timed out.
                return if !self.aborted && self.over_time(phase, now_ms) {
                    PhaseStatus::TimedOut
                } else {
                    PhaseStatus::Running
                };
            }
        }
        PhaseStatus::Succeeded
    }

    /// When a started phase with a time limit runs past it (ms since the
    /// epoch); `None` for a phase without a limit or not started.
    pub fn phase_deadline_ms(&self, phase_id: &str) -> Option<i64> {
        let phase = self.plan.phases.iter().find(|p| p.id == phase_id)?;
        let limit = phase.time_limit?;
        let started = self.phase_started.get(phase_id)?;
        let limit_ms = i64::try_from(limit.as_millis()).unwrap_or(i64::MAX);
        Some(started.saturating_add(limit_ms))
    }

    /// Whether a started phase has run past its time limit at `now_ms`.
    fn over_time(&self, phase: &PhasePlan, now_ms: i64) -> bool {
        match (phase.time_limit, self.phase_started.get(&phase.id)) {
            (Some(limit), Some(started)) => {
                let limit_ms = i64::try_from(limit.as_millis()).unwrap_or(i64::MAX);
                now_ms > started.saturating_add(limit_ms)
            }
            _ => false,
        }
    }

    /// The phase's batches of hosts, each with its hosts' progress.
    fn batches<'a>(
        &'a self,
        phase: &PhasePlan,
    ) -> std::iter::Zip<std::slice::Chunks<'a, String>, std::slice::Chunks<'a, HostProgress>> {
        let (names, progress) = match self.phase_hosts.get(&phase.id) {
            Some(hosts) => (hosts.names.as_slice(), hosts.progress.as_slice()),
            None => (&[][..], &[][..]),
        };
        let size = if phase.rolling == 0 {
            names.len().max(1)
        } else {
            phase.rolling as usize
        };
        names.chunks(size).zip(progress.chunks(size))
    }

    /// What to dispatch now. Each (phase, step, host, attempt) is returned
    /// until its `Dispatched` event is applied, so a caller that crashed
    /// between deciding and journaling decides the same again.
    pub fn next(&self, now_ms: i64) -> Vec<Dispatch> {
        self.next_of(&self.phases(now_ms), now_ms)
    }

    /// The phases' statuses, what to dispatch and the run's status at
    /// `now_ms`, from one evaluation of the phases (the driver's turn).
    pub fn evaluate(&self, now_ms: i64) -> Evaluation {
        let phases = self.phases(now_ms);
        Evaluation {
            next: self.next_of(&phases, now_ms),
            status: self.status_of(&phases),
            phases,
        }
    }

    fn next_of(&self, phases: &[(String, PhaseStatus)], now_ms: i64) -> Vec<Dispatch> {
        let mut out = Vec::new();
        for (id, status) in phases {
            // A phase whose dependencies and approvals are met is Running,
            // even before its first dispatch.
            if *status != PhaseStatus::Running {
                continue;
            }
            let Some(phase) = self.plan.phases.iter().find(|p| &p.id == id) else {
                continue;
            };
            // The first batch that is not done is the one running.
            for (hosts, progress) in self.batches(phase) {
                if progress.iter().all(|p| matches!(p, HostProgress::Done)) {
                    continue;
                }
                for (host, p) in hosts.iter().zip(progress) {
                    if let HostProgress::Next(step, attempt, due) = p
                        && *due <= now_ms
                    {
                        out.push(Dispatch {
                            phase: phase.id.clone(),
                            step: step.clone(),
                            host: host.clone(),
                            attempt: *attempt,
                        });
                    }
                }
                break;
            }
        }
        out
    }

    /// The run as a whole at `now_ms` (phase time limits depend on it).
    pub fn status(&self, now_ms: i64) -> RunStatus {
        // The phases are evaluated only once the run itself may go.
        if self.aborted
            || self.refused.contains_key(&Scope::Run)
            || !self.missing(&Scope::Run).is_empty()
        {
            return self.status_of(&[]);
        }
        self.status_of(&self.phases(now_ms))
    }

    /// The run's status from its phases' statuses (as [`Run::phases`] gives
    /// them at some time).
    pub fn status_of(&self, phases: &[(String, PhaseStatus)]) -> RunStatus {
        if self.aborted {
            return RunStatus::Aborted;
        }
        if let Some(role) = self.refused.get(&Scope::Run) {
            return RunStatus::Refused(role.clone());
        }
        let missing = self.missing(&Scope::Run);
        if !missing.is_empty() {
            return RunStatus::AwaitingApproval(missing);
        }
        if phases.iter().all(|(_, s)| *s == PhaseStatus::Succeeded) {
            RunStatus::Succeeded
        } else if phases.iter().all(|(_, s)| s.done()) {
            RunStatus::Failed
        } else {
            RunStatus::Running
        }
    }

    /// Whether any step's latest attempt ended other than succeeded (a
    /// step passed over by `on_failure = "continue"` included).
    pub fn any_step_failed(&self) -> bool {
        self.attempts
            .values()
            .flat_map(HashMap::values)
            .flat_map(BTreeMap::values)
            .any(|a| matches!(&a.finished, Some((outcome, _)) if *outcome != Outcome::Succeeded))
    }

    /// The status of a dry run: a dry run whose phases all succeeded but
    /// where a step failed (passed over by `on_failure = "continue"`) has
    /// failed: it found something that would not work.
    pub fn dry_run_status(&self, status: RunStatus) -> RunStatus {
        if status == RunStatus::Succeeded && self.any_step_failed() {
            RunStatus::Failed
        } else {
            status
        }
    }

    /// Steps dispatched and not finished: the ones to ask agents about after a restart.
    pub fn in_flight(&self) -> Vec<Dispatch> {
        let mut out = Vec::new();
        for (phase, hosts) in &self.attempts {
            for (host, steps) in hosts {
                for (step, a) in steps.iter().filter(|(_, a)| a.finished.is_none()) {
                    out.push(Dispatch {
                        phase: phase.clone(),
                        step: step.clone(),
                        host: host.clone(),
                        attempt: a.attempt,
                    });
                }
            }
        }
        // Hash order is not an order: the same run resumes the same way.
        out.sort_by(|a, b| (&a.phase, &a.host, &a.step).cmp(&(&b.phase, &b.host, &b.step)));
        out
    }

    /// Whether any step is dispatched and not finished.
    pub fn has_in_flight(&self) -> bool {
        self.attempts
            .values()
            .flat_map(HashMap::values)
            .flat_map(BTreeMap::values)
            .any(|a| a.finished.is_none())
    }

    /// Every approval so far: scope, role, person.
    pub fn approvals(&self) -> Vec<(Scope, String, String)> {
        self.approvals
            .iter()
            .map(|((scope, role), by)| (scope.clone(), role.clone(), by.clone()))
            .collect()
    }

    /// Phases past their time limit at `now_ms` that are not yet recorded as
    /// timed out: the caller journals a [`Event::PhaseTimedOut`] for each.
    pub fn overdue(&self, now_ms: i64) -> Vec<String> {
        // Most plans set few time limits: skip the evaluation without any.
        if !self.plan.phases.iter().any(|p| p.time_limit.is_some()) {
            return Vec::new();
        }
        self.overdue_of(&self.phases(now_ms))
    }

    /// [`Run::overdue`] from phase statuses already evaluated (the driver's turn).
    pub fn overdue_of(&self, phases: &[(String, PhaseStatus)]) -> Vec<String> {
        phases
            .iter()
            .filter(|(id, status)| *status == PhaseStatus::TimedOut && !self.timed_out.contains(id))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Every host of a phase: how far it got and how it stands.
    pub fn hosts_of(&self, phase_id: &str) -> Vec<HostView> {
        let Some(phase) = self.plan.phases.iter().find(|p| p.id == phase_id) else {
            return Vec::new();
        };
        self.hosts(phase)
            .iter()
            .map(|host| self.host_view(phase, host.clone()))
            .collect()
    }

    fn host_view(&self, phase: &PhasePlan, host: String) -> HostView {
        let steps: Vec<&StepPlan> = phase
            .steps
            .iter()
            .filter(|s| self.runs_on(&phase.id, &s.id, &host))
            .collect();
        let over = |s: &StepPlan| match self.attempt(&phase.id, &s.id, &host) {
            Some(Attempt {
                finished: Some((outcome, _)),
                ..
            }) => *outcome == Outcome::Succeeded || s.on_failure == OnFailure::Continue,
            _ => false,
        };
        let steps_done =
            u32::try_from(steps.iter().filter(|s| over(s)).count()).unwrap_or(u32::MAX);
        let current = steps.iter().find(|s| !over(s)).map(|s| s.id.clone());
        let (state, detail) = match self.host_progress(phase, &host) {
            HostProgress::Done => (HostState::Succeeded, String::new()),
            HostProgress::Busy => (HostState::Running, String::new()),
            HostProgress::Next(_, attempt, _) if attempt > 1 => {
                (HostState::Pending, format!("attempt {attempt} due"))
            }
            HostProgress::Next(..) => (HostState::Pending, String::new()),
            HostProgress::Failed(state, reason) => (state, reason),
        };
        HostView {
            host,
            steps_done,
            steps_total: u32::try_from(steps.len()).unwrap_or(u32::MAX),
            step: current.unwrap_or_default(),
            state,
            detail,
        }
    }

    /// When the attempt in flight was dispatched.
    pub fn dispatched_at(&self, d: &Dispatch) -> Option<i64> {
        self.attempt(&d.phase, &d.step, &d.host)
            .map(|a| a.dispatched_at)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostProgress {
    /// Every step for this host is done (succeeded or passed over).
    Done,
    /// A step is running.
    Busy,
    /// The next dispatch: step, attempt, due time.
    Next(String, u32, i64),
    Failed(HostState, String),
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_outcomes;
#[cfg(test)]
mod tests_progress;
