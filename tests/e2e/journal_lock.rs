//! The journal at a coordinator's start. One coordinator per journal: a
//! second `backout serve` on the same state directory exits at start, naming
//! the lock and the process holding it (before it says it is listening),
//! while the first keeps serving and
//! `backout audit verify` still reads its journal. And a journal entry that
//! does not read (a run that lost its dry-run flag) stops the start rather
//! than resume a run as something it was not.

use std::time::Duration;

use backout_e2e::{Coordinator, Pki, audit_verify, bin, cli};

#[tokio::test(flavor = "multi_thread")]
async fn a_second_coordinator_on_the_same_journal_is_refused_at_start() {
    let pki = Pki::new("lock.test");
    pki.issue("operator", "alice");
    let mut first = Coordinator::minimal(&pki).await;
    let first_pid = first.proc.child.id().unwrap();
    let config = pki.path().join("coordinator.toml");

    // The same configuration (so the same state_dir) on another port.
    let second = tokio::process::Command::new(bin("backout"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), second)
        .await
        .expect("the second coordinator kept running on the first one's journal")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another coordinator is using this journal")
            && stderr.contains("journal.lock")
            && stderr.contains(&format!("pid {first_pid}"))
            && stderr.contains("journal.db"),
        "{stderr}"
    );
    // Refused before it opens its port: it never says it is listening.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("listening") && !stderr.contains("listening"),
        "{stdout}{stderr}"
    );

    // The first serves on, and its journal can be verified while it runs.
    let agents = cli(&pki, &first.addr, "alice", &["agents", "--output", "json"]);
    assert!(
        agents.status.success(),
        "{}",
        String::from_utf8_lossy(&agents.stderr)
    );
    assert_eq!(audit_verify(&pki)["intact"], true);

    // Once it is gone, the journal is free.
    first.proc.kill().await;
    let mut next = Coordinator::minimal(&pki).await;
    next.proc.kill().await;
}

/// A journal whose run lost its dry-run flag (its chain intact, as if
/// written so): the coordinator refuses to start, naming the entry and the
/// field, rather than resume the run as a live one without approvals.
#[tokio::test(flavor = "multi_thread")]
async fn a_journal_whose_run_lost_its_dry_run_flag_is_refused_not_resumed() {
    use backout::journal::{GENESIS, Journal, Record, RunCreated, entry_hash};
    use backout_plan::run::RunPlan;

    let pki = Pki::new("lost-flag.test");
    let state = pki.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let path = state.join("journal.db");
    let created = Record::RunCreated(RunCreated {
        reason: "rehearsal".into(),
        to_version: String::new(),
        phases: vec![],
        dry_run: true,
        drill: false,
        by: "dave".into(),
        plan: RunPlan {
            approvals: vec![],
            self_approval: false,
            phases: vec![],
        },
    });
    Journal::open(&path)
        .unwrap()
        .append(1, "run-1", &created)
        .unwrap();
    let (kind, body) = created.encode().unwrap();
    let mut body: serde_json::Value = serde_json::from_str(&body).unwrap();
    body.as_object_mut().unwrap().remove("dry_run");
    let body = body.to_string();
    let hash = entry_hash(1, 1, "run-1", &kind, &body, GENESIS);
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute(
        "UPDATE entries SET body = ?1, hash = ?2 WHERE seq = 1",
        rusqlite::params![body, hash],
    )
    .unwrap();
    db.execute("UPDATE head SET hash = ?1", rusqlite::params![hash])
        .unwrap();
    drop(db);
    assert_eq!(
        audit_verify_at(&path)["intact"],
        true,
        "the chain is intact"
    );

    let config = pki.path().join("coordinator.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ncommand_key = \"{p}/command-signing.key\"\n[tls]\nca = \"{p}/ca.pem\"\ncert = \"{p}/coordinator.pem\"\nkey = \"{p}/coordinator.key\"\n",
            p = pki.path().display()
        ),
    )
    .unwrap();
    let serve = tokio::process::Command::new(bin("backout"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), serve)
        .await
        .expect("the coordinator resumed a run it cannot read")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("entry 1 (run.created)") && stderr.contains("dry_run"),
        "{stderr}"
    );
    // The runs are resumed before the coordinator says it is listening.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("listening") && !stderr.contains("listening"),
        "{stdout}{stderr}"
    );
}

/// `backout audit verify --journal PATH`, as JSON.
fn audit_verify_at(path: &std::path::Path) -> serde_json::Value {
    let out = backout_e2e::run(
        &bin("backout"),
        &[
            "audit",
            "verify",
            "--journal",
            path.to_str().unwrap(),
            "--output",
            "json",
        ],
        &[],
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
