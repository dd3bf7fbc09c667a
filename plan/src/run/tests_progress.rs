//! The hosts' progress that [`Run::apply`] keeps event by event is always
//! what working it out again from every attempt gives, whatever the events.

use proptest::prelude::*;

use super::tests::{approved, phase, plan, step};
use super::*;

/// Two phases, the second after the first and rolling two hosts at a time;
/// steps that halt, pass over and retry; hosts that some steps skip.
fn the_plan() -> RunPlan {
    let mut retried = step("retried", &["h1", "h2", "h3"]);
    retried.on_failure = OnFailure::Retry;
    retried.retries = 2;
    let mut passed_over = step("passed-over", &["h2", "h3", "h4"]);
    passed_over.on_failure = OnFailure::Continue;
    let first = phase(
        "first",
        &[],
        vec![retried, passed_over, step("halts", &["h1", "h4"])],
    );
    let mut second = phase(
        "second",
        &["first"],
        vec![step("only", &["h5", "h3", "h1", "h2"])],
    );
    second.rolling = 2;
    plan(vec![first, second])
}

fn outcome(kind: u8) -> Outcome {
    let reason = "r".to_string();
    match kind % 6 {
        0 | 1 => Outcome::Succeeded,
        2 => Outcome::Failed { reason },
        3 => Outcome::TimedOut { reason },
        4 => Outcome::Unreachable { reason },
        _ => Outcome::Unknown { reason },
    }
}

/// One event from a few random numbers: mostly what the run itself says
/// is due and its outcome; else an event about any phase, step, host and
/// attempt (some not in the plan, some stale).
fn event(run: &Run, pick: [u8; 5], at_ms: i64) -> Event {
    let [what, a, b, c, kind] = pick;
    if what % 3 != 0 {
        let due = run.next(at_ms);
        let in_flight = run.in_flight();
        let (finish, list) = if what % 2 == 0 && !in_flight.is_empty() {
            (true, in_flight)
        } else {
            (false, due)
        };
        if let Some(d) = list.get(usize::from(a) % list.len().max(1)) {
            return if finish {
                Event::Finished {
                    phase: d.phase.clone(),
                    step: d.step.clone(),
                    host: d.host.clone(),
                    attempt: d.attempt,
                    outcome: outcome(kind),
                    at_ms,
                }
            } else {
                Event::Dispatched {
                    phase: d.phase.clone(),
                    step: d.step.clone(),
                    host: d.host.clone(),
                    attempt: d.attempt,
                    at_ms,
                }
            };
        }
    }
    let phases = ["first", "second", "none"];
    let steps = ["retried", "passed-over", "halts", "only", "none"];
    let phase = phases[usize::from(a) % phases.len()].to_string();
    let step = steps[usize::from(b) % steps.len()].to_string();
    let host = ["h1", "h2", "h3", "h4", "h5", "h9"][usize::from(c) % 6].to_string();
    let attempt = u32::from(kind % 3) + 1;
    if what % 2 == 0 {
        Event::Dispatched {
            phase,
            step,
            host,
            attempt,
            at_ms,
        }
    } else {
        Event::Finished {
            phase,
            step,
            host,
            attempt,
            outcome: outcome(kind),
            at_ms,
        }
    }
}

/// Every host's kept progress against working it out again.
fn assert_progress_is_current(run: &Run) {
    for phase in &run.plan.phases {
        let hosts = &run.phase_hosts[&phase.id];
        assert_eq!(hosts.names.len(), hosts.progress.len());
        for (host, kept) in hosts.names.iter().zip(&hosts.progress) {
            assert_eq!(
                *kept,
                run.host_progress(phase, host),
                "{} on {host}",
                phase.id
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn kept_progress_equals_a_full_recomputation(
        picks in proptest::collection::vec(any::<[u8; 5]>(), 0..80),
    ) {
        let mut run = Run::new(the_plan());
        approved(&mut run);
        assert_progress_is_current(&run);
        let mut events = Vec::new();
        for (i, pick) in picks.into_iter().enumerate() {
            // Time moves on by 2 s an event: retries' backoffs come due.
            let at_ms = i64::try_from(i).unwrap_or(0) * 2_000;
            let e = event(&run, pick, at_ms);
            run.apply(&e);
            events.push(e);
            assert_progress_is_current(&run);
        }
        // The same events replayed into a fresh run say the same.
        let now = 1_000_000;
        let replayed = Run::replay(the_plan(), &run_events(&events));
        let (a, b) = (replayed.evaluate(now), run.evaluate(now));
        prop_assert_eq!(a.phases, b.phases);
        prop_assert_eq!(a.next, b.next);
        prop_assert_eq!(a.status, b.status);
        prop_assert_eq!(replayed.hosts_of("first"), run.hosts_of("first"));
        prop_assert_eq!(replayed.hosts_of("second"), run.hosts_of("second"));
    }
}

/// The approvals [`approved`] applies, then `events`.
fn run_events(events: &[Event]) -> Vec<Event> {
    let mut all = vec![Event::Started {
        by: "rm".into(),
        at_ms: 0,
    }];
    for (role, by) in [("release-manager", "alice"), ("technical-lead", "bob")] {
        all.push(Event::Approved {
            scope: Scope::Run,
            role: role.into(),
            by: by.into(),
            at_ms: 0,
        });
    }
    all.extend(events.iter().cloned());
    all
}

#[test]
fn every_host_of_the_plan_starts_due_at_its_first_step() {
    let run = Run::new(the_plan());
    assert_progress_is_current(&run);
    let first = &run.phase_hosts["first"];
    assert_eq!(first.names, ["h1", "h2", "h3", "h4"]);
    assert_eq!(
        first.progress[3],
        HostProgress::Next("passed-over".into(), 1, i64::MIN)
    );
    assert_eq!(run.phase_hosts["second"].names, ["h5", "h3", "h1", "h2"]);
}
