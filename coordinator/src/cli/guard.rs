//! `backout guard`: watches the decision matrix after a deploy, says every
//! change of every trigger, and acts when one fires.
//!
//! Guard is what watches at 3 a.m., so it never gives up: when the
//! coordinator cannot be reached it says so and keeps trying, and missing data
//! shows as unknown (the matrix never fires on missing data alone).

use std::collections::BTreeMap;
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
    },
    /// A considered trigger fired: its deciders are paged.
    Page {
        trigger: String,
        deciders: Vec<String>,
    },
}

/// Compares the matrix with the states seen before; returns what to say and
/// do, and updates `seen`. Pure, so the rules are unit-tested.
pub fn step(seen: &mut BTreeMap<String, String>, rows: &[wire::TriggerRow]) -> Vec<Action> {
    let mut actions = Vec::new();
    for row in rows {
        let before = seen.insert(row.trigger.clone(), row.state.clone());
        if before.as_deref() == Some(row.state.as_str()) {
            continue;
        }
        actions.push(Action::Changed {
            trigger: row.trigger.clone(),
            from: before.unwrap_or_else(|| "-".into()),
            to: row.state.clone(),
            value: row.value.clone(),
        });
        if row.state == "FIRED" {
            actions.push(if row.class == "immediate" {
                Action::Immediate {
                    trigger: row.trigger.clone(),
                    deciders: row.deciders.clone(),
                    auto_rollback: row.auto_rollback,
                }
            } else {
                Action::Page {
                    trigger: row.trigger.clone(),
                    deciders: row.deciders.clone(),
                }
            });
        }
    }
    actions
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
                    let actions = step(&mut seen, &reply.rows);
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
        Action::Page { trigger, deciders } => {
            outln!(
                "{now} ASSESS FOR ROLLBACK: {trigger} fired; paging {}",
                deciders.join(" + ")
            );
            let request = record(&trigger, "page-deciders", deciders.join(" + "));
            if let Err(e) = client.record_decision(request).await {
                outln!(
                    "{now} guard: could not record the decision: {}",
                    e.message()
                );
            }
            None
        }
        Action::Immediate {
            trigger,
            deciders,
            auto_rollback,
        } => {
            let what = if auto_rollback {
                "the plan lets guard start the rollback"
            } else {
                "the plan leaves the rollback to its deciders"
            };
            outln!(
                "{now} IMMEDIATE ROLLBACK: {trigger} fired; deciders {}; {what}",
                deciders.join(" + ")
            );
            let decision = if auto_rollback {
                "rollback-requested"
            } else {
                "page-deciders"
            };
            let request = record(&trigger, decision, deciders.join(" + "));
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
    fn only_changes_are_reported_and_firing_acts_once() {
        let mut seen = BTreeMap::new();
        let first = step(
            &mut seen,
            &[
                row("Down", "immediate", "ok"),
                row("Errors", "considered", "breaching"),
            ],
        );
        assert_eq!(first.len(), 2);
        assert!(
            step(
                &mut seen,
                &[
                    row("Down", "immediate", "ok"),
                    row("Errors", "considered", "breaching")
                ]
            )
            .is_empty()
        );
        let fired = step(
            &mut seen,
            &[
                row("Down", "immediate", "FIRED"),
                row("Errors", "considered", "FIRED"),
            ],
        );
        assert!(matches!(fired[1], Action::Immediate { .. }), "{fired:?}");
        assert!(matches!(fired[3], Action::Page { .. }), "{fired:?}");
        assert!(
            step(
                &mut seen,
                &[
                    row("Down", "immediate", "FIRED"),
                    row("Errors", "considered", "FIRED")
                ]
            )
            .is_empty()
        );
    }

    #[test]
    fn unknown_never_acts() {
        let mut seen = BTreeMap::new();
        let actions = step(&mut seen, &[row("Down", "immediate", "unknown")]);
        assert_eq!(actions.len(), 1);
        assert!(matches!(actions[0], Action::Changed { .. }));
    }
}
