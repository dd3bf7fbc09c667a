//! One coordinator per journal: a second `backout serve` on the same state
//! directory exits at start, naming the lock and the process holding it,
//! while the first keeps serving and `backout audit verify` still reads its
//! journal.

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
