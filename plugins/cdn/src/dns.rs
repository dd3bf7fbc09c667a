//! DNS records: `GET`, then `PATCH /zones/{zone}/dns_records/{id}`.

use backout_plugin_sdk::host;
use backout_plugin_sdk::{Outcome, PluginError, Step};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::{self, bad};
use crate::{Zone, default_base};

/// The record fields this action may change.
const FIELDS: &[&str] = &[
    "type", "name", "content", "ttl", "proxied", "comment", "priority", "data", "tags",
];

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    #[serde(default = "default_base")]
    api_base: String,
    zone: String,
    #[serde(default)]
    #[schemars(extend("x-secret" = true))]
    token: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    #[schemars(extend("x-secret" = true))]
    key: Option<String>,
    /// The record's id.
    record: String,
    /// Fields to change: `{ content = "198.51.100.4", proxied = true }`.
    set: Map<String, Value>,
}

pub(crate) fn run(step: &Step) -> Result<Outcome, PluginError> {
    let p: Params = step.params()?;
    let zone = Zone::new(
        &p.api_base,
        &p.zone,
        p.token.as_deref(),
        p.email.as_deref(),
        p.key.as_deref(),
    )?;
    api::resource_id("record", &p.record)?;
    if p.set.is_empty() {
        return Err(bad("`set` is empty: nothing to change"));
    }
    if let Some(field) = p.set.keys().find(|f| !FIELDS.contains(&f.as_str())) {
        return Err(bad(format!(
            "`set.{field}` is not a record field this action changes ({})",
            FIELDS.join(", ")
        )));
    }
    let path = format!("/dns_records/{}", p.record);

    let Value::Object(record) = zone.send(zone.request("GET", &path))? else {
        return Err(PluginError::new(
            "bad-response",
            format!(
                "zone {}: DNS record {} came back without its fields",
                zone.id, p.record
            ),
        ));
    };
    // The previous values of the fields asked for: giving them back as
    // `set` undoes the change.
    let before: Map<String, Value> = p
        .set
        .keys()
        .map(|f| (f.clone(), record.get(f).cloned().unwrap_or(Value::Null)))
        .collect();
    let what = format!("zone {} DNS record {}", zone.id, p.record);
    let ident = json!({ "zone": zone.id, "record": p.record });
    let changes = match api::decide(&what, ident, &before, &p.set, step.dry_run) {
        api::Decision::Done(outcome) => return Ok(outcome),
        api::Decision::Apply(changes) => changes,
    };
    let changed: Vec<Value> = changes.iter().map(api::Change::json).collect();

    // The record as read with the changes applied: Cloudflare's API
    // document describes the request body as a whole record.
    let mut updated = record.clone();
    for change in &changes {
        updated.insert(change.field.clone(), change.after.clone());
    }
    let request = zone.request("PATCH", &path).json(&Value::Object(updated))?;
    let result = zone.send(request)?;
    host::log_info(&format!("{what}: set {}", api::lines(&changes)));
    let after: Map<String, Value> = p
        .set
        .keys()
        .map(|f| (f.clone(), result.get(f).cloned().unwrap_or(Value::Null)))
        .collect();
    Ok(Outcome::new(
        format!("{what}: set {}", api::lines(&changes)),
        json!({ "zone": zone.id, "record": p.record, "before": before, "requested": p.set, "after": after, "changed": changed }),
    ))
}
