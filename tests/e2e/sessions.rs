//! `backout-agent --sessions-from DIR`: one process, one session per identity
//! (the load-testing mode `bench-fanout` uses), each admitted and journaled as
//! its own agent.

use std::time::Duration;

use backout_e2e::{
    Coordinator, Pki, agent_config, cli, connected_agents, start_agent_with, wait_for,
};
use serde_json::Value;

const IDS: [&str; 3] = ["app-1", "app-2", "app-3"];

const PLAN: &str = r#"[plan]
name = "sessions e2e"
[[host]]
id = "app-1"
groups = ["fleet"]
[[host]]
id = "app-2"
groups = ["fleet"]
[[host]]
id = "app-3"
groups = ["fleet"]
[roles]
release-manager = "Release Manager"
[[phase]]
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
    let pki = Pki::new("sessions.test");
    for id in IDS {
        pki.issue("agent", id);
    }
    pki.issue("operator", "alice");
    std::fs::write(pki.path().join("plan.toml"), PLAN).unwrap();
    let mut config = format!(
        r#"command_key = "{p}/command-signing.key"
plan = "plan.toml"
[tls]
ca = "{p}/ca.pem"
cert = "{p}/coordinator.pem"
key = "{p}/coordinator.key"
[operators]
alice = ["release-manager"]
"#,
        p = pki.path().display()
    );
    for id in IDS {
        config.push_str(&format!("[[agent]]\nid = \"{id}\"\n"));
    }
    let coordinator = Coordinator::start(pki.path(), &config).await;
    let addr = coordinator.addr.clone();

    // The configuration names app-1's certificate; --sessions-from ignores it.
    let state = pki.path().join("agent-state");
    let path = pki.path().join("agent.toml");
    std::fs::write(&path, agent_config(&pki, "app-1", &addr, &state, "")).unwrap();
    let agents_dir = pki.path().join("agents");
    let _agent = start_agent_with(
        &path,
        &["--sessions-from", agents_dir.to_str().unwrap()],
        &pki.path().join("agent.log"),
    );
    let mut connected = wait_for("three sessions", Duration::from_secs(30), || {
        let ids = connected_agents(&pki, &addr, "alice");
        (ids.len() == 3).then_some(ids)
    })
    .await;
    connected.sort();
    assert_eq!(connected, IDS);
    for id in IDS {
        assert!(
            state.join(id).join("agent.db").is_file(),
            "{id} has no ledger"
        );
    }

    let out = cli(
        &pki,
        &addr,
        "alice",
        &[
            "rollback", "start", "--reason", "fan-out", "--output", "json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["run"]
        .as_str()
        .unwrap()
        .to_string();
    let run = wait_for("the run to end", Duration::from_secs(30), || {
        let out = cli(&pki, &addr, "alice", &["runs", "--output", "json"]);
        let runs: Value = serde_json::from_slice(&out.stdout).ok()?;
        let run = runs["runs"]
            .as_array()?
            .iter()
            .find(|r| r["run"] == id)?
            .clone();
        run["finished_at_ms"].as_i64().map(|_| run)
    })
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    // Each session passed admission under its own id: the target check
    // refuses a command addressed to another agent.
    assert_eq!(
        run["phases"][0]["hosts_succeeded"],
        serde_json::json!(IDS),
        "{run}"
    );
}
