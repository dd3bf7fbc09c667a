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
