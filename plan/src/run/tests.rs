use std::time::Duration;

use super::*;

pub(super) const MIN: i64 = 60_000;

pub(super) fn step(id: &str, hosts: &[&str]) -> StepPlan {
    StepPlan {
        id: id.into(),
        plugin: "app".into(),
        action: id.into(),
        params_json: "{}".into(),
        timeout: None,
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        on_failure: OnFailure::Halt,
        retries: 0,
        backoff: Duration::from_secs(5),
    }
}

pub(super) fn phase(id: &str, after: &[&str], steps: Vec<StepPlan>) -> PhasePlan {
    PhasePlan {
        id: id.into(),
        after: after.iter().map(|a| a.to_string()).collect(),
        approvals: vec![],
        time_limit: None,
        rolling: 0,
        steps,
    }
}

pub(super) fn plan(phases: Vec<PhasePlan>) -> RunPlan {
    RunPlan {
        approvals: vec!["release-manager".into(), "technical-lead".into()],
        self_approval: false,
        phases,
    }
}

pub(super) fn approved(run: &mut Run) {
    run.apply(&Event::Started {
        by: "rm".into(),
        at_ms: 0,
    });
    for (role, by) in [("release-manager", "alice"), ("technical-lead", "bob")] {
        run.check_decision(&Scope::Run, role, by, 0).unwrap();
        run.apply(&Event::Approved {
            scope: Scope::Run,
            role: role.into(),
            by: by.into(),
            at_ms: 0,
        });
    }
}

/// Journals the dispatch only: the step is in flight.
pub(super) fn dispatched(run: &mut Run, d: &Dispatch, at_ms: i64) {
    run.apply(&Event::Dispatched {
        phase: d.phase.clone(),
        step: d.step.clone(),
        host: d.host.clone(),
        attempt: d.attempt,
        at_ms,
    });
}

/// Journals the dispatch, then the outcome.
pub(super) fn exec(run: &mut Run, d: &Dispatch, outcome: Outcome, at_ms: i64) {
    dispatched(run, d, at_ms);
    run.apply(&Event::Finished {
        phase: d.phase.clone(),
        step: d.step.clone(),
        host: d.host.clone(),
        attempt: d.attempt,
        outcome,
        at_ms,
    });
}

/// Executes the first due dispatch at `now` with `outcome`.
pub(super) fn exec_next(run: &mut Run, now: i64, outcome: Outcome, at_ms: i64) {
    let d = run.next(now).remove(0);
    exec(run, &d, outcome, at_ms);
}

pub(super) fn names(ds: &[Dispatch]) -> Vec<String> {
    ds.iter()
        .map(|d| format!("{}/{}@{}#{}", d.phase, d.step, d.host, d.attempt))
        .collect()
}

/// Runs every due dispatch successfully until nothing is left.
pub(super) fn drive(run: &mut Run, now: i64) -> Vec<String> {
    let mut done = Vec::new();
    loop {
        let next = run.next(now);
        if next.is_empty() {
            return done;
        }
        done.extend(names(&next));
        for d in next {
            exec(run, &d, Outcome::Succeeded, now);
        }
    }
}

#[test]
fn nothing_runs_until_every_run_role_approved_by_distinct_people() {
    let mut run = Run::new(plan(vec![phase(
        "app",
        &[],
        vec![step("stop", &["app-1"])],
    )]));
    run.apply(&Event::Started {
        by: "carol".into(),
        at_ms: 0,
    });
    assert!(run.next(0).is_empty());
    assert_eq!(
        run.status(0),
        RunStatus::AwaitingApproval(vec!["release-manager".into(), "technical-lead".into()])
    );
    run.apply(&Event::Approved {
        scope: Scope::Run,
        role: "release-manager".into(),
        by: "alice".into(),
        at_ms: 0,
    });
    assert!(run.next(0).is_empty(), "one role is not enough");
    assert_eq!(
        run.check_decision(&Scope::Run, "technical-lead", "alice", 0),
        Err(Rejected::SamePerson {
            by: "alice".into(),
            role: "release-manager".into()
        })
    );
    assert_eq!(
        run.check_decision(&Scope::Run, "technical-lead", "carol", 0),
        Err(Rejected::SelfApproval("carol".into()))
    );
    assert_eq!(
        run.check_decision(&Scope::Run, "dba", "dave", 0),
        Err(Rejected::RoleNotNeeded("dba".into()))
    );
    run.apply(&Event::Approved {
        scope: Scope::Run,
        role: "technical-lead".into(),
        by: "bob".into(),
        at_ms: 0,
    });
    assert_eq!(names(&run.next(0)), ["app/stop@app-1#1"]);
}

#[test]
fn a_refusal_stops_the_run_or_the_gated_phase() {
    let mut run = Run::new(plan(vec![phase(
        "app",
        &[],
        vec![step("stop", &["app-1"])],
    )]));
    run.apply(&Event::Refused {
        scope: Scope::Run,
        role: "technical-lead".into(),
        by: "bob".into(),
        why: "fix forward".into(),
        at_ms: 0,
    });
    assert_eq!(run.status(0), RunStatus::Refused("technical-lead".into()));
    assert!(run.next(0).is_empty());

    let mut db = phase("db", &["app"], vec![step("backup", &["db-1"])]);
    db.approvals = vec!["dba".into(), "product-owner".into()];
    let mut run = Run::new(plan(vec![
        phase("app", &[], vec![step("stop", &["app-1"])]),
        db,
    ]));
    approved(&mut run);
    drive(&mut run, 0);
    assert_eq!(
        run.phases(0)[1].1,
        PhaseStatus::AwaitingApproval(vec!["dba".into(), "product-owner".into()])
    );
    run.apply(&Event::Refused {
        scope: Scope::Phase("db".into()),
        role: "dba".into(),
        by: "dave".into(),
        why: "no backup window".into(),
        at_ms: 0,
    });
    assert!(run.next(0).is_empty());
    assert!(matches!(run.phases(0)[1].1, PhaseStatus::Failed(_)));
    assert_eq!(run.status(0), RunStatus::Failed);
}

#[test]
fn phases_follow_their_after_order_and_gated_phases_wait_for_all_roles() {
    let mut db = phase(
        "db",
        &["app"],
        vec![step("backup", &["db-1"]), step("migrate-down", &["db-1"])],
    );
    db.approvals = vec!["dba".into(), "technical-lead".into()];
    let mut run = Run::new(plan(vec![
        phase(
            "app",
            &[],
            vec![
                step("stop", &["app-1", "app-2"]),
                step("deploy", &["app-1", "app-2"]),
            ],
        ),
        db,
        phase("external", &["app"], vec![step("stripe", &["app-1"])]),
    ]));
    approved(&mut run);
    assert_eq!(
        names(&run.next(0)),
        ["app/stop@app-1#1", "app/stop@app-2#1"]
    );
    let done = drive(&mut run, 0);
    // The database phase waits for its approvals; external services run.
    assert!(done.contains(&"external/stripe@app-1#1".to_string()));
    assert!(!done.iter().any(|d| d.starts_with("db/")));
    for (role, by) in [("dba", "dave"), ("technical-lead", "bob")] {
        run.check_decision(&Scope::Phase("db".into()), role, by, 0)
            .unwrap();
        run.apply(&Event::Approved {
            scope: Scope::Phase("db".into()),
            role: role.into(),
            by: by.into(),
            at_ms: 0,
        });
    }
    // Backup strictly before migrate-down.
    assert_eq!(
        drive(&mut run, 0),
        ["db/backup@db-1#1", "db/migrate-down@db-1#1"]
    );
    assert_eq!(run.status(0), RunStatus::Succeeded);
}

#[test]
fn rolling_batches_stop_at_the_first_batch_whose_gate_fails() {
    let mut app = phase(
        "app",
        &[],
        vec![
            step("deploy", &["app-1", "app-2", "app-3"]),
            step("verify", &["app-1", "app-2", "app-3"]),
        ],
    );
    app.rolling = 1;
    let mut run = Run::new(plan(vec![
        app,
        phase("after", &["app"], vec![step("x", &["app-1"])]),
    ]));
    approved(&mut run);
    assert_eq!(names(&run.next(0)), ["app/deploy@app-1#1"]);
    exec_next(&mut run, 0, Outcome::Succeeded, 0);
    assert_eq!(
        names(&run.next(0)),
        ["app/verify@app-1#1"],
        "the batch finishes before the next starts"
    );
    exec_next(&mut run, 0, Outcome::Succeeded, 0);
    assert_eq!(names(&run.next(0)), ["app/deploy@app-2#1"]);
    exec_next(&mut run, 0, Outcome::Succeeded, 0);
    // The health gate of batch 2 fails: app-3 is never touched.
    exec_next(
        &mut run,
        0,
        Outcome::Failed {
            reason: "HTTP 503".into(),
        },
        0,
    );
    assert!(run.next(0).is_empty());
    assert!(
        matches!(&run.phases(0)[0].1, PhaseStatus::Failed(r) if r.contains("verify") && r.contains("app-2"))
    );
    assert_eq!(run.phases(0)[1].1, PhaseStatus::Skipped);
    assert_eq!(run.status(0), RunStatus::Failed);
}

#[test]
fn retry_waits_a_growing_backoff_and_continue_passes_over() {
    let mut flaky = step("verify", &["app-1"]);
    flaky.on_failure = OnFailure::Retry;
    flaky.retries = 2;
    flaky.backoff = Duration::from_secs(10);
    let mut optional = step("cdn", &["app-1"]);
    optional.on_failure = OnFailure::Continue;
    let mut run = Run::new(plan(vec![phase(
        "p",
        &[],
        vec![flaky, optional, step("last", &["app-1"])],
    )]));
    approved(&mut run);
    let d = run.next(0).remove(0);
    exec(
        &mut run,
        &d,
        Outcome::Failed {
            reason: "timeout".into(),
        },
        1_000,
    );
    assert!(run.next(10_999).is_empty(), "backoff 10 s not over");
    assert_eq!(names(&run.next(11_000)), ["p/verify@app-1#2"]);
    exec_next(
        &mut run,
        11_000,
        Outcome::Failed {
            reason: "timeout".into(),
        },
        12_000,
    );
    assert!(run.next(31_999).is_empty(), "second backoff is 20 s");
    exec_next(&mut run, 32_000, Outcome::Succeeded, 32_000);
    exec_next(
        &mut run,
        32_000,
        Outcome::Failed {
            reason: "cdn down".into(),
        },
        32_000,
    );
    assert_eq!(
        names(&run.next(32_000)),
        ["p/last@app-1#1"],
        "continue passes over the failure"
    );
    drive(&mut run, 32_000);
    assert_eq!(run.status(0), RunStatus::Succeeded);
}

#[test]
fn a_phase_past_its_time_limit_times_out_and_abort_stops_everything() {
    let mut p = phase("p", &[], vec![step("slow", &["app-1"])]);
    p.time_limit = Some(Duration::from_secs(600));
    let mut run = Run::new(plan(vec![
        p,
        phase("q", &["p"], vec![step("x", &["app-1"])]),
    ]));
    approved(&mut run);
    let d = run.next(0).remove(0);
    dispatched(&mut run, &d, 0);
    assert_eq!(run.phases(10 * MIN)[0].1, PhaseStatus::Running);
    assert_eq!(run.phases(10 * MIN + 1)[0].1, PhaseStatus::TimedOut);
    assert_eq!(run.phases(10 * MIN + 1)[1].1, PhaseStatus::Skipped);
    // The deadline a step waiting for an absent agent wakes at (a
    // millisecond after it, the phase has timed out); none for a phase
    // without a limit or not started.
    let deadline = run.phase_deadline_ms("p");
    assert_eq!(deadline, Some(10 * MIN));
    assert_eq!(
        run.phases(deadline.unwrap_or_default() + 1)[0].1,
        PhaseStatus::TimedOut
    );
    assert_eq!(run.phase_deadline_ms("q"), None);

    let mut run = Run::new(plan(vec![phase("p", &[], vec![step("a", &["app-1"])])]));
    approved(&mut run);
    run.apply(&Event::Aborted {
        by: "alice".into(),
        at_ms: 0,
    });
    assert!(run.next(0).is_empty());
    assert_eq!(run.status(0), RunStatus::Aborted);
}

#[test]
fn a_replayed_journal_resumes_without_running_anything_twice() {
    let mut run = Run::new(plan(vec![phase(
        "app",
        &[],
        vec![
            step("stop", &["app-1", "app-2"]),
            step("start", &["app-1", "app-2"]),
        ],
    )]));
    let mut journal = vec![Event::Started {
        by: "rm".into(),
        at_ms: 0,
    }];
    for (role, by) in [("release-manager", "alice"), ("technical-lead", "bob")] {
        journal.push(Event::Approved {
            scope: Scope::Run,
            role: role.into(),
            by: by.into(),
            at_ms: 0,
        });
    }
    for e in &journal {
        run.apply(e);
    }
    // app-1 finished `stop`; app-2 was dispatched and the coordinator died.
    let first = run.next(0);
    journal.push(Event::Dispatched {
        phase: "app".into(),
        step: "stop".into(),
        host: "app-1".into(),
        attempt: 1,
        at_ms: 0,
    });
    journal.push(Event::Finished {
        phase: "app".into(),
        step: "stop".into(),
        host: "app-1".into(),
        attempt: 1,
        outcome: Outcome::Succeeded,
        at_ms: 1,
    });
    journal.push(Event::Dispatched {
        phase: "app".into(),
        step: "stop".into(),
        host: "app-2".into(),
        attempt: 1,
        at_ms: 0,
    });
    assert_eq!(first.len(), 2);

    let resumed = Run::replay(run.plan().clone(), &journal);
    // app-2's stop is in flight: asked about, never dispatched again.
    assert_eq!(names(&resumed.in_flight()), ["app/stop@app-2#1"]);
    assert_eq!(names(&resumed.next(2)), ["app/start@app-1#1"]);
    // A decision made but not journaled before the crash is made again.
    let before_crash = Run::replay(run.plan().clone(), &journal[..3]);
    assert_eq!(names(&before_crash.next(0)), names(&first));
}

#[test]
fn the_seed_plan_makes_a_run_plan_with_hosts_expanded() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/samia-tarot/plan.toml");
    let seed = crate::model::Plan::load(&path).unwrap();
    let default = RunPlan::new(&seed, &[]).unwrap();
    let ids: Vec<&str> = default.phases.iter().map(|p| p.id.as_str()).collect();
    assert!(
        !ids.contains(&"database"),
        "the database phase is optional: {ids:?}"
    );
    let stabilisation = default
        .phases
        .iter()
        .find(|p| p.id == "stabilisation")
        .unwrap();
    assert_eq!(
        stabilisation.after,
        ["application", "external-services"],
        "unchosen phases are not waited for"
    );
    let app = default
        .phases
        .iter()
        .find(|p| p.id == "application")
        .unwrap();
    assert_eq!(app.steps[0].hosts, ["app-1", "app-2"]);
    let with_db = RunPlan::new(&seed, &["application".into(), "database".into()]).unwrap();
    assert_eq!(
        with_db.phases[1].approvals,
        ["dba", "technical-lead", "product-owner"]
    );
    assert_eq!(with_db.phases[1].steps[0].hosts, ["db-1"]);
    assert_eq!(
        RunPlan::new(&seed, &["nope".into()]),
        Err(RunPlanError::UnknownPhase("nope".into()))
    );
}

#[test]
fn a_time_limited_phase_waiting_out_a_backoff_is_still_running() {
    let mut flaky = step("verify", &["app-1"]);
    flaky.on_failure = OnFailure::Retry;
    flaky.retries = 1;
    let mut p = phase("p", &[], vec![flaky]);
    p.time_limit = Some(Duration::from_secs(600));
    let mut run = Run::new(plan(vec![p]));
    approved(&mut run);
    exec_next(
        &mut run,
        0,
        Outcome::Failed {
            reason: "503".into(),
        },
        1_000,
    );
    assert!(run.in_flight().is_empty());
    assert_eq!(
        run.status(2_000),
        RunStatus::Running,
        "nothing in flight, but not over"
    );
    // Dispatched at 1 s, limited to 10 minutes.
    assert_eq!(run.status(10 * MIN + 1_000), RunStatus::Running);
    assert_eq!(
        run.status(10 * MIN + 1_001),
        RunStatus::Failed,
        "past its time limit"
    );
}

#[test]
fn a_phase_listed_before_its_dependency_still_waits_for_it() {
    let mut run = Run::new(RunPlan {
        phases: super::plan::tests_support::ordered(vec![
            phase("app", &["db"], vec![step("start", &["app-1"])]),
            phase("db", &[], vec![step("backup", &["db-1"])]),
        ]),
        ..plan(vec![])
    });
    approved(&mut run);
    assert_eq!(names(&run.next(0)), ["db/backup@db-1#1"]);
    exec_next(
        &mut run,
        0,
        Outcome::Failed {
            reason: "disk full".into(),
        },
        0,
    );
    assert!(run.next(0).is_empty(), "app must not start after db failed");
    assert_eq!(
        run.phases(0).iter().find(|(id, _)| id == "app").unwrap().1,
        PhaseStatus::Skipped
    );
}

#[test]
fn every_refusal_counts_not_only_the_first() {
    let mut db = phase("db", &["app"], vec![step("backup", &["db-1"])]);
    db.approvals = vec!["dba".into()];
    let mut run = Run::new(plan(vec![
        phase("app", &[], vec![step("stop", &["app-1"])]),
        db,
    ]));
    run.apply(&Event::Started {
        by: "rm".into(),
        at_ms: 0,
    });
    run.apply(&Event::Refused {
        scope: Scope::Phase("db".into()),
        role: "dba".into(),
        by: "dave".into(),
        why: "no".into(),
        at_ms: 0,
    });
    run.apply(&Event::Refused {
        scope: Scope::Run,
        role: "technical-lead".into(),
        by: "bob".into(),
        why: "no".into(),
        at_ms: 0,
    });
    run.apply(&Event::Approved {
        scope: Scope::Run,
        role: "technical-lead".into(),
        by: "erin".into(),
        at_ms: 0,
    });
    run.apply(&Event::Approved {
        scope: Scope::Run,
        role: "release-manager".into(),
        by: "alice".into(),
        at_ms: 0,
    });
    assert_eq!(run.status(0), RunStatus::Refused("technical-lead".into()));
    assert!(run.next(0).is_empty());
}

#[test]
fn each_host_runs_only_the_steps_that_target_it() {
    let mut run = Run::new(plan(vec![phase(
        "app",
        &[],
        vec![
            step("drain", &["lb-1"]),
            step("stop", &["app-1", "app-2"]),
            step("check", &["app-2", "lb-1"]),
        ],
    )]));
    approved(&mut run);
    // First round: every host's first step at once; then lb-1 and app-2 check.
    assert_eq!(
        drive(&mut run, 0),
        [
            "app/drain@lb-1#1",
            "app/stop@app-1#1",
            "app/stop@app-2#1",
            "app/check@lb-1#1",
            "app/check@app-2#1"
        ]
    );
    assert_eq!(run.status(0), RunStatus::Succeeded);
    let succeeded: Vec<String> = run
        .hosts_of("app")
        .into_iter()
        .filter(|h| h.state == HostState::Succeeded)
        .map(|h| h.host)
        .collect();
    assert_eq!(succeeded, ["lb-1", "app-1", "app-2"].map(String::from));
}

#[test]
fn a_phase_fans_out_to_a_large_fleet_at_once() {
    let hosts: Vec<String> = (0..5_000).map(|i| format!("host-{i:05}")).collect();
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let mut run = Run::new(plan(vec![phase("app", &[], vec![step("echo", &refs)])]));
    approved(&mut run);
    assert_eq!(drive(&mut run, 0).len(), 5_000);
    assert_eq!(run.status(0), RunStatus::Succeeded);
    assert!(
        run.hosts_of("app")
            .iter()
            .all(|h| h.state == HostState::Succeeded && h.steps_done == 1)
    );
}

#[test]
fn an_abort_keeps_what_had_ended_and_ends_the_rest() {
    let mut run = Run::new(plan(vec![
        phase("done", &[], vec![step("a", &["app-1"])]),
        phase("busy", &["done"], vec![step("b", &["app-1"])]),
        phase("later", &["busy"], vec![step("c", &["app-1"])]),
    ]));
    approved(&mut run);
    exec_next(&mut run, 0, Outcome::Succeeded, 1);
    let d = run.next(2).remove(0);
    dispatched(&mut run, &d, 2);
    run.apply(&Event::Aborted {
        by: "alice".into(),
        at_ms: 3,
    });
    let statuses: Vec<PhaseStatus> = run.phases(4).into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        statuses,
        [
            PhaseStatus::Succeeded,
            PhaseStatus::Aborted,
            PhaseStatus::Aborted
        ]
    );
}

#[test]
fn a_failed_host_fails_the_phase_even_after_its_time_limit() {
    let mut p = phase("p", &[], vec![step("s", &["app-1", "app-2"])]);
    p.time_limit = Some(Duration::from_secs(60));
    let mut run = Run::new(plan(vec![p]));
    approved(&mut run);
    let ds = run.next(0);
    exec(
        &mut run,
        &ds[0],
        Outcome::Failed {
            reason: "boom".into(),
        },
        1,
    );
    dispatched(&mut run, &ds[1], 0);
    // app-2 is still running past the limit; the phase had already failed.
    let status = run.phases(2 * MIN).remove(0).1;
    assert!(
        matches!(&status, PhaseStatus::Failed(why) if why.contains("boom")),
        "{status:?}"
    );
    assert!(run.overdue(2 * MIN).is_empty());
}

#[test]
fn an_aborted_phase_is_not_timed_out_later() {
    let mut p = phase("p", &[], vec![step("slow", &["app-1"])]);
    p.time_limit = Some(Duration::from_secs(60));
    let mut run = Run::new(plan(vec![p]));
    approved(&mut run);
    let d = run.next(0).remove(0);
    dispatched(&mut run, &d, 0);
    run.apply(&Event::Aborted {
        by: "alice".into(),
        at_ms: 1,
    });
    assert_eq!(run.phases(2 * MIN)[0].1, PhaseStatus::Aborted);
    assert!(
        run.overdue(2 * MIN).is_empty(),
        "no time-out after an abort"
    );
}
