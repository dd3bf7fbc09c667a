//! The journal: every decision, signal set, command and outcome, written
//! before it is acted on or acknowledged, hash-chained so that `backout
//! audit verify` finds an entry edited, removed, inserted or moved, and
//! entries cut from the end (`chain.rs` says exactly what it finds, and
//! what it does not: a chain rewritten with its hashes and head
//! recomputed). Signed checkpoints (`checkpoint.rs`) find that rewrite,
//! and, with a checkpoint announced outside the journal, a cut tail.
//!
//! * `record.rs`: what an entry says, typed ([`Record`]), and the format
//!   version ([`FORMAT`]).
//! * `store.rs`: the storage interface ([`JournalStore`]): append (one entry
//!   or several in one durable write), read from a seq, the head, verify.
//! * `chain.rs`: the hash chain every store keeps.
//! * `checkpoint.rs`: signed checkpoints of the chain's head, written by
//!   [`Journal`] at every run's end and every `checkpoint_every` entries.
//! * `sqlite.rs`: the SQLite store, the one coordinator's lock, formats.
//! * `postgres.rs`: the PostgreSQL store and its leader lease and fencing
//!   epoch (several coordinators, one leading).
//! * `lease.rs`: the lease kept by the leader, waited for by a standby.
//! * `conformance.rs`: what every store must do, run against each.
//!
//! [`Journal`] sits in front of a store: it queues plugins' log lines for
//! the next write ([`Journal::append_soon`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

mod chain;
pub mod checkpoint;
pub mod conformance;
pub mod lease;
mod pg_tls;
mod postgres;
mod record;
mod sqlite;
mod store;

pub use chain::{GENESIS, Head, Row, Verdict, entry_hash};
pub use checkpoint::{Announced, Checkpoint, CheckpointKey, CheckpointSigner};
pub use postgres::{LEASE_CHANNEL, LeaseRow, PostgresStore, Taken};
pub use record::{
    CommandSent, Dispatched, FORMAT, Finished, Incident, JudgeFigures, LeaseTaken, MatrixSummary,
    Notification, Recipient, Record, RecordError, RunCreated, SignalChange, SignedStatement,
    StepEventRecord, TriggerChange, lease_end,
};
pub use sqlite::{SqliteStore, lock_path};
pub use store::{Entry, JournalError, JournalStore, NewEntry, Snapshot, Written};

/// What to do once a queued entry is written (tell watchers, with its seq).
pub type AfterWrite = Box<dyn FnOnce(&Written) + Send>;

/// Told of every durable write: its entries, in order, and how long the
/// store took (the coordinator's metrics, `crate::metrics`, are fed by it).
pub type Observer = Box<dyn Fn(&[NewEntry<'_>], Duration) + Send + Sync>;

/// An entry written with the next write (see [`Journal::append_soon`]).
struct Deferred {
    at_ms: i64,
    run_id: String,
    record: Record,
    then: AfterWrite,
}

/// The checkpoint signer and when it signs next.
struct Checkpoints {
    signer: CheckpointSigner,
    every: u64,
    /// Entries written since the last checkpoint.
    since: AtomicU64,
    /// The checkpoints signed at runs' ends, by run (the last
    /// [`KEPT_CHECKPOINTS`]).
    by_run: Mutex<BTreeMap<String, Checkpoint>>,
}

/// How many runs' final checkpoints [`Journal::checkpoint_of`] keeps.
const KEPT_CHECKPOINTS: usize = 256;

/// What to do when a write finds that this coordinator no longer leads.
pub type OnFenced = Box<dyn Fn(&JournalError) + Send + Sync>;

pub struct Journal {
    store: std::sync::Arc<dyn JournalStore>,
    /// Called with every [`JournalError::Fenced`] (the coordinator steps
    /// down), set once by the lease's keeper.
    on_fenced: std::sync::OnceLock<OnFenced>,
    /// Held across each write and its queued entries' callbacks: queued
    /// entries keep their order, and are told before anything written after
    /// them.
    writing: Mutex<()>,
    /// Entries waiting for the next write, in arrival order.
    soon: Mutex<Vec<Deferred>>,
    /// Told of each durable write ([`Journal::observe`]).
    observer: OnceLock<Observer>,
    /// Signs checkpoints, when the coordinator has a checkpoint key
    /// ([`Journal::sign_checkpoints`]).
    checkpoints: OnceLock<Checkpoints>,
    /// Test hook: stop the world right after this entry is durable.
    #[cfg(feature = "test-hooks")]
    freeze_after: Option<i64>,
}

/// The crash tests' hook, in builds with the `test-hooks` feature only
/// (`scripts/test.sh` builds the test binaries with it; release builds
/// never have it). With `BACKOUT_TEST_FREEZE_AFTER_ENTRY=N`, the coordinator
/// writes entry N, says so on stderr, and then holds the journal forever:
/// nothing after the write that wrote entry N happens, and the test kills
/// the process with SIGKILL at exactly that boundary.
#[cfg(feature = "test-hooks")]
pub const FREEZE_ENV: &str = "BACKOUT_TEST_FREEZE_AFTER_ENTRY";

impl Journal {
    /// A journal over `store`.
    pub fn new(store: impl JournalStore + 'static) -> Journal {
        Journal::shared(std::sync::Arc::new(store))
    }

    /// A journal over a store that others hold too (the lease's keeper
    /// holds the PostgreSQL store).
    pub fn shared(store: std::sync::Arc<dyn JournalStore>) -> Journal {
        Journal {
            store,
            on_fenced: std::sync::OnceLock::new(),
            writing: Mutex::new(()),
            soon: Mutex::new(Vec::new()),
            observer: OnceLock::new(),
            checkpoints: OnceLock::new(),
            #[cfg(feature = "test-hooks")]
            freeze_after: std::env::var(FREEZE_ENV).ok().and_then(|v| v.parse().ok()),
        }
    }

    /// Opens (creating if needed) the SQLite journal at `path` without the
    /// coordinator's lock: to read and verify it, also while a coordinator
    /// writes it (`backout audit verify`), and in tests.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        SqliteStore::open(path).map(Journal::new)
    }

    /// Opens (creating if needed) the SQLite journal at `path` for the one
    /// coordinator that writes it: refused while another process holds it.
    pub fn open_exclusive(path: &Path) -> Result<Journal, JournalError> {
        SqliteStore::open_exclusive(path).map(Journal::new)
    }

    /// Has `observer` told of every durable write from now on (one
    /// observer per journal: a second is ignored). It is called under the
    /// write lock, so it must be quick and must not write to the journal.
    pub fn observe(&self, observer: Observer) {
        let _ = self.observer.set(observer);
    }

    /// Appends one entry, durably.
    pub fn append(
        &self,
        at_ms: i64,
        run_id: &str,
        record: &Record,
    ) -> Result<Written, JournalError> {
        let mut written = self.append_all(&[NewEntry {
            at_ms,
            run_id,
            record,
        }])?;
        written.pop().ok_or_else(|| JournalError::Store {
            at: self.store.name(),
            source: "the store wrote nothing".into(),
        })
    }

    /// Queues an entry that nothing waits on (a plugin's log line or
    /// progress): it is written with the next write, before that write's
    /// own entries, or by [`Journal::flush`] (the coordinator flushes every
    /// few milliseconds). `then` runs once it is durable, before any later
    /// entry is written: it must not block or take a lock that a writer of
    /// the journal may hold. A thousand hosts' log lines cost one fsync
    /// instead of a thousand; what a crash can lose is the last few
    /// milliseconds of them, never a decision, a command or an outcome.
    pub fn append_soon(&self, at_ms: i64, run_id: &str, record: Record, then: AfterWrite) {
        self.soon
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Deferred {
                at_ms,
                run_id: run_id.to_string(),
                record,
                then,
            });
    }

    /// Writes the entries queued by [`Journal::append_soon`], if any.
    pub fn flush(&self) -> Result<(), JournalError> {
        self.append_all(&[]).map(drop)
    }

    /// Appends entries in order, durably, in one write (one fsync): all of
    /// them or none, after any queued by [`Journal::append_soon`]. Returns
    /// where each of `new` went.
    pub fn append_all(&self, new: &[NewEntry<'_>]) -> Result<Vec<Written>, JournalError> {
        let writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        // Taken under the write lock: queued entries keep their order.
        let deferred = std::mem::take(&mut *self.soon.lock().unwrap_or_else(|p| p.into_inner()));
        if new.is_empty() && deferred.is_empty() {
            return Ok(Vec::new());
        }
        let all: Vec<NewEntry<'_>> = deferred
            .iter()
            .map(|d| NewEntry {
                at_ms: d.at_ms,
                run_id: &d.run_id,
                record: &d.record,
            })
            .chain(new.iter().copied())
            .collect();
        let began = Instant::now();
        let result = self.store.append(&all);
        if let (Ok(_), Some(observer)) = (&result, self.observer.get()) {
            observer(&all, began.elapsed());
        }
        // A run's end is signed at once, in that run; otherwise every
        // `every` entries.
        let ended = all
            .iter()
            .rev()
            .find(|n| matches!(n.record, Record::RunEnded { .. }))
            .map(|n| n.run_id.to_string());
        let count = all.len() as u64;
        drop(all);
        let mut written = match result {
            Ok(written) => written,
            Err(e) => {
                if let (JournalError::Fenced { .. }, Some(on_fenced)) = (&e, self.on_fenced.get()) {
                    on_fenced(&e);
                }
                // Queued entries wait for the next write.
                let mut soon = self.soon.lock().unwrap_or_else(|p| p.into_inner());
                let later = std::mem::replace(&mut *soon, deferred);
                soon.extend(later);
                return Err(e);
            }
        };
        if let (Some(cp), Some(last)) = (self.checkpoints.get(), written.last()) {
            let since = cp.since.fetch_add(count, Ordering::Relaxed) + count;
            if ended.is_some() || since >= cp.every {
                self.checkpoint_after(cp, last, ended.as_deref().unwrap_or(""));
            }
        }
        #[cfg(feature = "test-hooks")]
        self.freeze_if_asked(&written);
        let own = written.split_off(deferred.len().min(written.len()));
        // Told in journal order, before anything written after them can be:
        // still under the write lock (the callbacks take no lock).
        for (d, entry) in deferred.into_iter().zip(&written) {
            (d.then)(entry);
        }
        drop(writing);
        Ok(own)
    }

    /// Signs a checkpoint at every run's end and every `every` entries
    /// from now on, with `signer` (once per journal: a second call is
    /// ignored). A journal whose last entry is a run's end with no
    /// checkpoint after it (the coordinator stopped between the two) gets
    /// that run's checkpoint now.
    pub fn sign_checkpoints(
        &self,
        signer: CheckpointSigner,
        every: u64,
    ) -> Result<(), JournalError> {
        let _ = self.checkpoints.set(Checkpoints {
            signer,
            every: every.max(1),
            since: AtomicU64::new(0),
            by_run: Mutex::new(BTreeMap::new()),
        });
        let Some(cp) = self.checkpoints.get() else {
            return Ok(());
        };
        let head = self.store.head()?;
        if head.seq == 0 {
            return Ok(());
        }
        let last = self.store.read_from(head.seq, None)?;
        if let Some(e) = last.last()
            && matches!(e.record, Record::RunEnded { .. })
        {
            let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
            let written = Written {
                seq: head.seq,
                hash: head.hash,
            };
            self.checkpoint_after(cp, &written, &e.run_id);
        }
        Ok(())
    }

    /// The checkpoint signed at run `run_id`'s end by this process, if any.
    pub fn checkpoint_of(&self, run_id: &str) -> Option<Checkpoint> {
        let cp = self.checkpoints.get()?;
        let by_run = cp.by_run.lock().unwrap_or_else(|p| p.into_inner());
        by_run.get(run_id).cloned()
    }

    /// Signs `last` (the entry just written) and appends the checkpoint,
    /// under the write lock held by the caller. A checkpoint that cannot be
    /// written is logged and tried again with the next write: the entries
    /// it would have covered are durable already.
    fn checkpoint_after(&self, cp: &Checkpoints, last: &Written, run_id: &str) {
        let at_ms = backout_proto::now_ms();
        let checkpoint = cp.signer.sign(last.seq, &last.hash, at_ms);
        let record = Record::Checkpoint(checkpoint.clone());
        let began = Instant::now();
        let new = [NewEntry {
            at_ms,
            run_id,
            record: &record,
        }];
        match self.store.append(&new) {
            Ok(_) => {
                if let Some(observer) = self.observer.get() {
                    observer(&new, began.elapsed());
                }
                cp.since.store(0, Ordering::Relaxed);
                tracing::debug!(seq = last.seq, run = %run_id, "journal checkpoint signed");
                if !run_id.is_empty() {
                    let mut by_run = cp.by_run.lock().unwrap_or_else(|p| p.into_inner());
                    // The last runs' only: a message at a run's end reads it
                    // right away.
                    while by_run.len() >= KEPT_CHECKPOINTS {
                        by_run.pop_first();
                    }
                    by_run.insert(run_id.to_string(), checkpoint);
                }
            }
            Err(e) => {
                if let (JournalError::Fenced { .. }, Some(on_fenced)) = (&e, self.on_fenced.get()) {
                    on_fenced(&e);
                }
                // The next write signs, whatever the count.
                cp.since.store(cp.every, Ordering::Relaxed);
                tracing::error!(error = %e, seq = last.seq, "cannot write a journal checkpoint; trying again with the next write");
            }
        }
    }

    /// With [`FREEZE_ENV`] naming an entry of this write: say so, and hold
    /// the journal forever.
    #[cfg(feature = "test-hooks")]
    fn freeze_if_asked(&self, written: &[Written]) {
        let (Some(frozen), Some(first), Some(last)) =
            (self.freeze_after, written.first(), written.last())
        else {
            return;
        };
        if (first.seq..=last.seq).contains(&frozen) {
            eprintln!(
                "backout: frozen after journal entry {frozen} (written with entries {}..={})",
                first.seq, last.seq
            );
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
    }

    /// Entries of one run (`Some("")`: those outside runs), or all, in order.
    pub fn entries(&self, run_id: Option<&str>) -> Result<Vec<Entry>, JournalError> {
        self.store.read_from(1, run_id)
    }

    /// Entries from `from_seq` on (see [`JournalStore::read_from`]).
    pub fn read_from(
        &self,
        from_seq: i64,
        run_id: Option<&str>,
    ) -> Result<Vec<Entry>, JournalError> {
        self.store.read_from(from_seq, run_id)
    }

    /// The lease epoch this journal is written under (0: no lease, the
    /// single coordinator on SQLite). Every command carries it.
    pub fn epoch(&self) -> u64 {
        self.store.epoch()
    }

    /// Sets what a fenced write does (once; later calls are ignored).
    pub fn on_fenced(&self, f: OnFenced) {
        let _ = self.on_fenced.set(f);
    }

    /// Where the chain ends.
    pub fn head(&self) -> Result<Head, JournalError> {
        self.store.head()
    }

    /// Walks the chain from the first entry; reports the first that does
    /// not match (see `chain.rs` for what that finds).
    pub fn verify(&self) -> Result<Verdict, JournalError> {
        self.store.verify()
    }

    /// Every entry with its hashes, read at one moment (to check
    /// checkpoints: `checkpoint::check`).
    pub fn snapshot(&self) -> Result<Snapshot, JournalError> {
        self.store.snapshot()
    }
}

/// The chain's verdict on a snapshot (`chain::verify_from`).
pub fn chain_verdict(s: &Snapshot) -> Verdict {
    chain::verify_from(&s.base, &s.rows, s.head.as_ref())
}

/// The last entry that can move to an archive with every entry before it,
/// for a cutoff (`backout audit archive --before`): entries older than
/// `cutoff_ms`, of runs that have ended and have no entry after it, so the
/// journal left behind holds every entry of every run it names (a run still
/// going, or one written to after the cutoff, stops the archive before its
/// first entry). 0: nothing can move.
pub fn archivable_upto(entries: &[Entry], cutoff_ms: i64) -> i64 {
    use std::collections::BTreeMap;
    // Each run's last entry, if it ended (i64::MAX: still going).
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for e in entries.iter().filter(|e| !e.run_id.is_empty()) {
        last.insert(&e.run_id, e.seq);
    }
    let ended: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter(|e| matches!(e.record, Record::RunEnded { .. }))
        .map(|e| e.run_id.as_str())
        .collect();
    let mut needed = 0;
    let mut upto = 0;
    for e in entries {
        if e.at_ms >= cutoff_ms {
            break;
        }
        if !e.run_id.is_empty() {
            let run_last = match ended.contains(e.run_id.as_str()) {
                true => last.get(e.run_id.as_str()).copied().unwrap_or(i64::MAX),
                false => i64::MAX,
            };
            needed = needed.max(run_last);
        }
        if needed <= e.seq {
            upto = e.seq;
        }
    }
    upto
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

#[cfg(test)]
mod tests;
