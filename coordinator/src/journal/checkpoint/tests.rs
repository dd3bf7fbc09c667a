//! Signed checkpoints against the rewrites the chain alone cannot see: a
//! journal rewritten from an entry on with every hash and the head
//! recomputed, checkpoints removed, a tail cut after the last checkpoint.

use super::*;
use crate::journal::conformance::{ended, signal};
use crate::journal::{Journal, JournalStore, SqliteStore, Verdict, entry_hash};

fn signer() -> CheckpointSigner {
    CheckpointSigner::new(SigningKey::from_bytes(&[7u8; 32]))
}

/// A journal signed every `every` entries: two runs of three signals each,
/// both ended. Returns the checkpoint announced at each run's end.
fn signed_journal(path: &std::path::Path, every: u64) -> (Checkpoint, Checkpoint) {
    let j = Journal::open(path).unwrap();
    j.sign_checkpoints(signer(), every).unwrap();
    let mut announced = Vec::new();
    for run in ["run-1", "run-2"] {
        for i in 1..=3 {
            j.append(i * 10, run, &signal(i)).unwrap();
        }
        j.append(40, run, &ended()).unwrap();
        announced.push(j.checkpoint_of(run).expect("signed at the run's end"));
    }
    (announced[0].clone(), announced[1].clone())
}

/// The journal's checkpoints as `audit verify` checks them.
fn checked(
    path: &std::path::Path,
    key: Option<&CheckpointKey>,
    announced: Option<&Announced>,
) -> Result<Found, (i64, String)> {
    let s = SqliteStore::open(path).unwrap().snapshot().unwrap();
    assert!(
        matches!(crate::journal::chain_verdict(&s), Verdict::Intact { .. }),
        "the chain itself verifies: only checkpoints can tell"
    );
    check(&s.base, &s.rows, key, announced)
}

/// What someone with write access to the file does: edit the rows, then
/// renumber, relink and rehash every one of them and move the head, so
/// that the chain verifies.
fn rewrite(path: &std::path::Path, edit: impl FnOnce(&mut Vec<Row>)) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut rows: Vec<Row> = conn
        .prepare("SELECT seq, at_ms, run_id, kind, body, prev_hash, hash FROM entries ORDER BY seq")
        .unwrap()
        .query_map([], |r| {
            Ok(Row {
                seq: r.get(0)?,
                at_ms: r.get(1)?,
                run_id: r.get(2)?,
                kind: r.get(3)?,
                body: r.get(4)?,
                prev_hash: r.get(5)?,
                hash: r.get(6)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    edit(&mut rows);
    let mut prev = crate::journal::GENESIS.to_string();
    conn.execute("DELETE FROM entries", []).unwrap();
    for (i, r) in rows.iter_mut().enumerate() {
        r.seq = i as i64 + 1;
        r.prev_hash = prev.clone();
        r.hash = entry_hash(r.seq, r.at_ms, &r.run_id, &r.kind, &r.body, &r.prev_hash);
        prev = r.hash.clone();
        conn.execute(
            "INSERT INTO entries (seq, at_ms, run_id, kind, body, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![r.seq, r.at_ms, r.run_id, r.kind, r.body, r.prev_hash, r.hash],
        )
        .unwrap();
    }
    let last = rows.last().unwrap();
    conn.execute(
        "UPDATE head SET seq = ?1, hash = ?2 WHERE id = 1",
        rusqlite::params![last.seq, last.hash],
    )
    .unwrap();
}

#[test]
fn an_intact_signed_journal_verifies_with_its_announced_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let (first, last) = signed_journal(&path, 1000);
    assert_eq!(
        (first.seq, last.seq),
        (4, 9),
        "each right after its run.ended"
    );
    let key = signer().public();
    let announced: Announced = last.announced().parse().unwrap();
    let found = checked(&path, Some(&key), Some(&announced)).unwrap();
    assert_eq!(found.checkpoints, 2);
    assert_eq!(found.last, Some(last.clone()));
    assert_eq!(found.after_last, 0);
    assert_eq!(found.announced, Some(last.announced()));
    // Only the hash is enough too.
    let by_hash: Announced = last.hash.parse().unwrap();
    assert!(checked(&path, Some(&key), Some(&by_hash)).is_ok());
    // The run's end checkpoint is in the run (its report finds it).
    let j = Journal::open(&path).unwrap();
    let run2 = j.entries(Some("run-2")).unwrap();
    assert!(matches!(&run2.last().unwrap().record, Record::Checkpoint(c) if *c == last));
}

#[test]
fn a_checkpoint_is_signed_every_n_entries_besides_runs_ends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let j = Journal::open(&path).unwrap();
    j.sign_checkpoints(signer(), 3).unwrap();
    for i in 1..=7 {
        j.append(i, "", &signal(i)).unwrap();
    }
    // 1 2 3 [4: covers 3] 5 6 7 [8: covers 7]: every 3 entries, the
    // checkpoint itself not counted.
    let kinds: Vec<(i64, bool)> = j
        .entries(None)
        .unwrap()
        .iter()
        .map(|e| (e.seq, matches!(e.record, Record::Checkpoint(_))))
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|(_, c)| *c)
            .map(|(s, _)| *s)
            .collect::<Vec<_>>(),
        [4, 8]
    );
    let found = checked(&path, Some(&signer().public()), None).unwrap();
    assert_eq!(found.checkpoints, 2);
    assert_eq!(found.last.unwrap().seq, 7);
}

#[test]
fn a_chain_rewritten_with_every_hash_and_the_head_recomputed_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    signed_journal(&path, 1000);
    let key = signer().public();
    // Entry 2's value changed, every hash after it and the head recomputed:
    // the chain verifies, the checkpoint that signed entry 4 does not match.
    rewrite(&path, |rows| {
        rows[1].body = rows[1].body.replace("\"2\"", "\"9\"")
    });
    let (seq, reason) = checked(&path, Some(&key), None).unwrap_err();
    assert_eq!(seq, 4);
    assert!(
        reason.starts_with("checkpoint mismatch: checkpoint 5 signed entry 4"),
        "{reason}"
    );
    // Without the key, the hash it signed still tells.
    assert!(
        checked(&path, None, None)
            .unwrap_err()
            .1
            .contains("checkpoint mismatch")
    );
}

#[test]
fn a_checkpoint_edited_to_match_a_rewritten_chain_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    signed_journal(&path, 1000);
    let key = signer().public();
    rewrite(&path, |rows| {
        rows[1].body = rows[1].body.replace("\"2\"", "\"9\"");
        // The rewriter fixes each checkpoint's hash to the new chain's (it
        // cannot sign: it has no key).
        let mut prev = crate::journal::GENESIS.to_string();
        for (i, r) in rows.iter_mut().enumerate() {
            let seq = i as i64 + 1;
            if r.kind == KIND {
                let mut c: Checkpoint = serde_json::from_str(&r.body).unwrap();
                c.hash = prev.clone();
                r.body = serde_json::to_string(&c).unwrap();
            }
            prev = entry_hash(seq, r.at_ms, &r.run_id, &r.kind, &r.body, &prev);
        }
    });
    let (seq, reason) = checked(&path, Some(&key), None).unwrap_err();
    assert_eq!(seq, 5);
    assert!(
        reason.starts_with("checkpoint 5 signature does not verify"),
        "{reason}"
    );
    // Checked against another key, a checkpoint is no better, and the
    // reason names both keys (a wrong key given is the usual cause).
    let other = CheckpointSigner::new(SigningKey::from_bytes(&[8u8; 32])).public();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    signed_journal(&path, 1000);
    let reason = checked(&path, Some(&other), None).unwrap_err().1;
    assert!(
        reason.contains(&format!("names the key {} that signed it", key.key_id()))
            && reason.contains(&format!(
                "not the checkpoint key given ({})",
                other.key_id()
            )),
        "{reason}"
    );
}

#[test]
fn checkpoints_removed_leave_a_runs_end_uncovered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    signed_journal(&path, 1000);
    rewrite(&path, |rows| rows.retain(|r| r.kind != KIND));
    let (seq, reason) = checked(&path, Some(&signer().public()), None).unwrap_err();
    assert_eq!(seq, 8, "run-2's end");
    assert!(
        reason.contains("no signed checkpoint covers it"),
        "{reason}"
    );
}

#[test]
fn a_journal_cut_after_its_last_checkpoint_is_reported_against_the_announced_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let (first, last) = signed_journal(&path, 1000);
    // Everything after run-1's checkpoint goes, head moved: what is left
    // verifies on its own, checkpoints and all.
    rewrite(&path, |rows| rows.truncate(5));
    let key = signer().public();
    let found = checked(&path, Some(&key), None).unwrap();
    assert_eq!(found.last, Some(first));
    // The checkpoint announced at run-2's end says what is missing.
    let announced: Announced = last.announced().parse().unwrap();
    let (_, reason) = checked(&path, Some(&key), Some(&announced)).unwrap_err();
    assert_eq!(
        reason,
        format!(
            "the announced checkpoint 9:{} names entry 9, but the journal ends at entry 5 (entries were cut after it)",
            last.hash
        )
    );
    let by_hash: Announced = last.hash.parse().unwrap();
    assert!(
        checked(&path, Some(&key), Some(&by_hash))
            .unwrap_err()
            .1
            .contains("no entry of the journal")
    );
}

#[test]
fn a_run_ended_just_before_a_stop_is_signed_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let j = Journal::open(&path).unwrap();
    j.append(10, "run-1", &ended()).unwrap();
    drop(j);
    let j = Journal::open(&path).unwrap();
    j.sign_checkpoints(signer(), 1000).unwrap();
    assert_eq!(j.checkpoint_of("run-1").map(|c| c.seq), Some(1));
    assert!(checked(&path, Some(&signer().public()), None).is_ok());
}

#[test]
fn an_announced_checkpoint_reads_as_seq_and_hash_or_hash() {
    let hash = "ab".repeat(32);
    assert_eq!(
        format!("12:{hash}").parse::<Announced>(),
        Ok(Announced {
            seq: Some(12),
            hash: hash.clone()
        })
    );
    assert_eq!(hash.parse::<Announced>().unwrap().seq, None);
    assert!("x:ab".parse::<Announced>().is_err());
    assert!("12:abc".parse::<Announced>().is_err());
}
