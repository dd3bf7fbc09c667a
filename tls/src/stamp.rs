//! Knowing a file has not changed without reading it again: its stamp
//! (device, inode, size, modification and change times). Any write, rename
//! over it or metadata change moves the change time, which user space cannot
//! set back. The coordinator's TLS files are reloaded when their stamps move
//! ([`crate::reload`]); the agent hashes a plugin file again only when its
//! stamp moved. Like git's "racily clean" rule, a stamp that stands for the
//! file's content is trusted only once the file has been still for a while
//! ([`FileStamp::settled`]): two writes within one tick of the kernel's
//! coarse clock can leave the same times behind.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a file must have been still before its stamp is trusted.
const SETTLED: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileStamp {
    /// The stamp of the file at `path` now (`None` when it cannot be read).
    pub fn of(path: &Path) -> Option<FileStamp> {
        let m = std::fs::metadata(path).ok()?;
        let ns = |secs: i64, nsec: i64| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
        Some(FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        })
    }

    /// Whether the file had been still for a while when it was stamped.
    pub fn settled(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let last_change = self.mtime_ns.max(self.ctime_ns);
        now - last_change > SETTLED.as_nanos() as i128
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_changes_the_stamp_and_a_fresh_file_is_not_settled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.wasm");
        std::fs::write(&path, b"one").unwrap();
        let first = FileStamp::of(&path).unwrap();
        assert_eq!(FileStamp::of(&path), Some(first), "nothing changed");
        assert!(!first.settled(), "just written");
        // Same size, new content, new inode: the stamp differs.
        let other = dir.path().join("q.wasm");
        std::fs::write(&other, b"two").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_ne!(FileStamp::of(&path), Some(first));
        assert_eq!(FileStamp::of(&dir.path().join("gone")), None);
    }
}
