//! The `statuspage` plugin: the customers' side of seed 6.1 on Atlassian
//! Statuspage (API v1, `https://api.statuspage.io/v1`, `Authorization:
//! OAuth <key>` with the key as a `${secret:NAME}` the host fills in).
//!
//! * `open`: reads each affected component first and records its status
//!   (data `before`, emitted as `previous`), then creates the incident
//!   (`POST /pages/{page}/incidents`) with those components set to the
//!   status asked for. Its data names the incident (`incident`, `shortlink`).
//! * `update`: posts an update to the incident (`PATCH …/incidents/{id}`:
//!   the incident's status and a body, which Statuspage adds as an update).
//! * `resolve`: the same with status `resolved`, the components put back to
//!   what `open` recorded (`params.previous`), or operational.
//! * `restore`: puts components back to `params.previous` one by one
//!   (`PATCH …/components/{id}`): the undo of `open` without an incident.
//!
//! Dry-run only reads (the components, or the incident) and says what it
//! would send.

use std::collections::BTreeMap;

use backout_plugin_sdk::api::{self, bad};
use backout_plugin_sdk::host::HttpRequest;
use backout_plugin_sdk::{
    Need, Outcome, Plugin, PluginError, PluginInfo, Schema, Step, export_plugin,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

const DEFAULT_BASE: &str = "https://api.statuspage.io/v1";

/// Statuspage's component statuses a plan may set.
const COMPONENT_STATUSES: &[&str] = &[
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
];
/// An incident's statuses (realtime incidents).
const INCIDENT_STATUSES: &[&str] = &["investigating", "identified", "monitoring", "resolved"];
const IMPACTS: &[&str] = &["none", "maintenance", "minor", "major", "critical"];
/// Statuspage's limits on an incident's name and on a body.
const MAX_NAME: usize = 255;
const MAX_BODY: usize = 25_000;

struct StatusPage;

impl Plugin for StatusPage {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "statuspage",
            env!("CARGO_PKG_VERSION"),
            "Opens, updates and resolves an Atlassian Statuspage incident, recording the affected components' previous status.",
        )
        .action(
            "open",
            "Records params.components' current status, then creates the incident params.name with params.body, setting each component to the status asked for.",
            true,
        )
        .action(
            "update",
            "Posts params.body as an update to incident params.incident, optionally with a new params.status.",
            true,
        )
        .action(
            "resolve",
            "Resolves incident params.incident with params.body, putting components back to params.previous.",
            true,
        )
        .action(
            "restore",
            "Puts each component of params.previous back to its recorded status.",
            true,
        )
    }

    fn needs() -> Vec<Need> {
        vec![
            Need::url("", "Statuspage's API (params.api_base)"),
            Need::secret("", "the Statuspage API key"),
        ]
    }

    fn schema() -> Schema {
        Schema::new()
            .action::<OpenParams>("open")
            .action::<UpdateParams>("update")
            .action::<UpdateParams>("resolve")
            .action::<RestoreParams>("restore")
    }

    fn run(step: Step) -> Result<Outcome, PluginError> {
        match step.action.as_str() {
            "open" => open(&step),
            "update" => update(&step, false),
            "resolve" => update(&step, true),
            "restore" => restore(&step),
            _ => Err(step.unknown_action()),
        }
    }
}

export_plugin!(StatusPage);

fn default_base() -> String {
    DEFAULT_BASE.to_string()
}

fn default_status() -> String {
    "investigating".to_string()
}

/// Which page, and how to reach it (every action's first three params).
#[derive(Debug, Deserialize)]
struct Target {
    #[serde(default = "default_base")]
    api_base: String,
    /// The page's id (`gytm4qzbx9t6`).
    page: String,
    /// The API key, as `${secret:NAME}`.
    api_key: String,
}

impl Target {
    fn base(&self) -> Result<String, PluginError> {
        api::secret_marker("api_key", &self.api_key)?;
        api::resource_id("page", &self.page)?;
        Ok(format!(
            "{}/pages/{}",
            api::api_base(&self.api_base)?,
            self.page
        ))
    }

    fn request(&self, method: &str, url: &str) -> HttpRequest {
        HttpRequest::new(method, url).header("authorization", format!("OAuth {}", self.api_key))
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct OpenParams {
    /// Statuspage's API root (granted to the plugin on the agent).
    #[serde(default = "default_base")]
    api_base: String,
    /// The page's id (`gytm4qzbx9t6`).
    page: String,
    /// The API key, as `${secret:NAME}`.
    #[schemars(extend("x-secret" = true))]
    api_key: String,
    /// The incident's name (what customers see first).
    name: String,
    /// The first update's text.
    body: String,
    /// The incident's status: investigating, identified, monitoring or resolved.
    #[serde(default = "default_status")]
    status: String,
    /// Component id -> the status to show while the incident is open (operational, under_maintenance, degraded_performance, partial_outage, major_outage).
    #[serde(default)]
    components: BTreeMap<String, String>,
    /// The incident's impact instead of Statuspage's guess: none, maintenance, minor, major or critical.
    #[serde(default)]
    impact_override: Option<String>,
    /// Whether subscribers are told (Statuspage's default: yes).
    #[serde(default)]
    deliver_notifications: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpdateParams {
    /// Statuspage's API root (granted to the plugin on the agent).
    #[serde(default = "default_base")]
    api_base: String,
    /// The page's id (`gytm4qzbx9t6`).
    page: String,
    /// The API key, as `${secret:NAME}`.
    #[schemars(extend("x-secret" = true))]
    api_key: String,
    /// The incident's id (`open`'s data `incident`).
    incident: String,
    /// The update's text.
    body: String,
    /// The incident's new status (`update` only; `resolve` sets resolved).
    #[serde(default)]
    status: Option<String>,
    /// For `resolve`: component id -> the status `open` recorded.
    #[serde(default)]
    previous: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RestoreParams {
    /// Statuspage's API root (granted to the plugin on the agent).
    #[serde(default = "default_base")]
    api_base: String,
    /// The page's id (`gytm4qzbx9t6`).
    page: String,
    /// The API key, as `${secret:NAME}`.
    #[schemars(extend("x-secret" = true))]
    api_key: String,
    /// Component id -> the status `open` recorded (its data `before`).
    previous: BTreeMap<String, String>,
}

macro_rules! target_of {
    ($($params:ty),*) => {$(
        impl $params {
            fn target(&self) -> Target {
                Target {
                    api_base: self.api_base.clone(),
                    page: self.page.clone(),
                    api_key: self.api_key.clone(),
                }
            }
        }
    )*};
}
target_of!(OpenParams, UpdateParams, RestoreParams);

fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), PluginError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(bad(format!(
            "`{field}` is `{value}`: use one of {}",
            allowed.join(", ")
        )))
    }
}

fn check_components(field: &str, components: &BTreeMap<String, String>) -> Result<(), PluginError> {
    for (id, status) in components {
        api::resource_id(field, id)?;
        one_of(&format!("{field}.{id}"), status, COMPONENT_STATUSES)?;
    }
    Ok(())
}

fn check_body(body: &str) -> Result<(), PluginError> {
    if body.trim().is_empty() {
        return Err(bad("`body` is empty"));
    }
    if body.chars().count() > MAX_BODY {
        return Err(bad(format!(
            "`body` is longer than Statuspage's {MAX_BODY} characters"
        )));
    }
    Ok(())
}

/// Each component's status now, by id.
fn read_components(
    target: &Target,
    base: &str,
    ids: impl Iterator<Item = String>,
) -> Result<Map<String, Value>, PluginError> {
    let mut before = Map::new();
    for id in ids {
        let answer = api::send(target.request("GET", &format!("{base}/components/{id}")))?;
        let status = answer
            .get("status")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                PluginError::new(
                    "bad-response",
                    format!("Statuspage answered component {id} without a status: {answer}"),
                )
            })?;
        before.insert(id, json!(status));
    }
    Ok(before)
}

fn open(step: &Step) -> Result<Outcome, PluginError> {
    let p: OpenParams = step.params()?;
    let target = p.target();
    let base = target.base()?;
    if p.name.trim().is_empty() || p.name.chars().count() > MAX_NAME {
        return Err(bad(format!("`name` must be 1 to {MAX_NAME} characters")));
    }
    check_body(&p.body)?;
    one_of("status", &p.status, INCIDENT_STATUSES)?;
    if let Some(impact) = &p.impact_override {
        one_of("impact_override", impact, IMPACTS)?;
    }
    check_components("components", &p.components)?;

    let before = read_components(&target, &base, p.components.keys().cloned())?;
    api::record_previous(&format!("statuspage page {}", p.page), &before);
    let changed: Vec<Value> = p
        .components
        .iter()
        .map(|(id, status)| json!({ "field": id, "before": before.get(id), "after": status }))
        .collect();
    let mut incident = json!({
        "name": p.name,
        "status": p.status,
        "body": p.body,
        "components": p.components,
        "component_ids": p.components.keys().collect::<Vec<_>>(),
    });
    if let Some(map) = incident.as_object_mut() {
        if let Some(impact) = &p.impact_override {
            map.insert("impact_override".into(), json!(impact));
        }
        if let Some(deliver) = p.deliver_notifications {
            map.insert("deliver_notifications".into(), json!(deliver));
        }
    }
    if step.dry_run {
        return Ok(Outcome::new(
            format!(
                "would open a Statuspage incident `{}` ({} component(s))",
                p.name,
                p.components.len()
            ),
            json!({ "page": p.page, "dry_run": true, "before": before, "would_create": incident, "changed": changed }),
        ));
    }
    let request = target
        .request("POST", &format!("{base}/incidents"))
        .json(&json!({ "incident": incident }))?;
    let answer = api::send(request)?;
    let id = answer
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            PluginError::new(
                "bad-response",
                format!("Statuspage created an incident without an id: {answer}"),
            )
        })?
        .to_string();
    let shortlink = answer.get("shortlink").cloned().unwrap_or(Value::Null);
    backout_plugin_sdk::host::emit_json("incident", &json!({ "id": id, "shortlink": shortlink }));
    Ok(Outcome::new(
        format!("opened Statuspage incident {id}: {}", p.name),
        json!({
            "page": p.page,
            "incident": id,
            "shortlink": shortlink,
            "status": answer.get("status"),
            "before": before,
            "changed": changed,
        }),
    ))
}

fn update(step: &Step, resolve: bool) -> Result<Outcome, PluginError> {
    let p: UpdateParams = step.params()?;
    let target = p.target();
    let base = target.base()?;
    api::resource_id("incident", &p.incident)?;
    check_body(&p.body)?;
    check_components("previous", &p.previous)?;
    let status = if resolve {
        Some("resolved".to_string())
    } else {
        p.status.clone()
    };
    if let Some(status) = &status {
        one_of("status", status, INCIDENT_STATUSES)?;
    }
    let url = format!("{base}/incidents/{}", p.incident);
    // What the incident was, for the record (and all a dry run does).
    let current = api::send(target.request("GET", &url))?;
    let before = json!({ "status": current.get("status") });
    let mut incident = json!({ "body": p.body });
    if let Some(map) = incident.as_object_mut() {
        if let Some(status) = &status {
            map.insert("status".into(), json!(status));
        }
        if resolve && !p.previous.is_empty() {
            map.insert("components".into(), json!(p.previous));
        }
    }
    let verb = if resolve { "resolve" } else { "update" };
    if step.dry_run {
        return Ok(Outcome::new(
            format!("would {verb} Statuspage incident {}", p.incident),
            json!({ "page": p.page, "incident": p.incident, "dry_run": true, "before": before, "would_send": incident }),
        ));
    }
    let request = target
        .request("PATCH", &url)
        .json(&json!({ "incident": incident }))?;
    let answer = api::send(request)?;
    Ok(Outcome::new(
        format!(
            "{} Statuspage incident {}",
            if resolve { "resolved" } else { "updated" },
            p.incident
        ),
        json!({
            "page": p.page,
            "incident": p.incident,
            "shortlink": answer.get("shortlink"),
            "before": before,
            "sent": incident,
            "after": { "status": answer.get("status") },
        }),
    ))
}

fn restore(step: &Step) -> Result<Outcome, PluginError> {
    let p: RestoreParams = step.params()?;
    let target = p.target();
    let base = target.base()?;
    if p.previous.is_empty() {
        return Err(bad("`previous` names no component"));
    }
    check_components("previous", &p.previous)?;
    let before = read_components(&target, &base, p.previous.keys().cloned())?;
    let wanted: Map<String, Value> = p
        .previous
        .iter()
        .map(|(id, status)| (id.clone(), json!(status)))
        .collect();
    let what = format!("statuspage page {} components", p.page);
    let ident = json!({ "page": p.page });
    let changes = match api::decide(&what, ident, &before, &wanted, step.dry_run) {
        api::Decision::Done(outcome) => return Ok(outcome),
        api::Decision::Apply(changes) => changes,
    };
    let mut after = before.clone();
    for change in &changes {
        let request = target
            .request("PATCH", &format!("{base}/components/{}", change.field))
            .json(&json!({ "component": { "status": change.after } }))?;
        let answer = api::send(request)?;
        after.insert(
            change.field.clone(),
            answer.get("status").cloned().unwrap_or(Value::Null),
        );
    }
    let changed: Vec<Value> = changes.iter().map(api::Change::json).collect();
    Ok(Outcome::new(
        format!("{what}: set {}", api::lines(&changes)),
        json!({ "page": p.page, "before": before, "requested": wanted, "after": after, "changed": changed }),
    ))
}
