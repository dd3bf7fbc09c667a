//! A lighter remedy for a considered trigger (seed, "Rollback Prevention &
//! Improvement": "Feature Flags: instant feature disable without
//! rollback"): an optional phase of the plan, e.g. a `flags` step turning
//! the new feature off, that is offered before the full rollback and run as
//! a run of its own (`backout remedy start TRIGGER`, the same run as
//! `backout rollback start --phases ID`: its own
//! approvals, journal, report, and undo with the plugin's `restore`). If the
//! trigger still fires `hold` after the remedy succeeded, the verdict moves
//! on to the rollback. Pure: callers pass what the runs say and `now`.

use std::time::Duration;

/// `remedy = "PHASE"` and `remedy_hold = "5m"` on a considered trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remedy {
    /// The optional phase that applies it.
    pub phase: String,
    /// How long the trigger has to clear once the remedy succeeded.
    pub hold: Duration,
    /// The roles that approve its run (`remedy_approvals`, default: the
    /// trigger's deciders), in place of the plan's run approvals.
    pub approvals: Vec<String>,
}

/// The newest run of the remedy's phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The run that applied it.
    pub run_id: String,
    /// `None` while it runs.
    pub succeeded: Option<bool>,
    pub ended_at_ms: Option<i64>,
}

/// A run as the remedy reads it (from the coordinator's runs, which are
/// rebuilt from the journal at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunBrief {
    pub id: String,
    /// The phases it was started with.
    pub phases: Vec<String>,
    pub dry_run: bool,
    pub started_at_ms: i64,
    /// Its end and whether it succeeded; `None` while it runs.
    pub ended: Option<(i64, bool)>,
}

/// The remedy's newest attempt for an episode that fired at `fired_at_ms`:
/// the newest run (not a dry run) of exactly the remedy's phase started
/// since then.
pub fn attempt(remedy: &Remedy, fired_at_ms: i64, runs: &[RunBrief]) -> Option<Attempt> {
    runs.iter()
        .filter(|r| {
            !r.dry_run && r.started_at_ms >= fired_at_ms && r.phases == [remedy.phase.as_str()]
        })
        .max_by_key(|r| (r.started_at_ms, r.id.clone()))
        .map(|r| Attempt {
            run_id: r.id.clone(),
            succeeded: r.ended.map(|(_, ok)| ok),
            ended_at_ms: r.ended.map(|(at, _)| at),
        })
}

/// What the remedy's phase does, for the offer: "turn off flags
/// new-checkout, tarot-ai-readings" for its `flags` steps, else the phase's
/// name.
pub fn describe(phase: &crate::sections::Phase) -> String {
    let flags: Vec<String> = phase
        .steps
        .iter()
        .filter(|s| s.plugin == "flags" && s.action == "off")
        .filter_map(|s| s.params.as_ref()?.get("flags")?.as_array().cloned())
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect();
    if flags.is_empty() {
        phase.name.clone()
    } else {
        format!("turn off flags {}", flags.join(", "))
    }
}

/// The command that applies the remedy: `backout remedy start TRIGGER`
/// (a run of its phase alone, approved by its `remedy_approvals`), the
/// trigger's name quoted for a POSIX shell.
pub fn command(trigger: &str) -> String {
    format!("backout remedy start {}", shell_quoted(trigger))
}

/// `text` as one word of a POSIX shell: bare when it is plain, in double
/// quotes when nothing in it is special there, else in single quotes.
fn shell_quoted(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=+,@".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_string()
    } else if !text.chars().any(|c| "\"$`\\!".contains(c)) {
        format!("\"{text}\"")
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// What the remedy means for a trigger now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The trigger fires and the remedy was not tried: offer it first.
    Offered { phase: String },
    /// The remedy is running, or succeeded and the trigger has until
    /// `until_ms` to clear.
    Holding { until_ms: Option<i64> },
    /// The trigger does not fire (after the remedy, or without it).
    Cleared,
    /// The remedy failed, or the trigger still fires after its hold: roll back.
    RollBack { why: String },
}

/// The matrix's headline once the fired triggers' remedies are judged
/// (`moved_on`: one says roll back): a considered verdict whose remedy did
/// not clear its trigger moves on to `ROLL BACK`; otherwise the matrix's own.
pub fn headline(verdict: &crate::matrix::Verdict, moved_on: bool) -> &'static str {
    if moved_on && verdict.action == crate::matrix::Action::AssessForRollback {
        "ROLL BACK"
    } else {
        verdict.headline()
    }
}

/// The verdict for a trigger with `remedy`, firing or not, given the
/// remedy's newest `attempt`.
pub fn verdict(remedy: &Remedy, firing: bool, attempt: Option<&Attempt>, now_ms: i64) -> Verdict {
    if !firing {
        return Verdict::Cleared;
    }
    let Some(attempt) = attempt else {
        return Verdict::Offered {
            phase: remedy.phase.clone(),
        };
    };
    let run = &attempt.run_id;
    match (attempt.succeeded, attempt.ended_at_ms) {
        (Some(false), _) => Verdict::RollBack {
            why: format!("the remedy `{}` failed (run {run})", remedy.phase),
        },
        (Some(true), Some(ended)) => {
            let until =
                ended.saturating_add(i64::try_from(remedy.hold.as_millis()).unwrap_or(i64::MAX));
            if now_ms < until {
                Verdict::Holding {
                    until_ms: Some(until),
                }
            } else {
                Verdict::RollBack {
                    why: format!(
                        "still firing {}s after the remedy `{}` (run {run})",
                        remedy.hold.as_secs(),
                        remedy.phase
                    ),
                }
            }
        }
        _ => Verdict::Holding { until_ms: None },
    }
}

/// When a run of `phases` is a remedy's run (exactly one trigger's remedy
/// phase): the roles that approve it, in place of the plan's run approvals
/// (every trigger's `remedy_approvals` naming that phase, in order, once).
pub fn approvals_for(plan: &crate::model::Plan, phases: &[String]) -> Option<Vec<String>> {
    let mut roles: Vec<String> = Vec::new();
    let mut found = false;
    for remedy in plan.triggers.iter().filter_map(|t| t.remedy.as_ref()) {
        if phases == [remedy.phase.as_str()] {
            found = true;
            for role in &remedy.approvals {
                if !roles.contains(role) {
                    roles.push(role.clone());
                }
            }
        }
    }
    found.then_some(roles)
}

/// A flags step of the remedy's run that succeeded, with what it recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub phase: String,
    pub step: String,
    pub host: String,
    /// The step's data; its `before` (flag -> enabled) is what is restored.
    pub data: serde_json::Value,
}

/// Why a run cannot be undone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UndoError {
    #[error(
        "run {0} has no succeeded `flags` `off` step that recorded the flags' state: there is nothing to restore"
    )]
    NothingRecorded(String),
}

/// The plan of the run that undoes a remedy's run (`backout remedy undo
/// RUN`): for each of its `flags` `off` steps that succeeded, a `flags`
/// `restore` step on the same host with the same params, `flags` replaced
/// by `previous`, the state the step recorded before it changed anything.
/// Each phase becomes `undo-PHASE` with the remedy's approvals: putting a
/// flag back on is a change like turning it off.
pub fn undo_plan(
    run_id: &str,
    remedy: &crate::run::RunPlan,
    recorded: &[Recorded],
) -> Result<crate::run::RunPlan, UndoError> {
    use crate::run::{PhasePlan, StepPlan};
    let mut phases = Vec::new();
    for phase in &remedy.phases {
        let mut steps: Vec<StepPlan> = Vec::new();
        for step in phase
            .steps
            .iter()
            .filter(|s| s.plugin == "flags" && s.action == "off")
        {
            for host in &step.hosts {
                let Some(before) = recorded
                    .iter()
                    .find(|r| r.phase == phase.id && r.step == step.id && &r.host == host)
                    .and_then(|r| r.data.get("before"))
                    .filter(|b| b.as_object().is_some_and(|m| !m.is_empty()))
                else {
                    continue;
                };
                let mut params: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(&step.params_json).unwrap_or_default();
                params.remove("flags");
                params.insert("previous".into(), before.clone());
                let id = if step.hosts.len() == 1 {
                    format!("restore-{}", step.id)
                } else {
                    format!("restore-{}-{host}", step.id)
                };
                steps.push(StepPlan {
                    id,
                    action: "restore".into(),
                    params_json: serde_json::Value::Object(params).to_string(),
                    hosts: vec![host.clone()],
                    ..step.clone()
                });
            }
        }
        if !steps.is_empty() {
            phases.push(PhasePlan {
                id: format!("undo-{}", phase.id),
                after: Vec::new(),
                steps,
                ..phase.clone()
            });
        }
    }
    if phases.is_empty() {
        return Err(UndoError::NothingRecorded(run_id.to_string()));
    }
    Ok(crate::run::RunPlan {
        approvals: remedy.approvals.clone(),
        self_approval: remedy.self_approval,
        phases,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn remedy() -> Remedy {
        Remedy {
            phase: "flags-off".into(),
            hold: Duration::from_secs(300),
            approvals: vec!["technical-lead".into()],
        }
    }

    #[test]
    fn a_firing_trigger_is_offered_its_remedy_first() {
        assert_eq!(
            verdict(&remedy(), true, None, 0),
            Verdict::Offered {
                phase: "flags-off".into()
            }
        );
    }

    #[test]
    fn a_remedy_that_clears_the_trigger_means_no_rollback() {
        let done = Attempt {
            run_id: "run-1".into(),
            succeeded: Some(true),
            ended_at_ms: Some(1_000),
        };
        assert_eq!(
            verdict(&remedy(), false, Some(&done), 2_000),
            Verdict::Cleared
        );
    }

    #[test]
    fn still_firing_after_the_hold_moves_on_to_rollback() {
        let done = Attempt {
            run_id: "run-1".into(),
            succeeded: Some(true),
            ended_at_ms: Some(1_000),
        };
        assert_eq!(
            verdict(&remedy(), true, Some(&done), 1_000 + 299_999),
            Verdict::Holding {
                until_ms: Some(301_000)
            }
        );
        assert_eq!(
            verdict(&remedy(), true, Some(&done), 301_000),
            Verdict::RollBack {
                why: "still firing 300s after the remedy `flags-off` (run run-1)".into()
            }
        );
        let failed = Attempt {
            run_id: "run-1".into(),
            succeeded: Some(false),
            ended_at_ms: Some(1_000),
        };
        assert!(matches!(
            verdict(&remedy(), true, Some(&failed), 1_001),
            Verdict::RollBack { .. }
        ));
        let running = Attempt {
            run_id: "run-1".into(),
            succeeded: None,
            ended_at_ms: None,
        };
        assert_eq!(
            verdict(&remedy(), true, Some(&running), 5),
            Verdict::Holding { until_ms: None }
        );
    }

    #[test]
    fn a_remedy_that_did_not_clear_moves_a_considered_verdict_on_to_roll_back() {
        use crate::matrix::{Action, Verdict as Matrix};
        let of = |action| Matrix {
            action,
            fired: vec![],
            deciders: vec![],
            unknown: vec![],
        };
        assert_eq!(
            headline(&of(Action::AssessForRollback), false),
            "ASSESS FOR ROLLBACK"
        );
        assert_eq!(headline(&of(Action::AssessForRollback), true), "ROLL BACK");
        assert_eq!(
            headline(&of(Action::ImmediateRollback), true),
            "IMMEDIATE ROLLBACK"
        );
        assert_eq!(headline(&of(Action::NoAction), false), "NO ACTION");
    }

    /// The README's example plan loads, and offers what the README says.
    #[test]
    fn the_readmes_remedy_example_loads() {
        let readme = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let text = std::fs::read_to_string(&readme).unwrap();
        let section = text.split("**The lighter remedy.**").nth(1).unwrap();
        let block = section.split("```toml\n").nth(1).unwrap();
        let block = block.split("```").next().unwrap();
        let plan = crate::model::Plan::parse(&readme, block).unwrap();
        let trigger = &plan.triggers[0];
        let remedy = trigger.remedy.clone().unwrap();
        assert_eq!(remedy.phase, "flags-off");
        assert_eq!(remedy.hold, Duration::from_secs(300));
        assert_eq!(remedy.approvals, ["release-manager"]);
        // A run of the remedy's phase alone is approved by them; any other
        // run by the plan's run approvals.
        let phases = |ids: &[&str]| ids.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        assert_eq!(
            approvals_for(&plan, &phases(&["flags-off"])),
            Some(vec!["release-manager".to_string()])
        );
        assert_eq!(approvals_for(&plan, &phases(&["application"])), None);
        assert_eq!(
            approvals_for(&plan, &phases(&["flags-off", "application"])),
            None
        );
        assert_eq!(approvals_for(&plan, &[]), None);
        let phase = plan.phases.iter().find(|p| p.id == remedy.phase).unwrap();
        assert_eq!(describe(phase), "turn off flags new-checkout");
        assert!(section.contains(&command(&trigger.name)));
        assert!(section.contains(&format!(
            "remedy available for {}: {}",
            trigger.name,
            describe(phase)
        )));
    }

    fn brief(id: &str, phases: &[&str], started: i64, ended: Option<(i64, bool)>) -> RunBrief {
        RunBrief {
            id: id.into(),
            phases: phases.iter().map(|p| p.to_string()).collect(),
            dry_run: false,
            started_at_ms: started,
            ended,
        }
    }

    #[test]
    fn the_undo_restores_what_the_remedys_flags_steps_recorded() {
        use crate::run::{PhasePlan, RunPlan, StepPlan};
        use crate::sections::OnFailure;
        let off = StepPlan {
            id: "off".into(),
            plugin: "flags".into(),
            action: "off".into(),
            params_json: r#"{"api_base":"http://u","environment":"production","flags":["new-checkout"],"token":"${secret:T}"}"#.into(),
            timeout: None,
            hosts: vec!["app-1".into()],
            on_failure: OnFailure::Halt,
            retries: 0,
            backoff: Duration::from_secs(5),
        };
        let remedy = RunPlan {
            approvals: vec!["technical-lead".into()],
            self_approval: false,
            phases: vec![PhasePlan {
                id: "flags-off".into(),
                after: vec![],
                approvals: vec![],
                time_limit: None,
                rolling: 0,
                steps: vec![off],
            }],
        };
        assert_eq!(
            undo_plan("run-1", &remedy, &[]),
            Err(UndoError::NothingRecorded("run-1".into()))
        );
        let recorded = Recorded {
            phase: "flags-off".into(),
            step: "off".into(),
            host: "app-1".into(),
            data: serde_json::json!({ "before": { "new-checkout": true } }),
        };
        let undo = undo_plan("run-1", &remedy, &[recorded]).unwrap();
        assert_eq!(undo.approvals, ["technical-lead"]);
        assert_eq!(undo.phases[0].id, "undo-flags-off");
        let step = &undo.phases[0].steps[0];
        assert_eq!(
            (step.id.as_str(), step.action.as_str()),
            ("restore-off", "restore")
        );
        assert_eq!(step.hosts, ["app-1"]);
        let params: serde_json::Value = serde_json::from_str(&step.params_json).unwrap();
        assert_eq!(
            params,
            serde_json::json!({
                "api_base": "http://u",
                "environment": "production",
                "previous": { "new-checkout": true },
                "token": "${secret:T}"
            })
        );
    }

    #[test]
    fn the_attempt_is_the_newest_run_of_the_remedy_alone_since_the_trigger_fired() {
        let mut dry = brief("dry", &["flags-off"], 500, Some((600, true)));
        dry.dry_run = true;
        let runs = [
            brief("before", &["flags-off"], 50, Some((60, true))),
            brief("full", &[], 200, None),
            brief("with-more", &["flags-off", "application"], 300, None),
            brief("first", &["flags-off"], 150, Some((160, false))),
            brief("second", &["flags-off"], 400, Some((450, true))),
            dry,
        ];
        assert_eq!(
            attempt(&remedy(), 100, &runs),
            Some(Attempt {
                run_id: "second".into(),
                succeeded: Some(true),
                ended_at_ms: Some(450),
            })
        );
        assert_eq!(attempt(&remedy(), 401, &runs), None);
        let running = [brief("now", &["flags-off"], 700, None)];
        assert_eq!(
            attempt(&remedy(), 100, &running).map(|a| a.succeeded),
            Some(None)
        );
    }

    #[test]
    fn the_offer_names_the_flags_it_turns_off_and_the_command() {
        let phase: crate::sections::Phase = toml::from_str(
            "id = \"flags-off\"\nname = \"Feature flags off\"\noptional = true\n[[step]]\nid = \"off\"\nplugin = \"flags\"\naction = \"off\"\non = \"app-1\"\n[step.params]\nflags = [\"new-checkout\", \"ai\"]\n",
        )
        .unwrap();
        assert_eq!(describe(&phase), "turn off flags new-checkout, ai");
        assert_eq!(
            command("High Error Rate"),
            "backout remedy start \"High Error Rate\""
        );
        assert_eq!(command("errors"), "backout remedy start errors");
        assert_eq!(
            command("High \"Error\" Rate's $cost"),
            "backout remedy start 'High \"Error\" Rate'\\''s $cost'"
        );
    }
}
