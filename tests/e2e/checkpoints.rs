//! Signed journal checkpoints through the real binaries (issue 14, item
//! 4): a run's report carries the checkpoint signed at its end; a journal
//! file rewritten with sqlite, every hash and the head recomputed, is
//! reported by `backout audit verify`; a journal cut after its last
//! checkpoint is reported against the checkpoint a report announced.

use std::path::Path;

use backout::journal::entry_hash;
use backout_e2e::fleet::{Fleet, run_id};
use backout_e2e::{bin, run};
use serde_json::Value;

const ONE_STEP: &str = r#"[[phase]]
id = "application"
name = "Application"
[[phase.step]]
id = "echo"
plugin = "testbed"
action = "echo"
on = "app-1"
"#;

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `backout audit verify ARGS`.
fn verify(args: &[&str]) -> std::process::Output {
    run(&bin("backout"), &[&["audit", "verify"], args].concat(), &[])
}

/// What someone with write access to the journal file does with sqlite:
/// `edit` the rows (seq, at_ms, run_id, kind, body), then renumber, relink
/// and rehash every entry and move the head, so that the chain verifies.
fn rewrite(path: &Path, edit: impl FnOnce(&mut Vec<(i64, i64, String, String, String)>)) {
    let db = rusqlite::Connection::open(path).unwrap();
    let mut rows: Vec<(i64, i64, String, String, String)> = db
        .prepare("SELECT seq, at_ms, run_id, kind, body FROM entries ORDER BY seq")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    edit(&mut rows);
    db.execute("DELETE FROM entries", []).unwrap();
    let mut prev = backout::journal::GENESIS.to_string();
    for (i, (_, at_ms, run_id, kind, body)) in rows.iter().enumerate() {
        let seq = i as i64 + 1;
        let hash = entry_hash(seq, *at_ms, run_id, kind, body, &prev);
        db.execute(
            "INSERT INTO entries (seq, at_ms, run_id, kind, body, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![seq, at_ms, run_id, kind, body, prev, hash],
        )
        .unwrap();
        prev = hash;
    }
    db.execute(
        "UPDATE head SET seq = ?1, hash = ?2 WHERE id = 1",
        rusqlite::params![rows.len() as i64, prev],
    )
    .unwrap();
}

/// A copy of the (stopped) coordinator's journal, its write-ahead log
/// folded in first.
fn copy_journal(fleet: &Fleet, to: &Path) {
    let db = rusqlite::Connection::open(fleet.journal()).unwrap();
    db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(db);
    std::fs::copy(fleet.journal(), to).unwrap();
}

/// The checkpoint a run's JSON report announces (`SEQ:HASH`), after
/// checking that the Markdown and HTML reports print it with its signature.
fn announced(fleet: &Fleet, id: &str) -> String {
    let report: Value = serde_json::from_str(&fleet.report(id, "json")).unwrap();
    let c = &report["checkpoint"];
    let announced = format!("{}:{}", c["seq"], c["hash"].as_str().unwrap());
    let signature = c["signature"].as_str().unwrap();
    assert_eq!(signature.len(), 128, "{report}");
    for format in ["md", "html"] {
        let text = fleet.report(id, format);
        assert!(
            text.contains("Journal checkpoint")
                && text.contains(&announced)
                && text.contains(signature),
            "{format}: {text}"
        );
    }
    announced
}

#[tokio::test(flavor = "multi_thread")]
async fn a_journal_rewritten_with_every_hash_recomputed_is_reported_by_its_checkpoints() {
    let mut fleet = Fleet::builder("checkpoint.test")
        .hosts(["app-1"])
        .plan(ONE_STEP)
        .start()
        .await;
    let id = run_id(&fleet.start_run("dave", &["--reason", "the first run"]));
    fleet.ended(&id).await;
    let first = announced(&fleet, &id);
    let id2 = run_id(&fleet.start_run("dave", &["--reason", "the second run"]));
    fleet.ended(&id2).await;
    let second = announced(&fleet, &id2);
    fleet.kill_coordinator().await;

    let key = fleet.path().join("checkpoint-signing.pub");
    let key = key.to_str().unwrap();
    let config = fleet.path().join("coordinator.toml");
    let config = config.to_str().unwrap();

    // Intact: the signatures verify (the key from the configuration) and
    // the journal holds both announced checkpoints.
    let audit = fleet.audit_verify();
    assert_eq!(audit["signatures_checked"], true, "{audit}");
    assert_eq!(audit["last_checkpoint"], second.as_str(), "{audit}");
    for announced in [&first, &second] {
        let out = verify(&["--config", config, "--checkpoint", announced]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(
            text(&out).contains(&format!(
                "the announced checkpoint {announced} is in the journal"
            )),
            "{}",
            text(&out)
        );
    }

    // Rewritten end to end: the first run's reason changed, every hash and
    // the head recomputed. The chain alone cannot tell; the checkpoints do.
    let rewritten = fleet.path().join("rewritten.db");
    copy_journal(&fleet, &rewritten);
    rewrite(&rewritten, |rows| {
        let created = rows.iter_mut().find(|r| r.3 == "run.created").unwrap();
        created.4 = created.4.replace("the first run", "a quiet Sunday");
    });
    let rewritten = rewritten.to_str().unwrap();
    let out = verify(&["--journal", rewritten, "--key", key]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("BROKEN at entry"), "{}", text(&out));
    assert!(text(&out).contains("checkpoint mismatch"), "{}", text(&out));
    // The announced checkpoint does not match either.
    let out = verify(&["--journal", rewritten, "--checkpoint", &second]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("checkpoint mismatch"), "{}", text(&out));

    // Rewritten with every checkpoint's hash fixed too: its signature
    // does not verify.
    let forged = fleet.path().join("forged.db");
    copy_journal(&fleet, &forged);
    rewrite(&forged, |rows| {
        let created = rows.iter_mut().find(|r| r.3 == "run.created").unwrap();
        created.4 = created.4.replace("the first run", "a quiet Sunday");
        let mut prev = backout::journal::GENESIS.to_string();
        for (i, row) in rows.iter_mut().enumerate() {
            if row.3 == "journal.checkpoint" {
                let mut c: Value = serde_json::from_str(&row.4).unwrap();
                c["hash"] = prev.clone().into();
                row.4 = c.to_string();
            }
            prev = entry_hash(i as i64 + 1, row.1, &row.2, &row.3, &row.4, &prev);
        }
    });
    let out = verify(&["--journal", forged.to_str().unwrap(), "--key", key]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("signature does not verify"),
        "{}",
        text(&out)
    );

    // Cut after the first run's checkpoint: what is left verifies, but not
    // against the checkpoint the second run's report announced.
    let cut = fleet.path().join("cut.db");
    copy_journal(&fleet, &cut);
    let first_seq: i64 = first.split(':').next().unwrap().parse().unwrap();
    rewrite(&cut, |rows| rows.truncate(first_seq as usize + 1));
    let cut = cut.to_str().unwrap();
    let out = verify(&["--journal", cut, "--key", key]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = verify(&["--journal", cut, "--key", key, "--checkpoint", &second]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "the announced checkpoint {second} names entry {}",
            second.split(':').next().unwrap()
        )) && text(&out).contains("entries were cut after it"),
        "{}",
        text(&out)
    );

    // Bad input: exit 2, naming what is wrong.
    let out = verify(&["--journal", cut, "--checkpoint", "42:not-a-hash"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--checkpoint"), "{}", text(&out));
    let out = verify(&["--journal", cut, "--key", config]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--key"), "{}", text(&out));
}
