//! Where a run's time went: inside its steps (by the agents' clocks),
//! waiting for people to approve, and the rest, which is Backout's own
//! overhead (journal writes, dispatch, the way to the agents and back, the
//! time between one phase ending and the next starting).
//!
//! The run's span is cut into what was covered by at least one step running
//! on an agent or by an approval being waited for; what is left is the
//! orchestration overhead. A step covers the `ran_ms` before its result was
//! journaled (its whole dispatch-to-result span when its agent gave no time).
//! The run waits from its start to its last approval; a gated phase waits
//! from when it could start (the run approved, the phases it comes after
//! ended) to its last approval.

use std::collections::BTreeMap;

use backout_plan::run::RunPlan;
use serde::Serialize;

use super::{Decision, StepFacts};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Timing {
    /// The run's span (start to end, or to now for a run not ended).
    pub run_ms: i64,
    /// Covered by at least one step running on an agent.
    pub in_steps_ms: i64,
    /// Covered by approvals waited for and no step.
    pub waiting_ms: i64,
    /// The rest: Backout's own time.
    pub orchestration_ms: i64,
}

impl Timing {
    pub fn of(
        plan: &RunPlan,
        steps: &[StepFacts],
        decisions: &[Decision],
        start: i64,
        end: i64,
    ) -> Timing {
        let ran: Vec<(i64, i64)> = steps
            .iter()
            .filter_map(|s| {
                let ended = s.ended_at_ms?;
                // The agent's word, within what the coordinator saw: from
                // the dispatch to the result.
                let began = s
                    .ran_ms
                    .map_or(s.started_at_ms, |ms| ended.saturating_sub(ms.max(0)))
                    .max(s.started_at_ms);
                Some((began.max(start), ended.min(end)))
            })
            .collect();
        let waits = waits(plan, steps, decisions, start, end);
        let in_steps_ms = covered(&ran);
        let busy = covered(&[ran, waits].concat());
        let run_ms = (end - start).max(0);
        Timing {
            run_ms,
            in_steps_ms,
            waiting_ms: busy - in_steps_ms,
            orchestration_ms: (run_ms - busy).max(0),
        }
    }
}

/// The spans during which the run or a gated phase waited for approvals.
fn waits(
    plan: &RunPlan,
    steps: &[StepFacts],
    decisions: &[Decision],
    start: i64,
    end: i64,
) -> Vec<(i64, i64)> {
    let approved = |scope: &str| {
        decisions
            .iter()
            .filter(|d| d.approved && d.scope == scope)
            .map(|d| d.at_ms)
            .max()
            .unwrap_or(end)
    };
    let mut out = Vec::new();
    let run_approved = if plan.approvals.is_empty() {
        start
    } else {
        approved("run")
    };
    out.push((start, run_approved));
    let mut ended: BTreeMap<&str, i64> = BTreeMap::new();
    for phase in &plan.phases {
        let phase_end = steps
            .iter()
            .filter(|s| s.phase == phase.id)
            .filter_map(|s| s.ended_at_ms)
            .max();
        if let Some(at) = phase_end {
            ended.insert(&phase.id, at);
        }
    }
    for phase in plan.phases.iter().filter(|p| !p.approvals.is_empty()) {
        let ready = phase
            .after
            .iter()
            .filter_map(|a| ended.get(a.as_str()).copied())
            .fold(run_approved, i64::max);
        out.push((ready, approved(&phase.id)));
    }
    out.into_iter()
        .map(|(a, b)| (a.max(start), b.min(end)))
        .collect()
}

/// How much of the line the spans cover together.
fn covered(spans: &[(i64, i64)]) -> i64 {
    let mut spans: Vec<(i64, i64)> = spans.iter().copied().filter(|(a, b)| b > a).collect();
    spans.sort_unstable();
    let mut total = 0;
    let mut reach = i64::MIN;
    for (a, b) in spans {
        if b <= reach {
            continue;
        }
        total += b - a.max(reach);
        reach = b;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use backout_plan::run::PhasePlan;

    fn step(phase: &str, started: i64, ended: i64, ran_ms: Option<i64>) -> StepFacts {
        StepFacts {
            phase: phase.into(),
            step: "s".into(),
            host: "h".into(),
            attempt: 1,
            what: String::new(),
            started_at_ms: started,
            ended_at_ms: Some(ended),
            ran_ms,
            result: "succeeded".into(),
            summary: String::new(),
            data: serde_json::Value::Null,
        }
    }

    fn phase(id: &str, after: &[&str], approvals: &[&str]) -> PhasePlan {
        PhasePlan {
            id: id.into(),
            after: after.iter().map(|a| a.to_string()).collect(),
            approvals: approvals.iter().map(|a| a.to_string()).collect(),
            time_limit: None,
            rolling: 0,
            steps: vec![],
        }
    }

    fn approval(scope: &str, at_ms: i64) -> Decision {
        Decision {
            scope: scope.into(),
            role: "r".into(),
            by: "p".into(),
            at_ms,
            approved: true,
            why: String::new(),
        }
    }

    #[test]
    fn spans_are_counted_once_where_they_overlap() {
        assert_eq!(covered(&[(0, 10), (5, 15), (20, 30), (22, 25)]), 25);
        assert_eq!(covered(&[(5, 5), (9, 3)]), 0);
    }

    #[test]
    fn the_run_is_cut_into_steps_approvals_and_overhead() {
        let plan = RunPlan {
            approvals: vec!["rm".into()],
            self_approval: false,
            phases: vec![phase("app", &[], &[]), phase("db", &["app"], &["dba"])],
        };
        // Approved at 100; app ran 150..400 on its agent (journaled at 410);
        // db could start at 410, was approved at 900, ran 1000..1500.
        let steps = [
            step("app", 120, 410, Some(260)),
            step("db", 950, 1500, Some(500)),
        ];
        let decisions = [approval("run", 100), approval("db", 900)];
        let t = Timing::of(&plan, &steps, &decisions, 0, 1600);
        assert_eq!(t.run_ms, 1600);
        assert_eq!(t.in_steps_ms, 260 + 500);
        assert_eq!(t.waiting_ms, 100 + 490);
        assert_eq!(t.orchestration_ms, 1600 - 760 - 590);
    }
}
