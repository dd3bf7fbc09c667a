//! How hosts end: succeeded, timed out, unreachable, or unknown because the
//! agent died mid-step, and that an uncertain step is never run again.

use std::time::Duration;

use backout_e2e::{
    Coordinator, Pki, Proc, agent_config, cli, cli_child, connected_agents, json_of, phase,
    plan_config, run_of, start_agent, wait_for,
};
use serde_json::{Value, json};

/// A coordinator with `plan` (run approval by bob, technical-lead) and agents
/// for `running` of the plan's hosts.
pub(crate) async fn fleet(pki: &Pki, plan: &str, running: &[&str]) -> (Coordinator, Vec<Proc>) {
    for host in ["app-1", "app-2", "app-3"] {
        pki.issue("agent", host);
    }
    for op in ["dave", "bob", "alice"] {
        pki.issue("operator", op);
    }
    std::fs::write(pki.path().join("plan.toml"), plan).unwrap();
    let config = plan_config(pki, "state");
    let coordinator = Coordinator::start(pki.path(), &config).await;
    let mut agents = Vec::new();
    for id in running {
        agents.push(agent(pki, id, &coordinator.addr, "first"));
    }
    let addr = coordinator.addr.clone();
    wait_for("agents", Duration::from_secs(30), || {
        (connected_agents(pki, &addr, "alice").len() == running.len()).then_some(())
    })
    .await;
    (coordinator, agents)
}

fn agent(pki: &Pki, id: &str, addr: &str, log: &str) -> Proc {
    let path = pki.path().join(format!("{id}.toml"));
    let state = pki.path().join(format!("state-{id}"));
    std::fs::write(&path, agent_config(pki, id, addr, &state, "")).unwrap();
    start_agent(&path, &pki.path().join(format!("{id}-{log}.log")))
}

const HEAD: &str = r#"[plan]
name = "outcomes e2e"
[[host]]
id = "app-1"
[[host]]
id = "app-2"
[[host]]
id = "app-3"
[roles]
release-manager = "Release Manager"
technical-lead = "Technical Lead"
[approvals]
run = ["technical-lead"]
[[phase]]
id = "application"
name = "Application Rollback"
"#;

pub(crate) fn start_approved(pki: &Pki, addr: &str) -> String {
    let started = json_of(&cli(
        pki,
        addr,
        "dave",
        &[
            "rollback", "start", "--reason", "outcomes", "--output", "json",
        ],
    ));
    let id = started["run"].as_str().unwrap().to_string();
    json_of(&cli(
        pki,
        addr,
        "bob",
        &["approve", &id, "--output", "json"],
    ));
    id
}

pub(crate) async fn ended(pki: &Pki, addr: &str, id: &str) -> Value {
    wait_for("the run to end", Duration::from_secs(60), || {
        let run = run_of(pki, addr, id);
        run["finished_at_ms"].as_i64().map(|_| run)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_are_reported_as_succeeded_timed_out_or_unreachable() {
    let pki = Pki::new("outcomes.test");
    // Each host has its own step: app-1 echoes, app-2 sleeps past its
    // 1 s timeout, app-3 has no agent at all.
    let plan = HEAD.to_string()
        + r#"[[phase.step]]
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
    let (coordinator, _agents) = fleet(&pki, &plan, &["app-1", "app-2"]).await;
    let addr = coordinator.addr.clone();
    let id = start_approved(&pki, &addr);
    let run = ended(&pki, &addr, &id).await;
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
    let pki = Pki::new("agentdeath.test");
    // A retrying step: a real failure would be tried again, an unknown
    // outcome must not be.
    let plan = format!(
        "{HEAD}[[phase.step]]\nid = \"long\"\nplugin = \"testbed\"\naction = \"sleep\"\non = \"app-1\"\nparams = {{ ms = 4000 }}\non_failure = \"retry\"\nretries = 2\nbackoff = \"1s\"\ntimeout = \"30s\"\n"
    );
    let (coordinator, mut agents) = fleet(&pki, &plan, &["app-1"]).await;
    let addr = coordinator.addr.clone();
    let id = start_approved(&pki, &addr);
    let first_log = pki.path().join("app-1-first.log");
    wait_for("the step to start", Duration::from_secs(20), || {
        std::fs::read_to_string(&first_log)
            .is_ok_and(|t| t.contains("running step"))
            .then_some(())
    })
    .await;
    agents[0].child.start_kill().unwrap();
    agents[0].child.wait().await.unwrap();

    // While the agent is gone the run says so and keeps the host running.
    let host = wait_for(
        "the host to show as waiting",
        Duration::from_secs(10),
        || {
            let run = run_of(&pki, &addr, &id);
            let host = phase(&run, "application")["hosts"][0].clone();
            (host["state"] == "running").then_some(host)
        },
    )
    .await;
    assert_eq!(host["host"], "app-1");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _back = agent(&pki, "app-1", &addr, "second");

    let run = ended(&pki, &addr, &id).await;
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
        std::fs::read_to_string(pki.path().join(log))
            .unwrap_or_default()
            .matches("running step")
            .count()
    };
    assert_eq!(
        runs_of("app-1-first.log") + runs_of("app-1-second.log"),
        1,
        "the step ran once"
    );
    // One attempt only, though the step allows retries.
    let watch = cli_child(&pki, &addr, "alice", &["watch", &id, "--output", "json"]);
    let out = watch.wait_with_output().await.unwrap();
    let dispatched = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"kind\":\"dispatched\""))
        .count();
    assert_eq!(dispatched, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_batches_stop_at_the_first_failed_batch_and_the_journal_shows_tampering() {
    let pki = Pki::new("rolling.test");
    // One host at a time; the step fails (the plugin panics) on the first.
    let plan = HEAD.replace(
        "[[host]]\nid = \"app-1\"\n[[host]]\nid = \"app-2\"\n",
        "[[host]]\nid = \"app-1\"\ngroups = [\"app\"]\n[[host]]\nid = \"app-2\"\ngroups = [\"app\"]\n",
    ) + "rolling = 1\n[[phase.step]]\nid = \"boom\"\nplugin = \"testbed\"\naction = \"panic\"\non = \"app\"\n";
    let (coordinator, _agents) = fleet(&pki, &plan, &["app-1", "app-2"]).await;
    let addr = coordinator.addr.clone();
    let id = start_approved(&pki, &addr);
    let run = ended(&pki, &addr, &id).await;
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
    let intact = backout_e2e::audit_verify(&pki);
    assert_eq!(intact["intact"], true);
    let journal = pki.path().join("state/journal.db");
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
        let copy = pki.path().join(format!("{what}.db"));
        std::fs::copy(&journal, &copy).unwrap();
        // Recent entries may still be in the write-ahead log.
        let wal = pki.path().join("state/journal.db-wal");
        if wal.exists() {
            std::fs::copy(&wal, pki.path().join(format!("{what}.db-wal"))).unwrap();
        }
        rusqlite::Connection::open(&copy)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        let out = cli(
            &pki,
            &addr,
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
