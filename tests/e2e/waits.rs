//! No silent waits (issue 17, item 7): a step whose host's agent is not
//! connected is waited for in the open (`runs`, `watch`) and only as long as
//! its phase's `time_limit`; a dry run never waits for an absent host; a
//! dry run with a failed step is a failed dry run.

use backout_e2e::fleet::{Fleet, run_id};
use backout_e2e::phase;
use backout_e2e::plans::APP_HOSTS;
use serde_json::Value;

/// One phase over app-1 and app-2 with a 3 s time limit; only app-1's
/// agent runs.
fn one_agent_missing(domain: &str, fragment: &str) -> backout_e2e::fleet::FleetBuilder {
    Fleet::builder(domain)
        .hosts(APP_HOSTS)
        .group("app", APP_HOSTS)
        .agents(["app-1"])
        .approvals(["technical-lead"])
        .plan(fragment)
}

const LIMITED: &str = r#"[[phase]]
id = "application"
name = "Application Rollback"
time_limit = "3s"
[[phase.step]]
id = "stop"
plugin = "testbed"
action = "echo"
on = "app"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn an_absent_host_is_awaited_in_the_open_for_its_phase_time_limit_only() {
    let fleet = one_agent_missing("absent.test", LIMITED).start().await;
    let id = run_id(&fleet.start_run("dave", &["--reason", "absent host"]));
    let mut watcher = fleet.watcher("alice", &id);
    watcher.subscribed().await;
    fleet.approve(&id, &["bob"]);

    // While it waits, `runs` says whom for and since when.
    let waiting = fleet
        .wait_run(&id, "the run to wait for app-2", |run| {
            run["awaited"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    let awaited = &waiting["awaited"][0];
    assert_eq!(awaited["host"], "app-2", "{waiting}");
    assert_eq!(awaited["phase"], "application");
    assert!(awaited["since_ms"].as_i64().unwrap() >= waiting["started_at_ms"].as_i64().unwrap());
    assert!(
        awaited["why"].as_str().unwrap().contains("not connected"),
        "{awaited}"
    );
    let text = fleet.cli("alice", &["runs"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("app-2 (agent not connected since "),
        "runs says nothing of app-2:\n{text}"
    );

    // The phase's time limit ends the wait (not the 10-minute step time),
    // and the run ends with its phase: never running with a failed phase.
    let run = fleet.ended(&id).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(phase(&run, "application")["status"], "timed-out", "{run}");
    assert_eq!(
        phase(&run, "application")["hosts_unreachable"],
        serde_json::json!(["app-2"]),
        "{run}"
    );
    assert_eq!(run["awaited"], serde_json::json!([]), "{run}");

    // The watcher was told, as it happened.
    let lines = watcher.to_end().await;
    let told: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "awaiting").collect();
    assert_eq!(told.len(), 1, "{lines:#?}");
    assert_eq!(told[0]["host"], "app-2");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_does_not_wait_for_an_absent_host_and_fails() {
    // No time limit: a real run would wait minutes for app-2.
    let plan = LIMITED.replace("time_limit = \"3s\"\n", "");
    let fleet = one_agent_missing("absentdry.test", &plan).start().await;

    let out = fleet.cli(
        "dave",
        &["rollback", "start", "--reason", "rehearsal", "--dry-run"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("DRY RUN FAILED"), "{text}");
    assert!(
        text.contains(
            "UNREACHABLE: agent `app-2` is not connected; a dry run does not wait for it"
        ),
        "{text}"
    );
    // app-1 was still asked.
    assert!(text.contains("app-1\n"), "{text}");

    // `runs` marks the dry run, and its report names no outage.
    let runs = fleet.cli("alice", &["runs"]);
    let runs = String::from_utf8_lossy(&runs.stdout);
    assert!(runs.contains("failed (dry run)"), "{runs}");
    let id = fleet.runs()["runs"][0]["run"].as_str().unwrap().to_string();

    // A real run says at its start which of its hosts are not connected.
    let real = fleet.cli("dave", &["rollback", "start", "--reason", "for real"]);
    let real = String::from_utf8_lossy(&real.stdout);
    assert!(
        real.contains("not connected now: app-2 (never connected)"),
        "{real}"
    );
    assert!(!real.contains("not connected now: app-1"), "{real}");
    for format in ["md", "html", "json"] {
        let report = fleet.cli("alice", &["report", &id, "--format", format]);
        assert_eq!(report.status.code(), Some(0));
        let report = String::from_utf8_lossy(&report.stdout).to_lowercase();
        assert!(!report.contains("outage"), "{format}: {report}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_whose_steps_failed_and_were_passed_over_has_failed() {
    let plan = r#"[[phase]]
id = "application"
name = "Application Rollback"
[[phase.step]]
id = "check"
plugin = "testbed"
action = "panic"
on = "app"
on_failure = "continue"
"#;
    let fleet = Fleet::builder("dryfail.test")
        .hosts(APP_HOSTS)
        .group("app", APP_HOSTS)
        .approvals(["technical-lead"])
        .plan(plan)
        .start()
        .await;
    let out = fleet.cli(
        "dave",
        &[
            "rollback",
            "start",
            "--reason",
            "rehearsal",
            "--dry-run",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"], "failed", "{doc}");
    assert_eq!(doc["hosts"]["app-1"][0]["outcome"], "failed", "{doc}");
    let id = doc["run"].as_str().unwrap();
    assert_eq!(fleet.run_of(id)["status"], "failed");
    assert_eq!(fleet.run_of(id)["dry_run"], true);
}

/// Without a `time_limit`, an absent host is waited for the documented
/// default (two minutes; shortened here through the test hook), then the
/// step is unreachable and the run ends.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_time_limit_an_absent_host_is_waited_for_the_default_then_given_up() {
    let plan = LIMITED.replace("time_limit = \"3s\"\n", "");
    let mut fleet = one_agent_missing("absentdefault.test", &plan).start().await;
    fleet.kill_coordinator().await;
    fleet
        .start_coordinator(&[("BACKOUT_TEST_ABSENT_WAIT_MS", "2000")])
        .await;
    fleet.wait_connected(1).await;
    let id = fleet.start_approved(&["--reason", "absent, no limit"]);
    let run = fleet.ended(&id).await;
    assert_eq!(run["status"], "failed", "{run}");
    let app = phase(&run, "application");
    assert_eq!(app["status"], "failed", "{run}");
    assert_eq!(
        app["hosts_unreachable"],
        serde_json::json!(["app-2"]),
        "{run}"
    );
    assert!(
        app["detail"]
            .as_str()
            .unwrap()
            .contains("waited 2.0 s for it (the phase has no time_limit)"),
        "{run}"
    );
}
