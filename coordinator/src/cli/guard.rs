//! `backout guard`: watches the decision matrix after a deploy, says every
//! change of every trigger, and acts when one fires: it pages the deciders
//! with what fired it and the time they have left (`[decide_within]`) and,
//! when that time passes with no rollback started, pages them again and
//! escalates as the plan's rules say, once per firing.
//!
//! Guard is what watches at 3 a.m., so it never gives up: when the
//! coordinator cannot be reached it says so and keeps trying, and missing data
//! shows as unknown (the matrix never fires on missing data alone).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use backout_proto::wire;

use super::client::ConnectArgs;
use super::{Exit, human_ms};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How often to look.
    #[arg(long, default_value = "2s", value_parser = backout_config::parse_duration)]
    interval: Duration,
    /// When the deploy happened (RFC 3339, or how long ago, e.g. 5m).
    #[arg(long, value_parser = super::parse_when)]
    deploy_time: Option<i64>,
    /// Exit with code 1 when an immediate trigger fires (for scripts).
    #[arg(long)]
    exit_on_immediate: bool,
}

/// What guard does about one trigger row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The state changed (from, to).
    Changed {
        trigger: String,
        from: String,
        to: String,
        value: String,
    },
    /// An immediate trigger fired.
    Immediate {
        trigger: String,
        deciders: Vec<String>,
        auto_rollback: bool,
        /// When they must have decided (0: the plan sets no deadline).
        decide_by_ms: i64,
        /// What fired it (condition, value, onset): said and journaled.
        evidence: String,
    },
    /// A considered trigger fired: its deciders are paged.
    Page {
        trigger: String,
        deciders: Vec<String>,
        decide_by_ms: i64,
        evidence: String,
    },
    /// A trigger's remedy changed: offered, applied, worked, or did not
    /// clear the trigger (the verdict moves on to the rollback).
    Remedy {
        trigger: String,
        state: String,
        line: String,
        why: String,
    },
    /// A fired trigger's decision deadline passed with no decision: its
    /// deciders are paged again and the plan's escalation rules apply.
    Overdue {
        trigger: String,
        deciders: Vec<String>,
        decide_by_ms: i64,
        late_ms: i64,
        escalate_to: Vec<String>,
    },
}

/// The fired triggers whose decision deadline has passed at `now_ms` with
/// no decision (`decided(fired_at_ms)`: a rollback run started since), each
/// once per firing (`done` remembers trigger and firing time). Pure.
pub fn overdue(
    done: &mut BTreeSet<(String, i64)>,
    rows: &[wire::TriggerRow],
    now_ms: i64,
    decided: &mut dyn FnMut(i64) -> bool,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for row in rows {
        if row.state != "FIRED" || row.decide_by_ms <= 0 || now_ms < row.decide_by_ms {
            continue;
        }
        let key = (row.trigger.clone(), row.fired_at_ms);
        if done.contains(&key) || decided(row.fired_at_ms) {
            continue;
        }
        done.insert(key);
        actions.push(Action::Overdue {
            trigger: row.trigger.clone(),
            deciders: row.deciders.clone(),
            decide_by_ms: row.decide_by_ms,
            late_ms: now_ms - row.decide_by_ms,
            escalate_to: row.escalate_to.clone(),
        });
    }
    actions
}

/// Compares the matrix with the states seen before; returns what to say and
/// do, and updates `seen`. Pure, so the rules are unit-tested.
pub fn step(
    seen: &mut BTreeMap<String, String>,
    rows: &[wire::TriggerRow],
    now_ms: i64,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for row in rows {
        let before = seen.insert(row.trigger.clone(), row.state.clone());
        let remedy = remedy_change(seen, row, now_ms);
        if before.as_deref() == Some(row.state.as_str()) {
            actions.extend(remedy);
            continue;
        }
        actions.push(Action::Changed {
            trigger: row.trigger.clone(),
            from: before.unwrap_or_else(|| "-".into()),
            to: row.state.clone(),
            value: if row.hosts_expected > 0 {
                format!(
                    "{}{}{} of {} hosts heard",
                    row.value,
                    if row.value.is_empty() { "" } else { ", " },
                    row.hosts_heard,
                    row.hosts_expected
                )
            } else {
                row.value.clone()
            },
        });
        if row.state == "FIRED" {
            actions.push(if row.class == "immediate" {
                Action::Immediate {
                    trigger: row.trigger.clone(),
                    deciders: row.deciders.clone(),
                    auto_rollback: row.auto_rollback,
                    decide_by_ms: row.decide_by_ms,
                    evidence: super::matrix::evidence(row, now_ms),
                }
            } else {
                Action::Page {
                    trigger: row.trigger.clone(),
                    deciders: row.deciders.clone(),
                    decide_by_ms: row.decide_by_ms,
                    evidence: super::matrix::evidence(row, now_ms),
                }
            });
        }
        actions.extend(remedy);
    }
    actions
}

/// The row's remedy when it changed since the last look (its state or its
/// attempt), remembered in `seen` under "TRIGGER (remedy)".
fn remedy_change(
    seen: &mut BTreeMap<String, String>,
    row: &wire::TriggerRow,
    now_ms: i64,
) -> Option<Action> {
    let remedy = row.remedy.as_ref()?;
    let now = format!("{} {}", remedy.state, remedy.run_id);
    let before = seen.insert(format!("{} (remedy)", row.trigger), now.clone());
    (before.as_deref() != Some(now.as_str())).then(|| Action::Remedy {
        trigger: row.trigger.clone(),
        state: remedy.state.clone(),
        line: super::matrix::remedy_line(&row.trigger, remedy, now_ms),
        why: remedy.why.clone(),
    })
}

fn clock() -> String {
    let now = std::time::SystemTime::now();
    humantime::format_rfc3339_seconds(now).to_string()
}

/// Runs until Ctrl-C, or (with `exit_on_immediate`) until an immediate
/// trigger fires, which exits 1.
pub async fn run(args: Args, connect: &ConnectArgs) -> anyhow::Result<Exit> {
    let Args {
        interval,
        deploy_time: deploy_ms,
        exit_on_immediate,
    } = args;
    let mut seen = BTreeMap::new();
    let mut escalated = BTreeSet::new();
    let mut control = None;
    let mut was_down = false;
    outln!(
        "{} guard: watching the decision matrix every {}{}",
        clock(),
        human_ms(i64::try_from(interval.as_millis()).unwrap_or(i64::MAX)),
        deploy_ms
            .map(|d| format!(", deploy {} ago", human_ms(backout_proto::now_ms() - d)))
            .unwrap_or_default()
    );
    loop {
        if control.is_none() {
            match connect.control().await {
                Ok(c) => control = Some(c),
                Err(e) if e.is::<super::BadInput>() => return Err(e),
                Err(e) => {
                    if !was_down {
                        outln!(
                            "{} guard: coordinator unreachable ({e:#}); retrying",
                            clock()
                        );
                        was_down = true;
                    }
                }
            }
        }
        if let Some(client) = control.as_mut() {
            match client.matrix(wire::MatrixRequest {}).await {
                Ok(reply) => {
                    let reply = reply.into_inner();
                    if was_down {
                        outln!("{} guard: coordinator reachable again", clock());
                        was_down = false;
                    }
                    if !reply.has_plan {
                        anyhow::bail!(super::BadInput(
                            "the coordinator has no plan: guard needs one (set `plan` in its configuration)".into()
                        ));
                    }
                    let mut actions = step(&mut seen, &reply.rows, reply.now_ms);
                    // Runs are asked for only while a deadline has passed
                    // that was not escalated yet.
                    let runs = if reply.rows.iter().any(|r| {
                        r.state == "FIRED"
                            && r.decide_by_ms > 0
                            && reply.now_ms >= r.decide_by_ms
                            && !escalated.contains(&(r.trigger.clone(), r.fired_at_ms))
                    }) {
                        match client.list_runs(wire::ListRunsRequest::default()).await {
                            Ok(runs) => Some(runs.into_inner().runs),
                            Err(e) => {
                                outln!(
                                    "{} guard: cannot list runs ({}); deadlines wait",
                                    clock(),
                                    e.message()
                                );
                                None
                            }
                        }
                    } else {
                        None
                    };
                    if let Some(runs) = runs {
                        // A rollback run started since the trigger fired is a decision.
                        let mut decided = |fired_at: i64| {
                            runs.iter()
                                .any(|r| !r.dry_run && r.started_at_ms >= fired_at)
                        };
                        // Judged at the evaluation the rows come from, not
                        // at the reply's time: each row's escalation rules
                        // were applied then, so an overdue row always carries
                        // the escalations its deadline brings.
                        actions.extend(overdue(
                            &mut escalated,
                            &reply.rows,
                            reply.evaluated_at_ms,
                            &mut decided,
                        ));
                    }
                    // Say why data is missing whenever a trigger turns unknown.
                    if actions
                        .iter()
                        .any(|a| matches!(a, Action::Changed { to, .. } if to == "unknown"))
                    {
                        for signal in reply.signals.iter().filter(|s| !s.error.is_empty()) {
                            outln!(
                                "{} signal {} has no data: {}; still trying",
                                clock(),
                                signal.name,
                                signal.error
                            );
                        }
                    }
                    for action in actions {
                        if let Some(exit) = act(client, action, exit_on_immediate).await {
                            return Ok(exit);
                        }
                    }
                }
                Err(status) => {
                    outln!(
                        "{} guard: matrix unavailable ({}); retrying",
                        clock(),
                        status.message()
                    );
                    was_down = true;
                    control = None;
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}

async fn act(
    client: &mut wire::control_client::ControlClient<tonic::transport::Channel>,
    action: Action,
    exit_on_immediate: bool,
) -> Option<Exit> {
    let now = clock();
    let record = |trigger: &str, decision: &str, detail: String| wire::RecordDecisionRequest {
        trigger: trigger.into(),
        decision: decision.into(),
        detail,
    };
    match action {
        Action::Changed {
            trigger,
            from,
            to,
            value,
        } => {
            let value = if value.is_empty() {
                String::new()
            } else {
                format!(" (value {value})")
            };
            outln!("{now} {trigger}: {from} -> {to}{value}");
            None
        }
        Action::Remedy {
            trigger,
            state,
            line,
            why,
        } => {
            outln!("{now} {line}");
            if state == "rollback" {
                let request = record(&trigger, "remedy-did-not-clear", why);
                record_or_say(client, request, "the decision").await;
            }
            None
        }
        Action::Overdue {
            trigger,
            deciders,
            decide_by_ms,
            late_ms,
            escalate_to,
        } => {
            let by = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH
                    + Duration::from_millis(u64::try_from(decide_by_ms).unwrap_or(0)),
            );
            let escalation = if escalate_to.is_empty() {
                "no escalation rule applies yet".to_string()
            } else {
                format!("escalating to {}", escalate_to.join(" + "))
            };
            outln!(
                "{now} DECISION OVERDUE: {trigger} fired and nobody decided by {by} ({} late); paging {} again; {escalation}",
                human_ms(late_ms),
                deciders.join(" + ")
            );
            // Said only: the coordinator's deadline watcher journals it
            // (`trigger.overdue`) and sends the plan's messages, guard or
            // no guard, so it is recorded once.
            None
        }
        Action::Page {
            trigger,
            deciders,
            decide_by_ms,
            evidence,
        } => {
            outln!(
                "{now} ASSESS FOR ROLLBACK: {trigger} fired; paging {}{}; {evidence}",
                deciders.join(" + "),
                super::matrix::time_left(decide_by_ms, backout_proto::now_ms())
            );
            let detail = format!("{}; {evidence}", deciders.join(" + "));
            let request = record(&trigger, "page-deciders", detail);
            record_or_say(client, request, "the decision").await;
            None
        }
        Action::Immediate {
            trigger,
            deciders,
            auto_rollback,
            decide_by_ms,
            evidence,
        } => {
            let what = if auto_rollback {
                "the plan lets guard start the rollback"
            } else {
                "the plan leaves the rollback to its deciders"
            };
            outln!(
                "{now} IMMEDIATE ROLLBACK: {trigger} fired; deciders {}{}; {what}; {evidence}",
                deciders.join(" + "),
                super::matrix::time_left(decide_by_ms, backout_proto::now_ms())
            );
            let decision = if auto_rollback {
                "rollback-requested"
            } else {
                "page-deciders"
            };
            let request = record(
                &trigger,
                decision,
                format!("{}; {evidence}", deciders.join(" + ")),
            );
            match client.record_decision(request).await {
                Ok(_) => outln!("{now} decision recorded on the coordinator"),
                Err(e) => outln!(
                    "{now} guard: could not record the decision: {}",
                    e.message()
                ),
            }
            if auto_rollback {
                // The run still waits for the plan's approvals: guard only
                // saves the deciders the minute it takes to start it.
                let request = wire::StartRunRequest {
                    reason: format!("guard: {trigger} fired"),
                    ..Default::default()
                };
                match client.start_run(request).await {
                    Ok(run) => outln!(
                        "{now} rollback run {} started; it waits for {}",
                        run.get_ref().run_id,
                        run.get_ref()
                            .pending
                            .iter()
                            .map(|p| p.roles.join(" + "))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    Err(e) => {
                        outln!("{now} guard: could not start the rollback: {}", e.message())
                    }
                }
            }
            exit_on_immediate.then_some(Exit::Failed)
        }
    }
}

/// Journals a decision on the coordinator; says so when it cannot (guard
/// goes on).
async fn record_or_say(
    client: &mut wire::control_client::ControlClient<tonic::transport::Channel>,
    request: wire::RecordDecisionRequest,
    what: &str,
) {
    if let Err(e) = client.record_decision(request).await {
        outln!(
            "{} guard: could not record {what}: {}",
            clock(),
            e.message()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(trigger: &str, class: &str, state: &str) -> wire::TriggerRow {
        wire::TriggerRow {
            trigger: trigger.into(),
            class: class.into(),
            state: state.into(),
            deciders: vec!["release-manager".into()],
            ..Default::default()
        }
    }

    #[test]
    fn a_remedy_is_said_when_offered_and_again_when_it_did_not_clear() {
        let mut seen = BTreeMap::new();
        let with = |state: &str, run_id: &str| {
            let mut r = row("Errors", "considered", "FIRED");
            r.remedy = Some(wire::RemedyStatus {
                phase: "flags-off".into(),
                state: state.into(),
                what: "turn off flags new-checkout".into(),
                command: "backout remedy start Errors".into(),
                run_id: run_id.into(),
                why: "still firing 3s after the remedy `flags-off` (run run-1)".into(),
                hold: "3s".into(),
                ..Default::default()
            });
            r
        };
        let first = step(&mut seen, &[with("offered", "")], 0);
        assert!(
            matches!(&first[..], [Action::Changed { .. }, Action::Page { .. }, Action::Remedy { line, .. }]
                if line.contains("remedy available for Errors: turn off flags new-checkout")
                    && line.contains("`backout remedy start Errors`")),
            "{first:?}"
        );
        assert!(step(&mut seen, &[with("offered", "")], 0).is_empty());
        let moved = step(&mut seen, &[with("rollback", "run-1")], 0);
        assert!(
            matches!(&moved[..], [Action::Remedy { state, line, .. }]
                if state == "rollback" && line.contains("ROLL BACK") && line.contains("run-1")),
            "{moved:?}"
        );
    }

    #[test]
    fn only_changes_are_reported_and_firing_acts_once() {
        let mut seen = BTreeMap::new();
        let first = step(
            &mut seen,
            &[
                row("Down", "immediate", "ok"),
                row("Errors", "considered", "breaching"),
            ],
            0,
        );
        assert_eq!(first.len(), 2);
        assert!(
            step(
                &mut seen,
                &[
                    row("Down", "immediate", "ok"),
                    row("Errors", "considered", "breaching")
                ],
                0,
            )
            .is_empty()
        );
        let fired = step(
            &mut seen,
            &[
                row("Down", "immediate", "FIRED"),
                row("Errors", "considered", "FIRED"),
            ],
            0,
        );
        assert!(matches!(fired[1], Action::Immediate { .. }), "{fired:?}");
        assert!(matches!(fired[3], Action::Page { .. }), "{fired:?}");
        assert!(
            step(
                &mut seen,
                &[
                    row("Down", "immediate", "FIRED"),
                    row("Errors", "considered", "FIRED")
                ],
                0,
            )
            .is_empty()
        );
    }

    fn fired(trigger: &str, fired_at_ms: i64, decide_by_ms: i64) -> wire::TriggerRow {
        wire::TriggerRow {
            fired_at_ms,
            decide_by_ms,
            escalate_to: vec!["CTO".into()],
            ..row(trigger, "considered", "FIRED")
        }
    }

    #[test]
    fn a_decision_deadline_missed_pages_and_escalates_exactly_once() {
        let mut done = BTreeSet::new();
        let rows = [fired("Errors", 1_000, 31_000)];
        let mut no_run = |_: i64| false;
        assert!(overdue(&mut done, &rows, 30_999, &mut no_run).is_empty());
        let actions = overdue(&mut done, &rows, 31_500, &mut no_run);
        assert_eq!(
            actions,
            [Action::Overdue {
                trigger: "Errors".into(),
                deciders: vec!["release-manager".into()],
                decide_by_ms: 31_000,
                late_ms: 500,
                escalate_to: vec!["CTO".into()],
            }]
        );
        // Every later look: nothing more.
        for now in [32_000, 60_000, 3_600_000] {
            assert!(overdue(&mut done, &rows, now, &mut no_run).is_empty());
        }
        // The trigger recovers and fires again: a new deadline, a new page.
        let again = [fired("Errors", 100_000, 130_000)];
        assert_eq!(overdue(&mut done, &again, 130_000, &mut no_run).len(), 1);
        // A rollback started after it fired is a decision: nothing to escalate.
        let mut done = BTreeSet::new();
        let mut run_started = |fired_at: i64| fired_at <= 20_000;
        assert!(overdue(&mut done, &rows, 31_500, &mut run_started).is_empty());
        // No deadline in the plan, or not fired: never.
        let rows = [fired("Errors", 1_000, 0), row("Down", "immediate", "ok")];
        assert!(overdue(&mut done, &rows, i64::MAX, &mut no_run).is_empty());
    }

    #[test]
    fn unknown_never_acts() {
        let mut seen = BTreeMap::new();
        let actions = step(&mut seen, &[row("Down", "immediate", "unknown")], 0);
        assert_eq!(actions.len(), 1);
        assert!(matches!(actions[0], Action::Changed { .. }));
    }
}
