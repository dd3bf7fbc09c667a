//! Rollback runs end to end: approvals by role slot under each operator's own
//! certificate, phases in order with rolling batches, steps on real agents
//! through the testbed plugin, refusals, and the journal.

use backout_e2e::fleet::run_id;
use backout_e2e::phase;
use backout_e2e::plans::{APP_HOSTS, app_then_database, mark_step, marked_fleet};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_run_waits_for_distinct_approvers_then_runs_its_phases_in_order() {
    let fleet = app_then_database("runs.test").start().await;

    let started = fleet.start_run(
        "dave",
        &["--reason", "5xx at 12%", "--phases", "application,database"],
    );
    let id = run_id(&started);
    assert_eq!(started["status"], "awaiting-approval");
    assert_eq!(
        started["pending_approvals"][0]["roles"],
        json!(["release-manager", "technical-lead"])
    );

    // The starter may not approve their own run.
    let out = fleet.cli("dave", &["approve", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may not approve"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One person, one slot.
    fleet.json(
        "alice",
        &[
            "approve",
            &id,
            "--role",
            "release-manager",
            "--output",
            "json",
        ],
    );
    let out = fleet.cli("alice", &["approve", &id, "--role", "technical-lead"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("distinct person"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing has run while an approval is missing.
    let run = fleet.run_of(&id);
    assert_eq!(run["status"], "awaiting-approval");
    assert_eq!(phase(&run, "application")["hosts_succeeded"], json!([]));

    fleet.approve(&id, &["bob"]);
    let run = fleet
        .wait_run(
            &id,
            "the application phase to pass and the database phase to wait",
            |run| phase(run, "database")["status"] == "awaiting-approval",
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

    for who in ["carol", "bob"] {
        fleet.json(
            who,
            &["approve", &id, "--phase", "database", "--output", "json"],
        );
    }
    let run = fleet
        .wait_run(&id, "the run to succeed", |run| {
            run["status"] == "succeeded"
        })
        .await;
    assert_eq!(phase(&run, "database")["hosts_succeeded"], json!(["app-1"]));
    assert!(run["finished_at_ms"].as_i64().is_some());

    // Everything went through the journal, and it verifies.
    let audit = fleet.audit_verify();
    assert_eq!(audit["intact"], true);
    // created, started, 4 approvals each after its signed statement
    // (`approval.signed`), 5 dispatches + 5 finishes (the run's record of
    // each result), 5 commands + 5 plugin log lines ("echo"), ended, its
    // signed checkpoint: 32.
    assert_eq!(audit["entries"], 32, "{audit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn approving_with_a_role_you_do_not_hold_is_refused_and_the_run_does_not_advance() {
    let fleet = app_then_database("norole.test").start().await;
    let id = run_id(&fleet.start_run(
        "dave",
        &["--reason", "roles", "--phases", "application,database"],
    ));
    let entries = fleet.audit_verify()["entries"].clone();
    let refused = |who: &str, args: &[&str], message: &str| {
        let mut all = vec!["approve", id.as_str()];
        all.extend_from_slice(args);
        let out = fleet.cli(who, &all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{who} {args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("refused by the coordinator: {message}")),
            "{who} {args:?}: {stderr}"
        );
    };
    // carol holds dba only; the run waits for release-manager and technical-lead.
    refused(
        "carol",
        &[],
        "you hold none of the roles still needed here (release-manager, technical-lead); your roles: dba",
    );
    // bob names a role he does not hold.
    refused(
        "bob",
        &["--role", "release-manager"],
        "you do not hold the role release-manager (your roles: technical-lead); still needed here: release-manager, technical-lead",
    );
    // A refusal by a role one does not hold is refused the same way.
    refused(
        "carol",
        &["--refuse", "--why", "not mine to say"],
        "you hold none of the roles still needed here (release-manager, technical-lead); your roles: dba",
    );

    // The run has not moved: the same roles pending, nothing ran, nothing
    // was journaled.
    let run = fleet.run_of(&id);
    assert_eq!(run["status"], "awaiting-approval", "{run}");
    assert_eq!(
        run["pending_approvals"][0]["roles"],
        json!(["release-manager", "technical-lead"]),
        "{run}"
    );
    assert_eq!(phase(&run, "application")["hosts_succeeded"], json!([]));
    assert_eq!(fleet.audit_verify()["entries"], entries);

    // The phase's approvals likewise: dave holds neither dba nor technical-lead.
    fleet.approve(&id, &["alice", "bob"]);
    fleet
        .wait_run(&id, "the database phase to wait", |run| {
            phase(run, "database")["status"] == "awaiting-approval"
        })
        .await;
    refused(
        "dave",
        &["--phase", "database"],
        "you hold none of the roles still needed here (dba, technical-lead); your roles: release-manager",
    );
    let run = fleet.run_of(&id);
    assert_eq!(phase(&run, "database")["status"], "awaiting-approval");
    assert_eq!(phase(&run, "database")["hosts_succeeded"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_phase_fails_the_run_and_abort_stops_one() {
    let fleet = app_then_database("refuse.test").start().await;
    let start = || {
        run_id(&fleet.start_run(
            "dave",
            &["--reason", "drill", "--phases", "application,database"],
        ))
    };
    let id = start();
    fleet.approve(&id, &["alice", "bob"]);
    fleet
        .wait_run(&id, "the database phase to wait", |run| {
            phase(run, "database")["status"] == "awaiting-approval"
        })
        .await;
    let out = fleet.cli(
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
    let run = fleet
        .wait_run(&id, "the run to fail", |run| run["status"] == "failed")
        .await;
    assert_eq!(phase(&run, "database")["status"], "failed");
    assert_eq!(
        phase(&run, "database")["hosts_succeeded"],
        json!([]),
        "a refused phase runs nothing"
    );

    let id = start();
    let aborted = fleet.json("alice", &["abort", &id, "--output", "json"]);
    assert_eq!(aborted["status"], "aborted");
    let out = fleet.cli("bob", &["approve", &id]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an aborted run takes no approvals"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_killed_mid_run_resumes_from_the_journal_and_runs_no_step_twice() {
    // Each host writes a mark before and after a long step: a step run twice
    // would write its mark twice.
    let (builder, marks) = marked_fleet("resume.test", |marks| {
        let mut plan = String::from("[[phase]]\nid = \"application\"\nname = \"App\"\n");
        for host in APP_HOSTS {
            let file = marks.join(format!("{host}.log"));
            plan.push_str(&mark_step(&format!("before-{host}"), host, &file, "before"));
        }
        plan.push_str(
            "[[phase.step]]\nid = \"long\"\nplugin = \"testbed\"\naction = \"sleep\"\non = \"app\"\nparams = { ms = 3000 }\n",
        );
        for host in APP_HOSTS {
            let file = marks.join(format!("{host}.log"));
            plan.push_str(&mark_step(&format!("after-{host}"), host, &file, "after"));
        }
        plan
    });
    let mut fleet = builder
        .approvals(["release-manager", "technical-lead"])
        .start()
        .await;

    let id = run_id(&fleet.start_run("dave", &["--reason", "crash test"]));
    fleet.approve(&id, &["alice", "bob"]);
    // Kill it while the long step runs on both hosts: each agent has
    // logged that it runs it.
    backout_e2e::wait_for(
        "the long step to run on both hosts",
        std::time::Duration::from_secs(20),
        || {
            APP_HOSTS
                .iter()
                .all(|h| {
                    std::fs::read_to_string(fleet.agent_log(h, ""))
                        .unwrap_or_default()
                        .lines()
                        .any(|l| l.contains("running step") && l.contains("/application/long/"))
                })
                .then_some(())
        },
    )
    .await;
    fleet.kill_coordinator().await;

    fleet.start_coordinator(&[]).await;
    let run = fleet
        .wait_run(&id, "the resumed run to succeed", |run| {
            run["status"] == "succeeded"
        })
        .await;
    assert_eq!(
        phase(&run, "application")["hosts_succeeded"],
        json!(["app-1", "app-2"])
    );
    for host in APP_HOSTS {
        let marks = std::fs::read_to_string(marks.join(format!("{host}.log"))).unwrap();
        assert_eq!(
            marks, "before\nafter\n",
            "{host} ran a step twice or missed one"
        );
    }
    assert!(
        fleet
            .coordinator
            .proc
            .log_text()
            .contains("resuming run from the journal")
    );
    let audit = fleet.audit_verify();
    assert_eq!(audit["intact"], true);
}

/// Issue 19: an ended run leaves the coordinator's memory once its last
/// messages are out. `backout runs` still lists it, brief (its phases
/// without their hosts), and `backout runs RUN`, `watch RUN` and
/// `approve RUN` read it from the journal: hosts and all, before and after
/// a restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_with_many_ended_runs_lists_them_and_reads_each_back_from_the_journal() {
    let mut fleet = app_then_database("ended.test").start().await;
    let mut runs: Vec<(String, &str)> = Vec::new();
    for n in 0..8 {
        let reason = format!("run {n}");
        let id =
            run_id(&fleet.start_run("dave", &["--reason", &reason, "--phases", "application"]));
        fleet.approve(&id, &["alice", "bob"]);
        fleet.ended(&id).await;
        runs.push((id, "succeeded"));
    }
    let dry = run_id(&fleet.start_run(
        "dave",
        &["--reason", "dry", "--phases", "application", "--dry-run"],
    ));
    fleet.ended(&dry).await;
    let dry_status = fleet.run_of(&dry)["status"].as_str().unwrap().to_string();
    let aborted = run_id(&fleet.start_run("dave", &["--reason", "aborted"]));
    fleet.json("alice", &["abort", &aborted, "--output", "json"]);
    fleet.ended(&aborted).await;

    // Each ended run left memory: the listing keeps it brief.
    let listed = backout_e2e::wait_for(
        "every ended run to leave memory",
        std::time::Duration::from_secs(30),
        || {
            let listed = fleet.runs();
            let all = listed["runs"].as_array()?;
            (all.len() == 10 && all.iter().all(|r| r["brief"] == true)).then(|| listed.clone())
        },
    )
    .await;
    let check_listing = |listed: &serde_json::Value| {
        let all = listed["runs"].as_array().unwrap();
        let ids: Vec<&str> = all.iter().filter_map(|r| r["run"].as_str()).collect();
        let mut expected: Vec<&str> = runs.iter().map(|(id, _)| id.as_str()).collect();
        expected.extend([dry.as_str(), aborted.as_str()]);
        assert_eq!(ids, expected, "every run, in the order started: {listed}");
        for (r, n) in all.iter().zip(0..) {
            assert!(r["finished_at_ms"].as_i64().is_some(), "{r}");
            assert_eq!(r["started_by"], "dave", "{r}");
            if n < 8 {
                assert_eq!(r["status"], "succeeded", "{r}");
                assert_eq!(r["reason"], format!("run {n}"), "{r}");
                assert_eq!(phase(r, "application")["status"], "succeeded", "{r}");
                assert!(
                    phase(r, "application").get("hosts").is_none(),
                    "a brief run lists no hosts: {r}"
                );
            }
        }
        assert_eq!(all[8]["status"], dry_status.as_str());
        assert_eq!(all[8]["dry_run"], true);
        assert_eq!(all[9]["status"], "aborted");
    };
    check_listing(&listed);

    let check_one = |fleet: &backout_e2e::fleet::Fleet| {
        for (n, (id, status)) in runs.iter().enumerate() {
            let run = fleet.run_of(id);
            assert_eq!(run["run"], id.as_str());
            assert_eq!(run["status"], *status, "{run}");
            assert_eq!(run["reason"], format!("run {n}"), "{run}");
            assert!(run.get("brief").is_none(), "{run}");
            let app = phase(&run, "application");
            assert_eq!(app["hosts_succeeded"], json!(["app-1", "app-2"]), "{run}");
            for host in app["hosts"].as_array().unwrap() {
                assert_eq!(host["state"], "succeeded", "{run}");
                assert_eq!(host["steps_done"], 2, "{run}");
                assert_eq!(host["steps_total"], 2, "{run}");
            }
            assert_eq!(
                run["approvals"],
                json!(["release-manager: alice (run)", "technical-lead: bob (run)"]),
                "{run}"
            );
        }
        assert_eq!(fleet.run_of(&aborted)["status"], "aborted");
        assert_eq!(fleet.run_of(&dry)["status"], dry_status.as_str());
    };
    check_one(&fleet);

    // For people: the phase table with its hosts.
    let first = runs[0].0.as_str();
    let out = fleet.cli("alice", &["runs", first]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SUCCEEDED"), "{text}");
    assert!(text.contains("app-1, app-2"), "{text}");
    // A run nobody started, an ended run to approve or abort.
    let out = fleet.cli("alice", &["runs", "run-1-000000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no run `run-1-000000`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = fleet.cli("bob", &["approve", first]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has ended (succeeded)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = fleet.cli("alice", &["abort", first]);
    assert_eq!(out.status.code(), Some(1), "an ended run is not aborted");
    // `watch` of an ended run: its whole history, then the end.
    let lines = fleet.watch_to_end(first).await;
    let finished = lines
        .iter()
        .filter(|l| l["kind"] == "finished" && l["outcome"] == "succeeded")
        .count();
    assert_eq!(finished, 4, "2 steps on 2 hosts: {lines:?}");
    assert!(lines.iter().any(|l| l["kind"] == "ended"), "{lines:?}");
    let result = lines.last().unwrap();
    assert_eq!(result["kind"], "result", "{lines:?}");

    // A restarted coordinator keeps ended runs out of memory from the start.
    fleet.kill_coordinator().await;
    fleet.start_coordinator(&[]).await;
    fleet.wait_connected(2).await;
    let listed = fleet.runs();
    assert!(
        listed["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["brief"] == true),
        "{listed}"
    );
    check_listing(&listed);
    check_one(&fleet);
}
