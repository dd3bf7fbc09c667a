//! Crashes: the coordinator SIGKILLed at every journal boundary of a
//! multi-host run in turn, and an agent killed in the middle of a step.
//! Steps count themselves on the agent side (a line appended to a file per
//! step and host), so a step that ran twice shows.

use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use backout_e2e::fleet::{Fleet, run_id};
use backout_e2e::phase;
use backout_e2e::plans::{APP_HOSTS, marked, marked_counts, marked_fleet};
use serde_json::Value;

/// The single run of this coordinator's journal.
fn only_run(fleet: &Fleet) -> Option<Value> {
    fleet.runs()["runs"]
        .as_array()
        .and_then(|r| r.first().cloned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_killed_at_each_journal_boundary_resumes_and_runs_every_step_once() {
    // The first coordinator picks the port; every later one reuses it so
    // the agents find it again.
    let (builder, marks_dir) = marked_fleet("crash.test", |dir| marked(&dir.join("warmup")));
    let mut fleet = builder.state_dir("state-0").start().await;
    fleet.kill_coordinator().await;

    let mut boundaries = 0;
    for n in 1.. {
        let marks = marks_dir.join(format!("run-{n}"));
        fleet.write_plan(&marked(&marks));
        fleet.set_state_dir(&format!("state-{n}"));
        let freeze = n.to_string();
        fleet
            .start_coordinator(&[(backout_e2e::FREEZE_ENV, freeze.as_str())])
            .await;
        fleet.wait_connected(APP_HOSTS.len()).await;
        // Start and approve in the background: either call may hang on the
        // frozen coordinator.
        let mut start = fleet.cli_child(
            "dave",
            &["rollback", "start", "--reason", "crash", "--output", "json"],
        );
        let mut approve = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        let outcome = loop {
            let log = fleet.coordinator.proc.log_text();
            if log.contains("frozen after journal entry") {
                break true;
            }
            if log.contains("run ended") {
                break false;
            }
            if approve.is_none() && matches!(start.try_wait(), Ok(Some(s)) if s.success()) {
                let mut out = String::new();
                let mut stdout = start.stdout.take().unwrap();
                stdout.read_to_string(&mut out).await.unwrap();
                let id = run_id(&serde_json::from_str(&out).unwrap());
                approve = Some(fleet.cli_child("bob", &["approve", &id, "--output", "json"]));
            }
            assert!(
                Instant::now() < deadline,
                "entry {n}: neither frozen nor ended: {log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        fleet.kill_coordinator().await;
        if !outcome {
            // Entry n is past the end of the run: every boundary was tried.
            break;
        }
        boundaries += 1;
        let _ = start.kill().await;
        if let Some(mut a) = approve {
            let _ = a.kill().await;
        }

        fleet.start_coordinator(&[]).await;
        let run = only_run(&fleet).unwrap_or_else(|| panic!("entry {n}: the run is lost"));
        let id = run_id(&run);
        if run["status"] == "awaiting-approval" {
            fleet.approve(&id, &["bob"]);
        }
        let run = fleet
            .wait_run(
                &id,
                &format!("the run resumed after entry {n} to succeed"),
                |run| run["status"] != "running" && run["status"] != "awaiting-approval",
            )
            .await;
        assert_eq!(run["status"], "succeeded", "entry {n}: {run}");
        assert_eq!(
            phase(&run, "application")["hosts_succeeded"],
            serde_json::json!(APP_HOSTS)
        );
        assert_eq!(
            marked_counts(&marks),
            [("stop".into(), 2), ("start".into(), 2), ("check".into(), 1)],
            "killed after entry {n}: a step ran twice or not at all"
        );
        let audit = fleet.audit_verify();
        assert_eq!(audit["intact"], true, "entry {n}: {audit}");
        fleet.kill_coordinator().await;
    }
    eprintln!("the coordinator was killed at {boundaries} boundaries in turn");
    // created, started, approved, 5 × (dispatched, command, finished) and
    // log lines: 19 entries. (Entries written in one transaction, such as
    // a turn's dispatches, freeze at the same point: after all of them.)
    assert!(
        boundaries >= 18,
        "only {boundaries} boundaries were tried (0: was `backout` built without `--features backout/test-hooks`? scripts/test.sh builds it with them)"
    );
}
