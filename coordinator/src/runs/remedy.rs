//! A considered trigger's lighter remedy as the coordinator sees it now
//! (issue 20): the plan's remedy phase, its newest attempt (a run of that
//! phase alone since the trigger's episode fired, `backout rollback start
//! --phases PHASE`), and `backout_plan::remedy::verdict` over them. The
//! episodes come from `deadline.rs` and the runs from the journal, both
//! rebuilt at start, so a restarted coordinator gives the same verdict.

use std::collections::BTreeMap;

use backout_plan::matrix::Row;
use backout_plan::remedy::{self, RunBrief, Verdict};
use backout_plan::run::{Outcome, RunPlan, RunStatus};
use backout_plan::window::State;

use super::{RunError, Runs};
use crate::journal::Record;
use crate::signals::board::Board;

/// One trigger's remedy now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemedyView {
    pub phase: String,
    /// "offered", "holding", "cleared" or "rollback".
    pub state: &'static str,
    /// "turn off flags new-checkout, tarot-ai-readings".
    pub what: String,
    pub command: String,
    /// The newest attempt's run, if tried.
    pub run_id: Option<String>,
    pub until_ms: Option<i64>,
    pub why: Option<String>,
    /// The plan's `remedy_hold` in words.
    pub hold: String,
}

impl Runs {
    /// Every run as the remedy reads it.
    fn briefs(&self) -> Vec<RunBrief> {
        self.list()
            .into_iter()
            .map(|s| RunBrief {
                ended: s
                    .meta
                    .finished_at_ms
                    .map(|at| (at, s.status == RunStatus::Succeeded)),
                phases: s.phases.into_iter().map(|p| p.id).collect(),
                dry_run: s.meta.dry_run,
                started_at_ms: s.meta.started_at_ms,
                id: s.meta.id,
            })
            .collect()
    }

    /// The remedy of each trigger in `rows` that has one and fired (now or
    /// in its latest episode), by trigger name. Nothing for a trigger that
    /// is not firing and whose latest episode had no attempt.
    pub fn remedies(&self, rows: &[Row], now_ms: i64) -> BTreeMap<String, RemedyView> {
        let Some(board) = &self.board else {
            return BTreeMap::new();
        };
        let plan = board.plan();
        let episodes = self
            .episodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let briefs = std::cell::OnceCell::new();
        let mut out = BTreeMap::new();
        for row in rows {
            let Some(trigger) = plan.triggers.iter().find(|t| t.name == row.trigger) else {
                continue;
            };
            let Some(remedy) = &trigger.remedy else {
                continue;
            };
            let firing = row.standing.state == State::Fired;
            // The episode the journal knows (it outlives a restart), else
            // this evaluation's firing.
            let fired_at = episodes
                .latest_fired_at(&row.trigger)
                .or(row.standing.fired_at_ms.filter(|_| firing));
            let Some(fired_at) = fired_at else {
                continue;
            };
            let attempt = remedy::attempt(remedy, fired_at, briefs.get_or_init(|| self.briefs()));
            if !firing && attempt.is_none() {
                continue;
            }
            let verdict = remedy::verdict(remedy, firing, attempt.as_ref(), now_ms);
            let (state, until_ms, why) = match verdict {
                Verdict::Offered { .. } => ("offered", None, None),
                Verdict::Holding { until_ms } => ("holding", until_ms, None),
                Verdict::Cleared => ("cleared", None, None),
                Verdict::RollBack { why } => ("rollback", None, Some(why)),
            };
            let what = plan
                .phases
                .iter()
                .find(|p| p.id == remedy.phase)
                .map(remedy::describe)
                .unwrap_or_else(|| remedy.phase.clone());
            out.insert(
                row.trigger.clone(),
                RemedyView {
                    phase: remedy.phase.clone(),
                    state,
                    what,
                    command: remedy::command(&row.trigger),
                    run_id: attempt.map(|a| a.run_id),
                    until_ms,
                    why,
                    hold: humantime::format_duration(remedy.hold).to_string(),
                },
            );
        }
        out
    }

    /// Before a rollback run (not a remedy's own run) starts: journals each
    /// remedy tried for the triggers it decides, outside runs, so the run's
    /// report names the attempt among its evidence.
    pub(super) fn note_remedies(&self, board: &Board, now_ms: i64) {
        for (trigger, view) in self.remedies(&board.matrix(now_ms).rows, now_ms) {
            let Some(run_id) = &view.run_id else {
                continue;
            };
            let outcome = match (view.state, &view.why) {
                (_, Some(why)) => why.clone(),
                ("holding", _) => "its hold had not ended".to_string(),
                (state, _) => state.to_string(),
            };
            let record = Record::Decision {
                trigger,
                decision: "remedy-tried".into(),
                detail: format!("{} in run {run_id}: {outcome}", view.what),
                by: "coordinator".into(),
            };
            if let Err(e) = self.journal.append(now_ms, "", &record) {
                tracing::error!(error = %e, "cannot journal the remedy tried before a rollback");
            }
        }
    }

    /// Whether a run started with `phases` is a trigger's remedy run
    /// (exactly one trigger's remedy phase).
    pub(super) fn is_remedy(&self, phases: &[String]) -> bool {
        self.board
            .as_ref()
            .is_some_and(|b| remedy::approvals_for(b.plan(), phases).is_some())
    }

    /// The plan of the run that undoes remedy run `run_id`
    /// (`backout_plan::remedy::undo_plan`), from what the journal holds of
    /// it: its plan and the data of its succeeded steps. The remedy run must
    /// have ended, for real (a dry run changed nothing).
    pub(super) fn undo_plan(&self, run_id: &str) -> Result<RunPlan, RunError> {
        let why = |why: &str| RunError::Undo {
            run: run_id.to_string(),
            why: why.to_string(),
        };
        let entries = self
            .journal
            .entries(Some(run_id))
            .map_err(|e| RunError::Journal(e.to_string()))?;
        let created = entries
            .iter()
            .find_map(|e| match &e.record {
                Record::RunCreated(c) => Some(c),
                _ => None,
            })
            .ok_or_else(|| RunError::UnknownRun(run_id.to_string()))?;
        if created.dry_run {
            return Err(why("it was a dry run: it changed nothing"));
        }
        if !entries
            .iter()
            .any(|e| matches!(e.record, Record::RunEnded { .. }))
        {
            return Err(why("it has not ended yet (abort it first, or wait)"));
        }
        let recorded: Vec<remedy::Recorded> = entries
            .iter()
            .filter_map(|e| match &e.record {
                Record::RunFinished(f) if f.outcome == Outcome::Succeeded => {
                    Some(remedy::Recorded {
                        phase: f.phase.clone(),
                        step: f.step.clone(),
                        host: f.host.clone(),
                        data: f.data.clone()?,
                    })
                }
                _ => None,
            })
            .collect();
        remedy::undo_plan(run_id, &created.plan, &recorded).map_err(|e| why(&e.to_string()))
    }
}
