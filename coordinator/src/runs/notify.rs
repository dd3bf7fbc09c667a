//! Telling people (seed 6.1): the plan's templates, filled from the run's
//! facts with minijinja, sent to their channels at the moments they name:
//! `start`, `approval-waiting`, `end`, and `escalation` (when the run's
//! figures cross an escalation rule's line). A Slack channel is posted by
//! the `notify` plugin on an agent of the channel's `via`; an `email`
//! channel is sent by the coordinator through its `[smtp]` relay
//! (`mail.rs`), each recipient's answer journaled; every message is
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

/// How long a message's post is waited for.
const MESSAGE_WAIT: Duration = Duration::from_secs(30);
use crate::fleet::StepOutcome;
use crate::fleet::dispatch::{Audit, StepSpec, give_up_in};
use crate::journal::{Incident, Notification, Recipient, Record};

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
    /// A phase ended (succeeded, failed or timed out): the status page's
    /// incident gets an update.
    PhaseEnd {
        phase: String,
        status: String,
    },
    /// An escalation rule fired.
    Escalation {
        who: String,
        when: String,
    },
    /// A trigger fired: its deciders are paged (outside any run).
    TriggerFired {
        trigger: String,
    },
    /// A fired trigger's deciders let its decision deadline pass (outside
    /// any run).
    DecisionOverdue {
        trigger: String,
    },
}

impl Moment {
    /// The moment with what tells two of its kind apart (scope, who).
    fn key(&self) -> String {
        match self {
            Moment::ApprovalWaiting { scope, .. } => format!("approval-waiting-{scope}"),
            Moment::Escalation { who, .. } => format!("escalation-{who}"),
            Moment::PhaseEnd { phase, .. } => format!("phase-end-{phase}"),
            Moment::TriggerFired { trigger } => format!("trigger-fired-{trigger}"),
            Moment::DecisionOverdue { trigger } => format!("decision-overdue-{trigger}"),
            other => other.word().to_string(),
        }
    }

    pub(super) fn word(&self) -> &'static str {
        match self {
            Moment::Start => "start",
            Moment::ApprovalWaiting { .. } => "approval-waiting",
            Moment::End => "end",
            Moment::PhaseEnd { .. } => "phase-end",
            Moment::Escalation { .. } => "escalation",
            Moment::TriggerFired { .. } => "trigger-fired",
            Moment::DecisionOverdue { .. } => "decision-overdue",
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
            // The run's last message is out ([`done_telling`]): an ended
            // run leaves memory.
            runs.leave_memory(&run_id);
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
    // The figures the run keeps as its steps succeed: a message never
    // reads the run's journal back (and a run that left memory has none).
    let (figures, _) = runs.figures_now(run_id)?;
    let summary = runs.summary(run_id)?;
    let plan = runs.board.as_ref()?.plan();
    let meta = &summary.meta;
    let end = meta.finished_at_ms.unwrap_or_else(now_ms);
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
        "contacts": contact_facts(plan),
        "bridge": bridge(plan),
        "paged": paged(plan, moment).join("; "),
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
            // The journal's checkpoint signed at the run's end: people keep
            // it outside the journal (`audit verify --checkpoint`).
            Moment::End => {
                if let Some(c) = runs.journal.checkpoint_of(run_id) {
                    map.insert("checkpoint".into(), json!(c.announced()));
                    map.insert("checkpoint_signature".into(), json!(c.signature));
                    map.insert("checkpoint_key".into(), json!(c.key_id));
                }
            }
            _ => {}
        }
    }
    Some(facts)
}

/// The plan's contacts by role (`contacts["release-manager"].primary.name`,
/// `.phone`, `.backup...`), for templates.
fn contact_facts(plan: &Plan) -> Value {
    let person = |p: &backout_plan::sections::Person| json!({ "name": p.name, "phone": p.phone });
    Value::Object(
        plan.contacts
            .iter()
            .map(|c| {
                (
                    c.role.clone(),
                    json!({ "primary": person(&c.primary), "backup": person(&c.backup) }),
                )
            })
            .collect(),
    )
}

/// The conference bridge: every `phone-bridge` channel's target.
fn bridge(plan: &Plan) -> String {
    plan.channels
        .values()
        .filter(|c| c.kind == "phone-bridge")
        .map(|c| c.target.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Who a moment pages: the roles an approval waits for, or the escalation's
/// `who`, each as the plan's contacts for it ("dba: Dana Lee +1 555 0102,
/// backup: Sam Roe +1 555 0103"). Other moments page nobody in particular.
pub fn paged(plan: &Plan, moment: &Moment) -> Vec<String> {
    let roles: Vec<&str> = match moment {
        Moment::ApprovalWaiting { roles, .. } => roles.iter().map(String::as_str).collect(),
        Moment::Escalation { who, .. } => vec![who.as_str()],
        _ => return Vec::new(),
    };
    let person = |p: &backout_plan::sections::Person| {
        format!("{} {}", p.name.trim(), p.phone.trim())
            .trim()
            .to_string()
    };
    roles
        .iter()
        .map(
            |role| match plan.contacts.iter().find(|c| c.role == *role) {
                Some(c) => {
                    let primary = person(&c.primary);
                    let backup = person(&c.backup);
                    let primary = if primary.is_empty() {
                        "no primary contact in the plan".to_string()
                    } else {
                        primary
                    };
                    if backup.is_empty() {
                        format!("{role}: {primary}")
                    } else {
                        format!("{role}: {primary}, backup: {backup}")
                    }
                }
                None => format!("{role}: no contact in the plan"),
            },
        )
        .collect()
}

/// One message to one channel: where it would go, or why it cannot.
pub(super) fn agent_for(runs: &Runs, plan: &Plan, via: &str) -> Option<String> {
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
    let Some(meta) = runs.meta(&run_id) else {
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
        let channels = channels_for(plan, template, &moment);
        let drill = if meta.drill { "[DRILL] " } else { "" };
        let filled = with_checkpoint(fill(name, template, &facts, drill), template, &facts);
        for channel_name in &channels {
            // A public status page's incident carries this template's text
            // at its own moments (`incident.rs`).
            if plan
                .channels
                .get(channel_name)
                .is_some_and(|c| c.kind == "status-page" && c.customer_facing)
            {
                continue;
            }
            let delivery = send(&runs, plan, &run_id, name, channel_name, &moment, &filled).await;
            journal(&runs, plan, &run_id, &moment, name, channel_name, delivery);
        }
    }
    super::incident::announce(&runs, plan, &run_id, &moment, &facts, meta.drill).await;
}

/// Journals one message of run `run_id` (or why it was not sent) and tells
/// watchers.
pub(super) fn journal(
    runs: &Runs,
    plan: &Plan,
    run_id: &str,
    moment: &Moment,
    template: &str,
    channel: &str,
    delivery: Delivery,
) {
    let scope = match moment {
        Moment::ApprovalWaiting { scope, .. } => Some(scope.clone()),
        Moment::PhaseEnd { phase, .. } => Some(phase.clone()),
        _ => None,
    };
    journal_as(
        runs, plan, run_id, scope, moment, template, channel, delivery,
    );
}

/// [`journal`] with its scope given: a trigger's messages are journaled
/// outside runs (`run_id` empty) under the trigger's name.
#[allow(clippy::too_many_arguments)]
fn journal_as(
    runs: &Runs,
    plan: &Plan,
    run_id: &str,
    scope: Option<String>,
    moment: &Moment,
    template: &str,
    channel: &str,
    delivery: Delivery,
) {
    let Delivery {
        sent,
        via,
        why,
        recipients,
        incident,
    } = delivery;
    let text = why.clone().unwrap_or_else(|| moment.word().to_string());
    let record = Record::notification(Notification {
        template: template.to_string(),
        channel: channel.to_string(),
        moment: moment.word().into(),
        scope,
        sent,
        via,
        why,
        recipients,
        paged: Some(paged(plan, moment)).filter(|p| !p.is_empty()),
        incident,
    });
    let at = now_ms();
    match runs.journal.append(at, run_id, &record) {
        Ok(written) => runs.publish(RunEvent {
            seq: written.seq,
            run_id: run_id.to_string(),
            at_ms: at,
            kind: if sent { "notified" } else { "not-notified" }.into(),
            step: template.to_string(),
            host: channel.to_string(),
            text,
            ..RunEvent::default()
        }),
        Err(e) => {
            tracing::error!(run = %run_id, error = %e, "cannot journal a notification")
        }
    }
}

/// A trigger's moment told outside any run (`trigger-fired`, or
/// `decision-overdue`): the templates sent at it go to their channels (the
/// trigger's deciders), and for each person the plan's escalation rules
/// name, the templates sent at `escalation` go to the rule's channels (or
/// their own). Each message is journaled outside runs (`scope`: the
/// trigger), sent or not. `facts` fill the templates.
pub async fn tell_trigger(runs: &Runs, moment: Moment, escalate_to: &[String], facts: &Value) {
    let Some(board) = &runs.board else { return };
    let plan = board.plan();
    let trigger = match &moment {
        Moment::TriggerFired { trigger } | Moment::DecisionOverdue { trigger } => trigger.clone(),
        _ => return,
    };
    let trigger = trigger.as_str();
    let mut moments = vec![moment];
    moments.extend(escalate_to.iter().map(|who| {
        Moment::Escalation {
            who: who.clone(),
            when: plan
                .escalations
                .iter()
                .find(|e| &e.who == who)
                .map(|e| e.when_text.clone())
                .unwrap_or_default(),
        }
    }));
    for moment in moments {
        let mut facts = facts.clone();
        // The plan's contacts and bridge, and whom this moment pages, as in
        // a run's messages (an escalation pages the rule's `who`).
        if let Some(map) = facts.as_object_mut() {
            map.insert("contacts".into(), contact_facts(plan));
            map.insert("bridge".into(), json!(bridge(plan)));
            map.insert("paged".into(), json!(paged(plan, &moment).join("; ")));
        }
        if let (Some(map), Moment::Escalation { who, when }) = (facts.as_object_mut(), &moment) {
            map.insert("escalation_who".into(), json!(who));
            map.insert("escalation_when".into(), json!(when));
            map.insert("moment".into(), json!(moment.word()));
        }
        for (name, template) in &plan.templates {
            if !template.on.iter().any(|m| m == moment.word()) {
                continue;
            }
            let channels = channels_for(plan, template, &moment);
            let filled = fill(name, template, &facts, "");
            // Commands need a run id: like health probes, one of their own
            // (no run of that id exists; the message is journaled outside runs).
            let command_run = format!("trigger-{}", now_ms());
            for channel_name in &channels {
                let delivery = send(
                    runs,
                    plan,
                    &command_run,
                    name,
                    channel_name,
                    &moment,
                    &filled,
                )
                .await;
                let scope = Some(trigger.to_string());
                journal_as(runs, plan, "", scope, &moment, name, channel_name, delivery);
            }
        }
    }
}

/// Template `name`'s title (its `subject`, or "Backout: NAME") and body,
/// filled from `facts`, each after `prefix` (a drill's "[DRILL] "); or why
/// it does not render.
fn fill(
    name: &str,
    template: &backout_plan::sections::Template,
    facts: &Value,
    prefix: &str,
) -> Result<(String, String), String> {
    let body = render(&template.body, facts)?;
    let title = match template.subject.as_deref() {
        Some(subject) => render(subject, facts)?,
        None => format!("Backout: {name}"),
    };
    Ok((format!("{prefix}{title}"), format!("{prefix}{body}")))
}

/// An end message whose template does not place the run's checkpoint
/// (`{{ checkpoint }}`) gets it as its last line: everyone told of the end
/// holds a copy of the signed head outside the journal.
fn with_checkpoint(
    filled: Result<(String, String), String>,
    template: &backout_plan::sections::Template,
    facts: &Value,
) -> Result<(String, String), String> {
    let (Ok((title, body)), Some(c), Some(sig)) = (
        &filled,
        facts.get("checkpoint").and_then(Value::as_str),
        facts.get("checkpoint_signature").and_then(Value::as_str),
    ) else {
        return filled;
    };
    if template.body.contains("checkpoint") {
        return filled;
    }
    Ok((
        title.clone(),
        format!(
            "{body}\n\nJournal checkpoint {c} (signature {sig}); check the journal still holds it: backout audit verify --checkpoint {c}"
        ),
    ))
}

/// The channels a template goes to at `moment`: an escalation's rule may
/// name its own.
fn channels_for(
    plan: &Plan,
    template: &backout_plan::sections::Template,
    moment: &Moment,
) -> Vec<String> {
    match moment {
        Moment::Escalation { who, .. } => plan
            .escalations
            .iter()
            .find(|e| &e.who == who)
            .map(|e| e.channels.clone())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| template.channels.clone()),
        _ => template.channels.clone(),
    }
}

/// Whether a message went out: through which agent, or why not.
#[derive(Default)]
pub(super) struct Delivery {
    pub sent: bool,
    pub via: Option<String>,
    pub why: Option<String>,
    /// An e-mail's recipients and the relay's answers.
    pub recipients: Option<Vec<Recipient>>,
    /// The status page's incident the message opened or went to.
    pub incident: Option<Incident>,
}

impl Delivery {
    pub(super) fn not_sent(via: Option<String>, why: impl Into<String>) -> Delivery {
        Delivery {
            via,
            why: Some(why.into()),
            ..Delivery::default()
        }
    }
}

/// Sends one e-mail through the coordinator's relay: sent when every
/// recipient's relay accepted it; otherwise `why` names each refusal.
async fn send_mail(runs: &Runs, run_id: &str, target: &str, title: &str, body: &str) -> Delivery {
    let Some(smtp) = &runs.smtp else {
        return Delivery::not_sent(
            None,
            "Backout does not send to `email` channels without `[smtp]` in the coordinator's configuration: send it by hand",
        );
    };
    let to = super::mail::recipients_of(target);
    if to.is_empty() {
        return Delivery::not_sent(None, "the channel's target names no address");
    }
    match super::mail::send(smtp, &to, title, body, run_id).await {
        Ok(recipients) => {
            let refused: Vec<String> = recipients
                .iter()
                .filter(|r| !r.delivered)
                .map(|r| format!("not delivered to {}: {}", r.address, r.reply))
                .collect();
            Delivery {
                sent: refused.is_empty(),
                via: Some(format!("smtp {}", smtp.server)),
                why: (!refused.is_empty()).then(|| refused.join("; ")),
                recipients: Some(recipients),
                incident: None,
            }
        }
        Err(e) => Delivery::not_sent(None, e.to_string()),
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
    filled: &Result<(String, String), String>,
) -> Delivery {
    let (title, body) = match filled {
        Ok((title, body)) => (title.as_str(), body.as_str()),
        Err(e) => return Delivery::not_sent(None, format!("the template does not render: {e}")),
    };
    let Some(channel) = plan.channels.get(channel_name) else {
        return Delivery::not_sent(None, "no such channel");
    };
    if channel.kind == "email" {
        return send_mail(runs, run_id, &channel.target, title, body).await;
    }
    if channel.kind == "status-page" && !channel.customer_facing {
        return Delivery::not_sent(
            None,
            "the plan does not say the incident is customer-facing (`customer_facing = true` on the channel): nothing is published",
        );
    }
    if channel.kind != "slack" {
        return Delivery::not_sent(
            None,
            format!(
                "Backout does not send to `{}` channels: send it by hand",
                channel.kind
            ),
        );
    }
    // The notify plugin fills `{{name}}` itself: the message is already filled.
    let text = unbrace(body);
    let params = json!({ "url": channel.target, "title": unbrace(title), "template": text });
    let key = format!("{template}-{channel_name}-{}", moment.key());
    match run_plugin(runs, plan, run_id, channel, "notify", "post", &params, &key).await {
        Ok((agent, _)) => Delivery {
            sent: true,
            via: Some(agent),
            ..Delivery::default()
        },
        Err(not_sent) => not_sent,
    }
}

/// Runs one step of a channel's plugin on an agent of its `via`: the
/// agent and the step's data, or why it did not succeed. `key` tells the
/// message apart in its step id.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_plugin(
    runs: &Runs,
    plan: &Plan,
    run_id: &str,
    channel: &backout_plan::sections::Channel,
    plugin: &str,
    action: &str,
    params: &Value,
    key: &str,
) -> Result<(String, Value), Delivery> {
    let Some(via) = &channel.via else {
        return Err(Delivery::not_sent(
            None,
            "the channel names no `via` agent to post it",
        ));
    };
    let Some(agent) = agent_for(runs, plan, via) else {
        return Err(Delivery::not_sent(
            None,
            format!("no agent of `{via}` is connected"),
        ));
    };
    let spec = StepSpec {
        run_id: run_id.to_string(),
        // Unique per message: a step id the agent has seen answers from its
        // ledger without posting again.
        step_id: format!("{run_id}/{plugin}/{key}#{}", backout_proto::now_ms()),
        agent_id: agent.clone(),
        plugin: plugin.into(),
        action: action.into(),
        params_json: params.to_string(),
        dry_run: false,
        deadline: Some(Duration::from_secs(20)),
        give_up_at_ms: give_up_in(MESSAGE_WAIT),
        audit: Audit::Run,
        traceparent: String::new(),
        approvals: Default::default(),
    };
    let pending = runs.dispatcher.send(spec).await;
    let command_id = pending.command_id.clone();
    let outcome = pending.wait(MESSAGE_WAIT).await;
    if matches!(outcome, StepOutcome::TimedOut) {
        runs.dispatcher.forget(&command_id);
    }
    match outcome {
        StepOutcome::Succeeded { data_json, .. } => Ok((
            agent,
            serde_json::from_str(&data_json).unwrap_or(Value::Null),
        )),
        other => Err(Delivery::not_sent(Some(agent), other.detail())),
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

    fn plan_with_contacts() -> Plan {
        let text = r#"
[plan]
name = "p"
[[host]]
id = "app-1"
[channels.bridge]
kind = "phone-bridge"
target = "+1 555 0100 / 4242"
[[contact]]
role = "dba"
primary = { name = "Dana Lee", phone = "+1 555 0102" }
backup = { name = "Sam Roe", phone = "+1 555 0103" }
[[contact]]
role = "CTO"
primary = { name = "Chris Tan" }
"#;
        Plan::parse(std::path::Path::new("plan.toml"), text).unwrap()
    }

    #[test]
    fn an_end_message_carries_the_runs_checkpoint_unless_its_template_places_it() {
        let template = |body: &str| backout_plan::sections::Template {
            subject: None,
            body: body.into(),
            channels: Vec::new(),
            on: vec!["end".into()],
        };
        let facts =
            json!({ "result": "succeeded", "checkpoint": "9:abc", "checkpoint_signature": "5eed" });
        let plain = template("Rollback {{ result }}.");
        let filled = with_checkpoint(fill("end", &plain, &facts, ""), &plain, &facts);
        assert_eq!(
            filled.unwrap().1,
            "Rollback succeeded.\n\nJournal checkpoint 9:abc (signature 5eed); check the journal still holds it: backout audit verify --checkpoint 9:abc"
        );
        let placed = template("Rollback {{ result }}, journal at {{ checkpoint }}.");
        let filled = with_checkpoint(fill("end", &placed, &facts, ""), &placed, &facts);
        assert_eq!(filled.unwrap().1, "Rollback succeeded, journal at 9:abc.");
        // No checkpoint key: the message is as its template says.
        let facts = json!({ "result": "succeeded" });
        let filled = with_checkpoint(fill("end", &plain, &facts, ""), &plain, &facts);
        assert_eq!(filled.unwrap().1, "Rollback succeeded.");
    }

    #[test]
    fn an_approval_or_escalation_pages_the_plans_contacts_for_its_roles() {
        let plan = plan_with_contacts();
        let waiting = Moment::ApprovalWaiting {
            scope: "database".into(),
            roles: vec!["dba".into(), "product-owner".into()],
        };
        assert_eq!(
            paged(&plan, &waiting),
            [
                "dba: Dana Lee +1 555 0102, backup: Sam Roe +1 555 0103",
                "product-owner: no contact in the plan",
            ]
        );
        let escalation = Moment::Escalation {
            who: "CTO".into(),
            when: "data_loss_usd > 10000".into(),
        };
        assert_eq!(paged(&plan, &escalation), ["CTO: Chris Tan"]);
        assert!(paged(&plan, &Moment::Start).is_empty());
    }

    #[test]
    fn templates_can_name_contacts_and_the_bridge() {
        let plan = plan_with_contacts();
        let facts = json!({ "contacts": contact_facts(&plan), "bridge": bridge(&plan) });
        assert_eq!(
            render(
                "Bridge: {{ bridge }}. DBA: {{ contacts.dba.primary.name }} ({{ contacts.dba.primary.phone }}), backup {{ contacts.dba.backup.name }}.",
                &facts
            )
            .unwrap(),
            "Bridge: +1 555 0100 / 4242. DBA: Dana Lee (+1 555 0102), backup Sam Roe."
        );
    }

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
