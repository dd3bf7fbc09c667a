//! Rollback runs in the coordinator: the pure state machine
//! (`backout_plan::run`) driven by a task per run (`drive.rs`), every event
//! journaled before it is applied, steps sent through the dispatcher, and
//! every change published to watchers (`watch.rs`).
//!
//! The run's resolved plan is journaled in `run.created`. After a restart,
//! [`Runs::resume`] rebuilds every run from the journal (the state is a fold
//! over its events) and drives the unfinished ones on. Steps that were in
//! flight are sent again under the same step id: the agent's ledger answers
//! with the recorded outcome (or "in progress", or "interrupted"), so nothing
//! runs twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use backout_plan::run::{Event, HostView, PhaseStatus, Rejected, Run, RunPlan, RunStatus, Scope};
use backout_proto::now_ms;
use serde_json::Value;
use tokio::sync::{Notify, broadcast};

use crate::fleet::StepEvent;
use crate::fleet::dispatch::Dispatcher;
use crate::fleet::registry::Registry;
use crate::journal::{Journal, NewEntry, Record, RunCreated};
use crate::replay::replay;
use crate::signals::board::Board;

pub mod approvals;
pub mod deadline;
pub(crate) mod drive;
mod incident;
mod mail;
pub mod notify;
mod remedy;
pub use remedy::RemedyView;
mod watch;
pub use crate::replay::RunMeta;
pub use watch::RunEvent;

/// What an operator asks for when starting a run.
#[derive(Debug, Clone, Default)]
pub struct StartRun {
    pub reason: String,
    pub to_version: String,
    pub phases: Vec<String>,
    pub dry_run: bool,
    pub drill: bool,
    /// Undo this remedy run instead (`backout remedy undo RUN`).
    pub undo: Option<String>,
}

/// What a succeeded step reported: its one line and its data (JSON text).
#[derive(Debug, Clone)]
pub struct StepResult {
    pub summary: String,
    pub data_json: String,
}

struct Entry {
    meta: RunMeta,
    run: Run,
    /// When each scope began waiting for approvals (for "waited for").
    waiting_since: BTreeMap<String, i64>,
    /// The scopes whose "approval waiting" messages are out (or queued).
    announced: BTreeSet<String>,
    /// Outcomes back from agents, for the driver to journal on its next turn.
    outcomes: Vec<Fact>,
    /// Steps waiting for an agent that is not connected: (phase, host) ->
    /// since when and why. Kept by the `execute` tasks; shown to operators.
    awaited: BTreeMap<(String, String), Awaited>,
    /// The run figures its succeeded steps reported so far (without
    /// `outage`), kept as results are journaled
    /// ([`crate::replay::add_figures`]).
    figures: BTreeMap<String, Value>,
    /// The escalation rules that fired for this run (whom each names).
    escalated: BTreeSet<String>,
    /// A trigger's remedy run: started with exactly one trigger's remedy
    /// phase (`backout_plan::remedy::approvals_for`), not an undo.
    remedy: bool,
    /// `sha256:<hex>` of the run's resolved plan ([`approvals::plan_digest`]).
    digest: String,
    /// The operators' signed statements, as journaled (`approval.signed`).
    statements: Vec<approvals::Held>,
    /// Nonces handed out for signed approvals and not used yet (in memory:
    /// after a restart an operator asks again).
    nonces: BTreeMap<String, approvals::Issued>,
}

/// A step waiting for its host's agent to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Awaited {
    pub phase: String,
    pub step: String,
    pub host: String,
    pub since_ms: i64,
    pub why: String,
}

/// An event on its way to the journal, with what came with it.
#[derive(Debug, Clone)]
struct Fact {
    event: Event,
    /// A succeeded step's summary and data.
    result: Option<StepResult>,
    /// How long a finished step ran on its agent.
    ran_ms: Option<i64>,
    /// Its data names run figures (escalation rules look at them).
    reports_figures: bool,
}

impl Fact {
    fn of(event: Event) -> Fact {
        Fact {
            event,
            result: None,
            ran_ms: None,
            reports_figures: false,
        }
    }
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
    #[error("run {id} has ended ({status}): there is nothing left to approve or refuse")]
    Ended { id: String, status: String },
    #[error(
        "nothing waits for approval in `{0}`: every role it needs has approved, or it needs none"
    )]
    NothingToApprove(String),
    #[error("you hold none of the roles still needed here ({needed}); your roles: {yours}")]
    NoRole { needed: String, yours: String },
    #[error("you do not hold the role {role} (your roles: {yours}); still needed here: {needed}")]
    NotYourRole {
        role: String,
        yours: String,
        needed: String,
    },
    #[error(transparent)]
    Rejected(#[from] Rejected),
    #[error("the journal cannot be written: {0}")]
    Journal(String),
    #[error("{0}")]
    BadVersion(String),
    #[error("cannot undo run {run}: {why}")]
    Undo { run: String, why: String },
    #[error("signed approval refused: {0}")]
    Statement(String),
    /// A data-changing step with no verified backup before it in the run.
    #[error("{}", no_backup_words(.0))]
    NoBackup(Vec<backout_plan::run::MissingBackup>),
}

fn no_backup_words(missing: &[backout_plan::run::MissingBackup]) -> String {
    let each: Vec<String> = missing.iter().map(ToString::to_string).collect();
    format!(
        "the run was not started: {}. Run the backup's phase in the same run (add it to --phases), or put a backup step before the migration",
        each.join("; ")
    )
}

/// Checks `--to`: a plain version token, present when a step needs it.
fn check_version(plan: &RunPlan, to_version: &str) -> Result<(), RunError> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-');
    if to_version.len() > 128 || !to_version.chars().all(plain) {
        return Err(RunError::BadVersion(format!(
            "--to `{to_version}`: a version is letters, digits, `.`, `_`, `+` and `-` (at most 128)"
        )));
    }
    if to_version.is_empty() {
        for phase in &plan.phases {
            if let Some(step) = phase
                .steps
                .iter()
                .find(|s| s.params_json.contains(drive::TO_VERSION))
            {
                return Err(RunError::BadVersion(format!(
                    "step `{}/{}` needs the target version: give --to VERSION",
                    phase.id, step.id
                )));
            }
        }
    }
    Ok(())
}

/// Every run, and the handles the runs use (given by the composition root,
/// `root.rs`): the journal, the dispatcher that carries steps and messages,
/// the registry (whom a message can go through) and the board (the plan).
pub struct Runs {
    /// Runs in memory: every run that has not ended, and an ended one until
    /// its last messages are out.
    entries: Mutex<BTreeMap<String, Entry>>,
    /// Ended runs that left memory, each as a brief summary (no hosts: a
    /// few hundred bytes, not the run's state): what `runs` lists. The rest
    /// is read from the journal when asked ([`Runs::summary`]). Locked after
    /// `entries` when both are.
    ended: Mutex<BTreeMap<String, Summary>>,
    wake: Mutex<BTreeMap<String, Arc<Notify>>>,
    /// Every run's live events, for watchers.
    updates: broadcast::Sender<RunEvent>,
    /// One escalation check at a time, so a rule fires once per run.
    pub(crate) escalating: tokio::sync::Mutex<()>,
    /// Each run's messages, sent in order.
    pub(crate) announcers: notify::Queues,
    journal: Arc<Journal>,
    dispatcher: Arc<Dispatcher>,
    registry: Arc<Registry>,
    /// The plan's signals and triggers; `None` when the coordinator runs
    /// without a plan (then no run starts).
    board: Option<Arc<Board>>,
    /// The relay the plan's `email` channels go through.
    smtp: Option<crate::config::SmtpConfig>,
    /// The fired triggers' episodes, kept by `deadline.rs` (rebuilt from
    /// the journal at start); remedies are judged per episode.
    pub(crate) episodes: Mutex<backout_plan::episode::Episodes>,
    /// The plugins' data-changing actions and the backup each needs first
    /// (`x-needs-backup`): a run that would run one without its backup
    /// earlier in the run is refused at start. Set by `serve` from the
    /// plugins it knows; empty: nothing checked.
    backups: Mutex<backout_plan::run::BackupRules>,
}

impl Runs {
    pub fn new(
        journal: Arc<Journal>,
        dispatcher: Arc<Dispatcher>,
        registry: Arc<Registry>,
        board: Option<Arc<Board>>,
    ) -> Self {
        Runs {
            entries: Mutex::default(),
            ended: Mutex::default(),
            wake: Mutex::default(),
            updates: broadcast::channel(4096).0,
            escalating: tokio::sync::Mutex::new(()),
            announcers: notify::Queues::default(),
            journal,
            dispatcher,
            registry,
            board,
            smtp: None,
            episodes: Mutex::default(),
            backups: Mutex::default(),
        }
    }

    /// The data-changing actions runs are checked against at start.
    pub fn set_backup_rules(&self, rules: backout_plan::run::BackupRules) {
        *self.backups.lock().unwrap_or_else(PoisonError::into_inner) = rules;
    }

    /// Sends the plan's `email` channels through this relay.
    pub fn with_smtp(mut self, smtp: Option<crate::config::SmtpConfig>) -> Self {
        self.smtp = smtp;
        self
    }
}

/// One phase of a run for operators.
#[derive(Debug, Clone)]
pub struct PhaseView {
    pub id: String,
    pub status: PhaseStatus,
    pub hosts: Vec<HostView>,
}

/// A snapshot of one run for operators.
#[derive(Debug, Clone)]
pub struct Summary {
    pub meta: RunMeta,
    pub status: RunStatus,
    pub phases: Vec<PhaseView>,
    /// (scope, roles, waiting ms)
    pub pending: Vec<(String, Vec<String>, i64)>,
    /// "role: person (scope)"
    pub approvals: Vec<String>,
    /// Steps waiting for an agent that is not connected.
    pub awaited: Vec<Awaited>,
    /// An ended run that left memory, as `runs` lists it: its phases
    /// without their hosts (`backout runs RUN` shows them).
    pub brief: bool,
    /// A trigger's remedy run (its undo is `backout remedy undo RUN`).
    pub remedy: bool,
}

impl Summary {
    /// This summary without its hosts: what is kept of an ended run.
    fn brief(mut self) -> Summary {
        for phase in &mut self.phases {
            phase.hosts = Vec::new();
        }
        self.awaited = Vec::new();
        self.pending = Vec::new();
        self.brief = true;
        self
    }
}

impl Runs {
    /// Rebuilds every run from the journal and drives the unfinished ones.
    /// Returns how many runs were resumed. An entry of the journal that
    /// does not read is an error: no run is guessed at.
    pub fn resume(self: &Arc<Self>) -> Result<usize, RunError> {
        let entries = self
            .journal
            .entries(None)
            .map_err(|e| RunError::Journal(e.to_string()))?;
        let mut by_run: BTreeMap<String, Vec<crate::journal::Entry>> = BTreeMap::new();
        let kept = |e: &crate::journal::Entry| {
            e.record.event(e.at_ms).is_some()
                || matches!(
                    e.record,
                    Record::RunCreated(_)
                        | Record::ApprovalSigned(_)
                        | Record::RunEnded { .. }
                        | Record::NotificationSent(_)
                        | Record::NotificationSkipped(_)
                        | Record::EscalationFired { .. }
                )
        };
        for e in entries.into_iter().filter(kept) {
            by_run.entry(e.run_id.clone()).or_default().push(e);
        }
        let mut resumed = 0;
        for (id, entries) in by_run {
            if entries
                .iter()
                .any(|e| matches!(e.record, Record::RunEnded { .. }))
            {
                // An ended run stays out of memory: its brief summary only.
                if let Some(summary) = self.rebuilt(&id, &entries) {
                    self.ended_lock().insert(id, summary.brief());
                }
                continue;
            }
            let Some((meta, run)) = replay(&id, &entries) else {
                continue;
            };
            let (waiting_since, announced) = approvals_announced(&meta, &entries);
            let figures = crate::replay::reported(&crate::replay::timeline(&entries));
            let remedy = self.created_as_remedy(&entries);
            let digest = approvals::plan_digest(run.plan());
            let statements = approvals::held_of(&entries);
            let entry = Entry {
                digest,
                statements,
                nonces: BTreeMap::new(),
                meta,
                run,
                waiting_since,
                announced,
                outcomes: Vec::new(),
                awaited: BTreeMap::new(),
                figures,
                escalated: crate::replay::fired(&entries).into_iter().collect(),
                remedy,
            };
            let in_flight: Vec<_> = entry
                .run
                .in_flight()
                .into_iter()
                .filter_map(|d| Some((d.clone(), drive::step_spec(&entry, &d)?)))
                .collect();
            self.lock().insert(id.clone(), entry);
            resumed += 1;
            tracing::warn!(run = %id, in_flight = in_flight.len(), "resuming run from the journal");
            let notify = self.notifier(&id);
            let run_span = drive::run_span(&id, true);
            for (d, mut spec) in in_flight {
                let span = drive::step_span(&run_span, &id, &d, &mut spec);
                let task = drive::execute(self.clone(), id.clone(), d, spec, None, span);
                tokio::spawn(task);
            }
            tokio::spawn(drive::drive(self.clone(), id, notify, run_span));
        }
        Ok(resumed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `run_id` in `runs` if it has not ended; else why not (ended,
    /// whether still in memory or not, or unknown).
    fn still_going<'a>(
        &self,
        runs: &'a mut BTreeMap<String, Entry>,
        run_id: &str,
    ) -> Result<&'a mut Entry, RunError> {
        let Some(entry) = runs.get_mut(run_id) else {
            return Err(match self.ended_lock().get(run_id) {
                Some(brief) => RunError::Ended {
                    id: run_id.into(),
                    status: brief.status.word(),
                },
                None => RunError::UnknownRun(run_id.into()),
            });
        };
        if entry.meta.finished_at_ms.is_some() {
            let status = summarize(entry, now_ms()).status.word();
            return Err(RunError::Ended {
                id: run_id.into(),
                status,
            });
        }
        Ok(entry)
    }

    fn ended_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Summary>> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `id` leaves memory if it has ended: its state, figures and
    /// waits are dropped, and a brief summary is kept for `runs`. Called
    /// once the run's last messages are out (`notify`), so nothing that
    /// reads the run in memory is left to come.
    pub(crate) fn leave_memory(&self, id: &str) {
        {
            let mut runs = self.lock();
            if runs.get(id).is_none_or(|e| e.meta.finished_at_ms.is_none()) {
                return;
            }
            let Some(entry) = runs.remove(id) else {
                return;
            };
            let brief = summarize(&entry, now_ms()).brief();
            // Under the runs' lock: a listing sees the run in one place.
            self.ended_lock().insert(id.to_string(), brief);
        }
        self.wake
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        tracing::debug!(run = %id, "ended run left memory");
    }

    /// An ended run rebuilt from its journal entries, as operators see it.
    /// Whether the run of these entries was created as a trigger's remedy.
    fn created_as_remedy(&self, entries: &[crate::journal::Entry]) -> bool {
        entries.iter().any(|e| match &e.record {
            Record::RunCreated(created) => self.is_remedy(&created.phases),
            _ => false,
        })
    }

    fn rebuilt(&self, id: &str, entries: &[crate::journal::Entry]) -> Option<Summary> {
        let (meta, run) = replay(id, entries)?;
        let entry = Entry {
            digest: approvals::plan_digest(run.plan()),
            statements: approvals::held_of(entries),
            nonces: BTreeMap::new(),
            meta,
            run,
            waiting_since: BTreeMap::new(),
            announced: BTreeSet::new(),
            outcomes: Vec::new(),
            awaited: BTreeMap::new(),
            figures: BTreeMap::new(),
            escalated: BTreeSet::new(),
            remedy: self.created_as_remedy(entries),
        };
        Some(summarize(&entry, now_ms()))
    }

    /// An ended run that left memory, read from the journal; its brief
    /// summary when the journal cannot be read.
    fn ended_summary(&self, id: &str) -> Option<Summary> {
        let brief = self.ended_lock().get(id).cloned()?;
        match self.journal.entries(Some(id)) {
            Ok(entries) => self.rebuilt(id, &entries).or(Some(brief)),
            Err(e) => {
                tracing::error!(run = %id, error = %e, "cannot read an ended run from the journal");
                Some(brief)
            }
        }
    }

    /// What run `id` was started with, and when it ended: from memory
    /// only (an ended run's brief summary), never from the journal.
    pub(crate) fn meta(&self, id: &str) -> Option<RunMeta> {
        if let Some(entry) = self.lock().get(id) {
            return Some(entry.meta.clone());
        }
        self.ended_lock().get(id).map(|s| s.meta.clone())
    }

    fn notifier(&self, id: &str) -> Arc<Notify> {
        self.wake
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    fn wake(&self, id: &str) {
        if let Some(n) = self.wake.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            n.notify_one();
        }
    }

    /// Journals `event`, then applies it, then tells watchers. Called with
    /// the run's entry locked so that the journal's order is the order of
    /// application. A finished step's result (its summary and its data, JSON)
    /// is kept beside the event in the journal, for watchers and the report;
    /// a dispatch notes the plugin and action.
    fn record(&self, entry: &mut Entry, event: Event) -> Result<(), RunError> {
        self.record_all(entry, &[Fact::of(event)])
    }

    /// [`Runs::record`] for several events at once: one journal transaction
    /// (one fsync) for all of them, or nothing when it fails (the caller
    /// still has them, to try again).
    fn record_all(&self, entry: &mut Entry, facts: &[Fact]) -> Result<(), RunError> {
        self.record_all_after(entry, &[], facts)
    }

    /// [`Runs::record_all`], with `lead` entries written first in the same
    /// transaction (a run's `run.created` before its `run.started`).
    fn record_all_after(
        &self,
        entry: &mut Entry,
        lead: &[NewEntry<'_>],
        facts: &[Fact],
    ) -> Result<(), RunError> {
        let at = now_ms();
        let mut prepared = Vec::with_capacity(facts.len());
        for Fact {
            event,
            result,
            ran_ms,
            ..
        } in facts
        {
            let mut record = Record::of_event(event);
            let text = match (event, result) {
                (_, Some(result)) => result.summary.clone(),
                (Event::Dispatched { phase, step, .. }, None) => entry
                    .run
                    .plan()
                    .step(phase, step)
                    .map(|s| format!("{}.{}", s.plugin, s.action))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            // A step's data as its plugin returned it (text that is not
            // JSON is kept as a string).
            let data: Value = result
                .as_ref()
                .map(|r| {
                    serde_json::from_str(&r.data_json)
                        .unwrap_or_else(|_| Value::String(r.data_json.clone()))
                })
                .unwrap_or(Value::Null);
            match &mut record {
                Record::RunFinished(finished) => {
                    finished.ran_ms = *ran_ms;
                    if result.is_some() {
                        finished.output = Some(text.clone());
                        finished.data = Some(data.clone());
                    }
                }
                Record::RunDispatched(dispatched) if !text.is_empty() => {
                    dispatched.what = Some(text.clone());
                }
                _ => {}
            }
            prepared.push((event, record, text, data));
        }
        let new: Vec<NewEntry<'_>> = lead
            .iter()
            .copied()
            .chain(prepared.iter().map(|(_, record, _, _)| NewEntry {
                at_ms: at,
                run_id: &entry.meta.id,
                record,
            }))
            .collect();
        let mut written = self
            .journal
            .append_all(&new)
            .map_err(|e| RunError::Journal(e.to_string()))?;
        let written = written.split_off(lead.len().min(written.len()));
        for ((event, record, text, data), written) in prepared.into_iter().zip(written) {
            entry.run.apply(event);
            if matches!(record, Record::RunFinished(_)) && data.is_object() {
                crate::replay::add_figures(&mut entry.figures, &data);
            }
            let mut update = RunEvent::of(&entry.meta.id, event, at, &text);
            update.seq = written.seq;
            if !data.is_null() {
                update.data = data.to_string();
            }
            self.publish(update);
        }
        Ok(())
    }

    /// The run's figures now (with `outage`, its length so far) and the
    /// escalation rules already fired for it; `None` for no such run.
    pub(crate) fn figures_now(
        &self,
        id: &str,
    ) -> Option<(BTreeMap<String, Value>, BTreeSet<String>)> {
        let runs = self.lock();
        let entry = runs.get(id)?;
        let mut figures = entry.figures.clone();
        let end = entry.meta.finished_at_ms.unwrap_or_else(now_ms);
        let outage = crate::replay::outage(entry.meta.started_at_ms, end);
        figures.insert("outage".into(), outage);
        Some((figures, entry.escalated.clone()))
    }

    /// Notes that the escalation rule naming `who` fired for run `id`
    /// (after it was journaled).
    pub(crate) fn note_escalated(&self, id: &str, who: &str) {
        if let Some(entry) = self.lock().get_mut(id) {
            entry.escalated.insert(who.to_string());
        }
    }

    pub(crate) fn publish(&self, event: RunEvent) {
        // No watcher is not an error.
        let _ = self.updates.send(event);
    }

    /// The step of dispatch `d` found its agent not connected (since
    /// `since`, as `detail` says). Returns why to stop waiting for it (the
    /// run is a dry run, the phase is over or past its time limit, or it
    /// has no time limit and [`drive::ABSENT_WAIT`] has passed); else notes
    /// the host as awaited, tells watchers once, and returns `None`.
    pub(crate) fn await_absent(
        &self,
        run_id: &str,
        d: &backout_plan::run::Dispatch,
        since: i64,
        detail: &str,
    ) -> Option<String> {
        let now = now_ms();
        let mut runs = self.lock();
        let Some(entry) = runs.get_mut(run_id) else {
            return Some(detail.to_string());
        };
        if entry.meta.dry_run {
            return Some(format!("{detail}; a dry run does not wait for it"));
        }
        let limit = entry
            .run
            .plan()
            .phases
            .iter()
            .find(|p| p.id == d.phase)
            .and_then(|p| p.time_limit);
        let status = entry
            .run
            .phases(now)
            .into_iter()
            .find(|(id, _)| *id == d.phase)
            .map(|(_, status)| status);
        match status {
            Some(PhaseStatus::Running) => {}
            Some(PhaseStatus::TimedOut) => {
                return Some(format!(
                    "{detail}; the phase ran past its time limit waiting for it"
                ));
            }
            Some(other) => {
                return Some(format!(
                    "{detail}; no longer waited for: the phase is {}",
                    other.word()
                ));
            }
            None => return Some(detail.to_string()),
        }
        let wait = i64::try_from(drive::absent_wait().as_millis()).unwrap_or(i64::MAX);
        if limit.is_none() && now.saturating_sub(since) >= wait {
            return Some(format!(
                "{detail}; waited {} for it (the phase has no time_limit)",
                crate::text::human_ms(wait)
            ));
        }
        if let std::collections::btree_map::Entry::Vacant(slot) =
            entry.awaited.entry((d.phase.clone(), d.host.clone()))
        {
            slot.insert(Awaited {
                phase: d.phase.clone(),
                step: d.step.clone(),
                host: d.host.clone(),
                since_ms: since,
                why: detail.to_string(),
            });
            tracing::warn!(run = %run_id, host = %d.host, phase = %d.phase, "waiting for an agent that is not connected");
            self.publish(RunEvent {
                run_id: run_id.to_string(),
                at_ms: since,
                kind: "awaiting".into(),
                phase: d.phase.clone(),
                step: d.step.clone(),
                host: d.host.clone(),
                attempt: d.attempt,
                text: detail.to_string(),
                ..RunEvent::default()
            });
        }
        None
    }

    /// When waiting for the absent agent of dispatch `d` (absent since
    /// `since`) ends at the latest (ms since the epoch): its phase's time
    /// limit, or [`drive::ABSENT_WAIT`] after `since` in a phase without one.
    /// The step asks again then, so the phase, and the run, end on time.
    pub(crate) fn absent_wait_ends_ms(
        &self,
        run_id: &str,
        d: &backout_plan::run::Dispatch,
        since: i64,
    ) -> Option<i64> {
        let runs = self.lock();
        let entry = runs.get(run_id)?;
        let has_limit = entry
            .run
            .plan()
            .phases
            .iter()
            .any(|p| p.id == d.phase && p.time_limit.is_some());
        if has_limit {
            entry.run.phase_deadline_ms(&d.phase)
        } else {
            let wait = i64::try_from(drive::absent_wait().as_millis()).unwrap_or(i64::MAX);
            Some(since.saturating_add(wait))
        }
    }

    /// The step of dispatch `d` no longer waits for its agent.
    pub(crate) fn no_longer_awaited(&self, run_id: &str, d: &backout_plan::run::Dispatch) {
        if let Some(entry) = self.lock().get_mut(run_id) {
            entry.awaited.remove(&(d.phase.clone(), d.host.clone()));
        }
    }

    /// A plugin's live event for a step of run `run_id`, journaled as `seq`.
    /// Takes no lock: it is called right after a journal write, which may
    /// happen while a run's driver holds the runs' lock.
    pub fn step_event(&self, run_id: &str, step_id: &str, seq: i64, at_ms: i64, event: StepEvent) {
        let mut update = RunEvent::of_step(run_id, step_id, at_ms, event);
        update.seq = seq;
        self.publish(update);
    }

    /// Subscribes to live events, then reads the run's history from the
    /// journal, then takes a snapshot: nothing is lost in between. Live events
    /// already in the history (same journal `seq`) are for the watcher to skip.
    pub fn watch(
        &self,
        run_id: &str,
    ) -> Result<(Summary, Vec<RunEvent>, broadcast::Receiver<RunEvent>), RunError> {
        let rx = self.updates.subscribe();
        if self.meta(run_id).is_none() {
            return Err(RunError::UnknownRun(run_id.into()));
        }
        let entries = self
            .journal
            .entries(Some(run_id))
            .map_err(|e| RunError::Journal(e.to_string()))?;
        // The snapshot after the history: never older than what it precedes.
        // A run that left memory has ended: its history is all of it.
        let live = self.lock().get(run_id).map(|e| summarize(e, now_ms()));
        let summary = live
            .or_else(|| self.rebuilt(run_id, &entries))
            .ok_or_else(|| RunError::UnknownRun(run_id.into()))?;
        Ok((summary, watch::history(run_id, &entries), rx))
    }

    /// Run `run_id` as operators see it, hosts and all: from memory while
    /// it has not ended, else from the journal.
    pub fn summary(&self, run_id: &str) -> Option<Summary> {
        if let Some(summary) = self.lock().get(run_id).map(|e| summarize(e, now_ms())) {
            return Some(summary);
        }
        self.ended_summary(run_id)
    }

    /// [`Runs::summary`], or why not.
    pub fn one(&self, run_id: &str) -> Result<Summary, RunError> {
        self.summary(run_id)
            .ok_or_else(|| RunError::UnknownRun(run_id.into()))
    }

    /// Starts a run and its driver task. A dry run needs no approvals: it
    /// changes nothing.
    pub fn start(self: &Arc<Self>, by: &str, req: &StartRun) -> Result<Summary, RunError> {
        let board = self.board.as_ref().ok_or(RunError::NoPlan)?;
        // The triggers' episodes as they stand, journaled before this run
        // is: a restart must not forget that it came after a firing.
        if !req.dry_run {
            deadline::record_now(self, board);
        }
        let now = now_ms();
        let plan = match &req.undo {
            Some(remedy_run) => self.undo_plan(remedy_run)?,
            None => {
                let mut plan = RunPlan::new(board.plan(), &req.phases)?;
                match backout_plan::remedy::approvals_for(board.plan(), &req.phases) {
                    // A remedy's run: its own approvals (`remedy_approvals`).
                    Some(roles) => plan.approvals = roles,
                    None if !req.dry_run => self.note_remedies(board, now),
                    None => {}
                }
                plan
            }
        };
        let plan = if req.dry_run {
            plan.without_approvals()
        } else {
            plan
        };
        check_version(&plan, &req.to_version)?;
        let missing =
            plan.missing_backups(&self.backups.lock().unwrap_or_else(PoisonError::into_inner));
        if !missing.is_empty() {
            tracing::warn!(
                by,
                missing = missing.len(),
                "run refused: a data-changing step has no backup before it"
            );
            return Err(RunError::NoBackup(missing));
        }
        let (reason, to_version, dry_run, drill) = (
            req.reason.as_str(),
            req.to_version.as_str(),
            req.dry_run,
            req.drill,
        );
        // An undo's phases are its own (`undo-PHASE`), not the plan's.
        let phases: Vec<String> = match req.undo {
            Some(_) => plan.phases.iter().map(|p| p.id.clone()).collect(),
            None => req.phases.clone(),
        };
        let remedy = req.undo.is_none() && self.is_remedy(&phases);
        let id = format!(
            "run-{now}-{}",
            &hex::encode(backout_proto::command::new_nonce())[..6]
        );
        let meta = RunMeta {
            id: id.clone(),
            reason: reason.into(),
            to_version: to_version.into(),
            dry_run,
            drill,
            started_by: by.into(),
            started_at_ms: now,
            finished_at_ms: None,
        };
        let created = Record::RunCreated(RunCreated {
            reason: reason.into(),
            to_version: to_version.into(),
            phases,
            dry_run,
            drill,
            by: by.into(),
            plan: plan.clone(),
        });
        let mut entry = Entry {
            digest: approvals::plan_digest(&plan),
            statements: Vec::new(),
            nonces: BTreeMap::new(),
            meta,
            run: Run::new(plan),
            waiting_since: BTreeMap::from([("run".to_string(), now)]),
            announced: BTreeSet::new(),
            outcomes: Vec::new(),
            awaited: BTreeMap::new(),
            figures: BTreeMap::new(),
            escalated: BTreeSet::new(),
            remedy,
        };
        // Created and started in one transaction: a run the operator is
        // told failed to start is not resumed later.
        let created = NewEntry {
            at_ms: now,
            run_id: &id,
            record: &created,
        };
        let started = Fact::of(Event::Started {
            by: by.into(),
            at_ms: now,
        });
        self.record_all_after(&mut entry, &[created], &[started])?;
        let summary = summarize(&entry, now);
        self.lock().insert(id.clone(), entry);
        // First the start; the driver then tells what the run waits for.
        notify::tell(self, &id, notify::Moment::Start);
        let notify = self.notifier(&id);
        let run_span = drive::run_span(&id, false);
        tokio::spawn(drive::drive(self.clone(), id, notify, run_span));
        Ok(summary)
    }

    /// A nonce for one signed approval of `run_id`'s scope (the run, or
    /// `phase`) by `by`, with what the statement must name: the plan
    /// digest, the scope and the role (`role`, or the first of `roles`
    /// still needed).
    pub fn approval_nonce(
        &self,
        run_id: &str,
        phase: Option<String>,
        by: &str,
        roles: &[String],
        role: Option<&str>,
    ) -> Result<approvals::NonceGiven, RunError> {
        let mut runs = self.lock();
        let entry = self.still_going(&mut runs, run_id)?;
        let scope = phase.map_or(Scope::Run, Scope::Phase);
        let role = open_role(entry, run_id, &scope, roles, role)?;
        let now = now_ms();
        entry
            .nonces
            .retain(|_, i| now - i.at_ms <= approvals::NONCE_TTL_MS);
        let nonce = hex::encode(backout_proto::command::new_nonce());
        let scope = approvals::scope_key(&scope);
        entry.nonces.insert(
            nonce.clone(),
            approvals::Issued {
                operator: by.into(),
                scope: scope.clone(),
                at_ms: now,
            },
        );
        Ok(approvals::NonceGiven {
            nonce,
            plan_digest: entry.digest.clone(),
            scope,
            role,
        })
    }

    /// An approval or refusal by `by`, under one of `roles`. With `signed`
    /// (the operator's statement, its signature, chain and role already
    /// verified), the statement must match the decision
    /// ([`approvals::check_statement`]) and is journaled with it.
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &self,
        run_id: &str,
        phase: Option<String>,
        by: &str,
        roles: &[String],
        role: Option<&str>,
        refusal: Option<String>,
        signed: Option<(
            backout_tls::approval::SignedApproval,
            backout_tls::approval::Statement,
        )>,
    ) -> Result<Summary, RunError> {
        let summary = {
            let mut runs = self.lock();
            let entry = self.still_going(&mut runs, run_id)?;
            let scope = phase.map_or(Scope::Run, Scope::Phase);
            let role = match (&signed, role) {
                (Some((_, s)), Some(r)) if r != s.role => {
                    return Err(RunError::Statement(format!(
                        "the statement is signed as {}, not {r}",
                        s.role
                    )));
                }
                (Some((_, s)), _) => Some(s.role.as_str()),
                (None, role) => role,
            };
            let role = open_role(entry, run_id, &scope, roles, role)?;
            let now = now_ms();
            entry.run.check_decision(&scope, &role, by, now)?;
            let lead = match &signed {
                Some((approval, statement)) => {
                    let scope_key = approvals::scope_key(&scope);
                    approvals::check_statement(
                        statement,
                        by,
                        run_id,
                        &entry.digest,
                        &scope_key,
                        refusal.is_some(),
                        &mut entry.nonces,
                        now,
                    )
                    .map_err(RunError::Statement)?;
                    let record =
                        Record::ApprovalSigned(crate::journal::SignedStatement::of(approval));
                    let held = approvals::held(&crate::journal::SignedStatement::of(approval))
                        .ok_or_else(|| RunError::Statement("the statement does not read".into()))?;
                    Some((record, held))
                }
                None => None,
            };
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
            match lead {
                Some((record, held)) => {
                    let lead = NewEntry {
                        at_ms: now,
                        run_id,
                        record: &record,
                    };
                    self.record_all_after(entry, &[lead], &[Fact::of(event)])?;
                    entry.statements.push(held);
                }
                None => self.record(entry, event)?,
            }
            summarize(entry, now)
        };
        self.wake(run_id);
        Ok(summary)
    }

    pub fn abort(&self, run_id: &str, by: &str) -> Result<Summary, RunError> {
        let summary = {
            let mut runs = self.lock();
            let Some(entry) = runs.get_mut(run_id) else {
                return Err(if self.ended_lock().contains_key(run_id) {
                    Rejected::Over.into()
                } else {
                    RunError::UnknownRun(run_id.into())
                });
            };
            if entry.meta.finished_at_ms.is_some() {
                return Err(Rejected::Over.into());
            }
            let event = Event::Aborted {
                by: by.into(),
                at_ms: now_ms(),
            };
            self.record(entry, event)?;
            summarize(entry, now_ms())
        };
        self.wake(run_id);
        Ok(summary)
    }

    /// Every run, oldest first: those in memory in full, ended ones that
    /// left memory as their brief summaries.
    pub fn list(&self) -> Vec<Summary> {
        let now = now_ms();
        let runs = self.lock();
        let mut all: Vec<Summary> = runs.values().map(|e| summarize(e, now)).collect();
        all.extend(self.ended_lock().values().cloned());
        drop(runs);
        // Run ids begin with their start time: sorting by id keeps the
        // order runs were started in.
        all.sort_by(|a, b| a.meta.id.cmp(&b.meta.id));
        all
    }
}

/// The role `by` decides `scope` of a running run under: `role` if they
/// hold it, else the first of `roles` the scope still needs.
fn open_role(
    entry: &Entry,
    run_id: &str,
    scope: &Scope,
    roles: &[String],
    role: Option<&str>,
) -> Result<String, RunError> {
    if entry.meta.finished_at_ms.is_some() {
        let status = summarize(entry, now_ms()).status.word();
        return Err(RunError::Ended {
            id: run_id.into(),
            status,
        });
    }
    let missing = entry.run.missing(scope);
    if missing.is_empty() && role.is_none() {
        return Err(RunError::NothingToApprove(scope.name().to_string()));
    }
    match role {
        Some(r) if roles.iter().any(|mine| mine == r) => Ok(r.to_string()),
        Some(r) => Err(RunError::NotYourRole {
            role: r.into(),
            yours: roles.join(", "),
            needed: if missing.is_empty() {
                "none".into()
            } else {
                missing.join(", ")
            },
        }),
        None => roles
            .iter()
            .find(|r| missing.contains(r))
            .cloned()
            .ok_or_else(|| RunError::NoRole {
                needed: missing.join(", "),
                yours: roles.join(", "),
            }),
    }
}

/// After a restart: since when each scope has waited for approvals, and
/// which were already announced (their message is in the journal, sent or
/// not), so that nobody is told twice. The run waits from its creation.
fn approvals_announced(
    meta: &RunMeta,
    entries: &[crate::journal::Entry],
) -> (BTreeMap<String, i64>, BTreeSet<String>) {
    let mut since = BTreeMap::from([("run".to_string(), meta.started_at_ms)]);
    let mut announced = BTreeSet::new();
    for e in entries {
        let (Record::NotificationSent(n) | Record::NotificationSkipped(n)) = &e.record else {
            continue;
        };
        if let ("approval-waiting", Some(scope)) = (n.moment.as_str(), &n.scope) {
            since.entry(scope.clone()).or_insert(e.at_ms);
            announced.insert(scope.clone());
        }
        if let ("phase-end", Some(phase)) = (n.moment.as_str(), &n.scope) {
            announced.insert(format!("ended:{phase}"));
        }
    }
    (since, announced)
}

/// A run as operators see it. An ended run is shown as it stood when it
/// ended; a run is `succeeded` or `failed` only once its end is journaled
/// (until then the last steps are still coming back).
fn summarize(entry: &Entry, now: i64) -> Summary {
    let now = entry.meta.finished_at_ms.unwrap_or(now);
    // One evaluation of the phases for both the phases and the run.
    let statuses = entry.run.phases(now);
    let mut status = entry.run.status_of(&statuses);
    if entry.meta.dry_run {
        status = entry.run.dry_run_status(status);
    }
    let phases: Vec<PhaseView> = statuses
        .into_iter()
        .map(|(id, status)| PhaseView {
            hosts: entry.run.hosts_of(&id),
            id,
            status,
        })
        .collect();
    if entry.meta.finished_at_ms.is_none()
        && matches!(status, RunStatus::Succeeded | RunStatus::Failed)
    {
        status = RunStatus::Running;
    }
    let open = matches!(status, RunStatus::AwaitingApproval(_) | RunStatus::Running);
    let mut pending = Vec::new();
    let run_missing = entry.run.missing(&Scope::Run);
    if open && !run_missing.is_empty() {
        let since = entry.waiting_since.get("run").copied().unwrap_or(now);
        pending.push(("run".to_string(), run_missing, now - since));
    }
    for phase in phases.iter().filter(|_| open) {
        if let PhaseStatus::AwaitingApproval(roles) = &phase.status {
            let since = entry.waiting_since.get(&phase.id).copied().unwrap_or(now);
            pending.push((phase.id.clone(), roles.clone(), now - since));
        }
    }
    Summary {
        meta: entry.meta.clone(),
        status,
        phases,
        pending,
        approvals: entry
            .run
            .approvals()
            .into_iter()
            .map(|(scope, role, by)| format!("{role}: {by} ({})", scope.name()))
            .collect(),
        awaited: entry.awaited.values().cloned().collect(),
        brief: false,
        remedy: entry.remedy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backout_plan::run::{PhasePlan, StepPlan};

    fn plan(params_json: &str) -> RunPlan {
        RunPlan {
            approvals: vec![],
            self_approval: false,
            phases: vec![PhasePlan {
                id: "application".into(),
                after: vec![],
                approvals: vec![],
                time_limit: None,
                rolling: 0,
                steps: vec![StepPlan {
                    id: "deploy".into(),
                    plugin: "app".into(),
                    action: "deploy".into(),
                    params_json: params_json.into(),
                    timeout: None,
                    hosts: vec!["app-1".into()],
                    on_failure: Default::default(),
                    retries: 0,
                    backoff: std::time::Duration::from_secs(1),
                }],
            }],
        }
    }

    /// After a restart, the phases whose end was already told (the status
    /// page updated, sent or not) are not told again.
    #[test]
    fn a_restart_does_not_tell_a_phase_end_again() {
        let meta = RunMeta {
            id: "run-1".into(),
            reason: "r".into(),
            to_version: String::new(),
            dry_run: false,
            drill: false,
            started_by: "dave".into(),
            started_at_ms: 0,
            finished_at_ms: None,
        };
        let told = |moment: &str, scope: &str, sent: bool| crate::journal::Entry {
            seq: 1,
            at_ms: 10,
            run_id: "run-1".into(),
            record: Record::notification(crate::journal::Notification {
                template: "status-page".into(),
                channel: "status".into(),
                moment: moment.into(),
                scope: Some(scope.into()),
                sent,
                via: None,
                why: None,
                recipients: None,
                paged: None,
                incident: None,
            }),
        };
        let (_, announced) = approvals_announced(
            &meta,
            &[
                told("phase-end", "application", true),
                told("phase-end", "database", false),
            ],
        );
        assert!(announced.contains("ended:application"), "{announced:?}");
        assert!(announced.contains("ended:database"), "{announced:?}");
        assert!(!announced.contains("ended:verify"), "{announced:?}");
    }

    /// `health.check` succeeds on a down service unless `require_healthy`
    /// is set, so a retried check without it can never be retried.
    #[test]
    fn the_sample_plans_retried_health_checks_can_fail() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let plan =
            backout_plan::model::Plan::load(&root.join("examples/samia-tarot/plan.toml")).unwrap();
        let run = RunPlan::new(&plan, &[]).unwrap();
        let mut retried = 0;
        for phase in &run.phases {
            for step in &phase.steps {
                if step.plugin == "health"
                    && step.action == "check"
                    && step.on_failure == backout_plan::sections::OnFailure::Retry
                {
                    retried += 1;
                    let params: Value = serde_json::from_str(&step.params_json).unwrap();
                    assert_eq!(
                        params["require_healthy"],
                        Value::Bool(true),
                        "{}/{}",
                        phase.id,
                        step.id
                    );
                }
            }
        }
        assert!(retried > 0, "the sample plan retries a health check");
    }

    #[test]
    fn a_step_that_names_the_target_version_needs_a_plain_one() {
        let needs = plan(r#"{"version":"${run:to_version}"}"#);
        let err = check_version(&needs, "").unwrap_err().to_string();
        assert!(
            err.contains("application/deploy") && err.contains("--to"),
            "{err}"
        );
        assert!(check_version(&needs, "v2.3.1+build-7").is_ok());
        for bad in ["v2\"}", "a b", "${x}", &"9".repeat(129)] {
            assert!(check_version(&needs, bad).is_err(), "{bad}");
        }
        assert!(check_version(&plan("{}"), "").is_ok(), "no step needs it");
    }
}
