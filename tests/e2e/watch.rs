//! Watching runs: several operators follow one run live (JSON lines and
//! plain text), a late watcher gets the whole history, and a dry run prints
//! what each plugin would do on each host.

use backout_e2e::fleet::run_id;
use backout_e2e::phase;
use backout_e2e::plans::app_then_database;
use serde_json::Value;

/// (kind, phase, step, host) of each event line.
fn shape(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| !matches!(l["kind"].as_str(), Some("snapshot" | "result")))
        .map(|l| {
            format!(
                "{} {} {} {}",
                l["kind"].as_str().unwrap_or(""),
                l["phase"].as_str().unwrap_or(""),
                l["step"].as_str().unwrap_or(""),
                l["host"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn count(lines: &[Value], kind: &str) -> usize {
    lines.iter().filter(|l| l["kind"] == kind).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn several_operators_watch_a_run_live_and_a_late_watcher_gets_its_history() {
    let fleet = app_then_database("watch.test").start().await;
    let id = run_id(&fleet.start_run(
        "dave",
        &["--reason", "watch me", "--phases", "application,database"],
    ));
    let (mut first, mut second) = (fleet.watcher("alice", &id), fleet.watcher("bob", &id));
    // Both are subscribed before anything happens: each has its snapshot.
    first.subscribed().await;
    second.subscribed().await;
    fleet.approve(&id, &["alice", "bob"]);
    fleet
        .wait_run(&id, "the database phase to wait", |run| {
            phase(run, "database")["status"] == "awaiting-approval"
        })
        .await;
    for who in ["carol", "bob"] {
        fleet.json(
            who,
            &["approve", &id, "--phase", "database", "--output", "json"],
        );
    }
    let (first, second) = (first.to_end().await, second.to_end().await);

    let snapshot = &first[0];
    assert_eq!(snapshot["kind"], "snapshot");
    assert_eq!(snapshot["run"]["status"], "awaiting-approval");
    assert_eq!(
        snapshot["run"]["pending_approvals"][0]["roles"],
        serde_json::json!(["release-manager", "technical-lead"]),
        "a watcher sees what the run waits for"
    );
    assert_eq!(count(&first, "approved"), 4);
    assert_eq!(count(&first, "dispatched"), 5);
    assert_eq!(
        first
            .iter()
            .filter(|l| l["kind"] == "finished" && l["outcome"] == "succeeded")
            .count(),
        5
    );
    assert!(
        first
            .iter()
            .any(|l| l["kind"] == "log" && l["text"] == "echo" && l["host"] == "app-2"),
        "plugins' log lines reach watchers"
    );
    let stop = first
        .iter()
        .find(|l| l["kind"] == "finished" && l["step"] == "stop")
        .unwrap();
    assert_eq!(
        stop["data"],
        serde_json::json!({ "what": "stop" }),
        "a step's data reaches watchers: {stop}"
    );
    let ended = first.iter().find(|l| l["kind"] == "ended").unwrap();
    assert_eq!(ended["outcome"], "succeeded");
    let result = first.last().unwrap();
    assert_eq!(result["kind"], "result");
    assert_eq!(result["run"]["status"], "succeeded");
    assert_eq!(
        shape(&first),
        shape(&second),
        "both watchers saw the same run"
    );

    // A watcher who comes late gets the history and the result, and stops.
    let late = fleet.watcher("carol", &id).to_end().await;
    assert_eq!(shape(&late), shape(&first));
    // In text, without a terminal: plain lines and the final table.
    let out = fleet.cli("alice", &["watch", &id]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("carol approved database as dba"), "{text}");
    assert!(text.contains("run ended: SUCCEEDED"), "{text}");
    assert!(text.contains("PHASE"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_prints_what_each_plugin_would_do_per_host_without_approvals() {
    let fleet = app_then_database("dry.test").start().await;
    let report = fleet.start_run(
        "dave",
        &[
            "--reason",
            "rehearsal",
            "--phases",
            "application,database",
            "--dry-run",
        ],
    );
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["status"], "succeeded", "{report}");
    let steps = |host: &str| -> Vec<String> {
        report["hosts"][host]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                assert_eq!(s["would"], "echo (dry-run: true)", "{s}");
                assert_eq!(s["plugin_action"], "testbed.echo");
                format!(
                    "{}/{}",
                    s["phase"].as_str().unwrap(),
                    s["step"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        steps("app-1"),
        ["application/stop", "application/start", "database/backup"],
        "in plan order"
    );
    assert_eq!(steps("app-2"), ["application/stop", "application/start"]);

    let out = fleet.cli(
        "dave",
        &["rollback", "start", "--reason", "again", "--dry-run"],
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("DRY RUN SUCCEEDED: nothing was changed"),
        "{text}"
    );
    assert!(text.contains("would: echo (dry-run: true)"), "{text}");
}
