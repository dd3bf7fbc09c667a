//! The journal: every decision, signal set, command and outcome, written to
//! SQLite (WAL, synchronous=FULL) before it is acted on or acknowledged, and
//! hash-chained so that `backout audit verify` finds any edit.
//!
//! Each entry's hash covers its sequence number, time, run, kind, body and the
//! previous entry's hash. Editing, removing or reordering rows breaks the
//! chain at the first entry touched; the `head` row (written in the same
//! transaction as each entry) catches rows cut from the end.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
#[error("journal {path}: {source}")]
pub struct JournalError {
    path: PathBuf,
    #[source]
    source: rusqlite::Error,
}

/// One entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: i64,
    pub at_ms: i64,
    pub run_id: String,
    pub kind: String,
    /// JSON text.
    pub body: String,
    pub prev_hash: String,
    pub hash: String,
}

/// An entry to append.
#[derive(Debug, Clone, Copy)]
pub struct NewEntry<'a> {
    pub at_ms: i64,
    pub run_id: &'a str,
    pub kind: &'a str,
    pub body: &'a serde_json::Value,
}

/// The result of `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every entry matches; `entries` were checked.
    Intact { entries: i64 },
    /// The first entry that does not match, and why.
    Broken { seq: i64, reason: String },
}

/// What to do once a deferred entry is written (tell watchers, with its seq).
pub type AfterWrite = Box<dyn FnOnce(&Entry) + Send>;

/// An entry written with the next transaction (see [`Journal::append_soon`]).
struct Deferred {
    at_ms: i64,
    run_id: String,
    kind: String,
    body: serde_json::Value,
    then: AfterWrite,
}

pub struct Journal {
    conn: Mutex<Connection>,
    /// Entries waiting for the next transaction, in arrival order.
    soon: Mutex<Vec<Deferred>>,
    path: PathBuf,
    /// Test hook: stop the world right after this entry is durable.
    freeze_after: Option<i64>,
}

/// The crash tests' hook. With `BACKOUT_TEST_FREEZE_AFTER_ENTRY=N`, the
/// coordinator writes entry N, says so on stderr, and then holds the journal
/// forever: nothing after the transaction that wrote entry N happens, and the test kills the process
/// with SIGKILL at exactly that boundary. Unset, it costs one comparison.
pub const FREEZE_ENV: &str = "BACKOUT_TEST_FREEZE_AFTER_ENTRY";

/// The hash of an entry: length-prefixed fields, so no two field lists
/// produce the same bytes.
pub fn entry_hash(
    seq: i64,
    at_ms: i64,
    run_id: &str,
    kind: &str,
    body: &str,
    prev_hash: &str,
) -> String {
    let mut h = Sha256::new();
    for field in [
        seq.to_string().as_str(),
        at_ms.to_string().as_str(),
        run_id,
        kind,
        body,
        prev_hash,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

impl Journal {
    /// Opens (creating if needed) the journal at `path`.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let err = |source| JournalError {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS entries (
                 seq INTEGER PRIMARY KEY,
                 at_ms INTEGER NOT NULL,
                 run_id TEXT NOT NULL,
                 kind TEXT NOT NULL,
                 body TEXT NOT NULL,
                 prev_hash TEXT NOT NULL,
                 hash TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS entries_run ON entries (run_id, seq);
             CREATE TABLE IF NOT EXISTS head (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 seq INTEGER NOT NULL,
                 hash TEXT NOT NULL
             );",
        )
        .map_err(err)?;
        let freeze_after = std::env::var(FREEZE_ENV).ok().and_then(|v| v.parse().ok());
        Ok(Journal {
            conn: Mutex::new(conn),
            soon: Mutex::new(Vec::new()),
            path: path.to_path_buf(),
            freeze_after,
        })
    }

    fn err(&self, source: rusqlite::Error) -> JournalError {
        JournalError {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends one entry, durably, and returns it.
    pub fn append(
        &self,
        at_ms: i64,
        run_id: &str,
        kind: &str,
        body: &serde_json::Value,
    ) -> Result<Entry, JournalError> {
        let mut written = self.append_all(&[NewEntry {
            at_ms,
            run_id,
            kind,
            body,
        }])?;
        written
            .pop()
            .ok_or_else(|| self.err(rusqlite::Error::QueryReturnedNoRows))
    }

    /// Queues an entry that nothing waits on (a plugin's log line or
    /// progress): it is written with the next transaction, before that
    /// transaction's own entries, or by [`Journal::flush`] (the coordinator
    /// flushes every few milliseconds). `then` runs once it is durable,
    /// before any later entry is written: it must not block or take a lock
    /// that a writer of the journal may hold. A
    /// thousand hosts' log lines cost one fsync instead of a thousand; what
    /// a crash can lose is the last few milliseconds of them, never a
    /// decision, a command or an outcome.
    pub fn append_soon(
        &self,
        at_ms: i64,
        run_id: &str,
        kind: &str,
        body: serde_json::Value,
        then: AfterWrite,
    ) {
        self.soon
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Deferred {
                at_ms,
                run_id: run_id.to_string(),
                kind: kind.to_string(),
                body,
                then,
            });
    }

    /// Writes the entries queued by [`Journal::append_soon`], if any.
    pub fn flush(&self) -> Result<(), JournalError> {
        self.append_all(&[]).map(drop)
    }

    /// Appends entries in order, durably, in one transaction (one fsync):
    /// all of them or none, after any queued by [`Journal::append_soon`].
    /// Returns `new` as written.
    pub fn append_all(&self, new: &[NewEntry<'_>]) -> Result<Vec<Entry>, JournalError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        // Taken under the connection's lock: queued entries keep their order.
        let deferred = std::mem::take(&mut *self.soon.lock().unwrap_or_else(|p| p.into_inner()));
        if new.is_empty() && deferred.is_empty() {
            return Ok(Vec::new());
        }
        let all: Vec<NewEntry<'_>> = deferred
            .iter()
            .map(|d| NewEntry {
                at_ms: d.at_ms,
                run_id: &d.run_id,
                kind: &d.kind,
                body: &d.body,
            })
            .chain(new.iter().copied())
            .collect();
        let mut written = match self.write(&mut conn, &all) {
            Ok(written) => written,
            Err(e) => {
                drop(all);
                // Queued entries wait for the next transaction.
                let mut soon = self.soon.lock().unwrap_or_else(|p| p.into_inner());
                let later = std::mem::replace(&mut *soon, deferred);
                soon.extend(later);
                return Err(e);
            }
        };
        let own = written.split_off(deferred.len());
        drop(all);
        // Told in journal order, before anything written after them can be:
        // still under the connection's lock (the callbacks take no lock).
        for (d, entry) in deferred.into_iter().zip(&written) {
            (d.then)(entry);
        }
        drop(conn);
        Ok(own)
    }

    /// Writes `new` in one transaction on `conn`.
    fn write(
        &self,
        conn: &mut Connection,
        new: &[NewEntry<'_>],
    ) -> Result<Vec<Entry>, JournalError> {
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let (mut seq, mut prev_hash): (i64, String) = tx
            .query_row("SELECT seq, hash FROM head WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(|e| self.err(e))?
            .unwrap_or((0, GENESIS.to_string()));
        let mut written = Vec::with_capacity(new.len());
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO entries (seq, at_ms, run_id, kind, body, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(|e| self.err(e))?;
            for n in new {
                seq += 1;
                let body = n.body.to_string();
                let hash = entry_hash(seq, n.at_ms, n.run_id, n.kind, &body, &prev_hash);
                insert
                    .execute(params![
                        seq, n.at_ms, n.run_id, n.kind, body, prev_hash, hash
                    ])
                    .map_err(|e| self.err(e))?;
                let entry = Entry {
                    seq,
                    at_ms: n.at_ms,
                    run_id: n.run_id.to_string(),
                    kind: n.kind.to_string(),
                    body,
                    prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
                    hash,
                };
                written.push(entry);
            }
        }
        tx.execute(
            "INSERT INTO head (id, seq, hash) VALUES (1, ?1, ?2) ON CONFLICT(id) DO UPDATE SET seq = ?1, hash = ?2",
            params![seq, prev_hash],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        if let Some(frozen) = self.freeze_after {
            let first = seq + 1 - written.len() as i64;
            if (first..=seq).contains(&frozen) {
                eprintln!(
                    "backout: frozen after journal entry {frozen} (written with entries {first}..={seq})"
                );
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
        }
        Ok(written)
    }

    /// Entries of one run (or all, with `None`), in order.
    pub fn entries(&self, run_id: Option<&str>) -> Result<Vec<Entry>, JournalError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        read_entries(&conn, run_id).map_err(|e| self.err(e))
    }

    /// Walks the chain from the first entry; reports the first that does not match.
    pub fn verify(&self) -> Result<Verdict, JournalError> {
        // Entries and head are read under one lock, so an append in between
        // (a live coordinator) cannot look like a cut tail.
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let entries = read_entries(&conn, None).map_err(|e| self.err(e))?;
        let mut prev = GENESIS.to_string();
        for (i, e) in entries.iter().enumerate() {
            let expected_seq = i as i64 + 1;
            if e.seq != expected_seq {
                return Ok(Verdict::Broken {
                    seq: expected_seq,
                    reason: format!("entry {expected_seq} is missing (found {} next)", e.seq),
                });
            }
            if e.prev_hash != prev {
                return Ok(Verdict::Broken {
                    seq: e.seq,
                    reason: "its link to the previous entry does not match (an entry before it was removed, edited or moved)".into(),
                });
            }
            if entry_hash(e.seq, e.at_ms, &e.run_id, &e.kind, &e.body, &e.prev_hash) != e.hash {
                return Ok(Verdict::Broken {
                    seq: e.seq,
                    reason: "its content does not match its hash (it was edited)".into(),
                });
            }
            prev = e.hash.clone();
        }
        let head: Option<(i64, String)> = conn
            .query_row("SELECT seq, hash FROM head WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(|e| self.err(e))?;
        let last = entries.last().map(|e| (e.seq, e.hash.clone()));
        match (head, last) {
            (None, None) => {}
            (Some(head), Some(last)) if head == last => {}
            (Some((seq, _)), _) => {
                return Ok(Verdict::Broken {
                    seq,
                    reason: format!(
                        "the journal's head names entry {seq}, which is not its last entry (entries were cut from the end)"
                    ),
                });
            }
            (None, Some((seq, _))) => {
                return Ok(Verdict::Broken {
                    seq,
                    reason: "the journal has entries but no head".into(),
                });
            }
        }
        Ok(Verdict::Intact {
            entries: entries.len() as i64,
        })
    }
}

/// How often queued entries (`append_soon`) are written at the latest.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(5);

/// Writes the journal's queued entries every `every`, for as long as the
/// server runs.
pub fn flush_every(journal: std::sync::Arc<Journal>, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = journal.flush() {
                tracing::error!(error = %e, "cannot write queued journal entries; trying again");
            }
        }
    });
}

fn read_entries(conn: &Connection, run_id: Option<&str>) -> Result<Vec<Entry>, rusqlite::Error> {
    let mut stmt = conn.prepare(
        "SELECT seq, at_ms, run_id, kind, body, prev_hash, hash FROM entries
         WHERE ?1 IS NULL OR run_id = ?1 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![run_id], |r| {
        Ok(Entry {
            seq: r.get(0)?,
            at_ms: r.get(1)?,
            run_id: r.get(2)?,
            kind: r.get(3)?,
            body: r.get(4)?,
            prev_hash: r.get(5)?,
            hash: r.get(6)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn journal(n: i64) -> (tempfile::TempDir, PathBuf, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let j = Journal::open(&path).unwrap();
        for i in 1..=n {
            j.append(i * 10, "run-1", "step.finished", &json!({ "i": i }))
                .unwrap();
        }
        (dir, path, j)
    }

    fn tamper(path: &Path, sql: &str) {
        Connection::open(path).unwrap().execute_batch(sql).unwrap();
    }

    #[test]
    fn an_untouched_journal_verifies_and_survives_reopening() {
        let (_dir, path, j) = journal(5);
        assert_eq!(j.verify().unwrap(), Verdict::Intact { entries: 5 });
        drop(j);
        let j = Journal::open(&path).unwrap();
        j.append(60, "run-1", "run.finished", &json!({})).unwrap();
        assert_eq!(j.verify().unwrap(), Verdict::Intact { entries: 6 });
        assert_eq!(j.entries(Some("run-1")).unwrap().len(), 6);
    }

    #[test]
    fn a_batch_is_written_in_order_and_chained_like_single_entries() {
        let (_dir, _path, j) = journal(2);
        let (a, b) = (json!({ "n": "a" }), json!({ "n": "b" }));
        let new = |body| NewEntry {
            at_ms: 30,
            run_id: "run-2",
            kind: "run.finished",
            body,
        };
        let written = j.append_all(&[new(&a), new(&b)]).unwrap();
        assert_eq!(written.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(written[1].prev_hash, written[0].hash);
        assert!(j.append_all(&[]).unwrap().is_empty());
        assert_eq!(j.append(40, "run-2", "x", &json!({})).unwrap().seq, 5);
        assert_eq!(j.verify().unwrap(), Verdict::Intact { entries: 5 });
        assert_eq!(j.entries(Some("run-2")).unwrap().len(), 3);
    }

    #[test]
    fn queued_entries_go_first_with_the_next_write_and_are_told_their_seq() {
        let (_dir, _path, j) = journal(1);
        let told = std::sync::Arc::new(Mutex::new(Vec::new()));
        for n in 0..2 {
            let told = told.clone();
            j.append_soon(
                20,
                "run-1",
                "step.event",
                json!({ "n": n }),
                Box::new(move |e| told.lock().unwrap().push(e.seq)),
            );
        }
        assert!(told.lock().unwrap().is_empty(), "not written yet");
        let own = j.append(30, "run-1", "run.finished", &json!({})).unwrap();
        assert_eq!(own.seq, 4, "after the two queued entries");
        assert_eq!(*told.lock().unwrap(), [2, 3]);
        j.flush().unwrap();
        assert_eq!(j.verify().unwrap(), Verdict::Intact { entries: 4 });
    }

    #[test]
    fn an_edited_row_is_found() {
        let (_dir, path, j) = journal(5);
        tamper(
            &path,
            "UPDATE entries SET body = '{\"i\":99}' WHERE seq = 3",
        );
        assert!(matches!(
            j.verify().unwrap(),
            Verdict::Broken { seq: 3, .. }
        ));
    }

    #[test]
    fn an_edited_row_with_a_recomputed_hash_breaks_the_next_link() {
        let (_dir, path, j) = journal(5);
        let e = &j.entries(None).unwrap()[2];
        let forged = entry_hash(3, e.at_ms, &e.run_id, &e.kind, "{\"i\":99}", &e.prev_hash);
        tamper(
            &path,
            &format!("UPDATE entries SET body = '{{\"i\":99}}', hash = '{forged}' WHERE seq = 3"),
        );
        assert!(matches!(
            j.verify().unwrap(),
            Verdict::Broken { seq: 4, .. }
        ));
    }

    #[test]
    fn a_removed_row_is_found() {
        let (_dir, path, j) = journal(5);
        tamper(&path, "DELETE FROM entries WHERE seq = 2");
        assert!(matches!(
            j.verify().unwrap(),
            Verdict::Broken { seq: 2, .. }
        ));
        let (_dir, path, j) = journal(5);
        tamper(&path, "DELETE FROM entries WHERE seq = 5");
        assert!(matches!(
            j.verify().unwrap(),
            Verdict::Broken { seq: 5, .. }
        ));
    }

    #[test]
    fn reordered_rows_are_found() {
        let (_dir, path, j) = journal(5);
        tamper(
            &path,
            "UPDATE entries SET seq = 100 WHERE seq = 2; UPDATE entries SET seq = 2 WHERE seq = 3; UPDATE entries SET seq = 3 WHERE seq = 100;",
        );
        assert!(matches!(
            j.verify().unwrap(),
            Verdict::Broken { seq: 2, .. }
        ));
    }
}
