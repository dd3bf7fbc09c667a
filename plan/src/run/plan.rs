//! The plan of one run: the chosen phases, their steps' targets expanded to hosts.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Plan;
use crate::sections::OnFailure;

/// One step of a phase as the engine runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepPlan {
    pub id: String,
    pub plugin: String,
    pub action: String,
    /// The step's `params` as a JSON object (what the plugin receives).
    pub params_json: String,
    /// How long the step may run on the agent; `None`: the agent's default.
    /// Journaled as `null` then: a missing field is an error, never a default.
    #[serde(with = "opt_ms")]
    pub timeout: Option<Duration>,
    pub hosts: Vec<String>,
    pub on_failure: OnFailure,
    pub retries: u32,
    #[serde(with = "ms")]
    pub backoff: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhasePlan {
    pub id: String,
    pub after: Vec<String>,
    pub approvals: Vec<String>,
    #[serde(with = "opt_ms")]
    pub time_limit: Option<Duration>,
    pub rolling: u32,
    pub steps: Vec<StepPlan>,
}

/// The plan of one run: the chosen phases with their steps' hosts expanded.
/// It is journaled when the run is created, so a coordinator that restarts
/// with an edited plan file still finishes the run it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPlan {
    pub approvals: Vec<String>,
    pub self_approval: bool,
    pub phases: Vec<PhasePlan>,
}

/// Errors building a run plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunPlanError {
    #[error("no phase `{0}` in the plan")]
    UnknownPhase(String),
}

impl RunPlan {
    /// The run of `phases` (empty: every phase that is not optional). Phases a
    /// chosen phase comes after but that were not chosen count as done.
    pub fn new(plan: &Plan, phases: &[String]) -> Result<RunPlan, RunPlanError> {
        for id in phases {
            if !plan.phases.iter().any(|p| &p.id == id) {
                return Err(RunPlanError::UnknownPhase(id.clone()));
            }
        }
        let chosen: Vec<_> = plan
            .phases
            .iter()
            .filter(|p| {
                if phases.is_empty() {
                    !p.optional
                } else {
                    phases.contains(&p.id)
                }
            })
            .collect();
        let chosen_ids: BTreeSet<&str> = chosen.iter().map(|p| p.id.as_str()).collect();
        let hosts_of = |target: &str| -> Vec<String> {
            plan.hosts
                .iter()
                .filter(|h| h.id == target || h.groups.iter().any(|g| g == target))
                .map(|h| h.id.clone())
                .collect()
        };
        let phases: Vec<PhasePlan> = chosen
            .iter()
            .map(|p| PhasePlan {
                id: p.id.clone(),
                after: p
                    .after
                    .iter()
                    .filter(|a| chosen_ids.contains(a.as_str()))
                    .cloned()
                    .collect(),
                approvals: p.approvals.clone(),
                time_limit: p.time_limit,
                rolling: p.rolling,
                steps: p
                    .steps
                    .iter()
                    .map(|s| StepPlan {
                        id: s.id.clone(),
                        plugin: s.plugin.clone(),
                        action: s.action.clone(),
                        params_json: s
                            .params
                            .as_ref()
                            .and_then(|t| serde_json::to_string(t).ok())
                            .unwrap_or_else(|| "{}".into()),
                        timeout: s.timeout,
                        hosts: hosts_of(&s.on),
                        on_failure: s.on_failure.clone(),
                        retries: s.retries,
                        backoff: s.backoff.unwrap_or(Duration::from_secs(5)),
                    })
                    .collect(),
            })
            .collect();
        Ok(RunPlan {
            approvals: plan.approvals.run.clone(),
            self_approval: plan.approvals.self_approval,
            phases: in_dependency_order(phases),
        })
    }
}

impl RunPlan {
    /// One step of one phase.
    pub fn step(&self, phase: &str, step: &str) -> Option<&StepPlan> {
        self.phases
            .iter()
            .find(|p| p.id == phase)?
            .steps
            .iter()
            .find(|s| s.id == step)
    }

    /// The same run without approvals: a dry run changes nothing, so nobody
    /// needs to approve it.
    pub fn without_approvals(mut self) -> RunPlan {
        self.approvals.clear();
        for phase in &mut self.phases {
            phase.approvals.clear();
        }
        self
    }
}

/// Durations as whole milliseconds in the journal.
mod ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

mod opt_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<u64>::deserialize(d).map(|ms| ms.map(Duration::from_millis))
    }
}

/// Orders phases so each comes after the phases it names in `after`, keeping
/// the file's order otherwise. The plan was checked to have no cycle; should
/// one slip through, the rest keep their order at the end.
fn in_dependency_order(mut pending: Vec<PhasePlan>) -> Vec<PhasePlan> {
    let mut ordered: Vec<PhasePlan> = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|p| p.after.iter().all(|a| ordered.iter().any(|o| &o.id == a)))
            .unwrap_or(0);
        ordered.push(pending.remove(ready));
    }
    ordered
}

#[cfg(test)]
pub(super) mod tests_support {
    pub fn ordered(phases: Vec<super::PhasePlan>) -> Vec<super::PhasePlan> {
        super::in_dependency_order(phases)
    }
}
