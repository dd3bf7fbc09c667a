//! The journal in front of its store: batches, queued entries, reading back.

use std::sync::{Arc, Mutex};

use super::*;

fn signal(n: i64) -> Record {
    Record::SignalSet {
        signal: "payments_ok".into(),
        value: n.to_string(),
        by: "alice".into(),
        note: String::new(),
    }
}

fn ended() -> Record {
    Record::RunEnded {
        status: "succeeded".into(),
        elapsed_ms: 1,
    }
}

pub(super) fn journal(n: i64) -> (tempfile::TempDir, std::path::PathBuf, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let j = Journal::open(&path).unwrap();
    for i in 1..=n {
        j.append(i * 10, "run-1", &signal(i)).unwrap();
    }
    (dir, path, j)
}

#[test]
fn an_untouched_journal_verifies_and_survives_reopening() {
    let (_dir, path, j) = journal(5);
    assert_eq!(j.verify().unwrap(), Verdict::Intact { entries: 5 });
    drop(j);
    let j = Journal::open(&path).unwrap();
    j.append(60, "run-1", &ended()).unwrap();
    assert_eq!(j.verify().unwrap(), Verdict::Intact { entries: 6 });
    let read = j.entries(Some("run-1")).unwrap();
    assert_eq!(read.len(), 6);
    assert_eq!(read[0].record, signal(1), "read back as written");
    assert_eq!(read[5].record, ended());
    assert_eq!(j.head().unwrap().seq, 6);
}

#[test]
fn a_batch_is_written_in_order_and_chained_like_single_entries() {
    let (_dir, _path, j) = journal(2);
    let (a, b) = (signal(3), signal(4));
    let new = |record| NewEntry {
        at_ms: 30,
        run_id: "run-2",
        record,
    };
    let written = j.append_all(&[new(&a), new(&b)]).unwrap();
    assert_eq!(written.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(j.head().unwrap().hash, written[1].hash);
    assert!(j.append_all(&[]).unwrap().is_empty());
    assert_eq!(j.append(40, "run-2", &ended()).unwrap().seq, 5);
    assert_eq!(j.verify().unwrap(), Verdict::Intact { entries: 5 });
    assert_eq!(j.entries(Some("run-2")).unwrap().len(), 3);
    assert_eq!(
        j.entries(Some("")).unwrap().len(),
        0,
        "nothing outside runs"
    );
    let later = j.read_from(4, None).unwrap();
    assert_eq!(later.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
}

#[test]
fn queued_entries_go_first_with_the_next_write_and_are_told_their_seq() {
    let (_dir, _path, j) = journal(1);
    let told = Arc::new(Mutex::new(Vec::new()));
    for n in 0..2 {
        let told = told.clone();
        j.append_soon(
            20,
            "run-1",
            Record::StepEvent(StepEventRecord::Log {
                command_id: "c1".into(),
                log: "info".into(),
                message: n.to_string(),
            }),
            Box::new(move |e| told.lock().unwrap().push(e.seq)),
        );
    }
    assert!(told.lock().unwrap().is_empty(), "not written yet");
    let own = j.append(30, "run-1", &ended()).unwrap();
    assert_eq!(own.seq, 4, "after the two queued entries");
    assert_eq!(*told.lock().unwrap(), [2, 3]);
    j.flush().unwrap();
    assert_eq!(j.verify().unwrap(), Verdict::Intact { entries: 4 });
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
