//! How hosts end: succeeded, timed out, unreachable, or unknown because the
//! agent died mid-step, and that an uncertain step is never run again.

use std::time::Duration;

use backout_e2e::fleet::{Fleet, FleetBuilder};
use backout_e2e::{FREEZE_AGENT_ADMIT_ENV, phase, wait_for};
use serde_json::{Value, json};

const HOSTS: [&str; 3] = ["app-1", "app-2", "app-3"];

/// Hosts app-1 to app-3, run approval by technical-lead (bob), and the
/// plan's one phase; its steps follow.
fn fleet(domain: &str, steps: &str) -> FleetBuilder {
    Fleet::builder(domain)
        .name("outcomes e2e")
        .hosts(HOSTS)
        .approvals(["technical-lead"])
        .plan(&format!(
            "[[phase]]\nid = \"application\"\nname = \"Application Rollback\"\n{steps}"
        ))
}

fn start_approved(fleet: &Fleet) -> String {
    fleet.start_approved(&["--reason", "outcomes"])
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_are_reported_as_succeeded_timed_out_or_unreachable() {
    // Each host has its own step: app-1 echoes, app-2 sleeps past its
    // 1 s timeout, app-3 has no agent at all.
    let steps = r#"[[phase.step]]
id = "quick"
plugin = "testbed"
action = "echo"
on = "app-1"
[[phase.step]]
id = "slow"
plugin = "testbed"
action = "sleep"
on = "app-2"
params = { ms = 5000 }
timeout = "1s"
[[phase.step]]
id = "gone"
plugin = "testbed"
action = "echo"
on = "app-3"
timeout = "1s"
"#;
    let fleet = fleet("outcomes.test", steps)
        .agents(["app-1", "app-2"])
        .start()
        .await;
    let id = start_approved(&fleet);
    let run = fleet.ended(&id).await;
    assert_eq!(run["status"], "failed");
    let app = phase(&run, "application");
    assert_eq!(app["status"], "failed");
    assert_eq!(app["hosts_succeeded"], json!(["app-1"]), "{app}");
    assert_eq!(app["hosts_timed_out"], json!(["app-2"]), "{app}");
    assert_eq!(app["hosts_unreachable"], json!(["app-3"]), "{app}");
    assert_eq!(app["hosts_failed"], json!([]), "{app}");
    let hosts = app["hosts"].as_array().unwrap();
    let app3 = hosts.iter().find(|h| h["host"] == "app-3").unwrap();
    assert!(
        app3["detail"].as_str().unwrap().contains("not connected"),
        "{app3}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_killed_mid_step_is_reported_and_its_step_never_runs_twice() {
    // A retrying step: a real failure would be tried again, an unknown
    // outcome must not be.
    let steps = "[[phase.step]]\nid = \"long\"\nplugin = \"testbed\"\naction = \"sleep\"\non = \"app-1\"\nparams = { ms = 4000 }\non_failure = \"retry\"\nretries = 2\nbackoff = \"1s\"\ntimeout = \"30s\"\n";
    let mut fleet = fleet("agentdeath.test", steps)
        .agents(["app-1"])
        .start()
        .await;
    let id = start_approved(&fleet);
    let first_log = fleet.agent_log("app-1", "");
    wait_for("the step to start", Duration::from_secs(20), || {
        std::fs::read_to_string(&first_log)
            .is_ok_and(|t| t.contains("running step"))
            .then_some(())
    })
    .await;
    fleet.kill_agent("app-1").await;

    // While the agent is gone the run says so and keeps the host running.
    let host = wait_for(
        "the host to show as waiting",
        Duration::from_secs(10),
        || {
            let run = fleet.run_of(&id);
            let host = phase(&run, "application")["hosts"][0].clone();
            (host["state"] == "running").then_some(host)
        },
    )
    .await;
    assert_eq!(host["host"], "app-1");
    // It comes back once the coordinator has seen it gone.
    wait_for("the agent to be gone", Duration::from_secs(20), || {
        (!fleet.connected().iter().any(|a| a == "app-1")).then_some(())
    })
    .await;
    fleet.start_agent("app-1", "second");

    let run = fleet.ended(&id).await;
    assert_eq!(run["status"], "failed");
    let app = phase(&run, "application");
    assert_eq!(app["hosts_unknown"], json!(["app-1"]), "{app}");
    assert!(
        app["hosts"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("outcome is unknown"),
        "{app}"
    );
    let runs_of = |log: &str| {
        std::fs::read_to_string(fleet.agent_log("app-1", log))
            .unwrap_or_default()
            .matches("running step")
            .count()
    };
    assert_eq!(runs_of("") + runs_of("second"), 1, "the step ran once");
    // One attempt only, though the step allows retries.
    let dispatched = fleet
        .watch_to_end(&id)
        .await
        .iter()
        .filter(|l| l["kind"] == "dispatched")
        .count();
    assert_eq!(dispatched, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_killed_between_the_nonce_and_the_ledger_write_runs_the_step_once_when_back() {
    // Admission records the nonce and the step's ledger row in one
    // transaction. The agent is killed after writing the nonce and before
    // the step: neither is on disk, so the step asked again when the agent
    // is back runs, once (had the nonce alone been kept, the same command
    // asked again would be refused as a replay; had the step alone, it
    // would be "interrupted" without ever having run).
    let steps = "[[phase.step]]\nid = \"once\"\nplugin = \"testbed\"\naction = \"sleep\"\non = \"app-1\"\nparams = { ms = 10 }\ntimeout = \"60s\"\n";
    let mut fleet = fleet("admitfreeze.test", steps).no_agents().start().await;
    fleet.start_agent_with_env("app-1", "", &[(FREEZE_AGENT_ADMIT_ENV, "1")]);
    fleet.wait_connected(1).await;
    let id = start_approved(&fleet);
    let first_log = fleet.agent_log("app-1", "");
    wait_for(
        "the agent to freeze inside admission",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&first_log)
                .is_ok_and(|t| t.contains(FREEZE_AGENT_ADMIT_ENV))
                .then_some(())
        },
    )
    .await;
    fleet.kill_agent("app-1").await;

    let db = rusqlite::Connection::open(fleet.path().join("state-app-1/agent.db")).unwrap();
    let count = |table: &str| -> i64 {
        db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count("nonces"), 0, "the nonce was not committed alone");
    assert_eq!(count("steps"), 0, "the step was not begun");
    drop(db);

    wait_for("the agent to be gone", Duration::from_secs(20), || {
        (!fleet.connected().iter().any(|a| a == "app-1")).then_some(())
    })
    .await;
    fleet.start_agent("app-1", "second");
    let run = fleet.ended(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let runs_of = |log: &str| {
        std::fs::read_to_string(fleet.agent_log("app-1", log))
            .unwrap_or_default()
            .matches("running step")
            .count()
    };
    assert_eq!(runs_of(""), 0, "nothing ran before the kill");
    assert_eq!(
        runs_of("second"),
        1,
        "the step ran once when the agent was back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_batches_stop_at_the_first_failed_batch_and_the_journal_shows_tampering() {
    // One host at a time; the step fails (the plugin panics) on the first.
    let steps = "rolling = 1\n[[phase.step]]\nid = \"boom\"\nplugin = \"testbed\"\naction = \"panic\"\non = \"app\"\n";
    let fleet = fleet("rolling.test", steps)
        .group("app", ["app-1", "app-2"])
        .agents(["app-1", "app-2"])
        .start()
        .await;
    let id = start_approved(&fleet);
    let run = fleet.ended(&id).await;
    let app = phase(&run, "application");
    assert_eq!(app["status"], "failed");
    assert_eq!(app["hosts_failed"], json!(["app-1"]), "{app}");
    let app2 = app["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "app-2")
        .unwrap();
    assert_eq!(app2["state"], "pending", "the second batch never started");
    assert_eq!(app2["steps_done"], 0);

    // The journal verifies; an edited, a removed and a reordered entry do not.
    let intact = fleet.audit_verify();
    assert_eq!(intact["intact"], true);
    let journal = fleet.journal();
    for (what, sql) in [
        (
            "edited",
            "UPDATE entries SET body = replace(body, 'app-1', 'app-2') WHERE kind = 'run.finished'",
        ),
        (
            "removed",
            "DELETE FROM entries WHERE kind = 'run.dispatched'",
        ),
        (
            "reordered",
            "UPDATE entries SET seq = -seq WHERE seq IN (3, 4); UPDATE entries SET seq = 7 + seq WHERE seq IN (-3, -4)",
        ),
    ] {
        let copy = fleet.path().join(format!("{what}.db"));
        std::fs::copy(&journal, &copy).unwrap();
        // Recent entries may still be in the write-ahead log.
        let wal = fleet.path().join("state/journal.db-wal");
        if wal.exists() {
            std::fs::copy(&wal, fleet.path().join(format!("{what}.db-wal"))).unwrap();
        }
        rusqlite::Connection::open(&copy)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        let out = fleet.cli(
            "alice",
            &[
                "audit",
                "verify",
                "--journal",
                copy.to_str().unwrap(),
                "--output",
                "json",
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{what}");
        let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(verdict["intact"], false, "{what}: {verdict}");
        assert!(
            verdict["first_bad_entry"].as_i64().is_some(),
            "{what}: {verdict}"
        );
    }
}
