//! The agent's own database, `agent.db`: the nonces already seen, the
//! highest coordinator lease epoch seen, and the step ledger (every step id
//! this agent has started, with its outcome).
//!
//! * A nonce is remembered while its command could still pass the expiry
//!   check (its `expires_at` plus the clock-skew allowance); after that,
//!   expiry refuses a replay on its own, so the row is pruned.
//! * A step id runs at most once: a command that names a step already
//!   finished gets the recorded outcome back; a step that was running when
//!   the agent stopped is reported interrupted, never run again.
//!
//! Admitting a command is **one transaction**: the epoch check, the nonce
//! and the step's `running` row are written together or not at all, with one
//! fsync (WAL, `synchronous=FULL`), before anything runs.
//!
//! One writer thread owns the connection and **commits in groups**: the jobs
//! that queued up while it was writing go into the next transaction together
//! (each in its own savepoint, so one job's error never undoes another's),
//! and each caller is answered once that transaction is durable. An agent
//! with one session writes one job per commit; a process running many
//! sessions (`--sessions-from`, the load generator) shares one database and
//! one fsync among all the commands that arrived together.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use backout_config::sqlite::{OpenError, open_durable};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;
use tokio::sync::oneshot;

use crate::plugin::StepOutcome;

/// The most jobs one transaction takes.
const MAX_GROUP: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("agent database {path}: {source}")]
    Db {
        path: String,
        #[source]
        source: OpenError,
    },
    #[error("agent database {path}: cannot start its writer thread: {source}")]
    Thread {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("agent database {path}: its writer thread has stopped")]
    Stopped { path: String },
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

/// What admitting a command wrote, or why nothing was written.
#[derive(Debug, Clone, PartialEq)]
pub enum Admitted {
    /// Its nonce and epoch were recorded; the step's ledger state.
    Step(Prior),
    /// Its epoch is lower than `highest`, the highest this agent has seen:
    /// it comes from a coordinator that lost its lease.
    StaleEpoch { highest: u64 },
    /// Its nonce was used before.
    Replay,
}

/// The parts of a verified command that admission records.
#[derive(Debug, Clone)]
pub struct Admit {
    pub epoch: u64,
    pub nonce: Vec<u8>,
    /// Until when the nonce must be remembered (Unix ms).
    pub keep_until_ms: i64,
    pub now_ms: i64,
    /// [`Ledger::key`] of the step.
    pub step_key: String,
    pub command_id: String,
}

enum Job {
    Admit(Admit, oneshot::Sender<Result<Admitted, LedgerError>>),
    Finish {
        key: String,
        outcome: String,
        now_ms: i64,
        reply: oneshot::Sender<Result<(), LedgerError>>,
    },
}

/// The agent database, shared by every session of the process.
pub struct Store {
    jobs: std_mpsc::Sender<Job>,
    path: String,
}

/// One session's view of the [`Store`]: its step keys carry its prefix when
/// several sessions share the database.
#[derive(Clone)]
pub struct Ledger {
    store: Arc<Store>,
    prefix: String,
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

impl Store {
    /// Opens (creating if needed) `state_dir/agent.db` and starts its writer
    /// thread; steps left running by a previous process are marked
    /// interrupted.
    pub fn open(state_dir: &Path) -> Result<Arc<Store>, LedgerError> {
        let path = state_dir.join("agent.db");
        let display = path.display().to_string();
        let err = |source: OpenError| LedgerError::Db {
            path: display.clone(),
            source,
        };
        // Mode 0600, WAL, synchronous=FULL: what is recorded is on disk
        // before the command runs.
        let conn = open_durable(&path).map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS nonces (
                 nonce BLOB PRIMARY KEY,
                 keep_until_ms INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS nonces_keep_until ON nonces (keep_until_ms);
             CREATE TABLE IF NOT EXISTS epoch (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 highest INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS steps (
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
        let (jobs, queue) = std_mpsc::channel();
        let writer = Writer {
            conn,
            path: display.clone(),
            running: BTreeSet::new(),
            #[cfg(feature = "test-hooks")]
            freeze: std::env::var(FREEZE_ENV).is_ok(),
        };
        std::thread::Builder::new()
            .name("agent-db".into())
            .spawn(move || writer.serve(queue))
            .map_err(|source| LedgerError::Thread {
                path: display.clone(),
                source,
            })?;
        Ok(Arc::new(Store {
            jobs,
            path: display,
        }))
    }

    fn gone(&self) -> LedgerError {
        LedgerError::Stopped {
            path: self.path.clone(),
        }
    }
}

impl Ledger {
    /// A session's ledger; `prefix` is empty for an agent's one session.
    pub fn new(store: Arc<Store>, prefix: impl Into<String>) -> Ledger {
        Ledger {
            store,
            prefix: prefix.into(),
        }
    }

    /// The ledger key of a step. Dry runs are kept apart: rehearsing a step
    /// never uses up the real one.
    pub fn key(&self, step_id: &str, dry_run: bool) -> String {
        let dry = if dry_run { "#dry-run" } else { "" };
        format!("{}{step_id}{dry}", self.prefix)
    }

    /// Records the command's epoch, nonce and step in one transaction
    /// (nothing when it is refused); says what was known of the step.
    pub async fn admit(&self, admit: Admit) -> Result<Admitted, LedgerError> {
        let (reply, answer) = oneshot::channel();
        self.store
            .jobs
            .send(Job::Admit(admit, reply))
            .map_err(|_| self.store.gone())?;
        answer.await.map_err(|_| self.store.gone())?
    }

    /// Records the outcome of a step begun here.
    pub async fn finish(
        &self,
        key: &str,
        outcome: &StepOutcome,
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        let (reply, answer) = oneshot::channel();
        let job = Job::Finish {
            key: key.to_string(),
            outcome: encode(outcome),
            now_ms,
            reply,
        };
        self.store.jobs.send(job).map_err(|_| self.store.gone())?;
        answer.await.map_err(|_| self.store.gone())?
    }
}

/// The crash tests' hook, in builds with the `test-hooks` feature only
/// (`scripts/test.sh` builds the test binaries with it; release builds never
/// have it). With `BACKOUT_TEST_FREEZE_AGENT_ADMIT` set, the writer records a
/// command's nonce, says so on stderr and then holds the transaction
/// forever, before the step's ledger row and before the commit: the test
/// kills the agent with SIGKILL between the two writes.
#[cfg(feature = "test-hooks")]
pub const FREEZE_ENV: &str = "BACKOUT_TEST_FREEZE_AGENT_ADMIT";

/// Owns the connection; runs on its own thread.
struct Writer {
    conn: Connection,
    path: String,
    /// Steps running in this process (a row marked running but not in here
    /// was left by an agent that stopped).
    running: BTreeSet<String>,
    #[cfg(feature = "test-hooks")]
    freeze: bool,
}

/// A job's answer, held until its transaction is durable.
enum Answer {
    Admit(
        oneshot::Sender<Result<Admitted, LedgerError>>,
        Result<Admitted, rusqlite::Error>,
    ),
    Finish(
        oneshot::Sender<Result<(), LedgerError>>,
        Result<(), rusqlite::Error>,
    ),
}

impl Writer {
    fn err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::Db {
            path: self.path.clone(),
            source: source.into(),
        }
    }

    /// Takes the jobs that are waiting (at least one) and commits them
    /// together, until every [`Store`] handle is gone.
    fn serve(mut self, queue: std_mpsc::Receiver<Job>) {
        while let Ok(first) = queue.recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match queue.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            self.commit_group(group);
        }
    }

    fn commit_group(&mut self, group: Vec<Job>) {
        // Steps this group starts and finishes; applied to `running` once
        // the transaction is durable.
        let mut started: BTreeSet<String> = BTreeSet::new();
        let mut finished: Vec<String> = Vec::new();
        let mut answers = Vec::with_capacity(group.len());
        let begun = self.conn.execute_batch("BEGIN IMMEDIATE");
        if let Err(e) = begun {
            for job in group {
                let e = self.err(clone_error(&e));
                match job {
                    Job::Admit(_, reply) => drop(reply.send(Err(e))),
                    Job::Finish { key, reply, .. } => {
                        self.running.remove(&key);
                        drop(reply.send(Err(e)));
                    }
                }
            }
            return;
        }
        for job in group {
            match job {
                Job::Admit(admit, reply) => {
                    let answer = self.in_savepoint(|w| w.admit(&admit, &started));
                    if let Ok(Admitted::Step(Prior::New)) = answer {
                        started.insert(admit.step_key.clone());
                    }
                    answers.push(Answer::Admit(reply, answer));
                }
                Job::Finish {
                    key,
                    outcome,
                    now_ms,
                    reply,
                } => {
                    let answer = self.in_savepoint(|w| {
                        w.conn
                            .prepare_cached(
                                "UPDATE steps SET state = 'done', outcome = ?2, finished_at_ms = ?3 WHERE step_key = ?1",
                            )?
                            .execute(params![key, outcome, now_ms])
                            .map(|_| ())
                    });
                    started.remove(&key);
                    finished.push(key);
                    answers.push(Answer::Finish(reply, answer));
                }
            }
        }
        let committed = self.conn.execute_batch("COMMIT");
        // A step is not running any more once its outcome was asked to be
        // written, whether or not it could be: if it could not, a later ask
        // finds the row `running` with the key gone from memory and answers
        // `interrupted` (never runs it again).
        for key in &finished {
            self.running.remove(key);
        }
        if let Err(e) = committed {
            let _ = self.conn.execute_batch("ROLLBACK");
            for answer in answers {
                let e = self.err(clone_error(&e));
                match answer {
                    Answer::Admit(reply, _) => drop(reply.send(Err(e))),
                    Answer::Finish(reply, _) => drop(reply.send(Err(e))),
                }
            }
            return;
        }
        self.running.extend(started);
        for answer in answers {
            match answer {
                Answer::Admit(reply, a) => drop(reply.send(a.map_err(|e| self.err(e)))),
                Answer::Finish(reply, a) => drop(reply.send(a.map_err(|e| self.err(e)))),
            }
        }
    }

    /// Runs `job` inside a savepoint: on error its writes are undone and
    /// the rest of the group's stay.
    fn in_savepoint<T>(
        &mut self,
        job: impl FnOnce(&mut Writer) -> Result<T, rusqlite::Error>,
    ) -> Result<T, rusqlite::Error> {
        self.conn.prepare_cached("SAVEPOINT job")?.execute([])?;
        match job(self) {
            Ok(v) => {
                self.conn.prepare_cached("RELEASE job")?.execute([])?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK TO job; RELEASE job");
                Err(e)
            }
        }
    }

    /// The epoch, the nonce and the step, in that order; the first refusal
    /// writes nothing.
    fn admit(
        &mut self,
        admit: &Admit,
        started: &BTreeSet<String>,
    ) -> Result<Admitted, rusqlite::Error> {
        let conn = &self.conn;
        let highest: i64 = conn
            .prepare_cached("SELECT coalesce(max(highest), 0) FROM epoch")?
            .query_row([], |r| r.get(0))?;
        let highest = u64::try_from(highest).unwrap_or(0);
        if admit.epoch < highest {
            return Ok(Admitted::StaleEpoch { highest });
        }
        if admit.epoch > highest {
            let stored = i64::try_from(admit.epoch).unwrap_or(i64::MAX);
            conn.prepare_cached(
                "INSERT INTO epoch (id, highest) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET highest = ?1",
            )?
            .execute(params![stored])?;
        }
        conn.prepare_cached("DELETE FROM nonces WHERE keep_until_ms < ?1")?
            .execute(params![admit.now_ms])?;
        let inserted = conn
            .prepare_cached("INSERT OR IGNORE INTO nonces (nonce, keep_until_ms) VALUES (?1, ?2)")?
            .execute(params![admit.nonce, admit.keep_until_ms])?;
        if inserted == 0 {
            return Ok(Admitted::Replay);
        }
        #[cfg(feature = "test-hooks")]
        if self.freeze {
            eprintln!("{FREEZE_ENV}: nonce recorded, step not yet; frozen");
            loop {
                std::thread::park();
            }
        }
        let row: Option<(String, Option<String>)> = conn
            .prepare_cached("SELECT state, outcome FROM steps WHERE step_key = ?1")?
            .query_row(params![admit.step_key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let key = &admit.step_key;
        let prior = match row {
            Some((state, Some(outcome))) if state == "done" => Prior::Done(decode(&outcome)),
            Some(_) if self.running.contains(key) || started.contains(key) => Prior::Running,
            Some(_) => Prior::Interrupted,
            None => {
                conn.prepare_cached(
                    "INSERT INTO steps (step_key, command_id, state, started_at_ms) VALUES (?1, ?2, 'running', ?3)",
                )?
                .execute(params![key, admit.command_id, admit.now_ms])?;
                Prior::New
            }
        };
        Ok(Admitted::Step(prior))
    }
}

/// `rusqlite::Error` is not `Clone`; a group's one failure is told to each
/// of its jobs.
fn clone_error(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn admit(nonce: &[u8], epoch: u64, step: &str, now_ms: i64) -> Admit {
        Admit {
            epoch,
            nonce: nonce.to_vec(),
            keep_until_ms: now_ms + 1_000,
            now_ms,
            step_key: step.into(),
            command_id: format!("c-{}", hex::encode(nonce)),
        }
    }

    fn new_step() -> Admitted {
        Admitted::Step(Prior::New)
    }

    #[tokio::test]
    async fn a_nonce_is_fresh_once_even_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(Store::open(dir.path()).unwrap(), "");
        assert_eq!(
            ledger.admit(admit(b"n1", 0, "s1", 1_000)).await.unwrap(),
            new_step()
        );
        assert_eq!(
            ledger.admit(admit(b"n1", 0, "s2", 1_000)).await.unwrap(),
            Admitted::Replay
        );
        drop(ledger);
        let ledger = Ledger::new(Store::open(dir.path()).unwrap(), "");
        assert_eq!(
            ledger.admit(admit(b"n1", 0, "s3", 1_500)).await.unwrap(),
            Admitted::Replay
        );
        // Past its keep-until time the row is pruned (expiry refuses it instead).
        assert_eq!(
            ledger.admit(admit(b"n1", 0, "s4", 3_000)).await.unwrap(),
            new_step()
        );
    }

    #[tokio::test]
    async fn a_lower_epoch_is_refused_even_across_reopen_and_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(Store::open(dir.path()).unwrap(), "");
        async fn ask(ledger: &Ledger, n: u8, epoch: u64) -> Admitted {
            let step = format!("s{n}");
            ledger.admit(admit(&[n], epoch, &step, 0)).await.unwrap()
        }
        assert_eq!(ask(&ledger, 1, 0).await, new_step(), "no lease yet");
        assert_eq!(ask(&ledger, 2, 3).await, new_step());
        assert_eq!(ask(&ledger, 3, 3).await, new_step(), "the same leader");
        let stale = Admitted::StaleEpoch { highest: 3 };
        assert_eq!(ask(&ledger, 5, 2).await, stale);
        drop(ledger);
        let ledger = Ledger::new(Store::open(dir.path()).unwrap(), "");
        assert_eq!(ask(&ledger, 6, 2).await, stale, "after a restart");
        assert_eq!(ask(&ledger, 7, 0).await, stale);
        // A refused command's nonce and step were not recorded.
        assert_eq!(
            ledger.admit(admit(&[5], 4, "s5", 0)).await.unwrap(),
            new_step()
        );
    }

    #[tokio::test]
    async fn a_step_runs_once_and_its_outcome_is_remembered_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(Store::open(dir.path()).unwrap(), "");
        assert_eq!(
            ledger.admit(admit(b"1", 0, "s1", 0)).await.unwrap(),
            new_step()
        );
        assert_eq!(
            ledger.admit(admit(b"2", 0, "s1", 1)).await.unwrap(),
            Admitted::Step(Prior::Running)
        );
        let outcome = StepOutcome::Succeeded {
            summary: "ok".into(),
            data_json: "{\"a\":1}".into(),
            outputs: vec![("x".into(), "1".into())],
        };
        ledger.finish("s1", &outcome, 2).await.unwrap();
        assert_eq!(
            ledger.admit(admit(b"3", 0, "s1", 3)).await.unwrap(),
            Admitted::Step(Prior::Done(outcome.clone()))
        );
        assert_eq!(
            ledger.admit(admit(b"4", 0, "s2", 4)).await.unwrap(),
            new_step()
        );
        drop(ledger);
        // s2 was running when the agent stopped.
        let ledger = Ledger::new(Store::open(dir.path()).unwrap(), "");
        assert_eq!(
            ledger.admit(admit(b"5", 0, "s1", 5)).await.unwrap(),
            Admitted::Step(Prior::Done(outcome))
        );
        assert_eq!(
            ledger.admit(admit(b"6", 0, "s2", 6)).await.unwrap(),
            Admitted::Step(Prior::Interrupted)
        );
        assert_ne!(ledger.key("s1", true), ledger.key("s1", false));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sessions_sharing_the_database_commit_together_and_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut tasks = Vec::new();
        for session in 0..50u8 {
            let ledger = Ledger::new(store.clone(), format!("agent-{session}/"));
            tasks.push(tokio::spawn(async move {
                // Every session runs "the same" step id: prefixed, they differ.
                let key = ledger.key("run/phase/step", false);
                let first = ledger.admit(admit(&[session, 1], 0, &key, 0)).await;
                let again = ledger.admit(admit(&[session, 2], 0, &key, 0)).await;
                let outcome = StepOutcome::Failed {
                    code: "x".into(),
                    message: String::new(),
                };
                ledger.finish(&key, &outcome, 1).await.unwrap();
                let after = ledger.admit(admit(&[session, 3], 0, &key, 2)).await;
                (first.unwrap(), again.unwrap(), after.unwrap(), outcome)
            }));
        }
        for task in tasks {
            let (first, again, after, outcome) = task.await.unwrap();
            assert_eq!(first, new_step());
            assert_eq!(again, Admitted::Step(Prior::Running));
            assert_eq!(after, Admitted::Step(Prior::Done(outcome)));
        }
    }
}
