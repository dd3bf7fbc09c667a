//! The journal in SQLite: one file (`journal.db`, mode 0600 when this code
//! creates it), WAL, `synchronous=FULL`: an append is durable when it
//! returns. Tables: `entries` (the chained rows), `head` (one row: the last
//! entry's seq and hash, written in the same transaction as each append)
//! and `meta` (`format`).
//!
//! **One coordinator per journal.** The coordinator opens the journal with
//! [`SqliteStore::open_exclusive`], which holds an exclusive `flock` on
//! `journal.lock` beside it for as long as the store lives (the kernel lets
//! go when the process dies, even by SIGKILL). A second coordinator on the
//! same state directory is refused at start, naming the process that holds
//! it. The lock is a separate file so that readers are not shut out:
//! `backout audit verify` opens the journal with [`SqliteStore::open`],
//! which takes no lock and reads a consistent snapshot (one read
//! transaction) while the coordinator writes.
//!
//! **Formats.** A journal without a `meta` table is format 1: written by
//! Backout before records were typed. Its bodies are the JSON format 2
//! reads, so it is taken on, not rewritten (rewriting bodies would break
//! the hash chain): [`SqliteStore::open_exclusive`] reads every entry as a
//! typed record, and only if all of them read, marks the journal format 2
//! in one transaction. If one does not (an entry from an older Backout that
//! lacks a field), the coordinator refuses to start, naming format 1, the
//! entry and the field; `backout audit verify` still reads such a journal.
//! A format newer than this code's is refused by both.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::chain::{self, Head, Row, Verdict};
use super::record::{FORMAT, Record};
use super::store::{
    Entry, JournalError, JournalStore, NewEntry, Snapshot, Written, decode_rows, encode_entries,
};

pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// The coordinator's lock on `journal.lock`, released when dropped.
    _lock: Option<File>,
}

/// The lock file beside the journal `path` (`journal.db` → `journal.lock`).
pub fn lock_path(path: &Path) -> PathBuf {
    path.with_extension("lock")
}

impl SqliteStore {
    /// Opens (creating if needed) the journal at `path` without the
    /// coordinator's lock: for reading and verifying (`backout audit
    /// verify`, also while a coordinator runs) and for tests. A format-1
    /// journal is read as it is.
    pub fn open(path: &Path) -> Result<SqliteStore, JournalError> {
        Self::open_with(path, None)
    }

    /// Opens (creating if needed) the journal at `path` for the one
    /// coordinator that writes it: takes `journal.lock` for the store's
    /// life, and takes on a format-1 journal (see the module's doc).
    pub fn open_exclusive(path: &Path) -> Result<SqliteStore, JournalError> {
        let lock = take_lock(path)?;
        let store = Self::open_with(path, Some(lock))?;
        store.take_on_format_one()?;
        Ok(store)
    }

    fn open_with(path: &Path, lock: Option<File>) -> Result<SqliteStore, JournalError> {
        let at = path.display().to_string();
        let err = |e: rusqlite::Error| store_error(&at, e);
        // Mode 0600, WAL, synchronous=FULL, busy timeout: as every Backout
        // database (the agent's too).
        let conn = backout_config::sqlite::open_durable(path).map_err(|e| store_error(&at, e))?;
        match format_of(&conn).map_err(err)? {
            None => {
                conn.execute_batch(&format!(
                    "BEGIN;
                     CREATE TABLE IF NOT EXISTS entries (
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
                     );
                     CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                     INSERT OR IGNORE INTO meta (key, value) VALUES ('format', '{FORMAT}');
                     COMMIT;"
                ))
                .map_err(err)?;
            }
            Some(Some(1)) | Some(Some(FORMAT)) => {}
            Some(found) => {
                let found = found.map_or("an unreadable format".to_string(), |n| {
                    format!("format {n}")
                });
                return Err(JournalError::Refused {
                    at,
                    message: format!(
                        "the journal says it is {found}; this backout reads formats 1 and {FORMAT} (was it written by a newer backout?)"
                    ),
                });
            }
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, e: impl std::error::Error + Send + Sync + 'static) -> JournalError {
        store_error(&self.name(), e)
    }

    /// A format-1 journal whose every entry reads as a record is marked
    /// format 2; one entry that does not read refuses the journal.
    fn take_on_format_one(&self) -> Result<(), JournalError> {
        let mut conn = self.lock();
        if format_of(&conn).map_err(|e| self.err(e))? != Some(Some(1)) {
            return Ok(());
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let rows = read_rows(&tx, 1, None).map_err(|e| self.err(e))?;
        for row in &rows {
            if let Err(e) = Record::decode(&row.kind, &row.body) {
                return Err(JournalError::Refused {
                    at: self.name(),
                    message: format!(
                        "journal format 1 (written before its records were typed): entry {} ({}) cannot be read as format {FORMAT}: {e}. \
                         Resuming from it could mistake what a run was; start this coordinator on a new state_dir \
                         (`backout audit verify --journal FILE` still checks this one)",
                        row.seq, row.kind
                    ),
                });
            }
        }
        tx.execute_batch(&format!(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta (key, value) VALUES ('format', '{FORMAT}');"
        ))
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        tracing::info!(journal = %self.name(), entries = rows.len(), "journal format 1 read in full and marked format {FORMAT}");
        Ok(())
    }

    /// The entry this journal's first entry links to: the last one moved
    /// to an archive, or the genesis.
    pub fn base(&self) -> Result<Head, JournalError> {
        read_base(&self.lock()).map_err(|e| self.err(e))
    }

    /// Moves the entries up to `upto` (included) into a new journal file
    /// `to`, where they stay chained and verify on their own (its head is
    /// the last entry moved; its base, this journal's base before). This
    /// journal then starts after them: its base is the last entry moved, so
    /// `audit verify` walks it from there, and `audit verify --archive`
    /// checks that the archive's head is that base. The archive is written
    /// and verified first; a crash before the entries leave this journal
    /// leaves both whole. Returns the new base.
    pub fn archive(&self, upto: i64, to: &Path) -> Result<Head, JournalError> {
        if to.exists() {
            return Err(JournalError::Refused {
                at: to.display().to_string(),
                message: "the archive file exists already; give a new path".into(),
            });
        }
        let mut conn = self.lock();
        let base = read_base(&conn).map_err(|e| self.err(e))?;
        let rows: Vec<Row> = read_rows(&conn, base.seq + 1, None)
            .map_err(|e| self.err(e))?
            .into_iter()
            .take_while(|r| r.seq <= upto)
            .collect();
        let Some(last) = rows.last() else {
            return Err(JournalError::Refused {
                at: self.name(),
                message: format!("no entry up to {upto} is left to archive"),
            });
        };
        let new_base = Head {
            seq: last.seq,
            hash: last.hash.clone(),
        };
        let archive = SqliteStore::open(to)?;
        {
            let mut out = archive.lock();
            let tx = out.transaction().map_err(|e| archive.err(e))?;
            if base.seq > 0 {
                write_base(&tx, &base).map_err(|e| archive.err(e))?;
            }
            insert_rows(&tx, &rows).map_err(|e| archive.err(e))?;
            tx.execute(
                "INSERT INTO head (id, seq, hash) VALUES (1, ?1, ?2)",
                params![new_base.seq, new_base.hash],
            )
            .map_err(|e| archive.err(e))?;
            tx.commit().map_err(|e| archive.err(e))?;
        }
        match archive.verify()? {
            Verdict::Intact { .. } => {}
            Verdict::Broken { seq, reason } => {
                return Err(JournalError::Refused {
                    at: archive.name(),
                    message: format!(
                        "the archive does not verify at entry {seq} ({reason}); nothing was removed from the journal"
                    ),
                });
            }
        }
        drop(archive);
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        write_base(&tx, &new_base).map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM entries WHERE seq <= ?1", params![upto])
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(new_base)
    }

    /// The format the journal says it has (`None`: unreadable).
    pub fn format(&self) -> Result<Option<i64>, JournalError> {
        Ok(format_of(&self.lock())
            .map_err(|e| self.err(e))?
            .unwrap_or(Some(FORMAT)))
    }
}

impl JournalStore for SqliteStore {
    fn append(&self, new: &[NewEntry<'_>]) -> Result<Vec<Written>, JournalError> {
        let encoded = encode_entries(&self.name(), new)?;
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let head = read_head(&tx)
            .map_err(|e| self.err(e))?
            .unwrap_or_else(Head::empty);
        let rows = chain::link(&head, encoded);
        insert_rows(&tx, &rows).map_err(|e| self.err(e))?;
        if let Some(last) = rows.last() {
            tx.execute(
                "INSERT INTO head (id, seq, hash) VALUES (1, ?1, ?2) ON CONFLICT(id) DO UPDATE SET seq = ?1, hash = ?2",
                params![last.seq, last.hash],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|r| Written {
                seq: r.seq,
                hash: r.hash,
            })
            .collect())
    }

    fn read_from(&self, from_seq: i64, run_id: Option<&str>) -> Result<Vec<Entry>, JournalError> {
        let rows = read_rows(&self.lock(), from_seq, run_id).map_err(|e| self.err(e))?;
        decode_rows(&self.name(), rows)
    }

    fn head(&self) -> Result<Head, JournalError> {
        Ok(read_head(&self.lock())
            .map_err(|e| self.err(e))?
            .unwrap_or_else(Head::empty))
    }

    fn snapshot(&self) -> Result<Snapshot, JournalError> {
        // Rows and head from one snapshot: a coordinator appending in
        // between (another process) cannot look like a cut tail.
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(|e| self.err(e))?;
        let rows = read_rows(&tx, 1, None).map_err(|e| self.err(e))?;
        let head = read_head(&tx).map_err(|e| self.err(e))?;
        let base = read_base(&tx).map_err(|e| self.err(e))?;
        drop(tx);
        Ok(Snapshot { base, rows, head })
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

fn store_error(at: &str, e: impl std::error::Error + Send + Sync + 'static) -> JournalError {
    JournalError::Store {
        at: at.to_string(),
        source: Box::new(e),
    }
}

/// Takes the coordinator's lock beside the journal at `path`, and writes
/// this process's id in it for the message another coordinator gets.
fn take_lock(path: &Path) -> Result<File, JournalError> {
    let lock = lock_path(path);
    let at = path.display().to_string();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock)
        .map_err(|e| lock_error(&at, &lock, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let holder = match pid.trim() {
                "" => "another process".to_string(),
                pid => format!("another process (pid {pid})"),
            };
            return Err(JournalError::Refused {
                at,
                message: format!(
                    "{holder} holds {}: another coordinator is using this journal. \
                     Stop it first, or give this coordinator its own state_dir",
                    lock.display()
                ),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(lock_error(&at, &lock, e)),
    }
    let stamp = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    if let Err(e) = stamp {
        tracing::warn!(lock = %lock.display(), error = %e, "cannot write this process's id in the journal's lock");
    }
    Ok(file)
}

/// An error of the lock file, naming it.
fn lock_error(at: &str, lock: &Path, e: std::io::Error) -> JournalError {
    store_error(
        at,
        std::io::Error::new(e.kind(), format!("its lock {}: {e}", lock.display())),
    )
}

/// `None`: a new file; `Some(Some(1))`: entries without `meta`;
/// `Some(None)`: a format that is not a number.
fn format_of(conn: &Connection) -> Result<Option<Option<i64>>, rusqlite::Error> {
    let has = |table: &str| -> Result<bool, rusqlite::Error> {
        conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            params![table],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    if has("meta")? {
        let value: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
                r.get(0)
            })
            .optional()?;
        return Ok(Some(value.and_then(|v| v.parse().ok())));
    }
    Ok(has("entries")?.then_some(Some(1)))
}

/// Inserts chained rows as they are (their hashes already made).
fn insert_rows(conn: &Connection, rows: &[Row]) -> Result<(), rusqlite::Error> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO entries (seq, at_ms, run_id, kind, body, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for r in rows {
        insert.execute(params![
            r.seq,
            r.at_ms,
            r.run_id,
            r.kind,
            r.body,
            r.prev_hash,
            r.hash
        ])?;
    }
    Ok(())
}

/// The entry the first row links to: the last one moved to an archive
/// (table `base`, written by [`SqliteStore::archive`]), or the genesis.
fn read_base(conn: &Connection) -> Result<Head, rusqlite::Error> {
    let has_base: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'base'",
        [],
        |r| r.get(0),
    )?;
    if has_base == 0 {
        return Ok(Head::empty());
    }
    Ok(conn
        .query_row("SELECT seq, hash FROM base WHERE id = 1", [], |r| {
            Ok(Head {
                seq: r.get(0)?,
                hash: r.get(1)?,
            })
        })
        .optional()?
        .unwrap_or_else(Head::empty))
}

/// Makes `base` the entry the first row links to.
fn write_base(conn: &Connection, base: &Head) -> Result<(), rusqlite::Error> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS base (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             seq INTEGER NOT NULL,
             hash TEXT NOT NULL
         );",
    )?;
    conn.execute(
        "INSERT INTO base (id, seq, hash) VALUES (1, ?1, ?2) ON CONFLICT(id) DO UPDATE SET seq = ?1, hash = ?2",
        params![base.seq, base.hash],
    )?;
    Ok(())
}

fn read_head(conn: &Connection) -> Result<Option<Head>, rusqlite::Error> {
    conn.query_row("SELECT seq, hash FROM head WHERE id = 1", [], |r| {
        Ok(Head {
            seq: r.get(0)?,
            hash: r.get(1)?,
        })
    })
    .optional()
}

fn read_rows(
    conn: &Connection,
    from_seq: i64,
    run_id: Option<&str>,
) -> Result<Vec<Row>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, at_ms, run_id, kind, body, prev_hash, hash FROM entries
         WHERE seq >= ?1 AND (?2 IS NULL OR run_id = ?2) ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![from_seq, run_id], |r| {
        Ok(Row {
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
mod tests;
