//! Nonces already seen, kept in SQLite so a replay is refused even after the
//! agent restarts.
//!
//! A nonce only needs remembering while its command could still pass the
//! expiry check (its `expires_at` plus the clock-skew allowance); after that,
//! expiry refuses a replay on its own, so the row is pruned.

use std::path::Path;
use std::sync::Mutex;

use backout_config::sqlite::{OpenError, open_durable};
use rusqlite::{Connection, params};

#[derive(Debug, thiserror::Error)]
#[error("nonce store {path}: {source}")]
pub struct NonceStoreError {
    path: String,
    #[source]
    source: OpenError,
}

pub struct NonceStore {
    conn: Mutex<Connection>,
    path: String,
}

impl NonceStore {
    /// Opens (creating if needed) `state_dir/agent.db`.
    pub fn open(state_dir: &Path) -> Result<Self, NonceStoreError> {
        let path = state_dir.join("agent.db");
        let display = path.display().to_string();
        let err = |source: OpenError| NonceStoreError {
            path: display.clone(),
            source,
        };
        // Mode 0600, WAL with synchronous=FULL: a nonce is on disk before the
        // command runs.
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
             );",
        )
        .map_err(|e| err(e.into()))?;
        Ok(NonceStore {
            conn: Mutex::new(conn),
            path: display,
        })
    }

    /// Records `nonce` unless it was seen before. Returns `true` when fresh.
    pub fn check_and_record(
        &self,
        nonce: &[u8],
        keep_until_ms: i64,
        now_ms: i64,
    ) -> Result<bool, NonceStoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let err = |source: rusqlite::Error| NonceStoreError {
            path: self.path.clone(),
            source: source.into(),
        };
        conn.execute(
            "DELETE FROM nonces WHERE keep_until_ms < ?1",
            params![now_ms],
        )
        .map_err(err)?;
        let inserted = conn
            .execute(
                "INSERT OR IGNORE INTO nonces (nonce, keep_until_ms) VALUES (?1, ?2)",
                params![nonce, keep_until_ms],
            )
            .map_err(err)?;
        Ok(inserted == 1)
    }
}

impl NonceStore {
    /// Records `epoch` (a coordinator's lease epoch) if it is the highest
    /// seen, durably. `Err(highest)`: a higher one was seen before, so the
    /// command comes from a coordinator that lost its lease.
    pub fn check_epoch(&self, epoch: u64) -> Result<Result<(), u64>, NonceStoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let err = |source: rusqlite::Error| NonceStoreError {
            path: self.path.clone(),
            source: source.into(),
        };
        let tx = conn.transaction().map_err(err)?;
        let highest: i64 = tx
            .query_row("SELECT coalesce(max(highest), 0) FROM epoch", [], |r| {
                r.get(0)
            })
            .map_err(err)?;
        let highest = u64::try_from(highest).unwrap_or(0);
        if epoch < highest {
            return Ok(Err(highest));
        }
        if epoch > highest {
            let stored = i64::try_from(epoch).unwrap_or(i64::MAX);
            tx.execute(
                "INSERT INTO epoch (id, highest) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET highest = ?1",
                params![stored],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_nonce_is_fresh_once_even_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = NonceStore::open(dir.path()).unwrap();
        assert!(store.check_and_record(b"n1", 2_000, 1_000).unwrap());
        assert!(!store.check_and_record(b"n1", 2_000, 1_000).unwrap());
        drop(store);
        let store = NonceStore::open(dir.path()).unwrap();
        assert!(!store.check_and_record(b"n1", 2_000, 1_500).unwrap());
        // Past its keep-until time the row is pruned (expiry refuses it instead).
        assert!(store.check_and_record(b"n1", 4_000, 3_000).unwrap());
    }

    #[test]
    fn a_lower_epoch_is_refused_even_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = NonceStore::open(dir.path()).unwrap();
        assert_eq!(store.check_epoch(0).unwrap(), Ok(()), "no lease yet");
        assert_eq!(store.check_epoch(3).unwrap(), Ok(()));
        assert_eq!(store.check_epoch(3).unwrap(), Ok(()), "the same leader");
        assert_eq!(store.check_epoch(2).unwrap(), Err(3));
        drop(store);
        let store = NonceStore::open(dir.path()).unwrap();
        assert_eq!(store.check_epoch(2).unwrap(), Err(3), "after a restart");
        assert_eq!(store.check_epoch(0).unwrap(), Err(3));
        assert_eq!(store.check_epoch(4).unwrap(), Ok(()));
    }
}
