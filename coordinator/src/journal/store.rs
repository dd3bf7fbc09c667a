//! The storage interface: what the coordinator needs of wherever its
//! journal lives. SQLite (`sqlite.rs`) is the first store behind it.
//!
//! A store keeps the hash chain (`chain.rs`): it links each appended entry
//! to the last one and moves the head in the same atomic write. Its
//! methods are synchronous and take `&self`: the coordinator appends a
//! run's events under that run's lock, so that the journal's order is the
//! order they were applied in, and a store that talks to a server blocks
//! the calling thread for the round trip as SQLite's fsync does.

use super::chain::{Head, Row, Verdict};
use super::record::{Record, RecordError};

/// An entry to append.
#[derive(Debug, Clone, Copy)]
pub struct NewEntry<'a> {
    pub at_ms: i64,
    /// The run it belongs to (empty: none, as for signals and decisions).
    pub run_id: &'a str,
    pub record: &'a Record,
}

/// One entry as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub seq: i64,
    pub at_ms: i64,
    pub run_id: String,
    pub record: Record,
}

/// The chain as stored, read at one moment ([`JournalStore::snapshot`]).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The last entry moved to an archive ([`Head::empty`]: none was).
    pub base: Head,
    pub rows: Vec<Row>,
    pub head: Option<Head>,
}

/// Where an appended entry went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub seq: i64,
    pub hash: String,
}

pub trait JournalStore: Send + Sync {
    /// Appends `new` in order, all or none, each chained to the one before
    /// it, and moves the head: one durable write. Returns where each went.
    fn append(&self, new: &[NewEntry<'_>]) -> Result<Vec<Written>, JournalError>;

    /// Appends one entry.
    fn append_one(&self, new: NewEntry<'_>) -> Result<Written, JournalError> {
        self.append(&[new])?
            .pop()
            .ok_or_else(|| JournalError::Store {
                at: self.name(),
                source: "the store wrote nothing".into(),
            })
    }

    /// The entries from `from_seq` on, in order: every run's (`None`) or
    /// one run's (`Some("")`: the entries outside runs). An entry that does
    /// not read as a [`Record`] is an error naming it.
    fn read_from(&self, from_seq: i64, run_id: Option<&str>) -> Result<Vec<Entry>, JournalError>;

    /// Where the chain ends.
    fn head(&self) -> Result<Head, JournalError>;

    /// Every stored entry with its hashes, the base (where the first
    /// follows on) and the head, read at one moment (one transaction): an
    /// append in between cannot look like a cut tail.
    fn snapshot(&self) -> Result<Snapshot, JournalError>;

    /// Walks the chain from the first entry (see `chain::verify_from`).
    fn verify(&self) -> Result<Verdict, JournalError> {
        let s = self.snapshot()?;
        Ok(super::chain::verify_from(&s.base, &s.rows, s.head.as_ref()))
    }

    /// The store, for messages (`/var/lib/backout/journal.db`).
    fn name(&self) -> String;

    /// The lease epoch this store writes under: 0 for a store without a
    /// lease (SQLite: one coordinator, held by its lock file).
    fn epoch(&self) -> u64 {
        0
    }
}

/// Each new entry as the chain links it: time, run, kind and body (the
/// record's JSON); a record that cannot be written is an error naming `at`.
pub(super) fn encode_entries(
    at: &str,
    new: &[NewEntry<'_>],
) -> Result<Vec<(i64, String, String, String)>, JournalError> {
    new.iter()
        .map(|n| {
            let (kind, body) = n
                .record
                .encode()
                .map_err(|source| JournalError::Unwritable {
                    at: at.to_string(),
                    source,
                })?;
            Ok((n.at_ms, n.run_id.to_string(), kind, body))
        })
        .collect()
}

/// Stored rows read back as typed entries; one that does not read is an
/// error naming it.
pub(super) fn decode_rows(at: &str, rows: Vec<Row>) -> Result<Vec<Entry>, JournalError> {
    rows.into_iter()
        .map(|row| match Record::decode(&row.kind, &row.body) {
            Ok(record) => Ok(Entry {
                seq: row.seq,
                at_ms: row.at_ms,
                run_id: row.run_id,
                record,
            }),
            Err(source) => Err(JournalError::Unreadable {
                at: at.to_string(),
                seq: row.seq,
                kind: row.kind,
                source,
            }),
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The store cannot be read or written (a full disk, a lost server).
    #[error("journal {at}: {source}")]
    Store {
        at: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An entry that does not read as a record of this format.
    #[error("journal {at}: entry {seq} ({kind}) cannot be read: {source}")]
    Unreadable {
        at: String,
        seq: i64,
        kind: String,
        #[source]
        source: RecordError,
    },
    /// A record that cannot be written as JSON.
    #[error("journal {at}: a record cannot be written: {source}")]
    Unwritable {
        at: String,
        #[source]
        source: RecordError,
    },
    /// This coordinator no longer leads: its lease was taken over (the
    /// lease row carries `current`), or a renewal failed (`None`). Nothing
    /// was written.
    #[error("journal {at}: this coordinator no longer leads (its epoch {mine}{}); nothing written", current.map(|c| format!(", the lease's {c}")).unwrap_or_else(|| ", its lease not renewed".into()))]
    Fenced {
        at: String,
        mine: u64,
        current: Option<u64>,
    },
    /// A journal this code cannot take on (its format, or another process
    /// holding it).
    #[error("journal {at}: {message}")]
    Refused { at: String, message: String },
}
