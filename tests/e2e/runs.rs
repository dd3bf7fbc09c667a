//! Rollback runs end to end: approvals by role slot under each operator's own
//! certificate, phases in order with rolling batches, steps on real agents
//! through the testbed plugin, refusals, and the journal.

use std::time::Duration;

use backout_e2e::{
    Coordinator, Pki, Proc, agent_config, approve_run, cli, connected_agents, json_of, phase,
    run_of, start_agent, wait_for,
};
use serde_json::json;

const PLAN: &str = r#"[plan]
name = "runs e2e"
[[host]]
id = "app-1"
groups = ["app"]
[[host]]
id = "app-2"
groups = ["app"]
[roles]
release-manager = "Release Manager"
technical-lead = "Technical Lead"
dba = "DBA"
[approvals]
run = ["release-manager", "technical-lead"]
[[phase]]
id = "application"
name = "Application Rollback"
rolling = 1
[[phase.step]]
id = "stop"
plugin = "testbed"
action = "echo"
on = "app"
params = { what = "stop" }
[[phase.step]]
id = "start"
plugin = "testbed"
action = "echo"
on = "app"
[[phase]]
id = "database"
name = "Database Rollback"
after = ["application"]
approvals = ["dba", "technical-lead"]
[[phase.step]]
id = "backup"
plugin = "testbed"
action = "echo"
on = "app-1"
"#;

pub(crate) async fn fleet(pki: &Pki) -> (Coordinator, Vec<Proc>) {
    for agent in ["app-1", "app-2"] {
        pki.issue("agent", agent);
    }
    for op in ["dave", "alice", "bob", "carol"] {
        pki.issue("operator", op);
    }
    std::fs::write(pki.path().join("plan.toml"), PLAN).unwrap();
    let config = format!(
        r#"command_key = "{p}/command-signing.key"
plan = "plan.toml"
[tls]
ca = "{p}/ca.pem"
cert = "{p}/coordinator.pem"
key = "{p}/coordinator.key"
[[agent]]
id = "app-1"
[[agent]]
id = "app-2"
[operators]
dave = ["release-manager"]
alice = ["release-manager", "technical-lead"]
bob = ["technical-lead"]
carol = ["dba"]
"#,
        p = pki.path().display()
    );
    let coordinator = Coordinator::start(pki.path(), &config).await;
    let mut agents = Vec::new();
    for id in ["app-1", "app-2"] {
        let path = pki.path().join(format!("{id}.toml"));
        std::fs::write(
            &path,
            agent_config(
                pki,
                id,
                &coordinator.addr,
                &pki.path().join(format!("state-{id}")),
                "",
            ),
        )
        .unwrap();
        agents.push(start_agent(&path, &pki.path().join(format!("{id}.log"))));
    }
    let addr = coordinator.addr.clone();
    wait_for("agents", Duration::from_secs(30), || {
        (connected_agents(pki, &addr, "alice").len() == 2).then_some(())
    })
    .await;
    (coordinator, agents)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_waits_for_distinct_approvers_then_runs_its_phases_in_order() {
    let pki = Pki::new("runs.test");
    let (coordinator, _agents) = fleet(&pki).await;
    let addr = coordinator.addr.clone();

    let started = json_of(&cli(
        &pki,
        &addr,
        "dave",
        &[
            "rollback",
            "start",
            "--reason",
            "5xx at 12%",
            "--phases",
            "application,database",
            "--output",
            "json",
        ],
    ));
    let id = started["run"].as_str().unwrap().to_string();
    assert_eq!(started["status"], "awaiting-approval");
    assert_eq!(
        started["pending_approvals"][0]["roles"],
        json!(["release-manager", "technical-lead"])
    );

    // The starter may not approve their own run.
    let out = cli(&pki, &addr, "dave", &["approve", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may not approve"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One person, one slot.
    json_of(&cli(
        &pki,
        &addr,
        "alice",
        &[
            "approve",
            &id,
            "--role",
            "release-manager",
            "--output",
            "json",
        ],
    ));
    let out = cli(
        &pki,
        &addr,
        "alice",
        &["approve", &id, "--role", "technical-lead"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("distinct person"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing has run while an approval is missing.
    let run = run_of(&pki, &addr, &id);
    assert_eq!(run["status"], "awaiting-approval");
    assert_eq!(phase(&run, "application")["hosts_succeeded"], json!([]));

    json_of(&cli(
        &pki,
        &addr,
        "bob",
        &["approve", &id, "--output", "json"],
    ));
    let run = wait_for(
        "the application phase to pass and the database phase to wait",
        Duration::from_secs(30),
        || {
            let run = run_of(&pki, &addr, &id);
            (phase(&run, "database")["status"] == "awaiting-approval").then_some(run)
        },
    )
    .await;
    assert_eq!(phase(&run, "application")["status"], "succeeded");
    assert_eq!(
        phase(&run, "application")["hosts_succeeded"],
        json!(["app-1", "app-2"])
    );
    assert_eq!(phase(&run, "database")["detail"], "dba + technical-lead");
    assert!(
        run["pending_approvals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["scope"] == "database")
    );

    json_of(&cli(
        &pki,
        &addr,
        "carol",
        &["approve", &id, "--phase", "database", "--output", "json"],
    ));
    json_of(&cli(
        &pki,
        &addr,
        "bob",
        &["approve", &id, "--phase", "database", "--output", "json"],
    ));
    let run = wait_for("the run to succeed", Duration::from_secs(30), || {
        let run = run_of(&pki, &addr, &id);
        (run["status"] == "succeeded").then_some(run)
    })
    .await;
    assert_eq!(phase(&run, "database")["hosts_succeeded"], json!(["app-1"]));
    assert!(run["finished_at_ms"].as_i64().is_some());

    // Everything went through the journal, and it verifies.
    let audit = backout_e2e::audit_verify(&pki);
    assert_eq!(audit["intact"], true);
    // created, started, 4 approvals, 5 dispatches + 5 finishes (the run's
    // record of each result), 5 commands + 5 plugin log lines ("echo"),
    // ended: 27.
    assert_eq!(audit["entries"], 27, "{audit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_phase_fails_the_run_and_abort_stops_one() {
    let pki = Pki::new("refuse.test");
    let (coordinator, _agents) = fleet(&pki).await;
    let addr = coordinator.addr.clone();
    let start = |who: &str| {
        json_of(&cli(
            &pki,
            &addr,
            who,
            &[
                "rollback",
                "start",
                "--reason",
                "drill",
                "--phases",
                "application,database",
                "--output",
                "json",
            ],
        ))["run"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let id = start("dave");
    approve_run(&pki, &addr, &id, &["alice", "bob"]);
    wait_for(
        "the database phase to wait",
        Duration::from_secs(30),
        || {
            (phase(&run_of(&pki, &addr, &id), "database")["status"] == "awaiting-approval")
                .then_some(())
        },
    )
    .await;
    let out = cli(
        &pki,
        &addr,
        "carol",
        &[
            "approve",
            &id,
            "--phase",
            "database",
            "--refuse",
            "--why",
            "no verified backup window",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = wait_for("the run to fail", Duration::from_secs(30), || {
        let run = run_of(&pki, &addr, &id);
        (run["status"] == "failed").then_some(run)
    })
    .await;
    assert_eq!(phase(&run, "database")["status"], "failed");
    assert_eq!(
        phase(&run, "database")["hosts_succeeded"],
        json!([]),
        "a refused phase runs nothing"
    );

    let id = start("dave");
    let aborted = json_of(&cli(
        &pki,
        &addr,
        "alice",
        &["abort", &id, "--output", "json"],
    ));
    assert_eq!(aborted["status"], "aborted");
    let out = cli(&pki, &addr, "bob", &["approve", &id]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an aborted run takes no approvals"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_killed_mid_run_resumes_from_the_journal_and_runs_no_step_twice() {
    let pki = Pki::new("resume.test");
    for agent in ["app-1", "app-2"] {
        pki.issue("agent", agent);
    }
    for op in ["dave", "alice", "bob"] {
        pki.issue("operator", op);
    }
    let marks = pki.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let step = |id: &str, action: &str, params: String| {
        format!(
            "[[phase.step]]\nid = \"{id}\"\nplugin = \"testbed\"\naction = \"{action}\"\non = \"app\"\nparams = {params}\n"
        )
    };
    // Each host writes a mark before and after a long step: a step run twice
    // would write its mark twice.
    let mut plan = PLAN[..PLAN.find("[[phase]]").unwrap()].to_string();
    plan.push_str("[[phase]]\nid = \"application\"\nname = \"App\"\n");
    for host in ["app-1", "app-2"] {
        let file = marks.join(format!("{host}.log"));
        plan.push_str(
            &step(
                &format!("before-{host}"),
                "write",
                format!(
                    "{{ path = \"{}\", contents = \"before\\n\", append = true }}",
                    file.display()
                ),
            )
            .replace("on = \"app\"", &format!("on = \"{host}\"")),
        );
    }
    plan.push_str(&step("long", "sleep", "{ ms = 3000 }".into()));
    for host in ["app-1", "app-2"] {
        let file = marks.join(format!("{host}.log"));
        plan.push_str(
            &step(
                &format!("after-{host}"),
                "write",
                format!(
                    "{{ path = \"{}\", contents = \"after\\n\", append = true }}",
                    file.display()
                ),
            )
            .replace("on = \"app\"", &format!("on = \"{host}\"")),
        );
    }
    std::fs::write(pki.path().join("plan.toml"), plan).unwrap();
    let config = format!(
        "command_key = \"{p}/command-signing.key\"\nplan = \"plan.toml\"\n[tls]\nca = \"{p}/ca.pem\"\ncert = \"{p}/coordinator.pem\"\nkey = \"{p}/coordinator.key\"\n[[agent]]\nid = \"app-1\"\n[[agent]]\nid = \"app-2\"\n[operators]\ndave = [\"release-manager\"]\nalice = [\"release-manager\"]\nbob = [\"technical-lead\"]\n",
        p = pki.path().display()
    );
    let mut coordinator = Coordinator::start(pki.path(), &config).await;
    let addr = coordinator.addr.clone();
    let grants = format!("write = [\"{}\"]", marks.display());
    let mut agents = Vec::new();
    for id in ["app-1", "app-2"] {
        let path = pki.path().join(format!("{id}.toml"));
        std::fs::write(
            &path,
            agent_config(
                &pki,
                id,
                &addr,
                &pki.path().join(format!("state-{id}")),
                &grants,
            ),
        )
        .unwrap();
        agents.push(start_agent(&path, &pki.path().join(format!("{id}.log"))));
    }
    wait_for("agents", Duration::from_secs(30), || {
        (connected_agents(&pki, &addr, "alice").len() == 2).then_some(())
    })
    .await;

    let id = json_of(&cli(
        &pki,
        &addr,
        "dave",
        &[
            "rollback",
            "start",
            "--reason",
            "crash test",
            "--output",
            "json",
        ],
    ))["run"]
        .as_str()
        .unwrap()
        .to_string();
    approve_run(&pki, &addr, &id, &["alice", "bob"]);
    // Kill it while the long step runs on both hosts.
    wait_for("the long step to start", Duration::from_secs(20), || {
        ["app-1", "app-2"]
            .iter()
            .all(|h| {
                std::fs::read_to_string(marks.join(format!("{h}.log")))
                    .is_ok_and(|t| t.contains("before"))
            })
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    coordinator.proc.child.start_kill().unwrap();
    coordinator.proc.child.wait().await.unwrap();

    let config = std::fs::read_to_string(pki.path().join("coordinator.toml"))
        .unwrap()
        .replace("listen = \"127.0.0.1:0\"\n", "");
    let restarted = Coordinator::start_on(pki.path(), &config, &addr).await;
    let run = wait_for(
        "the resumed run to succeed",
        Duration::from_secs(60),
        || {
            let run = run_of(&pki, &addr, &id);
            (run["status"] == "succeeded").then_some(run)
        },
    )
    .await;
    assert_eq!(
        phase(&run, "application")["hosts_succeeded"],
        json!(["app-1", "app-2"])
    );
    for host in ["app-1", "app-2"] {
        let marks = std::fs::read_to_string(marks.join(format!("{host}.log"))).unwrap();
        assert_eq!(
            marks, "before\nafter\n",
            "{host} ran a step twice or missed one"
        );
    }
    assert!(
        restarted
            .proc
            .log_text()
            .contains("resuming run from the journal")
    );
    let audit = backout_e2e::audit_verify(&pki);
    assert_eq!(audit["intact"], true);
}
