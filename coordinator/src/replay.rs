//! What a run's journal entries say, pure: the run rebuilt from them
//! ([`replay`]), every attempt of every step ([`timeline`]), the run's
//! figures ([`figures`], or [`add_figures`] step by step) and the
//! escalation rules they fire ([`escalations`]). `runs` uses it to resume
//! runs (and their figures, which it then keeps as steps succeed); `report`
//! to write the report. It reads typed records only, and does no I/O.

use std::collections::{BTreeMap, HashMap};

use backout_plan::expr::{Truth, Value as FigureValue};
use backout_plan::model::Plan;
use backout_plan::run::{Event, Run};
use backout_plan::sections::RUN_FIGURES;
use serde::Serialize;
use serde_json::Value;

use crate::journal::{Entry, Record};

/// What a run was started with.
#[derive(Debug, Clone)]
pub struct RunMeta {
    pub id: String,
    pub reason: String,
    pub to_version: String,
    pub dry_run: bool,
    /// A rehearsal (`backout drill`).
    pub drill: bool,
    pub started_by: String,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

/// Rebuilds one run from its journal entries, in order (other records are
/// passed over): what it was started with, and its state. `None` when
/// `run.created` is missing.
pub fn replay(id: &str, entries: &[Entry]) -> Option<(RunMeta, Run)> {
    let (created, at_ms) = entries.iter().find_map(|e| match &e.record {
        Record::RunCreated(created) => Some((created, e.at_ms)),
        _ => None,
    })?;
    let mut events: Vec<Event> = entries
        .iter()
        .filter_map(|e| e.record.event(e.at_ms))
        .collect();
    // Both are one write now; a journal from before that may hold a
    // `run.created` without its `run.started`: the run started all the same.
    if !events.iter().any(|e| matches!(e, Event::Started { .. })) {
        events.insert(
            0,
            Event::Started {
                by: created.by.clone(),
                at_ms,
            },
        );
    }
    let meta = RunMeta {
        id: id.to_string(),
        reason: created.reason.clone(),
        to_version: created.to_version.clone(),
        dry_run: created.dry_run,
        drill: created.drill,
        started_by: created.by.clone(),
        started_at_ms: at_ms,
        finished_at_ms: entries
            .iter()
            .find(|e| matches!(e.record, Record::RunEnded { .. }))
            .map(|e| e.at_ms),
    };
    Some((meta, Run::replay(created.plan.clone(), &events)))
}

/// One attempt of one step: dispatched, and how it finished.
#[derive(Debug, Clone, Serialize)]
pub struct StepFacts {
    pub phase: String,
    pub step: String,
    pub host: String,
    pub attempt: u64,
    pub what: String,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    /// How long it ran on its agent (by the agent's clock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ran_ms: Option<i64>,
    /// succeeded, failed, timed-out, unreachable, unknown; or "running".
    pub result: String,
    pub summary: String,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

/// Every attempt of every step: dispatched, and how it finished.
pub fn timeline(entries: &[Entry]) -> Vec<StepFacts> {
    let mut steps: Vec<StepFacts> = Vec::new();
    // (phase, step, host, attempt) -> its latest dispatch in `steps`: a
    // run over thousands of hosts is matched in one pass.
    let mut latest: HashMap<(&str, &str, &str, u32), usize> = HashMap::new();
    for e in entries {
        match &e.record {
            Record::RunDispatched(d) => {
                steps.push(StepFacts {
                    phase: d.phase.clone(),
                    step: d.step.clone(),
                    host: d.host.clone(),
                    attempt: d.attempt.into(),
                    what: d.what.clone().unwrap_or_default(),
                    started_at_ms: e.at_ms,
                    ended_at_ms: None,
                    ran_ms: None,
                    result: "running".into(),
                    summary: String::new(),
                    data: Value::Null,
                });
                latest.insert((&d.phase, &d.step, &d.host, d.attempt), steps.len() - 1);
            }
            Record::RunFinished(f) => {
                let key = (
                    f.phase.as_str(),
                    f.step.as_str(),
                    f.host.as_str(),
                    f.attempt,
                );
                if let Some(s) = latest.get(&key).and_then(|&i| steps.get_mut(i)) {
                    s.ended_at_ms = Some(e.at_ms);
                    s.ran_ms = f.ran_ms;
                    s.result = f.outcome.state().as_str().into();
                    s.summary = match f.outcome.reason() {
                        "" => f.output.clone().unwrap_or_default(),
                        reason => reason.to_string(),
                    };
                    s.data = f.data.clone().unwrap_or(Value::Null);
                }
            }
            _ => {}
        }
    }
    steps
}

/// The run's figures: `outage` (seconds, the run's length so far), and any
/// figure of `RUN_FIGURES` a step reported at the top level of its data
/// (numbers are summed over steps, flags are or-ed).
pub fn figures(timeline: &[StepFacts], start: i64, end: i64) -> BTreeMap<String, Value> {
    let mut out = reported(timeline);
    out.insert("outage".to_string(), outage(start, end));
    out
}

/// The figures the succeeded steps of `timeline` reported (no `outage`).
pub fn reported(timeline: &[StepFacts]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for step in timeline.iter().filter(|s| s.result == "succeeded") {
        add_figures(&mut out, &step.data);
    }
    out
}

/// The `outage` figure: seconds from `start` to `end`, rounded.
pub fn outage(start: i64, end: i64) -> Value {
    serde_json::json!(((end - start) as f64 / 1000.0).round())
}

/// Adds what one succeeded step reported (`data`) to `figures`: numbers
/// are summed over steps, flags or-ed. The run keeps its figures this way
/// as its steps succeed, so the escalation rules never read its journal.
pub fn add_figures(figures: &mut BTreeMap<String, Value>, data: &Value) {
    for figure in RUN_FIGURES.iter().filter(|f| **f != "outage") {
        match (&data[*figure], figures.get(*figure)) {
            (Value::Number(n), Some(Value::Number(sum))) => {
                let total = n.as_f64().unwrap_or(0.0) + sum.as_f64().unwrap_or(0.0);
                figures.insert(figure.to_string(), serde_json::json!(total));
            }
            (Value::Number(n), _) => {
                figures.insert(figure.to_string(), Value::Number(n.clone()));
            }
            (Value::Bool(b), prior) => {
                let any = *b || prior.and_then(Value::as_bool).unwrap_or(false);
                figures.insert(figure.to_string(), Value::Bool(any));
            }
            _ => {}
        }
    }
}

/// One escalation rule of the plan against the run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EscalationFacts {
    pub who: String,
    pub when: String,
    /// fired, not fired, or unknown (a figure it needs was not measured).
    pub state: String,
}

/// Every escalation rule of `plan`, evaluated on `figures`.
pub fn escalations(plan: &Plan, figures: &BTreeMap<String, Value>) -> Vec<EscalationFacts> {
    let lookup = |name: &str| match figures.get(name) {
        Some(Value::Number(n)) => n.as_f64().map(FigureValue::Number),
        Some(Value::Bool(b)) => Some(FigureValue::Bool(*b)),
        _ => None,
    };
    plan.escalations
        .iter()
        .map(|e| EscalationFacts {
            who: e.who.clone(),
            when: e.when_text.clone(),
            state: match e.when.eval(&lookup) {
                Truth::True => "fired",
                Truth::False => "not fired",
                Truth::Unknown => "unknown",
            }
            .into(),
        })
        .collect()
}

/// The escalation rules already fired for the run (who each names).
pub fn fired(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| match &e.record {
            Record::EscalationFired { who, .. } => Some(who.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use backout_plan::run::RunPlan;

    use super::*;
    use crate::journal::{Journal, JournalError, RunCreated};

    fn created(dry_run: bool) -> Record {
        Record::RunCreated(RunCreated {
            reason: "r".into(),
            to_version: String::new(),
            phases: vec![],
            dry_run,
            drill: false,
            by: "dave".into(),
            plan: RunPlan {
                approvals: vec!["technical-lead".into()],
                self_approval: false,
                phases: vec![],
            },
        })
    }

    fn entry(seq: i64, record: Record) -> Entry {
        Entry {
            seq,
            at_ms: seq * 10,
            run_id: "run-1".into(),
            record,
        }
    }

    #[test]
    fn a_run_is_rebuilt_with_what_it_was_started_with() {
        let entries = [
            entry(1, created(true)),
            entry(2, Record::RunStarted { by: "dave".into() }),
            entry(
                3,
                Record::RunEnded {
                    status: "succeeded".into(),
                    elapsed_ms: 20,
                },
            ),
        ];
        let (meta, run) = replay("run-1", &entries).unwrap();
        assert!(meta.dry_run);
        assert_eq!(
            (
                meta.started_by.as_str(),
                meta.started_at_ms,
                meta.finished_at_ms
            ),
            ("dave", 10, Some(30))
        );
        assert_eq!(run.plan().approvals, ["technical-lead"]);
        assert!(replay("run-1", &entries[1..]).is_none(), "no run.created");
    }

    #[test]
    fn a_journal_whose_run_lost_its_dry_run_flag_is_an_error_not_a_live_run() {
        // The body of `run.created` as journaled, without `dry_run`, in a
        // journal whose chain is intact: reading it fails, naming the entry
        // and the field; nothing is replayed.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let journal = Journal::open(&path).unwrap();
        journal.append(10, "run-1", &created(true)).unwrap();
        drop(journal);
        let (kind, body) = created(true).encode().unwrap();
        let mut body: Value = serde_json::from_str(&body).unwrap();
        body.as_object_mut().unwrap().remove("dry_run");
        let body = body.to_string();
        let conn = rusqlite::Connection::open(&path).unwrap();
        let hash =
            crate::journal::entry_hash(1, 10, "run-1", &kind, &body, crate::journal::GENESIS);
        conn.execute(
            "UPDATE entries SET body = ?1, hash = ?2 WHERE seq = 1",
            rusqlite::params![body, hash],
        )
        .unwrap();
        conn.execute("UPDATE head SET hash = ?1", rusqlite::params![hash])
            .unwrap();
        let journal = Journal::open(&path).unwrap();
        assert_eq!(
            journal.verify().unwrap(),
            crate::journal::Verdict::Intact { entries: 1 }
        );
        match journal.entries(None) {
            Err(e @ JournalError::Unreadable { seq: 1, .. }) => {
                assert!(e.to_string().contains("dry_run"), "{e}");
            }
            other => panic!("expected an unreadable entry, got {other:?}"),
        }
    }

    #[test]
    fn figures_sum_numbers_and_or_flags_over_succeeded_steps() {
        let step = |result: &str, data: Value| StepFacts {
            phase: "p".into(),
            step: "s".into(),
            host: "h".into(),
            attempt: 1,
            what: String::new(),
            started_at_ms: 0,
            ended_at_ms: Some(1),
            ran_ms: None,
            result: result.into(),
            summary: String::new(),
            data,
        };
        let figures = figures(
            &[
                step(
                    "succeeded",
                    serde_json::json!({ "data_loss_usd": 2.5, "data_breach": false }),
                ),
                step(
                    "succeeded",
                    serde_json::json!({ "data_loss_usd": 1, "data_breach": true }),
                ),
                step("failed", serde_json::json!({ "data_loss_usd": 100 })),
            ],
            0,
            61_400,
        );
        assert_eq!(figures["outage"], serde_json::json!(61.0));
        assert_eq!(figures["data_loss_usd"], serde_json::json!(3.5));
        assert_eq!(figures["data_breach"], serde_json::json!(true));
    }
}
