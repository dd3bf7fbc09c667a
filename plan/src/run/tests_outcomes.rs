//! How outcomes other than success and failure are handled: time-outs,
//! unreachable agents and unknown outcomes are never retried; a phase that
//! timed out stays timed out; hosts are reported by state.

use std::time::Duration;

use super::tests::{MIN, approved, dispatched, exec, exec_next, names, phase, plan, step};
use super::*;

fn retrying(id: &str) -> StepPlan {
    let mut s = step(id, &["app-1"]);
    s.on_failure = OnFailure::Retry;
    s.retries = 3;
    s.backoff = Duration::from_secs(1);
    s
}

#[test]
fn only_a_step_that_ran_and_failed_is_retried() {
    let uncertain = [
        Outcome::TimedOut {
            reason: "no answer in 30 s".into(),
        },
        Outcome::Unreachable {
            reason: "agent gone".into(),
        },
        Outcome::Unknown {
            reason: "agent stopped mid-step".into(),
        },
    ];
    for outcome in uncertain {
        let mut run = Run::new(plan(vec![phase("p", &[], vec![retrying("migrate")])]));
        approved(&mut run);
        let d = run.next(0).remove(0);
        exec(&mut run, &d, outcome.clone(), 0);
        assert!(
            run.next(MIN).is_empty(),
            "{outcome:?} must not start attempt #2"
        );
        let host = &run.hosts_of("p")[0];
        assert_eq!(host.state, outcome.state());
        assert!(host.detail.contains(outcome.reason()), "{}", host.detail);
        assert!(matches!(run.phases(MIN)[0].1, PhaseStatus::Failed(_)));
    }

    let mut run = Run::new(plan(vec![phase("p", &[], vec![retrying("migrate")])]));
    approved(&mut run);
    let d = run.next(0).remove(0);
    exec(
        &mut run,
        &d,
        Outcome::Failed {
            reason: "exit 1".into(),
        },
        0,
    );
    assert_eq!(names(&run.next(1_000)), ["p/migrate@app-1#2"]);
    assert_eq!(run.hosts_of("p")[0].detail, "attempt 2 due");
}

#[test]
fn a_recorded_time_out_stays_when_the_late_step_finishes() {
    let mut p = phase("p", &[], vec![step("slow", &["app-1"])]);
    p.time_limit = Some(Duration::from_secs(60));
    let mut run = Run::new(plan(vec![p]));
    approved(&mut run);
    let d = run.next(0).remove(0);
    dispatched(&mut run, &d, 0);
    assert!(
        run.overdue(MIN).is_empty(),
        "exactly the limit is not past it"
    );
    assert_eq!(run.overdue(MIN + 1), ["p"]);
    run.apply(&Event::PhaseTimedOut {
        phase: "p".into(),
        at_ms: MIN + 1,
    });
    assert!(run.overdue(MIN + 2).is_empty(), "recorded once");
    run.apply(&Event::Finished {
        phase: d.phase,
        step: d.step,
        host: d.host,
        attempt: 1,
        outcome: Outcome::Succeeded,
        at_ms: 2 * MIN,
    });
    assert_eq!(run.phases(2 * MIN)[0].1, PhaseStatus::TimedOut);
    assert_eq!(run.status(2 * MIN), RunStatus::Failed);
    assert!(run.in_flight().is_empty());
}

#[test]
fn host_views_count_steps_and_name_the_current_one() {
    let mut run = Run::new(plan(vec![phase(
        "p",
        &[],
        vec![
            step("stop", &["app-1", "app-2"]),
            step("deploy", &["app-1", "app-2"]),
            step("only-one", &["app-1"]),
        ],
    )]));
    approved(&mut run);
    let ds = run.next(0);
    exec(&mut run, &ds[0], Outcome::Succeeded, 0);
    run.apply(&Event::Dispatched {
        phase: ds[1].phase.clone(),
        step: ds[1].step.clone(),
        host: ds[1].host.clone(),
        attempt: 1,
        at_ms: 0,
    });
    let hosts = run.hosts_of("p");
    assert_eq!(
        (
            hosts[0].host.as_str(),
            hosts[0].steps_done,
            hosts[0].steps_total
        ),
        ("app-1", 1, 3)
    );
    assert_eq!(hosts[0].step, "deploy");
    assert_eq!(hosts[0].state, HostState::Pending);
    assert_eq!(
        (hosts[1].steps_done, hosts[1].steps_total, hosts[1].state),
        (0, 2, HostState::Running)
    );
    assert_eq!(hosts[1].step, "stop");
}

#[test]
fn a_run_plan_survives_the_journal_and_a_dry_run_needs_no_approvals() {
    let mut p = phase("db", &[], vec![retrying("migrate")]);
    p.time_limit = Some(Duration::from_millis(1_500));
    p.approvals = vec!["dba".into()];
    let original = plan(vec![p]);
    let text = serde_json::to_string(&original).unwrap();
    let back: RunPlan = serde_json::from_str(&text).unwrap();
    assert_eq!(back, original);

    let dry = original.without_approvals();
    assert!(dry.approvals.is_empty() && dry.phases[0].approvals.is_empty());
    let run = Run::new(dry);
    assert_eq!(names(&run.next(0)), ["db/migrate@app-1#1"]);
}

#[test]
fn a_dry_run_with_a_step_passed_over_has_failed() {
    let mut passed_over = step("check", &["app-1"]);
    passed_over.on_failure = OnFailure::Continue;
    let mut run = Run::new(plan(vec![phase("p", &[], vec![passed_over])]));
    approved(&mut run);
    let failed = Outcome::Failed {
        reason: "exit 1".into(),
    };
    exec_next(&mut run, 0, failed, 0);
    // A real run passes it over and succeeds; a dry run found a step that
    // would not work.
    assert_eq!(run.status(1), RunStatus::Succeeded);
    assert!(run.any_step_failed());
    assert_eq!(run.dry_run_status(run.status(1)), RunStatus::Failed);

    let mut clean = Run::new(plan(vec![phase("p", &[], vec![step("check", &["app-1"])])]));
    approved(&mut clean);
    exec_next(&mut clean, 0, Outcome::Succeeded, 0);
    assert_eq!(clean.dry_run_status(clean.status(1)), RunStatus::Succeeded);
}
