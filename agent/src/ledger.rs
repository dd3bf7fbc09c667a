//! The step ledger: every step id this agent has started, with its outcome,
//! in SQLite beside the nonces. A step id runs at most once: a command that
//! names a step already finished gets the recorded outcome back; a step that
//! was running when the agent stopped is reported interrupted, never run again.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;

use backout_config::sqlite::{OpenError, open_durable};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use crate::plugin::StepOutcome;

#[derive(Debug, thiserror::Error)]
#[error("step ledger {path}: {source}")]
pub struct LedgerError {
    path: String,
    #[source]
    source: OpenError,
}

/// What the ledger knew of a step when it was asked to run.
#[derive(Debug, Clone, PartialEq)]
pub enum Prior {
    /// Never seen: it is now recorded as running.
    New,
    /// Finished before: here is its outcome.
    Done(StepOutcome),
    /// Running right now in this process.
    Running,
    /// It was running when the agent stopped; its outcome is unknown.
    Interrupted,
}

pub struct Ledger {
    conn: Mutex<Connection>,
    /// Steps running in this process (a row marked running but not in here
    /// was left by an agent that stopped).
    running: Mutex<BTreeSet<String>>,
    path: String,
}

fn encode(outcome: &StepOutcome) -> String {
    match outcome {
        StepOutcome::Succeeded {
            summary,
            data_json,
            outputs,
        } => json!({
            "succeeded": { "summary": summary, "data_json": data_json, "outputs": outputs }
        }),
        StepOutcome::Failed { code, message } => {
            json!({ "failed": { "code": code, "message": message } })
        }
    }
    .to_string()
}

fn decode(text: &str) -> StepOutcome {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    if let Some(ok) = v.get("succeeded") {
        StepOutcome::Succeeded {
            summary: s(&ok["summary"]),
            data_json: s(&ok["data_json"]),
            outputs: serde_json::from_value(ok["outputs"].clone()).unwrap_or_default(),
        }
    } else {
        StepOutcome::Failed {
            code: s(&v["failed"]["code"]),
            message: s(&v["failed"]["message"]),
        }
    }
}

impl Ledger {
    /// Opens `state_dir/agent.db`; steps left running by a previous process
    /// are marked interrupted.
    pub fn open(state_dir: &Path) -> Result<Ledger, LedgerError> {
        let path = state_dir.join("agent.db");
        let display = path.display().to_string();
        let err = |source: OpenError| LedgerError {
            path: display.clone(),
            source,
        };
        // Mode 0600, WAL, synchronous=FULL: a step begun is on disk before it runs.
        let conn = open_durable(&path).map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS steps (
                 step_key TEXT PRIMARY KEY,
                 command_id TEXT NOT NULL,
                 state TEXT NOT NULL,
                 outcome TEXT,
                 started_at_ms INTEGER NOT NULL,
                 finished_at_ms INTEGER
             );
             UPDATE steps SET state = 'interrupted' WHERE state = 'running';",
        )
        .map_err(|e| err(e.into()))?;
        Ok(Ledger {
            conn: Mutex::new(conn),
            running: Mutex::new(BTreeSet::new()),
            path: display,
        })
    }

    fn err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError {
            path: self.path.clone(),
            source: source.into(),
        }
    }

    /// Dry runs are kept apart: rehearsing a step never uses up the real one.
    pub fn key(step_id: &str, dry_run: bool) -> String {
        if dry_run {
            format!("{step_id}#dry-run")
        } else {
            step_id.to_string()
        }
    }

    /// Records `key` as running unless it is known; says what was known.
    pub fn begin(&self, key: &str, command_id: &str, now_ms: i64) -> Result<Prior, LedgerError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let row: Option<(String, Option<String>)> = conn
            .query_row(
                "SELECT state, outcome FROM steps WHERE step_key = ?1",
                params![key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        match row {
            Some((state, Some(outcome))) if state == "done" => Ok(Prior::Done(decode(&outcome))),
            Some(_) if running.contains(key) => Ok(Prior::Running),
            Some(_) => Ok(Prior::Interrupted),
            None => {
                conn.execute(
                    "INSERT INTO steps (step_key, command_id, state, started_at_ms) VALUES (?1, ?2, 'running', ?3)",
                    params![key, command_id, now_ms],
                )
                .map_err(|e| self.err(e))?;
                running.insert(key.to_string());
                Ok(Prior::New)
            }
        }
    }

    /// Records the outcome of a step begun here.
    pub fn finish(&self, key: &str, outcome: &StepOutcome, now_ms: i64) -> Result<(), LedgerError> {
        // Not running any more, whether or not the outcome can be written: if
        // it cannot, a later ask finds the row `running` with the key gone
        // from memory and answers `interrupted` (never runs it again).
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.execute(
            "UPDATE steps SET state = 'done', outcome = ?2, finished_at_ms = ?3 WHERE step_key = ?1",
            params![key, encode(outcome), now_ms],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_runs_once_and_its_outcome_is_remembered_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        assert_eq!(ledger.begin("s1", "c1", 0).unwrap(), Prior::New);
        assert_eq!(ledger.begin("s1", "c2", 1).unwrap(), Prior::Running);
        let outcome = StepOutcome::Succeeded {
            summary: "ok".into(),
            data_json: "{\"a\":1}".into(),
            outputs: vec![("x".into(), "1".into())],
        };
        ledger.finish("s1", &outcome, 2).unwrap();
        assert_eq!(
            ledger.begin("s1", "c3", 3).unwrap(),
            Prior::Done(outcome.clone())
        );
        assert_eq!(ledger.begin("s2", "c4", 4).unwrap(), Prior::New);
        drop(ledger);
        // s2 was running when the agent stopped.
        let ledger = Ledger::open(dir.path()).unwrap();
        assert_eq!(ledger.begin("s1", "c5", 5).unwrap(), Prior::Done(outcome));
        assert_eq!(ledger.begin("s2", "c6", 6).unwrap(), Prior::Interrupted);
        assert_ne!(Ledger::key("s1", true), Ledger::key("s1", false));
    }
}
