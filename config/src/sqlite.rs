//! Opening an SQLite database the way every Backout database is opened: the
//! agent's `agent.db` (nonces and step ledger) and the coordinator's
//! `journal.db`.
//!
//! * The file is created with mode 0600 before SQLite opens it (never
//!   world-readable, not even for an instant), and an existing file readable
//!   by others is narrowed to 0600. SQLite gives its `-wal` and `-shm` files
//!   the database file's mode.
//! * WAL with `synchronous=FULL`: a write is on disk when the call returns,
//!   so what was recorded (a nonce, a step begun, a journal entry) survives
//!   a power cut before it is acted on.
//! * A busy timeout, so two connections to one file wait for each other
//!   instead of failing at once.

use std::fs::{OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

/// How long a connection waits for another one's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The mode of every database file: read and write for the owner only.
pub const MODE: u32 = 0o600;

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the file with mode 0600: {0}")]
    Create(#[source] std::io::Error),
    #[error("cannot make the file mode 0600: {0}")]
    Mode(#[source] std::io::Error),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Opens (creating if needed) the database at `path`: mode 0600, WAL,
/// `synchronous=FULL`, [`BUSY_TIMEOUT`].
pub fn open_durable(path: &Path) -> Result<Connection, OpenError> {
    restrict(path)?;
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Creates `path` with [`MODE`] if it does not exist; narrows it (and its
/// `-wal` and `-shm` files) to [`MODE`] if others can read it.
///
/// An existing file is never opened here, only changed by path: closing any
/// descriptor of a database file drops every POSIX lock this process holds
/// on it, including those of an SQLite connection already open on it (the
/// agent opens `agent.db` twice). Without its shared lock, another process
/// closing the database believes it is the last user and checkpoints and
/// removes the WAL under the live connection.
fn restrict(path: &Path) -> Result<(), OpenError> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(MODE)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(OpenError::Create(e)),
    }
    let mut companions = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        companions.push(name.into());
    }
    for file in companions {
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&file, Permissions::from_mode(MODE))
                .map_err(OpenError::Mode)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_database_and_its_wal_are_0600_and_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let conn = open_durable(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("x.db-wal")), 0o600);
        let journal: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "FULL");
    }

    #[test]
    fn an_existing_world_readable_database_is_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x);")
            .unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        open_durable(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
    }
}
