//! `backout-agent --sessions-from DIR`: one process, one session per identity
//! (the load-testing mode `bench-fanout` uses), each admitted and journaled as
//! its own agent.

use std::time::Duration;

use backout_e2e::fleet::{Fleet, run_id};
use backout_e2e::{agent_config, start_agent_with, wait_for};

const IDS: [&str; 3] = ["app-1", "app-2", "app-3"];

const PLAN: &str = r#"[[phase]]
id = "noop"
name = "No-op"
[[phase.step]]
id = "echo"
plugin = "testbed"
action = "echo"
on = "fleet"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn one_process_runs_a_session_per_identity_and_each_runs_its_own_step() {
    let fleet = Fleet::builder("sessions.test")
        .name("sessions e2e")
        .hosts(IDS)
        .group("fleet", IDS)
        .operators(&[("alice", &["release-manager"])])
        .no_agents()
        .plan(PLAN)
        .start()
        .await;

    // The configuration names app-1's certificate; --sessions-from ignores it.
    let state = fleet.path().join("agent-state");
    let path = fleet.path().join("agent.toml");
    std::fs::write(
        &path,
        agent_config(&fleet.pki, "app-1", &fleet.addr, &state, ""),
    )
    .unwrap();
    let agents_dir = fleet.path().join("agents");
    let _agent = start_agent_with(
        &path,
        &["--sessions-from", agents_dir.to_str().unwrap()],
        &fleet.path().join("agent.log"),
    );
    let mut connected = wait_for("three sessions", Duration::from_secs(30), || {
        let ids = fleet.connected();
        (ids.len() == 3).then_some(ids)
    })
    .await;
    connected.sort();
    assert_eq!(connected, IDS);

    let id = run_id(&fleet.start_run("alice", &["--reason", "fan-out"]));
    let run = fleet.ended(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    // Each session passed admission under its own id: the target check
    // refuses a command addressed to another agent.
    assert_eq!(
        run["phases"][0]["hosts_succeeded"],
        serde_json::json!(IDS),
        "{run}"
    );
    // The sessions share one database; each one's step is under its own id.
    let db = rusqlite::Connection::open(state.join("agent.db")).unwrap();
    for id in IDS {
        let done: i64 = db
            .query_row(
                "SELECT count(*) FROM steps WHERE state = 'done' AND step_key LIKE ?1",
                [format!("{id}/%")],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(done, 1, "{id}'s step in the shared ledger");
    }
}
