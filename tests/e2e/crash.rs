//! Crashes: the coordinator SIGKILLed at every journal boundary of a
//! multi-host run in turn, and an agent killed in the middle of a step.
//! Steps count themselves on the agent side (a line appended to a file per
//! step and host), so a step that ran twice shows.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use backout_e2e::{
    Coordinator, Pki, Proc, agent_config, cli, cli_child, connected_agents, json_of, phase,
    plan_config, run_of, start_agent, wait_for,
};
use serde_json::Value;

pub(crate) const HOSTS: [&str; 2] = ["app-1", "app-2"];

/// Two phases: `application` (two steps on both hosts), then `verify` (one
/// step on app-1). Every step appends its name to `marks`.
pub(crate) fn plan(marks: &Path) -> String {
    let step = |id: &str, on: &str| {
        format!(
            "[[phase.step]]\nid = \"{id}\"\nplugin = \"testbed\"\naction = \"write\"\non = \"{on}\"\nparams = {{ path = \"{}\", contents = \"{id}\\n\", append = true }}\n",
            marks.display()
        )
    };
    format!(
        r#"[plan]
name = "crash e2e"
[[host]]
id = "app-1"
groups = ["app"]
[[host]]
id = "app-2"
groups = ["app"]
[roles]
release-manager = "Release Manager"
technical-lead = "Technical Lead"
[approvals]
run = ["technical-lead"]
[[phase]]
id = "application"
name = "Application Rollback"
{}{}[[phase]]
id = "verify"
name = "Verification"
after = ["application"]
{}"#,
        step("stop", "app"),
        step("start", "app"),
        step("check", "app-1"),
    )
}

/// A PKI with both agents and the operators dave, bob and alice; the
/// directory the steps' marks go to, and the agents' grant to write there.
pub(crate) fn fleet_pki(domain: &str) -> (Pki, std::path::PathBuf, String) {
    let pki = Pki::new(domain);
    for agent in HOSTS {
        pki.issue("agent", agent);
    }
    for op in ["dave", "bob", "alice"] {
        pki.issue("operator", op);
    }
    let marks_dir = pki.path().join("marks");
    std::fs::create_dir_all(&marks_dir).unwrap();
    let grants = format!("write = [\"{}\"]", marks_dir.display());
    (pki, marks_dir, grants)
}

/// How many times each step ran, from the marks file.
pub(crate) fn counts(marks: &Path) -> Vec<(String, usize)> {
    let text = std::fs::read_to_string(marks).unwrap_or_default();
    ["stop", "start", "check"]
        .iter()
        .map(|s| (s.to_string(), text.lines().filter(|l| l == s).count()))
        .collect()
}

pub(crate) async fn agents(pki: &Pki, addr: &str, grants: &str) -> Vec<Proc> {
    let mut procs = Vec::new();
    for id in HOSTS {
        let path = pki.path().join(format!("{id}.toml"));
        let state = pki.path().join(format!("state-{id}"));
        std::fs::write(&path, agent_config(pki, id, addr, &state, grants)).unwrap();
        procs.push(start_agent(&path, &pki.path().join(format!("{id}.log"))));
    }
    procs
}

/// The single run of this coordinator's journal.
fn only_run(pki: &Pki, addr: &str) -> Option<Value> {
    let runs = json_of(&cli(pki, addr, "alice", &["runs", "--output", "json"]));
    runs["runs"].as_array().and_then(|r| r.first().cloned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_killed_at_each_journal_boundary_resumes_and_runs_every_step_once() {
    let (pki, marks_dir, grants) = fleet_pki("crash.test");

    // The first coordinator picks the port; every later one reuses it so
    // the agents find it again.
    std::fs::write(
        pki.path().join("plan.toml"),
        plan(&marks_dir.join("warmup")),
    )
    .unwrap();
    let mut coordinator = Coordinator::start(pki.path(), &plan_config(&pki, "state-0")).await;
    let addr = coordinator.addr.clone();
    let _agents = agents(&pki, &addr, &grants).await;
    wait_for("agents", Duration::from_secs(30), || {
        (connected_agents(&pki, &addr, "alice").len() == 2).then_some(())
    })
    .await;
    coordinator.proc.kill().await;

    let mut boundaries = 0;
    for n in 1.. {
        let marks = marks_dir.join(format!("run-{n}"));
        std::fs::write(pki.path().join("plan.toml"), plan(&marks)).unwrap();
        let state = format!("state-{n}");
        let freeze = n.to_string();
        let mut frozen = Coordinator::start_with(
            pki.path(),
            &plan_config(&pki, &state),
            &addr,
            &[(backout_e2e::FREEZE_ENV, freeze.as_str())],
        )
        .await;
        wait_for("agents", Duration::from_secs(30), || {
            (connected_agents(&pki, &addr, "alice").len() == 2).then_some(())
        })
        .await;
        // Start and approve in the background: either call may hang on the
        // frozen coordinator.
        let mut start = cli_child(
            &pki,
            &addr,
            "dave",
            &["rollback", "start", "--reason", "crash", "--output", "json"],
        );
        let mut approve = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        let outcome = loop {
            let log = frozen.proc.log_text();
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
                let started: Value = serde_json::from_str(&out).unwrap();
                let id = started["run"].as_str().unwrap().to_string();
                approve = Some(cli_child(
                    &pki,
                    &addr,
                    "bob",
                    &["approve", &id, "--output", "json"],
                ));
            }
            assert!(
                Instant::now() < deadline,
                "entry {n}: neither frozen nor ended: {log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if !outcome {
            // Entry n is past the end of the run: every boundary was tried.
            frozen.proc.kill().await;
            break;
        }
        boundaries += 1;
        frozen.proc.child.start_kill().unwrap();
        frozen.proc.child.wait().await.unwrap();
        let _ = start.kill().await;
        if let Some(mut a) = approve {
            let _ = a.kill().await;
        }

        let mut restarted =
            Coordinator::start_on(pki.path(), &plan_config(&pki, &state), &addr).await;
        let run = only_run(&pki, &addr).unwrap_or_else(|| panic!("entry {n}: the run is lost"));
        let id = run["run"].as_str().unwrap().to_string();
        if run["status"] == "awaiting-approval" {
            json_of(&cli(
                &pki,
                &addr,
                "bob",
                &["approve", &id, "--output", "json"],
            ));
        }
        let run = wait_for(
            &format!("the run resumed after entry {n} to succeed"),
            Duration::from_secs(60),
            || {
                let run = run_of(&pki, &addr, &id);
                (run["status"] != "running" && run["status"] != "awaiting-approval").then_some(run)
            },
        )
        .await;
        assert_eq!(run["status"], "succeeded", "entry {n}: {run}");
        assert_eq!(
            phase(&run, "application")["hosts_succeeded"],
            serde_json::json!(HOSTS)
        );
        assert_eq!(
            counts(&marks),
            [("stop".into(), 2), ("start".into(), 2), ("check".into(), 1)],
            "killed after entry {n}: a step ran twice or not at all"
        );
        let audit = backout_e2e::audit_verify(&pki);
        assert_eq!(audit["intact"], true, "entry {n}: {audit}");
        restarted.proc.kill().await;
    }
    eprintln!("the coordinator was killed at {boundaries} boundaries in turn");
    // created, started, approved, 5 × (dispatched, command, finished) and
    // log lines: 19 entries. (Entries written in one transaction, such as
    // a turn's dispatches, freeze at the same point: after all of them.)
    assert!(boundaries >= 18, "only {boundaries} boundaries were tried");
}
