//! Telling people (seed 6.1): the plan's templates, filled from the run's
//! facts with minijinja, sent to their channels at the moments they name:
//! `start`, `approval-waiting`, `end`, and `escalation` (when the run's
//! figures cross an escalation rule's line). A Slack channel is posted by
//! the `notify` plugin on an agent of the channel's `via`; every message is
//! journaled with the time it went out (`notification.sent`), or with why it
//! did not (`notification.skipped`). Dry runs tell nobody; drills say so.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backout_plan::model::Plan;
use backout_proto::now_ms;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{RunEvent, Runs};
use crate::fleet::StepOutcome;
use crate::fleet::dispatch::StepSpec;
use crate::journal::{Notification, Record};

/// When a message goes out.
#[derive(Debug, Clone)]
pub enum Moment {
    Start,
    /// A scope ("run" or a phase) began waiting for these roles.
    ApprovalWaiting {
        scope: String,
        roles: Vec<String>,
    },
    End,
    /// An escalation rule fired.
    Escalation {
        who: String,
        when: String,
    },
}

impl Moment {
    /// The moment with what tells two of its kind apart (scope, who).
    fn key(&self) -> String {
        match self {
            Moment::ApprovalWaiting { scope, .. } => format!("approval-waiting-{scope}"),
            Moment::Escalation { who, .. } => format!("escalation-{who}"),
            other => other.word().to_string(),
        }
    }

    fn word(&self) -> &'static str {
        match self {
            Moment::Start => "start",
            Moment::ApprovalWaiting { .. } => "approval-waiting",
            Moment::End => "end",
            Moment::Escalation { .. } => "escalation",
        }
    }
}

/// Each run's messages go out one at a time, in the order they were asked
/// for: an "approval waiting" message never arrives after the escalation
/// that followed the approval.
#[derive(Default)]
pub struct Queues(Mutex<BTreeMap<String, mpsc::UnboundedSender<Moment>>>);

/// Queues the messages of `moment` for run `run_id`.
pub fn tell(runs: &Arc<Runs>, run_id: &str, moment: Moment) {
    let mut queues = runs.announcers.0.lock().unwrap_or_else(|p| p.into_inner());
    let queue = queues.entry(run_id.to_string()).or_insert_with(|| {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (runs, run_id) = (runs.clone(), run_id.to_string());
        tokio::spawn(async move {
            while let Some(moment) = rx.recv().await {
                announce(runs.clone(), run_id.clone(), moment).await;
            }
        });
        tx
    });
    if queue.send(moment).is_err() {
        tracing::error!(run = %run_id, "the run's message queue has stopped");
    }
}

/// The run's last message is queued: its queue ends once it has sent it.
pub fn done_telling(runs: &Runs, run_id: &str) {
    let mut queues = runs.announcers.0.lock().unwrap_or_else(|p| p.into_inner());
    queues.remove(run_id);
}

/// Fills `text` from `facts`; a variable the facts lack renders empty
/// rather than failing a message someone is waiting for.
pub fn render(text: &str, facts: &Value) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env.render_str(text, facts).map_err(|e| e.to_string())
}

/// The facts templates are filled from, for one run at one moment.
pub fn facts(runs: &Runs, run_id: &str, moment: &Moment) -> Option<Value> {
    let summary = runs.summary(run_id)?;
    let plan = runs.board.as_ref()?.plan();
    let entries = runs.journal.entries(Some(run_id)).ok()?;
    let meta = &summary.meta;
    let end = meta.finished_at_ms.unwrap_or_else(now_ms);
    let figures = crate::replay::figures_of(&entries, meta.started_at_ms, end);
    let mut status: BTreeMap<String, String> = summary
        .phases
        .iter()
        .map(|p| (p.id.clone(), p.status.word().to_string()))
        .collect();
    // The seed's template speaks of "providers" for the external services.
    if let Some(s) = status.get("external-services").cloned() {
        status.entry("providers".into()).or_insert(s);
    }
    let release_manager = summary
        .approvals
        .iter()
        .find(|a| a.starts_with("release-manager:"))
        .and_then(|a| a.split(": ").nth(1))
        .and_then(|a| a.split(" (").next())
        .unwrap_or(&meta.started_by)
        .to_string();
    let rca = plan
        .report
        .as_ref()
        .and_then(|r| r.root_cause_due)
        .map(|due| crate::text::rfc3339(end + i64::try_from(due.as_millis()).unwrap_or(0)));
    let data_loss = figures
        .get("data_loss_usd")
        .and_then(Value::as_f64)
        .map_or("none measured".to_string(), |usd| format!("${usd:.2}"));
    let mut facts = json!({
        "run_id": meta.id,
        "plan": plan.meta.name,
        "reason": meta.reason,
        "issue": meta.reason,
        "to_version": meta.to_version,
        "started_by": meta.started_by,
        "start_time": crate::text::rfc3339(meta.started_at_ms),
        "rollback_time": crate::text::rfc3339(meta.started_at_ms),
        "end_time": meta.finished_at_ms.map(crate::text::rfc3339),
        "duration": crate::text::human_ms(end - meta.started_at_ms),
        "status": status,
        "result": summary.status.word(),
        "data_loss": data_loss,
        "figures": figures,
        "impact": meta.reason,
        "release_manager": release_manager,
        "rca_meeting": rca,
        "drill": meta.drill,
        "moment": moment.word(),
    });
    if let Some(map) = facts.as_object_mut() {
        match moment {
            Moment::ApprovalWaiting { scope, roles } => {
                map.insert("waiting_scope".into(), json!(scope));
                map.insert("waiting_roles".into(), json!(roles.join(" + ")));
            }
            Moment::Escalation { who, when } => {
                map.insert("escalation_who".into(), json!(who));
                map.insert("escalation_when".into(), json!(when));
            }
            _ => {}
        }
    }
    Some(facts)
}

/// One message to one channel: where it would go, or why it cannot.
fn agent_for(runs: &Runs, plan: &Plan, via: &str) -> Option<String> {
    let connected = runs.registry.connected_ids();
    plan.hosts
        .iter()
        .filter(|h| h.id == via || h.groups.iter().any(|g| g == via))
        .map(|h| h.id.clone())
        .find(|id| connected.contains(id))
}

/// Sends every template meant for `moment`, and journals each message.
async fn announce(runs: Arc<Runs>, run_id: String, moment: Moment) {
    let Some(board) = &runs.board else { return };
    let plan = board.plan();
    let Some(meta) = runs.summary(&run_id).map(|s| s.meta) else {
        return;
    };
    if meta.dry_run {
        return;
    }
    let Some(facts) = facts(&runs, &run_id, &moment) else {
        return;
    };
    for (name, template) in &plan.templates {
        if !template.on.iter().any(|m| m == moment.word()) {
            continue;
        }
        let channels: Vec<String> = match &moment {
            Moment::Escalation { who, .. } => plan
                .escalations
                .iter()
                .find(|e| &e.who == who)
                .map(|e| e.channels.clone())
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| template.channels.clone()),
            _ => template.channels.clone(),
        };
        let drill = if meta.drill { "[DRILL] " } else { "" };
        let rendered = render(&template.body, &facts).map(|body| format!("{drill}{body}"));
        let title = template
            .subject
            .as_deref()
            .map_or(Ok(format!("Backout: {name}")), |s| render(s, &facts))
            .map(|t| format!("{drill}{t}"));
        for channel_name in &channels {
            let delivery = match (&rendered, &title) {
                (Ok(body), Ok(title)) => {
                    send(
                        &runs,
                        plan,
                        &run_id,
                        name,
                        channel_name,
                        &moment,
                        title,
                        body,
                    )
                    .await
                }
                (Err(e), _) | (_, Err(e)) => {
                    Delivery::not_sent(None, format!("the template does not render: {e}"))
                }
            };
            let Delivery { sent, via, why } = delivery;
            let text = why.clone().unwrap_or_else(|| moment.word().to_string());
            let record = Record::notification(Notification {
                template: name.clone(),
                channel: channel_name.clone(),
                moment: moment.word().into(),
                scope: match &moment {
                    Moment::ApprovalWaiting { scope, .. } => Some(scope.clone()),
                    _ => None,
                },
                sent,
                via,
                why,
            });
            let at = now_ms();
            match runs.journal.append(at, &run_id, &record) {
                Ok(written) => runs.publish(RunEvent {
                    seq: written.seq,
                    run_id: run_id.clone(),
                    at_ms: at,
                    kind: if sent { "notified" } else { "not-notified" }.into(),
                    step: name.clone(),
                    host: channel_name.clone(),
                    text,
                    ..RunEvent::default()
                }),
                Err(e) => {
                    tracing::error!(run = %run_id, error = %e, "cannot journal a notification")
                }
            }
        }
    }
}

/// Whether a message went out: through which agent, or why not.
struct Delivery {
    sent: bool,
    via: Option<String>,
    why: Option<String>,
}

impl Delivery {
    fn not_sent(via: Option<String>, why: impl Into<String>) -> Delivery {
        Delivery {
            sent: false,
            via,
            why: Some(why.into()),
        }
    }
}

/// Posts one message through the `notify` plugin of an agent of the
/// channel's `via`. Returns what the journal keeps of it.
#[allow(clippy::too_many_arguments)]
async fn send(
    runs: &Runs,
    plan: &Plan,
    run_id: &str,
    template: &str,
    channel_name: &str,
    moment: &Moment,
    title: &str,
    body: &str,
) -> Delivery {
    let Some(channel) = plan.channels.get(channel_name) else {
        return Delivery::not_sent(None, "no such channel");
    };
    if channel.kind != "slack" {
        return Delivery::not_sent(
            None,
            format!(
                "Backout does not send to `{}` channels: send it by hand",
                channel.kind
            ),
        );
    }
    let Some(via) = &channel.via else {
        return Delivery::not_sent(None, "the channel names no `via` agent to post it");
    };
    let Some(agent) = agent_for(runs, plan, via) else {
        return Delivery::not_sent(None, format!("no agent of `{via}` is connected"));
    };
    // The notify plugin fills `{{name}}` itself: the message is already filled.
    let text = unbrace(body);
    let params = json!({ "url": channel.target, "title": unbrace(title), "template": text });
    let spec = StepSpec {
        run_id: run_id.to_string(),
        // Unique per message: a step id the agent has seen answers from its
        // ledger without posting again.
        step_id: format!(
            "{run_id}/notify/{template}-{channel_name}-{}#{}",
            moment.key(),
            backout_proto::now_ms()
        ),
        agent_id: agent.clone(),
        plugin: "notify".into(),
        action: "post".into(),
        params_json: params.to_string(),
        dry_run: false,
        deadline: Some(Duration::from_secs(20)),
        journal_events: true,
        traceparent: String::new(),
    };
    let pending = runs.dispatcher.send(spec).await;
    let command_id = pending.command_id.clone();
    let outcome = pending.wait(Duration::from_secs(30)).await;
    if matches!(outcome, StepOutcome::TimedOut) {
        runs.dispatcher.forget(&command_id);
    }
    match outcome {
        StepOutcome::Succeeded { .. } => Delivery {
            sent: true,
            via: Some(agent),
            why: None,
        },
        other => Delivery::not_sent(Some(agent), other.detail()),
    }
}

/// The notify plugin fills `{{name}}` itself; an already filled message
/// must not contain `{{` (whatever an operator typed in a reason).
fn unbrace(text: &str) -> String {
    let mut text = text.to_string();
    while text.contains("{{") {
        text = text.replace("{{", "{ {");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_double_brace_survives() {
        assert_eq!(unbrace("a {{{x}}} b"), "a { { {x}}} b");
        assert!(!unbrace("{{{{").contains("{{"));
    }

    #[test]
    fn templates_fill_from_facts_and_missing_facts_render_empty() {
        let facts = json!({ "reason": "5xx at 12%", "status": { "application": "succeeded" } });
        assert_eq!(
            render(
                "Decision: {{ reason }} / app {{ status.application }} / db {{ status.database }}.",
                &facts
            )
            .unwrap(),
            "Decision: 5xx at 12% / app succeeded / db ."
        );
        assert!(render("{{ unclosed", &facts).is_err());
    }
}
