//! The journal in front of its store: batches, queued entries, reading
//! back (`conformance.rs`, which the PostgreSQL store passes too).

use super::conformance::{ended, signal};
use super::*;

pub(super) fn journal(n: i64) -> (tempfile::TempDir, std::path::PathBuf, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let j = Journal::open(&path).unwrap();
    for i in 1..=n {
        j.append(i * 10, "run-1", &signal(i)).unwrap();
    }
    (dir, path, j)
}

fn sqlite() -> (tempfile::TempDir, impl Fn() -> Journal) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    (dir, move || Journal::open(&path).unwrap())
}

#[test]
fn an_untouched_journal_verifies_and_survives_reopening() {
    let (_dir, open) = sqlite();
    conformance::entries_verify_and_survive_reopening(&open);
}

#[test]
fn a_batch_is_written_in_order_and_chained_like_single_entries() {
    let (_dir, open) = sqlite();
    conformance::a_batch_is_written_in_order_and_chained(&open);
    assert_eq!(
        open().entries(Some("")).unwrap().len(),
        0,
        "nothing outside runs"
    );
}

#[test]
fn queued_entries_go_first_with_the_next_write_and_are_told_their_seq() {
    let (_dir, open) = sqlite();
    conformance::queued_entries_go_first_and_are_told_their_seq(&open);
}

#[test]
fn every_check_passes_in_turn_on_one_journal() {
    let (_dir, open) = sqlite();
    conformance::check_all(&open);
}

#[test]
fn only_ended_runs_older_than_the_cutoff_can_be_archived() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(&dir.path().join("journal.db")).unwrap();
    // seq 1-3: run-1, ended; 4: outside runs; 5: run-2 starts; 6: run-1 again
    // (a message after its end); 7: run-2 ends.
    j.append(10, "run-1", &signal(1)).unwrap();
    j.append(20, "run-1", &ended()).unwrap();
    j.append(30, "run-1", &signal(2)).unwrap();
    j.append(40, "", &signal(3)).unwrap();
    j.append(50, "run-2", &signal(4)).unwrap();
    j.append(60, "run-1", &signal(5)).unwrap();
    j.append(70, "run-2", &ended()).unwrap();
    let entries = j.entries(None).unwrap();
    // run-1 is written to at seq 6: nothing before it can go alone.
    assert_eq!(archivable_upto(&entries, 1_000), 7);
    assert_eq!(
        archivable_upto(&entries, 65),
        0,
        "run-2 has not ended by then"
    );
    assert_eq!(
        archivable_upto(&entries, 35),
        0,
        "run-1's last entry is later"
    );
    j.append(80, "run-3", &signal(6)).unwrap();
    let entries = j.entries(None).unwrap();
    assert_eq!(archivable_upto(&entries, 1_000), 7, "run-3 is still going");
}

#[test]
fn an_archive_and_the_journal_left_both_verify_and_join() {
    let (dir, path, j) = journal(5);
    j.append(60, "run-1", &ended()).unwrap();
    j.append(70, "run-2", &signal(7)).unwrap();
    drop(j);
    let store = SqliteStore::open(&path).unwrap();
    let to = dir.path().join("archive-1.db");
    let base = store.archive(6, &to).unwrap();
    assert_eq!(base.seq, 6);
    assert_eq!(store.base().unwrap(), base);
    assert_eq!(store.verify().unwrap(), Verdict::Intact { entries: 1 });
    let archive = SqliteStore::open(&to).unwrap();
    assert_eq!(archive.verify().unwrap(), Verdict::Intact { entries: 6 });
    assert_eq!(
        archive.head().unwrap(),
        base,
        "the archive ends where the journal starts"
    );
    // The journal goes on from where it was.
    let j = Journal::new(store);
    let written = j.append(80, "run-2", &ended()).unwrap();
    assert_eq!(written.seq, 8);
    assert_eq!(j.verify().unwrap(), Verdict::Intact { entries: 2 });
    assert_eq!(j.entries(None).unwrap()[0].seq, 7);
    // An existing archive file is never overwritten; nothing is left to move.
    drop(j);
    let store = SqliteStore::open(&path).unwrap();
    assert!(store.archive(8, &to).is_err());
    assert!(store.archive(6, &dir.path().join("archive-2.db")).is_err());
    // A second archive continues the first: its base is the first's head.
    let second = dir.path().join("archive-2.db");
    let base2 = store.archive(8, &second).unwrap();
    let archive2 = SqliteStore::open(&second).unwrap();
    assert_eq!(archive2.base().unwrap(), base);
    assert_eq!(archive2.verify().unwrap(), Verdict::Intact { entries: 2 });
    assert_eq!(store.verify().unwrap(), Verdict::Intact { entries: 0 });
    assert_eq!(store.base().unwrap(), base2);
    // An edit in the journal left behind is still found.
    drop(store);
    let j = Journal::open(&path).unwrap();
    j.append(90, "", &signal(9)).unwrap();
    drop(j);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE entries SET body = replace(body, '9', '8') WHERE seq = 9",
        [],
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    assert!(matches!(
        store.verify().unwrap(),
        Verdict::Broken { seq: 9, .. }
    ));
}
