//! The status page (seed: "Status Page: https://status.…"): for each
//! `status-page` channel the plan says is customer-facing, the run opens an
//! incident when it starts (the affected components' previous status
//! recorded first), posts an update when each phase ends, and resolves it
//! at the end, putting the components back. The `statuspage` plugin does
//! each call on an agent of the channel's `via` (its API key is a secret
//! there); the channel's `params` (`page`, `api_key`, `components`, `name`,
//! `api_base`) go with every call. The text is the template that names the
//! channel for that moment (the customer template at the end), else a plain
//! sentence. Each call is journaled as a message, with the incident.

use backout_plan::model::Plan;
use backout_plan::sections::Channel;
use serde_json::{Map, Value, json};

use super::Runs;
use super::notify::{Delivery, Moment, journal, render, run_plugin};
use crate::journal::{Incident, Record};

const OPENING: &str =
    "We are investigating an issue affecting our service and are rolling back a recent change.";
const RESOLVED: &str = "The issue has been resolved and all services are operating normally.";

/// Opens, updates or resolves each customer-facing status page's incident
/// for `moment`; other moments leave it alone.
pub(super) async fn announce(
    runs: &Runs,
    plan: &Plan,
    run_id: &str,
    moment: &Moment,
    facts: &Value,
    drill: bool,
) {
    let action = match moment {
        Moment::Start => "open",
        Moment::PhaseEnd { .. } => "update",
        Moment::End => "resolve",
        _ => return,
    };
    for (name, channel) in &plan.channels {
        if channel.kind != "status-page" || !channel.customer_facing {
            continue;
        }
        let template = plan
            .templates
            .iter()
            .find(|(_, t)| t.on.iter().any(|m| m == moment.word()) && t.channels.contains(name));
        let drill = if drill { "[DRILL] " } else { "" };
        let body = match (template, moment) {
            (Some((_, t)), _) => render(&t.body, facts),
            (None, Moment::PhaseEnd { phase, status }) => {
                let phase_name = plan
                    .phases
                    .iter()
                    .find(|p| &p.id == phase)
                    .map_or(phase.as_str(), |p| p.name.as_str());
                Ok(format!("{phase_name}: {status}."))
            }
            (None, Moment::End) => Ok(RESOLVED.to_string()),
            (None, _) => Ok(OPENING.to_string()),
        }
        .map(|b| format!("{drill}{}", b.trim()));
        let template_name = template.map_or("status-page", |(n, _)| n.as_str());
        let delivery = match body {
            Ok(body) => call(runs, plan, run_id, name, channel, action, moment, &body).await,
            Err(e) => Delivery::not_sent(None, format!("the template does not render: {e}")),
        };
        journal(runs, plan, run_id, moment, template_name, name, delivery);
    }
}

/// One call of the `statuspage` plugin for `channel_name`.
#[allow(clippy::too_many_arguments)]
async fn call(
    runs: &Runs,
    plan: &Plan,
    run_id: &str,
    channel_name: &str,
    channel: &Channel,
    action: &str,
    moment: &Moment,
    body: &str,
) -> Delivery {
    let mut params: Map<String, Value> = match channel
        .params
        .as_ref()
        .map(|t| serde_json::to_value(t).unwrap_or(Value::Null))
    {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let opened = opened(runs, run_id, channel_name);
    if action == "open" {
        params
            .entry("name")
            .or_insert_with(|| json!("Service disruption"));
    } else {
        // Only `open` takes the incident's name and components.
        params.remove("name");
        params.remove("components");
        let Some(incident) = &opened else {
            return Delivery::not_sent(None, "no incident was opened on this page for the run");
        };
        params.insert("incident".into(), json!(incident.id));
        if action == "resolve" {
            params.insert("previous".into(), json!(incident.previous));
        }
    }
    params.insert("body".into(), json!(body));
    let key = format!("{channel_name}-{action}-{}", moment.word());
    let params = Value::Object(params);
    match run_plugin(
        runs,
        plan,
        run_id,
        channel,
        "statuspage",
        action,
        &params,
        &key,
    )
    .await
    {
        Ok((agent, data)) => {
            let incident = match action {
                "open" => Incident {
                    id: data["incident"].as_str().unwrap_or_default().to_string(),
                    link: data["shortlink"].as_str().map(str::to_string),
                    previous: data["before"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                                .collect()
                        })
                        .unwrap_or_default(),
                },
                _ => opened.unwrap_or(Incident {
                    id: String::new(),
                    link: None,
                    previous: Default::default(),
                }),
            };
            Delivery {
                sent: true,
                via: Some(agent),
                incident: Some(incident),
                ..Delivery::default()
            }
        }
        Err(not_sent) => not_sent,
    }
}

/// The incident this run opened on `channel`, from its journal.
fn opened(runs: &Runs, run_id: &str, channel: &str) -> Option<Incident> {
    let entries = runs.journal.entries(Some(run_id)).ok()?;
    entries.iter().find_map(|e| match &e.record {
        Record::NotificationSent(n) if n.channel == channel && n.moment == "start" => {
            n.incident.clone()
        }
        _ => None,
    })
}
