//! What every journal store must do, as checks that panic naming what went
//! wrong: run against SQLite by the unit tests (`tests.rs`) and against a
//! real PostgreSQL by the end-to-end tests (`tests/e2e/ha.rs`), so both
//! stores are held to the same behaviour. `open` opens the same journal
//! each time it is called (reopening is part of the contract); the checks
//! make no assumption about what it already holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use super::checkpoint::{self, Announced, CheckpointSigner};
use super::{Journal, NewEntry, Record, StepEventRecord, Verdict};

/// A record to append: a manual signal set to `n`.
pub fn signal(n: i64) -> Record {
    Record::SignalSet {
        signal: "payments_ok".into(),
        value: n.to_string(),
        by: "alice".into(),
        note: String::new(),
    }
}

/// A record to append: a run that ended.
pub fn ended() -> Record {
    Record::RunEnded {
        status: "succeeded".into(),
        elapsed_ms: 1,
    }
}

/// Every check below, in turn, on one journal.
pub fn check_all(open: &dyn Fn() -> Journal) {
    entries_verify_and_survive_reopening(open);
    a_batch_is_written_in_order_and_chained(open);
    queued_entries_go_first_and_are_told_their_seq(open);
    a_runs_end_is_signed_and_the_checkpoint_verifies(open);
}

/// Entries read back as written, the chain verifies, and a reopened
/// journal carries on from its head.
pub fn entries_verify_and_survive_reopening(open: &dyn Fn() -> Journal) {
    let j = open();
    let base = j.head().unwrap().seq;
    let run = format!("run-reopen-{base}");
    for i in 1..=5 {
        j.append(i * 10, &run, &signal(i)).unwrap();
    }
    assert_eq!(j.verify().unwrap(), Verdict::Intact { entries: base + 5 });
    drop(j);
    let j = open();
    j.append(60, &run, &ended()).unwrap();
    assert_eq!(j.verify().unwrap(), Verdict::Intact { entries: base + 6 });
    let read = j.entries(Some(&run)).unwrap();
    assert_eq!(read.len(), 6);
    assert_eq!(read[0].record, signal(1), "read back as written");
    assert_eq!(read[5].record, ended());
    assert_eq!(j.head().unwrap().seq, base + 6);
}

/// A batch takes consecutive seqs after the head, moves the head to its
/// last entry, and is read back by run and from a seq.
pub fn a_batch_is_written_in_order_and_chained(open: &dyn Fn() -> Journal) {
    let j = open();
    let base = j.head().unwrap().seq;
    let run = format!("run-batch-{base}");
    let (a, b) = (signal(3), signal(4));
    let new = |record| NewEntry {
        at_ms: 30,
        run_id: &run,
        record,
    };
    let written = j.append_all(&[new(&a), new(&b)]).unwrap();
    assert_eq!(
        written.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [base + 1, base + 2]
    );
    assert_eq!(j.head().unwrap().hash, written[1].hash);
    assert!(j.append_all(&[]).unwrap().is_empty());
    assert_eq!(j.append(40, &run, &ended()).unwrap().seq, base + 3);
    assert_eq!(j.verify().unwrap(), Verdict::Intact { entries: base + 3 });
    assert_eq!(j.entries(Some(&run)).unwrap().len(), 3);
    let later = j.read_from(base + 2, None).unwrap();
    assert_eq!(
        later.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [base + 2, base + 3]
    );
}

/// Entries queued with `append_soon` go first with the next write and are
/// told where they went.
pub fn queued_entries_go_first_and_are_told_their_seq(open: &dyn Fn() -> Journal) {
    let j = open();
    let base = j.head().unwrap().seq;
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
    assert_eq!(own.seq, base + 3, "after the two queued entries");
    assert_eq!(*told.lock().unwrap(), [base + 1, base + 2]);
    j.flush().unwrap();
    assert_eq!(j.verify().unwrap(), Verdict::Intact { entries: base + 3 });
}

/// With a checkpoint key, a run's end is followed by a signed checkpoint
/// of it, in the run; the journal's checkpoints verify against the public
/// key, and the announced one is found.
pub fn a_runs_end_is_signed_and_the_checkpoint_verifies(open: &dyn Fn() -> Journal) {
    let signer = CheckpointSigner::new(ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]));
    let key = signer.public();
    let j = open();
    j.sign_checkpoints(signer, 1000).unwrap();
    let base = j.head().unwrap().seq;
    let run = format!("run-checkpoint-{base}");
    j.append(10, &run, &signal(1)).unwrap();
    let end = j.append(20, &run, &ended()).unwrap();
    let c = j.checkpoint_of(&run).expect("signed at the run's end");
    assert_eq!((c.seq, c.hash.as_str()), (end.seq, end.hash.as_str()));
    assert_eq!(
        j.head().unwrap().seq,
        end.seq + 1,
        "the entry after the end"
    );
    let read = j.entries(Some(&run)).unwrap();
    assert_eq!(read.last().unwrap().record, Record::Checkpoint(c.clone()));
    let s = j.snapshot().unwrap();
    let announced: Announced = c.announced().parse().unwrap();
    let found = checkpoint::check(&s.base, &s.rows, Some(&key), Some(&announced))
        .expect("the checkpoints verify");
    assert_eq!(found.last, Some(c));
    assert_eq!(
        j.verify().unwrap(),
        Verdict::Intact {
            entries: base + 3 - s.base.seq
        }
    );
}
